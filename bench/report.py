"""The benchmark report (run through bench/run).

Runs every benchmark with a warm-up and repetitions, takes medians and the
spread (min..max), measures each figure that has a peer or a limit against
it in the same run, and writes bench/results/<date>/report.md with PNG
plots made by gnuplot. Every figure names the command that made it.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic

A = None            # the parsed arguments
BROKER_AT_START = (0, 0)  # topics and partitions the broker held
OUT = None          # the results directory
LOG = []            # every command run, in order


def announce(cmd):
    """Records a command for the report and prints it."""
    LOG.append(" ".join(cmd))
    print("+ " + " ".join(cmd), flush=True)


def run(cmd, timeout=3600, env=None):
    """Runs a command, records it, returns its stdout (raises on failure)."""
    announce(cmd)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt="{:,.0f}"):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}..{fmt.format(max(xs))}, n={len(xs)})"


def bin_(name):
    return os.path.join(A.root, "build", "bench", name)


def strata():
    return os.path.join(A.root, "build", "src", "strata")


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_file(name):
    try:
        with open(os.path.join(A.stack, "run", f"{name}.pid")) as f:
            return int(f.read())
    except OSError:
        return None


# ---- individual benchmarks ----------------------------------------------

def bench_asof():
    k, v, n = (200000, 10, 500000) if A.quick else (1000000, 10, 2000000)
    reps = 1 if A.quick else 3
    res = {"asof": [], "get": [], "ratio": [], "ingest": []}
    for _ in range(reps):
        out = run([bin_("bench_asof"), "-k", str(k), "-v", str(v), "-n", str(n)])
        res["ingest"].append(float(re.search(r"= ([0-9.]+) versions/s", out).group(1)))
        res["asof"].append(float(re.search(r"as-of lookup: .* = ([0-9.]+) lookups/s", out).group(1)))
        res["get"].append(float(re.search(r"plain mdb_get: .* = ([0-9.]+) gets/s", out).group(1)))
        res["ratio"].append(float(re.search(r"rate\): ([0-9.]+)", out).group(1)))
    res["cmd"] = f"bench_asof -k {k} -v {v} -n {n}"
    res["versions"] = k * v
    return res


def bench_cdc():
    n = 50000 if A.quick else 200000
    reps = 1 if A.quick else 3
    res = {"own": [], "jansson": [], "ratio": []}
    for _ in range(reps):
        out = run([bin_("bench_cdc"), "-n", str(n)])
        res["own"].append(float(re.search(r"st_cdc_decode: .* = ([0-9.]+) events/s", out).group(1)))
        res["jansson"].append(float(re.search(r"jansson json_loadb alone: .* = ([0-9.]+) events/s", out).group(1)))
        res["ratio"].append(float(re.search(r"rate\): ([0-9.]+)", out).group(1)))
        res["bytes"] = int(re.search(r"event: ([0-9]+) bytes", out).group(1))
    res["cmd"] = f"bench_cdc -n {n}"
    return res


def bench_online():
    n = 100000 if A.quick else 400000
    out = run([bin_("bench_online"), "-p", str(A.redis_port), "-n", str(n), "-k", "50000",
               "-b", "256,1024", "-m", "100000", "-c", "1000"])
    rows = []
    for line in out.splitlines():
        m = re.match(r"(\w+)\s+batch\s+(\d+)\s+ratio online / plain HSET \(rate\): ([0-9.]+)", line)
        if m:
            rows.append((m.group(1), int(m.group(2)), float(m.group(3))))
    rates = re.findall(r"(\w+)\s+batch\s+(\d+)\s+online: (\d+) vectors/s", out)
    plain = re.findall(r"(\w+)\s+batch\s+(\d+)\s+plain HSET: (\d+) vectors/s", out)
    return {"rows": rows, "rates": rates, "plain": plain, "raw": out,
            "cmd": f"bench_online -p {A.redis_port} -n {n} -k 50000 -b 256,1024 -m 100000 -c 1000"}


def bench_scorer():
    n = 50000 if A.quick else 200000
    reps = 1 if A.quick else 3
    table = {}
    for _ in range(reps):
        out = run([bin_("bench_scorer"), "-m", A.model, "-n", str(n), "-b", "1,8,16,32,64,128,256"])
        for line in out.splitlines():
            m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+([0-9.]+)", line)
            if m:
                b = int(m.group(1))
                table.setdefault(b, {"strata": [], "bare": []})
                table[b]["strata"].append(int(m.group(2)))
                table[b]["bare"].append(int(m.group(3)))
        rff = float(re.search(r"row_from_fields: (\d+) ns", out).group(1))
    return {"table": table, "row_from_fields": rff,
            "cmd": f"bench_scorer -m MODEL -n {n} -b 1,8,16,32,64,128,256"}


def bench_recommend():
    """RECOMMEND beside a bare scoring of the same rows, with the example
    recommendation model (trained into the stack's models when missing)."""
    model = os.path.join(A.stack, "models", "recommend.onnx")
    if not os.path.exists(model):
        run([sys.executable, os.path.join(A.root, "examples", "train_recommend_model.py"),
             "--out", model])
    rounds = 3 if A.quick else 5
    out = run([bin_("bench_recommend"), "-m", model, "-r", str(rounds)])
    rows = []
    for block in re.split(r"\n(?=K = )", out)[1:]:
        k = int(re.match(r"K = (\d+)", block).group(1))
        req = re.search(r"RECOMMEND \(depth 1\): ([0-9.]+) req/s, ([0-9.]+) us per request, "
                        r"latency p50 ([0-9.]+) us p99 ([0-9.]+) us", block)
        ratio = re.search(r"ratio RECOMMEND / bare scoring: ([0-9.]+) \(wall.*?, ([0-9.]+) \(server CPU", block)
        rows.append({"items": k, "req_s": float(req.group(1)), "us": float(req.group(2)),
                     "p50_us": float(req.group(3)), "p99_us": float(req.group(4)),
                     "wall_ratio": float(ratio.group(1)), "cpu_ratio": float(ratio.group(2))})
    return {"rows": rows, "raw": out, "cmd": f"bench_recommend -m MODEL -r {rounds}"}


def bench_serve():
    n = 50000 if A.quick else 200000
    rounds = 3 if A.quick else 5
    out = run([bin_("bench_serve"), "-p", str(A.redis_port), "-n", str(n), "-r", str(rounds)])
    m = re.search(r"median\s+(\d+)\s+(\d+)\s+([0-9.]+)", out)
    ratios = [float(x) for x in re.findall(r"^\s+\d+\s+\d+\s+\d+\s+([0-9.]+)$", out, re.M)]
    return {"redis": int(m.group(1)), "strata": int(m.group(2)), "ratio": float(m.group(3)),
            "ratios": ratios, "raw": out,
            "cmd": f"bench_serve -p {A.redis_port} -n {n} -r {rounds}"}


# ---- the pipeline -------------------------------------------------------

CREATED = []        # topics this run created, deleted at its end
PREFIXES = []       # Redis key prefixes of the strata instances it ran


def broker_partitions():
    md = AdminClient({"bootstrap.servers": A.bootstrap}).list_topics(timeout=10)
    return len(md.topics), sum(len(t.partitions) for t in md.topics.values())


def clean_up():
    """Deletes the topics and Redis keys the run made: left behind, they
    would weigh on the broker and Redis of every later run."""
    if CREATED:
        admin = AdminClient({"bootstrap.servers": A.bootstrap})
        for f in admin.delete_topics(CREATED, operation_timeout=30).values():
            try:
                f.result(60)
            except Exception as e:  # reported, not fatal: the report is written
                print(f"bench: deleting a topic: {e}", file=sys.stderr)
    for prefix in PREFIXES:
        subprocess.run(["redis-cli", "-p", str(A.redis_port), "--scan", "--pattern", prefix + ":*"],
                       stdout=open(os.path.join(OUT, "raw", "keys"), "w"), check=False)
        subprocess.run(f"xargs -r -n 500 redis-cli -p {A.redis_port} UNLINK < '{os.path.join(OUT, 'raw', 'keys')}' >/dev/null",
                       shell=True, check=False)


def topics(*names):
    CREATED.extend(names)
    admin = AdminClient({"bootstrap.servers": A.bootstrap})
    for f in admin.create_topics([NewTopic(t, 4, 1) for t in names]).values():
        f.result(30)


def common(topic):
    return ["-b", A.bootstrap, "-t", topic, "-r", A.registry,
            "-s", os.path.join(A.root, "schemas", "transaction.avsc"), "-P", str(A.redis_port)]


class Strata:
    def __init__(self, name, topic, extra):
        self.dir = os.path.join(OUT, "raw", name)
        self.topic = topic
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "strata.conf")
        self.group = f"{os.path.basename(OUT)}-{name}-{int(time.time())}"
        self.prefix = f"{self.group}:user"
        PREFIXES.append(self.prefix)
        topics(f"{self.group}.features", f"{self.group}.scores", f"{self.group}.alerts",
               f"{self.group}.dlq")
        conf = {
            "log.level": "info", "state.dir": os.path.join(self.dir, "state"),
            "transactions.topic": topic,
            "transactions.schema": os.path.join(A.root, "schemas", "transaction.avsc"),
            "features.file": os.path.join(A.root, "examples", "fraud.features"),
            "features.topic": f"{self.group}.features", "dlq.topic": f"{self.group}.dlq",
            "scores.topic": f"{self.group}.scores", "alerts.topic": f"{self.group}.alerts",
            "registry.url": A.registry, "redis.port": str(A.redis_port),
            "redis.prefix": self.prefix, "kafka.bootstrap.servers": A.bootstrap,
            "kafka.group.id": self.group, "http.listen": "127.0.0.1:0",
        }
        conf.update(extra)
        with open(self.conf, "w") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.log = open(os.path.join(self.dir, "strata.log"), "w")
        cmd = [strata(), "run", "-c", self.conf]
        LOG.append(" ".join(cmd))
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=self.log)
        self.port = None
        for _ in range(300):
            time.sleep(0.1)
            with open(os.path.join(self.dir, "strata.log")) as f:
                m = re.search(r"\(port (\d+)\)", f.read())
            if m:
                self.port = int(m.group(1))
                break

    def cpu(self):
        return cpu_of(self.proc.pid)

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        vals = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                vals[k] = float(v)
        return vals

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def backlog(n, users):
    topic = f"bench.{os.path.basename(OUT)}.{int(time.time())}.txn"
    topics(topic)
    run([bin_("bench_pipeline"), "produce", *common(topic), "-n", str(n), "-u", str(users),
         "-U", "1", "-S", "1", "--lag-ms", "2000"])
    out = run([bin_("bench_pipeline"), "consume", *common(topic), "-n", str(n)])
    bare = float(re.search(r"= (\d+) messages/s", out).group(1))
    return topic, bare


