"""strata beside the Flink peer (run through bench/flink/run).

One backlog of N transactions (100,000 users, as bench/compare makes it),
then, alternated REPS times:

- strata with its defaults (exactly-once, the features topic, kept vectors);
- strata doing the Flink job's work and no more: no features topic, no kept
  vectors (decode, two as-of joins, windows, Redis), still exactly-once;
- the Flink job (bench/flink/src): the same decode, as-of joins, fraud
  features and guarded Redis writes, on a local MiniCluster, checkpointing
  every second.

Each run starts from a fresh state. strata's throughput is N over the time
from its start to its offsets committed; the Flink job's is given twice:
over its whole process (JVM start-up included) and over the span from its
first transaction decoded to its last Redis write acknowledged (generous
to Flink: no start-up, no end). The ratios quote the generous one. CPU is
the process's user + system time (strata: /proc while it runs; Flink: the
JVM's rusage at exit). Afterwards the two outputs are compared field by
field for a sample of users.
"""
import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time

import redis

OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "sun.nio.ch",
    "java.text", "java.time", "java.util", "java.util.concurrent",
    "java.util.concurrent.atomic", "java.util.concurrent.locks")]
# Compared for the sample: what both compute the same way.
SAME = ("txn_count_1h", "txn_count_24h", "distinct_merchants_24h", "user_segment",
        "user_risk_tier", "merchant_risk_score", "country_mismatch")
NUMERIC = ("amount", "txn_sum_1h", "txn_sum_24h", "avg_amount_24h", "max_amount_24h")


