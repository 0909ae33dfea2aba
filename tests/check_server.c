/*
 * check_server.c -- `strata serve` over a temporary state: the server runs
 * in a thread on 127.0.0.1 and a free port, and hiredis (or a raw socket,
 * for what a library would not send) talks to it: every command for
 * present, missing and unprefixed keys, binary keys, a corrupt record,
 * PING/ECHO/QUIT/COMMAND/INFO, HELLO and the RESP3 replies (read as raw
 * bytes: the hiredis we build with reads RESP2 only), CLIENT, SELECT and
 * AUTH, unknown commands and wrong arity, 1000
 * pipelined requests, inline commands, a client gone mid-request, protocol
 * errors, the client limit, output backpressure, answers that follow a
 * writer's commits, SCORE with the example model (tests/data) and
 * without a model, the metrics, and redis-cli when it is on the PATH.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include "error.h"
#include "testutil.h"
#include "metrics.h"
#include "server.h"
#include "state.h"
#include "temporal.h"
#include "vecrec.h"

#define PREFIX "strata:user"
#define NF 14                   /* features of the example model */
#define N42 (NF + 5)            /* fields of entity 42 */
#define TOL 1e-6

static char dir[64], errstr[512];
static st_server_t *srv;
static pthread_t thr;
static volatile sig_atomic_t stop;
static int running;

/* Entity 42: reference row 5 of fraud_model.json as Redis holds it. */
static const char *names42[N42], *values42[N42];
static char text42[NF][32], fnames[NF][64];
static float p1_42;             /* its P(fraud) by onnxruntime (Python) */

static const char *names7[] = { "_event_time", "_seq", "amount" };
static const char *values7[] = { "1700000000001", "7", "12.5" };

static const char *data_path(const char *name)
{
	static char path[1024];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/tests/data/%s", top ? top : ".",
		 name);
	return path;
}

static void load_reference(void)
{
	json_error_t jerr;
	json_t *j = json_load_file(data_path("fraud_model.json"), 0, &jerr);
	json_t *features, *row;
	size_t n = 0;

	ck_assert_msg(j, "fraud_model.json: %s", jerr.text);
	features = json_object_get(j, "features");
	row = json_array_get(json_object_get(j, "rows"), 5);
	ck_assert_uint_eq(json_array_size(features), NF);
	names42[n] = "_event_time";
	values42[n++] = "1700000000000";
	names42[n] = "_seq";
	values42[n++] = "12345";
	for (size_t i = 0; i < NF; i++) {
		snprintf(fnames[i], sizeof(fnames[i]), "%s",
			 json_string_value(json_array_get(features, i)));
		snprintf(text42[i], sizeof(text42[i]), "%.9g",
			 (double)(float)json_number_value(
				 json_array_get(row, i)));
		names42[n] = fnames[i];
		values42[n++] = text42[i];
	}
	names42[n] = "user_segment";
	values42[n++] = "gold";
	names42[n] = "_stale_join";
	values42[n++] = "0";
	names42[n] = "_score";
	values42[n++] = "0.5";
	p1_42 = (float)json_number_value(json_array_get(json_array_get(
		json_object_get(j, "probabilities"), 5), 1));
	json_decref(j);
}

/* Encodes an entity record (no window state) whose vector has n named
 * fields, in a layout of those names that it stores in the open write
 * transaction, as strata run does. Returns the length, or 0. */
static size_t encode_named(st_state_t *st, uint8_t *buf, size_t cap,
			   size_t n, const char *const *names,
			   const char *const *values, const size_t *lens)
{
	st_vecrec_layout_t *l = NULL;
	size_t idx[64], len = 0;
	char key[40];

	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	if (n <= 64 && cap > 4 && !st_vecrec_layout_new(names, n, &l)) {
		st_vecrec_layout_key(l->id, key, sizeof(key));
		memset(buf, 0, 4);  /* the window state's length */
		if (!st_state_meta_put(st, key, l->text, NULL, 0))
			len = st_vecrec_encode(buf + 4, cap - 4, l, n, idx,
					       values, lens);
	}
	st_vecrec_layout_free(l);
	return len ? len + 4 : 0;
}

static void put_record(st_state_t *st, const char *entity, size_t elen,
		       size_t n, const char *const *names,
		       const char *const *values)
{
	uint8_t buf[8192];
	size_t lens[64];
	MDB_val k = { elen, (void *)entity }, d;

	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(values[i]);
	d.mv_size = encode_named(st, buf, sizeof(buf), n, names, values,
				 lens);
	d.mv_data = buf;
	ck_assert_uint_gt(d.mv_size, 0);
	ck_assert_int_eq(mdb_put(st_state_write_txn(st),
				 st_state_dbi_entities(st), &k, &d, 0), 0);
}

static void put_raw(st_state_t *st, const char *entity, const void *rec,
		    size_t len)
{
	MDB_val k = { strlen(entity), (void *)entity };
	MDB_val d = { len, (void *)rec };

	ck_assert_int_eq(mdb_put(st_state_write_txn(st),
				 st_state_dbi_entities(st), &k, &d, 0), 0);
}

