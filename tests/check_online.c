/*
 * check_online.c -- the online-store writer against a real redis-server,
 * started on a free port for each test and killed after it: newest
 * vector wins whatever the arrival order, both in Redis and in the
 * queue (coalescing), stale fields and TTLs, exact counts per key in
 * calls of several writes, calls split by size, NOSCRIPT recovery (the
 * whole batch or the calls after a SCRIPT FLUSH mid-batch), an error
 * reply, a connection cut and a server killed in the middle of a batch,
 * a stopped server (timeout).
 *
 * Fails when redis-server is not on the PATH. ST_SEED=<n>
 * reproduces the shuffles.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "error.h"
#include "testutil.h"
#include "online.h"

#define PREFIX "strata:user"
#define NFIELDS_MAX 16

static char dir[64];
static int port;
static pid_t server;
static redisContext *admin;
static st_online_t *o;
static char errstr[512];
static uint64_t seed;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static redisContext *connect_admin(void)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

	if (c && c->err) {
		redisFree(c);
		c = NULL;
	}
	return c;
}

/* Starts redis-server on `port`; it dies with this process. */
static void start_server(void)
{
	char portstr[16], log[96];

	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(log, sizeof(log), "%s/redis.log", dir);
	server = fork();
	ck_assert_int_ge(server, 0);
	if (server == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", portstr,
		       "--bind", "127.0.0.1", "--save", "", "--appendonly",
		       "no", "--daemonize", "no", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !admin; i++) {
		admin = connect_admin();
		if (!admin)
			usleep(10000);
	}
	ck_assert_msg(admin != NULL, "redis-server did not start (see %s)",
		      log);
}

