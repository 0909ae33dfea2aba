/*
 * check_window.c -- window aggregates against a brute-force reference over
 * random event sequences with out-of-order arrivals, late events, ties,
 * eviction and state round trips. ST_SEED=<n> reproduces a run.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "window.h"

START_TEST(simple_sequence)
{
	st_window_spec_t specs[] = {
		{ST_AGG_COUNT, 3600000, 0, -1},
		{ST_AGG_SUM, 3600000, 0, 0},
		{ST_AGG_AVG, 86400000, 1, 0},
		{ST_AGG_MAX, 86400000, 0, 0},
		{ST_AGG_DISTINCT, 86400000, 0, 1},
		{ST_AGG_SINCE_PREV, 0, 0, -1},
		{ST_AGG_MIN, 3600000, 1, 0},
	};
	st_window_result_t r[7];
	st_window_key_t k;
	st_slot_t s[2];

	st_window_key_init(&k, 2);
	s[0].d = 10;
	s[1].h = 7;
	ck_assert_int_eq(st_window_add(&k, 1000, 1, s, INT64_MIN, specs, 7, r), 0);
	ck_assert_double_eq(r[0].value, 1);
	ck_assert_double_eq(r[1].value, 10);
	ck_assert(r[2].null);             /* avg excluding current: empty */
	ck_assert_double_eq(r[3].value, 10);
	ck_assert_double_eq(r[4].value, 1);
	ck_assert(r[5].null);             /* no previous event */
	ck_assert(r[6].null);
	s[0].d = 30;
	s[1].h = 8;
	ck_assert_int_eq(st_window_add(&k, 1000 + 1800000, 2, s, INT64_MIN,
				       specs, 7, r), 0);
	ck_assert_double_eq(r[0].value, 2);
	ck_assert_double_eq(r[1].value, 40);
	ck_assert_double_eq(r[2].value, 10);
	ck_assert_double_eq(r[4].value, 2);
	ck_assert_double_eq(r[5].value, 1800);
	ck_assert_double_eq(r[6].value, 10);
	/* An hour and a bit later: the first leaves the 1h window. */
	s[0].d = 5;
	s[1].h = 7;
	ck_assert_int_eq(st_window_add(&k, 1000 + 3600000, 3, s, INT64_MIN,
				       specs, 7, r), 0);
	ck_assert_double_eq(r[0].value, 2);
	ck_assert_double_eq(r[1].value, 35);
	ck_assert_double_eq(r[2].value, 20);
	ck_assert_double_eq(r[3].value, 30);
	ck_assert_double_eq(r[4].value, 2);
	/* Late, out of order: slots between; counted by later events only. */
	s[0].d = 100;
	s[1].h = 9;
	ck_assert_int_eq(st_window_add(&k, 1000 + 60000, 4, s, INT64_MIN,
				       specs, 7, r), 0);
	ck_assert_double_eq(r[0].value, 2);   /* itself and the first */
	ck_assert_double_eq(r[5].value, 60);  /* previous in event time */
	s[0].d = 1;
	ck_assert_int_eq(st_window_add(&k, 1000 + 3600001, 5, s, INT64_MIN,
				       specs, 7, r), 0);
	/* (1001, 3601001]: the late one at 61000 is in now. */
	ck_assert_double_eq(r[0].value, 4);
	ck_assert_double_eq(r[3].value, 100);
	ck_assert_double_eq(r[4].value, 3);
	st_window_key_free(&k);
}
END_TEST

/* ---- brute-force reference ------------------------------------------ */

typedef struct {
	int64_t ts;
	uint64_t seq;
	double v;
	uint64_t h;
} ev_t;

/* The key serialised into a new buffer (the test frees it). */
static void encode(const st_window_key_t *k, uint8_t **buf, size_t *len)
{
	*len = st_window_encoded_len(k);
	*buf = malloc(*len);
	ck_assert_ptr_nonnull(*buf);
	st_window_encode_into(k, *buf);
}

