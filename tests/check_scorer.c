/* check_scorer.c -- the embedded ONNX scorer against onnxruntime (Python):
 * the example fraud model's reference rows at several batch sizes, NaN
 * rows, single-output models, refused models, rows built from Redis
 * fields. The models and references are in tests/data (regenerate them
 * with tests/data/make_models.py). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "scorer.h"

#define NF 14                  /* features of the example model */
#define NREF 64                /* reference rows */
#define TOL 1e-6

typedef struct {
	float rows[NREF][NF];
	float p1[NREF];        /* P(fraud) by onnxruntime (Python) */
	size_t n;
	json_t *json;
} ref_t;

static const char *data_path(const char *name)
{
	static char path[1024];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/tests/data/%s", top ? top : ".",
		 name);
	return path;
}

static st_scorer_t *load(const char *name)
{
	char errstr[512];
	st_scorer_t *s = NULL;
	int err = st_scorer_new(&s, data_path(name), 0, errstr,
				sizeof(errstr));

	ck_assert_msg(err == 0, "%s: %s", name, errstr);
	return s;
}

/* Reads rows and probabilities[][1] of a reference file; null is NaN. */
static void ref_load(const char *name, ref_t *r)
{
	json_error_t jerr;
	json_t *rows, *proba;

	memset(r, 0, sizeof(*r));
	r->json = json_load_file(data_path(name), 0, &jerr);
	ck_assert_msg(r->json, "%s: %s", name, jerr.text);
	rows = json_object_get(r->json, "rows");
	proba = json_object_get(r->json, "probabilities");
	r->n = json_array_size(rows);
	ck_assert_uint_gt(r->n, 0);
	ck_assert_uint_le(r->n, NREF);
	ck_assert_uint_eq(json_array_size(proba), r->n);
	for (size_t i = 0; i < r->n; i++) {
		json_t *row = json_array_get(rows, i);

		ck_assert_uint_eq(json_array_size(row), NF);
		for (size_t j = 0; j < NF; j++) {
			json_t *v = json_array_get(row, j);

			r->rows[i][j] = json_is_null(v) ? NAN :
					(float)json_number_value(v);
		}
		r->p1[i] = (float)json_number_value(
			json_array_get(json_array_get(proba, i), 1));
	}
}

/* Scores the reference rows in batches of `batch` and compares. */
static void score_in_batches(st_scorer_t *s, const ref_t *r, size_t batch)
{
	float scores[NREF];
	char errstr[512];

	for (size_t i = 0; i < r->n; i += batch) {
		size_t n = r->n - i < batch ? r->n - i : batch;

		ck_assert_msg(st_scorer_score(s, &r->rows[i][0], n,
					      scores + i, errstr,
					      sizeof(errstr)) == 0, "%s",
			      errstr);
	}
	for (size_t i = 0; i < r->n; i++)
		ck_assert_msg(fabs((double)scores[i] - r->p1[i]) <= TOL,
			      "batch %zu row %zu: %.9g, python %.9g", batch,
			      i, scores[i], r->p1[i]);
}

START_TEST(reference_rows)
{
	static const size_t batches[] = { 1, 7, 64, 2, 3, 5, 64, 1, 7 };
	st_scorer_t *s = load("fraud_model.onnx");
	json_t *names;
	ref_t r;

	ref_load("fraud_model.json", &r);
	ck_assert_uint_eq(r.n, NREF);
	ck_assert_uint_eq(st_scorer_nfeatures(s), NF);
	ck_assert_str_eq(st_scorer_input_name(s), "features");
	ck_assert_str_eq(st_scorer_output_name(s), "probabilities");
	names = json_object_get(r.json, "features");
	for (size_t j = 0; j < NF; j++)
		ck_assert_str_eq(st_scorer_feature(s, j),
				 json_string_value(json_array_get(names, j)));
	ck_assert_ptr_null(st_scorer_feature(s, NF));
	/* More distinct sizes than the scorer keeps tensors for: evicted
	 * shapes are made again and give the same scores. */
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++)
		score_in_batches(s, &r, batches[b]);
	json_decref(r.json);
	st_scorer_destroy(s);
}
END_TEST

