#!/bin/bash
# ab.sh OUT REPS OLD_BUILD — the calibration before (OLD_BUILD's loom-plan) and after (BUILD_DIR's)
# against the same measured steps: each repetition calibrates with both (1 thread x 2 ranks and
# 2 threads x 1 rank, the order alternating), runs the np 1, 2 strong sweep with the new files, then
# predicts every layout from the old files too. ab_summarize.py OUT tabulates (OLD_BUILD: a build of 2955dad, the calibration before).
set -e
cd "$(git rev-parse --show-toplevel)"
OUT=$1; REPS=${2:-5}; OLD=$3; B=${BUILD_DIR:-build-off}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
M="--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.global_batch 16 --train.micro_batch 4 --model.vocab 257"
mkdir -p $OUT; git rev-parse --short HEAD > $OUT/commit.txt
calibrate() {  # build threads output
  if [ $2 = 1 ]; then mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 $1/launch/loom-plan calibrate --output $3 $M
  else OMP_NUM_THREADS=2 $1/launch/loom-plan calibrate --output $3 $M; fi > ${3%.json}.log 2>&1; }
for r in $(seq 1 $REPS); do
  D=$OUT/rep$r; mkdir -p $D; date -u +%FT%TZ > $D/start.txt
  for t in 1 2; do
    if [ $((r % 2)) = 1 ]; then calibrate $OLD $t $D/old-${t}t.json; calibrate $B $t $D/new-${t}t.json
    else calibrate $B $t $D/new-${t}t.json; calibrate $OLD $t $D/old-${t}t.json; fi
  done
  python3 launch/scaling.py --build-dir $B --output $D/sweep --nps 1,2 --mode strong --steps 8 \
    --cluster 1=$D/new-1t.json,2=$D/new-2t.json > $D/sweep.log 2>&1
  for lay in "1 1 1 2" "2 1 1 1" "1 2 1 1" "1 1 2 1"; do
    set -- $lay
    for v in old new; do
      $B/launch/loom-plan predict --cluster $D/$v-${4}t.json $M --parallel.dp $1 --parallel.tp $2 --parallel.pp $3 \
        | sed -n 's/^step time *\([0-9.e-]*\) s/\1/p' | sed "s/^/dp$1tp$2pp$3 $v /" >> $D/predictions.txt
    done
  done
done
