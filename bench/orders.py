#!/usr/bin/env python3
"""Orders through the real daemon on a large network: cpnd --dev loads a
synthetic Topology (bench/solver's generator, seeded) instead of the demo,
then customers order video detection at random camera sites. Prints the
time of POST /v1/orders (median, p99) from the client, the first order
after an inventory change (the solver's snapshot is rebuilt), and
confirm. Prints figures; asserts nothing about timings.
Usage: bench/orders.py [NODES] [ORDERS]   (BUILD=build by default)"""
import http.client, json, os, random, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("BUILD", os.path.join(root, "build"))
nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
orders = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def ms(t0):
    return (time.perf_counter() - t0) * 1000


with tempfile.TemporaryDirectory() as data:
    topology = os.path.join(data, "topology.json")
    subprocess.run([os.path.join(build, "bench", "solver_bench"), "--sizes", str(nodes), "--emit-topology", topology],
                   check=True, stdout=subprocess.DEVNULL)
    doc = json.load(open(topology))
    ends = [s["id"] for s in doc["sites"] if s["tier"] == "end"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([os.path.join(build, "cpnd"), "--dev", "--data", data, "--listen", "127.0.0.1:0",
                             "--log-level", "warning", "--topology", topology],
                            env=dict(os.environ, CPND_ADMIN_TOKEN="bench", CPND_MAX_BODY_BYTES=str(1 << 28)),
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            if os.path.exists(os.path.join(data, "cpnd.addr")):
                break
            time.sleep(0.05)
        start_ms = ms(t0)
        url = open(os.path.join(data, "cpnd.addr")).read().strip()
        host, port = url.split("//")[1].split(":")
        c = http.client.HTTPConnection(host, int(port))
        h = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

        def call(method, path, body=None):
            t = time.perf_counter()
            c.request(method, path, json.dumps(body) if body is not None else None, h)
            r = c.getresponse()
            payload = json.loads(r.read() or b"null")
            return r.status, payload, ms(t)

        rng = random.Random(7)

        def order():
            body = {"offering": "city-video-detection",
                    "parameters": {"location": rng.choice(ends), "streams": rng.randint(8, 300)}}
            status, o, took = call("POST", "/v1/orders", body)
            assert status == 201, (status, o)
            return o, took

        first, first_ms = order()  # builds the solver's snapshot
        times, fitting = [], 0
        for _ in range(orders):
            o, took = order()
            times.append(took)
            fitting += bool(o["solutions"])
        confirm_ms = rebuild_ms = None
        for o in [first] + [order()[0] for _ in range(20)]:
            if o["solutions"]:
                status, _, confirm_ms = call("POST", f"/v1/orders/{o['id']}/confirm", {"solution": "s1"})
                assert status == 200
                _, rebuild_ms = order()  # the first order after the inventory changed
                break
        times.sort()
        print(f"{len(doc['sites'])} sites, {nodes} nodes, {len(doc['links'])} links; cpnd ready in {start_ms:.0f} ms "
              f"(topology import included)")
        print(f"POST /v1/orders x{orders} ({fitting} with solutions): median {statistics.median(times):.1f} ms, "
              f"p99 {times[int(0.99 * (len(times) - 1))]:.1f} ms")
        print(f"first order after start {first_ms:.1f} ms (snapshot built); confirm {confirm_ms:.1f} ms; "
              f"first order after a confirm {rebuild_ms:.1f} ms (its reservation patched into the snapshot)")
    finally:
        proc.terminate()
        proc.wait()
