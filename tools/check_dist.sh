#!/usr/bin/env bash
# Build rnnkit's wheel and sdist, check them, and run the main job from the installed wheel.
#
#   tools/check_dist.sh [WORKDIR]      (default: a new temporary folder; needs PyPI access)
#
# 1. `python -m build` in a fresh virtual environment -> WORKDIR/dist/*.whl, *.tar.gz;
# 2. `twine check --strict` on both;
# 3. the package data (Tiny Shakespeare, py.typed) is in the wheel and the sdist;
# 4. the wheel installs in another fresh virtual environment, and from a folder outside the
#    source tree `rnnkit lm train --epochs 1 --max-steps 20` on the bundled corpus, then
#    `rnnkit lm sample` and `rnnkit lm train --config RUN/config.toml` run.
# Exits non-zero at the first failure; prints "check_dist: OK" at the end.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d -t rnnkit-dist.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
python=${PYTHON:-python3}
echo "check_dist: working in $work"

"$python" -m venv "$work/build-env"
"$work/build-env/bin/pip" install -q --upgrade pip build twine
rm -rf "$work/dist"
"$work/build-env/bin/python" -m build --outdir "$work/dist" "$src"
"$work/build-env/bin/twine" check --strict "$work"/dist/*

"$work/build-env/bin/python" - "$work/dist" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path

dist = Path(sys.argv[1])
(wheel,), (sdist,) = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
in_wheel = set(zipfile.ZipFile(wheel).namelist())
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
for name in ("rnnkit/data/tinyshakespeare.txt.gz", "rnnkit/py.typed"):
    assert name in in_wheel, f"{wheel.name} lacks {name}"
    assert f"src/{name}" in in_sdist, f"{sdist.name} lacks src/{name}"
print(f"check_dist: {wheel.name} ({len(in_wheel)} files) and {sdist.name} hold the package data")
PY

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/*.whl
cd "$work"  # outside the source tree: the installed package runs, not src/
rm -rf run run-again
"$work/venv/bin/rnnkit" lm train --epochs 1 --max-steps 20 --out run --no-progress
"$work/venv/bin/rnnkit" lm sample run --length 200 --seed 1
"$work/venv/bin/rnnkit" lm train --config run/config.toml --max-steps 2 --out run-again \
    --no-progress
"$work/venv/bin/python" -c "import rnnkit, pathlib; print('check_dist: rnnkit', rnnkit.__version__, 'from', pathlib.Path(rnnkit.__file__).parent)"
echo "check_dist: OK"
