#!/usr/bin/env bash
# HTTP throughput of cpnd next to nginx serving the same bytes from a static
# file. Prints figures only; asserts nothing about timings.
#   DURATION (10s)  CONNECTIONS (32)  CPND (build/cpnd of this repository)
# Targets: cpnd GET /livez, cpnd GET /v1/nodes/gz-gpu-1 (bearer token), and
# nginx (1 worker, no access log) serving that node's JSON body. wrk runs with
# one thread; with taskset and 2+ CPUs the servers get CPU 0 and wrk CPU 1.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))
CPND=${CPND:-$root/build/cpnd}
[ -x "$CPND" ] || { echo "cpnd binary not found at $CPND (set CPND)" >&2; exit 2; }

# Tools: install when missing and we are root.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "missing: ${need[*]} (install them, or run as root)" >&2; exit 2; }
  apt-get install -y "${need[@]}" || { apt-get update && apt-get install -y "${need[@]}"; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

tmp=$(mktemp -d)
cpnd_pid= nginx_pid=
stop() { [ -n "$1" ] || return 0; kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() { stop "$cpnd_pid"; stop "$nginx_pid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 143' INT TERM

# cpnd on a free port.
"${server_cpu[@]}" "$CPND" --dev --listen 127.0.0.1:0 --data "$tmp/cpnd" --log-level warning >"$tmp/cpnd.log" 2>&1 &
cpnd_pid=$!
cpnd=
for _ in $(seq 100); do
  cpnd=$(cat "$tmp/cpnd/cpnd.addr" 2>/dev/null || true)
  [[ $cpnd =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && break
  cpnd=
  kill -0 "$cpnd_pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$cpnd" ] || { echo "cpnd did not start:" >&2; cat "$tmp/cpnd.log" >&2; exit 1; }
token=$(cat "$tmp/cpnd/admin.token")
node_path=/v1/nodes/gz-gpu-1

# nginx serving the same body as a static file.
mkdir -p "$tmp/nginx/www" "$tmp/nginx/logs"
curl -sf --max-time 10 -H "Authorization: Bearer $token" "$cpnd$node_path" >"$tmp/nginx/www/node.json"
chmod -R a+rX "$tmp"   # nginx's worker may run as nobody
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
              || echo $((20000 + RANDOM % 20000)); }
nginx_url=
for _ in 1 2 3 4 5; do
  port=$(free_port)
  cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    root $tmp/nginx/www;
    default_type application/json;
  }
}
CONF
  "${server_cpu[@]}" "$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx/" 2>>"$tmp/nginx/logs/start.log" &
  nginx_pid=$!
  for _ in $(seq 50); do
    curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$port/node.json" && { nginx_url=http://127.0.0.1:$port; break; }
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$nginx_url" ] && break
  stop "$nginx_pid"; nginx_pid=
done
[ -n "$nginx_url" ] || { echo "nginx did not start:" >&2; cat "$tmp/nginx/logs/"*.log >&2; exit 1; }

size() { curl -s --max-time 10 -o /dev/null -w '%{size_download}' "$@"; }
echo "cpnd $cpnd (pid $cpnd_pid), nginx $nginx_url (pid $nginx_pid)"
echo "body: cpnd $(size -H "Authorization: Bearer $token" "$cpnd$node_path") bytes, nginx $(size "$nginx_url/node.json") bytes"
echo "wrk: 1 thread, $CONNECTIONS connections, $DURATION per target${server_cpu:+, servers on CPU 0, wrk on CPU 1}"
echo

# run NAME URL [wrk args]: prints "NAME rps p50_ms p99_ms non2xx+errors".
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
  f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1; printf "%.3f", n * f }'; }
run() {
  local name=$1 url=$2; shift 2
  local out; out=$("${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  local rps p50 p99 bad
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
  echo "$name $rps $(to_ms "$p50") $(to_ms "$p99") $bad"
}
results=$(
  run nginx:/node.json "$nginx_url/node.json"
  run cpnd:/livez "$cpnd/livez"
  run "cpnd:$node_path" "$cpnd$node_path" -H "Authorization: Bearer $token"
)

nginx_rps=$(awk 'NR == 1 { print $2 }' <<<"$results")
printf '%-28s %12s %10s %10s %12s %8s\n' target requests/s p50_ms p99_ms vs_nginx errors
awk -v base="$nginx_rps" '{ printf "%-28s %12.0f %10.3f %10.3f %11.2fx %8d\n", $1, $2, $3, $4, (base > 0 ? $2 / base : 0), $5 }' <<<"$results"
