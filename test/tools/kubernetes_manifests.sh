#!/usr/bin/env bash
# Validates what GET /v1/deployments/{id}/manifests renders with npm's
# kubernetes-models (the Kubernetes OpenAPI schemas) plus the API server's
# own rules on names, labels, selectors and extended resources. Covers two
# confirmed orders and a submitted template with NPUs (Ascend 910 and 310),
# an FPGA, arm64 CPUs and fractional requests, at centre and edge sites.
# kubernetes-models is installed with npm into a cache outside the
# repository (${CPN_NPM_CACHE:-$HOME/.cache/cpnd-npm}/kubernetes-models); exit 77 (skipped)
# when node/npm are missing or the install fails.
set -euo pipefail

KM_VERSION=${KM_VERSION:-4.5.1}  # 5.x needs Node.js 22; bookworm has 18
# One prefix per tool: two `npm install`s into one prefix, run in parallel by
# ctest, rewrite each other's package.json and node_modules.
cache=${CPN_NPM_CACHE:-${HOME:-/root}/.cache/cpnd-npm}/kubernetes-models
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are needed to run kubernetes-models" >&2
  exit 77
fi
have=$(node -p "try { require('$cache/node_modules/kubernetes-models/package.json').version } catch (e) { '' }")
if [ "$have" != "$KM_VERSION" ]; then
  echo "installing kubernetes-models@$KM_VERSION into $cache"
  mkdir -p "$cache"
  if ! timeout 240 npm install --prefix "$cache" --no-audit --no-fund --fetch-retries=1 --loglevel=error \
       "kubernetes-models@$KM_VERSION" >&2; then
    echo "SKIP: could not install kubernetes-models@$KM_VERSION (no network?)" >&2
    exit 77
  fi
fi

export CPND_RECONCILE_MS=0  # render only: nothing is started
source "$here/start_cpnd.sh"
token=$(cat "$tmp/data/admin.token")
api() { curl -sf --max-time 20 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

deployments=()
for order in '{"offering": "city-video-detection", "parameters": {"streams": 64, "location": "cams-sz-futian"}}' \
             '{"offering": "face-gate-standard", "parameters": {"streams": 40, "location": "Dongguan"}}'; do
  id=$(api -X POST "$url/v1/orders" -d "$order" | node -p 'JSON.parse(require("fs").readFileSync(0)).id')
  deployments+=("$(api -X POST "$url/v1/orders/$id/confirm" -d '{"solution": "s1"}' |
                   node -p 'JSON.parse(require("fs").readFileSync(0)).deployment')")
done
placement() {  # site node arch accelerator instances cpu memory devices
  local acc=""; [ -n "$4" ] && acc="\"accelerator\": \"$4\","
  printf '{"site": "%s", "node": "%s", "arch": "%s", %s "instances": %s, "requests": {"cpu": %s, "memory": %s, "accelerators": %s}}' \
    "$1" "$2" "$3" "$acc" "$5" "$6" "$7" "$8"
}
cat >"$tmp/template.json" <<JSON
{"apiVersion": "cpn/v1", "kind": "DeploymentTemplate", "metadata": {"name": "npu-fpga-mix"},
 "spec": {"components": [
  {"name": "inspect", "tier": "edge", "image": "defect-inspect:1.2",
   "placements": [$(placement edge-dg-1 dg-fpga-1 x86_64 xilinx-alveo-u50 1 4 8 1),
                  $(placement edge-sz-1 sz-arm-1 aarch64 ascend-310 2 2.5 6.5 1)]},
  {"name": "train-serve", "tier": "center", "image": "reid-serve:4.0",
   "model": {"name": "reid-city", "version": "12"},
   "placements": [$(placement center-gz gz-npu-1 aarch64 ascend-910 1 16 64 2),
                  $(placement center-gz gz-arm-1 aarch64 "" 3 0.25 0.5 0)]}]}}
JSON
deployments+=("$(api -X POST "$url/v1/deployments" --data-binary "@$tmp/template.json" |
                 node -p 'JSON.parse(require("fs").readFileSync(0)).id')")

files=()
for d in "${deployments[@]}"; do
  api "$url/v1/deployments/$d/manifests" >"$tmp/$d.manifests.json"
  files+=("$tmp/$d.manifests.json")
done
NODE_PATH="$cache/node_modules" node "$here/validate_manifests.js" "${files[@]}"
