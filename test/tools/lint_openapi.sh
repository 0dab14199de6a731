#!/usr/bin/env bash
# Lints cpnd's /openapi.json (OpenAPI 3.1) with @redocly/cli's default
# "recommended" ruleset: starts `cpnd --dev`, fetches the document and runs
# `redocly lint`. Fails on any lint error. redocly is installed with npm into a
# cache outside the repository (${CPN_NPM_CACHE:-$HOME/.cache/cpnd-npm}/redocly).
# Exit 77 (skipped) when node/npm are missing or the install fails (no network).
set -euo pipefail

REDOCLY_VERSION=${REDOCLY_VERSION:-1.34.20}   # 1.34.21's respect-core dependency is not published
# One prefix per tool: two `npm install`s into one prefix, run in parallel by
# ctest, rewrite each other's package.json and node_modules.
cache=${CPN_NPM_CACHE:-${HOME:-/root}/.cache/cpnd-npm}/redocly
redocly=$cache/node_modules/.bin/redocly

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are needed to run @redocly/cli" >&2
  exit 77
fi
if [ "$("$redocly" --version 2>/dev/null || true)" != "$REDOCLY_VERSION" ]; then
  echo "installing @redocly/cli@$REDOCLY_VERSION into $cache"
  mkdir -p "$cache"
  if ! timeout 240 npm install --prefix "$cache" --no-audit --no-fund --fetch-retries=1 --loglevel=error \
       "@redocly/cli@$REDOCLY_VERSION" >&2; then
    echo "SKIP: could not install @redocly/cli@$REDOCLY_VERSION (no network?)" >&2
    exit 77
  fi
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

source "$(dirname "${BASH_SOURCE[0]}")/start_cpnd.sh"

curl -sf --max-time 10 "$url/openapi.json" >"$tmp/openapi.json"
echo "fetched /openapi.json: $(wc -c <"$tmp/openapi.json") bytes"
# Indent it so that redocly's line:column positions mean something.
node -e 'const fs = require("fs"), f = process.argv[1];
  fs.writeFileSync(f, JSON.stringify(JSON.parse(fs.readFileSync(f, "utf8")), null, 2) + "\n");' "$tmp/openapi.json"

# redocly exits 1 when there are errors; warnings alone exit 0.
rc=0
(cd "$tmp" && "$redocly" lint --format=stylish openapi.json) || rc=$?
if [ "$rc" -ne 0 ]; then echo "FAIL: redocly lint exit $rc" >&2; exit 1; fi
echo "OK: no lint errors"
