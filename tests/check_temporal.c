/*
 * check_temporal.c -- the temporal store: examples, then a property test
 * against an in-memory reference model. Random inserts, updates, deletes,
 * unchanged-TOAST columns, duplicates and redeliveries are applied in
 * random order and batches; every as-of answer of every key at every time
 * is compared with the model, and so is retention.
 *
 * ST_SEED=<n> reproduces a run; ST_CASES=<n> sets the number of cases.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cdc.h"
#include "error.h"
#include "row.h"
#include "testutil.h"
#include "state.h"
#include "temporal.h"

static char dir[64];
static st_state_t *st;
static char errstr[512];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_temporal_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(st_state_open(&st, dir, 256LL << 20, 0, errstr,
				       sizeof(errstr)), 0);
}

static void teardown(void)
{
	char cmd[128];

	st_state_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Builds a change message from a JSON row (NULL row: delete). */
static void change(st_cdc_msg_t *m, const char *table, const char *key,
		   char op, int64_t ts, int64_t lsn, const char *json)
{
	memset(m, 0, sizeof(*m));
	m->kind = ST_CDC_CHANGE;
	m->op = op;
	snprintf(m->table, sizeof(m->table), "%s", table);
	m->key = strdup(key);
	m->key_len = strlen(key);
	m->ts_ms = ts;
	m->lsn = lsn;
	if (json) {
		ck_assert_int_eq(st_test_row(json, &m->row, &m->row_len), 0);
	}
}

static st_apply_result_t apply(const char *table, const char *key, char op,
			       int64_t ts, int64_t lsn, const char *json)
{
	st_apply_result_t r;
	st_cdc_msg_t m;

	change(&m, table, key, op, ts, lsn, json);
	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_temporal_apply(st, &m, &r, errstr, sizeof(errstr)),
			 0);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	st_cdc_msg_clear(&m);
	return r;
}

static char *asof_json(const char *table, const char *key, int64_t t,
		       int *errp, st_version_t *vout)
{
	st_version_t v;
	char *s = NULL;
	json_t *j;

	*errp = st_temporal_asof(st, table, key, strlen(key), t, &v, errstr,
				 sizeof(errstr));
	if (!*errp) {
		j = st_row_to_json(v.row, v.row_len);
		s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
		json_decref(j);
	}
	if (vout)
		*vout = v;
	st_version_clear(&v);
	return s;
}

START_TEST(versions_and_deletes)
{
	st_version_t v;
	char *s;
	int err;

	ck_assert_int_eq(apply("users", "1", 'c', 1000, 10, "{\"seg\":\"a\"}"),
			 ST_APPLY_STORED);
	ck_assert_int_eq(apply("users", "1", 'u', 2000, 20, "{\"seg\":\"b\"}"),
			 ST_APPLY_STORED);
	ck_assert_int_eq(apply("users", "1", 'd', 3000, 30, NULL),
			 ST_APPLY_STORED);
	ck_assert_int_eq(apply("users", "1", 'c', 4000, 40, "{\"seg\":\"c\"}"),
			 ST_APPLY_STORED);
	/* Same change again: nothing changes. */
	ck_assert_int_eq(apply("users", "1", 'u', 2000, 20, "{\"seg\":\"b\"}"),
			 ST_APPLY_DUPLICATE);
	s = asof_json("users", "1", 999, &err, NULL);
	ck_assert_int_eq(err, ST_ENOENT);
	s = asof_json("users", "1", 1000, &err, &v);
	ck_assert_str_eq(s, "{\"seg\":\"a\"}");
	ck_assert_int_eq(v.valid_from, 1000);
	ck_assert_int_eq(v.valid_to, 2000);
	free(s);
	s = asof_json("users", "1", 2999, &err, NULL);
	ck_assert_str_eq(s, "{\"seg\":\"b\"}");
	free(s);
	s = asof_json("users", "1", 3000, &err, &v);
	ck_assert_int_eq(err, ST_ENOENT);
	ck_assert_int_eq(v.deleted, 1);
	ck_assert_int_eq(v.valid_from, 3000);
	s = asof_json("users", "1", 1LL << 50, &err, &v);
	ck_assert_str_eq(s, "{\"seg\":\"c\"}");
	ck_assert_int_eq(v.valid_to, ST_TEMPORAL_OPEN_END);
	free(s);
	/* Another table, same key: separate. */
	s = asof_json("merchants", "1", 5000, &err, NULL);
	ck_assert_int_eq(err, ST_ENOENT);
	/* A key that is a prefix of another stays apart. */
	apply("users", "10", 'c', 500, 5, "{\"seg\":\"x\"}");
	s = asof_json("users", "1", 999, &err, NULL);
	ck_assert_int_eq(err, ST_ENOENT);
}
END_TEST

