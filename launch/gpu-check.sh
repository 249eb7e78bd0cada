#!/usr/bin/env bash
# launch/gpu-check.sh — on a machine with a GPU: build loom with CUDA and run everything that needs the GPU.
#
# Meant for a bare GPU box (Debian-like, root, maybe no network) lent for a few
# minutes: it installs nothing unless LOOM_GPU_CHECK_INSTALL=1 (then it runs
# launch/install-deps.sh first), builds only what it runs, for the GPU's own
# architecture, on every core, and keeps going past every failure. Steps:
# dependency check, nvidia-smi, configure (-DLOOM_CUDA=ON), build (the GPU tests,
# loom-data, loom-train, loom-bench), ctest -L gpu (CUDA vs CPU for every op and
# dtype, the tiled attention included; the NCCL collectives), a small GPT trained for STEPS steps on the GPU and
# on the CPU with the same seed and data (losses compared step by step, within
# LOSS_TOL relative), with 2+ GPUs the layout-equivalence check on one GPU per rank
# (dp, tp, pp; with 4+ GPUs two 4-rank layouts too), and the GPU benchmarks
# (loom-bench train and ops). Aimed at
# under 8 minutes on one H100. Logs go to "${OUT:-gpu-check-out}/<step>.log";
# summary.txt holds the commit, the device, each step's exit status and time, the
# loss comparison and the benchmark's headline. Exit status: 0 when every
# required step passed, 1 otherwise.
#
# Environment: OUT (log folder), BUILD_DIR (default build-gpu), JOBS (default nproc),
# CMAKE_CUDA_ARCHITECTURES (default: the GPU's compute capability, else 90),
# STEPS (default 200), LOSS_TOL (default 1e-2), LOOM_GPU_CHECK_INSTALL=1 (try
# launch/install-deps.sh first), LOOM_COMMIT (the commit to report when the tree
# has no .git).
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
OUT_DIR="${OUT:-gpu-check-out}"
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
BUILD_DIR="${BUILD_DIR:-build-gpu}"
STEPS="${STEPS:-200}"
LOSS_TOL="${LOSS_TOL:-1e-2}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
SUMMARY="$OUT_DIR/summary.txt"

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

STEP_NAMES=()
STEP_RCS=()
STEP_REQUIRED=()
STEP_SECONDS=()

# run_step NAME required|optional CMD...: runs CMD with its output in NAME.log.
run_step() {
  local name="$1" kind="$2"
  shift 2
  local log="$OUT_DIR/$name.log" start=$SECONDS rc
  echo "== $name ($kind): $*"
  { echo "\$ $*"; "$@"; } >"$log" 2>&1
  rc=$?
  STEP_NAMES+=("$name")
  STEP_RCS+=("$rc")
  STEP_REQUIRED+=("$kind")
  STEP_SECONDS+=($((SECONDS - start)))
  echo "   exit $rc after $((SECONDS - start)) s; log: $log"
  return 0
}

# A step that did not run (a prerequisite failed): recorded as failed, exit 125.
skip_step() {
  local name="$1" kind="$2" why="$3"
  echo "== $name ($kind): not run: $why"
  echo "not run: $why" >"$OUT_DIR/$name.log"
  STEP_NAMES+=("$name")
  STEP_RCS+=(125)
  STEP_REQUIRED+=("$kind")
  STEP_SECONDS+=(0)
}

step_rc() {  # exit status of the step named $1 (125 if absent)
  local i
  for i in "${!STEP_NAMES[@]}"; do
    if [ "${STEP_NAMES[$i]}" = "$1" ]; then echo "${STEP_RCS[$i]}"; return; fi
  done
  echo 125
}

