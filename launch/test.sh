#!/usr/bin/env bash
# launch/test.sh — the README's test command: install what is missing, configure,
# build, and run every CPU test through ctest. Extra arguments go to ctest
# (e.g. `launch/test.sh -L unit` or `-R layernorm`).
#   BUILD_DIR (default build)  LOOM_CUDA (default AUTO)  JOBS (default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/install-deps.sh
# Python reference packages the tests compare against (tests/unit/test_hf_tokenizer:
# Hugging Face `tokenizers`; tests/unit/test_sentencepiece: `sentencepiece`;
# tests/unit/test_hf_gpt2: `safetensors` and `numpy`; tests/unit/test_cli_checkpoint: `h5py`,
# reading a checkpoint without loom; tests/unit/test_cli_scaling: `matplotlib` and
# `tensorboardX`, launch/report.py's and launch/scaling.py's plots and event files); installed only when not
# importable. Debian marks its Python externally managed, hence the
# --break-system-packages retry.
for pkg in tokenizers sentencepiece safetensors numpy h5py matplotlib tensorboardX; do
  if ! python3 -c "import $pkg" 2>/dev/null; then
    python3 -m pip install --quiet "$pkg" 2>/dev/null ||
      python3 -m pip install --quiet --break-system-packages "$pkg"
  fi
done

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA="${LOOM_CUDA:-AUTO}"
cmake --build "$BUILD_DIR" -j "$JOBS"

# Every rank of a multi-rank test gets its share of the cores (set per test in
# tests/CMakeLists.txt); ctest runs one test at a time so they do not compete.
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600 "$@"