START_TEST(toast_resolved_in_any_order)
{
	char *s;
	int err;

	/* The version with the placeholder arrives before its predecessor. */
	apply("users", "7", 'u', 2000, 20,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"age\":31}");
	s = asof_json("users", "7", 2000, &err, NULL);
	ck_assert_str_eq(s, "{\"age\":31}");
	free(s);
	apply("users", "7", 'c', 1000, 10, "{\"bio\":\"long\",\"age\":30}");
	s = asof_json("users", "7", 2000, &err, NULL);
	ck_assert_str_eq(s, "{\"age\":31,\"bio\":\"long\"}");
	free(s);
	/* Two placeholders in a row resolve through both. */
	apply("users", "7", 'u', 3000, 30,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"age\":32}");
	s = asof_json("users", "7", 3500, &err, NULL);
	ck_assert_str_eq(s, "{\"age\":32,\"bio\":\"long\"}");
	free(s);
}
END_TEST

static int count_cb(const st_version_t *v, void *opaque)
{
	int64_t *prev_from = opaque;

	/* Newest first; each ends where the newer one starts. */
	ck_assert_int_eq(v->valid_to, prev_from[0]);
	prev_from[0] = v->valid_from;
	prev_from[1]++;
	return 0;
}

static int scan_collect(const char *key, size_t key_len, const uint8_t *row,
			size_t row_len, void *opaque)
{
	json_t *j = st_row_to_json(row, row_len);
	char *js = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	char *out = opaque;

	snprintf(out + strlen(out), 512 - strlen(out), "%.*s=%s;",
		 (int)key_len, key, js);
	free(js);
	json_decref(j);
	return strlen(out) > 60 ? 7 : 0;   /* 7: stop */
}