START_TEST(batches_beyond_max)
{
	size_t n = 2 * ST_SCORER_BATCH_MAX + 37;
	float *rows = malloc(n * NF * sizeof(float));
	float *scores = malloc(n * sizeof(float));
	st_scorer_t *s = load("fraud_model.onnx");
	char errstr[512];
	ref_t r;

	ck_assert_ptr_nonnull(rows);
	ck_assert_ptr_nonnull(scores);
	ref_load("fraud_model.json", &r);
	for (size_t i = 0; i < n; i++)
		memcpy(rows + i * NF, r.rows[i % NREF], sizeof(r.rows[0]));
	ck_assert_msg(st_scorer_score(s, rows, n, scores, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fabs((double)scores[i] - r.p1[i % NREF]) <= TOL,
			      "row %zu: %.9g, python %.9g", i, scores[i],
			      r.p1[i % NREF]);
	json_decref(r.json);
	st_scorer_destroy(s);
	free(rows);
	free(scores);
}
END_TEST

START_TEST(nan_rows)
{
	st_scorer_t *s = load("fraud_model.onnx");
	ref_t r;

	ref_load("fraud_nan.json", &r);
	ck_assert(isnan(r.rows[3][0]) && isnan(r.rows[3][NF - 1]));
	score_in_batches(s, &r, 1);
	score_in_batches(s, &r, r.n);
	json_decref(r.json);
	st_scorer_destroy(s);
}
END_TEST

/* Reference row i as Redis would hold it: "%.9g" reads back exactly. */
static void fields_of(st_scorer_t *s, const ref_t *r, size_t i,
		      char text[][32], const char **names,
		      const char **values)
{
	for (size_t j = 0; j < NF; j++) {
		size_t k = NF - 1 - j;      /* any order */

		snprintf(text[k], 32, "%.9g", r->rows[i][j]);
		names[k] = st_scorer_feature(s, j);
		values[k] = text[k];
	}
	names[NF] = "_event_time";
	values[NF] = "1700000000000";
	names[NF + 1] = "_seq";
	values[NF + 1] = "12345";
	names[NF + 2] = "user_segment";   /* a string feature of no use */
	values[NF + 2] = "gold";
}

START_TEST(row_from_redis_fields)
{
	st_scorer_t *s = load("fraud_model.onnx");
	const char *names[NF + 3], *values[NF + 3];
	char text[NF][32], errstr[512];
	float row[NF], score;
	ref_t r;

	ref_load("fraud_model.json", &r);
	fields_of(s, &r, 5, text, names, values);
	ck_assert_int_eq(st_scorer_row_from_fields(s, NF + 3, names, values,
						   row), NF);
	ck_assert_int_eq(memcmp(row, r.rows[5], sizeof(row)), 0);
	ck_assert_int_eq(st_scorer_score(s, row, 1, &score, errstr,
					 sizeof(errstr)), 0);
	ck_assert(fabs((double)score - r.p1[5]) <= TOL);

	/* An empty hash: every feature missing, still scored. */
	ck_assert_int_eq(st_scorer_row_from_fields(s, 0, NULL, NULL, row),
			 0);
	for (size_t j = 0; j < NF; j++)
		ck_assert(isnan(row[j]));
	ck_assert_int_eq(st_scorer_score(s, row, 1, &score, errstr,
					 sizeof(errstr)), 0);
	ck_assert(score >= 0 && score <= 1);
	json_decref(r.json);
	st_scorer_destroy(s);
}
END_TEST

/* Missing and garbage values are NaN, like the missing features of
 * fraud_nan.json, and score like them. */
START_TEST(row_from_bad_fields)
{
	static const char *const garbage[] = {
		"", "abc", "12x", " ", "1.5.2", "0x", "--1"
	};
	st_scorer_t *s = load("fraud_model.onnx");
	const char *names[NF + 3], *values[NF + 3];
	char text[NF][32], errstr[512];
	float row[NF], score;
	ref_t r, nan;

	ref_load("fraud_model.json", &r);
	ref_load("fraud_nan.json", &nan);
	/* fraud_nan row 0 is reference row 0 without txn_count_1h. */
	fields_of(s, &r, 0, text, names, values);
	for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++) {
		values[NF - 1] = garbage[g];    /* column 0 */
		ck_assert_int_eq(st_scorer_row_from_fields(s, NF + 3, names,
							   values, row),
				 NF - 1);
		ck_assert_msg(isnan(row[0]), "'%s' -> %g", garbage[g],
			      row[0]);
		ck_assert_int_eq(st_scorer_score(s, row, 1, &score, errstr,
						 sizeof(errstr)), 0);
		ck_assert(fabs((double)score - nan.p1[0]) <= TOL);
	}
	values[NF - 1] = NULL;
	ck_assert_int_eq(st_scorer_row_from_fields(s, NF + 3, names, values,
						   row), NF - 1);
	ck_assert(isnan(row[0]));
	/* Absent: fraud_nan row 1 is reference row 1 without amount. */
	fields_of(s, &r, 1, text, names, values);
	ck_assert_str_eq(names[0], "amount");
	ck_assert_int_eq(st_scorer_row_from_fields(s, NF + 2, names + 1,
						   values + 1, row), NF - 1);
	ck_assert(isnan(row[NF - 1]));
	ck_assert_int_eq(st_scorer_score(s, row, 1, &score, errstr,
					 sizeof(errstr)), 0);
	ck_assert(fabs((double)score - nan.p1[1]) <= TOL);
	/* Numbers in other spellings; the last of two fields counts. */
	names[1] = "txn_count_1h";
	values[1] = " 3e0";
	names[2] = "txn_count_1h";
	values[2] = "4";
	names[3] = "merchant_risk_score";
	values[3] = "1e39";
	names[4] = "amount";
	values[4] = "-inf";
	st_scorer_row_from_fields(s, 5, names, values, row);
	ck_assert(row[0] == 4.0f);
	ck_assert(isinf(row[11]) && row[11] > 0);
	ck_assert(isinf(row[13]) && row[13] < 0);
	ck_assert(isnan(row[1]));
	json_decref(r.json);
	json_decref(nan.json);
	st_scorer_destroy(s);
}
END_TEST