def empty_topic(name):
    """A topic of its own for a latency run: a fresh group on the backlog
    topic would first work through the whole backlog, and the latency
    measured would be that of the queue."""
    topic = f"bench.{os.path.basename(OUT)}.{int(time.time())}.{name}"
    topics(topic)
    return topic


def process_backlog(topic, n, extra, name):
    """One strata over the backlog of n events, until its offsets are
    committed. per_cpu is over the whole process, from its start: start-up,
    CDC catch-up and the first touch of every page included. warm_per_cpu is
    over the second half only: from the /metrics scrape that first counts
    n/2 events processed to the one after the end (both figures of one
    scrape come from one moment), None if no scrape caught the middle."""
    s = Strata(name, topic, extra)
    t0 = s.t0
    cmd = [bin_("bench_pipeline"), "wait", *common(topic), "-g", s.group, "-n", str(n), "-T", "1800"]
    announce(cmd)
    errf = open(os.path.join(s.dir, "wait.err"), "w+")
    w = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
    half = None
    while w.poll() is None:
        time.sleep(0.25)
        if half is None and s.port:
            try:
                m = s.metrics()
            except OSError:
                continue
            if m.get("strata_messages_processed_total", 0) >= n / 2:
                half = m
    errf.seek(0)
    err = errf.read()
    errf.close()
    if w.wait() != 0:
        raise RuntimeError(f"bench_pipeline wait failed ({w.returncode}): {err[-2000:]}")
    wall = time.monotonic() - t0
    cpu = s.cpu()
    m = s.metrics()
    s.stop()
    warm = None
    if half:
        key_n, key_c = "strata_messages_processed_total", "process_cpu_seconds_total"
        warm = (m[key_n] - half[key_n]) / (m[key_c] - half[key_c])
    return {"wall": wall, "cpu": cpu, "rate": n / wall, "per_cpu": n / cpu, "metrics": m,
            "warm_per_cpu": warm}