static void stop_server(void)
{
	if (admin) {
		redisFree(admin);
		admin = NULL;
	}
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_online_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	port = free_port();
	start_server();
	ck_assert_msg(st_online_new(&o, "127.0.0.1", port, PREFIX, 0, 2000,
				    errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
}

static void teardown(void)
{
	char cmd[128];

	st_online_destroy(o);
	o = NULL;
	stop_server();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* A command on the admin connection, reconnected and retried once when
 * it was cut (CLIENT KILL cuts it too). */
static redisReply *cmd(const char *fmt, ...)
{
	redisReply *r = NULL;
	va_list ap;

	for (int attempt = 0; attempt < 2 && !r; attempt++) {
		if (!admin || admin->err) {
			if (admin)
				redisFree(admin);
			admin = connect_admin();
			ck_assert_ptr_nonnull(admin);
		}
		va_start(ap, fmt);
		r = redisvCommand(admin, fmt, ap);
		va_end(ap);
	}
	ck_assert_ptr_nonnull(r);
	return r;
}

static long long cmd_int(const char *fmt, const char *arg)
{
	redisReply *r = cmd(fmt, arg);
	long long v;

	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "f=v" pairs, sorted, joined with ','; the caller frees. */
static char *join_sorted(char **pairs, size_t n)
{
	size_t len = 1;
	char *s;

	qsort(pairs, n, sizeof(*pairs), cmp_str);
	for (size_t i = 0; i < n; i++)
		len += strlen(pairs[i]) + 1;
	s = calloc(1, len);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, pairs[i]);
	}
	return s;
}

/* The hash of an entity as join_sorted() writes it; "" when none. */
static char *stored(const char *entity)
{
	redisReply *r = cmd("HGETALL " PREFIX ":%s", entity);
	char *pairs[2 * NFIELDS_MAX], *s;
	size_t n = 0;

	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_le(r->elements, 2 * 2 * NFIELDS_MAX);
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		char *p = malloc(r->element[i]->len + r->element[i + 1]->len +
				 2);

		ck_assert_ptr_nonnull(p);
		sprintf(p, "%s=%s", r->element[i]->str,
			r->element[i + 1]->str);
		pairs[n++] = p;
	}
	freeReplyObject(r);
	s = join_sorted(pairs, n);
	for (size_t i = 0; i < n; i++)
		free(pairs[i]);
	return s;
}

/* What stored() must return for a vector: spec "a=1,b=2". */
static char *expected(int64_t et, int64_t seq, const char *spec)
{
	char *pairs[NFIELDS_MAX + 2], *copy = strdup(spec), *tok, *sp, *s;
	size_t n = 0;

	ck_assert_ptr_nonnull(copy);
	for (tok = strtok_r(copy, ",", &sp); tok;
	     tok = strtok_r(NULL, ",", &sp))
		pairs[n++] = strdup(tok);
	ck_assert_int_ge(asprintf(&pairs[n++], "_event_time=%lld",
				  (long long)et), 0);
	ck_assert_int_ge(asprintf(&pairs[n++], "_seq=%lld", (long long)seq),
			 0);
	s = join_sorted(pairs, n);
	for (size_t i = 0; i < n; i++)
		free(pairs[i]);
	free(copy);
	return s;
}

static void assert_stored(const char *entity, int64_t et, int64_t seq,
			  const char *spec)
{
	char *got = stored(entity), *want = expected(et, seq, spec);

	ck_assert_msg(!strcmp(got, want), "entity %s: got {%s}, want {%s}",
		      entity, got, want);
	free(got);
	free(want);
}

/* Queues a vector given as "a=1,b=2" (values NUL-terminated). */
static int queue(st_online_t *on, const char *entity, int64_t et,
		 int64_t seq, const char *spec)
{
	char *copy = strdup(spec), *tok, *sp, *eq;
	const char *names[NFIELDS_MAX], *values[NFIELDS_MAX];
	size_t n = 0;
	int err;

	ck_assert_ptr_nonnull(copy);
	for (tok = strtok_r(copy, ",", &sp); tok;
	     tok = strtok_r(NULL, ",", &sp)) {
		eq = strchr(tok, '=');
		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		names[n] = tok;
		values[n++] = eq + 1;
	}
	err = st_online_queue(on, entity, strlen(entity), et, seq, n, names,
			      values, NULL);
	free(copy);
	return err;
}

static void flush_ok(uint64_t want_applied, uint64_t want_rejected)
{
	uint64_t applied, rejected;

	ck_assert_msg(st_online_flush(o, &applied, &rejected, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(applied, want_applied);
	ck_assert_uint_eq(rejected, want_rejected);
	ck_assert_uint_eq(st_online_pending(o), 0);
}

START_TEST(key_format)
{
	char buf[32];

	ck_assert_int_eq(st_online_key("strata:user", "42", 2, buf,
				       sizeof(buf)), 14);
	ck_assert_str_eq(buf, "strata:user:42");
	ck_assert_int_eq(st_online_key("p", "a\0b", 3, buf, sizeof(buf)), 5);
	ck_assert_int_eq(memcmp(buf, "p:a\0b", 6), 0);
	ck_assert_int_eq(st_online_key("strata:user", "42", 2, buf, 15), 14);
	ck_assert_int_eq(st_online_key("strata:user", "42", 2, buf, 14),
			 ST_ERANGE);
	ck_assert_int_eq(st_online_key("p", "", 0, buf, sizeof(buf)), 2);
	ck_assert_str_eq(buf, "p:");
}
END_TEST

START_TEST(bad_arguments)
{
	const char *names[] = {"a", "_seq"}, *values[] = {"1", "2"};
	st_online_t *x;

	ck_assert_int_eq(st_online_new(&x, "127.0.0.1", port, "", 0, 1000,
				       errstr, sizeof(errstr)), ST_EINVAL);
	ck_assert_int_eq(st_online_new(&x, "127.0.0.1", port, "p", 0, 0,
				       errstr, sizeof(errstr)), ST_EINVAL);
	ck_assert_int_eq(st_online_new(&x, "127.0.0.1", 0, "p", 0, 1000,
				       errstr, sizeof(errstr)), ST_EINVAL);
	ck_assert_int_eq(st_online_queue(o, "1", 1, 1, 1, 2, names, values,
					 NULL), ST_EINVAL);
	names[1] = "_event_time";
	ck_assert_int_eq(st_online_queue(o, "1", 1, 1, 1, 2, names, values,
					 NULL), ST_EINVAL);
	ck_assert_int_eq(st_online_queue(o, "1", 1, 1, 1,
					 ST_ONLINE_FIELDS_MAX + 1, names,
					 values, NULL), ST_EINVAL);
	ck_assert_uint_eq(st_online_pending(o), 0);
	/* Nothing queued: flush does no I/O and succeeds. */
	flush_ok(0, 0);
}
END_TEST

START_TEST(unreachable)
{
	st_online_t *x = NULL;
	int other = free_port();

	ck_assert_int_eq(st_online_new(&x, "127.0.0.1", other, PREFIX, 0, 500,
				       errstr, sizeof(errstr)), ST_EREDIS);
	ck_assert_ptr_null(x);
	ck_assert_ptr_nonnull(strstr(errstr, "127.0.0.1"));
}
END_TEST

START_TEST(write_creates_hash)
{
	ck_assert_int_eq(queue(o, "42", 1700000000123LL, 5,
			       "risk=0.25,segment=gold,n_tx_1h=3"), 0);
	ck_assert_uint_eq(st_online_pending(o), 1);
	flush_ok(1, 0);
	assert_stored("42", 1700000000123LL, 5,
		      "risk=0.25,segment=gold,n_tx_1h=3");
	ck_assert_int_eq(cmd_int("PTTL %s", PREFIX ":42"), -1);
	/* No fields at all: only strata's two. */
	ck_assert_int_eq(queue(o, "43", 7, 8, ""), 0);
	flush_ok(1, 0);
	assert_stored("43", 7, 8, "");
}
END_TEST

START_TEST(max_fields)
{
	static char names[ST_ONLINE_FIELDS_MAX][16];
	const char *np[ST_ONLINE_FIELDS_MAX], *vp[ST_ONLINE_FIELDS_MAX];
	redisReply *r;

	for (int i = 0; i < ST_ONLINE_FIELDS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		np[i] = names[i];
		vp[i] = names[i] + 1;
	}
	ck_assert_int_eq(st_online_queue(o, "big", 3, 1, 1,
					 ST_ONLINE_FIELDS_MAX, np, vp, NULL),
			 0);
	flush_ok(1, 0);
	ck_assert_int_eq(cmd_int("HLEN %s", PREFIX ":big"),
			 ST_ONLINE_FIELDS_MAX + 2);
	r = cmd("HGET " PREFIX ":big f1023");
	ck_assert_str_eq(r->str, "1023");
	freeReplyObject(r);
}
END_TEST

START_TEST(newest_wins)
{
	ck_assert_int_eq(queue(o, "1", 2000, 10, "a=new,b=2"), 0);
	flush_ok(1, 0);
	/* Older event time, greater seq: rejected. */
	ck_assert_int_eq(queue(o, "1", 1999, 99, "a=old"), 0);
	flush_ok(0, 1);
	assert_stored("1", 2000, 10, "a=new,b=2");
	/* Same event time, older seq: rejected. */
	ck_assert_int_eq(queue(o, "1", 2000, 9, "a=old"), 0);
	flush_ok(0, 1);
	assert_stored("1", 2000, 10, "a=new,b=2");
	/* Equal pair: rewritten (re-applied after a crash). */
	ck_assert_int_eq(queue(o, "1", 2000, 10, "a=again,b=2"), 0);
	flush_ok(1, 0);
	assert_stored("1", 2000, 10, "a=again,b=2");
	/* Same event time, newer seq: applied. */
	ck_assert_int_eq(queue(o, "1", 2000, 11, "a=seq,b=3"), 0);
	flush_ok(1, 0);
	assert_stored("1", 2000, 11, "a=seq,b=3");
	/* Newer event time, smaller seq (another partition): applied. */
	ck_assert_int_eq(queue(o, "1", 2001, 1, "a=later,b=4"), 0);
	flush_ok(1, 0);
	assert_stored("1", 2001, 1, "a=later,b=4");
}
END_TEST

/* One write of a sequence to a single entity. */
typedef struct {
	int64_t et, seq;
	const char *spec;
} seqw_t;

/*
 * Writes ws[0..n) to `entity` twice, so that both comparisons of
 * (event_time, seq) pairs are tested on the same cases: in Redis, each
 * write flushed on its own (the script compares); then, on a fresh key,
 * all queued together (the queue coalesces, only the newest is sent).
 * Both must store ws[want]; in Redis, a write counts as applied when its
 * pair is at least the greatest so far (an equal pair rewrites).
 */
static void check_order(const char *entity, const seqw_t *ws, size_t n,
			size_t want)
{
	st_online_stats_t s0, s1;
	size_t best = 0;

	freeReplyObject(cmd("DEL " PREFIX ":%s", entity));
	for (size_t i = 0; i < n; i++) {
		int newer = !i || ws[i].et > ws[best].et ||
			    (ws[i].et == ws[best].et &&
			     ws[i].seq >= ws[best].seq);

		ck_assert_int_eq(queue(o, entity, ws[i].et, ws[i].seq,
				       ws[i].spec), 0);
		flush_ok(newer, !newer);
		if (newer)
			best = i;
	}
	ck_assert_uint_eq(best, want);
	assert_stored(entity, ws[want].et, ws[want].seq, ws[want].spec);
	freeReplyObject(cmd("DEL " PREFIX ":%s", entity));
	st_online_stats(o, &s0);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(queue(o, entity, ws[i].et, ws[i].seq,
				       ws[i].spec), 0);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(s1.coalesced - s0.coalesced, n - 1);
	ck_assert_uint_eq(st_online_pending(o), 1);
	flush_ok(1, 0);
	assert_stored(entity, ws[want].et, ws[want].seq, ws[want].spec);
}

START_TEST(int64_compared_exactly)
{
	/* 2^53 + 1 and 2^53 are the same double: the script must not use
	 * Lua numbers for them. */
	static const seqw_t big[] = {
		{1000, 9007199254740993LL, "v=a"},
		{1000, 9007199254740992LL, "v=b"},
	};
	static const seqw_t max[] = {
		{1000, INT64_MAX, "v=c"},
		{1000, INT64_MAX - 1, "v=d"},
	};
	/* Partition 9000, offsets that differ in the last digit. */
	static const seqw_t part[] = {
		{5, (9000LL << 40) | 7, "v=new"},
		{5, (9000LL << 40) | 6, "v=old"},
		{5, (8999LL << 40) | 9, "v=older"},
	};
	/* Negative event times and lengths that differ. */
	static const seqw_t neg[] = {
		{-5, 0, "v=a"}, {-7, 0, "v=b"}, {-12, 0, "v=c"},
	};
	static const seqw_t zero[] = {
		{-5, 0, "v=a"}, {0, 0, "v=d"}, {INT64_MIN, 0, "v=e"},
	};
	static const seqw_t len[] = {
		{99, 0, "v=a"}, {100, 0, "v=b"},
		{1000000000000000000LL, 0, "v=c"},
		{999999999999999999LL, 0, "v=d"},
	};
	/* An equal pair: the later write wins, in Redis and in the queue. */
	static const seqw_t equal[] = {
		{7, 7, "v=first"}, {7, 7, "v=second"}, {7, 6, "v=older"},
	};

	check_order("s", big, 2, 0);
	check_order("x", max, 2, 0);
	check_order("p", part, 3, 0);
	check_order("n", neg, 3, 0);
	check_order("z", zero, 3, 1);
	check_order("m", len, 4, 2);
	check_order("e", equal, 3, 1);
}
END_TEST

START_TEST(no_stale_fields)
{
	ck_assert_int_eq(queue(o, "7", 1000, 1, "a=1,b=2,c=3"), 0);
	flush_ok(1, 0);
	ck_assert_int_eq(queue(o, "7", 2000, 2, "b=20"), 0);
	flush_ok(1, 0);
	assert_stored("7", 2000, 2, "b=20");
	/* Coalesced in the queue: only the newer vector is written. */
	ck_assert_int_eq(queue(o, "6", 1000, 1, "a=1,b=2,c=3"), 0);
	ck_assert_int_eq(queue(o, "6", 2000, 2, "b=20"), 0);
	flush_ok(1, 0);
	assert_stored("6", 2000, 2, "b=20");
	/* A key of another type under the prefix is replaced. */
	freeReplyObject(cmd("SET " PREFIX ":8 plain"));
	ck_assert_int_eq(queue(o, "8", 1000, 1, "a=1"), 0);
	flush_ok(1, 0);
	assert_stored("8", 1000, 1, "a=1");
}
END_TEST

START_TEST(ttl_applied)
{
	char entity[16];
	char key[48];
	st_online_t *t;
	long long pttl;

	ck_assert_int_eq(st_online_new(&t, "127.0.0.1", port, PREFIX, 60000,
				       2000, errstr, sizeof(errstr)), 0);
	for (int k = 0; k < 3 * ST_ONLINE_CALL_WRITES; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(queue(t, entity, 1000, 1, "a=1"), 0);
	}
	ck_assert_int_eq(st_online_flush(t, NULL, NULL, errstr,
					 sizeof(errstr)), 0);
	for (int k = 0; k < 3 * ST_ONLINE_CALL_WRITES; k++) {
		snprintf(key, sizeof(key), PREFIX ":%d", k);
		pttl = cmd_int("PTTL %s", key);
		ck_assert_int_gt(pttl, 0);
		ck_assert_int_le(pttl, 60000);
	}
	st_online_destroy(t);
	/* A writer without TTL drops it on its next write. */
	for (int k = 0; k < 3 * ST_ONLINE_CALL_WRITES; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(queue(o, entity, 2000, 1, "a=2"), 0);
	}
	flush_ok(3 * ST_ONLINE_CALL_WRITES, 0);
	for (int k = 0; k < 3 * ST_ONLINE_CALL_WRITES; k++) {
		snprintf(key, sizeof(key), PREFIX ":%d", k);
		ck_assert_int_eq(cmd_int("PTTL %s", key), -1);
	}
}
END_TEST

/* ---- shuffled batches ------------------------------------------------- */

static uint64_t rng;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

typedef struct {
	int key, version;
} wr_t;

/* Version v of key k: event times come in pairs, so that every other
 * version differs from its predecessor by seq only; the number of fields
 * varies, so stale fields would show. */
static int64_t v_et(int v)
{
	return 1700000000000LL + (v / 2) * 1000;
}

static int64_t v_seq(int k, int v)
{
	return ((int64_t)(k % 3) << 40) | (int64_t)(v * 10 + k % 7);
}

static int v_nfields(int k, int v)
{
	return 1 + (k * 7 + v * 3) % 15;
}

static void queue_version(int k, int v)
{
	char entity[16], names[NFIELDS_MAX][16], values[NFIELDS_MAX][32];
	const char *np[NFIELDS_MAX], *vp[NFIELDS_MAX];
	size_t lens[NFIELDS_MAX];
	int n = v_nfields(k, v);

	snprintf(entity, sizeof(entity), "%d", k);
	for (int j = 0; j < n; j++) {
		snprintf(names[j], sizeof(names[j]), "f%02d", j);
		lens[j] = (size_t)snprintf(values[j], sizeof(values[j]),
					   "k%dv%df%d", k, v, j);
		np[j] = names[j];
		vp[j] = values[j];
	}
	ck_assert_int_eq(st_online_queue(o, entity, strlen(entity), v_et(v),
					 v_seq(k, v), (size_t)n, np, vp,
					 lens), 0);
}

static void assert_newest(int nkeys, int nversions)
{
	for (int k = 0; k < nkeys; k++) {
		int v = nversions - 1, n = v_nfields(k, v);
		char entity[16], spec[NFIELDS_MAX * 32] = "";

		for (int j = 0; j < n; j++)
			snprintf(spec + strlen(spec),
				 sizeof(spec) - strlen(spec),
				 "%sf%02d=k%dv%df%d", j ? "," : "", j, k, v,
				 j);
		snprintf(entity, sizeof(entity), "%d", k);
		assert_stored(entity, v_et(v), v_seq(k, v), spec);
	}
}

static wr_t *shuffled(int nkeys, int nversions)
{
	size_t n = (size_t)nkeys * (size_t)nversions;
	wr_t *w = malloc(n * sizeof(*w));

	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < n; i++) {
		w[i].key = (int)(i / (size_t)nversions);
		w[i].version = (int)(i % (size_t)nversions);
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = next_rand() % (i + 1);
		wr_t t = w[i];

		w[i] = w[j];
		w[j] = t;
	}
	return w;
}

/* Queues w[0..n) in random batches, flushing after each; adds the counts
 * and the writes coalesced. */
static void queue_in_batches(const wr_t *w, int n, uint64_t *applied,
			     uint64_t *rejected, uint64_t *coalesced)
{
	st_online_stats_t s0, s1;

	st_online_stats(o, &s0);
	for (int i = 0; i < n;) {
		int b = 1 + (int)(next_rand() % 200);
		uint64_t a, r;

		for (; b > 0 && i < n; b--, i++)
			queue_version(w[i].key, w[i].version);
		ck_assert_msg(st_online_flush(o, &a, &r, errstr,
					      sizeof(errstr)) == 0, "%s",
			      errstr);
		*applied += a;
		*rejected += r;
	}
	st_online_stats(o, &s1);
	*coalesced += s1.coalesced - s0.coalesced;
}

START_TEST(shuffled_batch_keeps_newest)
{
	uint64_t applied = 0, rejected = 0, coalesced = 0;
	st_online_stats_t s0, s1;
	wr_t *w;

	rng = seed * 2654435761u + 1;
	/* One batch: the queue keeps the newest version of each key. */
	w = shuffled(100, 10);
	st_online_stats(o, &s0);
	for (int i = 0; i < 1000; i++)
		queue_version(w[i].key, w[i].version);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(st_online_pending(o), 100);
	ck_assert_uint_eq(s1.coalesced - s0.coalesced, 900);
	flush_ok(100, 0);
	assert_newest(100, 10);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), 100);
	free(w);
	/* On an empty Redis, reshuffled, in random batches: Redis sees the
	 * versions in any order and keeps the newest. */
	freeReplyObject(cmd("FLUSHALL"));
	w = shuffled(100, 10);
	queue_in_batches(w, 1000, &applied, &rejected, &coalesced);
	ck_assert_uint_eq(applied + rejected + coalesced, 1000);
	ck_assert_uint_ge(applied, 100);
	ck_assert_uint_gt(rejected, 0);
	assert_newest(100, 10);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), 100);
	free(w);
	/* Everything again: only the newest vector of each key is written
	 * (again), the rest is rejected or coalesced. */
	w = shuffled(100, 10);
	applied = rejected = coalesced = 0;
	queue_in_batches(w, 1000, &applied, &rejected, &coalesced);
	ck_assert_uint_eq(applied, 100);
	ck_assert_uint_eq(rejected + coalesced, 900);
	assert_newest(100, 10);
	free(w);
}
END_TEST