START_TEST(scan_examples)
{
	st_temporal_reader_t *r = st_temporal_reader_new(st);
	char out[512] = "";
	MDB_txn *txn;
	uint64_t n;

	/* Neighbouring tables are not part of the scan. */
	apply("user", "1", 'c', 1000, 1, "{\"t\":\"user\"}");
	apply("usersx", "1", 'c', 1000, 2, "{\"t\":\"usersx\"}");
	apply("userr", "1", 'c', 1000, 8, "{\"t\":\"userr\"}");
	apply("usert", "1", 'c', 1000, 9, "{\"t\":\"usert\"}");
	apply("users", "2", 'c', 1000, 3, "{\"a\":2}");
	apply("users", "10", 'c', 1000, 4, "{\"a\":10,\"bio\":\"long\"}");
	apply("users", "10", 'u', 2000, 5,
	      "{\"a\":11,\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\"}");
	apply("users", "3", 'c', 1500, 6, "{\"a\":3}");
	apply("users", "3", 'd', 2500, 7, NULL);
	ck_assert_int_eq(st_state_read_begin(st, &txn, errstr, sizeof(errstr)),
			 0);
	ck_assert_int_eq(st_temporal_reader_bind(r, txn), 0);
	ck_assert_int_eq(st_temporal_scan(r, 0, "users", 999, scan_collect,
					  out), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(st_temporal_scan(r, 0, "users", 1500, scan_collect,
					  out), 0);
	ck_assert_str_eq(out, "2={\"a\":2};3={\"a\":3};"
			 "10={\"a\":10,\"bio\":\"long\"};");
	out[0] = '\0';
	/* The unchanged TOAST column resolved; the deleted key skipped. */
	ck_assert_int_eq(st_temporal_scan(r, 0, "users", 3000, scan_collect,
					  out), 0);
	ck_assert_str_eq(out, "2={\"a\":2};10={\"a\":11,\"bio\":\"long\"};");
	/* fn's non-zero answer ends the scan and is returned. */
	strcpy(out, "0123456789012345678901234567890123456789012345678901234567890:");
	ck_assert_int_eq(st_temporal_scan(r, 0, "users", 1500, scan_collect,
					  out), 7);
	ck_assert(strstr(out, ":2=") && !strstr(out, "3="));
	ck_assert_int_eq(st_temporal_scan(r, 0, "", 1500, scan_collect, out),
			 ST_EINVAL);
	/* Change counters: versions stored per table, redeliveries not. */
	st_state_read_end(st);
	ck_assert_int_eq(apply("users", "3", 'd', 2500, 7, NULL),
			 ST_APPLY_DUPLICATE);
	ck_assert_int_eq(st_state_read_begin(st, &txn, errstr, sizeof(errstr)),
			 0);
	ck_assert_int_eq(st_temporal_reader_bind(r, txn), 0);
	ck_assert_int_eq(st_temporal_changes(r, "users", &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(st_temporal_changes(r, "user", &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(st_temporal_changes(r, "merchants", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(st_temporal_changes(r, "", &n), ST_EINVAL);
	ck_assert_int_eq(st_temporal_scan(r, 8, "users", 1500, scan_collect,
					  out), ST_EINVAL);
	st_state_read_end(st);
	st_temporal_reader_free(r);
}
END_TEST

START_TEST(history_and_compaction)
{
	int64_t state[2] = {ST_TEMPORAL_OPEN_END, 0};
	uint64_t removed;
	void *cursor = NULL;
	size_t cursor_len = 0;
	char *s;
	int err;

	apply("users", "1", 'c', 1000, 1, "{\"bio\":\"b\",\"v\":1}");
	apply("users", "1", 'u', 2000, 2,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"v\":2}");
	apply("users", "1", 'u', 3000, 3,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"v\":3}");
	apply("users", "2", 'c', 1000, 4, "{\"v\":1}");
	apply("users", "2", 'd', 1500, 5, NULL);
	ck_assert_int_eq(st_temporal_history(st, "users", "1", 1, count_cb,
					     state, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(state[1], 3);
	ck_assert_int_eq(st_temporal_history(st, "users", "3", 1, count_cb,
					     state, errstr, sizeof(errstr)),
			 ST_ENOENT);
	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	/* Budget 1: two calls to cover both keys. */
	ck_assert_int_eq(st_temporal_compact(st, 2500, 1, &cursor, &cursor_len,
					     &removed, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(removed, 1);
	ck_assert_ptr_nonnull(cursor);
	ck_assert_int_eq(st_temporal_compact(st, 2500, 1, &cursor, &cursor_len,
					     &removed, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(removed, 2);
	ck_assert_ptr_null(cursor);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	/* Key 1 keeps the version valid at 2500, its TOAST column kept. */
	s = asof_json("users", "1", 2500, &err, NULL);
	ck_assert_str_eq(s, "{\"bio\":\"b\",\"v\":2}");
	free(s);
	s = asof_json("users", "1", 3000, &err, NULL);
	ck_assert_str_eq(s, "{\"bio\":\"b\",\"v\":3}");
	free(s);
	s = asof_json("users", "1", 1500, &err, NULL);
	ck_assert_int_eq(err, ST_ENOENT);
	/* Key 2 was deleted before the horizon: all gone. */
	ck_assert_int_eq(st_temporal_history(st, "users", "2", 1, count_cb,
					     state, errstr, sizeof(errstr)),
			 ST_ENOENT);
}
END_TEST

/* The join's reader: bound to successive write transactions (LMDB frees a
 * write transaction's cursors with it), and two resolved rows at once. */
START_TEST(reader_across_write_transactions)
{
	st_temporal_reader_t *r = st_temporal_reader_new(st);
	const uint8_t *a, *b;
	size_t alen, blen;
	st_value_t v;

	apply("users", "1", 'c', 1000, 1, "{\"bio\":\"ub\",\"n\":1}");
	apply("users", "1", 'u', 2000, 2,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"n\":2}");
	apply("merchants", "1", 'c', 1000, 3, "{\"bio\":\"mb\",\"n\":3}");
	apply("merchants", "1", 'u', 2000, 4,
	      "{\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE "\",\"n\":4}");
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
		ck_assert_int_eq(st_temporal_reader_bind(r,
					st_state_write_txn(st)), 0);
		ck_assert_int_eq(st_temporal_lookup(r, 0, "users", "1", 1, 2500,
						    &a, &alen), 0);
		ck_assert_int_eq(st_temporal_lookup(r, 1, "merchants", "1", 1,
						    2500, &b, &blen), 0);
		/* Both resolved rows are still valid together. */
		ck_assert_int_eq(st_row_get(a, alen, "bio", &v), 0);
		ck_assert_int_eq(memcmp(v.s, "ub", 2), 0);
		ck_assert_int_eq(st_row_get(b, blen, "bio", &v), 0);
		ck_assert_int_eq(memcmp(v.s, "mb", 2), 0);
		ck_assert_int_eq(st_temporal_lookup(r, 99, "users", "1", 1, 2500,
						    &a, &alen), ST_EINVAL);
		if (round == 1)
			st_state_abort(st);
		else
			ck_assert_int_eq(st_state_commit(st, errstr,
							 sizeof(errstr)), 0);
		st_temporal_reader_txn_ended(r);
	}
	st_temporal_reader_free(r);
}
END_TEST

START_TEST(offsets_commit_with_state)
{
	int64_t off, aux;

	ck_assert_int_eq(st_state_offset_get(st, "t", 0, &off, NULL, errstr,
					     sizeof(errstr)), ST_ENOENT);
	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_state_offset_put(st, "t", 3, 42, -1, errstr,
					     sizeof(errstr)), 0);
	st_state_abort(st);
	ck_assert_int_eq(st_state_offset_get(st, "t", 3, &off, NULL, errstr,
					     sizeof(errstr)), ST_ENOENT);
	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_state_offset_put(st, "t", 3, 43, 77, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_state_offset_get(st, "t", 3, &off, &aux, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(off, 43);
	ck_assert_int_eq(aux, 77);
}
END_TEST

START_TEST(map_full_is_reported)
{
	st_state_t *small;
	char d2[64], big[8192], cmd[128];
	st_apply_result_t r;
	st_cdc_msg_t m;
	int err = 0;

	snprintf(d2, sizeof(d2), "/tmp/check_temporal_full_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d2));
	ck_assert_int_eq(st_state_open(&small, d2, 1 << 20, 0, errstr,
				       sizeof(errstr)), 0);
	memcpy(big, "{\"blob\":\"", 9);
	memset(big + 9, 'x', 4000);
	memcpy(big + 4009, "\"}", 3);
	ck_assert_int_eq(st_state_begin(small, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 10000 && !err; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%d", i);
		change(&m, "users", key, 'c', i, i, big);
		err = st_temporal_apply(small, &m, &r, errstr, sizeof(errstr));
		st_cdc_msg_clear(&m);
	}
	ck_assert_int_eq(err, ST_EFULL);
	ck_assert_ptr_nonnull(strstr(errstr, "raise state.map.size"));
	st_state_abort(small);
	st_state_close(small);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d2);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A state written before window state and kept vectors shared the
 * 'entities' database is refused with a message, not read as empty. */
START_TEST(older_state_is_refused)
{
	st_state_t *st = NULL;
	char d2[64], cmd[128];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	snprintf(d2, sizeof(d2), "/tmp/check_temporal_old_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d2));
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, d2, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "windows", MDB_CREATE, &dbi), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	ck_assert_int_eq(st_state_open(&st, d2, 1 << 20, 0, errstr,
				       sizeof(errstr)), ST_ESTATE);
	ck_assert_ptr_nonnull(strstr(errstr, "use a new state.dir"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d2);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- property test ---------------------------------------------------- */

static uint64_t rng;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int rnd(int n)
{
	return (int)(next_rand() % (uint64_t)n);
}

#define NKEYS 6
#define NCOLS 3
#define MAXV 24
#define UNAV (-1)
#define ABSENT (-2)

typedef struct {
	int key;
	int64_t ts, lsn;
	int deleted;
	int cols[NCOLS];   /* value, UNAV or ABSENT */
} mversion_t;

static mversion_t model[NKEYS * MAXV];
static int nmodel;

/* Model answer: index of the version valid at t, or -1. */
static int model_find(int key, int64_t t)
{
	int best = -1;

	for (int i = 0; i < nmodel; i++) {
		const mversion_t *v = &model[i];

		if (v->key != key || v->ts > t)
			continue;
		if (best < 0 || v->ts > model[best].ts ||
		    (v->ts == model[best].ts && v->lsn > model[best].lsn))
			best = i;
	}
	return best;
}

/* The next-older version of the same key than model[i], or -1. */
static int model_older(int i)
{
	int best = -1;

	for (int j = 0; j < nmodel; j++) {
		const mversion_t *v = &model[j];

		if (v->key != model[i].key || j == i)
			continue;
		if (v->ts > model[i].ts ||
		    (v->ts == model[i].ts && v->lsn >= model[i].lsn))
			continue;
		if (best < 0 || v->ts > model[best].ts ||
		    (v->ts == model[best].ts && v->lsn > model[best].lsn))
			best = j;
	}
	return best;
}

static int64_t model_valid_to(int i)
{
	int64_t to = ST_TEMPORAL_OPEN_END;
	int64_t bts = 0, blsn = 0;
	int found = 0;

	for (int j = 0; j < nmodel; j++) {
		const mversion_t *v = &model[j];

		if (v->key != model[i].key || j == i)
			continue;
		if (v->ts < model[i].ts ||
		    (v->ts == model[i].ts && v->lsn <= model[i].lsn))
			continue;
		if (!found || v->ts < bts || (v->ts == bts && v->lsn < blsn)) {
			found = 1;
			bts = v->ts;
			blsn = v->lsn;
			to = v->ts;
		}
	}
	return to;
}

static char *model_row(int i)
{
	json_t *obj = json_object();
	char name[16], *s;

	for (int c = 0; c < NCOLS; c++) {
		int val = model[i].cols[c];

		snprintf(name, sizeof(name), "c%d", c);
		for (int j = model_older(i); val == UNAV; j = model_older(j)) {
			if (j < 0 || model[j].deleted) {
				val = ABSENT;
				break;
			}
			val = model[j].cols[c];
		}
		if (val >= 0)
			json_object_set_new(obj, name, json_integer(val));
	}
	s = json_dumps(obj, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(obj);
	return s;
}

static char *row_json(const mversion_t *v)
{
	json_t *obj = json_object();
	char name[16], *s;

	for (int c = 0; c < NCOLS; c++) {
		snprintf(name, sizeof(name), "c%d", c);
		if (v->cols[c] == UNAV)
			json_object_set_new(obj, name,
					    json_string(ST_DEBEZIUM_UNAVAILABLE));
		else if (v->cols[c] >= 0)
			json_object_set_new(obj, name,
					    json_integer(v->cols[c]));
	}
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return s;
}

/* The join's reader must give the same row as st_temporal_asof(). */
static void check_reader(const char *k, int64_t t, int want_err,
			 const char *want_json)
{
	st_temporal_reader_t *r = st_temporal_reader_new(st);
	const uint8_t *row;
	size_t len;
	MDB_txn *txn;
	int err;

	ck_assert_int_eq(st_state_read_begin(st, &txn, errstr, sizeof(errstr)),
			 0);
	ck_assert_int_eq(st_temporal_reader_bind(r, txn), 0);
	err = st_temporal_lookup(r, 0, "users", k, strlen(k), t, &row, &len);
	ck_assert_int_eq(err, want_err);
	if (!err) {
		json_t *j = st_row_to_json(row, len);
		char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);

		ck_assert_str_eq(s, want_json);
		free(s);
		json_decref(j);
	}
	st_state_read_end(st);
	st_temporal_reader_free(r);
}

typedef struct {
	int nkeys;
	char keys[NKEYS][16];
	char *rows[NKEYS];
} scan_t;

static int scan_cb(const char *key, size_t key_len, const uint8_t *row,
		   size_t row_len, void *opaque)
{
	scan_t *sc = opaque;
	json_t *j = st_row_to_json(row, row_len);

	ck_assert_ptr_nonnull(j);
	ck_assert_int_lt(sc->nkeys, NKEYS);
	ck_assert_uint_lt(key_len, sizeof(sc->keys[0]));
	memcpy(sc->keys[sc->nkeys], key, key_len);
	sc->keys[sc->nkeys][key_len] = '\0';
	sc->rows[sc->nkeys++] = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	return 0;
}

/* A scan of the table at t yields exactly the keys with a row valid at t,
 * each with the row an as-of lookup gives. */
static void check_scan(uint64_t seed, int64_t t)
{
	st_temporal_reader_t *r = st_temporal_reader_new(st);
	scan_t sc = {0};
	MDB_txn *txn;
	int found = 0;

	ck_assert_int_eq(st_state_read_begin(st, &txn, errstr, sizeof(errstr)),
			 0);
	ck_assert_int_eq(st_temporal_reader_bind(r, txn), 0);
	ck_assert_int_eq(st_temporal_scan(r, 2, "users", t, scan_cb, &sc), 0);
	st_state_read_end(st);
	st_temporal_reader_free(r);
	for (int key = 0; key < NKEYS; key++) {
		int want = model_find(key, t), at = -1;
		char k[16];

		snprintf(k, sizeof(k), "k%d", key);
		for (int i = 0; i < sc.nkeys; i++)
			if (!strcmp(sc.keys[i], k))
				at = i;
		if (want < 0 || model[want].deleted) {
			ck_assert_msg(at < 0, "seed %llu t %lld: scan gave "
				      "%s, which has no row then",
				      (unsigned long long)seed, (long long)t,
				      k);
			continue;
		}
		ck_assert_msg(at >= 0, "seed %llu t %lld: scan missed %s",
			      (unsigned long long)seed, (long long)t, k);
		char *exp = model_row(want);

		ck_assert_msg(!strcmp(sc.rows[at], exp), "seed %llu t %lld "
			      "key %s: scan gave %s want %s",
			      (unsigned long long)seed, (long long)t, k,
			      sc.rows[at], exp);
		free(exp);
		found++;
	}
	ck_assert_int_eq(found, sc.nkeys);
	/* In the store's order: shorter keys first, then bytewise. */
	for (int i = 1; i < sc.nkeys; i++) {
		size_t a = strlen(sc.keys[i - 1]), b = strlen(sc.keys[i]);

		ck_assert(a < b || (a == b &&
				    strcmp(sc.keys[i - 1], sc.keys[i]) < 0));
	}
	for (int i = 0; i < sc.nkeys; i++)
		free(sc.rows[i]);
}

static void check_all_answers(uint64_t seed, int64_t tmax)
{
	for (int64_t t = -1; t <= tmax + 1; t += 3)
		check_scan(seed, t);
	for (int key = 0; key < NKEYS; key++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", key);
		for (int64_t t = -1; t <= tmax + 1; t++) {
			int want = model_find(key, t), err;
			st_version_t v;
			char *got = asof_json("users", k, t, &err, &v), *exp;

			if (want < 0 || model[want].deleted) {
				ck_assert_msg(err == ST_ENOENT,
					      "seed %llu key %d t %lld: want "
					      "none, got %s",
					      (unsigned long long)seed, key,
					      (long long)t, got ? got : "?");
				if (t % 7 == 0)
					check_reader(k, t, ST_ENOENT, NULL);
				continue;
			}
			ck_assert_msg(err == 0, "seed %llu key %d t %lld: "
				      "want a row, got error %d",
				      (unsigned long long)seed, key,
				      (long long)t, err);
			exp = model_row(want);
			ck_assert_msg(!strcmp(got, exp) &&
				      v.valid_from == model[want].ts &&
				      v.valid_to == model_valid_to(want),
				      "seed %llu key %d t %lld: got %s [%lld,"
				      "%lld) want %s [%lld,%lld)",
				      (unsigned long long)seed, key,
				      (long long)t, got,
				      (long long)v.valid_from,
				      (long long)v.valid_to, exp,
				      (long long)model[want].ts,
				      (long long)model_valid_to(want));
			if (t % 7 == 0)
				check_reader(k, t, 0, exp);
			free(exp);
			free(got);
		}
	}
}

static void one_case(uint64_t seed)
{
	int order[NKEYS * MAXV * 2], n = 0, tmax = 10 + rnd(40);
	int64_t lsn = 0;

	rng = seed * 2654435761u + 1;
	nmodel = 0;
	/* Generate each key's history as the source database would. */
	for (int key = 0; key < NKEYS; key++) {
		int nv = rnd(MAXV / 2), exists = 0;

		for (int i = 0; i < nv; i++) {
			mversion_t *v = &model[nmodel];

			v->key = key;
			v->ts = rnd(tmax + 1);
			v->lsn = ++lsn;
			v->deleted = exists && rnd(4) == 0;
			for (int c = 0; c < NCOLS; c++) {
				int r = rnd(8);

				v->cols[c] = r == 0 ? ABSENT :
					     r == 1 && exists ? UNAV : rnd(100);
			}
			exists = !v->deleted;
			nmodel++;
		}
	}
	/* Apply every change once, plus duplicates, in random order. */
	for (int i = 0; i < nmodel; i++) {
		order[n++] = i;
		if (rnd(3) == 0)
			order[n++] = i;
	}
	for (int i = n - 1; i > 0; i--) {
		int j = rnd(i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < n; i++) {
		const mversion_t *v = &model[order[i]];
		st_apply_result_t r;
		st_cdc_msg_t m;
		char k[16], *json = v->deleted ? NULL : row_json(v);

		if (i == 0 || rnd(5) == 0) {
			ck_assert_int_eq(st_state_commit(st, errstr,
							 sizeof(errstr)), 0);
			ck_assert_int_eq(st_state_begin(st, errstr,
							sizeof(errstr)), 0);
		}
		snprintf(k, sizeof(k), "k%d", v->key);
		change(&m, "users", k, v->deleted ? 'd' : 'u', v->ts, v->lsn,
		       json);
		ck_assert_int_eq(st_temporal_apply(st, &m, &r, errstr,
						   sizeof(errstr)), 0);
		st_cdc_msg_clear(&m);
		free(json);
	}
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	check_all_answers(seed, tmax);
}

static void clear_store(void)
{
	MDB_txn *txn;

	ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
	txn = st_state_write_txn(st);
	ck_assert_int_eq(mdb_drop(txn, st_state_dbi_versions(st), 0), 0);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
}

START_TEST(property_asof_matches_model)
{
	const char *s = getenv("ST_SEED"), *c = getenv("ST_CASES");
	uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
	int cases = c ? atoi(c) : 3000;

	printf("temporal property test: ST_SEED=%llu ST_CASES=%d\n",
	       (unsigned long long)seed, cases);
	for (int i = 0; i < cases; i++) {
		clear_store();
		one_case(seed + (uint64_t)i);
	}
}
END_TEST

/* Retention against the model: after compacting at horizon h, every answer
 * at t >= h is unchanged. */
START_TEST(property_compaction_keeps_answers)
{
	const char *s = getenv("ST_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);

	for (int i = 0; i < 300; i++) {
		int64_t h;
		uint64_t removed;
		void *cursor = NULL;
		size_t cursor_len = 0;

		clear_store();
		one_case(seed + 1000000 + (uint64_t)i);
		h = rnd(50);
		ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
		do {
			ck_assert_int_eq(st_temporal_compact(st, h, 2, &cursor,
							     &cursor_len,
							     &removed, errstr,
							     sizeof(errstr)),
					 0);
		} while (cursor);
		ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
		for (int key = 0; key < NKEYS; key++) {
			char k[16];

			snprintf(k, sizeof(k), "k%d", key);
			for (int64_t t = h; t <= 52; t++) {
				int want = model_find(key, t), err;
				char *got = asof_json("users", k, t, &err,
						      NULL), *exp;

				if (want < 0 || model[want].deleted) {
					ck_assert_msg(err == ST_ENOENT,
						      "seed %llu", (unsigned
						      long long)seed);
					continue;
				}
				exp = model_row(want);
				ck_assert_msg(got && !strcmp(got, exp),
					      "seed %llu case %d h %lld key %d "
					      "t %lld: got %s want %s",
					      (unsigned long long)seed, i,
					      (long long)h, key, (long long)t,
					      got ? got : "none", exp);
				free(exp);
				free(got);
			}
		}
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("temporal");
	TCase *tc = tcase_create("temporal");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, versions_and_deletes);
	tcase_add_test(tc, toast_resolved_in_any_order);
	tcase_add_test(tc, scan_examples);
	tcase_add_test(tc, history_and_compaction);
	tcase_add_test(tc, reader_across_write_transactions);
	tcase_add_test(tc, offsets_commit_with_state);
	tcase_add_test(tc, map_full_is_reported);
	tcase_add_test(tc, older_state_is_refused);
	tcase_add_test(tc, property_asof_matches_model);
	tcase_add_test(tc, property_compaction_keeps_answers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
