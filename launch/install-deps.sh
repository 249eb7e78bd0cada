#!/usr/bin/env bash
# launch/install-deps.sh — installs the Debian packages loom needs, only those missing.
# Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin             # MPI ranks
  libhdf5-openmpi-dev                    # HDF5 with MPI: datasets, checkpoints
  libboost-program-options-dev           # loom-train / loom-bench options
  libgtest-dev                           # tests
  libopenblas-openmp-dev                 # CPU GEMM (OpenMP build: one thread pool with our loops)
  libdnnl-dev                            # oneDNN: the CPU backend's bf16 GEMMs (AMX / AVX-512 BF16; OpenMP build)
  libfmt-dev nlohmann-json3-dev
  zlib1g-dev libzstd-dev                 # gzip / zstd corpora (loom-data, io/corpus)
  zstd gzip                              # tests: make the compressed corpora
  libpcre2-dev                           # PCRE2: tokenizer.json pre-tokeniser regexes (io/hf_tokenizer)
  libsentencepiece-dev                   # SentencePiece: .model tokenizers, loom-data train-tokenizer
  python3 python3-pip                    # tests: Python 'tokenizers', 'sentencepiece' references (launch/test.sh installs them)
  bible-kjv                              # the quickstart corpus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
