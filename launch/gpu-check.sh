#!/usr/bin/env bash
# launch/gpu-check.sh — build loom with CUDA on a GPU machine and run everything that needs the GPU.
#
# Meant for a bare GPU box (Debian-like, root, maybe no network): it installs
# nothing unless LOOM_GPU_CHECK_INSTALL=1 (then it runs launch/install-deps.sh
# first); it reports missing tools and keeps going past every failure. Steps:
# dependency check, configure (-DLOOM_CUDA=ON), build, nvidia-smi, ctest -L gpu,
# ctest -L unit, and `loom-bench ops --device cuda` when built (optional).
# Logs go to "${OUT:-gpu-check-out}/<step>.log"; summary.txt holds the commit,
# the device and each step's exit status. Exit status: 0 when every required
# step passed, 1 otherwise.
#
# Environment: OUT (log folder), BUILD_DIR (default build), JOBS (default nproc),
# CMAKE_CUDA_ARCHITECTURES (default: the GPU's compute capability, else 90),
# LOOM_GPU_CHECK_INSTALL=1 (try launch/install-deps.sh first), LOOM_COMMIT (the
# commit to report when the tree has no .git).
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
OUT_DIR="${OUT:-gpu-check-out}"
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
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

if [ "$(step_rc configure)" = 0 ]; then
  run_step build required cmake --build "$BUILD_DIR" -j "$JOBS"
  if [ "$(step_rc build)" != 0 ]; then
    # Something failed; try the GPU tests on their own so that step 3 still says something.
    gpu_targets=()
    for src in tests/gpu/test_*.cpp; do
      [ -e "$src" ] && gpu_targets+=(--target "$(basename "$src" .cpp)")
    done
    if [ "${#gpu_targets[@]}" -gt 0 ]; then
      run_step build-gpu-tests optional cmake --build "$BUILD_DIR" -j "$JOBS" "${gpu_targets[@]}"
    fi
  fi
else
  skip_step build required "configure failed"
fi

# ---- 3. tests ------------------------------------------------------------------------
if [ "$(step_rc build)" = 0 ] || [ "$(step_rc build-gpu-tests)" = 0 ]; then
  run_step gpu-tests required ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure --no-tests=error
  # With a GPU visible, a skipped GPU test means the tests did not see it (driver, container).
  if [ "$(step_rc nvidia-smi)" = 0 ]; then
    skipped="$(grep -c -E '\*\*\*Skipped|Skipped ' "$OUT_DIR/gpu-tests.log" || true)"
    run_step gpu-tests-not-skipped required test "${skipped:-0}" -eq 0
    [ "${skipped:-0}" -eq 0 ] || echo "   $skipped GPU test(s) skipped although nvidia-smi sees a GPU"
  fi
else
  skip_step gpu-tests required "build failed"
fi

if [ "$(step_rc build)" = 0 ]; then
  run_step unit-tests required ctest --test-dir "$BUILD_DIR" -L unit --output-on-failure --no-tests=error
else
  skip_step unit-tests required "build failed"
fi

# ---- 4. benchmark (may fail while the CUDA backend is partial) -------------------------
if [ "$(step_rc build)" = 0 ] && [ -x "$BUILD_DIR/launch/loom-bench" ]; then
  run_step bench-ops optional "$BUILD_DIR/launch/loom-bench" ops --device cuda
else
  skip_step bench-ops optional "the build failed or $BUILD_DIR/launch/loom-bench does not exist"
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
