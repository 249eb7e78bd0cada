#!/usr/bin/env bash
# launch/quickstart.sh — the README's first command: install what is missing, build,
# turn the King James Bible into a token dataset, train a small GPT on it, and
# print a sample. About 5 minutes on 2 cores after the build.
#   BUILD_DIR (default build)  RUN_DIR (default runs/quickstart)  STEPS (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/quickstart}
STEPS=${STEPS:-600}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA="${LOOM_CUDA:-AUTO}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target loom-data loom-train loom-generate
B="$BUILD_DIR/launch"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/kjv.h5" ]; then
  bible Gen1:1-Rev22:21 > "$RUN_DIR/kjv.txt"
  "$B/loom-data" --input "$RUN_DIR/kjv.txt" --output "$RUN_DIR/kjv.h5" --val-fraction 0.05
fi

"$B/loom-train" \
  --data.train "$RUN_DIR/kjv.h5" \
  --model.layers 4 --model.channels 128 --model.heads 4 --model.seq_len 128 \
  --train.steps "$STEPS" --train.global_batch 16 --train.micro_batch 16 \
  --train.eval_interval 100 --train.eval_batches 8 --train.log_interval 25 \
  --optim.lr 2e-3 --optim.min_lr 2e-4 --optim.warmup_steps 30 --optim.weight_decay 0.1 \
  --checkpoint.dir "$RUN_DIR"

echo
echo "---- sample (loom-generate --weights $RUN_DIR/weights.h5) ----"
"$B/loom-generate" --weights "$RUN_DIR/weights.h5" --prompt "And God said" --tokens 400 --temperature 0.8 --top_k 40 --seed 7
