#!/usr/bin/env bash
# launch/quickstart.sh — the README's first command. Installs what is missing,
# builds loom, and shows what works today. It grows with each feature: today
# it runs the backend benchmark (every op at GPT-2-small shapes, our matmul
# next to raw OpenBLAS sgemm).
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA="${LOOM_CUDA:-AUTO}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target loom-bench

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
"$BUILD_DIR/launch/loom-bench" ops
