#!/usr/bin/env bash
# tests/mpi/watchdog_stop.sh — the watchdog turns a stalled rank into a message, not a hang.
#
# watchdog_stop.sh MPIEXEC LOOM_DATA LOOM_TRAIN WORK
# Starts a 2-rank data-parallel loom-train with --parallel.timeout 5 and a run far longer
# than the test, waits until it is training, then SIGSTOPs world rank 1 (found by the
# OMPI_COMM_WORLD_RANK in its environment). Rank 0 then waits for rank 1 in a dp (or
# world) collective; its watchdog thread must end it, and mpirun the job, non-zero within
# the timeout plus a margin; rank 0's message must reach the output and name the step,
# the group with its world ranks and the operation, and no process of the job may be
# left behind (the stopped one included). (mpirun's teardown sends SIGCONT before
# SIGTERM: rank 1's watchdog may then report its own long wait too.)
set -u
MPIEXEC=$1 LOOM_DATA=$2 LOOM_TRAIN=$3 WORK=$4
TIMEOUT=5
mkdir -p "$WORK"
for i in $(seq 400); do echo "In the beginning was the word, and the word was $i."; done > "$WORK/text.txt"
"$LOOM_DATA" --quiet --force --input "$WORK/text.txt" --output "$WORK/data.h5" || exit 1
out="$WORK/job.log"
"$MPIEXEC" --oversubscribe -n 2 "$LOOM_TRAIN" --data.train "$WORK/data.h5" --model.layers 1 --model.channels 16 \
  --model.heads 2 --model.seq_len 16 --train.global_batch 4 --train.micro_batch 2 --train.steps 1000000 \
  --train.eval_interval 0 --parallel.dp 2 --parallel.timeout $TIMEOUT --checkpoint.dir "$WORK/run" >"$out" 2>&1 &
job=$!
fail() { echo "FAIL: $*"; echo "---- job output ----"; cat "$out"; kill -KILL $job 2>/dev/null; exit 1; }

# Whether process $1 descends from process $2 (so a concurrent job's ranks are never touched).
descends() {
  local p=$1
  for _ in 1 2 3 4 5 6; do
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || return 1
    [ "$p" = "$2" ] && return 0
    [ -z "$p" ] || [ "$p" -le 1 ] && return 1
  done
  return 1
}
# A rank: a process of this job whose environment says OMPI_COMM_WORLD_RANK=$1.
rank_pid() {
  for pid in $(pgrep -f "$LOOM_TRAIN"); do
    descends "$pid" $job || continue
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"; return
    fi
  done
}
for _ in $(seq 600); do
  grep -q "step     3/" "$out" && break
  kill -0 $job 2>/dev/null || fail "the job ended before training"
  sleep 0.1
done
grep -q "step     3/" "$out" || fail "the job did not start training within 60 s"
victim=$(rank_pid 1)
[ -n "$victim" ] || fail "no process of world rank 1 found"
pids="$(rank_pid 0) $victim"
kill -STOP "$victim"
stopped=$(date +%s)
echo "stopped world rank 1 (pid $victim) at $(date +%T)"

# The job must end by itself: the watchdog fires after TIMEOUT s; allow a generous margin.
for _ in $(seq 600); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
  kill -CONT "$victim"; kill -KILL $job $pids 2>/dev/null
  fail "the job still runs 60 s after rank 1 was stopped: the watchdog did not fire"
fi
wait $job
rc=$?
elapsed=$(( $(date +%s) - stopped ))
echo "---- job output (exit $rc, ended ${elapsed} s after the stop) ----"; tail -n 8 "$out"
[ "$rc" -ne 0 ] || fail "the job exited 0"
[ "$elapsed" -ge $((TIMEOUT - 1)) ] || fail "the job ended after ${elapsed} s, before the ${TIMEOUT} s timeout"
# Rank 0 waits in the dp all-reduce, or in the step's next world one: a 2-rank all-reduce
# can complete on one rank when the other has sent its part but not yet received.
grep -Eq "loom: rank 0: error: watchdog: step [0-9]+: world rank 0 waited [0-9.]+ s in [a-z_]+.* on group '(dp|world)' \(world ranks 0,1; this is its rank 0 of 2\), more than parallel.timeout = 5 s" "$out" \
  || fail "rank 0's message does not name the step, the dp (or world) group with its ranks, and the operation"
grep -q "HINT: .*--parallel.timeout" "$out" || fail "no hint"
sleep 2
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null; then kill -CONT "$pid"; kill -KILL "$pid"; fail "process $pid was left behind"; fi
done
echo "ok: exit $rc, ${elapsed} s after the stop, message names step, group and operation, no process left"
