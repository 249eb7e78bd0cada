#!/bin/bash
# run.sh [--paired] OUT REPS — the step-time check of docs/scaling.md ("This machine: step time").
#   default:  REPS times: calibrate (1 thread x 2 ranks, 2 threads x 1 rank), then the np 1, 2 strong
#             sweep; np 4 in the last repetition.
#   --paired: REPS times, for each of dp1 dp2 tp2 pp2: calibrate for its thread count right before it.
# BUILD_DIR (default build-off: a -DLOOM_CUDA=OFF build). summarize.py OUT tabulates the default mode.
set -e
paired=0; [ "$1" = --paired ] && { paired=1; shift; }
cd "$(git rev-parse --show-toplevel)"
OUT=$1; REPS=${2:-3}; B=${BUILD_DIR:-build-off}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
M="--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.global_batch 16 --train.micro_batch 4 --model.vocab 257"
mkdir -p $OUT; git rev-parse --short HEAD > $OUT/commit.txt
calibrate() {  # threads output
  if [ $1 = 1 ]; then mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 $B/launch/loom-plan calibrate --output $2 $M
  else OMP_NUM_THREADS=2 $B/launch/loom-plan calibrate --output $2 $M; fi > ${2%.json}.log 2>&1; }
sweep() {  # dir nps cluster [layout]
  python3 launch/scaling.py --build-dir $B --output $1/sweep --nps $2 --mode strong --steps 8 --cluster $3 \
    ${4:+--layouts $4} > $1/sweep.log 2>&1; }
for r in $(seq 1 $REPS); do
  if [ $paired = 1 ]; then
    for lay in dp1 dp2 tp2 pp2; do
      D=$OUT/rep$r-$lay; mkdir -p $D; date -u +%FT%TZ > $D/start.txt
      if [ $lay = dp1 ]; then t=2 np=1; else t=1 np=2; fi
      calibrate $t $D/cal.json; sweep $D $np $t=$D/cal.json $lay
    done
  else
    D=$OUT/rep$r; mkdir -p $D; date -u +%FT%TZ > $D/start.txt; cat /proc/loadavg >> $D/start.txt
    calibrate 1 $D/cal-1t.json; calibrate 2 $D/cal-2t.json
    nps=1,2; [ $r = $REPS ] && nps=1,2,4
    sweep $D $nps 1=$D/cal-1t.json,2=$D/cal-2t.json
  fi
done
