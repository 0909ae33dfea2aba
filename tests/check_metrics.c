/* check_metrics.c -- the Prometheus registry: exact exposition text for
 * every kind of family, escaping, number formatting, name validation,
 * and exact sums under concurrent updates, registration and scrapes. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "metrics.h"

static char *render(st_metrics_t *m)
{
	char *text;
	size_t len;

	ck_assert_int_eq(st_metrics_render(m, &text, &len), 0);
	ck_assert_uint_eq(len, strlen(text));
	return text;
}

static int fn_value(void *opaque, double *value)
{
	*value = *(const double *)opaque;
	return 0;
}

static int fn_fails(void *opaque, double *value)
{
	(void)opaque;
	(void)value;
	return ST_EAGAIN;
}

START_TEST(render_every_kind)
{
	static const double bounds[] = { 0.25, 0.5, 1 };
	static const double sizes[] = { 64, 1024 };
	double used = 1048576, coalesced = 7;
	st_metrics_t *m;
	st_metrics_family_t *dead, *lag, *flush, *empty;
	st_metrics_counter_t *events, *late, *decode;
	st_metrics_gauge_t *lag0, *lag1, *ratio;
	st_metrics_histogram_t *batch, *flush_a;
	char *text;
	const char *expected =
		"# HELP strata_events_in_total Transaction messages consumed.\n"
		"# TYPE strata_events_in_total counter\n"
		"strata_events_in_total 42\n"
		"# HELP strata_dead_letters_total Messages dead-lettered.\n"
		"# TYPE strata_dead_letters_total counter\n"
		"strata_dead_letters_total{reason=\"late\"} 3\n"
		"strata_dead_letters_total{reason=\"decode\"} 1\n"
		"# HELP strata_lag_records Records behind the high watermark.\n"
		"# TYPE strata_lag_records gauge\n"
		"strata_lag_records{topic=\"tx\",partition=\"0\"} 5\n"
		"strata_lag_records{topic=\"tx\",partition=\"1\"} -2\n"
		"# HELP strata_cache_hit_ratio Window cache hits per lookup.\n"
		"# TYPE strata_cache_hit_ratio gauge\n"
		"strata_cache_hit_ratio 0.25\n"
		"# HELP strata_state_map_used_bytes LMDB map in use.\n"
		"# TYPE strata_state_map_used_bytes gauge\n"
		"strata_state_map_used_bytes 1048576\n"
		"# HELP strata_redis_coalesced_total Writes coalesced.\n"
		"# TYPE strata_redis_coalesced_total counter\n"
		"strata_redis_coalesced_total 7\n"
		"# HELP strata_batch_seconds Time to process a batch.\n"
		"# TYPE strata_batch_seconds histogram\n"
		"strata_batch_seconds_bucket{le=\"0.25\"} 2\n"
		"strata_batch_seconds_bucket{le=\"0.5\"} 2\n"
		"strata_batch_seconds_bucket{le=\"1\"} 3\n"
		"strata_batch_seconds_bucket{le=\"+Inf\"} 4\n"
		"strata_batch_seconds_sum 4.125\n"
		"strata_batch_seconds_count 4\n"
		"# HELP strata_flush_bytes Bytes per Redis flush.\n"
		"# TYPE strata_flush_bytes histogram\n"
		"strata_flush_bytes_bucket{shard=\"a\",le=\"64\"} 0\n"
		"strata_flush_bytes_bucket{shard=\"a\",le=\"1024\"} 1\n"
		"strata_flush_bytes_bucket{shard=\"a\",le=\"+Inf\"} 1\n"
		"strata_flush_bytes_sum{shard=\"a\"} 100\n"
		"strata_flush_bytes_count{shard=\"a\"} 1\n"
		"strata_flush_bytes_bucket{shard=\"b\",le=\"64\"} 0\n"
		"strata_flush_bytes_bucket{shard=\"b\",le=\"1024\"} 0\n"
		"strata_flush_bytes_bucket{shard=\"b\",le=\"+Inf\"} 0\n"
		"strata_flush_bytes_sum{shard=\"b\"} 0\n"
		"strata_flush_bytes_count{shard=\"b\"} 0\n";

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_counter(m, "strata_events_in_total",
		"Transaction messages consumed.", &events), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_COUNTER,
		"strata_dead_letters_total", "Messages dead-lettered.",
		"reason", NULL, NULL, 0, &dead), 0);
	ck_assert_int_eq(st_metrics_counter_child(dead, "late", NULL, &late),
			 0);
	ck_assert_int_eq(st_metrics_counter_child(dead, "decode", NULL,
						  &decode), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_GAUGE,
		"strata_lag_records", "Records behind the high watermark.",
		"topic", "partition", NULL, 0, &lag), 0);
	ck_assert_int_eq(st_metrics_gauge_child(lag, "tx", "0", &lag0), 0);
	ck_assert_int_eq(st_metrics_gauge_child(lag, "tx", "1", &lag1), 0);
	ck_assert_int_eq(st_metrics_gauge_double(m, "strata_cache_hit_ratio",
		"Window cache hits per lookup.", &ratio), 0);
	ck_assert_int_eq(st_metrics_gauge_fn(m, "strata_state_map_used_bytes",
		"LMDB map in use.", fn_value, &used), 0);
	ck_assert_int_eq(st_metrics_gauge_fn(m, "strata_failing",
		"Left out: its callback fails.", fn_fails, NULL), 0);
	ck_assert_int_eq(st_metrics_counter_fn(m,
		"strata_redis_coalesced_total", "Writes coalesced.", fn_value,
		&coalesced), 0);
	ck_assert_int_eq(st_metrics_histogram(m, "strata_batch_seconds",
		"Time to process a batch.", bounds, 3, &batch), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_HISTOGRAM,
		"strata_flush_bytes", "Bytes per Redis flush.", "shard", NULL,
		sizes, 2, &flush), 0);
	ck_assert_int_eq(st_metrics_histogram_child(flush, "a", NULL,
						    &flush_a), 0);
	ck_assert_int_eq(st_metrics_histogram_child(flush, "b", NULL,
						    &flush_a), 0);
	ck_assert_int_eq(st_metrics_histogram_child(flush, "a", NULL,
						    &flush_a), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_COUNTER,
		"strata_empty_total", "Left out: no series.", "x", NULL, NULL,
		0, &empty), 0);

	st_metrics_counter_add(events, 41);
	st_metrics_counter_inc(events);
	st_metrics_counter_add(late, 3);
	st_metrics_counter_inc(decode);
	st_metrics_gauge_set(lag0, 7);
	st_metrics_gauge_add(lag0, -2);
	st_metrics_gauge_set(lag1, -2);
	st_metrics_gauge_set_double(ratio, 0.25);
	st_metrics_histogram_observe(batch, 0.125);
	st_metrics_histogram_observe(batch, 0.25);   /* le is inclusive */
	st_metrics_histogram_observe(batch, 0.75);
	st_metrics_histogram_observe(batch, 3);
	st_metrics_histogram_observe(batch, NAN);    /* ignored */
	st_metrics_histogram_observe(flush_a, 100);

	text = render(m);
	ck_assert_str_eq(text, expected);
	free(text);
	st_metrics_destroy(m);
}
END_TEST

