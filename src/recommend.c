/* recommend.c -- the catalogue ranked for one user: candidates from the
 * temporal store, rows by the model's feature names, one batch scored. */
#include "recommend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "features.h"
#include "row.h"
#include "scorer.h"
#include "temporal.h"

#define JOINS_MAX (ST_TEMPORAL_READER_SLOTS - 2)
#define SLOT_SCAN 0
#define SLOT_USER 1
#define SLOT_JOIN0 2
#define NUMBER_MAX 512           /* bytes of a string read as a number */

typedef enum { SRC_VECTOR, SRC_ITEM, SRC_JOIN, SRC_USER } src_t;

/* Where one input column of the model comes from. */
typedef struct {
	src_t src;
	int join;                /* SRC_JOIN: index into joins */
	char *column;            /* the table's column (owned) */
	char *eq;                /* "=TEXT": the text (owned); NULL: number */
	size_t eq_len;
} col_t;

typedef struct {
	char *table;             /* owned */
	char *column;            /* the candidate's column holding its key */
} join_t;

typedef struct {
	float score;
	uint32_t idx;
} ranked_t;

struct st_recommend {
	st_scorer_t *scorer;
	size_t nf;
	char *table, *user_table;
	join_t joins[JOINS_MAX];
	int njoins;
	col_t *cols;             /* nf */
	size_t *ucols;           /* columns of the user: vector and USER */
	size_t nucols;
	size_t max;
	st_temporal_reader_t *reader;
	/* The candidates, as of the change counters of the catalogue and
	 * the joined tables (catalogue first) in the state env. */
	MDB_env *env;
	uint64_t changes[1 + JOINS_MAX];
	int cached;
	int too_many;            /* the cached answer: over the limit */
	uint64_t builds;         /* attempted, failed ones included */
	double build_seconds;
	size_t items;            /* at the last build: max + 1 when over */
	size_t ncand;
	char *keys;              /* candidate keys, back to back */
	size_t keys_len, keys_cap;
	size_t *key_off;         /* ncand + 1 offsets into keys */
	float *cand;             /* ncand * nf: ITEM and JOIN columns */
	size_t cand_cap;         /* candidates the arrays hold */
	/* A request's buffers. */
	float *urow;             /* nf: the user's columns */
	float *rows, *scores;
	ranked_t *ranked;
	size_t rows_cap;
	st_recommend_item_t *out;
	size_t out_cap;
	int err;                 /* first error inside a scan callback */
	char *errstr;
	size_t errstr_size;
};

/* ---- values ---------------------------------------------------------- */

static float value_number(const st_value_t *v)
{
	char buf[NUMBER_MAX], *end;
	double d;

	switch (v->type) {
	case ST_VAL_INT:
		return (float)v->i;
	case ST_VAL_DOUBLE:
		return (float)v->d;
	case ST_VAL_BOOL:
		return v->i ? 1.0f : 0.0f;
	case ST_VAL_STRING:
		if (v->len == 0 || v->len >= sizeof(buf))
			return NAN;
		memcpy(buf, v->s, v->len);
		buf[v->len] = '\0';
		d = strtod(buf, &end);
		return *end ? NAN : (float)d;
	default:
		return NAN;
	}
}

static float value_equals(const st_value_t *v, const char *text, size_t len)
{
	char buf[32];
	size_t n;

	switch (v->type) {
	case ST_VAL_STRING:
		return v->len == len && !memcmp(v->s, text, len) ? 1.0f : 0.0f;
	case ST_VAL_INT:
		n = st_features_format_int(v->i, buf, sizeof(buf));
		break;
	case ST_VAL_BOOL:
		n = (size_t)snprintf(buf, sizeof(buf), "%s",
				     v->i ? "true" : "false");
		break;
	default:
		return NAN;
	}
	return n == len && !memcmp(buf, text, len) ? 1.0f : 0.0f;
}