/* The number in `field` of the line `stat` ("cmdstat_hset") of INFO
 * commandstats; 0 when the command did not run. */
static long long cmdstat(const char *stat, const char *field)
{
	redisReply *r = cmd("INFO commandstats");
	char key[64];
	const char *line, *f;
	long long v = 0;

	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	snprintf(key, sizeof(key), "%s:", stat);
	if ((line = strstr(r->str, key)) &&
	    (f = strstr(line, field)) && f < strchr(line, '\n'))
		v = atoll(f + strlen(field) + 1);
	freeReplyObject(r);
	return v;
}

START_TEST(coalesce_newest_only)
{
	int nkeys = 50, nversions = 40;
	st_online_stats_t s0, s1;
	wr_t *w;

	rng = seed * 2654435761u + 3;
	w = shuffled(nkeys, nversions);
	st_online_stats(o, &s0);
	for (int i = 0; i < nkeys * nversions; i++)
		queue_version(w[i].key, w[i].version);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	ck_assert_uint_eq(s1.coalesced - s0.coalesced,
			  (uint64_t)(nkeys * (nversions - 1)));
	freeReplyObject(cmd("CONFIG RESETSTAT"));
	flush_ok((uint64_t)nkeys, 0);
	st_online_stats(o, &s0);
	/* One write per key reached Redis, in two script calls. */
	ck_assert_uint_eq(s0.calls - s1.calls,
			  (nkeys + ST_ONLINE_CALL_WRITES - 1) /
			  ST_ONLINE_CALL_WRITES);
	ck_assert_int_eq(cmdstat("cmdstat_evalsha", "calls"),
			 (long long)(s0.calls - s1.calls));
	ck_assert_int_eq(cmdstat("cmdstat_hset", "calls"), nkeys);
	assert_newest(nkeys, nversions);
	free(w);
}
END_TEST