def freshness(s, topic, rate, n, first_user, lag_ms, save=None, split=False, linger=None):
    """Times events produced at rate to their feature hash in Redis; with s
    None, to their arrival at a plain consumer of the topic (the floor).
    With split, each event is also timed to a plain consumer of the topic
    beside strata (--split): the Kafka part of its freshness under the same
    load, at the cost of one more consumer on the broker."""
    cmd = [bin_("bench_pipeline"), "freshness", *common(topic), "-n", str(n),
           "-R", str(rate), "-U", str(first_user), "-S", str(first_user % 997), "--lag-ms", str(lag_ms)]
    cmd += (["-x", s.prefix] + (["--split"] if split else [])) if s else ["--kafka"]
    if linger is not None:
        cmd += ["--linger-ms", str(linger)]
    if save:
        cmd += ["-o", save]
    procs = {"strata": s.proc.pid if s else None, "redis": pid_file("redis"), "kafka": pid_file("kafka")}
    before = {k: cpu_of(p) for k, p in procs.items() if p}
    sched0 = main_thread_sched(s.proc.pid) if s else None
    idle0 = machine_idle()
    t0 = time.monotonic()
    announce(cmd)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    dt = time.monotonic() - t0
    after = {k: cpu_of(p) for k, p in procs.items() if p}
    idle1 = machine_idle()
    sched1 = main_thread_sched(s.proc.pid) if s else None
    out = r.stdout
    m = re.search(r"(\d+) of (\d+) seen(?: \((\d+) more in Redis[^)]*\))?"
                  r"(?:, p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, p999 ([0-9.]+) ms)?", out)
    seen, total = int(m.group(1)), int(m.group(2))
    res = {"rate": rate, "seen": seen, "n": total, "unnotified": int(m.group(3) or 0),
           "p50": float(m.group(4)) if m.group(4) else float("nan"),
           "p99": float(m.group(5)) if m.group(5) else float("nan"),
           "p999": float(m.group(6)) if m.group(6) else float("nan"),
           "cpu": {k: (after[k] - before[k]) / dt for k in after},
           "idle": (idle1[0] - idle0[0]) / max(idle1[1] - idle0[1], 1),
           "steal": (idle1[2] - idle0[2]) / max(idle1[1] - idle0[1], 1)}
    if sched0 and sched1:
        res["main_running"] = (sched1[0] - sched0[0]) / 1e9 / dt
        res["main_waiting"] = (sched1[1] - sched0[1]) / 1e9 / dt
    for key, label in (("kafka_part", "Kafka part"), ("rest", "the rest")):
        m = re.search(label + r"[^\n]*?, p50 (-?[0-9.]+) ms, p99 (-?[0-9.]+) ms, p999 (-?[0-9.]+) ms", out)
        if m:
            res[key] = {"p50": float(m.group(1)), "p99": float(m.group(2)), "p999": float(m.group(3))}
    return res


def main_thread_sched(pid):
    """(ns running, ns runnable but waiting for a core) of strata's main
    thread, the pipeline loop, from /proc/PID/task/PID/schedstat."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            run, wait, _ = (int(x) for x in f.read().split())
        return run, wait
    except OSError:
        return None


def machine_idle():
    """(idle + iowait jiffies, all jiffies, steal jiffies) of every core,
    from /proc/stat. Steal is time the hypervisor gave this machine's
    cores to someone else."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[3] + v[4], sum(v), v[7]


def warm_up(s, first_user):
    """Not counted: the first seconds of a new instance on new topics
    (partition leaders, the first transactions, the model's first runs)."""
    time.sleep(3)
    freshness(s, s.topic, 5000, 15000, first_user, 1000)
    time.sleep(2)


