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

source "$(dirname "${BASH_SOURCE[0]}")/start_cpnd.sh"
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