static st_state_t *open_writable(void)
{
	st_state_t *st = NULL;

	ck_assert_msg(st_state_open(&st, dir, 64 << 20, ST_STATE_NOSYNC,
				    errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	return st;
}

static void setup(void)
{
	static const char *const nb[] = { "_event_time", "x" };
	static const char *const vb[] = { "1", "y" };
	static const uint8_t corrupt[] = { 3, 0, 5, 'a' };
	st_state_t *st;

	snprintf(dir, sizeof(dir), "/tmp/check_server-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	load_reference();
	st = open_writable();
	put_record(st, "42", 2, N42, names42, values42);
	put_record(st, "7", 1, 3, names7, values7);
	put_record(st, "a\0b", 3, 2, nb, vb);
	put_raw(st, "bad", corrupt, sizeof(corrupt));
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	st_state_close(st);
}

static void *serve(void *opaque)
{
	static char err[512];

	(void)opaque;
	return st_server_run(srv, &stop, err, sizeof(err)) ? err : NULL;
}

static const st_recommend_conf_t *rec_conf;  /* start()'s RECOMMEND */

static void start(const char *model, int max_clients, int64_t max_output)
{
	st_server_conf_t conf = {
		.recommend = rec_conf,
		.listen = "127.0.0.1:0",
		.state_dir = dir,
		.prefix = PREFIX,
		.model = model,
		.metrics_listen = "127.0.0.1:0",
		.max_clients = max_clients,
		.max_output = max_output,
	};

	ck_assert_msg(st_server_new(&srv, &conf, errstr, sizeof(errstr)) == 0,
		      "%s", errstr);
	ck_assert_int_gt(st_server_port(srv), 0);
	ck_assert_int_gt(st_server_metrics_port(srv), 0);
	stop = 0;
	ck_assert_int_eq(pthread_create(&thr, NULL, serve, NULL), 0);
	running = 1;
}

static void start_default(void)
{
	start(NULL, 100, 64 << 20);
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
			struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	void *rv = NULL;

	if (running) {
		stop = 1;
		pthread_join(thr, &rv);
		st_server_destroy(srv);
		running = 0;
	}
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	ck_assert_msg(rv == NULL, "st_server_run: %s", (char *)rv);
}

/* ---- clients ---------------------------------------------------------- */

static redisContext *connect_hiredis(void)
{
	struct timeval tv = { 10, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1",
						  st_server_port(srv), tv);

	ck_assert_msg(c && !c->err, "connect: %s", c ? c->errstr : "NULL");
	redisSetTimeout(c, tv);
	return c;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	return r;
}

static void expect_status(redisContext *c, const char *want,
			  const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	ck_assert_msg(r->type == REDIS_REPLY_STATUS, "%s: type %d %s", fmt,
		      r->type, r->str ? r->str : "");
	ck_assert_str_eq(r->str, want);
	freeReplyObject(r);
}

static void expect_error(redisContext *c, const char *want,
			 const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	ck_assert_msg(r->type == REDIS_REPLY_ERROR, "%s: type %d", fmt,
		      r->type);
	ck_assert_str_eq(r->str, want);
	freeReplyObject(r);
}

static void expect_int(redisContext *c, long long want, const char *fmt,
		       ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "%s: type %d %s", fmt,
		      r->type, r->str ? r->str : "");
	ck_assert_int_eq(r->integer, want);
	freeReplyObject(r);
}

/* want NULL: a nil reply. */
static void expect_bulk(redisContext *c, const char *want, const char *fmt,
			...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	if (!want) {
		ck_assert_msg(r->type == REDIS_REPLY_NIL, "%s: type %d", fmt,
			      r->type);
	} else {
		ck_assert_msg(r->type == REDIS_REPLY_STRING, "%s: type %d %s",
			      fmt, r->type, r->str ? r->str : "");
		ck_assert_uint_eq(r->len, strlen(want));
		ck_assert_str_eq(r->str, want);
	}
	freeReplyObject(r);
}

static void check_hash(const redisReply *r, size_t n,
		       const char *const *names, const char *const *values)
{
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 2 * n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(r->element[2 * i]->str, names[i]);
		ck_assert_str_eq(r->element[2 * i + 1]->str, values[i]);
	}
}

/* A raw connection, for bytes no client library sends. */
static int connect_raw(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_port = htons((uint16_t)st_server_port(srv));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

#define SEND_LIT(fd, lit) send_all(fd, lit, sizeof(lit) - 1)

/* Reads until want bytes came or the peer closed (*closed) or timed
 * out; returns what came, NUL-terminated (caller frees). */
static char *recv_some(int fd, size_t want, int *closed)
{
	size_t len = 0, cap = want + 1;
	char *buf = malloc(cap);

	*closed = 0;
	ck_assert_ptr_nonnull(buf);
	while (len < want) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);

		if (n <= 0) {
			*closed = n == 0 || errno == ECONNRESET;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

static void expect_raw(int fd, const char *want)
{
	int closed;
	char *got = recv_some(fd, strlen(want), &closed);

	ck_assert_str_eq(got, want);
	free(got);
}

static void expect_closed(int fd)
{
	int closed;
	char *got = recv_some(fd, 1, &closed);

	ck_assert_msg(closed && !*got, "connection open, got '%s'", got);
	free(got);
}

/* The value of an INFO field, as a number. */
static long info_field(redisContext *c, const char *field)
{
	redisReply *r = cmd(c, "INFO");
	const char *p;
	long v;

	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	p = strstr(r->str, field);
	ck_assert_msg(p != NULL, "no %s in INFO", field);
	v = strtol(p + strlen(field) + 1, NULL, 10);
	freeReplyObject(r);
	return v;
}

/* Waits (up to 5 s) for the server to count n connections. */
static void wait_clients(redisContext *c, long n)
{
	long got = -1;

	for (int i = 0; i < 500 && got != n; i++) {
		got = info_field(c, "connected_clients");
		if (got != n)
			usleep(10000);
	}
	ck_assert_int_eq(got, n);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(hash_commands)
{
	redisContext *c;
	redisReply *r;

	start_default();
	c = connect_hiredis();
	r = cmd(c, "HGETALL %s", PREFIX ":42");
	check_hash(r, N42, names42, values42);
	freeReplyObject(r);
	r = cmd(c, "hgetall %s", PREFIX ":7");
	check_hash(r, 3, names7, values7);
	freeReplyObject(r);
	expect_bulk(c, "12.5", "HGET %s amount", PREFIX ":7");
	expect_bulk(c, "gold", "HGET %s user_segment", PREFIX ":42");
	expect_bulk(c, "1700000000000", "HGET %s _event_time", PREFIX ":42");
	expect_bulk(c, NULL, "HGET %s nope", PREFIX ":42");
	expect_int(c, 1, "HEXISTS %s _seq", PREFIX ":7");
	expect_int(c, 0, "HEXISTS %s nope", PREFIX ":7");
	expect_int(c, N42, "HLEN %s", PREFIX ":42");
	expect_int(c, 3, "HLEN %s", PREFIX ":7");
	expect_status(c, "hash", "TYPE %s", PREFIX ":42");
	expect_int(c, 1, "EXISTS %s", PREFIX ":42");
	expect_int(c, 3, "EXISTS %s %s %s %s", PREFIX ":42", PREFIX ":7",
		   PREFIX ":42", PREFIX ":nope");
	r = cmd(c, "HMGET %s amount nope _seq", PREFIX ":7");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 3);
	ck_assert_str_eq(r->element[0]->str, "12.5");
	ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
	ck_assert_str_eq(r->element[2]->str, "7");
	freeReplyObject(r);
	/* A binary entity. */
	r = cmd(c, "HGETALL %b", PREFIX ":a\0b", sizeof(PREFIX ":a\0b") - 1);
	ck_assert_uint_eq(r->elements, 4);
	ck_assert_str_eq(r->element[3]->str, "y");
	freeReplyObject(r);
	redisFree(c);
}
END_TEST

/* Missing keys, keys outside the prefix, an empty entity, a key longer
 * than LMDB's keys: all answer as missing. */
START_TEST(missing_keys)
{
	static const char *const keys[] = {
		PREFIX ":nope", "other:42", "42", PREFIX, PREFIX ":", "",
		"strata:user42", "STRATA:USER:42"
	};
	char longkey[2048];
	redisContext *c;

	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	memcpy(longkey, PREFIX ":", sizeof(PREFIX));
	start_default();
	c = connect_hiredis();
	for (size_t i = 0; i <= sizeof(keys) / sizeof(keys[0]); i++) {
		const char *k = i < sizeof(keys) / sizeof(keys[0]) ? keys[i] :
				longkey;
		redisReply *r = cmd(c, "HGETALL %s", k);

		ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
		ck_assert_uint_eq(r->elements, 0);
		freeReplyObject(r);
		expect_bulk(c, NULL, "HGET %s amount", k);
		expect_int(c, 0, "HEXISTS %s amount", k);
		expect_int(c, 0, "HLEN %s", k);
		expect_int(c, 0, "EXISTS %s", k);
		expect_status(c, "none", "TYPE %s", k);
		r = cmd(c, "HMGET %s a b", k);
		ck_assert_uint_eq(r->elements, 2);
		ck_assert_int_eq(r->element[0]->type, REDIS_REPLY_NIL);
		ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
		freeReplyObject(r);
	}
	redisFree(c);
}
END_TEST

START_TEST(corrupt_record)
{
	static const char want[] = "ERR corrupt vector record for key "
				   "'" PREFIX ":bad'";
	redisContext *c;

	start_default();
	c = connect_hiredis();
	expect_error(c, want, "HGETALL %s", PREFIX ":bad");
	expect_error(c, want, "HGET %s a", PREFIX ":bad");
	expect_error(c, want, "HMGET %s a b", PREFIX ":bad");
	expect_error(c, want, "HEXISTS %s a", PREFIX ":bad");
	/* The connection goes on. */
	expect_status(c, "PONG", "PING");
	redisFree(c);
}
END_TEST

/* Records are padded to a size class; the padding reads as the end, and
 * anything else after the last field as corruption. */
START_TEST(padded_record)
{
	static const char *const names[] = {"a", "bb"};
	static const char *const values[] = {"1", "22"};
	static const size_t lens[] = {1, 2}, idx[] = {0, 1}, bad[] = {0, 2};
	st_vecrec_layout_t *l = NULL, *other = NULL;
	uint8_t buf[256];
	st_vecrec_iter_t it;
	const char *nm, *val;
	size_t nl, vl, len;

	ck_assert_int_eq(st_vecrec_layout_new(names, 2, &l), 0);
	len = st_vecrec_encode(buf, sizeof(buf), l, 2, idx, values, lens);
	ck_assert_uint_eq(len, ST_VECREC_ALIGN);
	ck_assert_uint_eq(st_vecrec_count(buf, len), 2);
	ck_assert_int_eq(st_vecrec_iter_init(&it, l, buf, len), 0);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 1);
	ck_assert_uint_eq(nl, 1);
	ck_assert_int_eq(memcmp(nm, "a", 1), 0);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 1);
	ck_assert_uint_eq(nl, 2);
	ck_assert_int_eq(memcmp(nm, "bb", 2), 0);
	ck_assert_uint_eq(vl, 2);
	ck_assert_int_eq(memcmp(val, "22", 2), 0);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 0);
	/* Without room for the padding the record is exact; with less
	 * room than that, it is not written. */
	ck_assert_uint_eq(st_vecrec_encode(buf, 13, l, 2, idx, values, lens),
			  13);
	ck_assert_uint_eq(st_vecrec_encode(buf, 12, l, 2, idx, values, lens),
			  0);
	/* An index outside the layout is refused. */
	ck_assert_uint_eq(st_vecrec_encode(buf, sizeof(buf), l, 2, bad,
					   values, lens), 0);
	/* A non-zero byte after the last field is corruption. */
	len = st_vecrec_encode(buf, sizeof(buf), l, 2, idx, values, lens);
	buf[len - 1] = 1;
	ck_assert_int_eq(st_vecrec_iter_init(&it, l, buf, len), 0);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 1);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 1);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), ST_EPARSE);
	/* Read with another layout, or truncated: corrupt. */
	ck_assert_int_eq(st_vecrec_layout_new(names + 1, 1, &other), 0);
	ck_assert_int_ne(other->id, l->id);
	ck_assert_int_eq(st_vecrec_iter_init(&it, other, buf, len),
			 ST_EPARSE);
	buf[len - 1] = 0;
	ck_assert_int_eq(st_vecrec_iter_init(&it, l, buf, 9), 0);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), 1);
	ck_assert_int_eq(st_vecrec_next(&it, &nm, &nl, &val, &vl), ST_EPARSE);
	st_vecrec_layout_free(other);
	st_vecrec_layout_free(l);
}
END_TEST