def bench_pipeline():
    n = 100000 if A.quick else 500000
    users = 100000
    reps = 1 if A.quick else 3
    topic, bare = backlog(n, users)
    res = {"n": n, "users": users, "bare": bare, "eos": [], "plain": [], "novec": []}
    # Warm-up: one pass, not counted.
    process_backlog(topic, n, {"exactly.once": "true"}, "warmup")
    for i in range(reps):
        res["eos"].append(process_backlog(topic, n, {"exactly.once": "true"}, f"eos{i}"))
        res["plain"].append(process_backlog(topic, n, {"exactly.once": "false"}, f"plain{i}"))
        res["novec"].append(process_backlog(topic, n, {"exactly.once": "true", "state.vectors": "false"},
                                            f"novec{i}"))
    # Freshness at 20,000 events/s, both modes, and with the CDC wait.
    fn = 40000 if A.quick else 100000
    for mode in ("true", "false"):
        s = Strata(f"fresh-{mode}", empty_topic(f"fresh-{mode}"),
                   {"exactly.once": mode, "scorer.model": A.model})
        warm_up(s, 60_000_000 if mode == "true" else 70_000_000)
        save = os.path.join(OUT, "raw", f"freshness-eos-{mode}.txt")
        res[f"fresh_{mode}"] = freshness(s, s.topic, 20000, fn, 10_000_000 if mode == "true" else 20_000_000,
                                         1000, save, split=True)
        if mode == "true":
            res["fresh_cdc"] = freshness(s, s.topic, 20000, fn // 4, 30_000_000, 0, split=True)
            res["fresh_linger"] = freshness(s, s.topic, 20000, fn, 35_000_000, 1000, split=True, linger=1)
            res["fresh_metrics"] = s.metrics()
        s.stop()
    # The floor: the same events timed to a plain consumer of the topic.
    ktopic = empty_topic("kafka-floor")
    freshness(None, ktopic, 5000, 15000, 90_000_000, 1000)
    res["fresh_kafka"] = freshness(None, ktopic, 20000, fn, 91_000_000, 1000,
                                   os.path.join(OUT, "raw", "freshness-kafka.txt"))
    res["fresh_kafka_linger"] = freshness(None, ktopic, 20000, fn, 92_000_000, 1000, linger=1)
    # Saturation: offered load stepped up until p99 crosses 50 ms.
    s = Strata("saturation", empty_topic("saturation"), {"exactly.once": "true", "scorer.model": A.model})
    warm_up(s, 80_000_000)
    steps = []
    for i, rate in enumerate([1000, 2000, 5000, 10000, 20000, 30000, 40000, 60000, 80000, 120000]):
        secs = 3 if A.quick else 5
        before = s.metrics()
        st = freshness(s, s.topic, rate, rate * secs, 40_000_000 + i * 1_000_000, 1000)
        after = s.metrics()
        st["stages"] = {stage: (after.get(f'strata_stage_seconds_sum{{stage="{stage}"}}', 0)
                                - before.get(f'strata_stage_seconds_sum{{stage="{stage}"}}', 0))
                        for stage in ("decode", "join", "window", "features", "score", "redis")}
        steps.append(st)
        if st["seen"] + st["unnotified"] < st["n"] or st["p99"] > 50:
            break
        time.sleep(2)
    s.stop()
    res["steps"] = steps
    return res


def use_as_library(a, name):
    """For bench/compare.py and bench/flink.py, which run this module's
    benchmarks one by one: the stack of their arguments a, their files under
    <stack>/<name>/raw, emptied first (every run starts from a fresh state)."""
    global A, OUT
    A = argparse.Namespace(root=a.root, stack=a.stack, bootstrap=a.bootstrap,
                           registry=a.registry, model=a.model, redis_port=a.redis_port,
                           quick=False)
    OUT = os.path.join(a.stack, name)
    shutil.rmtree(os.path.join(OUT, "raw"), ignore_errors=True)
    os.makedirs(os.path.join(OUT, "raw"), exist_ok=True)


def print_machine_reference():
    """The machine's speed now: bench_asof as bench/run runs it, once
    (bench/run reports the median of three)."""
    out = run([bin_("bench_asof"), "-k", "1000000", "-v", "10", "-n", "2000000"])
    get = [x for x in out.splitlines() if x.startswith("plain mdb_get")]
    print("machine reference (bench_asof -k 1000000 -v 10 -n 2000000, one run): "
          + (get[0] if get else "no 'plain mdb_get' line in its output: " + out[-300:])
          + "; bench/run's report has the same row (a median of three) for its day")


def bench_flink():
    """The Flink peer (bench/flink.py): strata, strata doing the job's work,
    and the Flink job, alternated on one backlog; None when its job did not
    build (bench/run says why)."""
    if not A.flink_job:
        return None
    spec = importlib.util.spec_from_file_location("flink", os.path.join(A.root, "bench", "flink.py"))
    fl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fl)
    n, reps = (100000, 1) if A.quick else (300000, 2)
    a = argparse.Namespace(root=A.root, bootstrap=A.bootstrap, registry=A.registry,
                           redis_port=A.redis_port, job=A.flink_job, heap="512m", parallelism=2)
    res = fl.rounds(sys.modules[__name__], a, n, reps)
    res.update(n=n, reps=reps, summary=fl.summary(sys.modules[__name__], res),
               job=os.path.basename(A.flink_job))
    return res


# ---- report -------------------------------------------------------------

def gnuplot(script):
    p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr, file=sys.stderr)


def seen_of(f):
    u = f.get("unnotified", 0)
    return f"{f['seen']}/{f['n']}" + (f" (+{u} in Redis, notification not seen)" if u else "")