START_TEST(empty_registry)
{
	st_metrics_t *m;
	char *text;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	text = render(m);
	ck_assert_str_eq(text, "");
	free(text);
	st_metrics_destroy(m);
	st_metrics_destroy(NULL);
}
END_TEST

START_TEST(escaping)
{
	st_metrics_t *m;
	st_metrics_family_t *f;
	st_metrics_counter_t *c;
	char *text;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_COUNTER,
		"strata_odd_total", "Back\\slash, \"quotes\",\nnewline.",
		"path", "who", NULL, 0, &f), 0);
	ck_assert_int_eq(st_metrics_counter_child(f, "C:\\dir \"x\"\nend",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", &c), 0);
	ck_assert_int_eq(st_metrics_counter_child(f, "", "", &c), 0);
	text = render(m);
	ck_assert_str_eq(text,
		"# HELP strata_odd_total "
		"Back\\\\slash, \"quotes\",\\nnewline.\n"
		"# TYPE strata_odd_total counter\n"
		"strata_odd_total{path=\"C:\\\\dir \\\"x\\\"\\nend\","
		"who=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"} 0\n"
		"strata_odd_total{path=\"\",who=\"\"} 0\n");
	free(text);
	st_metrics_destroy(m);
}
END_TEST

static int fn_float(void *opaque, double *value)
{
	*value = *(const double *)opaque;
	return 0;
}