/* A layout's text round-trips, and a bad one is refused. */
START_TEST(vector_layout)
{
	static const char *const names[] = {"_event_time", "x", "y"};
	static const char *const empty[] = {"a", ""};
	static const char *const newline[] = {"a\nb"};
	st_vecrec_layout_t *l = NULL, *back = NULL, *none = NULL;
	char key[40];

	ck_assert_int_eq(st_vecrec_layout_new(names, 3, &l), 0);
	ck_assert_str_eq(l->text, "_event_time\nx\ny");
	ck_assert_int_eq(st_vecrec_layout_parse(l->text, strlen(l->text),
						&back), 0);
	ck_assert_uint_eq(back->n, 3);
	ck_assert_uint_eq(back->id, l->id);
	ck_assert_uint_eq(back->lens[2], 1);
	ck_assert_int_eq(memcmp(back->names[2], "y", 1), 0);
	st_vecrec_layout_key(0x1234abcd, key, sizeof(key));
	ck_assert_str_eq(key, "vector.layout.1234abcd");
	ck_assert_int_eq(st_vecrec_layout_new(empty, 2, &none), ST_EINVAL);
	ck_assert_int_eq(st_vecrec_layout_new(newline, 1, &none), ST_EINVAL);
	ck_assert_int_eq(st_vecrec_layout_parse("a\n\nb", 4, &none),
			 ST_EPARSE);
	ck_assert_ptr_null(none);
	st_vecrec_layout_free(l);
	st_vecrec_layout_free(back);
}
END_TEST

START_TEST(connection_commands)
{
	redisContext *c;
	redisReply *r;

	start_default();
	c = connect_hiredis();
	expect_status(c, "PONG", "PING");
	expect_status(c, "PONG", "ping");
	expect_bulk(c, "hello", "PING hello");
	expect_bulk(c, "a b\r\n", "ECHO %s", "a b\r\n");
	expect_bulk(c, "", "ECHO %s", "");
	r = cmd(c, "INFO");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_ptr_nonnull(strstr(r->str, "strata_version:"));
	ck_assert_ptr_nonnull(strstr(r->str, "connected_clients:1\r\n"));
	freeReplyObject(r);
	ck_assert_int_ge(info_field(c, "total_commands_processed"), 6);
	expect_status(c, "OK", "QUIT");
	r = redisCommand(c, "PING");
	ck_assert_ptr_null(r);
	redisFree(c);
}
END_TEST

START_TEST(unknown_and_arity)
{
	redisContext *c;

	start_default();
	c = connect_hiredis();
	expect_error(c, "ERR unknown command 'SET', with args beginning "
		     "with: 'k' 'v' ", "SET k v");
	expect_error(c, "ERR unknown command 'flushall', with args "
		     "beginning with: ", "flushall");
	expect_error(c, "ERR wrong number of arguments for 'hget' command",
		     "HGET k");
	expect_error(c, "ERR wrong number of arguments for 'hgetall' "
		     "command", "HGETALL a b");
	expect_error(c, "ERR wrong number of arguments for 'hmget' command",
		     "HMGET k");
	expect_error(c, "ERR wrong number of arguments for 'exists' "
		     "command", "EXISTS");
	expect_error(c, "ERR wrong number of arguments for 'ping' command",
		     "PING a b");
	expect_error(c, "ERR wrong number of arguments for 'echo' command",
		     "ECHO");
	expect_error(c, "ERR wrong number of arguments for 'score' command",
		     "SCORE");
	expect_error(c, "ERR unknown subcommand 'nope'. Try COMMAND HELP.",
		     "COMMAND nope");
	/* Still talking. */
	expect_status(c, "PONG", "PING");
	redisFree(c);
}
END_TEST

START_TEST(command_command)
{
	redisContext *c;
	redisReply *r;

	start_default();
	c = connect_hiredis();
	expect_int(c, 18, "COMMAND COUNT");
	r = cmd(c, "COMMAND");
	ck_assert_uint_eq(r->elements, 18);
	freeReplyObject(r);
	r = cmd(c, "COMMAND INFO hget nope HGETALL");
	ck_assert_uint_eq(r->elements, 3);
	ck_assert_uint_eq(r->element[0]->elements, 10);
	ck_assert_str_eq(r->element[0]->element[0]->str, "hget");
	ck_assert_int_eq(r->element[0]->element[1]->integer, 3);
	ck_assert_str_eq(r->element[0]->element[2]->element[0]->str,
			 "readonly");
	ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
	ck_assert_str_eq(r->element[2]->element[0]->str, "hgetall");
	freeReplyObject(r);
	r = cmd(c, "COMMAND DOCS hmget");
	ck_assert_uint_eq(r->elements, 2);
	ck_assert_str_eq(r->element[0]->str, "hmget");
	ck_assert_str_eq(r->element[1]->element[0]->str, "summary");
	freeReplyObject(r);
	r = cmd(c, "COMMAND DOCS");
	ck_assert_uint_eq(r->elements, 36);
	freeReplyObject(r);
	/* The commands clients send on connecting. */
	r = cmd(c, "COMMAND INFO hello client select auth");
	ck_assert_uint_eq(r->elements, 4);
	ck_assert_str_eq(r->element[0]->element[0]->str, "hello");
	ck_assert_int_eq(r->element[0]->element[1]->integer, -1);
	ck_assert_str_eq(r->element[1]->element[0]->str, "client");
	ck_assert_int_eq(r->element[1]->element[1]->integer, -2);
	ck_assert_str_eq(r->element[2]->element[0]->str, "select");
	ck_assert_int_eq(r->element[2]->element[1]->integer, 2);
	ck_assert_str_eq(r->element[3]->element[0]->str, "auth");
	ck_assert_int_eq(r->element[3]->element[1]->integer, -2);
	freeReplyObject(r);
	r = cmd(c, "COMMAND DOCS hello client select auth");
	ck_assert_uint_eq(r->elements, 8);
	freeReplyObject(r);
	r = cmd(c, "COMMAND HELP");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	freeReplyObject(r);
	redisFree(c);
}
END_TEST

/* Reads until what came ends with end (or the peer closed, or timed
 * out); returns it, NUL-terminated (caller frees). */
