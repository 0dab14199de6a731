#!/usr/bin/env python3
"""Reconcile throughput through the real daemon (cpnd --dev, sim driver).

1. DEPLOYMENTS (1000) templates of two sim instances each are submitted at
   once (back to back, on a bench site of 250 nodes): the time from the
   first submit to the last deployment running, and the median and p99 of
   each one's submit-to-running.
2. HISTORY (10000) orders are quoted, confirmed and completed, leaving that
   many finished deployments; then, with 20 active ones, the mean reconcile
   pass (cpnd_task_duration_seconds{task="reconcile"}) over 10 s, and the
   same before the history was written.
Prints figures; asserts nothing.

  python3 bench/reconcile.py [--deployments 1000] [--history 10000] [--start-delay-ms 0]
  BUILD=build
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TOKEN = "bench-admin-token"


class Api:
    def __init__(self, port):
        self.port, self.conn = port, None

    def __call__(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.conn.request(method, path, json.dumps(body) if body is not None else None,
                                  {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, (json.loads(data) if data and "json" in r.getheader("Content-Type", "") else data)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def pass_time(api, seconds):
    def read():
        text = api("GET", "/metrics")[1].decode()
        s = re.search(r'cpnd_task_duration_seconds_sum\{task="reconcile"\} (\S+)', text)
        c = re.search(r'cpnd_task_duration_seconds_count\{task="reconcile"\} (\S+)', text)
        return float(s.group(1)), float(c.group(1))

    s0, c0 = read()
    time.sleep(seconds)
    s1, c1 = read()
    return (s1 - s0) / max(c1 - c0, 1) * 1000, c1 - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deployments", type=int, default=1000)
    ap.add_argument("--history", type=int, default=10000)
    ap.add_argument("--start-delay-ms", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cpnd-reconcile-") as data:
        log = open(os.path.join(data, "cpnd.log"), "w")
        env = dict(os.environ, CPND_ADMIN_TOKEN=TOKEN, CPND_SIM_START_DELAY_MS=str(args.start_delay_ms))
        proc = subprocess.Popen([os.path.join(BUILD, "cpnd"), "--dev", "--listen", "127.0.0.1:0", "--data", data,
                                 "--log-level", "warning"], env=env, stdout=log, stderr=log)
        try:
            for _ in range(400):
                if os.path.exists(os.path.join(data, "cpnd.addr")):
                    break
                time.sleep(0.05)
            port = int(open(os.path.join(data, "cpnd.addr")).read().strip().rsplit(":", 1)[1])
            api = Api(port)
            assert api("POST", "/v1/sites", {"id": "bench", "tier": "edge", "city": "Shenzhen"})[0] == 201
            for n in range(250):
                assert api("POST", "/v1/nodes", {"id": f"b-{n}", "site": "bench", "arch": "x86_64", "cpu": 64,
                                                 "memory": 256})[0] == 201
            quiet_ms, _ = pass_time(api, 3)

            # 1. Many deployments at once.
            submitted, running = {}, {}
            stop = threading.Event()

            def watch():  # polls beside the submits, so each deployment's time to running is seen as it comes
                poll = Api(port)
                while not stop.is_set():
                    cont = ""
                    while True:
                        status, page = poll("GET", "/v1/deployments?state=running&limit=1000" + cont)
                        now = time.perf_counter()
                        for d in page["items"]:
                            running.setdefault(d["id"], now)
                        if not page.get("continue"):
                            break
                        cont = "&continue=" + page["continue"]
                    time.sleep(0.2)

            watcher = threading.Thread(target=watch)
            watcher.start()
            t0 = time.perf_counter()
            for i in range(args.deployments):
                body = {"apiVersion": "cpn/v1", "kind": "DeploymentTemplate", "metadata": {"name": f"d{i}"},
                        "spec": {"components": [{"name": "detect", "tier": "edge", "image": "city-detect:3.1",
                                                 "placements": [{"site": "bench", "node": f"b-{i % 250}",
                                                                 "arch": "x86_64", "instances": 2,
                                                                 "requests": {"cpu": 0.1, "memory": 0.1}}]}]}}
                status, d = api("POST", "/v1/deployments", body)
                assert status == 201, d
                submitted[d["id"]] = time.perf_counter()
            submit_s = time.perf_counter() - t0
            while len(running) < len(submitted) and time.perf_counter() - t0 < 600:
                time.sleep(0.05)
            stop.set()
            watcher.join()
            all_s = max(running.values()) - t0 if running else float("nan")
            each = [(running[k] - submitted[k]) * 1000 for k in running]
            busy_ms, passes = pass_time(api, 5)
            print(f"{args.deployments} deployments x 2 sim instances (start delay {args.start_delay_ms} ms): submitted "
                  f"in {submit_s:.1f} s, all running {all_s:.1f} s after the first submit ({len(running)} running); "
                  f"submit to running median {pct(each, 50):.0f} ms, p99 {pct(each, 99):.0f} ms")
            print(f"reconcile pass: {quiet_ms:.2f} ms with none active, {busy_ms:.2f} ms with {len(running)} running "
                  f"({passes:.0f} passes in 5 s)")
            for k in list(submitted):
                api("DELETE", "/v1/deployments/" + k)
            while api("GET", "/v1/deployments?limit=1")[1]["items"]:
                time.sleep(0.2)

            # 2. History: finished deployments of completed orders.
            threads, done = [], [0]

            def orders(count, worker):
                mine = Api(port)
                for i in range(count):
                    s, o = mine("POST", "/v1/orders", {"offering": "city-video-detection",
                                                       "parameters": {"streams": 8, "location": "cams-sz-futian"}})
                    if s != 201 or not o.get("solutions"):
                        continue
                    if mine("POST", f"/v1/orders/{o['id']}/confirm", {"solution": "s1"})[0] != 200:
                        continue
                    while mine("POST", f"/v1/orders/{o['id']}/complete", {})[0] == 409:
                        time.sleep(0.01)
                    done[0] += 1

            t0 = time.perf_counter()
            for w in range(4):
                t = threading.Thread(target=orders, args=(args.history // 4, w))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            while True:
                page = api("GET", "/v1/deployments?state=completing&limit=1")[1]
                if not page["items"]:
                    break
                time.sleep(0.2)
            history_s = time.perf_counter() - t0
            active = []
            for i in range(20):
                s, o = api("POST", "/v1/orders", {"offering": "city-video-detection",
                                                  "parameters": {"streams": 8, "location": "cams-sz-futian"}})
                if s == 201 and o.get("solutions") and api("POST", f"/v1/orders/{o['id']}/confirm",
                                                           {"solution": "s1"})[0] == 200:
                    active.append(o["id"])
            time.sleep(3)
            history_ms, passes = pass_time(api, 10)
            rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{proc.pid}/status").read()).group(1)) // 1024
            print(f"{done[0]} orders quoted, confirmed and completed in {history_s:.0f} s; then reconcile pass "
                  f"{history_ms:.2f} ms with {len(active)} active ({passes:.0f} passes in 10 s); cpnd RSS {rss} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