START_TEST(number_formats)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0.1, "0.1" },
		{ 0.00001, "1e-05" },
		{ 2.5e-05, "2.5e-05" },
		{ 16777216, "16777216" },
		{ 1e15, "1e+15" },
		{ 1e300, "1e+300" },
		{ -0.5, "-0.5" },
		{ 0.1 + 0.2, "0.30000000000000004" },
		{ 1.0 / 3, "0.3333333333333333" },
		{ 123456789012345, "123456789012345" },
	};
	char name[64], expected[256], *text;
	st_metrics_t *m;
	double v;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(st_metrics_new(&m), 0);
		v = cases[i].v;
		snprintf(name, sizeof(name), "strata_n%zu", i);
		ck_assert_int_eq(st_metrics_gauge_fn(m, name, "h", fn_float,
						     &v), 0);
		text = render(m);
		snprintf(expected, sizeof(expected),
			 "# HELP %s h\n# TYPE %s gauge\n%s %s\n", name, name,
			 name, cases[i].text);
		ck_assert_str_eq(text, expected);
		free(text);
		st_metrics_destroy(m);
	}
}
END_TEST

START_TEST(special_values_and_gauge_kinds)
{
	st_metrics_t *m;
	st_metrics_gauge_t *d, *i;
	st_metrics_histogram_t *h;
	char *text;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_gauge_double(m, "strata_d", "d", &d), 0);
	ck_assert_int_eq(st_metrics_gauge(m, "strata_i", "i", &i), 0);
	ck_assert_int_eq(st_metrics_histogram(m, "strata_h_seconds", "h",
		st_metrics_latency_buckets, ST_METRICS_LATENCY_BUCKETS_COUNT,
		&h), 0);

	st_metrics_gauge_set_double(d, INFINITY);
	st_metrics_gauge_set_double(i, 2.5);     /* rounds half away */
	ck_assert(st_metrics_gauge_get(i) == 3);
	st_metrics_gauge_add_double(i, -10.4);
	ck_assert(st_metrics_gauge_get(i) == -7);
	st_metrics_gauge_set_double(i, 1e30);
	ck_assert(st_metrics_gauge_get(i) == (double)INT64_MAX);
	st_metrics_gauge_set_double(i, NAN);
	ck_assert(st_metrics_gauge_get(i) == 0);
	st_metrics_gauge_set(i, INT64_MIN);
	st_metrics_histogram_observe(h, 0.00001);
	st_metrics_histogram_observe(h, 11);
	text = render(m);
	ck_assert_str_eq(text,
		"# HELP strata_d d\n# TYPE strata_d gauge\nstrata_d +Inf\n"
		"# HELP strata_i i\n# TYPE strata_i gauge\n"
		"strata_i -9223372036854775808\n"
		"# HELP strata_h_seconds h\n# TYPE strata_h_seconds histogram\n"
		"strata_h_seconds_bucket{le=\"1e-05\"} 1\n"
		"strata_h_seconds_bucket{le=\"2.5e-05\"} 1\n"
		"strata_h_seconds_bucket{le=\"5e-05\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.0001\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.00025\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.0005\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.001\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.0025\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.005\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.01\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.025\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.05\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.1\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.25\"} 1\n"
		"strata_h_seconds_bucket{le=\"0.5\"} 1\n"
		"strata_h_seconds_bucket{le=\"1\"} 1\n"
		"strata_h_seconds_bucket{le=\"2.5\"} 1\n"
		"strata_h_seconds_bucket{le=\"5\"} 1\n"
		"strata_h_seconds_bucket{le=\"10\"} 1\n"
		"strata_h_seconds_bucket{le=\"+Inf\"} 2\n"
		"strata_h_seconds_sum 11.00001\n"
		"strata_h_seconds_count 2\n");
	free(text);
	st_metrics_destroy(m);
}
END_TEST

