#!/usr/bin/env bash
# The demo scenario, end to end against a real cpnd --dev: the compute
# power network of the Pearl River Delta is loaded, tokens are handed out,
# a designer ships a multi-architecture image with its config file, cpnd
# picks the right variant per node, a customer orders a service and gets
# priced solutions, confirms one (its resources are held), watches it run
# on the sim twin and completes it,
# an operator takes a node out of service, and everything shows up in
# capacity, events and the topology.
# Uses build/cpnd and build/cpnctl (BIN=dir to use others).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build}
DATA=$(mktemp -d /tmp/cpnd-demo-XXXXXX)
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start cpnd --dev (embedded defaults: SQLite in $DATA, sim drivers, the demo topology)"
CPND_SIM_START_DELAY_MS=${CPND_SIM_START_DELAY_MS:-1000} \
  "$BIN/cpnd" --dev --data "$DATA" --listen 127.0.0.1:0 --log-level notice > "$DATA/stdout" 2> "$DATA/cpnd.log" &
PID=$!
for _ in $(seq 100); do [ -s "$DATA/cpnd.addr" ] && break; sleep 0.1; done
export CPN_SERVER=$(cat "$DATA/cpnd.addr")
ADMIN=$(cat "$DATA/admin.token")
cat "$DATA/stdout"
ctl() { "$BIN/cpnctl" "$@"; }
api() { curl -fsS -H "Authorization: Bearer $TOKEN" "$@"; }
ctl health

step "tokens: one per role (admin creates them; secrets are shown once)"
export CPN_TOKEN=$ADMIN
OPERATOR=$(ctl token --name ops --role operator --tenant cpn-ops | jq -r .secret)
DESIGNER=$(ctl token --name studio --role designer --tenant vision-lab | jq -r .secret)
CUSTOMER=$(ctl token --name gate-co --role customer --tenant gate-co | jq -r .secret)
ctl get tokens | jq -r '.items[] | "  \(.id)  role=\(.role)  tenant=\(.tenant)"'
TOKEN=$CUSTOMER
printf '  a customer reading the inventory gets: %s\n' \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $CUSTOMER" "$CPN_SERVER/v1/nodes")"


step "inventory: sites by tier, nodes by architecture and accelerator"
export CPN_TOKEN=$OPERATOR
TOKEN=$OPERATOR
ctl get sites | jq -r '.items[] | "  \(.tier)\t\(.id)\t\(.city)"' | sort
ctl get nodes | jq -r '[.items[] | "\(.arch)/\(.accelerators[0].model // "cpu")"] | group_by(.) | .[] | "  \(length) x \(.[0])"'

step "compute measurement: edge-sz-1's capacity by architecture and accelerator"
ctl capacity edge-sz-1 | jq '{cpu: .total.cpu, core_equivalents: .total.cpu_core_equivalents, tops_int8: .total.tops_int8, by_accelerator: (.by_accelerator | map_values(.accelerators))}'

step "designer: upload a config file (streamed, content-addressed, sha256 checked)"
export CPN_TOKEN=$DESIGNER
CONF="$DATA/face-detect.yaml"
printf 'model: face-det\nthreshold: 0.62\nmax_faces: 16\n' > "$CONF"
ctl upload "$CONF" --sha256 "$(sha256sum "$CONF" | cut -d' ' -f1)" | jq -c '{name, size, sha256}'

step "designer: register a multi-architecture image (x86_64 CPU, CUDA, arm64 CANN)"
digest() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
cat > "$DATA/image.json" <<JSON
{"name": "face-detect", "version": "2.3.0", "labels": {"service": "face-verification"},
 "variants": [
  {"platform": "linux/amd64", "accelerator": "none", "digest": "$(digest cpu)", "size": 183500800,
   "command": ["face-detect", "--device=cpu"], "files": ["face-detect.yaml"]},
  {"platform": "linux/amd64", "accelerator": "cuda", "digest": "$(digest cuda)", "size": 2147483648,
   "command": ["face-detect", "--device=cuda"], "files": ["face-detect.yaml"]},
  {"platform": "linux/arm64", "accelerator": "cann", "digest": "$(digest cann)", "size": 1288490188,
   "command": ["face-detect", "--device=ascend"], "files": ["face-detect.yaml"]}]}