/* Entities are compared as bytes: a prefix, a NUL, the empty one. */
START_TEST(coalesce_binary_entities)
{
	static const char *const ents[] = {"1", "1\0", "12", "", "\0", "2"};
	static const size_t lens[] = {1, 2, 2, 0, 1, 1};
	const char *names[] = {"v"}, *values[1];
	char buf[64];
	redisReply *r;

	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 6; i++) {
			snprintf(buf, sizeof(buf), "%d.%d", i, round);
			values[0] = buf;
			ck_assert_int_eq(st_online_queue(o, ents[i], lens[i],
							 round, 0, 1, names,
							 values, NULL), 0);
		}
	ck_assert_uint_eq(st_online_pending(o), 6);
	flush_ok(6, 0);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), 6);
	for (int i = 0; i < 6; i++) {
		char key[32];
		int n = st_online_key(PREFIX, ents[i], lens[i], key,
				      sizeof(key));

		ck_assert_int_gt(n, 0);
		r = cmd("HGET %b v", key, (size_t)n);
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		snprintf(buf, sizeof(buf), "%d.2", i);
		ck_assert_str_eq(r->str, buf);
		freeReplyObject(r);
	}
}
END_TEST

/*
 * Replacements that do not fit where the write they replace was queued
 * (values growing and shrinking), enough to make the queue compact
 * itself several times; then a queue of distinct keys that grows past
 * the table's first size, with a flush in the middle.
 */