# ---- 0. what is on this machine ----------------------------------------------------
# shellcheck disable=SC2317  # called through run_step
check_deps() {
  local missing=() tool
  for tool in cmake ctest c++ make pkg-config nvcc nvidia-smi git mpicxx mpirun; do
    if command -v "$tool" >/dev/null 2>&1; then
      echo "found   $tool: $(command -v "$tool")"
    else
      echo "MISSING $tool"
      missing+=("$tool")
    fi
  done
  local header
  for header in /usr/include/gtest/gtest.h /usr/include/fmt/format.h /usr/include/boost/program_options.hpp \
                /usr/include/nlohmann/json.hpp /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h; do
    if [ -e "$header" ]; then echo "found   $header"; else echo "MISSING $header"; missing+=("$header"); fi
  done
  local cuda_inc
  for cuda_inc in cublasLt.h nccl.h; do
    if [ -e "/usr/local/cuda/include/$cuda_inc" ] || [ -e "/usr/include/$cuda_inc" ]; then
      echo "found   $cuda_inc"
    else
      echo "MISSING $cuda_inc"
      missing+=("$cuda_inc")
    fi
  done
  command -v cmake >/dev/null 2>&1 && cmake --version | head -n 1
  command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 2
  command -v c++ >/dev/null 2>&1 && c++ --version | head -n 1
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "missing: ${missing[*]}"
    echo "HINT: on a machine with network, run launch/install-deps.sh (or set LOOM_GPU_CHECK_INSTALL=1)"
    return 1
  fi
  echo "all tools and headers found"
}

if [ "${LOOM_GPU_CHECK_INSTALL:-0}" = "1" ]; then
  if [ -x launch/install-deps.sh ]; then
    run_step install-deps optional launch/install-deps.sh
  else
    skip_step install-deps optional "launch/install-deps.sh not found"
  fi
fi
run_step deps optional check_deps
grep -E '^(MISSING|missing:)' "$OUT_DIR/deps.log" || true

# ---- 1. the GPU --------------------------------------------------------------------
run_step nvidia-smi required nvidia-smi
DEVICE="unknown (nvidia-smi failed)"
ARCH="${CMAKE_CUDA_ARCHITECTURES:-}"
if [ "$(step_rc nvidia-smi)" = 0 ]; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv \
    >"$OUT_DIR/gpu-query.csv" 2>&1
  DEVICE="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
            | head -n 1)"
  if [ -z "$ARCH" ]; then
    ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')"
  fi
fi
case "$ARCH" in '' | *[!0-9]*) ARCH=90 ;; esac

# ---- 2. configure and build --------------------------------------------------------
if command -v cmake >/dev/null 2>&1; then
  run_step configure required cmake -S "$ROOT" -B "$BUILD_DIR" -DLOOM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release
else
  skip_step configure required "cmake not found"
fi

# Only what the later steps run (the GPU tests depend on loom-data, loom-train and
# loom-generate themselves); test_nccl_collectives exists when NCCL was found.
TARGETS=(test_cuda_vs_cpu test_cuda_ops_vs_cpu test_cuda_flash_attention loom-data loom-train loom-bench compare_runs)
if [ "$(step_rc configure)" = 0 ]; then
  grep -q '^LOOM_NCCL_LIBRARY:.*nccl' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null && TARGETS+=(test_nccl_collectives)
  target_args=()
  for t in "${TARGETS[@]}"; do target_args+=(--target "$t"); done
  run_step build required cmake --build "$BUILD_DIR" -j "$JOBS" "${target_args[@]}"
else
  skip_step build required "configure failed"
fi

# ---- 3. tests ------------------------------------------------------------------------
if [ "$(step_rc build)" = 0 ]; then
  run_step gpu-tests required ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure --no-tests=error
  # With a GPU visible, a skipped GPU test means the tests did not see it (driver, container).
  # (test_nccl_collectives_np2 skips inside its program on a one-GPU machine; ctest counts it passed.)
  if [ "$(step_rc nvidia-smi)" = 0 ]; then
    skipped="$(grep -c -E '\*\*\*Skipped' "$OUT_DIR/gpu-tests.log" || true)"
    run_step gpu-tests-not-skipped required test "${skipped:-0}" -eq 0
    [ "${skipped:-0}" -eq 0 ] || echo "   $skipped GPU test(s) skipped although nvidia-smi sees a GPU"
  fi
