/*
 * bench_online.c -- the online-store writer (the newest-wins script,
 * several writes per call, coalesced queue, pipelined) against a plain
 * pipelined HSET of the same vectors (same 15 fields plus _event_time and
 * _seq, no script, no check, no coalescing), in the same run, against the
 * same Redis; and the rate at which vectors are queued (encoding only, no
 * I/O).
 *
 * Two workloads, each at every batch size given:
 *   spread     VECTORS writes round-robin over KEYS entities: no entity
 *              twice in a batch, so nothing coalesces;
 *   hot        HOT_WRITES writes to entities drawn at random among
 *              HOT_KEYS, event times increasing: a batch holds several
 *              writes of many entities, and only the newest is sent.
 * A batch is the number of st_online_queue() calls (HSETs for the plain
 * writer) between two flushes (reads of every reply).
 *
 * usage: bench_online [-h HOST] [-p PORT] [-n VECTORS] [-k KEYS]
 *                     [-b BATCH[,BATCH...]] [-m HOT_WRITES] [-c HOT_KEYS]
 * Defaults: 127.0.0.1:6379, 400,000 vectors over 50,000 entities,
 * batches of 256 and 1024, 100,000 hot writes over 1,000 entities; each
 * run in 3 rounds that alternate the two writers. Writes keys
 * "bench:online:*" and "bench:plain:*" and deletes them after.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "benchutil.h"
#include "error.h"
#include "online.h"
#include "timefmt.h"

#define NF 15
#define ROUNDS 3
#define BASE_TS 1700000000000LL
#define BATCHES_MAX 8

static const char *const names[NF] = {
	"txn_count_1h", "txn_count_24h", "txn_sum_1h", "txn_sum_24h",
	"txn_avg_7d", "txn_max_24h", "distinct_merchants_24h",
	"distinct_countries_7d", "declines_1h", "chargebacks_90d",
	"account_age_days", "segment", "risk_tier", "last_country",
	"device_count_30d"
};

typedef struct {
	char values[NF][24];
	size_t lens[NF];
} vec_t;

/* A workload: write i goes to entity key_of(i). */
typedef struct {
	const char *name;
	uint64_t n, keys;
	int hot;            /* keys drawn at random (fixed seed) */
} load_t;

static uint64_t key_of(const load_t *l, uint64_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15u + 1;

	if (!l->hot)
		return i % l->keys;
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 29;
	return x % l->keys;
}

/* The vector written as the i-th write: realistic value shapes. */
static void make_vec(uint64_t i, vec_t *v)
{
	static const char *const seg[] = {"gold", "silver", "bronze", "new"};
	static const char *const cc[] = {"DE", "FR", "US", "GB", "NL"};

	for (int j = 0; j < NF; j++) {
		int n;

		if (j == 11)
			n = snprintf(v->values[j], 24, "%s", seg[i % 4]);
		else if (j == 13)
			n = snprintf(v->values[j], 24, "%s", cc[i % 5]);
		else if (j == 2 || j == 3 || j == 4)
			n = snprintf(v->values[j], 24, "%llu.%02llu",
				     (unsigned long long)(i * 7 + (uint64_t)j) %
				     100000, (unsigned long long)i % 100);
		else
			n = snprintf(v->values[j], 24, "%llu",
				     (unsigned long long)(i + (uint64_t)j) %
				     1000);
		v->lens[j] = (size_t)n;
	}
}

/* Deletes the keys of one prefix, pipelined. */
static void delete_keys(redisContext *c, const char *prefix, uint64_t keys)
{
	char key[64];

	for (uint64_t k = 0; k < keys; k++) {
		const char *argv[2] = {"DEL", key};
		size_t lens[2] = {3, 0};

		lens[1] = (size_t)snprintf(key, sizeof(key), "%s:%llu", prefix,
					   (unsigned long long)k);
		redisAppendCommandArgv(c, 2, argv, lens);
		if (k % 1024 == 1023)
			bench_read_replies(c, 1024);
	}
	bench_read_replies(c, keys % 1024);
}

/* CPU seconds the Redis server has used (user + system): per vector, the
 * cost on its single thread, the bottleneck when clients keep up. */
static double redis_cpu(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO cpu");
	const char *u, *s;
	double secs;

	if (!r || r->type != REDIS_REPLY_STRING ||
	    !(u = strstr(r->str, "used_cpu_user:")) ||
	    !(s = strstr(r->str, "used_cpu_sys:")))
		bench_die("INFO cpu", c->errstr[0] ? c->errstr : "unexpected reply");
	secs = atof(u + 14) + atof(s + 13);
	freeReplyObject(r);
	return secs;
}