/* Values are read as (float)strtod() reads them, whatever the spelling
 * (row_from_fields has a fast path for plain decimals). */
START_TEST(values_as_strtod)
{
	static const char *const fmts[] = {
		"%.9g", "%.17g", "%.3f", "%.12f", "%.0f", "%g", "%.25f"
	};
	enum { NFMTS = sizeof(fmts) / sizeof(fmts[0]) };
	st_scorer_t *s = load("score_n1.onnx");
	const char *names[3] = { "a", "b", "c" }, *values[3];
	char text[3][64];
	uint64_t x = 88172645463325252ULL;
	float row[3];

	for (int i = 0; i < 100000; i++) {
		for (int k = 0; k < 3; k++) {
			double v;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			v = ldexp((double)(x >> 11), (int)(x % 90) - 80);
			if (x & (1u << 20))
				v = -v;
			snprintf(text[k], sizeof(text[k]),
				 fmts[(x >> 24) % NFMTS],
				 (x & (1u << 21)) ? (double)(float)v : v);
			values[k] = text[k];
		}
		/* Check writes a record for every assertion: test first. */
		if (st_scorer_row_from_fields(s, 3, names, values, row) != 3)
			ck_abort_msg("'%s' '%s' '%s': not 3 numbers", text[0],
				     text[1], text[2]);
		for (int k = 0; k < 3; k++) {
			float want = (float)strtod(text[k], NULL);

			if (memcmp(&row[k], &want, sizeof(want)))
				ck_abort_msg("'%s': %a, strtod %a", text[k],
					     row[k], want);
		}
	}
	st_scorer_destroy(s);
}
END_TEST

START_TEST(single_output_models)
{
	static const float x[4][3] = {
		{ 0, 0, 0 }, { 1, 2, 3 }, { -1.5f, 0.25f, 4 }, { 10, -3, 0.5f }
	};
	st_scorer_t *n1 = load("score_n1.onnx"), *n = load("score_n.onnx");
	const char *names[] = { "c", "a", "b" }, *values[] = { "3", "1", "2" };
	float scores[4], row[3];
	char errstr[512];

	ck_assert_str_eq(st_scorer_output_name(n1), "score");
	ck_assert_str_eq(st_scorer_feature(n1, 1), "b");
	ck_assert_int_eq(st_scorer_score(n1, &x[0][0], 4, scores, errstr,
					 sizeof(errstr)), 0);
	for (size_t i = 0; i < 4; i++) {
		double z = 0.5 * x[i][0] - 1.25 * x[i][1] + 2.0 * x[i][2] + 0.1;

		ck_assert(fabs(scores[i] - 1.0 / (1.0 + exp(-z))) <= TOL);
	}
	ck_assert_int_eq(st_scorer_row_from_fields(n1, 3, names, values,
						   row), 3);
	ck_assert(row[0] == 1 && row[1] == 2 && row[2] == 3);

	ck_assert_str_eq(st_scorer_output_name(n), "total");
	ck_assert_uint_eq(st_scorer_nfeatures(n), 3);
	ck_assert_ptr_null(st_scorer_feature(n, 0));
	ck_assert_int_eq(st_scorer_row_from_fields(n, 3, names, values, row),
			 ST_EINVAL);
	ck_assert_int_eq(st_scorer_score(n, &x[0][0], 4, scores, errstr,
					 sizeof(errstr)), 0);
	for (size_t i = 0; i < 4; i++)
		ck_assert(fabs(scores[i] - (x[i][0] + 2.0 * x[i][1] +
					    3.0 * x[i][2])) <= 1e-5);
	ck_assert_int_eq(st_scorer_score(n, &x[0][0], 0, scores, errstr,
					 sizeof(errstr)), ST_EINVAL);
	st_scorer_destroy(n1);
	st_scorer_destroy(n);
}
END_TEST