JSON
ctl apply -f "$DATA/image.json" images | jq -c '{id: .metadata.id, variants: [.variants[] | "\(.platform)+\(.accelerator)"]}'

step "cross-architecture: which variant runs where"
for node in sz-t4-1 sz-arm-1 sz-arm-2 gz-cpu-1; do
  printf '  %-10s ' "$node"
  ctl resolve face-detect/2.3.0 "$node" 2>&1 | jq -r 'if .variant then "-> \(.variant.platform) \(.variant.accelerator)" else "no variant: \(.detail)" end' || true
done

step "blueprints: the four services --dev published, and what an order would need"
export CPN_TOKEN=$DESIGNER
TOKEN=$DESIGNER
api "$CPN_SERVER/v1/blueprints" | jq -r '.items[] | "  \(.metadata.name)@\(.metadata.version) [\(.status.state)] \(.metadata.title)"'
printf '  face-verification for 200 gates at 4k, 25 fps:\n'
api -X POST -H 'Content-Type: application/json' \
  -d '{"parameters": {"streams": 200, "resolution": "4k", "fps": 25}}' \
  "$CPN_SERVER/v1/blueprints/face-verification/versions/1.0.0/evaluate" |
  jq -r '(.derived | to_entries[] | "    derived \(.key) = \(.value.value)   (\(.value.expression))"),
         (.components[] | "    \(.tier)/\(.name): demand \(.demand.value) -> instances per profile \([.profiles[] | "\(.target.accelerator // .target.arch):\(.instances)"] | join(", "))")'

step "designer: a new version of a blueprint, and the diff between versions"
api "$CPN_SERVER/v1/blueprints/video-detection/versions/1.0.0" |
  jq '.metadata.version = "1.1.0" | .derived.load = "streams * fps / 10 * pixels * model_cost * 1.2" | del(.status)' > "$DATA/vd-1.1.0.json"
ctl apply -f "$DATA/vd-1.1.0.json" blueprints | jq -c '{version: .metadata.version, state: .status.state}'
api "$CPN_SERVER/v1/blueprints/video-detection/diff?from=1.0.0&to=1.1.0" | jq -c '.changes[]'
printf '  a published version is immutable: PUT answers %s\n' "$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
  -H "Authorization: Bearer $DESIGNER" -H 'Content-Type: application/json' --data-binary @"$DATA/vd-1.1.0.json" \
  "$CPN_SERVER/v1/blueprints/video-detection/versions/1.0.0")"

step "catalogue: what a customer sees, and an operator suspending an offering"
TOKEN=$CUSTOMER
api "$CPN_SERVER/v1/offerings" | jq -r '.items[] | "  \(.name): \(.title) — billing \(.billing.modes | join("+")) in \(.billing.currency)"'
TOKEN=$OPERATOR
api -X POST "$CPN_SERVER/v1/offerings/city-video-detection/suspend" | jq -c '{offering: .name, state: .status.state}'
TOKEN=$CUSTOMER
printf '  the customer now sees %s offering(s)\n' "$(api "$CPN_SERVER/v1/offerings" | jq '.items | length')"
TOKEN=$OPERATOR
api -X POST "$CPN_SERVER/v1/offerings/city-video-detection/publish" | jq -c '{offering: .name, state: .status.state}'

step "customer: order city video detection for 64 cameras in Futian; cpnd answers with priced solutions"
export CPN_TOKEN=$CUSTOMER
ctl order city-video-detection -p streams=64 -p location=cams-sz-futian --duration 720h > "$DATA/order.json"
ORDER=$(jq -r .id "$DATA/order.json")
jq -r '"  order \(.id): \(.state), expires \(.expires_at)",
       "  demand: " + ([.demand.components[] | "\(.name)=\(.demand.value)"] | join(", ")) + "  (training scheduled separately: \(.demand.scheduled_separately | join(", ")))",
       (.solutions[] | "  \(.id) [\(.labels | join(", "))]: \(.estimate.latency_ms) ms end to end, price \(.quote.per_hour)/h (" + ([.quote.breakdown[] | "\(.item) \(.per_hour)"] | join(", ")) + "), \(.quote.total) \(.quote.currency) for \(.quote.duration_hours) h",
        (.placements[] | "      \(.component) on \(.site)/\(.node) \(.target.arch)+\(.target.accelerator // "cpu") x\(.instances)"))' "$DATA/order.json"
printf '  (what it costs the operator, which the customer does not see: %s per hour)\n' \
  "$(TOKEN=$OPERATOR api "$CPN_SERVER/v1/orders/$ORDER" | jq -r '[.solutions[].estimate.cost_per_hour | . * 100 | round / 100] | join(", ")')"

step "customer: confirm the cheapest; it becomes a deployment whose template holds its nodes and links"
ctl confirm "$ORDER" s1 > "$DATA/confirmed.json"
jq -r '"  \(.id): \(.state) -> deployment \(.deployment)"' "$DATA/confirmed.json"
DEPLOYMENT=$(jq -r .deployment "$DATA/confirmed.json")
ctl get deployments "$DEPLOYMENT" | jq -r '"  deployment \(.id): \(.state), holds " + ([.reservation.nodes | to_entries[] | "\(.key) \(.value.cpu) cpu"] | join(", ")) + "; " + ([.reservation.links | to_entries[] | "\(.key) \(.value) Mbps"] | join(", "))'
printf '  its template (YAML, excerpt):\n'
TOKEN=$CUSTOMER
api -H 'Accept: application/yaml' "$CPN_SERVER/v1/deployments/$DEPLOYMENT/template" > "$DATA/template.yaml"
awk '/^  components:/ {on=1} on && n++ < 24' "$DATA/template.yaml" | sed 's/^/    /'
export CPN_TOKEN=$OPERATOR
TOKEN=$OPERATOR
ctl capacity edge-sz-1 | jq -c '{edge_sz_1_cpu: .total.cpu}'

step "customer: an order that fits nowhere explains itself and says what would fit"
export CPN_TOKEN=$CUSTOMER
ctl order city-video-detection -p streams=2000 -p resolution=4k -p location=cams-sz-futian |
  jq -r '"  \(.solutions | length) solutions; blocked at \(.infeasible.blocking_component)",
         (.infeasible.components[] | select(.component == .component) | "    \(.component): \(.feasible_nodes)/\(.nodes) nodes pass the filters, free capacity \(.free_capacity) for a demand of \(.demand)"),
         (.infeasible.suggestions[] | "  suggestion: \(.parameter) -> \(.value // .values): \(.detail)")'

step "operator: a what-if on face verification in Dongguan, nothing stored"
export CPN_TOKEN=$OPERATOR
ctl solve face-gate-standard -p location=Dongguan -p streams=40 |
  jq -r '.solutions[] | "  \(.id) [\(.labels | join(", "))]: \(.estimate.latency_ms) ms, \(.quote.per_hour) \(.quote.currency)/h (\(.quote.billing_mode))"'

step "orchestrator: the deployment is provisioned on the sim twin; every instance runs on its node"
export CPN_TOKEN=$CUSTOMER
for _ in $(seq 100); do
  [ "$(ctl get deployments "$DEPLOYMENT" | jq -r .state)" = running ] && break
  sleep 0.1
done
ctl get deployments "$DEPLOYMENT" | jq -c '{deployment: .id, state, progress: .progress.components}'
api "$CPN_SERVER/v1/deployments/$DEPLOYMENT/instances" |
  jq -r '.items[] | "  \(.id): \(.state) on \(.site)/\(.node) \(.variant.platform) \(.variant.accelerator) (driver \(.driver))"'

step "rehearsal on the twin: a load surge of 3 on the order, then a degraded uplink"
export CPN_TOKEN=$CUSTOMER
show_metrics() {
  ctl metrics "$DEPLOYMENT" | jq -r '(.components | to_entries[] |
      "  \(.key): offered \(.value.offered), utilisation \(.value.utilization), \(.value.latency_ms) ms\(if .value.saturated then ", SATURATED" else "" end)"),
    "  end to end \(.end_to_end.latency_ms) ms against \(.end_to_end.slo_ms) ms: slo_met=\(.end_to_end.slo_met)"'
}
show_metrics
export CPN_TOKEN=$OPERATOR
SURGE=$(ctl fault load-surge "$ORDER" --factor 3 | jq -r .id)
printf '  surge %s injected:\n' "$SURGE"
CPN_TOKEN=$CUSTOMER show_metrics
UPLINK=$(CPN_TOKEN=$CUSTOMER ctl metrics "$DEPLOYMENT" | jq -r '[.network[] | select(.links | length > 0)][-1].links[0]')
DEGRADED=$(ctl fault link-degraded "$UPLINK" --bandwidth-mbps 5 --extra-latency-ms 40 | jq -r .id)
printf '  link %s degraded to 5 Mbit/s, +40 ms:\n' "$UPLINK"
CPN_TOKEN=$CUSTOMER ctl metrics "$DEPLOYMENT" |
  jq -r '.network[] | select(.degraded_by) | "  \(.from) -> \(.to): \(.delivered_mbps) of \(.offered_mbps) Mbit/s delivered, \(.latency_ms) ms"'