def flink_run(r, a, topic, name):
    d = os.path.join(r.OUT, "raw", name)
    os.makedirs(d, exist_ok=True)
    prefix = f"{os.path.basename(r.OUT)}-{name}-{int(time.time())}:user"
    r.PREFIXES.append(prefix)
    cmd = ["java", f"-Xmx{a.heap}", *OPENS, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
           "-cp", f"{a.job}/classes:{a.job}/libs/*", "strata.bench.FlinkFraud",
           "--bootstrap", a.bootstrap, "--topic", topic, "--registry", a.registry,
           "--schema", os.path.join(a.root, "schemas", "transaction.avsc"),
           "--redis-port", str(a.redis_port), "--prefix", prefix,
           "--parallelism", str(a.parallelism), "--checkpoint-ms", "1000",
           "--checkpoint-dir", os.path.join(d, "checkpoints"), "--group", prefix]
    r.announce(cmd)
    t0 = time.monotonic()
    with open(os.path.join(d, "flink.log"), "w") as log, \
         open(os.path.join(d, "flink.out"), "w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=log)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        raise RuntimeError(f"the Flink job failed ({p.returncode}): see {d}/flink.log")
    res = json.loads(text.strip().splitlines()[-1])
    res.update(wall=wall, cpu=ru.ru_utime + ru.ru_stime, prefix=prefix)
    return res


def compare_outputs(a, sprefix, fprefix, users, sample=200):
    """Field by field, for users both wrote: how many agree."""
    rc = redis.Redis(port=a.redis_port, decode_responses=True)
    rng = random.Random(1)
    agree = differ = missing = 0
    first_diff = None
    for u in rng.sample(range(1, users + 1), sample):
        # strata leaves a field without a value out of the hash; the job
        # writes it empty.
        s, f = rc.hgetall(f"{sprefix}:{u}"), rc.hgetall(f"{fprefix}:{u}")
        if not s or not f:
            missing += bool(s) != bool(f)
            continue
        ok = all(s.get(k, "") == f.get(k, "") for k in SAME) and all(
            (s.get(k, "") == "" and f.get(k, "") == "") or
            (s.get(k) and f.get(k) and abs(float(s[k]) - float(f[k])) <= 1e-6 * max(1, abs(float(f[k]))))
            for k in NUMERIC)
        if ok:
            agree += 1
        else:
            differ += 1
            if first_diff is None:
                first_diff = (u, {k: (s.get(k, ""), f.get(k, "")) for k in SAME + NUMERIC
                                  if s.get(k, "") != f.get(k, "")})
    return agree, differ, missing, first_diff


VARIANTS = (("strata, defaults", {"exactly.once": "true"}),
            ("strata, the Flink job's work",
             {"exactly.once": "true", "features.topic": "", "state.vectors": "false"}))


def rounds(r, a, n, reps, users=100000):
    """The backlog, then REPS rounds of the three runs; prints each run and
    returns the runs by name, and each round's output comparison."""
    res = {name: [] for name, _ in VARIANTS}
    res["Flink"], res["compared"] = [], []
    topic, bare = r.backlog(n, users)
    res["bare"] = bare
    print(f"bare librdkafka consume of the backlog: {bare:,.0f} messages/s")
    for i in range(reps):
        for j, (name, extra) in enumerate(VARIANTS):
            x = r.process_backlog(topic, n, extra, f"flink-peer-s{j}-{i}")
            res[name].append(x)
            print(f"run {i} {name}: {x['rate']:,.0f} events/s, "
                  f"{x['per_cpu']:,.0f} events per CPU-second (CPU {x['cpu']:.2f} s)", flush=True)
        f = flink_run(r, a, topic, f"flink-{i}")
        if f["events"] != n:
            raise RuntimeError(f"the Flink job read {f['events']} events of {n}")
        f.update(rate=n / f["span_s"], rate_whole=n / f["wall"], per_cpu=n / f["cpu"])
        res["Flink"].append(f)
        print(f"run {i} Flink (parallelism {a.parallelism}): {f['rate']:,.0f} events/s "
              f"from first event to last write ({f['span_s']:.2f} s), "
              f"{f['rate_whole']:,.0f} over its whole process ({f['wall']:.2f} s), "
              f"{f['per_cpu']:,.0f} events per CPU-second (CPU {f['cpu']:.2f} s), "
              f"{f['written']:,} vectors written", flush=True)
        sprefix = r.PREFIXES[-2]   # the "Flink job's work" strata of this round
        c = compare_outputs(a, sprefix, f["prefix"], users)
        res["compared"].append(c)
        ag, di, mi, fd = c
        print(f"run {i} outputs, 200 sampled users: {ag} agree with the strata run "
              f"beside it, {di} differ, {mi} written by one only"
              + (f"; first difference, user {fd[0]}: {fd[1]}" if fd else ""), flush=True)
    return res


def summary(r, res):
    """The medians and ratios, one line each."""
    fl = r.med([x["rate"] for x in res["Flink"]])
    fw = r.med([x["rate_whole"] for x in res["Flink"]])
    fc = r.med([x["per_cpu"] for x in res["Flink"]])
    out = [f"Flink: {r.spread([x['rate'] for x in res['Flink']])} events/s (first event to "
           f"last write), {r.spread([x['rate_whole'] for x in res['Flink']])} over the whole "
           f"process, {r.spread([x['per_cpu'] for x in res['Flink']])} events per CPU-second"]
    for name, _ in VARIANTS:
        rate = [x["rate"] for x in res[name]]
        pc = [x["per_cpu"] for x in res[name]]
        out.append(f"{name}: {r.spread(rate)} events/s, {r.med(rate) / fl:.2f}x Flink's "
                   f"({r.med(rate) / fw:.2f}x its whole process; target >= 5x); "
                   f"{r.spread(pc)} events per CPU-second, {r.med(pc) / fc:.2f}x Flink's")
    return out


def main():
    p = argparse.ArgumentParser()
    for k in ("root", "stack", "bootstrap", "registry", "model", "job"):
        p.add_argument(f"--{k}", required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("-n", type=int, default=300000, help="backlog events")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--parallelism", type=int, default=2, help="the Flink job's")
    p.add_argument("--heap", default="512m", help="the Flink JVM's -Xmx")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location(
        "report", os.path.join(a.root, "bench", "report.py"))
    r = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(r)
    r.use_as_library(a, "flink")
    print(f"command: bench/flink/run -n {a.n} --reps {a.reps} --parallelism {a.parallelism}"
          f" --heap {a.heap}")
    try:
        res = rounds(r, a, a.n, a.reps)
        for line in summary(r, res):
            print(line)
        r.print_machine_reference()
    finally:
        r.clean_up()
        shutil.rmtree(os.path.join(r.OUT, "raw"), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
