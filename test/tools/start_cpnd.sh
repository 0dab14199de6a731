# Sourced by the tool checks: starts `cpnd --dev` on a free port with a
# temporary data directory and sets $url, $tmp and $pid; stops it on exit.
# CPND names the binary (default: build/cpnd of this repository).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
CPND=${CPND:-$root/build/cpnd}
[ -x "$CPND" ] || { echo "FAIL: cpnd binary not found at $CPND (set CPND)" >&2; exit 2; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

"$CPND" --dev --listen 127.0.0.1:0 --data "$tmp/data" --log-level warning >"$tmp/cpnd.log" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
  url=$(cat "$tmp/data/cpnd.addr" 2>/dev/null || true)
  [[ $url =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && break
  url=
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$url" ]; then echo "FAIL: cpnd did not start:" >&2; cat "$tmp/cpnd.log" >&2; exit 1; fi