else
  skip_step gpu-tests required "build failed"
fi

# ---- 4. the same small training run on the GPU and on the CPU ---------------------------
B="$BUILD_DIR/launch"
TRAIN_DIR="$OUT_DIR/train"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# shellcheck disable=SC2317  # called through run_step
make_data() {
  rm -rf "$TRAIN_DIR" && mkdir -p "$TRAIN_DIR" || return 1
  # Text that every checkout has: the repository's documentation, repeated.
  for _ in 1 2 3 4 5 6 7 8; do cat "$ROOT"/README.md "$ROOT"/docs/*.md; done >"$TRAIN_DIR/text.txt"
  "$B/loom-data" --input "$TRAIN_DIR/text.txt" --output "$TRAIN_DIR/data.h5" --val-fraction 0.05
}
# shellcheck disable=SC2317
train_on() {  # train_on cpu|cuda: STEPS steps of a 4-layer GPT, seed 1234, fp32
  mpirun --oversubscribe -np 1 -x OMP_NUM_THREADS="$JOBS" "$B/loom-train" --train.device "$1" \
    --data.train "$TRAIN_DIR/data.h5" --model.layers 4 --model.channels 128 --model.heads 4 --model.seq_len 128 \
    --train.steps "$STEPS" --train.global_batch 16 --train.micro_batch 8 --train.seed 1234 \
    --train.eval_interval "$STEPS" --train.eval_batches 4 --train.log_interval 50 \
    --optim.lr 2e-3 --optim.min_lr 2e-4 --optim.warmup_steps 30 --optim.weight_decay 0.1 \
    --checkpoint.dir "$TRAIN_DIR/$1"
}
# shellcheck disable=SC2317
compare_losses() {  # the loss of every step, GPU against CPU
  python3 - "$TRAIN_DIR/cpu/metrics.jsonl" "$TRAIN_DIR/cuda/metrics.jsonl" "$LOSS_TOL" <<'PY'
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if "loss" in r}
cpu, gpu, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
steps = sorted(set(cpu) & set(gpu))
if not steps or len(steps) != len(cpu):
    sys.exit(f"steps differ: cpu has {len(cpu)}, cuda {len(gpu)}, {len(steps)} in common")
worst = max(steps, key=lambda s: abs(cpu[s] - gpu[s]) / max(abs(cpu[s]), 1e-12))
rel = abs(cpu[worst] - gpu[worst]) / max(abs(cpu[worst]), 1e-12)
last = steps[-1]
print(f"losses: {len(steps)} steps; final cpu {cpu[last]:.5f} cuda {gpu[last]:.5f}; "
      f"worst relative difference {rel:.2e} at step {worst} (tolerance {tol:g})")
sys.exit(0 if rel <= tol else 1)
PY
}
if [ "$(step_rc build)" = 0 ]; then
  run_step train-data required make_data
  if [ "$(step_rc train-data)" = 0 ]; then
    run_step train-cuda required train_on cuda
    run_step train-cpu required train_on cpu
    if [ "$(step_rc train-cuda)" = 0 ] && [ "$(step_rc train-cpu)" = 0 ]; then
      run_step compare-losses required compare_losses
    else
      skip_step compare-losses required "a training run failed"
    fi
  else
    skip_step train-cuda required "no dataset"
  fi
else
  skip_step train-cuda required "build failed"
fi

# ---- 4b. layouts on several GPUs: tests/mpi/layout_equivalence.cmake with --train.device cuda -----
# Each layout on one GPU per rank against the single-GPU run (same seed, data, batch).
GPUS="$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)"
if [ "$(step_rc build)" = 0 ] && [ "${GPUS:-0}" -ge 2 ]; then
  layouts=("2|--parallel.dp 2" "2|--parallel.tp 2" "2|--parallel.pp 2")
  [ "$GPUS" -ge 4 ] && layouts+=("4|--parallel.dp 2 --parallel.tp 2" "4|--parallel.tp 2 --parallel.pp 2")
  for entry in "${layouts[@]}"; do
    np="${entry%%|*}" layout="${entry#*|}"
    run_step "layout-np$np-$(echo "$layout" | tr -cd 'a-z0-9')" required cmake -DMPIEXEC="$(command -v mpirun)" \
      -DNP_FLAG=-np -DNP="$np" -DLOOM_DATA="$B/loom-data" -DLOOM_TRAIN="$B/loom-train" \
      -DCOMPARE="$BUILD_DIR/tests/mpi/compare_runs" -DWORK="$OUT_DIR/layouts" -DLAYOUT="$layout" \
      -DBOTH="--train.device cuda" -DTOL=1e-4 -P "$ROOT/tests/mpi/layout_equivalence.cmake"
  done
fi

# ---- 5. benchmarks (measured, never asserted; bounded so the whole check stays short) ----
if [ "$(step_rc build)" = 0 ] && [ -x "$B/loom-bench" ]; then
  run_step bench-train optional timeout 150 "$B/loom-bench" train --device cuda --precision bf16 --steps 5
  run_step bench-ops optional timeout 90 "$B/loom-bench" ops --device cuda
else
  skip_step bench-train optional "the build failed or $B/loom-bench does not exist"
fi

# ---- summary ---------------------------------------------------------------------------
# LOOM_COMMIT names the commit where the tree was copied without its .git folder.
COMMIT="${LOOM_COMMIT:-$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null)}" ||
  COMMIT="unknown (not a git checkout, or no commit yet; set LOOM_COMMIT)"
[ -n "$COMMIT" ] || COMMIT="unknown (not a git checkout, or no commit yet; set LOOM_COMMIT)"
DIRTY=""
if git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null 2>&1 && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then
  DIRTY=" (working tree has uncommitted changes)"
fi
failed=0
{
  echo "loom gpu-check"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host:    $(hostname 2>/dev/null || echo unknown)"
  echo "commit:  $COMMIT$DIRTY"
  echo "device:  $DEVICE"
  echo "arch:    sm_$ARCH"
  echo "nvcc:    $(command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 1 || echo 'not found')"
  echo "logs:    $OUT_DIR"
  echo
  printf '%-22s %-9s %6s %6s  %s\n' step kind exit secs result
  for i in "${!STEP_NAMES[@]}"; do
    rc="${STEP_RCS[$i]}"
    result=ok
    if [ "$rc" != 0 ]; then
      if [ "${STEP_REQUIRED[$i]}" = required ]; then result=FAILED; failed=1; else result="failed (optional)"; fi
    fi
    printf '%-22s %-9s %6s %6s  %s\n' "${STEP_NAMES[$i]}" "${STEP_REQUIRED[$i]}" "$rc" "${STEP_SECONDS[$i]}" \
      "$result"
  done
  echo
  [ -s "$OUT_DIR/compare-losses.log" ] && grep -h '^losses:' "$OUT_DIR/compare-losses.log"
  [ -s "$OUT_DIR/bench-train.log" ] && grep -h -i -E 'tokens/s|mfu' "$OUT_DIR/bench-train.log" | head -n 4
  echo
  if [ "$failed" = 0 ]; then echo "RESULT: all required steps passed"; else echo "RESULT: FAILED"; fi
} >"$SUMMARY"

# The tails of failing logs, so a console-only run still shows why.
for i in "${!STEP_NAMES[@]}"; do
  if [ "${STEP_RCS[$i]}" != 0 ]; then
    echo
    echo "---- last 40 lines of ${STEP_NAMES[$i]}.log ----"
    tail -n 40 "$OUT_DIR/${STEP_NAMES[$i]}.log"
  fi
done
echo
cat "$SUMMARY"
exit "$failed"