/* Sets the columns of source src (join j) of `out` from a row (NULL: no
 * row, every such column NaN). Returns 0 or ST_EPARSE. */
static int fill_from_row(const st_recommend_t *r, src_t src, int j,
			 const uint8_t *row, size_t len, float *out)
{
	st_value_t v;
	int rc;

	for (size_t i = 0; i < r->nf; i++) {
		const col_t *c = &r->cols[i];

		if (c->src != src || (src == SRC_JOIN && c->join != j))
			continue;
		out[i] = NAN;
		if (!row)
			continue;
		rc = st_row_get(row, len, c->column, &v);
		if (rc == ST_ENOENT)
			continue;
		if (rc)
			return rc;
		out[i] = c->eq ? value_equals(&v, c->eq, c->eq_len) :
				 value_number(&v);
	}
	return 0;
}

/* ---- configuration ---------------------------------------------------- */

static int parse_joins(st_recommend_t *r, const char *spec,
		       char *errstr, size_t errstr_size)
{
	const char *p = *spec ? spec : NULL, *comma, *colon;

	while (p) {
		join_t *j;
		size_t len;

		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		colon = memchr(p, ':', len);
		if (!colon || colon == p || colon == p + len - 1)
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "recommend.joins: '%.*s' is not "
					 "TABLE:COLUMN", (int)len, p);
		if (r->njoins == JOINS_MAX)
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "recommend.joins: more than %d "
					 "tables", JOINS_MAX);
		j = &r->joins[r->njoins];
		j->table = strndup(p, (size_t)(colon - p));
		j->column = strndup(colon + 1, len - (size_t)(colon - p) - 1);
		r->njoins++;
		if (!j->table || !j->column)
			return ST_ENOMEM;     /* errstr: st_recommend_new() */
		if (!strcmp(j->table, r->table) ||
		    !strcmp(j->table, r->user_table))
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "recommend.joins: %s is also "
					 "recommend.%s", j->table,
					 !strcmp(j->table, r->table) ?
					 "table" : "user.table");
		for (int k = 0; k < r->njoins - 1; k++)
			if (!strcmp(r->joins[k].table, j->table))
				return st_seterr(errstr, errstr_size,
						 ST_EINVAL, "recommend.joins: "
						 "%s twice", j->table);
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

/* Whether name's first tlen bytes are the table's name. */
static int is_table(const char *name, size_t tlen, const char *table)
{
	return strlen(table) == tlen && !memcmp(name, table, tlen);
}

/* Reads feature name i into its column source. */
static int parse_column(st_recommend_t *r, size_t i, const char *model,
			char *errstr, size_t errstr_size)
{
	const char *name = st_scorer_feature(r->scorer, i), *dot, *col, *eq;
	col_t *c = &r->cols[i];
	size_t tlen;

	c->src = SRC_VECTOR;
	dot = strchr(name, '.');
	if (!dot)
		return 0;
	tlen = (size_t)(dot - name);
	if (is_table(name, tlen, r->table)) {
		c->src = SRC_ITEM;
	} else if (is_table(name, tlen, r->user_table)) {
		c->src = SRC_USER;
	} else {
		for (int j = 0; j < r->njoins; j++)
			if (is_table(name, tlen, r->joins[j].table)) {
				c->src = SRC_JOIN;
				c->join = j;
			}
		if (c->src == SRC_VECTOR)  /* feature names have no dots */
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "recommend.model %s: feature '%s' "
					 "names table %.*s, which is not "
					 "recommend.table, recommend.user.table "
					 "or in recommend.joins", model, name,
					 (int)tlen, name);
	}
	col = dot + 1;
	eq = strchr(col, '=');
	c->column = eq ? strndup(col, (size_t)(eq - col)) : strdup(col);
	if (!c->column)
		return ST_ENOMEM;             /* errstr: st_recommend_new() */
	if (!*c->column)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "recommend.model %s: feature '%s' names no "
				 "column", model, name);
	if (eq) {
		c->eq_len = strlen(eq + 1);
		if (!(c->eq = strdup(eq + 1)))
			return ST_ENOMEM;     /* errstr: st_recommend_new() */
	}
	return 0;
}

