/*
 * bench_recommend.c -- `strata serve`'s RECOMMEND against the scoring it
 * cannot avoid: for catalogues of K items, RECOMMEND key COUNT 10 over
 * random users through a hiredis client at depth 1, and side by side, in
 * rounds that alternate the two (which goes first alternates too), a bare
 * st_scorer_score() of the same K rows on the same model in the same
 * process, the rows built in advance as a float matrix (ONNX Runtime
 * alone: no row building, no sort, no protocol).
 *
 * The state is a temporary LMDB directory holding, as `strata run` would
 * (temporal store and vectors), K items, 200 merchants and 1,000 users
 * with the values of sql/seed.sql (items: merchant_id, category, price as
 * Debezium's decimal string "12.50"; merchants: category, risk_score;
 * users: segment, risk_tier), and each user's feature vector
 * (avg_amount_24h, txn_count_24h, user_segment_code as decimal text, with
 * _event_time and _seq). strata's server runs in a thread of this process
 * on 127.0.0.1 and a free port with recommend.table items,
 * recommend.user.table users, recommend.joins merchants:merchant_id.
 *
 * Prints for each K: the first request (which builds the candidates'
 * columns for the snapshot), then per round RECOMMEND's rate and the bare
 * scoring time of K rows, then the medians of the rounds: requests/s,
 * time and server-thread CPU per request, ns per item ranked, bare ns per
 * row, and the ratio RECOMMEND time per request / bare scoring time of K
 * rows (wall; and server CPU / bare CPU): what strata's row building,
 * sorting and protocol add to the model. Latency p50/p99 are over every
 * request of every round.
 *
 * Checks: every reply is an array of 2 * 10 elements; and for 3 users per
 * K, RECOMMEND's top 10 is the ranking the benchmark computes from its
 * own bare scores of rows it builds itself from the same values (same
 * items in the same order, ties in key order; scores within 1e-6), so
 * the two sides do the same work. Any error exits 1.
 *
 * The bare side cycles over the matrices of up to 16 random users (at
 * most 64 MiB of them); RECOMMEND asks for uniformly random users.
 *
 * usage: bench_recommend -m MODEL [-k ITEMS]... [-n ROWS] [-r ROUNDS]
 * MODEL: e.g. the example, `.stack/venv/bin/python
 * examples/train_recommend_model.py --out /tmp/recommend.onnx`. Defaults:
 * K = 500, 5,000 and 50,000 (each -k replaces the list); 2,000,000 rows
 * (items ranked) per round and side, i.e. ROWS / K requests (at least
 * 10); 5 rounds.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
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
#include "cdc.h"
#include "error.h"
#include "row.h"
#include "scorer.h"
#include "server.h"
#include "state.h"
#include "temporal.h"
#include "vecrec.h"

#define PREFIX "bench:rec"
#define MERCHANTS 200
#define USERS 1000
#define COUNT 10
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)
#define CHECK_USERS 3
#define SIZES_MAX 16
#define ROUNDS_MAX 64
#define PEER_MATRICES 16
#define PEER_BYTES (64 << 20)
#define NV 5                     /* fields of a user's vector */

static const char *const item_cat[] = { "book", "phone", "ticket", "shirt",
					"game", "coffee" };
static const char *const merchant_cat[] = { "grocery", "electronics",
					    "travel", "fashion", "gaming",
					    "fuel", "restaurants", "crypto" };
/* sql/seed.sql's segment of user u is user_seg[u % 5]. */
static const char *const user_seg[] = { "standard", "standard", "silver",
					"gold", "platinum" };
/* What a user usually spends, by user_segment_code (the example
 * model's training script, SPEND_BY_SEGMENT). */
static const double spend[] = { 25.0, 45.0, 80.0, 150.0 };
static const char *const vnames[NV] = { "_event_time", "_seq",
					"avg_amount_24h", "txn_count_24h",
					"user_segment_code" };

static bench_server_t server;
#define DIR_TEMPLATE "/tmp/bench_recommend-XXXXXX"
static char dir[sizeof(DIR_TEMPLATE)];    /* the state's; "": none */






/* ---- the data: sql/seed.sql's values ----------------------------------- */

