"""Side by side: two or more strata binaries (or option sets) over one
backlog, alternated, in one run (through bench/compare).

Produces N transactions for 100,000 users to a fresh topic, then runs each
variant over the whole backlog from a fresh state, REPS times, alternating
the variants, and prints events per strata CPU-second for each run and the
medians, with the ratio of each variant to the first. Uses bench/report.py's
backlog and process helpers, so the figures are made as bench/run makes
them.

  bench/compare [-n N] [--reps R] VARIANT [VARIANT ...]

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
    p.add_argument("variants", nargs="+")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location(
        "report", os.path.join(a.root, "bench", "report.py"))
    r = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(r)
    r.A = argparse.Namespace(root=a.root, stack=a.stack, bootstrap=a.bootstrap,
                             registry=a.registry, model=a.model,
                             redis_port=a.redis_port, quick=False)
    r.OUT = os.path.join(a.stack, "compare")
    # Every run starts from a fresh state: nothing of an earlier compare.
    shutil.rmtree(os.path.join(r.OUT, "raw"), ignore_errors=True)
    os.makedirs(os.path.join(r.OUT, "raw"), exist_ok=True)
    variants = []
    for v in a.variants:
        binary, *settings = v.split(",")
        extra = {"exactly.once": "true"}
        extra.update(s.split("=", 1) for s in settings)
        variants.append((v, os.path.abspath(binary), extra))
    print("command: bench/compare -n %d --reps %d %s" % (a.n, a.reps, " ".join(a.variants)))
    try:
        topic, bare = r.backlog(a.n, 100000)
        print(f"bare librdkafka consume of the backlog: {bare:,.0f} messages/s")
        r.process_backlog(topic, a.n, {"exactly.once": "true"}, "warmup")
        per_cpu = [[] for _ in variants]   # by position: A/A is allowed
        for i in range(a.reps):
            for j, (name, binary, extra) in enumerate(variants):
                r.strata = lambda b=binary: b
                res = r.process_backlog(topic, a.n, extra, f"v{j}-{i}")
                per_cpu[j].append(res["per_cpu"])
                print(f"run {i} variant {j + 1} {name}: {res['per_cpu']:,.0f} events per "
                      f"CPU-second, {res['rate']:,.0f} events/s, CPU {res['cpu']:.2f} s",
                      flush=True)
        first = r.med(per_cpu[0])
        for j, (name, _, _) in enumerate(variants):
            print(f"median variant {j + 1} {name}: {r.spread(per_cpu[j])} events per "
                  f"CPU-second, {r.med(per_cpu[j]) / first:.2f}x the first")
    finally:
        r.clean_up()
        shutil.rmtree(os.path.join(r.OUT, "raw"), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