int st_recommend_new(st_recommend_t **rp, st_state_t *st,
		     const st_recommend_conf_t *conf, char *errstr,
		     size_t errstr_size)
{
	st_recommend_t *r;
	int err;

	*rp = NULL;
	if (!conf->model || !*conf->model)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "recommend.model is not set");
	if (!conf->table || !*conf->table || !conf->user_table ||
	    !*conf->user_table)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "recommend.table and recommend.user.table "
				 "must name tables");
	if (!strcmp(conf->table, conf->user_table))
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "recommend.table and recommend.user.table "
				 "are both %s", conf->table);
	if (conf->candidates_max < 1 || conf->candidates_max > UINT32_MAX)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "recommend.candidates.max out of range");
	if (!(r = calloc(1, sizeof(*r))))
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "recommend: out of memory");
	r->max = conf->candidates_max;
	err = ST_ENOMEM;
	if (!(r->table = strdup(conf->table)) ||
	    !(r->user_table = strdup(conf->user_table)) ||
	    !(r->reader = st_temporal_reader_new(st)))
		goto out;
	if (conf->joins &&
	    (err = parse_joins(r, conf->joins, errstr, errstr_size)))
		goto out;
	if ((err = st_scorer_new(&r->scorer, conf->model, 1, errstr,
				 errstr_size))) {
		/* errstr says "model PATH: ..." */
		char why[512];

		snprintf(why, sizeof(why), "%s", errstr);
		st_seterr(errstr, errstr_size, err, "recommend.%s", why);
		goto out;
	}
	r->nf = st_scorer_nfeatures(r->scorer);
	if (!st_scorer_feature(r->scorer, 0)) {
		err = st_seterr(errstr, errstr_size, ST_EMODEL,
				"recommend.model %s: no feature names "
				"(metadata %s): RECOMMEND cannot build rows",
				conf->model, ST_SCORER_META_FEATURES);
		goto out;
	}
	err = ST_ENOMEM;
	if (!(r->cols = calloc(r->nf, sizeof(*r->cols))) ||
	    !(r->ucols = calloc(r->nf, sizeof(*r->ucols))) ||
	    !(r->urow = calloc(r->nf, sizeof(float))) ||
	    !(r->key_off = calloc(1, sizeof(*r->key_off))) ||
	    !(r->keys = malloc(4096)))
		goto out;
	r->keys_cap = 4096;
	for (size_t i = 0; i < r->nf; i++) {
		if ((err = parse_column(r, i, conf->model, errstr,
					errstr_size)))
			goto out;
		if (r->cols[i].src == SRC_VECTOR || r->cols[i].src == SRC_USER)
			r->ucols[r->nucols++] = i;
	}
	err = 0;
	*rp = r;
out:
	if (err == ST_ENOMEM)
		st_seterr(errstr, errstr_size, err, "recommend: out of memory");
	if (err)
		st_recommend_destroy(r);
	return err;
}

void st_recommend_stats(const st_recommend_t *r, st_recommend_stats_t *out)
{
	out->items = r->items;
	out->builds = r->builds;
	out->build_seconds = r->build_seconds;
}

void st_recommend_destroy(st_recommend_t *r)
{
	if (!r)
		return;
	st_scorer_destroy(r->scorer);
	st_temporal_reader_free(r->reader);
	for (int j = 0; j < r->njoins; j++) {
		free(r->joins[j].table);
		free(r->joins[j].column);
	}
	for (size_t i = 0; r->cols && i < r->nf; i++) {
		free(r->cols[i].column);
		free(r->cols[i].eq);
	}
	free(r->cols);
	free(r->ucols);
	free(r->table);
	free(r->user_table);
	free(r->keys);
	free(r->key_off);
	free(r->cand);
	free(r->urow);
	free(r->rows);
	free(r->scores);
	free(r->ranked);
	free(r->out);
	free(r);
}

