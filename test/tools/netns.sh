#!/usr/bin/env bash
# Runs the linux network driver's test (real namespaces, routes, tc and a
# TCP transfer). It needs root and network namespaces: where they cannot be
# created this says so and exits 77, which ctest shows as skipped, never as
# passed.
set -u
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: the linux network driver test needs root"; exit 77; fi
for tool in ip tc python3; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool is not installed"; exit 77; }
done
probe="cpn-probe-$$"
if ! ip netns add "$probe" 2>/dev/null; then echo "SKIPPED: cannot create network namespaces here"; exit 77; fi
ip netns del "$probe"
exec "$CPN_TESTS" "[.netns]"
