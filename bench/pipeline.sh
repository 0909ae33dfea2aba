#!/usr/bin/env bash
# The pipeline benchmark on the local stack (scripts/stack up first, or run
# scripts/demo once). Prints every figure with the command that made it.
#
#   bench/pipeline.sh [EVENTS] [FRESHNESS_RATE] [FRESHNESS_EVENTS] [USERS]
#
# 1. EVENTS transactions (users 1..USERS, merchants 1..200) are produced to a
#    fresh 4-partition topic, and the bare librdkafka consume rate of that
#    topic is measured.
# 2. strata processes that backlog from a fresh state, once with
#    exactly.once=true and once with exactly.once=false, side by side: events
#    per CPU-second of the strata process (user + system time from /proc) and
#    throughput.
# 3. Freshness, each mode, strata caught up: FRESHNESS_EVENTS events for
#    distinct users at FRESHNESS_RATE events/s, produce -> Redis keyspace
#    notification, p50/p99/p999, with event times 1 s behind the clock (the
#    CDC watermark, 130-170 ms behind the clock, has passed them); then once
#    with event time = produce time (each event waits for the CDC watermark).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

N=${1:-500000}
RATE=${2:-20000}
FN=${3:-100000}
USERS=${4:-100000}
BP=$ROOT/build/bench/bench_pipeline
STRATA=$ROOT/build/src/strata
RUN=bench$(date +%s)
DIR=$STACK_DIR/bench/$RUN
mkdir -p "$DIR"

"$ROOT/scripts/stack" status >/dev/null || die "the stack is not up: scripts/stack up"
make -C "$ROOT/build" -s all bench >/dev/null

topics() {
	"$VENV/bin/python" - "$BOOTSTRAP" "$@" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic(t, 4, 1) for t in sys.argv[2:]]).values():
    f.result(30)
PY
}
topics "$RUN.txn"
COMMON=(-b "$BOOTSTRAP" -t "$RUN.txn" -r "$REGISTRY_URL" -s "$ROOT/schemas/transaction.avsc"
	-P "$REDIS_PORT")

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $("$STRATA" version)"
echo "== 1. backlog of $N events, $USERS users"
"$BP" produce "${COMMON[@]}" -n "$N" -u "$USERS" -U 1 -S 1 --lag-ms 2000
"$BP" consume "${COMMON[@]}" -n "$N" | tee "$DIR/consume.txt"
bare=$(sed -n 's/.*= \([0-9]*\) messages\/s/\1/p' "$DIR/consume.txt")

declare -A RESULT
for eos in true false; do
	name=eos-$eos
	topics "$RUN.features.$name" "$RUN.dlq.$name"
	cat >"$DIR/$name.conf" <<CONF
log.level = info
state.dir = $DIR/$name/state
transactions.topic = $RUN.txn
transactions.schema = $ROOT/schemas/transaction.avsc
features.file = $ROOT/examples/fraud.features
features.topic = $RUN.features.$name
dlq.topic = $RUN.dlq.$name
exactly.once = $eos
registry.url = $REGISTRY_URL
redis.port = $REDIS_PORT
redis.prefix = $RUN-$name:user
kafka.bootstrap.servers = $BOOTSTRAP
kafka.group.id = $RUN-$name
http.listen = 127.0.0.1:0
CONF
	echo "== 2. exactly.once = $eos: $STRATA run -c $DIR/$name.conf"
	t0=$(date +%s.%N)
	"$STRATA" run -c "$DIR/$name.conf" 2>"$DIR/$name.log" &
	pid=$!
	trap 'kill $pid 2>/dev/null || true' EXIT
	"$BP" wait "${COMMON[@]}" -g "$RUN-$name" -n "$N" -T 900 >"$DIR/$name.wait"
	t1=$(date +%s.%N)
	read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
	RESULT[$eos]=$(python3 -c "
n, t0, t1, ut, st, tck = $N, $t0, $t1, $ut, $st, $(getconf CLK_TCK)
cpu = (ut + st) / tck
print(f'{n / (t1 - t0):.0f} {n / cpu:.0f} {cpu:.2f} {t1 - t0:.2f}')")
	read -r tput percpu cpu wall <<<"${RESULT[$eos]}"
	echo "strata ($name): $N events in $wall s wall = $tput events/s; CPU $cpu s = $percpu events per CPU-second"
	first=10000000
	[ "$eos" = true ] || first=20000000
	"$BP" freshness "${COMMON[@]}" -x "$RUN-$name:user" -n "$FN" -R "$RATE" \
		-U "$first" -S 2 --lag-ms 1000 | tee "$DIR/$name.fresh"
	if [ "$eos" = true ]; then
		"$BP" freshness "${COMMON[@]}" -x "$RUN-$name:user" -n "$((FN / 4))" -R "$RATE" \
			-U 30000000 -S 3 --lag-ms 0 | tee "$DIR/$name.fresh0"
	fi
	kill -TERM $pid
	wait $pid || true
	trap - EXIT
	grep "pipeline events in" "$DIR/$name.log" | tail -n 1 | sed 's/.*pipeline /counters: /'
done

echo "== summary (ratios measured in this run)"
python3 - "$bare" "${RESULT[true]}" "${RESULT[false]}" "$DIR" <<'PY'
import re, sys
bare = float(sys.argv[1])
eos = [float(x) for x in sys.argv[2].split()]
plain = [float(x) for x in sys.argv[3].split()]
def p99(path):
    m = re.search(r"p99 ([0-9.]+) ms", open(path).read())
    return float(m.group(1)) if m else float("nan")
f_eos, f_plain = p99(f"{sys.argv[4]}/eos-true.fresh"), p99(f"{sys.argv[4]}/eos-false.fresh")
print(f"bare consume: {bare:,.0f} messages/s")
print(f"exactly-once:  {eos[0]:,.0f} events/s ({eos[0] / bare:.3f} of bare consume), {eos[1]:,.0f} events per CPU-second, freshness p99 {f_eos} ms")
print(f"at-least-once: {plain[0]:,.0f} events/s ({plain[0] / bare:.3f} of bare consume), {plain[1]:,.0f} events per CPU-second, freshness p99 {f_plain} ms")
print(f"cost of exactly-once: throughput {1 - eos[0] / plain[0]:+.1%}, events per CPU-second {1 - eos[1] / plain[1]:+.1%} "
      f"[target: at most 10% throughput cost]; commit interval 100 ms (state.commit.interval)")
print("targets: >= 150,000 events per CPU-second; freshness p99 < 5 ms at 20,000 events/s")
PY
echo "(state, logs and configurations under $DIR)"