def plots(pipe, scorer):
    files = {}
    # Freshness distribution (CDF).
    series = []
    for mode in ("true", "false", "kafka"):
        path = os.path.join(OUT, "raw", f"freshness-eos-{mode}.txt" if mode != "kafka" else "freshness-kafka.txt")
        if os.path.exists(path) and os.path.getsize(path):
            with open(path) as f:
                lat = [int(x) / 1000 for x in f]
            cdf = os.path.join(OUT, f"cdf-{mode}.dat")
            with open(cdf, "w") as f:
                for i, x in enumerate(lat):
                    if i % max(1, len(lat) // 2000) == 0 or i == len(lat) - 1:
                        f.write(f"{x} {(i + 1) / len(lat)}\n")
            title = "Kafka alone: produce -> plain consumer" if mode == "kafka" else f"strata, exactly.once={mode}"
            series.append(f"'{cdf}' using 1:2 with lines lw 2 title '{title}'")
    if series:
        files["freshness"] = "freshness.png"
        gnuplot(f"""set terminal pngcairo size 900,500
set output '{os.path.join(OUT, 'freshness.png')}'
set title 'Freshness at 20,000 events/s: produce -> visible in Redis (CDF)'
set xlabel 'milliseconds'; set ylabel 'fraction of events'; set logscale x; set grid
set key bottom right
plot {', '.join(series)}
""")
    # Throughput against offered load.
    dat = os.path.join(OUT, "saturation.dat")
    with open(dat, "w") as f:
        for st in pipe["steps"]:
            f.write(f"{st['rate']} {st['seen'] / max(st['n'], 1) * st['rate']} {st['p99']}\n")
    files["saturation"] = "saturation.png"
    gnuplot(f"""set terminal pngcairo size 900,500
set output '{os.path.join(OUT, 'saturation.png')}'
set title 'Throughput and freshness p99 against offered load'
set xlabel 'offered events/s'; set ylabel 'events/s made visible'; set y2label 'p99 ms'
set ytics nomirror; set y2tics; set grid; set key top left
plot '{dat}' using 1:2 with linespoints lw 2 title 'throughput', \\
     '{dat}' using 1:3 axes x1y2 with linespoints lw 2 title 'freshness p99 (ms)'
""")
    # Scoring cost against batch size.
    dat = os.path.join(OUT, "scorer.dat")
    with open(dat, "w") as f:
        for b in sorted(scorer["table"]):
            f.write(f"{b} {med(scorer['table'][b]['strata'])} {med(scorer['table'][b]['bare'])}\n")
    files["scorer"] = "scorer.png"
    gnuplot(f"""set terminal pngcairo size 900,500
set output '{os.path.join(OUT, 'scorer.png')}'
set title 'Scoring cost per row against batch size (fraud model, 1 thread)'
set xlabel 'batch size (rows)'; set ylabel 'ns per row'; set logscale xy; set grid
plot '{dat}' using 1:2 with linespoints lw 2 title 'strata scorer', \\
     '{dat}' using 1:3 with linespoints lw 2 title 'ONNX Runtime alone'
""")
    return files


def versions():
    v = {"strata": run([strata(), "version"]).strip()}
    try:
        v["redis"] = re.search(r"v=(\S+)", run(["redis-server", "--version"])).group(1)
    except Exception:
        pass
    with open(os.path.join(A.root, "scripts", "versions.sh")) as f:
        for line in f:
            m = re.match(r"(\w+_VERSION)=(\S+)", line)
            if m:
                v[m.group(1)] = m.group(2)
    v["lmdb"] = run(["pkg-config", "--modversion", "lmdb"]).strip()
    v["gcc"] = run(["gcc", "-dumpfullversion"]).strip()
    return v


def report(asof, cdc, online, scorer, pipe, files, serve, flink, rec):
    now = datetime.datetime.now(datetime.timezone.utc)
    with open("/proc/cpuinfo") as f:
        cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    v = versions()
    eos_rate = [r["rate"] for r in pipe["eos"]]
    plain_rate = [r["rate"] for r in pipe["plain"]]
    eos_cpu = [r["per_cpu"] for r in pipe["eos"]]
    novec_cpu = [r["per_cpu"] for r in pipe["novec"]]
    lines = []
    w = lines.append
    w(f"# strata benchmark report, {now:%Y-%m-%d %H:%M} UTC")
    w("")
    w(f"Machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
      f"{platform.platform()}; load average at the start {' '.join(load)}. The machine is shared: "
      "every ratio below is measured side by side in the same run; absolute rates move with the load. "
      f"The broker held {BROKER_AT_START[0]} topics ({BROKER_AT_START[1]} partitions) when the run began; "
      "the run deletes the topics and Redis keys it creates.")
    w("")
    w("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    w("")
    w("Made by `bench/run" + (" --quick" if A.quick else "") + "`; medians of the repetitions, the range in brackets.")
    w("")
    w("## Summary")
    w("")
    w("| figure | measured | peer or target | ratio |")
    w("| --- | --- | --- | --- |")
    w(f"| as-of lookups/s over {asof['versions']:,} versions | {spread(asof['asof'])} | plain `mdb_get` {spread(asof['get'])} | {spread(asof['ratio'], '{:.2f}')} (target >= 0.80) |")
    w(f"| temporal store ingest, versions/s | {spread(asof['ingest'])} | target 100,000 | {med(asof['ingest']) / 100000:.2f} |")
    w(f"| CDC change events decoded/s ({cdc['bytes']:,} bytes each) | {spread(cdc['own'])} | jansson's parse alone {spread(cdc['jansson'])} | {spread(cdc['ratio'], '{:.1f}')} |")
    w(f"| pipeline events per CPU-second (exactly-once, `state.vectors=false`: decode, two as-of joins, windows, Redis) | {spread(novec_cpu)} | target 150,000 | {med(novec_cpu) / 150000:.2f} |")
    w(f"| the same with the defaults (vectors also kept in LMDB for `strata serve`) | {spread(eos_cpu)} | target 150,000 | {med(eos_cpu) / 150000:.2f} |")
    w(f"| pipeline throughput, events/s (exactly-once) | {spread(eos_rate)} | bare consume {pipe['bare']:,.0f} msg/s | {med(eos_rate) / pipe['bare']:.3f} |")
    w(f"| cost of exactly-once (throughput) | {spread(eos_rate)} vs {spread(plain_rate)} | at most 10% | {1 - med(eos_rate) / med(plain_rate):+.1%} |")
    if flink and "error" in flink:
        w(f"| pipeline throughput against a Flink job doing the same work | not measured: the Flink peer failed ({flink['error']}) | | |")
    elif flink:
        fr = [x["rate"] for x in flink["Flink"]]
        sr = [x["rate"] for x in flink["strata, defaults"]]
        w(f"| pipeline throughput against a Flink job doing the same work (backlog of {flink['n']:,}) | {spread(sr)} | Flink {spread(fr)} (first event to last write) | {med(sr) / med(fr):.2f} (target >= 5) |")
    else:
        w("| pipeline throughput against a Flink job doing the same work | not run: the job did not build (see bench/run's output) | | |")
    f_t = pipe["fresh_true"]
    f_k = pipe["fresh_kafka"]
    w(f"| freshness at 20,000 events/s, p50 / p99 / p999 ms (with a plain consumer of the topic beside strata, `--split`) | {f_t['p50']:.2f} / {f_t['p99']:.2f} / {f_t['p999']:.2f} | target p50 < 1, p99 < 5 | {f_t['p99'] / 5:.1f}x the p99 target |")
    w(f"| freshness p99 vs Kafka's own produce-to-consume p99 at 20,000 events/s | {f_t['p99']:.2f} ms | Kafka alone {f_k['p99']:.2f} ms (p50 {f_k['p50']:.2f}) | {f_t['p99'] / f_k['p99']:.1f}x |")
    f_l, f_kl = pipe.get("fresh_linger"), pipe.get("fresh_kafka_linger")
    if f_l and f_kl:
        w(f"| the same with the generator at `linger.ms=1`, p50 / p99 / p999 ms | {f_l['p50']:.2f} / {f_l['p99']:.2f} / {f_l['p999']:.2f} | Kafka alone {f_kl['p99']:.2f} ms (p50 {f_kl['p50']:.2f}) | {f_l['p99'] / 5:.1f}x the p99 target |")
    if "kafka_part" in f_t and "rest" in f_t:
        w(f"| freshness p99 vs the Kafka part of the same events (a plain consumer beside strata, same run) | {f_t['p99']:.2f} ms | Kafka part {f_t['kafka_part']['p99']:.2f} ms, the rest {f_t['rest']['p99']:.2f} ms | {f_t['p99'] / f_t['kafka_part']['p99']:.1f}x |")
    for kind, batch, ratio in online["rows"]:
        w(f"| Redis writer ({kind}, batch {batch}) vs plain pipelined HSET | see below | redis-server's own HSET | {ratio:.2f} |")
    b64 = scorer["table"].get(64)
    if b64:
        w(f"| scoring ns/row at batch 64 | {spread(b64['strata'])} | ONNX Runtime alone {spread(b64['bare'])} | {med(b64['bare']) / med(b64['strata']):.2f} (target < 2,000 ns) |")
    w(f"| lookup over the Redis protocol (`strata serve`), HGETALL/s | {serve['strata']:,} | redis-server {serve['redis']:,} | {serve['ratio']:.2f} [{min(serve['ratios']):.2f} .. {max(serve['ratios']):.2f}] (target >= 0.80) |")
    for r in rec["rows"]:
        w(f"| `RECOMMEND` over {r['items']:,} items, requests/s | {r['req_s']:,.1f} | "
          f"ONNX Runtime alone scoring the same rows | server CPU {r['cpu_ratio']:.2f}x the model's |")
    w("")
    w("## Temporal store (`bench/bench_asof.c`)")
    w("")
    w(f"Command: `{asof['cmd']}` (a fresh LMDB per run, random keys and times).")
    w("")
    w(f"- ingest: {spread(asof['ingest'])} versions/s (batches of 100,000 per LMDB transaction)")
    w(f"- as-of lookup: {spread(asof['asof'])} lookups/s; plain `mdb_get` of an existing version key: {spread(asof['get'])} gets/s; ratio {spread(asof['ratio'], '{:.2f}')}")
    w("")
    w("## CDC decoding (`bench/bench_cdc.c`)")
    w("")
    w(f"Command: `{cdc['cmd']}`: one users change event as the stack's Debezium writes it, a 3,300-byte "
      "text column inside, decoded by `st_cdc_decode` (parse, key, binary row) and parsed by jansson's "
      "`json_loadb` alone (what the decoder was built on before), in alternating rounds.")
    w("")
    w(f"- `st_cdc_decode`: {spread(cdc['own'])} events/s; jansson alone: {spread(cdc['jansson'])} events/s; "
      f"ratio {spread(cdc['ratio'], '{:.1f}')}")
    w("")
    w("## Pipeline (`bench/bench_pipeline.c`, strata on the local stack)")
    w("")
    w(f"{pipe['n']:,} transactions for {pipe['users']:,} users, produced to a fresh 4-partition topic before strata starts; "
      f"bare librdkafka consume of that topic: {pipe['bare']:,.0f} messages/s. A warm-up pass first, then each mode {len(pipe['eos'])} times, "
      "from a fresh state each time; CPU is the strata process's user + system time.")
    w("")
    w("| mode | events/s | events per CPU-second | CPU s | wall s |")
    w("| --- | --- | --- | --- | --- |")
    for name, rs in (("exactly.once = true", pipe["eos"]), ("exactly.once = false", pipe["plain"]),
                     ("exactly.once = true, state.vectors = false", pipe["novec"])):
        w(f"| {name} | {spread([r['rate'] for r in rs])} | {spread([r['per_cpu'] for r in rs])} | "
          f"{spread([r['cpu'] for r in rs], '{:.2f}')} | {spread([r['wall'] for r in rs], '{:.2f}')} |")
    w("")
    m = pipe["eos"][-1]["metrics"]
    stage = {s: m.get(f'strata_stage_seconds_sum{{stage="{s}"}}', 0) for s in ("decode", "join", "window", "features", "score", "redis")}
    cnt = m.get('strata_stage_seconds_count{stage="decode"}', 1) or 1
    w("Time per stage in the last exactly-once pass (from strata's own `strata_stage_seconds`): " +
      ", ".join(f"{k} {v * 1e6 / cnt:.2f} us/event" for k, v in stage.items() if k not in ("score", "redis")) +
      f"; Redis flushes {stage['redis']:.2f} s in all; Kafka transaction commits "
      f"{m.get('strata_kafka_transaction_commit_seconds_sum', 0):.2f} s; LMDB commits {m.get('strata_lmdb_commit_seconds_sum', 0):.2f} s.")
    w("")
    w("### Freshness")
    w("")
    w("Events for distinct users at 20,000 events/s, timed from just before `produce` to the Redis keyspace "
      "notification of the user's hash (the model scores every event). Each run has a topic of its own, "
      "empty when strata starts, and 3 s at 5,000 events/s of warm-up, not counted, before it. The Kafka-alone "
      "rows are the floor under any consumer of the topic on this machine: the same generator, timed to a plain "
      "librdkafka consumer instead (`bench_pipeline freshness --kafka`). The generator produces with "
      "`linger.ms=0` and its producer is connected before the first timed event.")
    w("")
    w("| run | p50 ms | p99 ms | p999 ms | seen | Kafka part p50 / p99 ms | the rest p50 / p99 ms | machine idle (stolen) | cores used: strata / Kafka / Redis | strata's loop: running / waiting for a core |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, key in (("exactly.once = true, event time 1 s behind the clock", "fresh_true"),
                       ("exactly.once = false, event time 1 s behind the clock", "fresh_false"),
                       ("exactly.once = true, event time = produce time (waits for the CDC watermark)", "fresh_cdc"),
                       ("Kafka alone: the same events to a plain read_committed consumer (the floor)", "fresh_kafka"),
                       ("exactly.once = true, the generator with `linger.ms=1`", "fresh_linger"),
                       ("Kafka alone, the generator with `linger.ms=1`", "fresh_kafka_linger")):
        f = pipe.get(key)
        if not f:
            continue
        kp, rest = f.get("kafka_part"), f.get("rest")
        c = f["cpu"]
        w(f"| {label} | {f['p50']:.2f} | {f['p99']:.2f} | {f['p999']:.2f} | {seen_of(f)} | "
          + (f"{kp['p50']:.2f} / {kp['p99']:.2f} | {rest['p50']:.2f} / {rest['p99']:.2f}" if kp and rest else "- | -")
          + f" | {f['idle']:.0%} ({f['steal']:.0%}) | {c.get('strata', 0):.2f} / {c.get('kafka', 0):.2f} / {c.get('redis', 0):.2f} | "
          + (f"{f['main_running']:.0%} / {f['main_waiting']:.0%}" if "main_running" in f else "-") + " |")
    w("")
    w("The Kafka part is each event's produce-to-consume time at a plain read_committed consumer of the "
      "topic running beside strata in the same run (`bench_pipeline freshness --split`; that consumer is "
      "load on the broker the Kafka-alone row does not have), the rest is from there to the Redis "
      "notification; each column's quantiles are taken on their own, so they do not add up. Machine idle "
      "is the share of both cores idle during the run, stolen the share the hypervisor gave to other "
      "machines (/proc/stat); cores used are per process. The `linger.ms=1` rows "
      "let the generator batch for up to 1 ms (timed from before produce all the same): its thousands of "
      "one-event produce requests a second are much of the broker's load. The last column is "
      "the share of the run strata's pipeline thread spent on a core and runnable but waiting for one "
      "(the kernel's schedstat).")
    w("")
    if "freshness" in files:
        w(f"![freshness]({files['freshness']})")
        w("")
    w("### Saturation")
    w("")
    w("Offered load stepped up (5 s each, distinct users, event times 1 s behind) until p99 crosses 50 ms or "
      "events go missing, after a warm-up as above. CPU is the fraction of one core each process used during the step.")
    w("")
    w("| offered events/s | seen | p50 ms | p99 ms | strata CPU | Redis CPU | Kafka CPU | strata stage seconds (decode/join/window/features/score/redis) |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    sustained = 0
    for st in pipe["steps"]:
        ok = st["seen"] + st["unnotified"] == st["n"] and st["p99"] <= 50
        if ok:
            sustained = st["rate"]
        c = st["cpu"]
        w(f"| {st['rate']:,} | {seen_of(st)} | {st['p50']:.1f} | {st['p99']:.1f} | "
          f"{c.get('strata', 0):.2f} | {c.get('redis', 0):.2f} | {c.get('kafka', 0):.2f} | "
          + "/".join(f"{v:.2f}" for v in st["stages"].values()) + " |")
    last = pipe["steps"][-1]
    busiest = max(last["cpu"], key=last["cpu"].get) if last["cpu"] else "?"
    w("")
    w(f"Highest sustainable rate: **{sustained:,} events/s**. At the first failing step the busiest process was "
      f"**{busiest}** ({last['cpu'].get(busiest, 0):.2f} of a core); the machine has {os.cpu_count()} cores shared "
      "by the broker, Redis, the load generator and strata.")
    w("")
    w(f"![saturation]({files['saturation']})")
    w("")
    if flink and "error" not in flink:
        w("### Against Flink (`bench/flink.py`, the job in `bench/flink/src`)")
        w("")
        w(f"{flink['n']:,} transactions for 100,000 users on a fresh topic; bare librdkafka consume "
          f"{flink['bare']:,.0f} messages/s. Rounds: {flink['reps']}, each from a fresh state: strata with its "
          "defaults; strata doing the Flink job's work and no more (`features.topic` empty, "
          "`state.vectors=false`); the Flink job (Flink 1.20 DataStream on a local MiniCluster, parallelism 2, "
          "`-Xmx512m`: Confluent Avro through the registry, event-time as-of joins with the Debezium topics, "
          "the fraud features in keyed state, guarded pipelined Redis writes, checkpoints every second). "
          "The job's throughput is over the span from its first event decoded to its last Redis write "
          "acknowledged (no JVM start-up), its CPU the JVM's at exit (start-up included).")
        w("")
        w("| run | events/s | events per CPU-second | CPU s |")
        w("| --- | --- | --- | --- |")
        for name in ("strata, defaults", "strata, the Flink job's work"):
            rs = flink[name]
            w(f"| {name} | {spread([x['rate'] for x in rs])} | {spread([x['per_cpu'] for x in rs])} | "
              f"{spread([x['cpu'] for x in rs], '{:.2f}')} |")
        rs = flink["Flink"]
        w(f"| Flink | {spread([x['rate'] for x in rs])} ({spread([x['rate_whole'] for x in rs])} over its whole process) | "
          f"{spread([x['per_cpu'] for x in rs])} | {spread([x['cpu'] for x in rs], '{:.2f}')} |")
        w("")
        for line in flink["summary"]:
            w(f"- {line}")
        for i, (ag, di, mi, _) in enumerate(flink["compared"]):
            w(f"- round {i + 1}, outputs of 200 sampled users: {ag} agree with strata's, {di} differ, "
              f"{mi} written by one only")
        w("")
    w("## Redis writer (`bench/bench_online.c`)")
    w("")
    w(f"Command: `{online['cmd']}`")
    w("")
    w("```")
    w(online["raw"].strip())
    w("```")
    w("")
    w("## Feature lookup: `strata serve` against redis-server (`bench/bench_serve.c`)")
    w("")
    w(f"Command: `{serve['cmd']}`. HGETALL of random keys (18 fields) by the same hiredis client, pipelined "
      "64 deep, rounds alternating the two servers.")
    w("")
    w("```")
    w(serve["raw"].strip())
    w("```")
    w("")
    w("## Recommendations: `RECOMMEND` against bare scoring (`bench/bench_recommend.c`)")
    w("")
    w(f"Command: `{rec['cmd']}` (MODEL: `examples/train_recommend_model.py`). `RECOMMEND key COUNT 10` "
      "over random users at depth 1, rounds alternating with a bare `st_scorer_score()` of the same rows.")
    w("")
    w("| items | requests/s | p50 / p99 us | server CPU over bare scoring | wall over bare scoring |")
    w("| --- | --- | --- | --- | --- |")
    for r in rec["rows"]:
        w(f"| {r['items']:,} | {r['req_s']:,.1f} | {r['p50_us']:,.0f} / {r['p99_us']:,.0f} | "
          f"{r['cpu_ratio']:.2f} | {r['wall_ratio']:.2f} |")
    w("")
    w("```")
    w(rec["raw"].strip())
    w("```")
    w("")
    w("## Scorer (`bench/bench_scorer.c`)")
    w("")
    w(f"Command: `{scorer['cmd']}` (thread CPU time); `row_from_fields` {scorer['row_from_fields']:.0f} ns per row.")
    w("")
    w("| batch | strata ns/row | ONNX Runtime alone ns/row | ratio |")
    w("| --- | --- | --- | --- |")
    for b in sorted(scorer["table"]):
        t = scorer["table"][b]
        w(f"| {b} | {spread(t['strata'])} | {spread(t['bare'])} | {med(t['bare']) / med(t['strata']):.2f} |")
    w("")
    w(f"![scorer]({files['scorer']})")
    w("")
    w("## Commands, in order")
    w("")
    w("```")
    lines.extend(LOG)
    w("```")
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"asof": asof, "cdc": cdc, "online": {k: v for k, v in online.items() if k != "raw"},
                   "scorer": scorer, "serve": {k: v for k, v in serve.items() if k != "raw"},
                   "recommend": {k: v for k, v in rec.items() if k != "raw"},
                   "pipeline": {k: v for k, v in pipe.items()}, "flink": flink}, f, indent=1, default=str)


def main():
    global A, OUT
    p = argparse.ArgumentParser()
    for a in ("root", "stack", "bootstrap", "registry", "model"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--flink-job", default="", help="the built Flink peer (bench/run builds it)")
    A = p.parse_args()
    OUT = os.path.join(A.root, "bench", "results", datetime.date.today().isoformat())
    os.makedirs(os.path.join(OUT, "raw"), exist_ok=True)
    global BROKER_AT_START
    BROKER_AT_START = broker_partitions()
    asof = bench_asof()
    cdc = bench_cdc()
    online = bench_online()
    scorer = bench_scorer()
    serve = bench_serve()
    rec = bench_recommend()
    pipe = bench_pipeline()
    try:
        flink = bench_flink()
    except Exception as e:  # reported; the rest of the report stands
        print(f"bench: the Flink peer failed: {e}", file=sys.stderr)
        flink = {"error": " ".join(str(e).split())[-300:]}
    files = plots(pipe, scorer)
    report(asof, cdc, online, scorer, pipe, files, serve, flink, rec)
    clean_up()
    shutil.rmtree(os.path.join(OUT, "raw"), ignore_errors=True)
    print(f"report: {os.path.join(OUT, 'report.md')}")


if __name__ == "__main__":
    main()