/* ---- the candidates -------------------------------------------------- */

static int grow_candidates(st_recommend_t *r, size_t key_len)
{
	if (r->ncand == r->cand_cap) {
		size_t cap = r->cand_cap ? r->cand_cap * 2 : 256;
		size_t *off;
		float *cand;

		if (cap > r->max)
			cap = r->max;
		off = realloc(r->key_off, (cap + 1) * sizeof(*off));
		if (!off)
			return ST_ENOMEM;
		r->key_off = off;
		cand = realloc(r->cand, cap * r->nf * sizeof(float));
		if (!cand)
			return ST_ENOMEM;
		r->cand = cand;
		r->cand_cap = cap;
	}
	if (r->keys_len + key_len > r->keys_cap) {
		size_t cap = r->keys_cap;
		char *k;

		while (cap < r->keys_len + key_len)
			cap *= 2;
		if (!(k = realloc(r->keys, cap)))
			return ST_ENOMEM;
		r->keys = k;
		r->keys_cap = cap;
	}
	return 0;
}

/* The key of join j's row: the candidate's column as a key's text
 * (st_features_key_text()); 0 when there is none. */
static size_t join_key(const join_t *j, const uint8_t *row, size_t len,
		       char *buf, size_t size, const char **key)
{
	st_value_t v;

	if (st_row_get(row, len, j->column, &v))
		return 0;
	return st_features_key_text(&v, buf, size, key);
}

static int too_many(st_recommend_t *r)
{
	return st_seterr(r->errstr, r->errstr_size, ST_ERANGE, "RECOMMEND: %s "
			 "has more than %zu rows (recommend.candidates.max)",
			 r->table, r->max);
}

static int add_candidate(const char *key, size_t key_len, const uint8_t *row,
			 size_t row_len, void *opaque)
{
	st_recommend_t *r = opaque;
	const uint8_t *jrow;
	const char *jkey;
	char kbuf[40];
	size_t jrow_len, jlen;
	float *cand;
	int err;

	if (r->ncand == r->max)
		return r->err = too_many(r);
	if ((err = grow_candidates(r, key_len)))
		return r->err = st_seterr(r->errstr, r->errstr_size, err,
					  "RECOMMEND: out of memory for %zu "
					  "candidates", r->ncand + 1);
	cand = r->cand + r->ncand * r->nf;
	for (size_t i = 0; i < r->nf; i++)
		cand[i] = NAN;
	if ((err = fill_from_row(r, SRC_ITEM, 0, row, row_len, cand)))
		goto corrupt;
	for (int j = 0; j < r->njoins; j++) {
		jlen = join_key(&r->joins[j], row, row_len, kbuf, sizeof(kbuf),
				&jkey);
		err = jlen ? st_temporal_lookup(r->reader, SLOT_JOIN0 + j,
						r->joins[j].table, jkey, jlen,
						INT64_MAX, &jrow, &jrow_len) :
			     ST_ENOENT;
		if (err == ST_ENOENT || err == ST_EINVAL)
			err = fill_from_row(r, SRC_JOIN, j, NULL, 0, cand);
		else if (!err)
			err = fill_from_row(r, SRC_JOIN, j, jrow, jrow_len,
					    cand);
		if (err)
			goto corrupt;
	}
	memcpy(r->keys + r->keys_len, key, key_len);
	r->keys_len += key_len;
	r->ncand++;
	r->key_off[r->ncand] = r->keys_len;
	return 0;
corrupt:
	return r->err = st_seterr(r->errstr, r->errstr_size, err,
				  "RECOMMEND: cannot read %s %.*s: %s",
				  r->table, (int)(key_len > 64 ? 64 : key_len),
				  key, st_strerror(err));
}

