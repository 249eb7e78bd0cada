#!/bin/bash
# cpu-reps.sh OUT REPS: REPS times (calibrate 1t x 2 ranks and 2t x 1 rank, then the np 1,2 strong sweep); np 4 once at the end.
set -e
cd "$(git rev-parse --show-toplevel)"
OUT=$1; REPS=${2:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
M="--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.global_batch 16 --train.micro_batch 4 --model.vocab 257"
mkdir -p $OUT; git rev-parse --short HEAD > $OUT/commit.txt
for r in $(seq 1 $REPS); do
  D=$OUT/rep$r; mkdir -p $D; date -u +%FT%TZ > $D/start.txt; cat /proc/loadavg >> $D/start.txt
  mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 build-off/launch/loom-plan calibrate --output $D/cal-1t.json $M > $D/cal-1t.log 2>&1
  OMP_NUM_THREADS=2 build-off/launch/loom-plan calibrate --output $D/cal-2t.json $M > $D/cal-2t.log 2>&1
  nps=1,2; [ $r = $REPS ] && nps=1,2,4
  python3 launch/scaling.py --build-dir build-off --output $D/sweep --nps $nps --mode strong --steps 8 --cluster 1=$D/cal-1t.json,2=$D/cal-2t.json > $D/sweep.log 2>&1
done
