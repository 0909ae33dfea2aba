"""CDC into the temporal store, end to end: PostgreSQL -> Debezium -> Kafka
-> strata -> LMDB, checked through `strata asof`."""
import os
import random
import signal
import subprocess
import time

from harness import ROOT, Strata, pg_now_ms, psql, wait_until

# Each run works on ids of its own, so the tests can run again on the same
# stack without a reset.
RUN = random.Random().randrange(10**6, 10**9)
strata = None


def _strata(env):
    global strata
    if strata is None:
        strata = Strata(env, "cdc").start()
        # Caught up with the snapshot: a seeded row is there.
        wait_until("strata to apply the snapshot",
                   lambda: strata.has_state() and strata.asof("users", 1), 60)
    return strata


def _new_user(env, uid, segment="standard"):
    psql(env, f"INSERT INTO users (id, name, email, country, segment, bio) VALUES "
              f"({uid}, 'it-{uid}', 'it{uid}@example.com', 'DE', '{segment}', "
              f"repeat('bio of {uid} ', 400))")


def test_update_reaches_strata(env):
    """An UPDATE committed in Postgres is in strata's store within 10 s."""
    s = _strata(env)
    uid = RUN
    _new_user(env, uid)
    wait_until("the insert", lambda: s.asof("users", uid), 10)
    t0 = time.monotonic()
    psql(env, f"UPDATE users SET segment = 'platinum' WHERE id = {uid}")
    row = wait_until("the update",
                     lambda: (s.asof("users", uid) or {}).get("row", {}).get("segment") == "platinum",
                     10, 0.02)
    assert row
    return f"update visible through strata asof after {time.monotonic() - t0:.2f}s"