static char *recv_until(int fd, const char *end, size_t *len)
{
	size_t n = 0, cap = 4096, el = strlen(end);
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	while (n < el || memcmp(buf + n - el, end, el)) {
		ssize_t got;

		if (cap - n < 1024) {
			buf = realloc(buf, cap *= 2);
			ck_assert_ptr_nonnull(buf);
		}
		got = recv(fd, buf + n, cap - n - 1, 0);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* HELLO's reply to connection id, in RESP3 (%7) or RESP2 (*14). */
static const char *hello_reply(int proto, int id)
{
	static char want[512];

	snprintf(want, sizeof(want), "%s\r\n$6\r\nserver\r\n$6\r\nstrata\r\n"
		 "$7\r\nversion\r\n$%zu\r\n%s\r\n$5\r\nproto\r\n:%d\r\n"
		 "$2\r\nid\r\n:%d\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
		 "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
		 proto == 3 ? "%7" : "*14", strlen(PACKAGE_VERSION),
		 PACKAGE_VERSION, proto, id);
	return want;
}

/* A raw connection switched to RESP3 (connection id). */
static int connect_resp3(int id)
{
	int fd = connect_raw();

	SEND_LIT(fd, "HELLO 3\r\n");
	expect_raw(fd, hello_reply(3, id));
	return fd;
}

START_TEST(hello_resp3)
{
	char *got;
	size_t len;
	int fd;

	start_default();
	fd = connect_resp3(1);
	SEND_LIT(fd, "HGETALL " PREFIX ":7\r\n");
	expect_raw(fd, "%3\r\n$11\r\n_event_time\r\n$13\r\n1700000000001\r\n"
		   "$4\r\n_seq\r\n$1\r\n7\r\n$6\r\namount\r\n$4\r\n12.5\r\n");
	SEND_LIT(fd, "HGETALL " PREFIX ":nope\r\nHGETALL other:7\r\n");
	expect_raw(fd, "%0\r\n%0\r\n");
	SEND_LIT(fd, "HGET " PREFIX ":7 nope\r\nHGET " PREFIX ":nope x\r\n"
		 "HGET " PREFIX ":7 amount\r\n");
	expect_raw(fd, "_\r\n_\r\n$4\r\n12.5\r\n");
	SEND_LIT(fd, "HMGET " PREFIX ":7 amount nope\r\n"
		 "HMGET " PREFIX ":nope a\r\n");
	expect_raw(fd, "*2\r\n$4\r\n12.5\r\n_\r\n*1\r\n_\r\n");
	/* The replies RESP3 does not change. */
	SEND_LIT(fd, "PING\r\nHLEN " PREFIX ":7\r\n"
		 "HEXISTS " PREFIX ":7 _seq\r\nEXISTS " PREFIX ":7\r\n"
		 "TYPE " PREFIX ":7\r\nECHO hi\r\n"
		 "SET k v\r\nCLIENT GETNAME\r\nCLIENT ID\r\nSELECT 0\r\n");
	expect_raw(fd, "+PONG\r\n:3\r\n:1\r\n:1\r\n+hash\r\n$2\r\nhi\r\n"
		   "-ERR unknown command 'SET', with args beginning with: "
		   "'k' 'v' \r\n_\r\n:1\r\n+OK\r\n");
	SEND_LIT(fd, "HGETALL " PREFIX ":bad\r\n");
	expect_raw(fd, "-ERR corrupt vector record for key '" PREFIX
		   ":bad'\r\n");
	/* COMMAND's maps and sets, as Redis 7 writes them in RESP3. */
	SEND_LIT(fd, "COMMAND INFO ping nope\r\n");
	expect_raw(fd, "*2\r\n*10\r\n$4\r\nping\r\n:-1\r\n~1\r\n+fast\r\n"
		   ":0\r\n:0\r\n:0\r\n~2\r\n+@fast\r\n+@connection\r\n"
		   "~0\r\n~0\r\n~0\r\n_\r\n");
	SEND_LIT(fd, "COMMAND DOCS ping nope\r\n");
	expect_raw(fd, "%1\r\n$4\r\nping\r\n%5\r\n$7\r\nsummary\r\n$41\r\n"
		   "Returns the server's liveliness response.\r\n"
		   "$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n"
		   "$10\r\nconnection\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n"
		   "$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n"
		   "$7\r\nmessage\r\n$4\r\ntype\r\n$6\r\nstring\r\n"
		   "$5\r\nflags\r\n~1\r\n+optional\r\n");
	SEND_LIT(fd, "COMMAND DOCS\r\nPING\r\n");
	got = recv_until(fd, "+PONG\r\n", &len);
	ck_assert_msg(!strncmp(got, "%18\r\n$4\r\nauth\r\n%5\r\n", 19), "%s",
		      got);
	free(got);
	/* INFO: a verbatim string. */
	SEND_LIT(fd, "INFO\r\nPING\r\n");
	got = recv_until(fd, "+PONG\r\n", &len);
	ck_assert_msg(!strncmp(got, "=", 1) && strstr(got, "\r\ntxt:# Server"
						      "\r\nstrata_version:"),
		      "%s", got);
	ck_assert_int_eq(strtol(got + 1, NULL, 10),
			 (long)(len - 7 - (size_t)(strstr(got, "txt:") - got) -
				2));
	free(got);
	/* HELLO 2 goes back; HELLO alone tells the current version. */
	SEND_LIT(fd, "HELLO\r\n");
	expect_raw(fd, hello_reply(3, 1));
	SEND_LIT(fd, "HELLO 2\r\n");
	expect_raw(fd, hello_reply(2, 1));
	SEND_LIT(fd, "HGETALL " PREFIX ":nope\r\nHGET " PREFIX ":7 nope\r\n");
	expect_raw(fd, "*0\r\n$-1\r\n");
	close(fd);
}
END_TEST

START_TEST(hello_errors)
{
	redisContext *c;
	redisReply *r;
	int fd;

	start_default();
	fd = connect_raw();
	/* A refused HELLO changes nothing. */
	SEND_LIT(fd, "HELLO 4\r\nHELLO 1\r\nHELLO x\r\nHELLO 03\r\n"
		 "HELLO -3\r\nHELLO 3 AUTH bob pw\r\nHELLO 3 AUTH default\r\n"
		 "HELLO 3 FOO\r\nHELLO 3 SETNAME\r\nHELLO 3 SETNAME \"a b\"\r\n"
		 "HGET " PREFIX ":7 nope\r\n");
	expect_raw(fd, "-NOPROTO unsupported protocol version\r\n"
		   "-NOPROTO unsupported protocol version\r\n"
		   "-ERR Protocol version is not an integer or out of range\r\n"
		   "-ERR Protocol version is not an integer or out of range\r\n"
		   "-NOPROTO unsupported protocol version\r\n"
		   "-WRONGPASS invalid username-password pair or user is "
		   "disabled.\r\n"
		   "-ERR Syntax error in HELLO option 'AUTH'\r\n"
		   "-ERR Syntax error in HELLO option 'FOO'\r\n"
		   "-ERR Syntax error in HELLO option 'SETNAME'\r\n"
		   "-ERR Client names cannot contain spaces, newlines or "
		   "special characters.\r\n"
		   "$-1\r\n");
	/* AUTH and SETNAME, as redis-py sends them: the default user takes
	 * any password. */
	SEND_LIT(fd, "hello 3 auth default secret setname app\r\n"
		 "CLIENT GETNAME\r\n");
	expect_raw(fd, hello_reply(3, 1));
	expect_raw(fd, "$3\r\napp\r\n");
	close(fd);
	/* In RESP2, HELLO's map is a flat array. */
	c = connect_hiredis();
	r = cmd(c, "HELLO 2");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 14);
	ck_assert_str_eq(r->element[0]->str, "server");
	ck_assert_str_eq(r->element[1]->str, "strata");
	ck_assert_str_eq(r->element[3]->str, PACKAGE_VERSION);
	ck_assert_int_eq(r->element[5]->integer, 2);
	ck_assert_int_eq(r->element[7]->integer, 2);
	ck_assert_int_eq(r->element[13]->type, REDIS_REPLY_ARRAY);
	freeReplyObject(r);
	redisFree(c);
}
END_TEST

START_TEST(client_select_auth)
{
	redisContext *c, *d;
	redisReply *r;

	start_default();
	c = connect_hiredis();
	d = connect_hiredis();
	expect_int(c, 1, "CLIENT ID");
	expect_int(d, 2, "client id");
	expect_bulk(c, NULL, "CLIENT GETNAME");
	expect_status(c, "OK", "CLIENT SETNAME %s", "app-1");
	expect_bulk(c, "app-1", "CLIENT GETNAME");
	expect_bulk(d, NULL, "CLIENT GETNAME");
	expect_error(c, "ERR Client names cannot contain spaces, newlines or "
		     "special characters.", "CLIENT SETNAME %s", "a b");
	expect_error(c, "ERR Client names cannot contain spaces, newlines or "
		     "special characters.", "CLIENT SETNAME %s", "caf\xc3\xa9");
	expect_bulk(c, "app-1", "CLIENT GETNAME");
	expect_status(c, "OK", "CLIENT SETNAME %s", "");
	expect_bulk(c, NULL, "CLIENT GETNAME");
	expect_status(c, "OK", "CLIENT SETINFO LIB-NAME redis-py");
	expect_status(c, "OK", "CLIENT SETINFO lib-ver 8.1.0");
	expect_error(c, "ERR Unrecognized option 'lib-foo'",
		     "CLIENT SETINFO lib-foo x");
	expect_error(c, "ERR LIB-NAME cannot contain spaces, newlines or "
		     "special characters.", "CLIENT SETINFO LIB-NAME %s",
		     "a b");
	expect_error(c, "ERR unknown subcommand 'nope'. Try CLIENT HELP.",
		     "CLIENT nope");
	expect_error(c, "ERR wrong number of arguments for 'client' command",
		     "CLIENT");
	expect_error(c, "ERR wrong number of arguments for 'client|id' "
		     "command", "CLIENT ID x");
	expect_error(c, "ERR wrong number of arguments for 'client|setname' "
		     "command", "CLIENT SETNAME a b");
	expect_error(c, "ERR wrong number of arguments for 'client|setinfo' "
		     "command", "CLIENT SETINFO LIB-NAME");
	r = cmd(c, "CLIENT HELP");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_str_eq(r->element[0]->str, "CLIENT <subcommand> [<arg> "
			 "[value] [opt] ...]. Subcommands are:");
	freeReplyObject(r);
	expect_status(c, "OK", "SELECT 0");
	expect_error(c, "ERR DB index is out of range", "SELECT 1");
	expect_error(c, "ERR DB index is out of range", "SELECT -1");
	expect_error(c, "ERR value is not an integer or out of range",
		     "SELECT x");
	expect_error(c, "ERR value is not an integer or out of range",
		     "SELECT 00");
	expect_error(c, "ERR value is not an integer or out of range",
		     "SELECT 4294967296");
	expect_error(c, "ERR wrong number of arguments for 'select' command",
		     "SELECT");
	expect_error(c, "ERR AUTH <password> called without any password "
		     "configured for the default user. Are you sure your "
		     "configuration is correct?", "AUTH secret");
	expect_status(c, "OK", "AUTH default secret");
	expect_error(c, "WRONGPASS invalid username-password pair or user is "
		     "disabled.", "AUTH bob secret");
	expect_error(c, "ERR syntax error", "AUTH a b c");
	expect_error(c, "ERR wrong number of arguments for 'auth' command",
		     "AUTH");
	/* Still talking, in RESP2. */
	expect_bulk(c, NULL, "HGET %s nope", PREFIX ":7");
	redisFree(c);
	redisFree(d);
}
END_TEST

START_TEST(pipelined_requests)
{
	redisContext *c;

	start_default();
	c = connect_hiredis();
	for (int i = 0; i < 1000; i++) {
		if (i % 4 == 0)
			redisAppendCommand(c, "HGETALL %s", PREFIX ":42");
		else if (i % 4 == 1)
			redisAppendCommand(c, "HGET %s amount", PREFIX ":7");
		else if (i % 4 == 2)
			redisAppendCommand(c, "EXISTS %s:%d", PREFIX, i);
		else
			redisAppendCommand(c, "ECHO %d", i);
	}
	for (int i = 0; i < 1000; i++) {
		void *v;
		redisReply *r;
		char num[16];

		ck_assert_int_eq(redisGetReply(c, &v), REDIS_OK);
		r = v;
		if (i % 4 == 0) {
			check_hash(r, N42, names42, values42);
		} else if (i % 4 == 1) {
			ck_assert_str_eq(r->str, "12.5");
		} else if (i % 4 == 2) {
			ck_assert_int_eq(r->integer, i == 42 || i == 7);
		} else {
			snprintf(num, sizeof(num), "%d", i);
			ck_assert_str_eq(r->str, num);
		}
		freeReplyObject(r);
	}
	redisFree(c);
}
END_TEST

START_TEST(inline_commands)
{
	int fd;

	start_default();
	fd = connect_raw();
	SEND_LIT(fd, "PING\r\nHGET " PREFIX ":7 amount\r\n"
		 "EXISTS " PREFIX ":42 \"" PREFIX ":7\"\n");
	expect_raw(fd, "+PONG\r\n$4\r\n12.5\r\n:2\r\n");
	/* A request split anywhere. */
	SEND_LIT(fd, "*2\r\n$4\r\nEC");
	usleep(20000);
	SEND_LIT(fd, "HO\r\n$2\r\nhi\r\n");
	expect_raw(fd, "$2\r\nhi\r\n");
	close(fd);
}
END_TEST

START_TEST(protocol_errors)
{
	redisContext *c;
	int fd;

	start_default();
	fd = connect_raw();
	SEND_LIT(fd, "PING\r\n*1\r\n$x\r\nPING\r\n");
	expect_raw(fd, "+PONG\r\n-ERR Protocol error: invalid bulk length"
		   "\r\n");
	expect_closed(fd);
	close(fd);
	fd = connect_raw();
	SEND_LIT(fd, "*2000\r\n");
	expect_raw(fd, "-ERR Protocol error: invalid multibulk length\r\n");
	expect_closed(fd);
	close(fd);
	fd = connect_raw();
	SEND_LIT(fd, "ECHO \"abc\r\n");
	expect_raw(fd, "-ERR Protocol error: unbalanced quotes in request"
		   "\r\n");
	expect_closed(fd);
	close(fd);
	c = connect_hiredis();
	expect_status(c, "PONG", "PING");
	ck_assert_int_ge(info_field(c, "total_error_replies"), 3);
	redisFree(c);
}
END_TEST

START_TEST(disconnect_mid_request)
{
	redisContext *c;

	start_default();
	c = connect_hiredis();
	for (int i = 0; i < 20; i++) {
		int fd = connect_raw();

		/* Header only, part of a bulk, or a large bulk begun. */
		if (i % 3 == 0)
			SEND_LIT(fd, "*3\r\n");
		else if (i % 3 == 1)
			SEND_LIT(fd, "*3\r\n$4\r\nHGET\r\n$14\r\nstrata:u");
		else
			SEND_LIT(fd, "*2\r\n$4\r\nECHO\r\n$900000\r\nabc");
		close(fd);
	}
	wait_clients(c, 1);
	expect_status(c, "PONG", "PING");
	redisFree(c);
}
END_TEST

START_TEST(client_limit)
{
	redisContext *a, *b;
	int fd;

	start(NULL, 2, 64 << 20);
	a = connect_hiredis();
	b = connect_hiredis();
	expect_status(a, "PONG", "PING");
	expect_status(b, "PONG", "PING");
	fd = connect_raw();
	expect_raw(fd, "-ERR max number of clients reached\r\n");
	expect_closed(fd);
	close(fd);
	redisFree(b);
	wait_clients(a, 1);
	b = connect_hiredis();
	expect_status(b, "PONG", "PING");
	ck_assert_int_eq(info_field(b, "rejected_connections"), 1);
	redisFree(a);
	redisFree(b);
}
END_TEST

/* With a tiny output limit, a client that sends many requests before
 * reading gets every reply, in order. */
START_TEST(output_backpressure)
{
	redisContext *c;

	start(NULL, 10, 4096);
	c = connect_hiredis();
	for (int i = 0; i < 1000; i++)
		redisAppendCommand(c, "HGETALL %s", PREFIX ":42");
	redisAppendCommand(c, "ECHO end");
	for (int i = 0; i < 1000; i++) {
		void *v;

		ck_assert_int_eq(redisGetReply(c, &v), REDIS_OK);
		check_hash(v, N42, names42, values42);
		freeReplyObject(v);
	}
	{
		void *v;

		ck_assert_int_eq(redisGetReply(c, &v), REDIS_OK);
		ck_assert_str_eq(((redisReply *)v)->str, "end");
		freeReplyObject(v);
	}
	redisFree(c);
}
END_TEST

/* A writer (another process, as `strata run` is) commits; the next
 * request sees it. */
START_TEST(follows_commits)
{
	static const char *const v2[] = { "1700000000002", "8", "99" };
	redisContext *c;
	int status;
	pid_t pid;

	start_default();
	c = connect_hiredis();
	expect_bulk(c, "12.5", "HGET %s amount", PREFIX ":7");
	expect_int(c, 0, "EXISTS %s", PREFIX ":8");
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		st_state_t *st = NULL;
		int err = st_state_open(&st, dir, 64 << 20, ST_STATE_NOSYNC,
					errstr, sizeof(errstr)) ||
			  st_state_begin(st, errstr, sizeof(errstr));
		size_t lens[3] = { 13, 1, 2 };
		uint8_t buf[256];
		MDB_val k = { 1, "7" }, d = { 0, buf };

		d.mv_size = err ? 0 : encode_named(st, buf, sizeof(buf), 3,
						   names7, v2, lens);
		err = err || mdb_put(st_state_write_txn(st),
				     st_state_dbi_entities(st), &k, &d, 0);
		k.mv_data = "8";
		err = err || mdb_put(st_state_write_txn(st),
				     st_state_dbi_entities(st), &k, &d, 0);
		err = err || st_state_commit(st, errstr, sizeof(errstr));
		st_state_close(st);
		_exit(err ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	expect_bulk(c, "99", "HGET %s amount", PREFIX ":7");
	expect_int(c, 1, "EXISTS %s", PREFIX ":8");
	redisFree(c);
}
END_TEST

/* The writer is restarted with a larger map and grows the state past the
 * server's map: the server adopts the new size and keeps answering. */
START_TEST(follows_map_growth)
{
	static const char *const v2[] = { "1700000000003", "8", "77" };
	redisContext *c;
	int status;
	pid_t pid;

	start_default();
	c = connect_hiredis();
	expect_bulk(c, "12.5", "HGET %s amount", PREFIX ":7");
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		st_state_t *st = NULL;
		int err = st_state_open(&st, dir, 256 << 20, ST_STATE_NOSYNC,
					errstr, sizeof(errstr)) ||
			  st_state_begin(st, errstr, sizeof(errstr));
		size_t lens[3] = { 13, 1, 2 };
		static uint8_t big[1 << 20];
		uint8_t buf[256];
		char name[32];
		MDB_val k = { 1, "7" }, d = { 0, buf };

		d.mv_size = err ? 0 : encode_named(st, buf, sizeof(buf), 3,
						   names7, v2, lens);
		err = err || mdb_put(st_state_write_txn(st),
				     st_state_dbi_entities(st), &k, &d, 0);
		/* 96 MiB of filler: past the 64 MiB the server mapped. */
		for (int i = 0; !err && i < 96; i++) {
			MDB_val bk = { 0, name }, bd = { sizeof(big), big };

			bk.mv_size = (size_t)snprintf(name, sizeof(name),
						      "filler%d", i);
			err = mdb_put(st_state_write_txn(st),
				      st_state_dbi_entities(st), &bk, &bd, 0);
		}
		err = err || st_state_commit(st, errstr, sizeof(errstr));
		st_state_close(st);
		_exit(err ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	expect_bulk(c, "77", "HGET %s amount", PREFIX ":7");
	redisFree(c);
}
END_TEST

START_TEST(score_with_model)
{
	redisContext *c;
	redisReply *r;
	int fd;

	start(data_path("fraud_model.onnx"), 10, 64 << 20);
	c = connect_hiredis();
	r = cmd(c, "SCORE %s", PREFIX ":42");
	ck_assert_msg(r->type == REDIS_REPLY_STRING, "type %d %s", r->type,
		      r->str ? r->str : "");
	ck_assert_msg(fabs(strtod(r->str, NULL) - p1_42) <= TOL,
		      "SCORE %s, python %.9g", r->str, p1_42);
	freeReplyObject(r);
	expect_bulk(c, NULL, "SCORE %s", PREFIX ":nope");
	expect_bulk(c, NULL, "SCORE %s", "other:42");
	/* No feature of the model: every column NaN, still a score. */
	r = cmd(c, "SCORE %s", PREFIX ":7");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert(strtod(r->str, NULL) >= 0 && strtod(r->str, NULL) <= 1);
	freeReplyObject(r);
	expect_error(c, "ERR corrupt vector record for key '" PREFIX ":bad'",
		     "SCORE %s", PREFIX ":bad");
	redisFree(c);
	/* A missing key's score in RESP3: a null. */
	fd = connect_resp3(2);
	SEND_LIT(fd, "SCORE " PREFIX ":nope\r\n");
	expect_raw(fd, "_\r\n");
	close(fd);
}
END_TEST

/* The metrics endpoint serves the server's registry. */
static char *scrape(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	int fd = socket(AF_INET, SOCK_STREAM, 0), closed;
	char *body;

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	send_all(fd, req, sizeof(req) - 1);
	body = recv_some(fd, 1 << 20, &closed);
	close(fd);
	return body;
}

/* ---- RECOMMEND ------------------------------------------------------- */

/* The test model's settings: items, their merchants, users. */
static st_recommend_conf_t recommend_conf(size_t candidates_max)
{
	return (st_recommend_conf_t){
		.model = data_path("recommend_lin.onnx"), .table = "items",
		.user_table = "users", .joins = "merchants:merchant_id",
		.candidates_max = candidates_max,
	};
}

/* start() with RECOMMEND configured by rc. */
static void start_recommend(const st_recommend_conf_t *rc)
{
	rec_conf = rc;
	start(NULL, 10, 64 << 20);
	rec_conf = NULL;
}

/* recommend_lin.onnx: score = x . w over these columns (make_models.py). */
static const double rec_w[] = { 1, 0.01, 10, -5, 3, 100, 1000, 0.5, 7,
				 20 };

static void version(st_state_t *st, const char *table, const char *key,
		    int64_t ts, const char *json)
{
	static int64_t lsn;
	st_apply_result_t res;
	st_cdc_msg_t m = { .kind = ST_CDC_CHANGE, .op = json ? 'u' : 'd' };

	snprintf(m.table, sizeof(m.table), "%s", table);
	m.key = strdup(key);
	m.key_len = strlen(key);
	m.ts_ms = ts;
	m.lsn = ++lsn;
	if (json)
		ck_assert_int_eq(st_test_row(json, &m.row, &m.row_len), 0);
	ck_assert_int_eq(st_temporal_apply(st, &m, &res, errstr,
					   sizeof(errstr)), 0);
	ck_assert_int_eq(res, ST_APPLY_STORED);
	st_cdc_msg_clear(&m);
}

/*
 * A catalogue: items with their merchants, users, and the vectors of
 * users 8 (spend 5) and 9 (none). Scores for user 8 (risk tier 3,
 * silver), by item (score8() below):
 *   8, 9: price 5000, book, merchant 2 (0.1, grocery, mcc 5411),
 *         flag 0 (a tie: key order)
 *   10: price 1500, book, merchant 2 ("2" as a string), flag 0
 *    2, 7: price 200, phone, merchant 2, flag 0 (a tie)
 *    1: price 10, book, merchant 1 (0.5, travel, mcc 4722), flag 1
 *    6: newest price 2, book, merchant 1, flag 1
 *    3: merchant 99 does not exist                           -> NaN
 *    5: price "abc"                                          -> NaN
 *    4: deleted                                              -> absent
 */
static void put_catalogue(void)
{
	static const char *const n8[] = { "_event_time", "spend" };
	static const char *const v8[] = { "1700000000002", "5" };
	st_state_t *st = open_writable();

	version(st, "merchants", "1", 1000, "{\"category\":\"travel\","
		"\"risk_score\":0.5,\"mcc\":4722}");
	version(st, "merchants", "2", 1000, "{\"category\":\"grocery\","
		"\"risk_score\":0.1,\"mcc\":5411}");
	version(st, "items", "8", 1000, "{\"merchant_id\":2,\"price\":\"5000\","
		"\"category\":\"book\",\"flag\":false}");
	version(st, "items", "9", 1000, "{\"merchant_id\":2,\"price\":\"5000\","
		"\"category\":\"book\",\"flag\":false}");
	version(st, "items", "1", 1000, "{\"merchant_id\":1,\"price\":\"10.00\","
		"\"category\":\"book\",\"flag\":true}");
	version(st, "items", "2", 1000, "{\"merchant_id\":2,\"price\":\"200.00\","
		"\"category\":\"phone\",\"flag\":false}");
	version(st, "items", "7", 1000, "{\"merchant_id\":2,\"price\":\"200\","
		"\"category\":\"phone\",\"flag\":false}");
	version(st, "items", "3", 1000, "{\"merchant_id\":99,\"price\":\"1\","
		"\"category\":\"book\",\"flag\":true}");
	version(st, "items", "5", 1000, "{\"merchant_id\":1,\"price\":\"abc\","
		"\"category\":\"book\",\"flag\":true}");
	version(st, "items", "10", 1000, "{\"merchant_id\":\"2\",\"price\":1500,"
		"\"category\":\"book\",\"flag\":false}");
	version(st, "items", "6", 1000, "{\"merchant_id\":1,\"price\":\"1\","
		"\"category\":\"phone\",\"flag\":true}");
	version(st, "items", "6", 2000, "{\"merchant_id\":1,\"price\":\"2\","
		"\"category\":\"book\",\"flag\":true}");
	version(st, "items", "4", 1000, "{\"merchant_id\":1,\"price\":\"1\","
		"\"category\":\"book\",\"flag\":true}");
	version(st, "items", "4", 3000, NULL);
	version(st, "users", "8", 1000,
		"{\"risk_tier\":3,\"segment\":\"silver\"}");
	version(st, "users", "9", 1000,
		"{\"risk_tier\":1,\"segment\":\"gold\"}");
	put_record(st, "8", 1, 2, n8, v8);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	st_state_close(st);
}

/* An item's expected score for user 8, from the model's weights; its
 * merchant is 1 (risk 0.5, travel, mcc 4722) or 2 (0.1, grocery, 5411). */
static double score8(double price, int book, int merchant, int flag)
{
	const double x[] = { 5, price, book, merchant == 1 ? 0.5 : 0.1,
			     merchant == 1, 3, 0, flag, flag, merchant == 2 };
	double sum = 0;

	for (int i = 0; i < 10; i++)
		sum += x[i] * rec_w[i];
	return sum;
}

static void expect_ranking(redisContext *c, const char *command,
			   size_t n, const char *const *items,
			   const double *scores)
{
	redisReply *r = cmd(c, command);

	ck_assert_msg(r->type == REDIS_REPLY_ARRAY, "%s: type %d %s", command,
		      r->type, r->str ? r->str : "");
	ck_assert_uint_eq(r->elements, 2 * n);
	for (size_t i = 0; i < n; i++) {
		const char *item = r->element[2 * i]->str;
		const char *score = r->element[2 * i + 1]->str;

		ck_assert_msg(!strcmp(item, items[i]), "%s: rank %zu is %s, "
			      "want %s", command, i, item, items[i]);
		if (isnan(scores[i]))
			ck_assert_str_eq(score, "nan");
		else
			ck_assert_msg(fabs(strtod(score, NULL) - scores[i]) <
				      1e-3, "%s: item %s scored %s, want %g",
				      command, item, score, scores[i]);
	}
	freeReplyObject(r);
}

START_TEST(recommend_ranks_the_catalogue)
{
	st_recommend_conf_t rc = recommend_conf(100);
	const char *const all[] = { "8", "9", "10", "2", "7", "1", "6", "3",
				    "5" };
	const char *const cold[] = { "1", "2", "3", "5", "6", "7", "8", "9",
				     "10" };
	const double want[] = {
		score8(5000, 1, 2, 0), score8(5000, 1, 2, 0),
		score8(1500, 1, 2, 0), score8(200, 0, 2, 0),
		score8(200, 0, 2, 0), score8(10, 1, 1, 1),
		score8(2, 1, 1, 1), NAN, NAN,
	};
	const double nans[] = { NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN };
	redisContext *c;
	redisReply *r;
	int fd;

	ck_assert(want[1] > want[2] && want[2] > want[3] &&
		  want[4] > want[5] && want[5] > want[6]);
	put_catalogue();
	start_recommend(&rc);
	c = connect_hiredis();
	expect_ranking(c, "RECOMMEND " PREFIX ":8", 9, all, want);
	expect_ranking(c, "recommend " PREFIX ":8 count 3", 3, all, want);
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 1000", 9, all, want);
	/* Two items tied at the cut: the first in key order. */
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 1", 1, all, want);
	/* A row but no vector: ranked, spend NaN, so every score is NaN and
	 * the items come in the store's key order. */
	expect_ranking(c, "RECOMMEND " PREFIX ":9", 9, cold, nans);
	expect_ranking(c, "RECOMMEND " PREFIX ":9 COUNT 2", 2, cold, nans);
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 5", 5, all, want);
	/* Neither: nothing to rank for; a key outside the prefix likewise. */
	expect_ranking(c, "RECOMMEND " PREFIX ":77", 0, NULL, NULL);
	expect_ranking(c, "RECOMMEND other:8", 0, NULL, NULL);
	expect_error(c, "ERR value is out of range, must be positive",
		     "RECOMMEND %s COUNT 0", PREFIX ":8");
	expect_error(c, "ERR value is not an integer or out of range",
		     "RECOMMEND %s COUNT x", PREFIX ":8");
	expect_error(c, "ERR syntax error", "RECOMMEND %s LIMIT 3",
		     PREFIX ":8");
	expect_error(c, "ERR syntax error", "RECOMMEND %s COUNT", PREFIX ":8");
	expect_error(c, "ERR corrupt vector record for key '" PREFIX ":bad'",
		     "RECOMMEND %s", PREFIX ":bad");
	r = cmd(c, "COMMAND INFO recommend");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_int_eq(r->element[0]->type, REDIS_REPLY_ARRAY);
	ck_assert_int_eq(r->element[0]->element[1]->integer, -2);
	freeReplyObject(r);
	redisFree(c);
	/* RESP3: [item, double] pairs, as ZRANGE WITHSCORES answers. */
	fd = connect_resp3(2);
	SEND_LIT(fd, "RECOMMEND " PREFIX ":8 COUNT 2\r\n");
	expect_raw(fd, "*2\r\n*2\r\n$1\r\n8\r\n,384.5\r\n"
		   "*2\r\n$1\r\n9\r\n,384.5\r\n");
	close(fd);
}
END_TEST

/* Runs fn on the state in another process (as `strata run` writes it),
 * in one committed write transaction. */
static void write_elsewhere(void (*fn)(st_state_t *st))
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		st_state_t *st = NULL;
		int err = st_state_open(&st, dir, 64 << 20, ST_STATE_NOSYNC,
					errstr, sizeof(errstr)) ||
			  st_state_begin(st, errstr, sizeof(errstr));

		if (!err)
			fn(st);
		err = err || st_state_commit(st, errstr, sizeof(errstr));
		st_state_close(st);
		_exit(err ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
}

static void spend_6(st_state_t *st)
{
	static const char *const n8[] = { "_event_time", "spend" };
	static const char *const v8[] = { "1700000000003", "6" };

	put_record(st, "8", 1, 2, n8, v8);
}

static void item_2_dearer(st_state_t *st)
{
	version(st, "items", "2", 4000, "{\"merchant_id\":2,\"price\":"
		"\"100000\",\"category\":\"phone\",\"flag\":false}");
}

static void merchant_2_riskier(st_state_t *st)
{
	version(st, "merchants", "2", 5000,
		"{\"category\":\"grocery\",\"risk_score\":300,"
		"\"mcc\":5411}");
}

/* The metric line "NAME VALUE" of the server's endpoint, as a number. */
static double metric(const char *name)
{
	char *text = scrape(st_server_metrics_port(srv)), *p, want[128];
	double v;

	snprintf(want, sizeof(want), "\n%s ", name);
	p = strstr(text, want);
	ck_assert_msg(p, "no %s in /metrics", name);
	v = strtod(p + strlen(want), NULL);
	free(text);
	return v;
}

/* The user's vector is read on every request; the items' columns are
 * built again when the catalogue or a joined table changes, and only
 * then (strata_recommend_builds_total). */
START_TEST(recommend_follows_changes)
{
	st_recommend_conf_t rc = recommend_conf(100);
	const char *const first[] = { "8" }, *const dear[] = { "2" };
	const char *const risky[] = { "1", "6" };
	double want[2] = { score8(5000, 1, 2, 0) };
	redisContext *c;

	put_catalogue();
	start_recommend(&rc);
	c = connect_hiredis();
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 0);
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 1", 1, first, want);
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 1);
	ck_assert_double_eq(metric("strata_recommend_items"), 9);
	write_elsewhere(spend_6);
	want[0] += 1;
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 1", 1, first, want);
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 1);
	write_elsewhere(item_2_dearer);
	want[0] = score8(100000, 0, 2, 0) + 1;
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 1", 1, dear, want);
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 2);
	/* Merchant 2's items fall below merchant 1's. */
	write_elsewhere(merchant_2_riskier);
	want[0] = score8(10, 1, 1, 1) + 1;
	want[1] = score8(2, 1, 1, 1) + 1;
	expect_ranking(c, "RECOMMEND " PREFIX ":8 COUNT 2", 2, risky, want);
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 3);
	ck_assert(metric("strata_recommend_build_seconds") > 0);
	redisFree(c);
}
END_TEST

