"""Runs strata's integration tests against the stack from scripts/stack.

usage: run.py --strata PATH [--only NAME]...
Prints one PASS/FAIL line per test and a final `N passed, N failed` line.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_cdc  # noqa: E402
import test_pipeline  # noqa: E402
import test_recovery  # noqa: E402

MODULES = {"cdc": test_cdc, "pipeline": test_pipeline, "recovery": test_recovery}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata", required=True)
    p.add_argument("--pg-port", type=int, default=int(os.environ.get("STRATA_PG_PORT", 54329)))
    p.add_argument("--bootstrap", default="127.0.0.1:" + os.environ.get("STRATA_KAFKA_PORT", "19092"))
    p.add_argument("--connect-url", default="http://127.0.0.1:" + os.environ.get("STRATA_CONNECT_PORT", "18083"))
    p.add_argument("--registry-url", default="http://127.0.0.1:" + os.environ.get("STRATA_REGISTRY_PORT", "18081") + "/apis/ccompat/v7")
    p.add_argument("--redis-port", type=int, default=int(os.environ.get("STRATA_REDIS_PORT", 16379)))
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--module", action="append", default=[],
                   help="cdc, pipeline, recovery (default: all)")
    args = p.parse_args()
    env = harness.Env(args)
    ok = True
    for name, mod in MODULES.items():
        if args.module and name not in args.module:
            continue
        tests = [t for t in mod.TESTS if not args.only or t.__name__ in args.only]
        if not tests:
            continue
        passed = False
        try:
            passed = harness.run_tests(tests, env)
            ok = passed and ok
        finally:
            mod.teardown(env)
            harness.kill_leftovers()
        if passed and hasattr(mod, "TOPIC_RUN"):
            harness.delete_run_topics(env, mod.TOPIC_RUN)
    print(f"(logs and state under {env.workdir})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