START_TEST(coalesce_relocates)
{
	static char value[4096];
	const char *names[] = {"a", "b"}, *values[2] = {value, "x"};
	int nkeys = 20, rounds = 2000;
	char entity[16];
	char key[48];

	memset(value, 'v', sizeof(value) - 1);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < nkeys; k++) {
			size_t lens[2] = {(size_t)((r * 37 + k * 11) % 4000), 1};

			snprintf(entity, sizeof(entity), "%d", k);
			ck_assert_int_eq(st_online_queue(o, entity,
							 strlen(entity), r, k,
							 2, names, values,
							 lens), 0);
		}
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	flush_ok((uint64_t)nkeys, 0);
	for (int k = 0; k < nkeys; k++) {
		snprintf(key, sizeof(key), PREFIX ":%d", k);
		ck_assert_int_eq(cmd_int("HSTRLEN %s a", key),
				 ((rounds - 1) * 37 + k * 11) % 4000);
	}
	for (int k = 0; k < 5000; k++) {
		snprintf(entity, sizeof(entity), "d%d", k);
		ck_assert_int_eq(queue(o, entity, 1, 1, "a=1"), 0);
		if (k == 2500)
			flush_ok(2501, 0);
	}
	for (int k = 0; k < 5000; k++) {
		snprintf(entity, sizeof(entity), "d%d", k);
		ck_assert_int_eq(queue(o, entity, 2, 1, "a=2"), 0);
	}
	ck_assert_uint_eq(st_online_pending(o), 5000);
	flush_ok(5000, 0);
	assert_stored("d4999", 2, 1, "a=2");
	assert_stored("d0", 2, 1, "a=2");
}
END_TEST

/* Calls that each hold writes applied and writes rejected as older: the
 * counts are exact, per key. */
