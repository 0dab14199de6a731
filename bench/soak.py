#!/usr/bin/env python3
"""Open-loop soak of the real daemon (issue 15, section 6): a steady mix on a
fixed schedule (each operation is due at its time whatever the others do;
latency counts from when it was due), on a synthetic network big enough to
hold the load (bench/solver's generator):
  70% authenticated GETs (a site, or one of the last 200 orders),
  20% orders quoted then cancelled,
  10% orders confirmed, run for --run seconds, then completed.
--find-max: steps the rate up, 20 s each, and reports the highest it
sustains (achieved >= 95% of the schedule, p99 <= 50 ms, errors < 1%).
--hold RATE --minutes M: holds a rate and samples every 30 s: p50/p99 of
the window, RSS of cpnd, database size, reconcile pass time, deployments
running; at the end, every node and link allocation must be back to zero.
Prints figures; asserts nothing about timings.
Usage: bench/soak.py [--nodes 2000] [--find-max] [--hold 100 --minutes 60] [--run 20]"""
import argparse, http.client, json, os, queue, random, subprocess, sys, tempfile, threading, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TOKEN = "soak-admin-token"


class Daemon:
    def __init__(self, nodes, tmp):
        self.data = tempfile.mkdtemp(prefix="cpnd-soak-", dir=tmp)
        topology = os.path.join(self.data, "topology.json")
        subprocess.run([os.path.join(BUILD, "bench", "solver_bench"), "--sizes", str(nodes), "--emit-topology", topology],
                       check=True, stdout=subprocess.DEVNULL)
        doc = json.load(open(topology))
        self.ends = [s["id"] for s in doc["sites"] if s["tier"] == "end"]
        self.sites = [s["id"] for s in doc["sites"]]
        log = open(os.path.join(self.data, "cpnd.log"), "w")
        env = dict(os.environ, CPND_ADMIN_TOKEN=TOKEN, CPND_MAX_BODY_BYTES=str(1 << 28), CPND_SIM_START_DELAY_MS="500")
        self.proc = subprocess.Popen([os.path.join(BUILD, "cpnd"), "--dev", "--listen", "127.0.0.1:0", "--data", self.data,
                                      "--log-level", "warning", "--topology", topology], env=env, stdout=log, stderr=log)
        addr = os.path.join(self.data, "cpnd.addr")
        for _ in range(2400):
            if os.path.exists(addr) or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.port = int(open(addr).read().strip().rsplit(":", 1)[1])

    def rss_mb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0

    def db_mb(self):
        return sum(os.path.getsize(os.path.join(self.data, f)) for f in ("cpnd.db", "cpnd.db-wal")
                   if os.path.exists(os.path.join(self.data, f))) / 1e6

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=120)


local = threading.local()


def call(port, method, path, body=None):
    c = getattr(local, "conn", None)
    if c is None:
        c = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
    except Exception:
        local.conn = None
        return 599, None
    return r.status, (json.loads(data) if data and r.getheader("Content-Type", "").endswith("json") else None)


class Load:
    """A fixed schedule fed to worker threads; each operation's latency from its due time."""

    def __init__(self, d, run_seconds, seed=7):
        self.d, self.run_seconds = d, run_seconds
        self.rng = random.Random(seed)
        self.todo = queue.PriorityQueue()
        self.lock = threading.Lock()
        self.samples = []  # (done_at, latency_ms, ok)
        self.recent_orders = []
        self.stop = threading.Event()
        self.seq = 0
        for _ in range(96):
            threading.Thread(target=self.worker, daemon=True).start()

    def schedule(self, due, op, arg=None):
        with self.lock:
            self.seq += 1
            self.todo.put((due, self.seq, op, arg))

    def order_body(self):
        return {"offering": "city-video-detection",
                "parameters": {"location": self.rng.choice(self.d.ends), "streams": self.rng.randint(4, 32)}}

    def worker(self):
        while True:
            due, _, op, arg = self.todo.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            ok = self.run(op, arg, due)
            now = time.monotonic()
            if op != "complete":
                with self.lock:
                    self.samples.append((now, (now - due) * 1000, ok))

    def run(self, op, arg, due):
        port = self.d.port
        if op == "get":
            with self.lock:
                recent = self.rng.choice(self.recent_orders) if self.recent_orders else None
            if recent is None or self.rng.random() < 0.5:
                return call(port, "GET", "/v1/sites/" + self.rng.choice(self.d.sites))[0] == 200
            return call(port, "GET", "/v1/orders/" + recent)[0] == 200
        if op == "quote":
            s, o = call(port, "POST", "/v1/orders", self.order_body())
            if s != 201:
                return False
            with self.lock:
                self.recent_orders = (self.recent_orders + [o["id"]])[-200:]
            return call(port, "POST", f"/v1/orders/{o['id']}/cancel", {})[0] == 200
        if op == "confirm":
            s, o = call(port, "POST", "/v1/orders", self.order_body())
            if s != 201 or not o.get("solutions"):
                return s == 201  # quoted, fits nowhere: answered all the same
            s, _ = call(port, "POST", f"/v1/orders/{o['id']}/confirm", {"solution": "s1"})
            if s == 200:
                self.schedule(due + self.run_seconds, "complete", o["id"])
            return s in (200, 409)  # 409: taken meanwhile by another confirm
        if op == "complete":
            call(port, "POST", f"/v1/orders/{arg}/complete", {})
            return True
        return False

    def offer(self, rate, seconds):
        """Schedules `rate` operations a second for `seconds`, from now."""
        start = time.monotonic() + 0.2
        n = int(rate * seconds)
        for i in range(n):
            x = self.rng.random()
            self.schedule(start + i / rate, "get" if x < 0.7 else ("quote" if x < 0.9 else "confirm"))
        return start, start + seconds, n

    def window(self, since, until):
        with self.lock:
            s = [x for x in self.samples if since <= x[0] < until]
        lat = sorted(x[1] for x in s)
        errors = sum(1 for x in s if not x[2])
        pct = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] if lat else float("nan")
        return len(s), pct(0.5), pct(0.99), (lat[-1] if lat else float("nan")), errors