START_TEST(recommend_limits_and_configuration)
{
	st_recommend_conf_t rc = recommend_conf(8);
	st_server_conf_t conf = {
		.listen = "127.0.0.1:0", .state_dir = dir, .prefix = PREFIX,
		.max_clients = 10, .max_output = 1 << 20, .recommend = &rc,
	};
	st_server_t *s = NULL;
	redisContext *c;

	put_catalogue();
	/* 9 items, 8 allowed: an error, not a slow answer (twice: the
	 * answer is kept until the catalogue changes). */
	start_recommend(&rc);
	c = connect_hiredis();
	expect_error(c, "ERR RECOMMEND: items has more than 8 rows "
		     "(recommend.candidates.max)", "RECOMMEND %s", PREFIX ":8");
	expect_error(c, "ERR RECOMMEND: items has more than 8 rows "
		     "(recommend.candidates.max)", "RECOMMEND %s", PREFIX ":8");
	ck_assert_double_eq(metric("strata_recommend_items"), 9);
	ck_assert_double_eq(metric("strata_recommend_builds_total"), 1);
	redisFree(c);
	stop = 1;
	pthread_join(thr, NULL);
	st_server_destroy(srv);
	running = 0;
	/* Exactly at the limit: answered. */
	rc.candidates_max = 9;
	start_recommend(&rc);
	c = connect_hiredis();
	redisReply *r = cmd(c, "RECOMMEND %s", PREFIX ":8");
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 18);
	freeReplyObject(r);
	redisFree(c);
	rc.candidates_max = 100;
	rc.joins = "merchants";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "recommend.joins: 'merchants' is not "
			 "TABLE:COLUMN");
	rc.joins = "users:user_id";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "recommend.joins: users is also "
			 "recommend.user.table");
	rc.joins = "merchants:merchant_id,";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "recommend.joins: '' is not TABLE:COLUMN");
	rc.joins = "a:x,b:x,c:x,d:x,e:x,f:x,g:x";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "recommend.joins: more than 6 tables");
	rc.joins = "a:x,a:y";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "recommend.joins: a twice");
	/* The model's merchants.* columns with no merchants joined. */
	rc.joins = "";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_msg(strstr(errstr, "feature 'merchants.risk_score' names "
			     "table merchants, which is not recommend.table, "
			     "recommend.user.table or in recommend.joins"),
		      "%s", errstr);
	rc.model = data_path("score_n.onnx");   /* no feature names */
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EMODEL);
	ck_assert_ptr_nonnull(strstr(errstr, "recommend.model"));
	ck_assert_ptr_nonnull(strstr(errstr, "strata.features"));
	rc.model = data_path("no_such_model.onnx");
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EMODEL);
	ck_assert_ptr_nonnull(strstr(errstr, "recommend.model"));
	ck_assert_ptr_null(s);
}
END_TEST

