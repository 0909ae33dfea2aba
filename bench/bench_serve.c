/*
 * bench_serve.c -- `strata serve` against redis-server: the same K feature
 * hashes (18 fields: _event_time, _seq and the 16 features of
 * examples/fraud.features) in Redis and in a temporary LMDB state, read
 * back with HGETALL over random keys by the same hiredis client code,
 * pipelined D deep, in rounds that alternate the two servers (which goes
 * first alternates too). strata's server runs in a thread of this
 * process, on 127.0.0.1 and a free port, as `strata serve` would.
 *
 * Prints per round the rate of each server, then the medians and the
 * ratio strata / redis-server (the mission's target: >= 0.8), the
 * servers' CPU time per request (redis-server: INFO cpu; strata: its
 * thread's CPU clock), and the per-request latency at depth 1 (p50,
 * p99). Every reply is checked to hold the hash's 36 elements, and a few
 * keys are compared field by field between the two servers first.
 *
 * usage: bench_serve [-h HOST] [-p PORT] [-k KEYS] [-n REQUESTS]
 *                    [-d DEPTH] [-r ROUNDS] [-l LATENCY_REQUESTS]
 * Defaults: 127.0.0.1:6379, 50,000 keys, 200,000 requests per round and
 * server, depth 64, 5 rounds, 20,000 requests at depth 1. Writes keys
 * "bench:serve:*" into Redis and deletes them after.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <lmdb.h>

#include "benchutil.h"
#include "error.h"
#include "server.h"
#include "state.h"
#include "vecrec.h"

#define PREFIX "bench:serve"
#define NF 18
#define ROUNDS_MAX 64

static const char *const names[NF] = {
	"_event_time", "_seq", "amount", "txn_count_1h", "txn_sum_1h",
	"txn_count_24h", "txn_sum_24h", "avg_amount_24h", "max_amount_24h",
	"distinct_merchants_24h", "avg_amount_24h_before",
	"amount_over_avg_24h", "secs_since_prev_txn", "user_segment",
	"user_segment_code", "user_risk_tier", "merchant_risk_score",
	"country_mismatch"
};

typedef struct {
	char values[NF][32];
	size_t lens[NF];
} vec_t;

static bench_server_t server;



/* Entity i's vector: the shapes the pipeline writes. */
static void make_vec(uint64_t i, vec_t *v)
{
	static const char *const seg[] = { "standard", "silver", "gold",
					   "platinum" };
	uint64_t x = i * 0x9e3779b97f4a7c15u + 1;

	for (int j = 0; j < NF; j++) {
		double d = (double)(bench_rand(&x) % 1000000) / 100.0;
		int n;

		if (j == 0)
			n = snprintf(v->values[j], 32, "%llu",
				     1700000000000ULL + i * 1000);
		else if (j == 1)
			n = snprintf(v->values[j], 32, "%llu",
				     (unsigned long long)(i << 8));
		else if (j == 13)
			n = snprintf(v->values[j], 32, "%s", seg[i % 4]);
		else if (j == 3 || j == 5 || j == 9 || j == 14 || j == 15 ||
			 j == 17)
			n = snprintf(v->values[j], 32, "%llu",
				     (unsigned long long)(bench_rand(&x) % 50));
		else
			n = snprintf(v->values[j], 32, "%.9g", d);
		v->lens[j] = (size_t)n;
	}
}

/* HSET (or DEL, del set) of every key, pipelined. */
static void fill_redis(redisContext *c, uint64_t keys, int del)
{
	const char *argv[2 + 2 * NF];
	size_t lens[2 + 2 * NF];
	char key[64];
	vec_t v;

	for (uint64_t k = 0; k < keys; k++) {
		lens[1] = (size_t)snprintf(key, sizeof(key), "%s:%llu", PREFIX,
					   (unsigned long long)k);
		argv[1] = key;
		if (del) {
			argv[0] = "DEL";
			lens[0] = 3;
			redisAppendCommandArgv(c, 2, argv, lens);
		} else {
			argv[0] = "HSET";
			lens[0] = 4;
			make_vec(k, &v);
			for (int j = 0; j < NF; j++) {
				argv[2 + 2 * j] = names[j];
				lens[2 + 2 * j] = strlen(names[j]);
				argv[3 + 2 * j] = v.values[j];
				lens[3 + 2 * j] = v.lens[j];
			}
			redisAppendCommandArgv(c, 2 + 2 * NF, argv, lens);
		}
		if (k % 1024 == 1023)
			bench_read_replies(c, 1024);
	}
	bench_read_replies(c, keys % 1024);
}

