#!/usr/bin/env python3
"""Durable write rate: sequential creates through the API, each one a
SQLite transaction synced to disk (synchronous=FULL) before it is
acknowledged. Prints figures; asserts nothing about timings.
Usage: bench/writes.py [N]  (CPND=path/to/cpnd, default build/cpnd)"""
import http.client, json, os, re, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cpnd = os.environ.get("CPND", os.path.join(root, "build", "cpnd"))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
with tempfile.TemporaryDirectory() as data:
    proc = subprocess.Popen([cpnd, "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warning"],
                            env=dict(os.environ, CPND_ADMIN_TOKEN="bench"), stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(data, "cpnd.addr")):
                break
            time.sleep(0.05)
        url = open(os.path.join(data, "cpnd.addr")).read().strip()
        host, port = url.split("//")[1].split(":")
        c = http.client.HTTPConnection(host, int(port))
        h = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
        t0 = time.time()
        for i in range(n):
            c.request("POST", "/v1/sites", json.dumps({"id": f"bench-{i}", "tier": "edge", "city": "Shenzhen"}), h)
            r = c.getresponse()
            r.read()
            assert r.status == 201, r.status
        dt = time.time() - t0
        c.request("GET", "/metrics")
        m = c.getresponse().read().decode()
        s = float(re.search(r"^cpnd_db_commit_duration_seconds_sum (\S+)", m, re.M).group(1))
        k = float(re.search(r"^cpnd_db_commit_duration_seconds_count (\S+)", m, re.M).group(1))
        print(f"{n} sequential creates: {n / dt:.0f} writes/s, {dt / n * 1000:.2f} ms per request, "
              f"mean commit with fsync {s / k * 1000:.2f} ms")
    finally:
        proc.terminate()
        proc.wait()