/* The ranking against a reference: random catalogues of 1 to 300 items
 * (prices in steps of 100 so that distinct rows score at least 0.5
 * apart, far above float's precision there; repeated rows for ties; prices that are no number for NaN),
 * every COUNT answer compared with a full sort of the expected scores.
 * ST_SEED=<n> reproduces a run. */
typedef struct {
	char key[16];
	size_t len;
	double score;
} ref_item_t;

static int ref_order(const void *a, const void *b)
{
	const ref_item_t *x = a, *y = b;
	int xn = isnan(x->score), yn = isnan(y->score);

	if (xn != yn)
		return xn - yn;
	if (!xn && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->key, y->key, x->len);
}

static uint64_t ref_rng;

static unsigned ref_rand(unsigned n)
{
	ref_rng ^= ref_rng << 13;
	ref_rng ^= ref_rng >> 7;
	ref_rng ^= ref_rng << 17;
	return (unsigned)(ref_rng % n);
}

static ref_item_t ref_items[300];
static size_t ref_n;

static void put_random_catalogue(st_state_t *st)
{
	static const char *const n8[] = { "_event_time", "spend" };
	static const char *const v8[] = { "1", "5" };

	version(st, "merchants", "1", 1000, "{\"category\":\"travel\","
		"\"risk_score\":0.5,\"mcc\":4722}");
	version(st, "merchants", "2", 1000, "{\"category\":\"grocery\","
		"\"risk_score\":0.1,\"mcc\":5411}");
	version(st, "users", "8", 1000,
		"{\"risk_tier\":3,\"segment\":\"silver\"}");
	put_record(st, "8", 1, 2, n8, v8);
	ref_n = 1 + ref_rand(300);
	for (size_t i = 0; i < ref_n; i++) {
		ref_item_t *it = &ref_items[i];
		int price = 100 * (int)ref_rand(6), book = ref_rand(2);
		int merchant = 1 + (int)ref_rand(2), flag = ref_rand(2);
		int nan_price = ref_rand(20) == 0;
		char json[256];

		it->len = (size_t)snprintf(it->key, sizeof(it->key), "%u",
					   ref_rand(100000));
		for (size_t j = 0; j < i; j++)
			if (ref_items[j].len == it->len &&
			    !memcmp(ref_items[j].key, it->key, it->len))
				it->len = (size_t)snprintf(it->key,
							   sizeof(it->key),
							   "u%zu", i);
		snprintf(json, sizeof(json), "{\"merchant_id\":%d,"
			 "\"price\":\"%s%d\",\"category\":\"%s\","
			 "\"flag\":%s}", merchant, nan_price ? "x" : "",
			 price, book ? "book" : "phone",
			 flag ? "true" : "false");
		version(st, "items", it->key, 1000, json);
		it->score = nan_price ? NAN : score8(price, book, merchant,
						     flag);
	}
	qsort(ref_items, ref_n, sizeof(ref_items[0]), ref_order);
}