def test_asof_answers_by_commit_time(env):
    """Each version answers for its own interval; a delete ends validity."""
    s = _strata(env)
    uid = RUN + 1
    _new_user(env, uid, "silver")
    wait_until("insert", lambda: s.asof("users", uid), 10)
    t_silver = pg_now_ms(env)
    time.sleep(0.01)
    psql(env, f"UPDATE users SET segment = 'gold' WHERE id = {uid}")
    wait_until("update", lambda: s.asof("users", uid)["row"]["segment"] == "gold", 10)
    t_gold = pg_now_ms(env)
    time.sleep(0.01)
    psql(env, f"DELETE FROM users WHERE id = {uid}")
    wait_until("delete", lambda: s.asof("users", uid) is None, 10)
    assert s.asof("users", uid, t_silver)["row"]["segment"] == "silver"
    assert s.asof("users", uid, t_gold)["row"]["segment"] == "gold"
    hist = s.history("users", uid)
    assert [v["deleted"] for v in hist] == [True, False, False], hist
    assert hist[1]["valid_to"] == hist[0]["valid_from"]
    assert hist[2]["valid_to"] == hist[1]["valid_from"]
    r = subprocess.run([env.strata, "asof", "-c", s.conf, "users", str(uid), "now"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "deleted at" in r.stderr, r.stderr


def test_primary_key_change(env):
    """UPDATE of the primary key: the old key ends, the new key starts."""
    s = _strata(env)
    old, new = RUN + 2, RUN + 3
    psql(env, f"INSERT INTO items (id, merchant_id, title, category, price) "
              f"VALUES ({old}, 1, 'it-item', 'book', 12.50)")
    wait_until("insert", lambda: s.asof("items", old), 10)
    psql(env, f"UPDATE items SET id = {new} WHERE id = {old}")
    wait_until("the new key", lambda: s.asof("items", new), 10)
    wait_until("the old key to end", lambda: s.asof("items", old) is None, 10)
    row = s.asof("items", new)["row"]
    assert row["title"] == "it-item" and row["price"] == "12.50", row
    assert s.history("items", old)[0]["deleted"] is True


def test_unchanged_toast_column_keeps_value(env):
    """An UPDATE that leaves a TOASTed column alone: Debezium sends its
    placeholder; strata keeps the previous value and never stores it."""
    s = _strata(env)
    uid = RUN + 4
    _new_user(env, uid)
    wait_until("insert", lambda: s.asof("users", uid), 10)
    bio = s.asof("users", uid)["row"]["bio"]
    assert len(bio) > 2000
    psql(env, f"UPDATE users SET risk_tier = 4 WHERE id = {uid}")
    wait_until("update", lambda: s.asof("users", uid)["row"]["risk_tier"] == 4, 10)
    row = s.asof("users", uid)["row"]
    assert row["bio"] == bio, "bio lost or replaced"
    # Did Debezium really send the placeholder? Read the topic itself.
    raw = subprocess.run(["kcat", "-b", env.bootstrap, "-C", "-t", "strata.public.users",
                          "-o", "-50", "-e", "-q"], capture_output=True, text=True).stdout
    assert "__debezium_unavailable_value" in raw, "Debezium sent no TOAST placeholder"
    assert "__debezium_unavailable_value" not in str(s.history("users", uid))


def test_added_and_removed_column(env):
    """ALTER TABLE ADD COLUMN: later versions carry it, earlier ones do not;
    after DROP COLUMN it reads as absent."""
    s = _strata(env)
    mid = RUN % 100000 + 10000
    psql(env, f"INSERT INTO merchants (id, name, category, mcc, country, risk_score) "
              f"VALUES ({mid}, 'it-m', 'travel', 4722, 'FR', 0.3)")
    wait_until("insert", lambda: s.asof("merchants", mid), 10)
    t_before = pg_now_ms(env)
    psql(env, "ALTER TABLE merchants ADD COLUMN IF NOT EXISTS it_channel text")
    try:
        psql(env, f"UPDATE merchants SET it_channel = 'online' WHERE id = {mid}")
        wait_until("the new column",
                   lambda: s.asof("merchants", mid)["row"].get("it_channel") == "online", 15)
        assert "it_channel" not in s.asof("merchants", mid, t_before)["row"]
    finally:
        psql(env, "ALTER TABLE merchants DROP COLUMN IF EXISTS it_channel")
    psql(env, f"UPDATE merchants SET risk_score = 0.9 WHERE id = {mid}")
    wait_until("update after drop", lambda: s.asof("merchants", mid)["row"]["risk_score"] == 0.9, 15)
    assert "it_channel" not in s.asof("merchants", mid)["row"]


def test_connect_restart_duplicates_change_nothing(env):
    """kill -9 of Kafka Connect right after changes: on restart Debezium
    sends again what it had not flushed; the store is unchanged."""
    s = _strata(env)
    uid = RUN + 5
    _new_user(env, uid)
    wait_until("insert", lambda: s.asof("users", uid), 10)
    for i in range(1, 6):
        psql(env, f"UPDATE users SET risk_tier = {i} WHERE id = {uid}")
    wait_until("all updates", lambda: s.asof("users", uid)["row"]["risk_tier"] == 5, 10)
    before = s.history("users", uid)
    pidfile = os.path.join(ROOT, ".stack", "run", "connect.pid")
    with open(pidfile) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    subprocess.run([os.path.join(ROOT, "scripts", "stack"), "up"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    psql(env, f"UPDATE users SET risk_tier = 1 WHERE id = {uid}")
    wait_until("the update after the restart",
               lambda: s.asof("users", uid)["row"]["risk_tier"] == 1, 30)
    after = s.history("users", uid)
    # One new version on top; the old newest now ends where it starts.
    assert len(after) == len(before) + 1, (len(before), len(after))
    assert after[1]["valid_to"] == after[0]["valid_from"]
    after[1]["valid_to"] = None
    assert after[1:] == before, "a redelivered change altered the history"
    dups = sum(1 for line in s.log_text().splitlines()
               if f"key={uid} " in line and line.endswith("(duplicate)"))
    return f"{dups} duplicate deliveries of user {uid} seen, history unchanged"


def test_bad_cdc_message_goes_to_dlq(env):
    """A malformed message on a CDC topic goes to the dead-letter topic with
    its origin; the stream keeps flowing."""
    s = _strata(env)
    marker = f"it-bad-{RUN}"
    subprocess.run(["kcat", "-b", env.bootstrap, "-P", "-t", "strata.public.users",
                    "-K", "|"], input=f'{{"id":1}}|{{"op":"u","{marker}":\n',
                   text=True, check=True)
    uid = RUN + 6
    _new_user(env, uid)
    wait_until("the stream to keep flowing", lambda: s.asof("users", uid), 10)
    out = subprocess.run(["kcat", "-b", env.bootstrap, "-C", "-t", "strata.dlq", "-e", "-q",
                          "-f", "%h|%s\n"], capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if marker in l), None)
    assert line, "no dead letter"
    assert "strata.errors.topic=strata.public.users" in line, line
    assert "strata.errors.reason=decode" in line, line
    assert "strata.errors.offset=" in line and "invalid JSON" in line, line


def teardown(env):
    if strata is not None:
        rc = strata.stop()
        assert rc == 0, f"strata exited with {rc}"


TESTS = [
    test_update_reaches_strata,
    test_asof_answers_by_commit_time,
    test_primary_key_change,
    test_unchanged_toast_column_keeps_value,
    test_added_and_removed_column,
    test_connect_restart_duplicates_change_nothing,
    test_bad_cdc_message_goes_to_dlq,
]