START_TEST(default_buckets_increase)
{
	static const struct {
		const double *b;
		size_t n;
	} sets[] = {
		{ st_metrics_latency_buckets,
		  ST_METRICS_LATENCY_BUCKETS_COUNT },
		{ st_metrics_size_buckets, ST_METRICS_SIZE_BUCKETS_COUNT },
		{ st_metrics_count_buckets, ST_METRICS_COUNT_BUCKETS_COUNT },
	};
	st_metrics_t *m;
	st_metrics_histogram_t *h;
	size_t i;

	ck_assert(st_metrics_latency_buckets[0] == 1e-5);
	ck_assert(st_metrics_latency_buckets[18] == 10);
	ck_assert(st_metrics_size_buckets[9] == 16 * 1024 * 1024);
	ck_assert_int_eq(st_metrics_new(&m), 0);
	for (i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "strata_set%zu", i);
		ck_assert_int_eq(st_metrics_histogram(m, name, "h", sets[i].b,
						      sets[i].n, &h), 0);
	}
	st_metrics_destroy(m);
}
END_TEST

START_TEST(children_are_found_again)
{
	st_metrics_t *m;
	st_metrics_family_t *f, *g;
	st_metrics_counter_t *a, *b;
	st_metrics_gauge_t *ga;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_COUNTER,
		"strata_records_total", "r", "topic", "partition", NULL, 0,
		&f), 0);
	ck_assert_int_eq(st_metrics_counter_child(f, "t", "0", &a), 0);
	st_metrics_counter_add(a, 5);
	ck_assert_int_eq(st_metrics_counter_child(f, "t", "0", &b), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_uint_eq(st_metrics_counter_get(b), 5);
	ck_assert_int_eq(st_metrics_counter_child(f, "t", "1", &b), 0);
	ck_assert_ptr_ne(a, b);
	/* wrong kind of child, wrong number of values */
	ck_assert_int_eq(st_metrics_gauge_child(f, "t", "0", &ga),
			 ST_EINVAL);
	ck_assert_ptr_null(ga);
	ck_assert_int_eq(st_metrics_counter_child(f, "t", NULL, &b),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_counter_child(f, NULL, NULL, &b),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_counter_child(f, "\xff", "0", &b),
			 ST_EINVAL);
	/* a callback child cannot share values with another child */
	ck_assert_int_eq(st_metrics_child_fn(f, "t", "0", fn_value, NULL),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_child_fn(f, "t", "2", fn_value, NULL), 0);
	ck_assert_int_eq(st_metrics_child_fn(f, "t", "2", fn_value, NULL),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_counter_child(f, "t", "2", &b),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_GAUGE, "strata_g",
		"g", "a", NULL, NULL, 0, &g), 0);
	ck_assert_int_eq(st_metrics_counter_child(g, "x", NULL, &b),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_gauge_child(g, "x", "y", &ga),
			 ST_EINVAL);
	st_metrics_destroy(m);
}
END_TEST

/* Registrations that must fail, each on a fresh registry holding
 * strata_taken_total, a histogram strata_hist_seconds and the gauges
 * strata_gauge and strata_sum. */