START_TEST(recommend_matches_a_reference)
{
	st_recommend_conf_t rc = recommend_conf(1000);
	const char *s = getenv("ST_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
	static const size_t counts[] = { 1, 2, 7, 50, 299, 1000 };
	st_state_t *st = open_writable();
	redisContext *c;

	printf("recommend reference test: ST_SEED=%llu\n",
	       (unsigned long long)seed);
	ref_rng = seed * 2654435761u + 1;
	put_random_catalogue(st);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	st_state_close(st);
	start_recommend(&rc);
	c = connect_hiredis();
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		size_t n = counts[k] < ref_n ? counts[k] : ref_n;
		redisReply *r = cmd(c, "RECOMMEND %s COUNT %d", PREFIX ":8",
				    (int)counts[k]);

		ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
		ck_assert_msg(r->elements == 2 * n, "seed %llu COUNT %zu: %zu "
			      "elements for %zu items",
			      (unsigned long long)seed, counts[k],
			      r->elements, ref_n);
		for (size_t i = 0; i < n; i++) {
			const ref_item_t *w = &ref_items[i];
			double got = strtod(r->element[2 * i + 1]->str, NULL);

			ck_assert_msg(r->element[2 * i]->len == w->len &&
				      !memcmp(r->element[2 * i]->str, w->key,
					      w->len) &&
				      (isnan(w->score) ? isnan(got) :
				       fabs(got - w->score) < 1e-3),
				      "seed %llu COUNT %zu rank %zu: %s %s, "
				      "want %.*s %g", (unsigned long long)seed,
				      counts[k], i, r->element[2 * i]->str,
				      r->element[2 * i + 1]->str, (int)w->len,
				      w->key, w->score);
		}
		freeReplyObject(r);
	}
	redisFree(c);
}
END_TEST