/* The writer under test: returns seconds; adds its counts. */
static double run_online(st_online_t *o, const load_t *l, uint64_t batch,
			 uint64_t *applied, uint64_t *rejected)
{
	char errstr[512], ent[24];
	int64_t t0 = st_time_mono_us();
	vec_t v;

	for (uint64_t i = 0; i < l->n; i++) {
		const char *vals[NF];
		uint64_t a, r;
		size_t elen;

		make_vec(i, &v);
		for (int j = 0; j < NF; j++)
			vals[j] = v.values[j];
		elen = (size_t)snprintf(ent, sizeof(ent), "%llu",
					(unsigned long long)key_of(l, i));
		if (st_online_queue(o, ent, elen, BASE_TS + (int64_t)i,
				    (int64_t)i, NF, names, vals, v.lens))
			bench_die("queue", "failed");
		if ((i + 1) % batch == 0 || i + 1 == l->n) {
			if (st_online_flush(o, &a, &r, errstr, sizeof(errstr)))
				bench_die("flush", errstr);
			*applied += a;
			*rejected += r;
		}
	}
	return (double)(st_time_mono_us() - t0) / 1e6;
}

/* The baseline: HSET of the same fields, pipelined in the same batches,
 * the argv built the way most hiredis users do. */
static double run_plain(redisContext *c, const load_t *l, uint64_t batch)
{
	int64_t t0 = st_time_mono_us();
	const char *argv[2 + 2 * (NF + 2)];
	size_t lens[2 + 2 * (NF + 2)];
	char key[48], et[24], sq[24];
	uint64_t pending = 0;
	vec_t v;

	for (uint64_t i = 0; i < l->n; i++) {
		int a = 0;

		make_vec(i, &v);
		argv[a] = "HSET";
		lens[a++] = 4;
		lens[a] = (size_t)snprintf(key, sizeof(key),
					   "bench:plain:%llu",
					   (unsigned long long)key_of(l, i));
		argv[a++] = key;
		for (int j = 0; j < NF; j++) {
			argv[a] = names[j];
			lens[a++] = strlen(names[j]);
			argv[a] = v.values[j];
			lens[a++] = v.lens[j];
		}
		argv[a] = "_event_time";
		lens[a++] = 11;
		lens[a] = (size_t)snprintf(et, sizeof(et), "%lld",
					   (long long)(BASE_TS + (int64_t)i));
		argv[a++] = et;
		argv[a] = "_seq";
		lens[a++] = 4;
		lens[a] = (size_t)snprintf(sq, sizeof(sq), "%llu",
					   (unsigned long long)i);
		argv[a++] = sq;
		if (redisAppendCommandArgv(c, a, argv, lens) != REDIS_OK)
			bench_die("append", c->errstr);
		if (++pending == batch || i + 1 == l->n) {
			bench_read_replies(c, pending);
			pending = 0;
		}
	}
	return (double)(st_time_mono_us() - t0) / 1e6;
}

/* One workload at one batch size: ROUNDS rounds, each on fresh keys,
 * alternating the writers; prints one line per writer and the ratio. */
static void compare(redisContext *c, st_online_t *o, const load_t *l,
		    uint64_t batch)
{
	uint64_t applied = 0, rejected = 0, n = l->n * ROUNDS;
	double t_online = 0, t_plain = 0, cpu_online = 0, cpu_plain = 0;
	st_online_stats_t s0, s1;

	st_online_stats(o, &s0);
	for (int round = 0; round < ROUNDS; round++) {
		double cpu0, cpu1;

		delete_keys(c, "bench:online", l->keys);
		delete_keys(c, "bench:plain", l->keys);
		cpu0 = redis_cpu(c);
		t_online += run_online(o, l, batch, &applied, &rejected);
		cpu1 = redis_cpu(c);
		t_plain += run_plain(c, l, batch);
		cpu_online += cpu1 - cpu0;
		cpu_plain += redis_cpu(c) - cpu1;
	}
	st_online_stats(o, &s1);
	if (rejected || applied + s1.coalesced - s0.coalesced != n)
		bench_die(l->name, "every write should be applied or coalesced");
	printf("%-6s batch %4llu  online: %.0f vectors/s (%.2f s, Redis CPU "
	       "%.1f us/vector; %llu applied, %llu coalesced, %llu script "
	       "calls)\n", l->name, (unsigned long long)batch,
	       (double)n / t_online, t_online, cpu_online * 1e6 / (double)n,
	       (unsigned long long)applied,
	       (unsigned long long)(s1.coalesced - s0.coalesced),
	       (unsigned long long)(s1.calls - s0.calls));
	printf("%-6s batch %4llu  plain HSET: %.0f vectors/s (%.2f s, Redis "
	       "CPU %.1f us/vector)\n", l->name, (unsigned long long)batch,
	       (double)n / t_plain, t_plain, cpu_plain * 1e6 / (double)n);
	printf("%-6s batch %4llu  ratio online / plain HSET (rate): %.2f\n",
	       l->name, (unsigned long long)batch, t_plain / t_online);
}

