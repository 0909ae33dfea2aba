"""Helpers for strata's integration tests on the real local stack.

Everything here talks to the real components started by scripts/stack:
PostgreSQL through psql, Kafka Connect through its REST API, strata
through its command line.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
import urllib.request

from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Env:
    def __init__(self, args):
        self.strata = args.strata
        self.pg_port = args.pg_port
        self.bootstrap = args.bootstrap
        self.connect_url = args.connect_url
        self.registry_url = args.registry_url
        self.redis_port = args.redis_port
        self.workdir = tempfile.mkdtemp(prefix="strata-it-")


def psql(env, sql, db="strata", user="strata"):
    """Runs SQL in its own transaction; returns stdout (unaligned, tuples only)."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(env.pg_port), "-U", user, "-d", db,
         "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


def pg_now_ms(env):
    return int(psql(env, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"))


def registry_client(env):
    """Confluent's schema-registry client with a timeout: without one
    (its default) a request the registry never answers blocks the test
    for good (seen twice: 30 minutes in recvfrom while the registry
    answered new requests). A timed-out request is retried (max.retries,
    3)."""
    return SchemaRegistryClient({"url": env.registry_url, "timeout": 10})


def wait_until(what, fn, timeout=20.0, interval=0.1):
    """Polls fn until it returns a true value; returns it or raises."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def serve(env, s, extra=None):
    """`strata serve` on instance s's configuration and state, on a free
    port, with the settings of extra besides: yields the port; stopped on
    leaving, and must exit 0."""
    log = os.path.join(s.dir, "serve.log")
    args = [env.strata, "serve", "-c", s.conf,
            "-X", "serve.listen=127.0.0.1:0", "-X", "serve.metrics.listen="]
    for k, v in (extra or {}).items():
        args += ["-X", f"{k}={v}"]
    with open(log, "wb") as lf:
        proc = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT)
    try:
        def port():
            with open(log) as f:
                m = re.search(r"on port (\d+)", f.read())
            return int(m.group(1)) if m else None
        yield wait_until("strata serve to listen", port, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    assert rc == 0, f"strata serve exited with {rc}"


class Strata:
    """A `strata run` process with its own state directory and config."""

    started = []    # every instance, so that none outlives the tests

    def __init__(self, env, name, extra=None):
        self.env = env
        self.dir = os.path.join(env.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "strata.conf")
        self.log = os.path.join(self.dir, "strata.log")
        lines = {
            "state.dir": os.path.join(self.dir, "state"),
            "kafka.bootstrap.servers": env.bootstrap,
            "kafka.group.id": f"it-{name}-{os.getpid()}",
            "log.level": "debug",
            "http.listen": "127.0.0.1:0",
            "registry.url": env.registry_url,
            "redis.port": str(env.redis_port),
            "redis.prefix": f"it-{name}-{os.getpid()}:user",
            "transactions.schema": os.path.join(ROOT, "schemas", "transaction.avsc"),
            "features.file": os.path.join(ROOT, "examples", "fraud.features"),
        }
        lines.update(extra or {})
        with open(self.conf, "w") as f:
            for k, v in lines.items():
                f.write(f"{k} = {v}\n")
        self.proc = None

    def start(self):
        self.logf = open(self.log, "ab")
        self.start_time = time.time()
        self.proc = subprocess.Popen([self.env.strata, "run", "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        Strata.started.append(self)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def has_state(self):
        return os.path.exists(os.path.join(self.dir, "state", "data.mdb"))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args):
        return subprocess.run([self.env.strata, args[0], "-c", self.conf, *args[1:]],
                              capture_output=True, text=True)

    def asof(self, table, key, t="now"):
        """The row valid at t as a dict (with valid_from...), or None."""
        r = self.cli("asof", table, str(key), str(t))
        if r.returncode == 1:
            return None
        if r.returncode != 0:
            raise AssertionError(f"strata asof failed: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def history(self, table, key):
        r = self.cli("asof", "--history", table, str(key))
        if r.returncode == 1 and "no versions" in r.stderr:
            return []
        if r.returncode != 0:
            raise AssertionError(f"strata asof --history failed: {r.stderr.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines()]

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def metrics_port(self):
        m = re.search(r"metrics on http://\S+ \(port (\d+)\)", self.log_text())
        assert m, "no metrics endpoint in the log"
        return int(m.group(1))

    def metric_sum(self, name, **labels):
        """The sum of a family's samples whose labels include `labels`,
        read from /metrics (0 before the endpoint is up)."""
        if not re.search(r"\(port \d+\)", self.log_text()):
            return 0
        url = f"http://127.0.0.1:{self.metrics_port()}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total


def run_tests(tests, env):
    """Runs each test(env); prints a plain `N passed, N failed` line."""
    passed = failed = 0
    for test in tests:
        t0 = time.monotonic()
        try:
            note = test(env)
            passed += 1
            print(f"PASS {test.__name__} ({time.monotonic() - t0:.1f}s)"
                  + (f": {note}" if note else ""), flush=True)
        except Exception:  # a failed assertion or an error: report and go on
            failed += 1
            print(f"FAIL {test.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
            traceback.print_exc()
            _keep_stack_logs(env, test.__name__)
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0


def delete_run_topics(env, run_id):
    """Deletes the topics a module's run made (it.KIND.RUN..., rec.KIND.RUN...):
    left behind, they pile up on a stack that lives between runs. Called
    only when the module passed: a failure's topics stay to be looked at."""
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics
             if t.split(".")[0] in ("it", "rec") and len(t.split(".")) > 2
             and t.split(".")[2].startswith(str(run_id))]
    if not names:
        return
    for name, f in admin.delete_topics(names, operation_timeout=30).items():
        try:
            f.result(60)
        except Exception as exc:  # reported, not a test failure
            print(f"deleting topic {name}: {exc}", flush=True)


def _keep_stack_logs(env, name):
    """Copies the stack's logs next to the test's own: CI throws the clone,
    and .stack with it, away."""
    logs = os.path.join(ROOT, ".stack", "logs")
    dest = os.path.join(env.workdir, f"stack-logs-{name}")
    try:
        shutil.copytree(logs, dest, ignore=shutil.ignore_patterns("*.stdout"))
        print(f"(stack logs kept in {dest})", flush=True)
    except OSError as exc:
        print(f"(stack logs not kept: {exc})", flush=True)


def kill_leftovers():
    """Stops every instance a failed test left running."""
    for s in Strata.started:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGCONT)
            s.proc.kill()
            s.proc.wait()