static int cmp_ev(const void *a, const void *b)
{
	const ev_t *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void reference(const ev_t *seen, size_t nseen, const ev_t *cur,
		      const st_window_spec_t *s, st_window_result_t *r)
{
	ev_t *w = malloc((nseen + 1) * sizeof(*w));
	size_t n = 0;
	double acc = 0;

	r->null = 0;
	r->value = 0;
	if (s->agg == ST_AGG_SINCE_PREV) {
		const ev_t *best = NULL;

		for (size_t i = 0; i < nseen; i++)
			if (cmp_ev(&seen[i], cur) < 0 &&
			    (!best || cmp_ev(&seen[i], best) > 0))
				best = &seen[i];
		r->null = !best;
		if (best)
			r->value = (double)(cur->ts - best->ts) / 1000.0;
		free(w);
		return;
	}
	for (size_t i = 0; i < nseen; i++)
		if (seen[i].ts > cur->ts - s->length_ms &&
		    cmp_ev(&seen[i], cur) <= 0 &&
		    !(s->exclude_current && seen[i].seq == cur->seq))
			w[n++] = seen[i];
	qsort(w, n, sizeof(*w), cmp_ev);
	for (size_t i = 0; i < n; i++) {
		if (s->agg == ST_AGG_MIN)
			acc = i == 0 || w[i].v < acc ? w[i].v : acc;
		else if (s->agg == ST_AGG_MAX)
			acc = i == 0 || w[i].v > acc ? w[i].v : acc;
		else
			acc += w[i].v;
	}
	switch (s->agg) {
	case ST_AGG_COUNT:
		r->value = (double)n;
		break;
	case ST_AGG_DISTINCT: {
		size_t d = 0;

		for (size_t i = 0; i < n; i++) {
			size_t j;

			if (!w[i].h)    /* hash 0: a null value */
				continue;
			for (j = 0; j < i && w[j].h != w[i].h; j++)
				;
			d += j == i;
		}
		r->value = (double)d;
		break;
	}
	case ST_AGG_AVG:
		r->null = n == 0;
		r->value = n ? acc / (double)n : 0;
		break;
	case ST_AGG_SUM:
		r->value = acc;
		break;
	default:
		r->null = n == 0;
		r->value = acc;
		break;
	}
	free(w);
}

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

START_TEST(property_matches_brute_force)
{
	const char *env = getenv("ST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	st_window_spec_t specs[16];
	static const st_agg_t aggs[] = {
		ST_AGG_COUNT, ST_AGG_SUM, ST_AGG_AVG, ST_AGG_MIN, ST_AGG_MAX,
		ST_AGG_DISTINCT, ST_AGG_SINCE_PREV
	};

	printf("window property test: ST_SEED=%llu\n", (unsigned long long)seed);
	for (int c = 0; c < 400; c++) {
		int64_t lateness = rnd(3) * 50, max_seen = INT64_MIN, lmax = 0;
		size_t nspecs = 0, nseen = 0, nev = 50 + (size_t)rnd(300);
		ev_t *seen = calloc(nev, sizeof(*seen));
		st_window_result_t got[16], want;
		st_window_key_t k;

		rng = (seed + (uint64_t)c) * 0x9E3779B97F4A7C15ULL + 1;
		for (size_t a = 0; a < sizeof(aggs) / sizeof(aggs[0]); a++) {
			for (int e = 0; e < 2; e++) {
				st_window_spec_t *s = &specs[nspecs++];

				s->agg = aggs[a];
				s->length_ms = 1 + rnd(400);
				s->exclude_current = e;
				s->slot = aggs[a] == ST_AGG_DISTINCT ? 1 :
					  aggs[a] == ST_AGG_COUNT ||
					  aggs[a] == ST_AGG_SINCE_PREV ? -1 : 0;
				if (s->length_ms > lmax)
					lmax = s->length_ms;
			}
		}
		st_window_key_init(&k, 2);
		for (size_t i = 0; i < nev; i++) {
			int64_t base = max_seen == INT64_MIN ? 0 : max_seen;
			ev_t e = {base + rnd(40) - rnd(3) * rnd(60), i + 1,
				  (double)rnd(1000) / 8.0, (uint64_t)rnd(6)};
			int64_t wm = max_seen == INT64_MIN ? INT64_MIN :
				     max_seen - lateness;
			st_slot_t sl[2];

			/* The pipeline's rule: later than the watermark is
			 * late and never reaches the window. */
			if (wm != INT64_MIN && e.ts < wm)
				continue;
			if (e.ts > max_seen)
				max_seen = e.ts;
			sl[0].d = e.v;
			sl[1].h = e.h;
			seen[nseen++] = e;
			ck_assert_int_eq(st_window_add(&k, e.ts, e.seq, sl,
				wm == INT64_MIN ? INT64_MIN : wm - lmax,
				specs, nspecs, got), 0);
			for (size_t s = 0; s < nspecs; s++) {
				reference(seen, nseen, &e, &specs[s], &want);
				ck_assert_msg(got[s].null == want.null &&
					      (want.null ||
					       got[s].value == want.value),
					      "seed %llu case %d event %zu spec "
					      "%zu (agg %d len %lld excl %d): "
					      "got %g%s want %g%s",
					      (unsigned long long)seed, c, i, s,
					      specs[s].agg,
					      (long long)specs[s].length_ms,
					      specs[s].exclude_current,
					      got[s].value,
					      got[s].null ? " (null)" : "",
					      want.value,
					      want.null ? " (null)" : "");
			}
			/* Now and then, persist and restore the state. */
			if (rnd(10) == 0) {
				uint8_t *buf;
				size_t len;
				st_window_key_t k2;

				encode(&k, &buf, &len);
				st_window_key_init(&k2, 2);
				ck_assert_int_eq(st_window_decode(&k2, buf,
								  len), 0);
				st_window_key_free(&k);
				k = k2;
				free(buf);
			}
		}
		st_window_key_free(&k);
		free(seen);
	}
}
END_TEST

START_TEST(nulls_and_duplicates)
{
	st_window_spec_t specs[] = {
		{ST_AGG_COUNT, 1000, 0, -1},
		{ST_AGG_AVG, 1000, 0, 0},
		{ST_AGG_MIN, 1000, 0, 0},
		{ST_AGG_DISTINCT, 1000, 0, 1},
	};
	st_window_result_t r[4];
	st_window_key_t k;
	st_slot_t s[2];

	st_window_key_init(&k, 2);
	s[0].d = NAN;
	s[1].h = 0;
	ck_assert_int_eq(st_window_add(&k, 10, 1, s, INT64_MIN, specs, 4, r), 0);
	ck_assert_double_eq(r[0].value, 1);   /* counted as an event */
	ck_assert(r[1].null && r[2].null);    /* but not as a value */
	ck_assert_double_eq(r[3].value, 0);
	s[0].d = 4;
	s[1].h = 9;
	ck_assert_int_eq(st_window_add(&k, 20, 2, s, INT64_MIN, specs, 4, r), 0);
	ck_assert_double_eq(r[1].value, 4);
	/* The same event again changes nothing. */
	ck_assert_int_eq(st_window_add(&k, 20, 2, s, INT64_MIN, specs, 4, r), 0);
	ck_assert_double_eq(r[0].value, 2);
	ck_assert_double_eq(r[3].value, 1);
	ck_assert_uint_eq(k.count, 2);
	st_window_key_free(&k);
}
END_TEST

START_TEST(decode_rejects_corrupt)
{
	st_window_spec_t spec = {ST_AGG_COUNT, 10, 0, -1};
	st_window_result_t r;
	st_window_key_t k, k3;
	st_slot_t s = {.d = 1};
	uint8_t *buf;
	size_t len;

	st_window_key_init(&k, 1);
	for (int i = 0; i < 5; i++)
		st_window_add(&k, i, (uint64_t)i, &s, INT64_MIN, &spec, 1, &r);
	encode(&k, &buf, &len);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(st_window_decode(&k, buf, cut), ST_EPARSE);
	st_window_key_init(&k3, 3);
	ck_assert_int_eq(st_window_decode(&k3, buf, len), ST_EPARSE);
	free(buf);
	st_window_key_free(&k);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("window");
	TCase *tc = tcase_create("window");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, simple_sequence);
	tcase_add_test(tc, property_matches_brute_force);
	tcase_add_test(tc, nulls_and_duplicates);
	tcase_add_test(tc, decode_rejects_corrupt);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
