#!/usr/bin/env bash
# launch/quickstart.sh — the README's first command: install what is missing, build,
# turn the King James Bible into a token dataset, train a small GPT on it with
# 4 MPI ranks (2 data-parallel replicas x 2 tensor-parallel shards: the same run
# as on one rank, spread out), and print a sample. A few minutes on 2 cores.
#   BUILD_DIR (default build)  RUN_DIR (default runs/quickstart)  STEPS (default 1500)
#   NP (default 4)  TP (default 2; dp = NP / TP)
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/quickstart}
STEPS=${STEPS:-1500}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA="${LOOM_CUDA:-AUTO}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target loom-data loom-train loom-generate
B="$BUILD_DIR/launch"
NP=${NP:-4}
TP=${TP:-2}
# Each rank gets its share of the cores (at least one thread).
THREADS=$(( $(nproc) / NP ))
[ "$THREADS" -ge 1 ] || THREADS=1
if [ "$(id -u)" -eq 0 ]; then  # Open MPI refuses root unless told
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/kjv.h5" ]; then
  bible Gen1:1-Rev22:21 > "$RUN_DIR/kjv.txt"
  "$B/loom-data" --input "$RUN_DIR/kjv.txt" --output "$RUN_DIR/kjv.h5" --val-fraction 0.05
fi

mpirun --oversubscribe -np "$NP" -x OMP_NUM_THREADS="$THREADS" "$B/loom-train" \
  --parallel.tp "$TP" \
  --data.train "$RUN_DIR/kjv.h5" \
  --model.layers 4 --model.channels 128 --model.heads 4 --model.seq_len 128 \
  --train.steps "$STEPS" --train.global_batch 16 --train.micro_batch 8 \
  --train.eval_interval 100 --train.eval_batches 8 --train.log_interval 25 \
  --optim.lr 2e-3 --optim.min_lr 2e-4 --optim.warmup_steps 30 --optim.weight_decay 0.1 \
  --checkpoint.dir "$RUN_DIR"

echo
echo "---- sample (loom-generate --weights $RUN_DIR/weights.h5) ----"
OMP_NUM_THREADS=$(nproc) "$B/loom-generate" --weights "$RUN_DIR/weights.h5" --prompt "And God said" --tokens 400 --temperature 0.8 --top_k 40 --seed 7
