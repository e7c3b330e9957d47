#!/bin/bash
# The reference files of tests/test_ngram_lmplz.py: KenLM's lmplz (tools/kenlm/build_lmplz.sh)
# estimating interpolated modified Kneser-Ney models of order 3 and 5 on the first 1,500
# non-blank lines of the bundled Tiny Shakespeare (public domain). So small a text gives some
# 4-gram count-of-counts for which the discount formula leaves [0, j]: lmplz refuses it
# unless told --discount_fallback (discounts 0.5, 1, 1.5 for that order), which rnnkit
# applies by itself (FALLBACK_DISCOUNTS); order 5 therefore checks the fallback too.
# Run from the repository root with rnnkit installed:
#   LMPLZ=build/kenlm/bin/lmplz tools/kenlm/make_fixtures.sh
set -euo pipefail
LMPLZ=${LMPLZ:-build/kenlm/bin/lmplz}
DIR=tests/data/kenlm
mkdir -p "$DIR"
python3 -c "
from rnnkit.recipes.lm import bundled_corpus
lines = [ln for ln in bundled_corpus().splitlines() if ln.strip()][:1500]
print('\n'.join(lines))" > "$DIR/shakespeare1500.txt"
for n in 3 5; do
  fallback=$([ "$n" = 5 ] && echo --discount_fallback || true)
  "$LMPLZ" -o "$n" -S 256M -T /tmp $fallback --text "$DIR/shakespeare1500.txt" \
      --arpa "$DIR/shakespeare1500.o$n.arpa"
  gzip -9nf "$DIR/shakespeare1500.o$n.arpa"
done
rm "$DIR/shakespeare1500.txt"  # the test rebuilds it from the bundled corpus
"$LMPLZ" --help 2>&1 | head -n 1 || true