static const struct bad_family {
	st_metrics_type_t type;
	const char *name;
	const char *help;
	const char *label0;
	const char *label1;
	int bounds;   /* 0: none, 1: valid, 2: not increasing, 3: NaN, 4: inf,
		       * 5: valid but count 0 */
} bad[] = {
	{ ST_METRICS_GAUGE, "", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, NULL, "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "1strata", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata-lag", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata lag", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_lag\xc3\xa9", "h", NULL, NULL, 0 },
	{ ST_METRICS_COUNTER, "strata_events", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_events_total", "h", NULL, NULL, 0 },
	{ ST_METRICS_HISTOGRAM, "strata_x_total", "h", NULL, NULL, 1 },
	{ ST_METRICS_GAUGE, "strata_g", NULL, NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "bad \xc3(", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", "__name", NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", "a:b", NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", "9a", NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", "", NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", NULL, "a", 0 },
	{ ST_METRICS_GAUGE, "strata_g", "h", "a", "a", 0 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", "le", NULL, 1 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", NULL, NULL, 0 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", NULL, NULL, 2 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", NULL, NULL, 3 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", NULL, NULL, 4 },
	{ ST_METRICS_HISTOGRAM, "strata_h", "h", NULL, NULL, 5 },
	{ ST_METRICS_COUNTER, "strata_c_total", "h", NULL, NULL, 1 },
	{ (st_metrics_type_t)42, "strata_g", "h", NULL, NULL, 0 },
	/* duplicates and collisions */
	{ ST_METRICS_COUNTER, "strata_taken_total", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_gauge", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE_DOUBLE, "strata_hist_seconds", "h", NULL, NULL,
	  0 },
	{ ST_METRICS_GAUGE, "strata_hist_seconds_sum", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_hist_seconds_count", "h", NULL, NULL, 0 },
	{ ST_METRICS_GAUGE, "strata_hist_seconds_bucket", "h", NULL, NULL, 0 },
	{ ST_METRICS_HISTOGRAM, "strata", "h", NULL, NULL, 1 },
};

static int fn_strata_gauge(void *opaque, double *value)
{
	(void)opaque;
	*value = 0;
	return 0;
}

START_TEST(invalid_families)
{
	static const double ok[] = { 1, 2 }, dec[] = { 2, 1 },
			    nan_[] = { 1, NAN }, inf[] = { 1, INFINITY };
	const struct bad_family *b = &bad[_i];
	const double *bounds = NULL;
	size_t nbounds = 0;
	st_metrics_t *m;
	st_metrics_family_t *f = (st_metrics_family_t *)1;
	st_metrics_counter_t *c;
	st_metrics_histogram_t *h;
	st_metrics_gauge_t *strata;
	char *text;

	switch (b->bounds) {
	case 1: bounds = ok; nbounds = 2; break;
	case 2: bounds = dec; nbounds = 2; break;
	case 3: bounds = nan_; nbounds = 2; break;
	case 4: bounds = inf; nbounds = 2; break;
	case 5: bounds = ok; nbounds = 0; break;
	}
	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_counter(m, "strata_taken_total", "t", &c),
			 0);
	ck_assert_int_eq(st_metrics_histogram(m, "strata_hist_seconds", "t",
					      ok, 2, &h), 0);
	ck_assert_int_eq(st_metrics_gauge_fn(m, "strata_gauge", "t",
					     fn_strata_gauge, NULL), 0);
	/* a histogram "strata" would expose strata_sum */
	ck_assert_int_eq(st_metrics_gauge(m, "strata_sum", "t", &strata), 0);
	ck_assert_int_eq(st_metrics_family(m, b->type, b->name, b->help,
		b->label0, b->label1, bounds, nbounds, &f), ST_EINVAL);
	ck_assert_ptr_null(f);
	/* the registry is unchanged */
	text = render(m);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE strata_sum gauge\n"));
	ck_assert_ptr_null(strstr(text, "strata_g "));
	free(text);
	st_metrics_destroy(m);
}
END_TEST

START_TEST(unlabelled_wrappers_reject)
{
	st_metrics_t *m;
	st_metrics_counter_t *c = (st_metrics_counter_t *)1;
	st_metrics_gauge_t *g = (st_metrics_gauge_t *)1;
	st_metrics_histogram_t *h = (st_metrics_histogram_t *)1;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_counter(m, "strata_x", "h", &c),
			 ST_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(st_metrics_gauge(m, "strata_x_total", "h", &g),
			 ST_EINVAL);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(st_metrics_histogram(m, "strata_x", "h", NULL, 0,
					      &h), ST_EINVAL);
	ck_assert_ptr_null(h);
	ck_assert_int_eq(st_metrics_gauge_fn(m, "strata_x", "h", NULL, NULL),
			 ST_EINVAL);
	ck_assert_int_eq(st_metrics_counter_fn(m, "strata_x_total", "h",
					       NULL, NULL), ST_EINVAL);
	st_metrics_destroy(m);
}
END_TEST

#define THREADS 4
#define ROUNDS 200000

typedef struct {
	st_metrics_t *m;
	st_metrics_counter_t *counter;
	st_metrics_family_t *per_thread;
	st_metrics_gauge_t *gauge;
	st_metrics_gauge_t *dgauge;
	st_metrics_histogram_t *hist;
	int id;
	atomic_int *stop;
} worker_t;

static void *work(void *arg)
{
	worker_t *w = arg;
	st_metrics_counter_t *mine, *again;
	char value[16];
	int i;

	/* a child registered at runtime, while another thread renders */
	snprintf(value, sizeof(value), "%d", w->id);
	ck_assert_int_eq(st_metrics_counter_child(w->per_thread, value, NULL,
						  &mine), 0);
	for (i = 0; i < ROUNDS; i++) {
		st_metrics_counter_inc(w->counter);
		st_metrics_counter_add(mine, 2);
		st_metrics_gauge_add(w->gauge, 1);
		st_metrics_gauge_add_double(w->dgauge, 0.5);
		st_metrics_histogram_observe(w->hist, i % 2 ? 2.0 : 0.25);
		if (i % 50000 == 0) {
			ck_assert_int_eq(st_metrics_counter_child(
				w->per_thread, value, NULL, &again), 0);
			ck_assert_ptr_eq(again, mine);
		}
	}
	return NULL;
}

static void *scrape(void *arg)
{
	worker_t *w = arg;
	char *text;
	size_t len;

	while (!atomic_load(w->stop)) {
		ck_assert_int_eq(st_metrics_render(w->m, &text, &len), 0);
		free(text);
	}
	return NULL;
}

START_TEST(concurrent_updates_sum_exactly)
{
	static const double bounds[] = { 0.5, 1 };
	worker_t w[THREADS], s;
	pthread_t tid[THREADS], scraper;
	atomic_int stop = 0;
	st_metrics_t *m;
	st_metrics_counter_t *counter, *c;
	st_metrics_family_t *per_thread;
	st_metrics_gauge_t *gauge, *dgauge;
	st_metrics_histogram_t *hist;
	char *text, value[16], line[128];
	int i;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_counter(m, "strata_ops_total", "o",
					    &counter), 0);
	ck_assert_int_eq(st_metrics_family(m, ST_METRICS_COUNTER,
		"strata_thread_ops_total", "t", "thread", NULL, NULL, 0,
		&per_thread), 0);
	ck_assert_int_eq(st_metrics_gauge(m, "strata_level", "l", &gauge), 0);
	ck_assert_int_eq(st_metrics_gauge_double(m, "strata_dlevel", "d",
						 &dgauge), 0);
	ck_assert_int_eq(st_metrics_histogram(m, "strata_op_seconds", "s",
					      bounds, 2, &hist), 0);
	s.m = m;
	s.stop = &stop;
	ck_assert_int_eq(pthread_create(&scraper, NULL, scrape, &s), 0);
	for (i = 0; i < THREADS; i++) {
		w[i] = (worker_t){ m, counter, per_thread, gauge, dgauge, hist,
				   i, &stop };
		ck_assert_int_eq(pthread_create(&tid[i], NULL, work, &w[i]),
				 0);
	}
	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
	atomic_store(&stop, 1);
	ck_assert_int_eq(pthread_join(scraper, NULL), 0);

	ck_assert_uint_eq(st_metrics_counter_get(counter),
			  (uint64_t)THREADS * ROUNDS);
	ck_assert(st_metrics_gauge_get(gauge) == (double)THREADS * ROUNDS);
	ck_assert(st_metrics_gauge_get(dgauge) ==
		  (double)THREADS * ROUNDS / 2);
	for (i = 0; i < THREADS; i++) {
		snprintf(value, sizeof(value), "%d", i);
		ck_assert_int_eq(st_metrics_counter_child(per_thread, value,
							  NULL, &c), 0);
		ck_assert_uint_eq(st_metrics_counter_get(c), 2 * ROUNDS);
	}
	text = render(m);
	snprintf(line, sizeof(line), "\nstrata_ops_total %d\n",
		 THREADS * ROUNDS);
	ck_assert_ptr_nonnull(strstr(text, line));
	snprintf(line, sizeof(line), "\nstrata_op_seconds_bucket{le=\"0.5\"} "
		 "%d\n", THREADS * ROUNDS / 2);
	ck_assert_ptr_nonnull(strstr(text, line));
	snprintf(line, sizeof(line), "\nstrata_op_seconds_bucket{le=\"+Inf\"} "
		 "%d\n", THREADS * ROUNDS);
	ck_assert_ptr_nonnull(strstr(text, line));
	snprintf(line, sizeof(line), "\nstrata_op_seconds_sum %d\n",
		 THREADS * ROUNDS / 2 * 9 / 4);
	ck_assert_ptr_nonnull(strstr(text, line));
	snprintf(line, sizeof(line), "\nstrata_op_seconds_count %d\n",
		 THREADS * ROUNDS);
	ck_assert_ptr_nonnull(strstr(text, line));
	free(text);
	st_metrics_destroy(m);
}
END_TEST

/* The value of the unlabelled series `name` in text; fails if absent. */
static double series(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = text; (p = strstr(p, name)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	ck_abort_msg("no series %s in:\n%s", name, text);
	return 0;
}

START_TEST(process_series)
{
	st_metrics_t *m;
	char *text;
	double cpu0, cpu1, fds0, fds1, start;
	volatile uint64_t x = 1;
	clock_t c0;
	struct rlimit rl;
	FILE *f;

	ck_assert_int_eq(st_metrics_new(&m), 0);
	ck_assert_int_eq(st_metrics_process(m), 0);
	ck_assert_int_eq(st_metrics_process(m), ST_EINVAL);
	text = render(m);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE process_cpu_seconds_total "
				     "counter\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE process_resident_memory_"
				     "bytes gauge\n"));
	cpu0 = series(text, "process_cpu_seconds_total");
	fds0 = series(text, "process_open_fds");
	ck_assert(series(text, "process_resident_memory_bytes") > 0);
	ck_assert(series(text, "process_virtual_memory_bytes") >=
		  series(text, "process_resident_memory_bytes"));
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert(series(text, "process_max_fds") ==
		  (rl.rlim_cur == RLIM_INFINITY ? INFINITY :
		   (double)rl.rlim_cur));
	/* Started before this test, not long before (the suite's timeout). */
	start = series(text, "process_start_time_seconds");
	ck_assert(start <= (double)time(NULL) + 1);
	ck_assert(start > (double)time(NULL) - 120);
	free(text);

	/* 50 ms of CPU and one more open file show. */
	c0 = clock();
	while (clock() - c0 < CLOCKS_PER_SEC / 20)
		x = x * 6364136223846793005u + 1;
	f = fopen("/proc/self/statm", "r");
	ck_assert_ptr_nonnull(f);
	text = render(m);
	cpu1 = series(text, "process_cpu_seconds_total");
	fds1 = series(text, "process_open_fds");
	ck_assert_msg(cpu1 >= cpu0 + 0.04, "cpu %f then %f", cpu0, cpu1);
	ck_assert_msg(fds1 == fds0 + 1, "fds %f then %f", fds0, fds1);
	ck_assert(series(text, "process_start_time_seconds") == start);
	fclose(f);
	free(text);
	st_metrics_destroy(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, render_every_kind);
	tcase_add_test(tc, empty_registry);
	tcase_add_test(tc, escaping);
	tcase_add_test(tc, number_formats);
	tcase_add_test(tc, special_values_and_gauge_kinds);
	tcase_add_test(tc, default_buckets_increase);
	tcase_add_test(tc, children_are_found_again);
	tcase_add_loop_test(tc, invalid_families, 0,
			    sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, unlabelled_wrappers_reject);
	tcase_add_test(tc, concurrent_updates_sum_exactly);
	tcase_add_test(tc, process_series);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