/* Encoding only: queue `batch` vectors for distinct entities, drop them
 * by destroying. */
static double run_queue_only(const char *host, int port, uint64_t n,
			     uint64_t batch)
{
	char errstr[512], ent[24];
	double secs = 0;
	st_online_t *o;
	vec_t v;

	make_vec(1, &v);
	for (uint64_t done = 0; done < n; done += batch) {
		const char *vals[NF];
		int64_t t0;

		if (st_online_new(&o, host, port, "bench:online", 0, 5000,
				  errstr, sizeof(errstr)))
			bench_die("connect", errstr);
		for (int j = 0; j < NF; j++)
			vals[j] = v.values[j];
		t0 = st_time_mono_us();
		for (uint64_t i = done; i < done + batch && i < n; i++) {
			size_t elen = (size_t)snprintf(ent, sizeof(ent), "%llu",
					(unsigned long long)i);

			if (st_online_queue(o, ent, elen, BASE_TS + (int64_t)i,
					    (int64_t)i, NF, names, vals,
					    v.lens))
				bench_die("queue", "failed");
		}
		secs += (double)(st_time_mono_us() - t0) / 1e6;
		st_online_destroy(o);
	}
	return secs;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_online [-h HOST] [-p PORT] "
		"[-n VECTORS] [-k KEYS] [-b BATCH[,BATCH...]] "
		"[-m HOT_WRITES] [-c HOT_KEYS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	load_t spread = {"spread", 400000, 50000, 0};
	load_t hot = {"hot", 100000, 1000, 1};
	uint64_t batches[BATCHES_MAX] = {256, 1024}, maxb = 0;
	const char *host = "127.0.0.1", *blist = "256,1024";
	size_t nb = 2;
	char errstr[512];
	redisContext *c;
	redisReply *info;
	st_online_t *o;
	int opt, port = 6379;

	while ((opt = getopt(argc, argv, "h:p:n:k:b:m:c:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': spread.n = strtoull(optarg, NULL, 10); break;
		case 'k': spread.keys = strtoull(optarg, NULL, 10); break;
		case 'm': hot.n = strtoull(optarg, NULL, 10); break;
		case 'c': hot.keys = strtoull(optarg, NULL, 10); break;
		case 'b': {
			char *p = optarg;

			blist = optarg;
			for (nb = 0; *p && nb < BATCHES_MAX; nb++) {
				batches[nb] = strtoull(p, &p, 10);
				if (*p == ',')
					p++;
				else if (*p)
					usage();
			}
			break;
		}
		default:
			usage();
		}
	}
	for (size_t i = 0; i < nb; i++)
		if (!batches[i])
			nb = 0;
		else if (batches[i] > maxb)
			maxb = batches[i];
	if (!spread.n || !spread.keys || !hot.n || !hot.keys || !nb) {
		fprintf(stderr, "bench_online: -n, -k, -m, -c and every "
			"batch must be > 0\n");
		return 2;
	}
	printf("command: bench_online -h %s -p %d -n %llu -k %llu -b %s "
	       "-m %llu -c %llu\n", host, port,
	       (unsigned long long)spread.n, (unsigned long long)spread.keys,
	       blist, (unsigned long long)hot.n,
	       (unsigned long long)hot.keys);
	c = bench_redis_connect(host, port);
	info = redisCommand(c, "INFO server");
	if (info && info->type == REDIS_REPLY_STRING) {
		const char *ver = strstr(info->str, "redis_version:");

		if (ver)
			printf("server: %.*s, hiredis %d.%d.%d, %d fields per "
			       "vector, %d rounds, up to %d writes per script "
			       "call\n", (int)strcspn(ver, "\r\n"), ver,
			       HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, NF,
			       ROUNDS, ST_ONLINE_CALL_WRITES);
	}
	freeReplyObject(info);
	if (st_online_new(&o, host, port, "bench:online", 0, 5000, errstr,
			  sizeof(errstr)))
		bench_die("connect", errstr);
	spread.n /= ROUNDS;
	hot.n /= ROUNDS;
	if (!spread.n || !hot.n)
		bench_die("arguments", "fewer writes than rounds");
	for (size_t i = 0; i < nb; i++)
		compare(c, o, &spread, batches[i]);
	for (size_t i = 0; i < nb; i++)
		compare(c, o, &hot, batches[i]);
	printf("queue only (encoding, no I/O, batch %llu): %.0f vectors/s\n",
	       (unsigned long long)maxb,
	       (double)(spread.n * ROUNDS) /
	       run_queue_only(host, port, spread.n * ROUNDS, maxb));
	delete_keys(c, "bench:online", spread.keys > hot.keys ? spread.keys :
		    hot.keys);
	delete_keys(c, "bench:plain", spread.keys > hot.keys ? spread.keys :
		    hot.keys);
	st_online_destroy(o);
	redisFree(c);
	return 0;
}