/* Makes the candidates those of txn's snapshot: rebuilt only when the
 * catalogue or a joined table changed since they were built. */
static int load_candidates(st_recommend_t *r, MDB_txn *txn)
{
	uint64_t changes[1 + JOINS_MAX];
	MDB_env *env = mdb_txn_env(txn);
	struct timespec t0, t1;
	int err;

	err = st_temporal_changes(r->reader, r->table, &changes[0]);
	for (int j = 0; !err && j < r->njoins; j++)
		err = st_temporal_changes(r->reader, r->joins[j].table,
					  &changes[1 + j]);
	if (err)
		return st_seterr(r->errstr, r->errstr_size, err,
				 "RECOMMEND: cannot read the state: %s",
				 st_strerror(err));
	if (r->cached && r->env == env &&
	    !memcmp(changes, r->changes,
		    (size_t)(1 + r->njoins) * sizeof(changes[0])))
		return r->too_many ? too_many(r) : 0;
	r->cached = 0;
	r->too_many = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r->ncand = 0;
	r->keys_len = 0;
	r->key_off[0] = 0;
	r->err = 0;
	err = st_temporal_scan(r->reader, SLOT_SCAN, r->table, INT64_MAX,
			       add_candidate, r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->builds++;
	r->build_seconds = (double)(t1.tv_sec - t0.tv_sec) +
			   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	r->items = r->ncand;
	if (err) {
		r->ncand = 0;
		if (!r->err)
			st_seterr(r->errstr, r->errstr_size, err,
				  "RECOMMEND: cannot read %s: %s", r->table,
				  st_strerror(err));
		if (err != ST_ERANGE)
			return err;
		r->items = r->max + 1;
		r->too_many = 1;   /* answered so until the tables change */
	}
	r->cached = 1;
	r->env = env;
	memcpy(r->changes, changes, sizeof(changes));
	return err;
}

/* ---- a request -------------------------------------------------------- */

static int by_score(const void *a, const void *b)
{
	const ranked_t *x = a, *y = b;
	int xn = isnan(x->score), yn = isnan(y->score);

	if (xn != yn)
		return xn - yn;                /* NaN last */
	if (!xn && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sifts h[i] down the heap h[0..n) whose root ranks last. */
static void sift_down(ranked_t *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, worst = i;
		ranked_t t;

		if (l < n && by_score(&h[l], &h[worst]) > 0)
			worst = l;
		if (l + 1 < n && by_score(&h[l + 1], &h[worst]) > 0)
			worst = l + 1;
		if (worst == i)
			return;
		t = h[i];
		h[i] = h[worst];
		h[worst] = t;
		i = worst;
	}
}

/* Puts the best count of the n scores in ranked[0..count), best first:
 * a heap of the best so far (the worst of them on top) over the scores,
 * O(n log count), then a sort of those. */
static void select_best(st_recommend_t *r, size_t n, size_t count)
{
	ranked_t *h = r->ranked, x;

	for (size_t c = 0; c < count; c++) {
		h[c].score = r->scores[c];
		h[c].idx = (uint32_t)c;
	}
	for (size_t i = count / 2; i-- > 0;)
		sift_down(h, count, i);
	for (size_t c = count; c < n; c++) {
		x.score = r->scores[c];
		x.idx = (uint32_t)c;
		if (by_score(&x, &h[0]) < 0) {
			h[0] = x;
			sift_down(h, count, 0);
		}
	}
	qsort(h, count, sizeof(*h), by_score);
}

static int grow_rows(st_recommend_t *r, size_t n, size_t count)
{
	if (n > r->rows_cap) {
		float *rows = realloc(r->rows, n * r->nf * sizeof(float));
		float *scores;
		ranked_t *ranked;

		if (!rows)
			return ST_ENOMEM;
		r->rows = rows;
		if (!(scores = realloc(r->scores, n * sizeof(float))))
			return ST_ENOMEM;
		r->scores = scores;
		if (!(ranked = realloc(r->ranked, n * sizeof(*ranked))))
			return ST_ENOMEM;
		r->ranked = ranked;
		r->rows_cap = n;
	}
	if (count > r->out_cap) {
		st_recommend_item_t *o = realloc(r->out, count * sizeof(*o));

		if (!o)
			return ST_ENOMEM;
		r->out = o;
		r->out_cap = count;
	}
	return 0;
}

int st_recommend_rank(st_recommend_t *r, MDB_txn *txn, const char *user,
		      size_t user_len, size_t nfields,
		      const char *const *names, const char *const *values,
		      size_t count, const st_recommend_item_t **out,
		      size_t *nout, int *found, char *errstr,
		      size_t errstr_size)
{
	const uint8_t *urow;
	size_t urow_len, n;
	int err;

	*out = NULL;
	*nout = 0;
	*found = 0;
	if (errstr_size)
		errstr[0] = '\0';
	r->errstr = errstr;
	r->errstr_size = errstr_size;
	if ((err = st_temporal_reader_bind(r->reader, txn)))
		return st_seterr(errstr, errstr_size, err, "RECOMMEND: cannot "
				 "read the state: %s", st_strerror(err));
	/* The user's columns: the vector's fields, then the user's row. */
	for (size_t i = 0; i < r->nf; i++)
		r->urow[i] = NAN;
	if (nfields && st_scorer_row_from_fields(r->scorer, nfields, names,
						 values, r->urow) < 0)
		return st_seterr(errstr, errstr_size, ST_EMODEL,
				 "RECOMMEND: the model has no feature names");
	err = st_temporal_lookup(r->reader, SLOT_USER, r->user_table, user,
				 user_len, INT64_MAX, &urow, &urow_len);
	if (err && err != ST_ENOENT && err != ST_EINVAL)
		return st_seterr(errstr, errstr_size, err, "RECOMMEND: cannot "
				 "read %s %.*s: %s", r->user_table,
				 (int)(user_len > 64 ? 64 : user_len), user,
				 st_strerror(err));
	*found = !err;
	if ((err = fill_from_row(r, SRC_USER, 0, *found ? urow : NULL,
				 *found ? urow_len : 0, r->urow)))
		return st_seterr(errstr, errstr_size, err, "RECOMMEND: cannot "
				 "read %s %.*s: %s", r->user_table,
				 (int)(user_len > 64 ? 64 : user_len), user,
				 st_strerror(err));
	if (!*found && !nfields)
		return 0;          /* no such user: nothing to rank for */
	if ((err = load_candidates(r, txn)))
		return err;
	n = r->ncand;
	if (!n || !count)
		return 0;
	if (count > n)
		count = n;
	if ((err = grow_rows(r, n, count)))
		return st_seterr(errstr, errstr_size, err, "RECOMMEND: out of "
				 "memory for %zu rows", n);
	memcpy(r->rows, r->cand, n * r->nf * sizeof(float));
	for (size_t c = 0; c < n; c++) {
		float *row = r->rows + c * r->nf;

		for (size_t k = 0; k < r->nucols; k++)
			row[r->ucols[k]] = r->urow[r->ucols[k]];
	}
	if ((err = st_scorer_score(r->scorer, r->rows, n, r->scores, errstr,
				   errstr_size)))
		return err;
	select_best(r, n, count);
	for (size_t k = 0; k < count; k++) {
		size_t c = r->ranked[k].idx;

		r->out[k].item = r->keys + r->key_off[c];
		r->out[k].item_len = r->key_off[c + 1] - r->key_off[c];
		r->out[k].score = r->ranked[k].score;
	}
	*out = r->out;
	*nout = count;
	return 0;
}
