#!/usr/bin/env bash
# Checks examples/systemd/cpnd.service with `systemd-analyze verify` (unknown
# or misspelt directives, bad values, missing executables). The unit is copied
# with ExecStart pointing at the built binary, since /usr/local/bin/cpnd is not
# installed here. Fails if verify exits non-zero or prints anything at all;
# the same for the unit with each drop-in (examples/systemd/*.conf) applied.
#
# Then prints the exposure `systemd-analyze security --offline=true` gives the
# unit, with the lines that still cost exposure, and fails if it rises above
# MAX_EXPOSURE (a later edit that weakens the unit); the unit with each
# drop-in is measured too, for information (docs/systemd.md has the figures).
# Exit 77 (skipped) when systemd-analyze is missing.
set -euo pipefail

MAX_EXPOSURE=1.1   # what examples/systemd/cpnd.service reaches (systemd 252)

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

verify() {  # UNIT LABEL
  local rc=0 out
  out=$(systemd-analyze verify "$1" 2>&1) || rc=$?
  echo "systemd-analyze verify ($2): exit $rc"
  [ -n "$out" ] && printf '%s\n' "$out"
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then echo "FAIL: systemd-analyze verify reported problems ($2)" >&2; exit 1; fi
  return 0
}
verify "$unit" "cpnd.service"

# The unit with a drop-in: systemd-analyze reads UNIT.d/*.conf next to the unit.
dropins=()
for conf in "$root"/examples/systemd/*.conf; do
  [ -e "$conf" ] || continue
  name=$(basename "$conf" .conf)
  mkdir -p "$tmp/$name/cpnd.service.d"
  cp "$unit" "$tmp/$name/cpnd.service"
  cp "$conf" "$tmp/$name/cpnd.service.d/"
  verify "$tmp/$name/cpnd.service" "cpnd.service + $name.conf"
  dropins+=("$name")
done
echo "OK: no problems"

help=$(systemd-analyze --help 2>/dev/null || true)
if [[ "$help" != *--offline* ]]; then
  echo "NOTE: this systemd-analyze has no 'security --offline' (systemd 250 or later has); exposure not measured"
  exit 0
fi

# exposure UNIT [quiet]: sets $figure; prints the lines that cost exposure unless quiet.
exposure() {
  local rc=0 out
  out=$(SYSTEMD_COLORS=0 LC_ALL=C systemd-analyze security --no-pager --offline=true "$1") || rc=$?
  figure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p')
  if [ "$rc" -ne 0 ] || [ -z "$figure" ]; then
    printf '%s\n' "$out"
    echo "FAIL: systemd-analyze security --offline=true gave no exposure figure (exit $rc)" >&2
    exit 1
  fi
  [ "${2:-}" = quiet ] || printf '%s\n' "$out" | awk '$NF ~ /^[0-9]+\.[0-9]+$/ && $NF + 0 > 0 { print "  " $0 }'
}

echo "systemd-analyze security --offline=true cpnd.service:"
exposure "$unit"
base=$figure
echo "overall exposure: $base (at most $MAX_EXPOSURE)"
for name in "${dropins[@]}"; do
  exposure "$tmp/$name/cpnd.service" quiet
  echo "overall exposure with $name.conf: $figure (informational)"
done
if awk -v got="$base" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(got + 0 > max + 0) }'; then
  echo "FAIL: the unit's exposure rose to $base, above $MAX_EXPOSURE: a change weakened examples/systemd/cpnd.service" >&2
  exit 1
fi
echo "OK: exposure $base"