static const struct {
	const char *file, *msg;
} bad[] = {
	{ "no_such_model.onnx", "no_such_model.onnx: No such file" },
	{ "bad_input_int64.onnx",
	  "input 'features' is int64 [?, 3], not a float32 tensor [N, F]" },
	{ "bad_input_rank.onnx",
	  "input 'features' is float32 [?], not a float32 tensor" },
	{ "bad_output.onnx", "no output to read a score from" },
	{ "bad_meta.onnx", "strata.features names 2 features, input "
			   "'features' has 3 columns" },
	{ "zipmap.onnx", "'output_probability' a sequence (a ZipMap" },
	{ "fraud_model.json", "fraud_model.json: cannot load: " },
	{ "", "model " },              /* the data directory itself */
};

START_TEST(bad_models)
{
	st_scorer_t *s = (st_scorer_t *)&s;
	char errstr[512];

	ck_assert_int_eq(st_scorer_new(&s, data_path(bad[_i].file), 1,
				       errstr, sizeof(errstr)), ST_EMODEL);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errstr, bad[_i].msg), "'%s' lacks '%s'", errstr,
		      bad[_i].msg);
	ck_assert_msg(strstr(errstr, data_path(bad[_i].file)),
		      "'%s' does not name the model", errstr);
}
END_TEST

/* The shared environment goes with the last scorer and comes back with
 * the next one. */
START_TEST(environment_refcount)
{
	st_scorer_t *a = load("fraud_model.onnx"), *b = load("score_n.onnx");
	float x[3] = { 1, 1, 1 }, score;
	char errstr[512];

	st_scorer_destroy(b);
	ck_assert_int_eq(st_scorer_score(a, x, 0, &score, errstr,
					 sizeof(errstr)), ST_EINVAL);
	st_scorer_destroy(a);
	st_scorer_destroy(NULL);
	b = load("score_n.onnx");
	ck_assert_int_eq(st_scorer_score(b, x, 1, &score, errstr,
					 sizeof(errstr)), 0);
	ck_assert(score == 6.0f);
	st_scorer_destroy(b);
}
END_TEST

/* One scorer per thread, made and destroyed concurrently (the shared
 * environment comes and goes under its lock). */
#define THREADS 4

typedef struct {
	const ref_t *r;
	const char *path;
	int bad;               /* scores off, or an error */
} job_t;

static void *score_job(void *arg)
{
	job_t *j = arg;
	char errstr[512];

	for (int k = 0; k < 20; k++) {
		float scores[NREF];
		st_scorer_t *s;

		if (st_scorer_new(&s, j->path, 1, errstr, sizeof(errstr))) {
			j->bad++;
			continue;
		}
		for (size_t i = 0; i < NREF; i += 8)
			j->bad += st_scorer_score(s, &j->r->rows[i][0], 8,
						  scores + i, errstr,
						  sizeof(errstr)) != 0;
		for (size_t i = 0; i < NREF; i++)
			j->bad += fabs((double)scores[i] - j->r->p1[i]) > TOL;
		st_scorer_destroy(s);
	}
	return NULL;
}

START_TEST(scorer_per_thread)
{
	pthread_t t[THREADS];
	job_t jobs[THREADS];
	char path[1024];
	ref_t r;

	ref_load("fraud_model.json", &r);
	snprintf(path, sizeof(path), "%s", data_path("fraud_model.onnx"));
	for (int i = 0; i < THREADS; i++) {
		jobs[i].r = &r;
		jobs[i].path = path;
		jobs[i].bad = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, score_job,
						&jobs[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(jobs[i].bad, 0);
	}
	json_decref(r.json);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scorer");
	TCase *tc = tcase_create("scorer");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reference_rows);
	tcase_add_test(tc, batches_beyond_max);
	tcase_add_test(tc, nan_rows);
	tcase_add_test(tc, row_from_redis_fields);
	tcase_add_test(tc, row_from_bad_fields);
	tcase_add_test(tc, values_as_strtod);
	tcase_add_test(tc, single_output_models);
	tcase_add_loop_test(tc, bad_models, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, environment_refcount);
	tcase_add_test(tc, scorer_per_thread);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