static unsigned item_merchant(uint64_t i)
{
	return 1 + (unsigned)(i % MERCHANTS);
}

static const char *item_category(uint64_t i)
{
	return item_cat[i % 6];
}

/* round(5 + (i * 7919) % 50000 / 100.0, 2) as Debezium's string. */
static int item_price(uint64_t i, char *buf, size_t size)
{
	uint64_t cents = 500 + (i * 7919) % 50000;

	return snprintf(buf, size, "%llu.%02llu",
			(unsigned long long)(cents / 100),
			(unsigned long long)(cents % 100));
}

static const char *merchant_category(unsigned m)
{
	return merchant_cat[m % 8];
}

static double merchant_risk(unsigned m)
{
	return (double)((m * 37) % 100) / 100.0;
}

static const char *user_segment(unsigned u)
{
	return user_seg[u % 5];
}

static int user_code(unsigned u)
{
	return u % 5 <= 1 ? 0 : (int)(u % 5) - 1;
}

static int user_tier(unsigned u)
{
	return 1 + (int)((u * 13) % 5);
}

/* User u's vector fields as text (values[NV][32]). */
static void user_vector(unsigned u, char values[NV][32], size_t *lens)
{
	uint64_t x = (uint64_t)u * 0x9e3779b97f4a7c15u + 1;
	double f = 0.4 + (double)(bench_rand(&x) % 1200) / 1000.0;

	lens[0] = (size_t)snprintf(values[0], 32, "%llu",
				   1700000000000ULL + u * 1000ULL);
	lens[1] = (size_t)snprintf(values[1], 32, "%u", u << 8);
	lens[2] = (size_t)snprintf(values[2], 32, "%.2f",
				   spend[user_code(u)] * f);
	lens[3] = (size_t)snprintf(values[3], 32, "%llu",
				   1 + (unsigned long long)(bench_rand(&x) % 12));
	lens[4] = (size_t)snprintf(values[4], 32, "%d", user_code(u));
}

/* ---- the state --------------------------------------------------------- */

static void add_int(st_row_builder_t *b, const char *name, int64_t i)
{
	st_value_t v = { .type = ST_VAL_INT, .i = i };

	if (st_row_add(b, name, strlen(name), &v))
		bench_die("row", "cannot add a column");
}

static void add_double(st_row_builder_t *b, const char *name, double d)
{
	st_value_t v = { .type = ST_VAL_DOUBLE, .d = d };

	if (st_row_add(b, name, strlen(name), &v))
		bench_die("row", "cannot add a column");
}

static void add_string(st_row_builder_t *b, const char *name, const char *s,
		       size_t len)
{
	st_value_t v = { .type = ST_VAL_STRING, .s = s, .len = len };

	if (st_row_add(b, name, strlen(name), &v))
		bench_die("row", "cannot add a column");
}

/* Stores the row in b as the snapshot version ('r') of (table, key). */
static void put_version(st_state_t *st, const char *table, uint64_t key,
			st_row_builder_t *b)
{
	static int64_t lsn;
	st_cdc_msg_t m = { .kind = ST_CDC_CHANGE, .op = 'r', .txid = -1 };
	st_apply_result_t res;
	char kbuf[24], errstr[512];
	int err;

	snprintf(m.table, sizeof(m.table), "%s", table);
	m.key_len = (size_t)snprintf(kbuf, sizeof(kbuf), "%llu",
				     (unsigned long long)key);
	m.key = kbuf;
	m.ts_ms = 1700000000000LL;
	m.lsn = ++lsn;
	if (st_row_finish(b, &m.row, &m.row_len))
		bench_die("row", "cannot finish a row");
	err = st_temporal_apply(st, &m, &res, errstr, sizeof(errstr));
	free(m.row);
	if (err)
		bench_die("state", errstr);
	if (res != ST_APPLY_STORED)
		bench_die("state", "a version was not stored");
}