START_TEST(multi_key_counts)
{
	int nold = 100, nnew = 50;
	char entity[16];

	for (int k = 0; k < nold; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(queue(o, entity, 1000, 5, "a=stored,b=1"), 0);
	}
	flush_ok((uint64_t)nold, 0);
	/* Even keys older (by event time or by seq), odd keys newer, and
	 * keys never written: interleaved in the same calls. */
	for (int k = 0; k < nold + nnew; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		if (k >= nold)
			ck_assert_int_eq(queue(o, entity, 1, 1, "c=fresh"), 0);
		else if (k % 4 == 0)
			ck_assert_int_eq(queue(o, entity, 999, 9, "a=old"), 0);
		else if (k % 4 == 2)
			ck_assert_int_eq(queue(o, entity, 1000, 4, "a=old"), 0);
		else
			ck_assert_int_eq(queue(o, entity, 1000, 6, "a=new"), 0);
	}
	flush_ok((uint64_t)(nold / 2 + nnew), (uint64_t)(nold / 2));
	for (int k = 0; k < nold + nnew; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		if (k >= nold)
			assert_stored(entity, 1, 1, "c=fresh");
		else if (k % 2 == 0)
			assert_stored(entity, 1000, 5, "a=stored,b=1");
		else
			assert_stored(entity, 1000, 6, "a=new");
	}
}
END_TEST

/* More writes than one call holds: ST_ONLINE_CALL_WRITES per call, and
 * writes with many fields split calls by their arguments. */
START_TEST(calls_split)
{
	static char names[ST_ONLINE_FIELDS_MAX][16];
	const char *np[ST_ONLINE_FIELDS_MAX], *vp[ST_ONLINE_FIELDS_MAX];
	int n = 10 * ST_ONLINE_CALL_WRITES + 7;
	st_online_stats_t s0, s1;
	char entity[16];
	char key[48];

	st_online_stats(o, &s0);
	for (int k = 0; k < n; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(queue(o, entity, 1, 1, "a=1,b=2"), 0);
	}
	flush_ok((uint64_t)n, 0);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(s1.calls - s0.calls, 11);
	for (int i = 0; i < ST_ONLINE_FIELDS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		np[i] = names[i];
		vp[i] = names[i] + 1;
	}
	/* Vectors of every 16th size up to the most, between small ones;
	 * every other one is older than what Redis holds. */
	for (int k = 0; k < n; k++) {
		size_t nf = k % 3 ? 2 : (size_t)(k * 16) % ST_ONLINE_FIELDS_MAX;

		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(st_online_queue(o, entity, strlen(entity),
						 k % 2 ? 0 : 2, 1, nf, np, vp,
						 NULL), 0);
	}
	flush_ok((uint64_t)(n + 1) / 2, (uint64_t)n / 2);
	for (int k = 0; k < n; k++) {
		size_t nf = k % 3 ? 2 : (size_t)(k * 16) % ST_ONLINE_FIELDS_MAX;

		snprintf(key, sizeof(key), PREFIX ":%d", k);
		ck_assert_int_eq(cmd_int("HLEN %s", key),
				 k % 2 ? 4 : (long long)nf + 2);
	}
	st_online_stats(o, &s0);
	ck_assert_uint_gt(s0.calls - s1.calls, 11);
}
END_TEST

START_TEST(noscript_recovered)
{
	st_online_stats_t s0, s1;

	ck_assert_int_eq(queue(o, "1", 1000, 1, "a=1"), 0);
	ck_assert_int_eq(queue(o, "3", 5000, 1, "c=1"), 0);
	flush_ok(2, 0);
	freeReplyObject(cmd("SCRIPT FLUSH"));
	ck_assert_int_eq(queue(o, "1", 2000, 1, "a=2"), 0);
	ck_assert_int_eq(queue(o, "2", 1000, 1, "b=1"), 0);
	ck_assert_int_eq(queue(o, "3", 1500, 1, "c=old"), 0);
	flush_ok(2, 1);
	assert_stored("1", 2000, 1, "a=2");
	assert_stored("2", 1000, 1, "b=1");
	assert_stored("3", 5000, 1, "c=1");
	/* Every call of a batch answered NOSCRIPT: all are resent. */
	for (int i = 0; i < 3000; i++)
		queue_version(i % 300, i / 300);
	freeReplyObject(cmd("SCRIPT FLUSH"));
	st_online_stats(o, &s0);
	flush_ok(300, 0);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(s1.calls - s0.calls,
			  2 * ((300 + ST_ONLINE_CALL_WRITES - 1) /
			       ST_ONLINE_CALL_WRITES));
	assert_newest(300, 10);
}
END_TEST

/* An error reply (here READONLY, from a replica) fails the flush and
 * keeps the queue whole. */
START_TEST(error_reply_keeps_queue)
{
	uint64_t applied, rejected;
	char entity[16];
	int n = 3 * ST_ONLINE_CALL_WRITES;

	for (int k = 0; k < n; k++) {
		snprintf(entity, sizeof(entity), "%d", k);
		ck_assert_int_eq(queue(o, entity, 1, 1, "a=1"), 0);
	}
	freeReplyObject(cmd("REPLICAOF 127.0.0.1 1"));
	ck_assert_int_eq(st_online_flush(o, &applied, &rejected, errstr,
					 sizeof(errstr)), ST_EREDIS);
	ck_assert_ptr_nonnull(strstr(errstr, "READONLY"));
	ck_assert_uint_eq(applied, 0);
	ck_assert_uint_eq(rejected, 0);
	ck_assert_uint_eq(st_online_pending(o), (size_t)n);
	freeReplyObject(cmd("REPLICAOF NO ONE"));
	flush_ok((uint64_t)n, 0);
	assert_stored("0", 1, 1, "a=1");
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), n);
}
END_TEST

