#!/usr/bin/env python3
"""Does anything cpnd's controllers do stall its API?

Measures GET /livez and an authenticated GET on a fixed schedule (open loop:
latency counts from when a request was due, so a stall is not hidden) from
127.0.0.2, while cpnd works through:
  (a) 50 instances on a healthy Kubernetes site (a local fake API server),
  (b) the same, its API server answering every request in 2 s,
  (c) the same, its API server hung (requests read, never answered),
  (d) a 1 GiB file upload from 127.0.0.1,
  (e) orders that fit nowhere, solved back to back on a 50,000-node topology
      (a second cpnd, on bench/solver's generated topology).
Prints p50, p99 and max per case against the target (p99 <= 5 ms, max <= 50
ms). Asserts nothing.

  python3 bench/stall.py [--seconds 20] [--rate 50] [--nodes 50000] [--cases abcde] [--no-watch]
  BUILD=build (cpnd, bench/solver_bench)
"""
import argparse
import http.client
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TOKEN = "bench-admin-token"


class FakeCluster:
    """Enough of a Kubernetes API server for the kubernetes driver: server-side
    apply, GET, DELETE of Deployments and Services, LIST and WATCH of
    Deployments (unless `watch` is False: then 403, as for an account that
    may not list); every Deployment rolled out at once. `latency` delays
    every answer; `hung` holds them all. Counts requests and connections."""

    def __init__(self, directory, watch=True):
        self.objects, self.lock = {}, threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.latency, self.hung, self.requests, self.connections = 0.0, False, 0, 0
        self.watch, self.rv, self.events = watch, 0, []
        key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ca_file, self.token_file = cert, os.path.join(directory, "token")
        open(self.token_file, "w").write("cluster-token\n")
        cluster = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                with cluster.lock:
                    cluster.connections += 1
                super().setup()

            def changed(self, path, kind, obj):  # under the lock
                cluster.rv += 1
                obj.setdefault("metadata", {})["resourceVersion"] = str(cluster.rv)
                cluster.events.append((cluster.rv, path.rsplit("/", 1)[0], kind, obj))
                cluster.changed.notify_all()

            def collection(self, path, query):
                if not cluster.watch:
                    return self.answer(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
                if "watch=1" not in query:
                    with cluster.lock:
                        items = [o for p, o in cluster.objects.items() if p.rsplit("/", 1)[0] == path]
                        rv = cluster.rv
                    return self.answer(200, {"kind": "DeploymentList", "metadata": {"resourceVersion": str(rv)},
                                             "items": items})
                while cluster.hung:
                    time.sleep(0.1)
                since = int(re.search(r"resourceVersion=(\d+)", query).group(1))
                timeout = int(re.search(r"timeoutSeconds=(\d+)", query).group(1))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                end = time.time() + timeout
                while time.time() < end and not cluster.hung:
                    with cluster.lock:
                        cluster.changed.wait_for(lambda: cluster.rv > since, timeout=1)
                        new = [e for e in cluster.events if e[0] > since and e[1] == path]
                        since = cluster.rv
                    for _, _, kind, obj in new:
                        line = (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def answer(self, code, body):
                while cluster.hung:
                    time.sleep(0.1)
                if cluster.latency:
                    time.sleep(cluster.latency)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self):
                n = int(self.headers.get("Content-Length", 0))
                return self.rfile.read(n) if n else b""

            def do_PATCH(self):
                applied = json.loads(self.body() or b"{}")
                path = self.path.split("?")[0]
                with cluster.lock:
                    cluster.requests += 1
                    old = cluster.objects.get(path, {"metadata": {"generation": 0}})
                    gen = old["metadata"].get("generation", 0) + (old.get("spec") != applied.get("spec"))
                    applied["metadata"]["generation"] = gen
                    if applied.get("kind") == "Deployment":
                        n = applied.get("spec", {}).get("replicas", 1)
                        applied["status"] = {"observedGeneration": gen, "replicas": n, "updatedReplicas": n,
                                             "availableReplicas": n, "conditions": [
                                                 {"type": "Progressing", "status": "True",
                                                  "reason": "NewReplicaSetAvailable"}]}
                    cluster.objects[path] = applied
                    if applied.get("kind") == "Deployment":
                        self.changed(path, "MODIFIED", applied)
                self.answer(200, applied)

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path.endswith("/deployments"):
                    with cluster.lock:
                        cluster.requests += 1
                    return self.collection(path, query)
                with cluster.lock:
                    cluster.requests += 1
                    found = cluster.objects.get(path)
                self.answer(200, found) if found else self.answer(404, {"kind": "Status", "code": 404,
                                                                          "reason": "NotFound"})

            def do_DELETE(self):
                self.body()
                path = self.path.split("?")[0]
                with cluster.lock:
                    cluster.requests += 1
                    gone = cluster.objects.pop(path, None)
                    if gone and gone.get("kind") == "Deployment":
                        self.changed(path, "DELETED", gone)
                self.answer(200, gone) if gone else self.answer(404, {"kind": "Status", "code": 404,
                                                                        "reason": "NotFound"})

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # cpnd gave up on a hung request: its business

        self.server = Server(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_cpnd(data, extra=(), env=None):
    log = open(os.path.join(data, "cpnd.log"), "w")
    proc = subprocess.Popen([os.path.join(BUILD, "cpnd"), "--dev", "--listen", "127.0.0.1:0", "--data", data,
                             "--log-level", "warning", *extra],
                            env=dict(os.environ, CPND_ADMIN_TOKEN=TOKEN, **(env or {})), stdout=log, stderr=log)
    addr = os.path.join(data, "cpnd.addr")
    for _ in range(2400):
        if os.path.exists(addr) or proc.poll() is not None:
            break
        time.sleep(0.05)
    if not os.path.exists(addr):
        sys.exit(f"cpnd did not start; see {log.name}")
    return proc, int(open(addr).read().strip().rsplit(":", 1)[1])


def call(port, method, path, body=None, source="127.0.0.1", timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data and r.getheader("Content-Type", "").endswith("json") else data)


def measure(port, seconds, rate, auth_path):
    """Fixed schedule from 127.0.0.2: one request every 1/rate s, alternating the two kinds."""
    conn = [None]

    def get(path, headers):
        for attempt in range(2):
            try:
                if conn[0] is None:
                    conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                                         source_address=("127.0.0.2", 0))
                conn[0].request("GET", path, headers=headers)
                r = conn[0].getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                conn[0] = None
        return 0

    lat, errors = {"livez": [], "authenticated GET": []}, 0
    start = time.perf_counter()
    for i in range(int(seconds * rate)):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        kind = "livez" if i % 2 == 0 else "authenticated GET"
        status = get("/livez", {}) if kind == "livez" else get(auth_path, {"Authorization": "Bearer " + TOKEN})
        errors += status != 200
        lat[kind].append((time.perf_counter() - due) * 1000)
    return lat, errors


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def wait_state(port, path, want, seconds=120):
    end = time.time() + seconds
    state = None
    while time.time() < end:
        state = call(port, "GET", path)[1].get("state")
        if state == want:
            return state
        time.sleep(0.2)
    return state


def cluster_cases(args, rows, tmp):
    cluster = FakeCluster(tmp, watch=not args.no_watch)
    data = tempfile.mkdtemp(prefix="cpnd-stall-", dir=tmp)
    proc, port = start_cpnd(data, env={"CPND_FILES_MAX_BYTES": str(2 << 30)})
    try:
        controller = {"driver": "kubernetes", "endpoint": cluster.url, "namespace": "vision",
                      "token_file": cluster.token_file, "ca_file": cluster.ca_file}
        assert call(port, "POST", "/v1/sites", {"id": "k8s-sz", "tier": "edge", "city": "Shenzhen",
                                               "controller": controller})[0] == 201
        assert call(port, "POST", "/v1/nodes", {"id": "k8s-1", "site": "k8s-sz", "arch": "x86_64", "cpu": 128,
                                               "memory": 512})[0] == 201
        components = [{"name": f"c{g}", "tier": "edge", "image": "city-detect:3.1",
                       "placements": [{"site": "k8s-sz", "node": "k8s-1", "arch": "x86_64", "instances": 5,
                                       "requests": {"cpu": 1, "memory": 1}}]} for g in range(10)]
        status, dep = call(port, "POST", "/v1/deployments", {"apiVersion": "cpn/v1", "kind": "DeploymentTemplate",
                                                            "metadata": {"name": "stall"},
                                                            "spec": {"components": components}})
        assert status == 201, dep
        path = "/v1/deployments/" + dep["id"]
        state = wait_state(port, path, "running")
        print(f"50 instances in 10 groups on the fake cluster: {state}", file=sys.stderr)
        before, connections = cluster.requests, cluster.connections
        time.sleep(5)
        print(f"steady state ({'informer' if cluster.watch else 'no list/watch rights: a GET per group'}): "
              f"{(cluster.requests - before) / 5:.1f} requests/s and {(cluster.connections - connections) / 5:.1f} "
              f"new connections/s to the cluster", file=sys.stderr)
        auth = "/v1/sites/edge-sz-1"
        if "a" in args.cases:
            rows.append(("(a) healthy Kubernetes site", *measure(port, args.seconds, args.rate, auth)))
        if "b" in args.cases:
            cluster.latency = 2.0
            rows.append(("(b) its API server answers in 2 s", *measure(port, args.seconds, args.rate, auth)))
            cluster.latency = 0
        if "c" in args.cases:
            cluster.hung = True
            rows.append(("(c) its API server hung", *measure(port, args.seconds, args.rate, auth)))
            cluster.hung = False
        if "d" in args.cases:
            done = threading.Event()
            result = {}

            def upload():
                chunk = os.urandom(1 << 20)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                c.putrequest("PUT", "/v1/files/stall.bin")
                c.putheader("Authorization", "Bearer " + TOKEN)
                c.putheader("Content-Type", "application/octet-stream")
                c.putheader("Content-Length", str(1 << 30))
                c.endheaders()
                t0 = time.perf_counter()
                for _ in range(1024):
                    c.send(chunk)
                r = c.getresponse()
                r.read()
                result["status"], result["s"] = r.status, time.perf_counter() - t0
                done.set()

            t = threading.Thread(target=upload)
            t.start()
            lat, errors = measure(port, args.seconds, args.rate, auth)
            t.join()
            rows.append((f"(d) 1 GiB upload ({result.get('status')}, {result.get('s', 0):.1f} s)", lat, errors))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def solver_case(args, rows, tmp):
    data = tempfile.mkdtemp(prefix="cpnd-stall-big-", dir=tmp)
    topology = os.path.join(data, "topology.json")
    subprocess.run([os.path.join(BUILD, "bench", "solver_bench"), "--sizes", str(args.nodes), "--emit-topology",
                    topology], check=True, stdout=subprocess.DEVNULL)
    doc = json.load(open(topology))
    ends = [s["id"] for s in doc["sites"] if s["tier"] == "end"]
    proc, port = start_cpnd(data, ["--topology", topology], {"CPND_MAX_BODY_BYTES": str(1 << 28)})
    try:
        stop, stats = threading.Event(), {"orders": 0, "fitting": 0, "ms": []}

        def orders():
            i = 0
            while not stop.is_set():
                body = {"offering": "city-video-detection",
                        "parameters": {"location": ends[i % len(ends)], "streams": 2000, "resolution": "4k",
                                       "fps": 25, "model_size": "m", "max_latency_ms": 200}}
                t0 = time.perf_counter()
                status, o = call(port, "POST", "/v1/orders", body)
                stats["ms"].append((time.perf_counter() - t0) * 1000)
                stats["orders"] += 1
                stats["fitting"] += bool(status == 201 and o.get("solutions"))
                i += 1

        call(port, "POST", "/v1/orders", {"offering": "city-video-detection",
                                          "parameters": {"location": ends[0], "streams": 8}})  # the snapshot
        t = threading.Thread(target=orders)
        t.start()
        lat, errors = measure(port, args.seconds, args.rate, "/v1/sites/" + ends[0])
        stop.set()
        t.join()
        ms = stats["ms"]
        rows.append((f"(e) {stats['orders']} orders fitting nowhere ({stats['fitting']} fit), median "
                     f"{pct(ms, 50):.0f} ms, {args.nodes} nodes", lat, errors))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--nodes", type=int, default=50000)
    ap.add_argument("--cases", default="abcde")
    ap.add_argument("--no-watch", action="store_true", help="the cluster refuses LIST/WATCH (403)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpnd-stall-") as tmp:
        if re.search("[abcd]", args.cases):
            cluster_cases(args, rows, tmp)
        if "e" in args.cases:
            solver_case(args, rows, tmp)
    print(f"{args.rate:g} req/s from 127.0.0.2 on a fixed schedule; latency in ms from when each was due; "
          f"target p99 <= 5, max <= 50")
    print(f"{'case':70} {'request':18} {'n':>5} {'p50':>7} {'p99':>7} {'max':>8} {'errors':>6}")
    for name, lat, errors in rows:
        for kind, values in lat.items():
            print(f"{name:70} {kind:18} {len(values):5d} {pct(values, 50):7.2f} {pct(values, 99):7.2f} "
                  f"{max(values):8.2f} {errors:6d}")


if __name__ == "__main__":
    sys.exit(main())
