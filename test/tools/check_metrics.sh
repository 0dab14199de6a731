#!/usr/bin/env bash
# Checks that cpnd's /metrics is valid Prometheus text exposition with no lint
# problems: starts `cpnd --dev`, makes a few requests (public, authenticated,
# 401, 404) so the histograms have samples, and runs `promtool check metrics`.
# Exit 77 (skipped) when promtool is missing (Debian package `prometheus`).
set -euo pipefail

if ! command -v promtool >/dev/null; then
  echo "SKIP: promtool not found (apt-get install prometheus)" >&2
  exit 77
fi

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
token=$(cat "$tmp/data/admin.token")

c() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
echo "GET /livez -> $(c "$url/livez")"
echo "GET /readyz -> $(c "$url/readyz")"
echo "GET /v1/nodes/gz-gpu-1 -> $(c -H "Authorization: Bearer $token" "$url/v1/nodes/gz-gpu-1")"
echo "GET /v1/nodes/gz-gpu-1 (no token) -> $(c "$url/v1/nodes/gz-gpu-1")"
echo "GET /v1/nodes/no-such-node -> $(c -H "Authorization: Bearer $token" "$url/v1/nodes/no-such-node")"
echo "GET /no/such/route -> $(c "$url/no/such/route")"

curl -sf --max-time 10 "$url/metrics" >"$tmp/metrics.txt"
echo "fetched /metrics: $(wc -l <"$tmp/metrics.txt") lines"

rc=0
out=$(promtool check metrics <"$tmp/metrics.txt" 2>&1) || rc=$?
echo "promtool check metrics: exit $rc"
[ -n "$out" ] && printf '%s\n' "$out"
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then echo "FAIL: promtool reported problems" >&2; exit 1; fi
echo "OK: no problems"
