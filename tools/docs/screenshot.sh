#!/usr/bin/env bash
# Build the site, serve it on a local port, and screenshot pages in headless Chromium.
#
#   tools/docs/screenshot.sh [OUTDIR] [PAGE ...]
#
# OUTDIR defaults to build/screenshots; PAGEs are paths under the site (default: the home page
# and the RNN/BPTT tutorial). Needs Debian's chromium package (apt-get install -y chromium) and
# the docs extra (pip install -e '.[docs]'). Each page gives OUTDIR/NAME.png, 1280 pixels wide,
# as tall as --height (default 2400) allows.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/screenshots}
shift || true
pages=("$@")
[ ${#pages[@]} -gt 0 ] || pages=("" "tutorials/rnn-bptt/")
height=${HEIGHT:-2400}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "screenshot.sh: no chromium on PATH (Debian: apt-get install -y chromium)" >&2
  exit 2
fi

mkdocs build --strict
mkdir -p "$out"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory build/site > /dev/null 2>&1 &
server=$!
trap 'kill "$server" 2> /dev/null || true' EXIT
for _ in $(seq 50); do  # wait for the server to answer
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2> /dev/null && break
  sleep 0.1
done

for page in "${pages[@]}"; do
  name=$(echo "${page:-index}" | tr '/' '-' | sed 's/-$//')
  "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-default-apps --disable-extensions --disable-sync \
    --no-first-run --hide-scrollbars --user-data-dir="$(mktemp -d)" \
    --window-size=1280,"$height" --screenshot="$out/$name.png" \
    "http://127.0.0.1:$port/$page" 2> /dev/null
  echo "wrote $out/$name.png"
done