ctl clear "$SURGE" >/dev/null; ctl clear "$DEGRADED" >/dev/null
echo "  faults cleared"

step "operator: scale the ingest component out to 3 instances, then back to 1"
ctl scale "$DEPLOYMENT" ingest 3 | jq -c '{state, scaling}'
for _ in $(seq 100); do
  [ "$(ctl get deployments "$DEPLOYMENT" | jq -r .state)" = running ] && break
  sleep 0.1
done
api "$CPN_SERVER/v1/deployments/$DEPLOYMENT/instances" |
  jq -r '.items[] | select(.component == "ingest") | "  \(.id): \(.state) on \(.node)"'
ctl scale "$DEPLOYMENT" ingest 1 | jq -c '{state, scaling}'
for _ in $(seq 100); do
  [ "$(ctl get deployments "$DEPLOYMENT" | jq -r .state)" = running ] && break
  sleep 0.1
done
ctl get deployments "$DEPLOYMENT" | jq -c '{state, ingest: .progress.components.ingest}'

step "the same deployment as Kubernetes objects (what the kubernetes driver applies on a cluster site)"
ctl manifests "$DEPLOYMENT" | jq -r '.items[] | "  \(.kind) \(.metadata.name)\(if .kind == "Deployment" then
    " replicas=\(.spec.replicas) arch=\(.spec.template.spec.nodeSelector["kubernetes.io/arch"]) limits=\(.spec.template.spec.containers[0].resources.limits | tojson)" else "" end)"'