static void fill_state(const char *path, uint64_t items)
{
	st_vecrec_layout_t *layout = NULL;
	st_row_builder_t b = { 0 };
	st_state_t *st = NULL;
	char errstr[512], lkey[40], price[32], ent[24], values[NV][32];
	const char *vals[NV];
	size_t idx[NV], lens[NV];
	uint8_t buf[1024];

	if (st_state_open(&st, path, 4LL << 30, ST_STATE_NOSYNC, errstr,
			  sizeof(errstr)) ||
	    st_state_begin(st, errstr, sizeof(errstr)))
		bench_die("state", errstr);
	for (unsigned m = 1; m <= MERCHANTS; m++) {
		add_int(&b, "id", m);
		add_string(&b, "category", merchant_category(m),
			   strlen(merchant_category(m)));
		add_double(&b, "risk_score", merchant_risk(m));
		put_version(st, "merchants", m, &b);
	}
	for (unsigned u = 1; u <= USERS; u++) {
		add_int(&b, "id", u);
		add_string(&b, "segment", user_segment(u),
			   strlen(user_segment(u)));
		add_int(&b, "risk_tier", user_tier(u));
		put_version(st, "users", u, &b);
	}
	for (uint64_t i = 1; i <= items; i++) {
		int n = item_price(i, price, sizeof(price));

		add_int(&b, "id", (int64_t)i);
		add_int(&b, "merchant_id", item_merchant(i));
		add_string(&b, "category", item_category(i),
			   strlen(item_category(i)));
		add_string(&b, "price", price, (size_t)n);
		put_version(st, "items", i, &b);
	}
	/* The users' vectors, in a layout stored as strata run stores it. */
	if (st_vecrec_layout_new(vnames, NV, &layout))
		bench_die("state", "layout");
	st_vecrec_layout_key(layout->id, lkey, sizeof(lkey));
	if (st_state_meta_put(st, lkey, layout->text, errstr, sizeof(errstr)))
		bench_die("state", errstr);
	for (size_t j = 0; j < NV; j++) {
		idx[j] = j;
		vals[j] = values[j];
	}
	for (unsigned u = 1; u <= USERS; u++) {
		MDB_val key, d;

		user_vector(u, values, lens);
		key.mv_size = (size_t)snprintf(ent, sizeof(ent), "%u", u);
		key.mv_data = ent;
		memset(buf, 0, 4);       /* no window state */
		d.mv_size = st_vecrec_encode(buf + 4, sizeof(buf) - 4, layout,
					     NV, idx, vals, lens);
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
	st_row_builder_free(&b);
}

/* ---- the bare side's rows ---------------------------------------------- */

typedef enum {
	F_AVG, F_COUNT, F_CODE, F_USER_TIER, F_USER_SEG, F_ITEM_PRICE,
	F_ITEM_CAT, F_ITEM_MERCHANT, F_MERCHANT_RISK, F_MERCHANT_CAT
} fkind_t;

typedef struct {
	fkind_t kind;
	const char *eq;          /* "=TEXT": borrowed from the scorer */
} feat_t;

/* Where the benchmark takes each of the model's features from; dies on
 * a feature it has no values for. */
static feat_t *read_features(const st_scorer_t *s, size_t nf)
{
	static const struct {
		const char *name;
		fkind_t kind;
		int eq;
	} known[] = {
		{ "avg_amount_24h", F_AVG, 0 },
		{ "txn_count_24h", F_COUNT, 0 },
		{ "user_segment_code", F_CODE, 0 },
		{ "users.risk_tier", F_USER_TIER, 0 },
		{ "users.segment", F_USER_SEG, 1 },
		{ "items.price", F_ITEM_PRICE, 0 },
		{ "items.category", F_ITEM_CAT, 1 },
		{ "items.merchant_id", F_ITEM_MERCHANT, 0 },
		{ "merchants.risk_score", F_MERCHANT_RISK, 0 },
		{ "merchants.category", F_MERCHANT_CAT, 1 },
	};
	feat_t *f = calloc(nf, sizeof(*f));

	if (!f)
		bench_die("features", "out of memory");
	for (size_t j = 0; j < nf; j++) {
		const char *name = st_scorer_feature(s, j), *eq;
		size_t len;
		size_t k;

		if (!name)
			bench_die("model", "no strata.features metadata");
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strlen(known[k].name) == len &&
			    !memcmp(known[k].name, name, len) &&
			    known[k].eq == !!eq)
				break;
		if (k == sizeof(known) / sizeof(known[0])) {
			fprintf(stderr, "bench_recommend: model feature %s: "
				"the benchmark has no values for it\n", name);
			exit(1);
		}
		f[j].kind = known[k].kind;
		f[j].eq = eq ? eq + 1 : NULL;
	}
	return f;
}

