/* window.c -- sorted per-key event lists and their aggregates. */
#include "window.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define FORMAT 1

void st_window_key_init(st_window_key_t *k, unsigned nslots)
{
	memset(k, 0, sizeof(*k));
	k->nslots = nslots;
	k->prev_evicted_ts = INT64_MIN;
}

void st_window_key_free(st_window_key_t *k)
{
	free(k->ts);   /* the block holding seq and slots too */
	st_window_key_init(k, k->nslots);
}

/* Moves live entries to the front of the arrays. */
static void compact(st_window_key_t *k)
{
	if (!k->start)
		return;
	memmove(k->ts, k->ts + k->start, k->count * sizeof(*k->ts));
	memmove(k->seq, k->seq + k->start, k->count * sizeof(*k->seq));
	if (k->nslots)
		memmove(k->slots, k->slots + k->start * k->nslots,
			k->count * k->nslots * sizeof(*k->slots));
	k->start = 0;
}

/*
 * Room for `need` live entries. The three arrays share one allocation of
 * cap entries (ts, then seq, then slots): a key costs one malloc and one
 * free, not three. Growing copies the live entries straight to the front
 * of a new block.
 */
static int reserve(st_window_key_t *k, size_t need)
{
	size_t ncap, per = sizeof(*k->ts) + sizeof(*k->seq) +
			   k->nslots * sizeof(*k->slots);
	int64_t *ts;
	uint64_t *seq;
	st_slot_t *slots;

	if (k->start + need <= k->cap)
		return 0;
	if (need <= k->cap) {
		compact(k);
		return 0;
	}
	ncap = k->cap ? k->cap * 2 : 4;
	while (ncap < need)
		ncap *= 2;
	if (!(ts = malloc(ncap * per)))
		return ST_ENOMEM;
	seq = (uint64_t *)(ts + ncap);
	slots = (st_slot_t *)(seq + ncap);
	if (k->count) {
		memcpy(ts, k->ts + k->start, k->count * sizeof(*ts));
		memcpy(seq, k->seq + k->start, k->count * sizeof(*seq));
		if (k->nslots)
			memcpy(slots, k->slots + k->start * k->nslots,
			       k->count * k->nslots * sizeof(*slots));
	}
	free(k->ts);
	k->start = 0;
	k->ts = ts;
	k->seq = seq;
	k->slots = k->nslots ? slots : NULL;
	k->cap = ncap;
	return 0;
}

void st_window_evict(st_window_key_t *k, int64_t evict_before)
{
	const int64_t *ts = k->ts + k->start;
	size_t n = 0;

	while (n < k->count && ts[n] <= evict_before)
		n++;
	if (!n)
		return;
	k->prev_evicted_ts = ts[n - 1];
	k->start += n;
	k->count -= n;
	if (!k->count)
		k->start = 0;
}

