/*
 * window.h -- event-time sliding windows of one key.
 *
 * For every event of a key, strata computes aggregates over the key's
 * events whose event time lies in (t - length, t], where t is the event's
 * own time: count, sum, avg, min, max, distinct count, and the seconds
 * since the key's previous event. An event arriving out of order (but
 * within the allowed lateness) is inserted at its place in event time, so
 * every event processed after it counts it in its windows.
 *
 * "Previous" and "in the window" mean: events already processed whose
 * (event time, input position) is at or before the current event's; an
 * event with the same time that arrived earlier is included. With
 * `exclude_current` the current event itself is left out.
 *
 * The state of a key is a list of its events (time, input position, and
 * the values the aggregates read, "slots") sorted by (time, position).
 * Entries older than the eviction horizon (the partition watermark minus
 * the longest window) can never be in a later window and are dropped.
 *
 * Pure code: no I/O, no logging. Not thread-safe per key.
 */
#ifndef ST_WINDOW_H
#define ST_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	ST_AGG_COUNT,
	ST_AGG_SUM,
	ST_AGG_AVG,
	ST_AGG_MIN,
	ST_AGG_MAX,
	ST_AGG_DISTINCT,
	ST_AGG_SINCE_PREV     /* seconds since the previous event */
} st_agg_t;

typedef struct st_window_spec {
	st_agg_t agg;
	int64_t length_ms;        /* window length (not used by SINCE_PREV) */
	int exclude_current;
	int slot;                 /* value slot read (-1 for COUNT, SINCE_PREV) */
} st_window_spec_t;

/* One slot value: a number, or for DISTINCT the 64-bit hash of a value. */
typedef union st_slot {
	double d;
	uint64_t h;
} st_slot_t;

typedef struct st_window_key {
	int64_t *ts;              /* entry i: ts[i], seq[i], slots[i*nslots] */
	uint64_t *seq;
	st_slot_t *slots;
	size_t start, count, cap; /* live entries are [start, start+count) */
	unsigned nslots;
	int64_t prev_evicted_ts;  /* newest evicted event time, or INT64_MIN */
} st_window_key_t;

/* A result: null when the window is empty for avg/min/max, or there is no
 * previous event for SINCE_PREV. */
typedef struct st_window_result {
	double value;
	int null;
} st_window_result_t;

/* Initialises an empty key with nslots value slots. */
void st_window_key_init(st_window_key_t *k, unsigned nslots);

void st_window_key_free(st_window_key_t *k);

/*
 * Adds an event (time ts, input position seq, nslots slot values) and
 * computes every spec for it into results[nspecs]. Entries with time at or
 * before evict_before are dropped first (pass INT64_MIN to keep all). An
 * event already in the list (same ts and seq) is not added again: its
 * results are computed as they were. Numeric slots holding NaN and hash
 * slots holding 0 are null values, skipped by the aggregates (count
 * counts events). Returns 0 or ST_ENOMEM (the eviction may have happened).
 */
int st_window_add(st_window_key_t *k, int64_t ts, uint64_t seq,
		  const st_slot_t *slots, int64_t evict_before,
		  const st_window_spec_t *specs, size_t nspecs,
		  st_window_result_t *results);

/* Drops entries with time at or before evict_before. */
void st_window_evict(st_window_key_t *k, int64_t evict_before);

/* The length of the key serialised (host byte order), and the key
 * serialised into buf (that long), e.g. straight into LMDB's room for it. */
size_t st_window_encoded_len(const st_window_key_t *k);
void st_window_encode_into(const st_window_key_t *k, uint8_t *buf);

/*
 * Restores a key from st_window_encode_into() output into an initialised key of
 * the same nslots. Returns 0, ST_EPARSE (corrupt or other nslots) or
 * ST_ENOMEM.
 */
int st_window_decode(st_window_key_t *k, const uint8_t *buf, size_t len);

/* 64-bit FNV-1a hash, for DISTINCT slots of strings. */
uint64_t st_window_hash(const void *data, size_t len);

#endif
