#!/usr/bin/env python3
"""Latency of other clients while one address holds a slowloris.

Starts cpnd --dev on a free port, then measures, on a fixed schedule (open
loop: latency counts from when a request was due, so a stall is not hidden),
GET /livez and an authenticated GET /v1/sites/edge-sz-1 from another client
address (127.0.0.2), first alone and then while 127.0.0.1 keeps CONNECTIONS
connections open sending their headers a byte at a time (reconnecting as
cpnd refuses or cuts them). Prints p50, p99 and max per phase, and cpnd's
counters of refused connections. Asserts nothing.

  python3 bench/slowloris.py [--connections 2000] [--seconds 20] [--rate 50]
  CPND=path/to/cpnd (default build/cpnd)
"""
import argparse
import http.client
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cpnd(data):
    cpnd = os.environ.get("CPND", os.path.join(ROOT, "build", "cpnd"))
    env = dict(os.environ, CPND_ADMIN_TOKEN="bench-admin-token")
    log = open(os.path.join(data, "cpnd.log"), "w")
    proc = subprocess.Popen([cpnd, "--dev", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "warning"],
                            env=env, stdout=log, stderr=log)
    addr = os.path.join(data, "cpnd.addr")
    for _ in range(200):
        if os.path.exists(addr):
            break
        time.sleep(0.05)
    url = open(addr).read().strip()
    return proc, int(url.rsplit(":", 1)[1])


class Client:
    """A keep-alive client from its own address, reconnecting when cut."""

    def __init__(self, port, source):
        self.port, self.source, self.conn = port, source, None

    def get(self, path, headers):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                                           source_address=(self.source, 0))
                self.conn.request("GET", path, headers=headers)
                r = self.conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt:
                    return 0
        return 0


def measure(port, token, seconds, rate):
    """Fixed schedule: one request every 1/rate s, alternating the two kinds."""
    client = Client(port, "127.0.0.2")
    lat = {"livez": [], "authenticated GET": []}
    errors = 0
    start = time.perf_counter()
    n = int(seconds * rate)
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        kind = "livez" if i % 2 == 0 else "authenticated GET"
        if kind == "livez":
            status = client.get("/livez", {})
        else:
            status = client.get("/v1/sites/edge-sz-1", {"Authorization": "Bearer " + token})
        if status != 200:
            errors += 1
        lat[kind].append((time.perf_counter() - due) * 1000)
    return lat, errors


def slowloris(port, connections, stop, stats):
    sel = selectors.DefaultSelector()
    open_socks = {}

    def connect():
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            return
        open_socks[s] = 0
        sel.register(s, selectors.EVENT_READ)
        stats["opened"] += 1

    def drop(s):
        sel.unregister(s)
        open_socks.pop(s, None)
        s.close()
        stats["cut"] += 1

    header = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-a: " + b"b" * 10000
    last_drip = 0.0
    while not stop.is_set():
        while len(open_socks) < connections and not stop.is_set():
            connect()
            if len(open_socks) % 200 == 0:
                break  # keep the loop responsive
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 503"):
                drop(s)
        now = time.perf_counter()
        if now - last_drip > 0.5:  # a byte each half second per connection
            last_drip = now
            for s, sent in list(open_socks.items()):
                try:
                    s.send(header[sent:sent + 1])
                    open_socks[s] = sent + 1
                except OSError:
                    drop(s)
    for s in list(open_socks):
        s.close()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=50, help="requests per second of the measuring client")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # for us and cpnd
    data = tempfile.mkdtemp(prefix="cpnd-slowloris-")
    proc, port = start_cpnd(data)
    try:
        token = "bench-admin-token"
        rows = []
        lat, errors = measure(port, token, args.seconds / 2, args.rate)
        rows.append(("alone", lat, errors, None))
        stop, stats = threading.Event(), {"opened": 0, "cut": 0}
        t = threading.Thread(target=slowloris, args=(port, args.connections, stop, stats))
        t.start()
        time.sleep(2)  # let it reach its connections
        lat, errors = measure(port, token, args.seconds, args.rate)
        stop.set()
        t.join()
        rows.append((f"slowloris of {args.connections} from 127.0.0.1", lat, errors, dict(stats)))
        metrics = Client(port, "127.0.0.2").conn
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        counters = [l for l in text.splitlines() if l.startswith("cpnd_http_connections_rejected_total") or
                    l.startswith("cpnd_http_accept_failures_total") or l.startswith("cpnd_http_connections_total")]
        print(f"cpnd {args.rate:g} req/s from 127.0.0.2, fixed schedule; latency in ms from when each was due")
        print(f"{'phase':42} {'request':18} {'n':>5} {'p50':>7} {'p99':>7} {'max':>7} {'errors':>6}")
        for name, lat, errors, st in rows:
            for kind, values in lat.items():
                print(f"{name:42} {kind:18} {len(values):5d} {pct(values, 50):7.2f} {pct(values, 99):7.2f} "
                      f"{max(values):7.2f} {errors:6d}")
            if st:
                print(f"{'':42} attacker opened {st['opened']} connections, {st['cut']} refused or cut")
        for line in counters:
            print("  " + line)
        del metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