static void fill_lmdb(const char *dir, uint64_t keys)
{
	const char *vals[NF];
	st_state_t *st = NULL;
	st_vecrec_layout_t *layout = NULL;
	char errstr[512], ent[24], lkey[40];
	size_t idx[NF];
	uint8_t buf[4096];
	vec_t v;

	if (st_state_open(&st, dir, 4LL << 30, ST_STATE_NOSYNC, errstr,
			  sizeof(errstr)) ||
	    st_state_begin(st, errstr, sizeof(errstr)))
		bench_die("state", errstr);
	/* The layout of the records, stored as strata run stores it. */
	if (st_vecrec_layout_new(names, NF, &layout))
		bench_die("state", "layout");
	st_vecrec_layout_key(layout->id, lkey, sizeof(lkey));
	for (int j = 0; j < NF; j++)
		idx[j] = (size_t)j;
	if (st_state_meta_put(st, lkey, layout->text, errstr, sizeof(errstr)))
		bench_die("state", errstr);
	for (uint64_t k = 0; k < keys; k++) {
		MDB_val key, d;

		make_vec(k, &v);
		for (int j = 0; j < NF; j++)
			vals[j] = v.values[j];
		key.mv_size = (size_t)snprintf(ent, sizeof(ent), "%llu",
					       (unsigned long long)k);
		key.mv_data = ent;
		/* An entity record: no window state, then the vector. */
		memset(buf, 0, 4);
		d.mv_size = st_vecrec_encode(buf + 4, sizeof(buf) - 4, layout,
					     NF, idx, vals, v.lens);
		d.mv_size += d.mv_size ? 4 : 0;
		d.mv_data = buf;
		if (!d.mv_size || mdb_put(st_state_write_txn(st),
					  st_state_dbi_entities(st), &key, &d,
					  0))
			bench_die("state", "mdb_put failed");
	}
	if (st_state_commit(st, errstr, sizeof(errstr)))
		bench_die("state", errstr);
	st_state_close(st);
	st_vecrec_layout_free(layout);
}

/* Both servers give the same fields and values, in the same order. */
static void compare(redisContext *a, redisContext *b, uint64_t keys)
{
	for (uint64_t i = 0; i < 16; i++) {
		uint64_t k = i * (keys / 16);
		redisReply *x = redisCommand(a, "HGETALL %s:%llu", PREFIX,
					     (unsigned long long)k);
		redisReply *y = redisCommand(b, "HGETALL %s:%llu", PREFIX,
					     (unsigned long long)k);

		if (!x || !y || x->type != REDIS_REPLY_ARRAY ||
		    y->type != REDIS_REPLY_ARRAY ||
		    x->elements != 2 * NF || y->elements != 2 * NF)
			bench_die("compare", "not a hash of every field");
		for (size_t e = 0; e < x->elements; e++)
			if (x->element[e]->len != y->element[e]->len ||
			    memcmp(x->element[e]->str, y->element[e]->str,
				   x->element[e]->len))
				bench_die("compare", "replies differ");
		freeReplyObject(x);
		freeReplyObject(y);
	}
}

/* The load: n HGETALL of random keys, depth at a time. Returns
 * requests per second. */
static double run_load(redisContext *c, uint64_t keys, uint64_t n,
		       uint64_t depth, uint64_t seed)
{
	char key[64];
	double t0 = bench_clock_s(CLOCK_MONOTONIC);

	for (uint64_t done = 0; done < n;) {
		uint64_t batch = n - done < depth ? n - done : depth;

		for (uint64_t i = 0; i < batch; i++) {
			const char *argv[2] = { "HGETALL", key };
			size_t lens[2] = { 7, 0 };

			lens[1] = (size_t)snprintf(key, sizeof(key), "%s:%llu",
						   PREFIX, (unsigned long long)
						   (bench_rand(&seed) % keys));
			redisAppendCommandArgv(c, 2, argv, lens);
		}
		for (uint64_t i = 0; i < batch; i++) {
			void *r;

			if (redisGetReply(c, &r) != REDIS_OK)
				bench_die("reply", c->errstr);
			if (((redisReply *)r)->elements != 2 * NF)
				bench_die("reply", "not a hash of every field");
			freeReplyObject(r);
		}
		done += batch;
	}
	return (double)n / (bench_clock_s(CLOCK_MONOTONIC) - t0);
}


/* Depth 1: each request's round trip, in microseconds, sorted. */
static void run_latency(redisContext *c, uint64_t keys, uint64_t n,
			double *us)
{
	uint64_t seed = 0x2545f4914f6cdd1du;

	for (uint64_t i = 0; i < n; i++) {
		double t0 = bench_clock_s(CLOCK_MONOTONIC);
		redisReply *r = redisCommand(c, "HGETALL %s:%llu", PREFIX,
					     (unsigned long long)
					     (bench_rand(&seed) % keys));

		if (!r || r->elements != 2 * NF)
			bench_die("latency", c->errstr);
		us[i] = (bench_clock_s(CLOCK_MONOTONIC) - t0) * 1e6;
		freeReplyObject(r);
	}
	qsort(us, n, sizeof(*us), bench_cmp_double);
}