step "customer: complete the order; instances drain and stop, everything it held is free again"
export CPN_TOKEN=$CUSTOMER
ctl complete "$ORDER" | jq -c '{order: .id, state}'
for _ in $(seq 100); do
  [ "$(ctl get orders "$ORDER" | jq -r .state)" = completed ] && break
  sleep 0.1
done
ctl get orders "$ORDER" | jq -c '{order: .id, history: [.history[].state]}'
export CPN_TOKEN=$OPERATOR
ctl capacity edge-sz-1 | jq -c '{edge_sz_1_cpu: .total.cpu}'

step "operator: cordon a GPU node; free capacity follows"
export CPN_TOKEN=$OPERATOR
ctl capacity edge-sz-1 | jq -c '{free_gpus_before: .by_accelerator["nvidia-t4"].accelerators.free}'
ctl cordon sz-t4-1 | jq -c '{node: .id, state}'
ctl capacity edge-sz-1 | jq -c '{free_gpus_after: .by_accelerator["nvidia-t4"].accelerators.free}'
ctl uncordon sz-t4-1 | jq -c '{node: .id, state}'

step "bad input changes nothing: a topology with five mistakes"
curl -s -H "Authorization: Bearer $OPERATOR" -H 'Content-Type: application/yaml' \
  --data-binary @examples/topologies/invalid.yaml "$CPN_SERVER/v1/topology" |
  jq -r '"  \(.status) \(.title): \(.detail)", (.errors[] | "    \(.pointer): \(.detail)")'

step "the event log (what a watch streams as it commits)"
ctl get events | jq -r '.items[-6:][] | "  #\(.seq) \(.type) \(.kind)/\(.id)"'

step "export the topology and import it back: nothing changes"
api -H 'Accept: application/yaml' "$CPN_SERVER/v1/topology" > "$DATA/export.yaml"
ctl apply -f "$DATA/export.yaml" | jq -c .

step "stop cpnd with SIGTERM (readyz fails, requests finish, WAL checkpoint)"
kill -TERM "$PID"; wait "$PID"; echo "  cpnd exited with status $?"; PID=
tail -n 3 "$DATA/cpnd.log"