static float text_number(const char *s)
{
	return (float)strtod(s, NULL);
}

/* The K rows of user u, row-major, as the benchmark reads the data. */
static void build_rows(const feat_t *f, size_t nf, uint64_t items,
		       unsigned u, float *rows)
{
	char values[NV][32], price[32];
	size_t lens[NV];

	user_vector(u, values, lens);
	for (uint64_t i = 1; i <= items; i++) {
		float *row = rows + (i - 1) * nf;
		unsigned m = item_merchant(i);

		item_price(i, price, sizeof(price));
		for (size_t j = 0; j < nf; j++) {
			switch (f[j].kind) {
			case F_AVG:
				row[j] = text_number(values[2]);
				break;
			case F_COUNT:
				row[j] = text_number(values[3]);
				break;
			case F_CODE:
				row[j] = text_number(values[4]);
				break;
			case F_USER_TIER:
				row[j] = (float)user_tier(u);
				break;
			case F_USER_SEG:
				row[j] = !strcmp(user_segment(u), f[j].eq);
				break;
			case F_ITEM_PRICE:
				row[j] = text_number(price);
				break;
			case F_ITEM_CAT:
				row[j] = !strcmp(item_category(i), f[j].eq);
				break;
			case F_ITEM_MERCHANT:
				row[j] = (float)m;
				break;
			case F_MERCHANT_RISK:
				row[j] = (float)merchant_risk(m);
				break;
			case F_MERCHANT_CAT:
				row[j] = !strcmp(merchant_category(m), f[j].eq);
				break;
			}
		}
	}
}

/* ---- RECOMMEND ---------------------------------------------------------- */

/* RECOMMEND for user u; dies unless the reply is 2 * COUNT strings. */
static redisReply *recommend(redisContext *c, unsigned u)
{
	char key[48];
	const char *argv[4] = { "RECOMMEND", key, "COUNT",
				NUMBER_TEXT(COUNT) };
	size_t lens[4] = { 9, 0, 5, sizeof(NUMBER_TEXT(COUNT)) - 1 };
	redisReply *r;

	lens[1] = (size_t)snprintf(key, sizeof(key), "%s:%u", PREFIX, u);
	r = redisCommandArgv(c, 4, argv, lens);
	if (!r)
		bench_die("RECOMMEND", c->errstr);
	if (r->type == REDIS_REPLY_ERROR)
		bench_die("RECOMMEND", r->str);
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * COUNT)
		bench_die("RECOMMEND", "the reply is not an array of 2 * "
			  NUMBER_TEXT(COUNT) " elements");
	for (size_t e = 0; e < r->elements; e++)
		if (r->element[e]->type != REDIS_REPLY_STRING)
			bench_die("RECOMMEND", "an element is not a string");
	return r;
}

typedef struct {
	float score;
	uint32_t idx;
} ranked_t;

/* Highest first, NaN last, ties in key order (items 1..K: shorter keys
 * first, then bytewise, is the numeric order). */
