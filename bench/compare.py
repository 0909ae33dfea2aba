"""Side by side: two or more strata binaries (or option sets) over one
backlog, alternated, in one run (through bench/compare).

Produces N transactions for 100,000 users to a fresh topic, then runs each
variant over the whole backlog from a fresh state, REPS times, alternating
the variants, and prints events per strata CPU-second for each run and the
medians, with the ratio of each variant to the first: over the whole process
and over the second half of the backlog alone (a warm process, read from
strata's /metrics). Then, unless --no-reference, the machine's speed at that
moment: bench_asof with bench/run's parameters, whose plain mdb_get rate
compares with the same row of any bench/run report (a shared machine's speed
moves by a third over hours; this tells a slower machine from slower code).
Uses bench/report.py's
backlog and process helpers, so the figures are made as bench/run makes
them.

With --freshness RATE, each variant instead runs caught up on a topic of
its own, and N events are timed at RATE events/s from produce to their
feature hash in Redis (as bench/run's freshness figure, split into the
Kafka part and the rest), alternated with the same events timed to a plain
consumer of a topic with no strata running (Kafka's own produce-to-consume time,
the floor); p50 / p99 / p999, machine idle and cores used per process, per
run and medians. --linger 0,1 repeats all of it with the generator at each
linger.ms, alternated within every repetition.

  bench/compare [-n N] [--reps R] [--freshness RATE [--linger MS[,MS...]]]
                VARIANT [VARIANT ...]

A VARIANT is a strata binary, optionally followed by ,key=value settings:
  build/src/strata  /tmp/strata-old  build/src/strata,state.vectors=false
"""
import argparse
import importlib.util
import os
import shutil
import sys


def main():
    p = argparse.ArgumentParser()
    for a in ("root", "stack", "bootstrap", "registry", "model"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("-n", type=int, default=300000, help="backlog events")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--freshness", type=int, metavar="RATE",
                   help="time N events at RATE events/s to Redis instead")
    p.add_argument("--linger", metavar="MS[,MS...]",
                   help="with --freshness: the generator's linger.ms, or several, "
                        "each run in every repetition (default: bench_pipeline's, 0 up "
                        "to 50,000 events/s)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the machine-speed reference (bench_asof) after the runs")
    p.add_argument("variants", nargs="+")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location(
        "report", os.path.join(a.root, "bench", "report.py"))
    r = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(r)
    r.use_as_library(a, "compare")
    variants = []
    for v in a.variants:
        binary, *settings = v.split(",")
        extra = {"exactly.once": "true"}
        extra.update(s.split("=", 1) for s in settings)
        variants.append((v, os.path.abspath(binary), extra))
    print("command: bench/compare -n %d --reps %d%s%s %s" % (
        a.n, a.reps, f" --freshness {a.freshness}" if a.freshness else "",
        f" --linger {a.linger}" if a.linger else "", " ".join(a.variants)))
    a.linger = [int(x) for x in a.linger.split(",")] if a.linger else [None]
    try:
        if a.freshness:
            return freshness(r, a, variants)
        topic, bare = r.backlog(a.n, 100000)
        print(f"bare librdkafka consume of the backlog: {bare:,.0f} messages/s")
        r.process_backlog(topic, a.n, {"exactly.once": "true"}, "warmup")
        per_cpu = [[] for _ in variants]   # by position: A/A is allowed
        warm = [[] for _ in variants]
        for i in range(a.reps):
            for j, (name, binary, extra) in enumerate(variants):
                r.strata = lambda b=binary: b
                res = r.process_backlog(topic, a.n, extra, f"v{j}-{i}")
                per_cpu[j].append(res["per_cpu"])
                if res["warm_per_cpu"]:
                    warm[j].append(res["warm_per_cpu"])
                w = f"{res['warm_per_cpu']:,.0f}" if res["warm_per_cpu"] else "?"
                print(f"run {i} variant {j + 1} {name}: {res['per_cpu']:,.0f} events per "
                      f"CPU-second ({w} over the second half), {res['rate']:,.0f} events/s, "
                      f"CPU {res['cpu']:.2f} s", flush=True)
        first, wfirst = r.med(per_cpu[0]), r.med(warm[0]) if warm[0] else None
        for j, (name, _, _) in enumerate(variants):
            half = "not caught (a strata without strata_messages_processed_total?)"
            if warm[j]:
                half = r.spread(warm[j]) + (f", {r.med(warm[j]) / wfirst:.2f}x the first"
                                            if wfirst else "")
            print(f"median variant {j + 1} {name}: {r.spread(per_cpu[j])} events per "
                  f"CPU-second, {r.med(per_cpu[j]) / first:.2f}x the first; second half {half}")
        if not a.no_reference:
            r.print_machine_reference()
    finally:
        r.clean_up()
        shutil.rmtree(os.path.join(r.OUT, "raw"), ignore_errors=True)


