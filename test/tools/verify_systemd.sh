#!/usr/bin/env bash
# Checks examples/systemd/cpnd.service with `systemd-analyze verify` (unknown
# or misspelt directives, bad values, missing executables). The unit is copied
# with ExecStart pointing at the built binary, since /usr/local/bin/cpnd is not
# installed here. Fails if verify exits non-zero or prints anything at all.
# Exit 77 (skipped) when systemd-analyze is missing.
set -euo pipefail

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not found (apt-get install systemd)" >&2
  exit 77
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
CPND=${CPND:-$root/build/cpnd}
[ -x "$CPND" ] || { echo "FAIL: cpnd binary not found at $CPND (set CPND)" >&2; exit 2; }
CPND=$(cd "$(dirname "$CPND")" && pwd)/$(basename "$CPND")   # absolute

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' INT TERM

unit=$tmp/cpnd.service
CPND=$CPND awk '/^ExecStart=\/usr\/local\/bin\/cpnd/ { sub(/^ExecStart=\/usr\/local\/bin\/cpnd/, "ExecStart=\"" ENVIRON["CPND"] "\"") } { print }' \
  "$root/examples/systemd/cpnd.service" >"$unit"
grep -qF "ExecStart=\"$CPND\"" "$unit" || { echo "FAIL: no ExecStart=/usr/local/bin/cpnd line to rewrite" >&2; exit 1; }
grep '^ExecStart=' "$unit"

rc=0
out=$(systemd-analyze verify "$unit" 2>&1) || rc=$?
echo "systemd-analyze verify: exit $rc"
[ -n "$out" ] && printf '%s\n' "$out"
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then echo "FAIL: systemd-analyze verify reported problems" >&2; exit 1; fi
echo "OK: no problems"
