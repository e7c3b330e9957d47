#!/bin/bash
# Build KenLM's estimator, lmplz, from the kenlm source distribution on PyPI (its lm/builder
# holds lmplz's sources): the reference that tests/test_ngram_lmplz.py's files come from.
# Needs Debian's cmake and Boost; writes the binary to $OUT (default: build/kenlm/bin/lmplz).
set -euo pipefail
OUT=${OUT:-build/kenlm}
mkdir -p "$OUT" && cd "$OUT"
if ! command -v cmake >/dev/null; then
  apt-get install -y cmake libboost-program-options-dev libboost-system-dev \
      libboost-thread-dev libboost-test-dev zlib1g-dev
fi
python3 -m pip download --no-deps --no-binary :all: --no-build-isolation kenlm==0.3.0 -d .
sha256sum kenlm-0.3.0.tar.gz
tar xzf kenlm-0.3.0.tar.gz
cmake -S kenlm-0.3.0 -B kenlm-0.3.0/build -DCMAKE_BUILD_TYPE=Release -DENABLE_INTERPOLATE=OFF
make -C kenlm-0.3.0/build -j"$(nproc)" lmplz
mkdir -p bin && cp kenlm-0.3.0/build/bin/lmplz bin/
echo "lmplz: $(pwd)/bin/lmplz"