/*
 * Forks a process that waits until Redis holds `keys` keys, then runs
 * `action`: cuts every normal client but itself (CLIENT KILL, with the
 * writers paused first so that the cut lands mid-batch), kills the
 * server, or empties its script cache (SCRIPT FLUSH). Returns its pid
 * once it is connected and watching: a child still starting up when the
 * batch ends would miss it on a loaded machine.
 */
enum { CUT_CLIENTS, KILL_SERVER, FLUSH_SCRIPTS };

static pid_t interrupt_after(long long keys, int action)
{
	int ready[2];
	char byte = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		redisContext *c = connect_admin();
		redisReply *r;

		close(ready[0]);
		if (!c || write(ready[1], "x", 1) != 1)
			_exit(2);
		close(ready[1]);
		for (int i = 0; i < 20000; i++) {
			r = redisCommand(c, "DBSIZE");
			if (r && r->type == REDIS_REPLY_INTEGER &&
			    r->integer >= keys) {
				freeReplyObject(r);
				if (action == KILL_SERVER) {
					kill(server, SIGKILL);
				} else if (action == FLUSH_SCRIPTS) {
					freeReplyObject(redisCommand(c,
					    "SCRIPT FLUSH"));
				} else {
					freeReplyObject(redisCommand(c,
					    "CLIENT PAUSE 10000 WRITE"));
					freeReplyObject(redisCommand(c,
					    "CLIENT KILL TYPE normal SKIPME "
					    "yes"));
					freeReplyObject(redisCommand(c,
					    "CLIENT UNPAUSE"));
				}
				_exit(0);
			}
			freeReplyObject(r);
			usleep(200);
		}
		_exit(1);
	}
	close(ready[1]);
	ck_assert_int_eq(read(ready[0], &byte, 1), 1);
	close(ready[0]);
	return pid;
}

/* Queues every version of nkeys keys, shuffled: the queue keeps one
 * write per key. */
static void queue_big_batch(wr_t **wp, int nkeys, int nversions)
{
	st_online_stats_t s0, s1;
	wr_t *w;

	rng = seed * 2654435761u + 7;
	w = shuffled(nkeys, nversions);
	st_online_stats(o, &s0);
	for (int i = 0; i < nkeys * nversions; i++)
		queue_version(w[i].key, w[i].version);
	st_online_stats(o, &s1);
	ck_assert_uint_eq(s1.coalesced - s0.coalesced,
			  (uint64_t)nkeys * (uint64_t)(nversions - 1));
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	*wp = w;
}

START_TEST(connection_cut_mid_batch)
{
	int nkeys = 20000, nversions = 5, status;
	uint64_t applied, rejected;
	st_online_stats_t s0, s1;
	pid_t child;
	wr_t *w;

	queue_big_batch(&w, nkeys, nversions);
	child = interrupt_after(1000, CUT_CLIENTS);
	ck_assert_int_eq(st_online_flush(o, &applied, &rejected, errstr,
					 sizeof(errstr)), ST_EREDIS);
	ck_assert_uint_eq(applied, 0);
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* Part of the batch was applied: the resend must be harmless. */
	ck_assert_int_gt(cmd_int("DBSIZE", NULL), 0);
	/* The kept queue still coalesces: an older version of every key is
	 * dropped, a newer one replaces the kept write. */
	st_online_stats(o, &s0);
	for (int k = 0; k < nkeys; k++) {
		queue_version(k, 0);
		queue_version(k, nversions);
	}
	st_online_stats(o, &s1);
	ck_assert_uint_eq(s1.coalesced - s0.coalesced, 2 * (uint64_t)nkeys);
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	ck_assert_msg(st_online_flush(o, &applied, &rejected, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(applied, (uint64_t)nkeys);
	ck_assert_uint_eq(rejected, 0);
	ck_assert_uint_eq(st_online_pending(o), 0);
	assert_newest(nkeys, nversions + 1);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), nkeys);
	free(w);
}
END_TEST

/* st_online_send() then st_online_flush(): the replies are read by the
 * flush and counted as a flush counts them; nothing may be queued in
 * between; an empty queue sends nothing. */
