#!/usr/bin/env bash
# launch/scaling.sh — throughput of one model across layouts: np = 1, 2 and 4 with
# data, tensor and pipeline parallelism, each rank given its share of the cores.
# Prints, per layout, the last step's line of loom-train (tokens/s, model FLOP/s
# per rank, MFU, and the step's time split: tp / pp / dp communication in ms).
# Every layout trains the same model on the same data, so the losses must agree.
# launch/scaling.py runs the same sweep (strong and weak) into a CSV, a table and plots,
# each run beside the performance model's prediction (docs/scaling.md).
#   BUILD_DIR (default build)  DATA (default runs/quickstart/kjv.h5, made if missing)
#   MODEL (loom-train model/batch options)  STEPS (default 6)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
B="$BUILD_DIR/launch"
DATA=${DATA:-runs/quickstart/kjv.h5}
STEPS=${STEPS:-6}
MODEL=${MODEL:-"--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.global_batch 16 --train.micro_batch 4"}
if [ ! -f "$DATA" ]; then
  mkdir -p "$(dirname "$DATA")"
  bible Gen1:1-Rev22:21 > "$DATA.txt"
  "$B/loom-data" --quiet --input "$DATA.txt" --output "$DATA"
fi
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cores=$(nproc)
run() {  # np, layout options
  local np=$1; shift
  local threads=$(( cores / np )); [ "$threads" -ge 1 ] || threads=1
  local line
  # shellcheck disable=SC2086
  line=$(mpirun --oversubscribe -np "$np" -x OMP_NUM_THREADS="$threads" "$B/loom-train" --data.train "$DATA" $MODEL \
           --train.steps "$STEPS" --train.eval_interval 0 --train.eval_batches 1 --train.log_interval 1 \
           --checkpoint.dir "$(mktemp -d)" "$@" | grep '^step' | tail -1)
  printf '%-2s ranks %-36s %s\n' "$np" "${*:-single}" "$line"
}
echo "loom scaling: $cores cores; model: $MODEL; last of $STEPS steps"
run 1
run 2 --parallel.dp 2
run 2 --parallel.tp 2
run 2 --parallel.pp 2
run 4 --parallel.dp 4
run 4 --parallel.dp 2 --parallel.tp 2
run 4 --parallel.tp 2 --parallel.pp 2
run 4 --parallel.dp 2 --parallel.pp 2
run 4 --parallel.pp 4