static double redis_cpu(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO cpu");
	const char *u, *s;
	double secs;

	if (!r || r->type != REDIS_REPLY_STRING ||
	    !(u = strstr(r->str, "used_cpu_user:")) ||
	    !(s = strstr(r->str, "used_cpu_sys:")))
		bench_die("INFO cpu", "unexpected reply");
	secs = atof(u + 14) + atof(s + 13);
	freeReplyObject(r);
	return secs;
}





int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 6379, rounds = 5, opt;
	uint64_t keys = 50000, n = 200000, depth = 64, nlat = 20000;
	double rate[2][ROUNDS_MAX], cpu[2][ROUNDS_MAX], ratio[ROUNDS_MAX];
	char dir[] = "/tmp/bench_serve-XXXXXX", errstr[512];
	redisContext *rc, *sc;
	st_server_conf_t conf = { 0 };
	st_server_t *srv;
	double *us;

	printf("#");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	while ((opt = getopt(argc, argv, "h:p:k:n:d:r:l:")) != -1) {
		switch (opt) {
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'k':
			keys = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			n = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			depth = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'l':
			nlat = strtoull(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: bench_serve [-h HOST] [-p PORT] "
				"[-k KEYS] [-n REQUESTS] [-d DEPTH] "
				"[-r ROUNDS] [-l LATENCY_REQUESTS]\n");
			return 2;
		}
	}
	if (!keys || !n || !depth || !nlat || rounds < 1 ||
	    rounds > ROUNDS_MAX)
		bench_die("arguments", "out of range");
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));

	rc = bench_redis_connect(host, port);
	fill_redis(rc, keys, 0);
	fill_lmdb(dir, keys);
	conf.listen = "127.0.0.1:0";
	conf.state_dir = dir;
	conf.prefix = PREFIX;
	conf.max_clients = 100;
	conf.max_output = 64 << 20;
	if (st_server_new(&srv, &conf, errstr, sizeof(errstr)))
		bench_die("server", errstr);
	bench_server_start(&server, srv);
	sc = bench_redis_connect("127.0.0.1", st_server_port(srv));
	compare(rc, sc, keys);
	printf("%llu keys of %d fields; HGETALL of random keys, %llu "
	       "requests per round, pipeline depth %llu\n",
	       (unsigned long long)keys, NF, (unsigned long long)n,
	       (unsigned long long)depth);
	printf("round  redis-server req/s  strata req/s  ratio\n");
	for (int r = 0; r < rounds; r++) {
		uint64_t seed = 0x9e3779b97f4a7c15u * (uint64_t)(r + 1);

		for (int k = 0; k < 2; k++) {
			int which = (r + k) % 2;    /* 0: redis, 1: strata */
			double c0 = which ? bench_clock_s(server.clk) : redis_cpu(rc);

			rate[which][r] = run_load(which ? sc : rc, keys, n,
						  depth, seed);
			cpu[which][r] = ((which ? bench_clock_s(server.clk) :
					  redis_cpu(rc)) - c0) / (double)n;
		}
		ratio[r] = rate[1][r] / rate[0][r];
		printf("%5d  %18.0f  %12.0f  %5.2f\n", r + 1, rate[0][r],
		       rate[1][r], ratio[r]);
	}
	printf("median %17.0f  %12.0f  %5.2f   (strata / redis-server; "
	       "target >= 0.8)\n", bench_median(rate[0], rounds),
	       bench_median(rate[1], rounds), bench_median(ratio, rounds));
	printf("server CPU per request: redis-server %.2f us, strata %.2f us "
	       "(medians)\n", bench_median(cpu[0], rounds) * 1e6,
	       bench_median(cpu[1], rounds) * 1e6);

	us = malloc(nlat * sizeof(*us));
	if (!us)
		bench_die("latency", "out of memory");
	printf("depth 1, %llu requests each:\n", (unsigned long long)nlat);
	for (int which = 0; which < 2; which++) {
		run_latency(which ? sc : rc, keys, nlat, us);
		printf("  %-12s p50 %6.1f us  p99 %6.1f us\n",
		       which ? "strata" : "redis-server", us[nlat / 2],
		       us[nlat * 99 / 100]);
	}
	free(us);

	redisFree(sc);
	bench_server_stop(&server);
	fill_redis(rc, keys, 1);
	redisFree(rc);
	bench_remove_tree(dir);
	return 0;
}