def metric(port, name, labels=""):
    s, _ = 0, None
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics", None, {"Authorization": "Bearer " + TOKEN})
    text = c.getresponse().read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def pass_ms(port, last):
    m = metric(port, "cpnd_task_duration_seconds")
    total = m.get('cpnd_task_duration_seconds_sum{task="reconcile"}', 0)
    count = m.get('cpnd_task_duration_seconds_count{task="reconcile"}', 0)
    delta = (total - last[0]) / max(1, count - last[1]) * 1000
    return delta, (total, count)


def every(port, path):
    """All items of a collection, page by page (at most 1000 a page)."""
    items, token = [], ""
    while True:
        sep = "&" if "?" in path else "?"
        _, page = call(port, "GET", f"{path}{sep}limit=1000" + (f"&continue={urllib.parse.quote(token)}" if token else ""))
        items += page["items"]
        token = page.get("metadata", {}).get("continue", "") or page.get("continue", "")
        if not token:
            return items


def allocations(port):
    cpu = sum(n["allocated"].get("cpu", 0) for n in every(port, "/v1/nodes"))
    mbps = sum(l.get("allocated_mbps", 0) for l in every(port, "/v1/links"))
    return cpu, mbps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--find-max", action="store_true")
    ap.add_argument("--rates", default="50,100,200,300,400,500,700")
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--run", type=float, default=20, help="seconds a confirmed order runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(args.nodes, tmp)
        try:
            load = Load(d, args.run)
            call(d.port, "POST", "/v1/orders", load.order_body())  # the solver's snapshot
            if args.find_max:
                print(f"{args.nodes} nodes; each rate for 20 s; latency in ms from when each operation was due")
                print(f"{'rate/s':>7} {'achieved':>9} {'p50':>7} {'p99':>8} {'max':>8} {'errors':>7}  verdict")
                best = 0
                for rate in [float(r) for r in args.rates.split(",")]:
                    start, end, n = load.offer(rate, 20)
                    time.sleep(end - time.monotonic() + 3)
                    done, p50, p99, mx, errors = load.window(start, end + 3)
                    achieved = done / 20
                    good = done >= 0.95 * n and p99 <= 50 and errors <= 0.01 * max(1, done)
                    best = rate if good else best
                    print(f"{rate:7.0f} {achieved:9.1f} {p50:7.1f} {p99:8.1f} {mx:8.1f} {errors:7d}  "
                          f"{'sustained' if good else 'not sustained'}")
                    while not load.todo.empty():
                        time.sleep(0.5)
                    time.sleep(args.run + 2)  # the confirmed ones complete before the next step
                print(f"highest sustained: {best:.0f} operations/s")
            if args.hold:
                print(f"hold {args.hold:.0f}/s for {args.minutes:.0f} min on {args.nodes} nodes; sampled every 30 s")
                print(f"{'t/s':>6} {'n':>6} {'p50':>7} {'p99':>8} {'max':>8} {'err':>5} {'rss MB':>8} {'db MB':>7} "
                      f"{'pass ms':>8} {'running':>8}")
                seconds = args.minutes * 60
                begin = time.monotonic()
                last = (0, 0)
                _, last = pass_ms(d.port, last)
                t = 0
                while t < seconds:
                    load.offer(args.hold, min(30, seconds - t))
                    time.sleep(min(30, seconds - t))
                    t += 30
                    now = time.monotonic()
                    n, p50, p99, mx, err = load.window(now - 30, now)
                    rss = d.rss_mb()  # before this sampling's own requests
                    ms, last = pass_ms(d.port, last)
                    running = len(every(d.port, "/v1/deployments?state=running"))
                    print(f"{now - begin:6.0f} {n:6d} {p50:7.1f} {p99:8.1f} {mx:8.1f} {err:5d} {rss:8.0f} "
                          f"{d.db_mb():7.1f} {ms:8.2f} {running:8d}", flush=True)
                while not load.todo.empty():
                    time.sleep(1)
                time.sleep(args.run + 5)
                for _ in range(60):
                    cpu, mbps = allocations(d.port)
                    if cpu == 0 and mbps == 0:
                        break
                    time.sleep(1)
                print(f"at the end: allocated cpu {cpu:g}, allocated Mbit/s {mbps:g} (both 0: everything given back)")
        finally:
            d.stop()


if __name__ == "__main__":
    main()