def cores(res, name):
    """The cores process `name` used in a freshness run, or "?" (no pid file)."""
    v = res["cpu"].get(name)
    return "?" if v is None else f"{v:.2f}"


def freshness(r, a, variants):
    """Freshness at a.freshness events/s per variant and generator linger,
    and Kafka's floor at each linger."""
    runs = []   # (name, linger, binary or None, extra), in the order run
    for linger in a.linger:
        tag = f" [generator linger.ms={linger}]" if len(a.linger) > 1 else ""
        runs.append(("kafka (floor)" + tag, linger, None, None))
        runs += [(name + tag, linger, binary, extra) for name, binary, extra in variants]
    got = {name: [] for name, _, _, _ in runs}
    ktopic = r.empty_topic("floor")
    r.freshness(None, ktopic, 5000, 15000, 90_000_000, 1000)
    user = 100_000_000
    for i in range(a.reps):
        for j, (name, linger, binary, extra) in enumerate(runs):
            if binary is None:
                res = r.freshness(None, ktopic, a.freshness, a.n, user, 1000, linger=linger)
                user += a.n
                got[name].append(res)
                print(f"run {i} {name}: p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, "
                      f"p999 {res['p999']:.2f} ms; machine idle {res['idle']:.0%} (stolen {res['steal']:.0%}); cores used: "
                      f"Kafka {cores(res, 'kafka')}, Redis {cores(res, 'redis')}", flush=True)
                continue
            r.strata = lambda b=binary: b
            s = r.Strata(f"f{j}-{i}", r.empty_topic(f"f{j}-{i}"),
                         {"scorer.model": a.model, **extra})
            r.warm_up(s, user)
            user += 15000
            before = s.metrics()
            res = r.freshness(s, s.topic, a.freshness, a.n, user, 1000, split=True,
                              linger=linger)
            after = s.metrics()
            user += a.n
            s.stop()
            commits = (after.get("strata_lmdb_commit_seconds_count", 0)
                       - before.get("strata_lmdb_commit_seconds_count", 0))
            lmdb_ms = 1000 * (after.get("strata_lmdb_commit_seconds_sum", 0)
                              - before.get("strata_lmdb_commit_seconds_sum", 0)) / max(commits, 1)
            got[name].append(res)
            print(f"run {i} {name}: {res['seen']} of {res['n']} seen, "
                  f"p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, p999 {res['p999']:.2f} ms "
                  f"(Kafka part p99 {res.get('kafka_part', {}).get('p99', float('nan')):.2f} ms, "
                  f"the rest {res.get('rest', {}).get('p99', float('nan')):.2f} ms); machine idle {res['idle']:.0%} (stolen {res['steal']:.0%}); "
                  f"strata's loop running {res.get('main_running', float('nan')):.0%}, waiting for a core "
                  f"{res.get('main_waiting', float('nan')):.0%}; "
                  f"cores used: strata {cores(res, 'strata')}, Kafka {cores(res, 'kafka')}, "
                  f"Redis {cores(res, 'redis')}; "
                  f"{commits:.0f} LMDB commits, {lmdb_ms:.2f} ms each on average", flush=True)
    floors = {linger: r.med([x["p99"] for x in got[name]])
              for name, linger, binary, _ in runs if binary is None}
    for name, linger, _, _ in runs:
        p50, p99, p999 = ([x[q] for x in got[name]] for q in ("p50", "p99", "p999"))
        used = " ".join(f"{k} {r.med([x['cpu'][k] for x in got[name]]):.2f}"
                        for k in ("strata", "kafka", "redis") if k in got[name][0]["cpu"])
        print(f"median {name}: p50 {r.spread(p50, '{:.2f}')} ms, p99 {r.spread(p99, '{:.2f}')} ms, "
              f"p999 {r.spread(p999, '{:.2f}')} ms; p99 {r.med(p99) / floors[linger]:.2f}x Kafka's "
              f"at the same linger; cores used: {used}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