START_TEST(send_then_flush)
{
	uint64_t applied, rejected;

	ck_assert_int_eq(st_online_send(o, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(queue(o, "1", 2000, 1, "a=new"), 0);
	flush_ok(1, 0);
	ck_assert_int_eq(queue(o, "1", 1000, 1, "a=old"), 0);
	ck_assert_int_eq(queue(o, "2", 1000, 1, "b=1"), 0);
	ck_assert_msg(st_online_send(o, errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
	ck_assert_int_eq(queue(o, "3", 1000, 1, "c=1"), ST_EINVAL);
	ck_assert_uint_eq(st_online_pending(o), 2);
	ck_assert_msg(st_online_flush(o, &applied, &rejected, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(applied, 1);
	ck_assert_uint_eq(rejected, 1);
	ck_assert_uint_eq(st_online_pending(o), 0);
	assert_stored("1", 2000, 1, "a=new");
	assert_stored("2", 1000, 1, "b=1");
	ck_assert_int_eq(queue(o, "3", 1000, 1, "c=1"), 0);
	flush_ok(1, 0);
	/* Sent to a server that forgot the script: the flush resends the
	 * calls answered NOSCRIPT after SCRIPT LOAD. */
	freeReplyObject(cmd("SCRIPT FLUSH"));
	for (int i = 0; i < 3000; i++)
		queue_version(i % 300, i / 300);
	ck_assert_msg(st_online_send(o, errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
	flush_ok(300, 0);
	assert_newest(300, 10);
}
END_TEST

/* The connection cut while a sent queue waits for its replies: the flush
 * fails and keeps the queue whole, the next one resends it. */
START_TEST(send_then_connection_cut)
{
	int nkeys = 20000, nversions = 5, status;
	uint64_t applied, rejected;
	pid_t child;
	wr_t *w;

	queue_big_batch(&w, nkeys, nversions);
	child = interrupt_after(1000, CUT_CLIENTS);
	if (st_online_send(o, errstr, sizeof(errstr)) == 0)
		ck_assert_int_eq(st_online_flush(o, &applied, &rejected,
						 errstr, sizeof(errstr)),
				 ST_EREDIS);
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_msg(st_online_flush(o, &applied, &rejected, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(applied, (uint64_t)nkeys);
	ck_assert_uint_eq(st_online_pending(o), 0);
	assert_newest(nkeys, nversions);
	free(w);
}
END_TEST

START_TEST(server_killed_mid_batch)
{
	int nkeys = 20000, nversions = 5, status;
	uint64_t applied, rejected;
	pid_t child;
	wr_t *w;

	queue_big_batch(&w, nkeys, nversions);
	child = interrupt_after(1000, KILL_SERVER);
	ck_assert_int_eq(st_online_flush(o, NULL, NULL, errstr,
					 sizeof(errstr)), ST_EREDIS);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_eq(waitpid(server, NULL, 0), server);
	server = 0;
	redisFree(admin);
	admin = NULL;
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	/* Still down: the one reconnect attempt fails, the batch stays. */
	ck_assert_int_eq(st_online_flush(o, NULL, NULL, errstr,
					 sizeof(errstr)), ST_EREDIS);
	ck_assert_ptr_nonnull(strstr(errstr, "connect"));
	ck_assert_uint_eq(st_online_pending(o), (size_t)nkeys);
	/* Back on the same port (empty, no script loaded). */
	start_server();
	ck_assert_msg(st_online_flush(o, &applied, &rejected, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(applied, (uint64_t)nkeys);
	ck_assert_uint_eq(rejected, 0);
	ck_assert_uint_eq(st_online_pending(o), 0);
	assert_newest(nkeys, nversions);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), nkeys);
	free(w);
}
END_TEST

/* The script cache emptied while a batch is under way: the calls answered
 * NOSCRIPT, and only they, are sent again. */
START_TEST(noscript_mid_batch)
{
	int nkeys = 20000, status;
	uint64_t calls = (uint64_t)(nkeys + ST_ONLINE_CALL_WRITES - 1) /
			 ST_ONLINE_CALL_WRITES;
	st_online_stats_t s0, s1;
	pid_t child;

	for (int k = 0; k < nkeys; k++)
		queue_version(k, 0);
	child = interrupt_after(1000, FLUSH_SCRIPTS);
	st_online_stats(o, &s0);
	/* Counted once each: a write resent that had been applied would
	 * count twice. */
	flush_ok((uint64_t)nkeys, 0);
	st_online_stats(o, &s1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_uint_gt(s1.calls - s0.calls, calls);
	ck_assert_uint_lt(s1.calls - s0.calls, 2 * calls);
	assert_newest(nkeys, 1);
	ck_assert_int_eq(cmd_int("DBSIZE", NULL), nkeys);
}
END_TEST

START_TEST(stopped_server_times_out)
{
	st_online_t *t;
	struct timespec t0, t1;
	double secs;

	ck_assert_int_eq(st_online_new(&t, "127.0.0.1", port, PREFIX, 0, 200,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(queue(t, "1", 1000, 1, "a=1"), 0);
	kill(server, SIGSTOP);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(st_online_flush(t, NULL, NULL, errstr,
					 sizeof(errstr)), ST_EREDIS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kill(server, SIGCONT);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 2.0, "flush took %.2f s", secs);
	ck_assert_ptr_nonnull(strstr(errstr, "timed out"));
	ck_assert_uint_eq(st_online_pending(t), 1);
	ck_assert_msg(st_online_flush(t, NULL, NULL, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	assert_stored("1", 1000, 1, "a=1");
	st_online_destroy(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("online");
	TCase *tc = tcase_create("online");
	const char *env = getenv("ST_SEED");
	SRunner *sr;
	int failed;

	if (!st_test_on_path("redis-server")) {
		fprintf(stderr, "check_online: redis-server is not on the PATH "
			"(scripts/install-deps installs it)\n");
		return 1;
	}
	/* A server that goes away must not kill the test (see online.h). */
	signal(SIGPIPE, SIG_IGN);
	seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	printf("online tests: ST_SEED=%llu\n", (unsigned long long)seed);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, key_format);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, unreachable);
	tcase_add_test(tc, write_creates_hash);
	tcase_add_test(tc, max_fields);
	tcase_add_test(tc, newest_wins);
	tcase_add_test(tc, int64_compared_exactly);
	tcase_add_test(tc, no_stale_fields);
	tcase_add_test(tc, ttl_applied);
	tcase_add_test(tc, shuffled_batch_keeps_newest);
	tcase_add_test(tc, coalesce_newest_only);
	tcase_add_test(tc, coalesce_binary_entities);
	tcase_add_test(tc, coalesce_relocates);
	tcase_add_test(tc, multi_key_counts);
	tcase_add_test(tc, calls_split);
	tcase_add_test(tc, noscript_recovered);
	tcase_add_test(tc, error_reply_keeps_queue);
	tcase_add_test(tc, connection_cut_mid_batch);
	tcase_add_test(tc, server_killed_mid_batch);
	tcase_add_test(tc, send_then_flush);
	tcase_add_test(tc, send_then_connection_cut);
	tcase_add_test(tc, noscript_mid_batch);
	tcase_add_test(tc, stopped_server_times_out);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
