#!/bin/bash
# paired.sh OUT REPS: for each layout, calibrate for its thread count right before running it.
set -e
cd "$(git rev-parse --show-toplevel)"
OUT=$1; REPS=${2:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
M="--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.global_batch 16 --train.micro_batch 4 --model.vocab 257"
mkdir -p $OUT; git rev-parse --short HEAD > $OUT/commit.txt
for r in $(seq 1 $REPS); do
  for lay in dp1 dp2 tp2 pp2; do
    D=$OUT/rep$r-$lay; mkdir -p $D; date -u +%FT%TZ > $D/start.txt
    if [ $lay = dp1 ]; then
      OMP_NUM_THREADS=2 build-off/launch/loom-plan calibrate --output $D/cal.json $M > $D/cal.log 2>&1; np=1; cl=2=$D/cal.json
    else
      mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 build-off/launch/loom-plan calibrate --output $D/cal.json $M > $D/cal.log 2>&1; np=2; cl=1=$D/cal.json
    fi
    python3 launch/scaling.py --build-dir build-off --output $D/sweep --nps $np --layouts $lay --mode strong --steps 8 --cluster $cl > $D/sweep.log 2>&1
    grep "^\[" $D/sweep.log | sed "s/^/rep$r /" | cut -c1-45,105-200
  done
done