/* A catalogue with no rows: nothing to rank. */
START_TEST(recommend_empty_catalogue)
{
	st_recommend_conf_t rc = recommend_conf(100);
	const char *const n8[] = { "_event_time", "spend" };
	const char *const v8[] = { "1", "5" };
	st_state_t *st = open_writable();
	redisContext *c;

	version(st, "users", "8", 1000, "{\"risk_tier\":3}");
	put_record(st, "8", 1, 2, n8, v8);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	st_state_close(st);
	start_recommend(&rc);
	c = connect_hiredis();
	expect_ranking(c, "RECOMMEND " PREFIX ":8", 0, NULL, NULL);
	redisFree(c);
}
END_TEST

START_TEST(recommend_without_model)
{
	redisContext *c;

	start_default();
	c = connect_hiredis();
	expect_error(c, "ERR RECOMMEND needs a model: recommend.model is not "
		     "set", "RECOMMEND %s", PREFIX ":8");
	redisFree(c);
}
END_TEST

START_TEST(score_without_model)
{
	redisContext *c;

	start_default();
	c = connect_hiredis();
	expect_error(c, "ERR SCORE needs a model: scorer.model is not set",
		     "SCORE %s", PREFIX ":42");
	redisFree(c);
}
END_TEST

START_TEST(bad_configuration)
{
	st_server_conf_t conf = {
		.listen = "127.0.0.1:0", .state_dir = dir, .prefix = PREFIX,
		.max_clients = 10, .max_output = 1 << 20,
	};
	st_server_t *s = (st_server_t *)&conf;
	char missing[128];

	conf.listen = "localhost";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(errstr, "serve.listen"));
	conf.listen = "127.0.0.1:0";
	conf.prefix = "";
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_ptr_nonnull(strstr(errstr, "redis.prefix"));
	conf.prefix = PREFIX;
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	conf.state_dir = missing;
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_ENOENT);
	conf.state_dir = dir;
	conf.model = data_path("score_n.onnx");   /* no feature names */
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EMODEL);
	ck_assert_ptr_nonnull(strstr(errstr, "strata.features"));
	conf.model = data_path("no_such_model.onnx");
	ck_assert_int_eq(st_server_new(&s, &conf, errstr, sizeof(errstr)),
			 ST_EMODEL);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(metrics)
{
	redisContext *c;
	char *text;
	int fd;

	start_default();
	c = connect_hiredis();
	for (int i = 0; i < 5; i++) {
		redisReply *r = cmd(c, "HGETALL %s", PREFIX ":42");

		freeReplyObject(r);
	}
	expect_error(c, "ERR wrong number of arguments for 'hget' command",
		     "HGET a");
	fd = connect_raw();
	SEND_LIT(fd, "*x\r\n");
	expect_raw(fd, "-ERR Protocol error: invalid multibulk length\r\n");
	expect_closed(fd);
	close(fd);
	wait_clients(c, 1);
	text = scrape(st_server_metrics_port(srv));
	ck_assert_msg(strstr(text, "strata_resp_commands_total{command="
			     "\"hgetall\"} 5\n"), "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "strata_resp_command_seconds_count"
				     "{command=\"hgetall\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(text, "strata_resp_errors_total 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "strata_resp_connections 1\n"));
	free(text);
	redisFree(c);
}
END_TEST

/* redis-cli, as a user would run it. */
START_TEST(redis_cli)
{
	char command[256], out[4096];
	size_t n;
	FILE *p;

	ck_assert_msg(st_test_on_path("redis-cli"), "redis-cli is not on the "
		      "PATH (scripts/install-deps installs it)");
	start_default();
	snprintf(command, sizeof(command), "redis-cli -p %d HGET %s amount "
		 "2>&1; redis-cli -p %d COMMAND DOCS hget 2>&1 | head -1; "
		 "redis-cli -p %d TYPE %s 2>&1", st_server_port(srv),
		 PREFIX ":7", st_server_port(srv), st_server_port(srv),
		 PREFIX ":42");
	p = popen(command, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_str_eq(out, "12.5\nhget\nhash\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("server");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, hash_commands);
	tcase_add_test(tc, missing_keys);
	tcase_add_test(tc, corrupt_record);
	tcase_add_test(tc, padded_record);
	tcase_add_test(tc, vector_layout);
	tcase_add_test(tc, connection_commands);
	tcase_add_test(tc, unknown_and_arity);
	tcase_add_test(tc, command_command);
	tcase_add_test(tc, hello_resp3);
	tcase_add_test(tc, hello_errors);
	tcase_add_test(tc, client_select_auth);
	tcase_add_test(tc, pipelined_requests);
	tcase_add_test(tc, inline_commands);
	tcase_add_test(tc, protocol_errors);
	tcase_add_test(tc, disconnect_mid_request);
	tcase_add_test(tc, client_limit);
	tcase_add_test(tc, output_backpressure);
	tcase_add_test(tc, follows_commits);
	tcase_add_test(tc, follows_map_growth);
	tcase_add_test(tc, score_with_model);
	tcase_add_test(tc, score_without_model);
	tcase_add_test(tc, recommend_ranks_the_catalogue);
	tcase_add_test(tc, recommend_follows_changes);
	tcase_add_test(tc, recommend_limits_and_configuration);
	tcase_add_test(tc, recommend_empty_catalogue);
	tcase_add_test(tc, recommend_matches_a_reference);
	tcase_add_test(tc, recommend_without_model);
	tcase_add_test(tc, bad_configuration);
	tcase_add_test(tc, metrics);
	tcase_add_test(tc, redis_cli);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