static int by_score(const void *a, const void *b)
{
	const ranked_t *x = a, *y = b;
	int xn = isnan(x->score), yn = isnan(y->score);

	if (xn != yn)
		return xn - yn;
	if (!xn && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* RECOMMEND's top 10 for user u is the bare scores' ranking. */
static void check_ranking(redisContext *c, st_scorer_t *peer,
			  const feat_t *f, size_t nf, uint64_t items,
			  unsigned u, float *rows, float *scores)
{
	ranked_t *rk = malloc(items * sizeof(*rk));
	char errstr[512], want[24];
	redisReply *r;

	if (!rk)
		bench_die("check", "out of memory");
	build_rows(f, nf, items, u, rows);
	if (st_scorer_score(peer, rows, items, scores, errstr, sizeof(errstr)))
		bench_die("score", errstr);
	for (uint64_t i = 0; i < items; i++) {
		rk[i].score = scores[i];
		rk[i].idx = (uint32_t)i;
	}
	qsort(rk, items, sizeof(*rk), by_score);
	r = recommend(c, u);
	for (size_t k = 0; k < COUNT; k++) {
		const char *item = r->element[2 * k]->str;
		double got = strtod(r->element[2 * k + 1]->str, NULL);
		double exp = rk[k].score;

		snprintf(want, sizeof(want), "%u", rk[k].idx + 1);
		if (strcmp(item, want) ||
		    (isnan(exp) ? !isnan(got) : !(fabs(got - exp) <= 1e-6))) {
			fprintf(stderr, "bench_recommend: user %u, rank %zu: "
				"RECOMMEND says item %s score %s, the bare "
				"scores item %s score %.9g\n", u, k + 1, item,
				r->element[2 * k + 1]->str, want, exp);
			exit(1);
		}
	}
	freeReplyObject(r);
	free(rk);
}



/* Removes the state directory, if any (also at exit after an error). */
static void remove_dir(void)
{
	if (*dir)
		bench_remove_tree(dir);
	*dir = '\0';
}

/* One catalogue size: fill, serve, check, measure, print. */
static void bench_size(const char *model, st_scorer_t *peer, const feat_t *f,
		       size_t nf, uint64_t items, uint64_t rows_per_round,
		       int rounds)
{
	char errstr[512];
	st_recommend_conf_t rconf = {
		.model = model, .table = "items", .user_table = "users",
		.joins = "merchants:merchant_id", .candidates_max = items,
	};
	st_server_conf_t conf = {
		.listen = "127.0.0.1:0", .state_dir = dir, .prefix = PREFIX,
		.recommend = &rconf, .max_clients = 10, .max_output = 64 << 20,
	};
	uint64_t n = rows_per_round / items, seed = 0x2545f4914f6cdd1du;
	double rec_wall[ROUNDS_MAX], rec_cpu[ROUNDS_MAX];
	double bare_wall[ROUNDS_MAX], bare_cpu[ROUNDS_MAX];
	double ratio[ROUNDS_MAX], cratio[ROUNDS_MAX];
	double t0, c0, first_wall, first_cpu, *lat, *blat;
	size_t npeer, mat = items * nf;
	float **mats, *scores;
	unsigned check_users[CHECK_USERS] = { 1, USERS / 2 + 3, USERS };
	st_server_t *srv;
	redisContext *c;
	redisReply *r;

	if (n < 10)
		n = 10;
	memcpy(dir, DIR_TEMPLATE, sizeof(dir));
	if (!mkdtemp(dir)) {
		*dir = '\0';
		bench_die("mkdtemp", strerror(errno));
	}
	t0 = bench_clock_s(CLOCK_MONOTONIC);
	fill_state(dir, items);
	printf("\nK = %llu items (%d merchants, %d users): state filled in "
	       "%.2f s; %llu requests per round and side\n",
	       (unsigned long long)items, MERCHANTS, USERS, bench_clock_s(CLOCK_MONOTONIC) - t0,
	       (unsigned long long)n);

	/* The bare side's matrices, built before any timing. */
	npeer = PEER_BYTES / (mat * sizeof(float));
	npeer = npeer < 1 ? 1 : npeer > PEER_MATRICES ? PEER_MATRICES : npeer;
	if (!(mats = calloc(npeer, sizeof(*mats))) ||
	    !(scores = malloc(items * sizeof(*scores))) ||
	    !(lat = malloc((size_t)rounds * n * sizeof(*lat))) ||
	    !(blat = malloc((size_t)rounds * n * sizeof(*blat))))
		bench_die("memory", "out of memory");
	for (size_t p = 0; p < npeer; p++) {
		if (!(mats[p] = malloc(mat * sizeof(float))))
			bench_die("memory", "out of memory");
		build_rows(f, nf, items, 1 + (unsigned)(bench_rand(&seed) % USERS),
			   mats[p]);
	}

	if (st_server_new(&srv, &conf, errstr, sizeof(errstr)))
		bench_die("server", errstr);
	bench_server_start(&server, srv);
	c = bench_redis_connect("127.0.0.1", st_server_port(srv));

	/* The first request builds the candidates' columns. */
	c0 = bench_clock_s(server.clk);
	t0 = bench_clock_s(CLOCK_MONOTONIC);
	r = recommend(c, 1);
	first_wall = bench_clock_s(CLOCK_MONOTONIC) - t0;
	first_cpu = bench_clock_s(server.clk) - c0;
	freeReplyObject(r);
	printf("first request (builds the candidates of the snapshot): "
	       "%.2f ms, server CPU %.2f ms\n", first_wall * 1e3,
	       first_cpu * 1e3);
	{
		float *rows = malloc(mat * sizeof(float));

		if (!rows)
			bench_die("memory", "out of memory");
		for (int k = 0; k < CHECK_USERS; k++)
			check_ranking(c, peer, f, nf, items, check_users[k],
				      rows, scores);
		free(rows);
	}
	printf("top %d of users %u, %u, %u: the same items, order and "
	       "scores (within 1e-6) as the bare scores' ranking\n", COUNT,
	       check_users[0], check_users[1], check_users[2]);
	/* Warm the bare side as the checks warmed both. */
	if (st_scorer_score(peer, mats[0], items, scores, errstr,
			    sizeof(errstr)))
		bench_die("score", errstr);

	printf("round  RECOMMEND req/s  us/req  srv CPU us/req  "
	       "bare us/K rows  ratio\n");
	for (int rd = 0; rd < rounds; rd++) {
		uint64_t rs = 0x9e3779b97f4a7c15u * (uint64_t)(rd + 1);

		for (int k = 0; k < 2; k++) {
			int which = (rd + k) % 2;   /* 0: RECOMMEND, 1: bare */
			clockid_t cl = which ? CLOCK_THREAD_CPUTIME_ID :
					 server.clk;
			double *l = (which ? blat : lat) + (size_t)rd * n;
			double w0, wall;

			c0 = bench_clock_s(cl);
			w0 = bench_clock_s(CLOCK_MONOTONIC);
			for (uint64_t q = 0; q < n; q++) {
				double q0 = bench_clock_s(CLOCK_MONOTONIC);

				if (which) {
					if (st_scorer_score(peer,
							    mats[bench_rand(&rs) %
								 npeer],
							    items, scores,
							    errstr,
							    sizeof(errstr)))
						bench_die("score", errstr);
				} else {
					freeReplyObject(recommend(
						c, 1 + (unsigned)(bench_rand(&rs) %
								  USERS)));
				}
				l[q] = bench_clock_s(CLOCK_MONOTONIC) - q0;
			}
			wall = (bench_clock_s(CLOCK_MONOTONIC) - w0) / (double)n;
			if (which) {
				bare_wall[rd] = wall;
				bare_cpu[rd] = (bench_clock_s(cl) - c0) /
					       (double)n;
			} else {
				rec_wall[rd] = wall;
				rec_cpu[rd] = (bench_clock_s(cl) - c0) /
					      (double)n;
			}
		}
		ratio[rd] = rec_wall[rd] / bare_wall[rd];
		cratio[rd] = rec_cpu[rd] / bare_cpu[rd];
		printf("%5d  %15.1f  %6.0f  %14.0f  %14.0f  %5.2f\n", rd + 1,
		       1 / rec_wall[rd], rec_wall[rd] * 1e6, rec_cpu[rd] * 1e6,
		       bare_wall[rd] * 1e6, ratio[rd]);
	}
	qsort(lat, (size_t)rounds * n, sizeof(*lat), bench_cmp_double);
	qsort(blat, (size_t)rounds * n, sizeof(*blat), bench_cmp_double);
	{
		double rw = bench_median(rec_wall, rounds), rc = bench_median(rec_cpu,
								   rounds);
		double bw = bench_median(bare_wall, rounds), bc = bench_median(bare_cpu,
								    rounds);
		size_t all = (size_t)rounds * n;

		printf("medians of %d rounds, K = %llu:\n", rounds,
		       (unsigned long long)items);
		printf("  RECOMMEND (depth 1): %.1f req/s, %.1f us per "
		       "request, latency p50 %.1f us p99 %.1f us (%zu "
		       "requests)\n", 1 / rw, rw * 1e6, lat[all / 2] * 1e6,
		       lat[all * 99 / 100] * 1e6, all);
		printf("  RECOMMEND per item ranked: %.1f ns (wall), %.1f ns "
		       "server CPU; server CPU per request %.1f us\n",
		       rw * 1e9 / (double)items, rc * 1e9 / (double)items,
		       rc * 1e6);
		printf("  bare st_scorer_score() of K rows: %.1f us (p50 %.1f "
		       "us p99 %.1f us), %.1f ns per row (wall), %.1f ns per "
		       "row CPU\n", bw * 1e6, blat[all / 2] * 1e6,
		       blat[all * 99 / 100] * 1e6, bw * 1e9 / (double)items,
		       bc * 1e9 / (double)items);
		printf("  ratio RECOMMEND / bare scoring: %.2f (wall per "
		       "request / wall of K rows), %.2f (server CPU / bare "
		       "CPU)\n", bench_median(ratio, rounds), bench_median(cratio, rounds));
	}

	redisFree(c);
	bench_server_stop(&server);
	for (size_t p = 0; p < npeer; p++)
		free(mats[p]);
	free(mats);
	free(scores);
	free(lat);
	free(blat);
	remove_dir();
}

int main(int argc, char **argv)
{
	const char *model = NULL;
	uint64_t sizes[SIZES_MAX] = { 500, 5000, 50000 }, rows = 2000000;
	int nsizes = 3, given = 0, rounds = 5, opt;
	st_scorer_t *peer = NULL;
	char errstr[512];
	double t0 = bench_clock_s(CLOCK_MONOTONIC);
	size_t nf;
	feat_t *f;

	printf("#");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	while ((opt = getopt(argc, argv, "m:k:n:r:")) != -1) {
		switch (opt) {
		case 'm':
			model = optarg;
			break;
		case 'k':
			if (given == SIZES_MAX)
				bench_die("arguments", "too many -k");
			sizes[given++] = strtoull(optarg, NULL, 10);
			nsizes = given;
			break;
		case 'n':
			rows = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_recommend -m MODEL "
				"[-k ITEMS]... [-n ROWS] [-r ROUNDS]\n");
			return 2;
		}
	}
	if (!model || optind != argc) {
		fprintf(stderr, "usage: bench_recommend -m MODEL [-k ITEMS]... "
			"[-n ROWS] [-r ROUNDS]\n");
		return 2;
	}
	for (int i = 0; i < nsizes; i++)
		if (sizes[i] < COUNT || sizes[i] > 10000000)
			bench_die("arguments", "-k out of range (10 to "
				  "10,000,000)");
	if (!rows || rounds < 1 || rounds > ROUNDS_MAX)
		bench_die("arguments", "out of range");
	signal(SIGPIPE, SIG_IGN);
	atexit(remove_dir);

	if (st_scorer_new(&peer, model, 1, errstr, sizeof(errstr)))
		bench_die("model", errstr);
	nf = st_scorer_nfeatures(peer);
	f = read_features(peer, nf);
	printf("model %s: %zu features:", model, nf);
	for (size_t j = 0; j < nf; j++)
		printf("%s%s", j ? "," : " ", st_scorer_feature(peer, j));
	printf("\nRECOMMEND %s:USER COUNT %d over random users 1..%d, depth "
	       "1, one hiredis client; bare: st_scorer_score() of the K rows "
	       "of one of up to %d users, pre-built; %d rounds alternating, "
	       "%llu items ranked per round and side\n", PREFIX, COUNT, USERS,
	       PEER_MATRICES, rounds, (unsigned long long)rows);
	for (int i = 0; i < nsizes; i++)
		bench_size(model, peer, f, nf, sizes[i], rows, rounds);
	st_scorer_destroy(peer);
	free(f);
	printf("\ntotal %.1f s\n", bench_clock_s(CLOCK_MONOTONIC) - t0);
	return 0;
}