/* First live index (relative) whose time is greater than t. */
static size_t upper_bound(const st_window_key_t *k, int64_t t)
{
	const int64_t *ts = k->ts + k->start;
	size_t lo = 0, hi = k->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ts[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Counts distinct hashes among n slots with a small open-addressing set. */
static double count_distinct(const st_slot_t *slots, unsigned stride,
			     size_t n, int slot)
{
	uint64_t local[64], *set = local;
	size_t cap = 64, distinct = 0;

	while (cap < n * 2)
		cap *= 2;
	if (cap > 64) {
		set = calloc(cap, sizeof(*set));
		if (!set)
			return NAN;
	} else {
		memset(local, 0, sizeof(local));
	}
	for (size_t i = 0; i < n; i++) {
		/* 0 is a null value: not counted (and marks empty cells). */
		uint64_t h = slots[i * stride + (unsigned)slot].h;
		size_t j;

		if (!h)
			continue;
		for (j = h & (cap - 1); set[j] && set[j] != h;
		     j = (j + 1) & (cap - 1))
			;
		if (!set[j]) {
			set[j] = h;
			distinct++;
		}
	}
	if (set != local)
		free(set);
	return (double)distinct;
}

static void eval(const st_window_key_t *k, size_t pos,
		 const st_window_spec_t *s, st_window_result_t *r)
{
	const int64_t *ts = k->ts + k->start;
	const st_slot_t *slots = k->slots + k->start * k->nslots;
	unsigned stride = k->nslots;
	size_t lo, end, n;
	double acc = 0;

	r->null = 0;
	r->value = 0;
	if (s->agg == ST_AGG_SINCE_PREV) {
		if (pos > 0)
			r->value = (double)(ts[pos] - ts[pos - 1]) / 1000.0;
		else if (k->prev_evicted_ts != INT64_MIN)
			r->value = (double)(ts[pos] - k->prev_evicted_ts) /
				   1000.0;
		else
			r->null = 1;
		return;
	}
	/* The window (t - length, t] is [lo, pos]: the current event is the
	 * last entry at or before (t, its position). */
	lo = upper_bound(k, ts[pos] - s->length_ms);
	end = s->exclude_current ? pos : pos + 1;
	n = end > lo ? end - lo : 0;
	switch (s->agg) {
	case ST_AGG_COUNT:
		r->value = (double)n;
		return;
	case ST_AGG_DISTINCT:
		r->value = count_distinct(slots + lo * stride, stride, n,
					  s->slot);
		r->null = isnan(r->value);
		return;
	default:
		break;
	}
	/* Null values (NaN) are skipped: they are not values. */
	n = 0;
	for (size_t i = lo; i < end; i++) {
		double v = slots[i * stride + (unsigned)s->slot].d;

		if (isnan(v))
			continue;
		if (s->agg == ST_AGG_MIN)
			acc = !n || v < acc ? v : acc;
		else if (s->agg == ST_AGG_MAX)
			acc = !n || v > acc ? v : acc;
		else
			acc += v;
		n++;
	}
	r->value = s->agg == ST_AGG_AVG && n ? acc / (double)n : acc;
	r->null = n == 0 && s->agg != ST_AGG_SUM;
}

int st_window_add(st_window_key_t *k, int64_t ts, uint64_t seq,
		  const st_slot_t *slots, int64_t evict_before,
		  const st_window_spec_t *specs, size_t nspecs,
		  st_window_result_t *results)
{
	size_t pos;
	int64_t *t;
	uint64_t *q;

	st_window_evict(k, evict_before);
	if (reserve(k, k->count + 1))
		return ST_ENOMEM;
	t = k->ts + k->start;
	q = k->seq + k->start;
	/* Sorted by (time, position): search back from the end, where an
	 * in-order event goes. */
	pos = k->count;
	while (pos > 0 && (t[pos - 1] > ts ||
			   (t[pos - 1] == ts && q[pos - 1] > seq)))
		pos--;
	if (pos > 0 && t[pos - 1] == ts && q[pos - 1] == seq) {
		/* The same event again (re-applied input): counted once. */
		pos--;
		goto eval;
	}
	if (pos < k->count) {
		memmove(t + pos + 1, t + pos, (k->count - pos) * sizeof(*t));
		memmove(q + pos + 1, q + pos, (k->count - pos) * sizeof(*q));
		if (k->nslots) {
			st_slot_t *s = k->slots + k->start * k->nslots;

			memmove(s + (pos + 1) * k->nslots, s + pos * k->nslots,
				(k->count - pos) * k->nslots * sizeof(*s));
		}
	}
	t[pos] = ts;
	q[pos] = seq;
	if (k->nslots)
		memcpy(k->slots + (k->start + pos) * k->nslots, slots,
		       k->nslots * sizeof(*slots));
	k->count++;
eval:
	for (size_t i = 0; i < nspecs; i++)
		eval(k, pos, &specs[i], &results[i]);
	return 0;
}

/* Encoding: u8 format, u8 nslots, u32 count, i64 prev_evicted_ts, then
 * count x (i64 ts, u64 seq, nslots x 8 bytes). */
#define HEADER 14

size_t st_window_encoded_len(const st_window_key_t *k)
{
	return HEADER + k->count * (16 + (size_t)k->nslots * 8);
}

void st_window_encode_into(const st_window_key_t *k, uint8_t *buf)
{
	size_t per = 16 + (size_t)k->nslots * 8;
	uint32_t count = (uint32_t)k->count;
	uint8_t *p;

	buf[0] = FORMAT;
	buf[1] = (uint8_t)k->nslots;
	memcpy(buf + 2, &count, 4);
	memcpy(buf + 6, &k->prev_evicted_ts, 8);
	p = buf + HEADER;
	for (size_t i = k->start; i < k->start + k->count; i++) {
		memcpy(p, &k->ts[i], 8);
		memcpy(p + 8, &k->seq[i], 8);
		if (k->nslots)
			memcpy(p + 16, &k->slots[i * k->nslots],
			       (size_t)k->nslots * 8);
		p += per;
	}
}

int st_window_decode(st_window_key_t *k, const uint8_t *buf, size_t len)
{
	size_t per = 16 + (size_t)k->nslots * 8;
	uint32_t count;
	const uint8_t *p;

	if (len < HEADER || buf[0] != FORMAT || buf[1] != k->nslots)
		return ST_EPARSE;
	memcpy(&count, buf + 2, 4);
	if ((len - HEADER) / per != count || (len - HEADER) % per)
		return ST_EPARSE;
	st_window_key_free(k);
	if (reserve(k, count))
		return ST_ENOMEM;
	memcpy(&k->prev_evicted_ts, buf + 6, 8);
	p = buf + HEADER;
	for (size_t i = 0; i < count; i++) {
		memcpy(&k->ts[i], p, 8);
		memcpy(&k->seq[i], p + 8, 8);
		if (k->nslots)
			memcpy(&k->slots[i * k->nslots], p + 16,
			       (size_t)k->nslots * 8);
		p += per;
	}
	k->count = count;
	return 0;
}

uint64_t st_window_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}
