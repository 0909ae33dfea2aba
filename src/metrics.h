/*
 * metrics.h -- strata's Prometheus metrics: a registry of counters, gauges
 * and histograms, rendered in the text exposition format 0.0.4.
 *
 * Start-up registers every family and gets a handle (a pointer) per series;
 * the hot path updates the series through its handle with one relaxed
 * atomic operation, no lock and no allocation. The HTTP thread renders the
 * registry (st_metrics_render()) while the pipeline thread updates it.
 *
 *   st_metrics_counter_t *events;
 *   st_metrics_family_t *dead;
 *   st_metrics_counter_t *late;
 *
 *   st_metrics_counter(m, "strata_events_in_total",
 *                      "Transaction messages consumed.", &events);
 *   st_metrics_family(m, ST_METRICS_COUNTER, "strata_dead_letters_total",
 *                     "Messages sent to the dead-letter topic.",
 *                     "reason", NULL, NULL, 0, &dead);
 *   st_metrics_counter_child(dead, "late", NULL, &late);
 *   ...
 *   st_metrics_counter_inc(events);        (hot path)
 *
 * Naming (Prometheus conventions; promtool check metrics agrees):
 *   - names match [a-zA-Z_:][a-zA-Z0-9_:]* (checked); colons are meant for
 *     recording rules, so strata's names have none;
 *   - every strata metric starts with "strata_" (a convention, not
 *     checked, so that tests and libraries may use other names);
 *   - counter names end in "_total" and other names do not (checked): the
 *     name registered is the name exposed, no suffix is added;
 *   - names do not contain their type ("gauge", "counter", "histogram"):
 *     promtool's lint flags it (not checked);
 *   - base units, named as a suffix before _total: seconds (not ms),
 *     bytes (not KiB), ratios 0..1 (not percent): strata_batch_seconds,
 *     strata_state_map_used_bytes, strata_redis_written_bytes_total;
 *   - label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__",
 *     and "le" is not allowed on histograms (checked).
 * Values exposed: counters as unsigned 64-bit integers, gauges as signed
 * 64-bit integers or doubles (chosen at registration), histogram buckets
 * cumulative with a last le="+Inf" bucket equal to _count.
 *
 * Labels: a family has 0, 1 or 2 label names, fixed when it is registered;
 * each child (series) has one value per label name. Children may be added
 * at any time, also while the registry is being rendered (a partition
 * assigned at runtime): adding takes the registry's lock, which rendering
 * takes too; updating an existing child never does. Adding a child whose
 * values already exist returns the existing one, so re-registering after a
 * rebalance is harmless. Children are never removed: a handle stays valid
 * until st_metrics_destroy(), and the cardinality of a family is the
 * number of distinct values ever registered -- use labels with a small,
 * known set of values (reasons, topic-partitions), never entity ids.
 *
 * Series computed at scrape time: a counter or gauge child may be a
 * callback (st_metrics_counter_fn(), st_metrics_gauge_fn(),
 * st_metrics_child_fn()) that st_metrics_render() calls, from the thread
 * that renders (the HTTP thread), with the registry's lock held.
 *
 * Errors: ST_EINVAL (bad name, label or bucket, a duplicate family, or a
 * call that does not fit the family's type), ST_ENOMEM.
 *
 * Thread: every function may be called from any thread. Registration and
 * rendering serialise on one mutex; the update functions are lock-free and
 * use relaxed atomics, so a scrape sees each series at some recent value
 * (not a snapshot of the whole registry across series).
 *
 * Pure apart from the scrape callbacks: no I/O, no logging.
 */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_metrics st_metrics_t;
typedef struct st_metrics_family st_metrics_family_t;
typedef struct st_metrics_counter st_metrics_counter_t;
typedef struct st_metrics_gauge st_metrics_gauge_t;
typedef struct st_metrics_histogram st_metrics_histogram_t;

typedef enum {
	ST_METRICS_COUNTER,       /* uint64_t, only goes up */
	ST_METRICS_GAUGE,         /* int64_t */
	ST_METRICS_GAUGE_DOUBLE,  /* double */
	ST_METRICS_HISTOGRAM      /* fixed buckets of doubles */
} st_metrics_type_t;

/* Label names per family, at most. */
#define ST_METRICS_LABELS_MAX 2

/* Bucket upper bounds per histogram, at most (+Inf not counted). */
#define ST_METRICS_BUCKETS_MAX 64

/*
 * Default bucket upper bounds (pass the array and its _COUNT).
 * Latency, in seconds: 10us to 10s in 1-2.5-5 steps (19 bounds).
 * Size, in bytes: 64 B to 16 MiB in powers of 4 (10 bounds).
 * Count (records per batch, writes per flush): 1 to 10000 in 1-2.5-5
 * steps (13 bounds).
 */
extern const double st_metrics_latency_buckets[];
#define ST_METRICS_LATENCY_BUCKETS_COUNT 19
extern const double st_metrics_size_buckets[];
#define ST_METRICS_SIZE_BUCKETS_COUNT 10
extern const double st_metrics_count_buckets[];
#define ST_METRICS_COUNT_BUCKETS_COUNT 13

/*
 * A series computed at scrape time. Sets *value and returns 0, or returns
 * a negative ST_E* code to leave the series out of this scrape (a store
 * not open yet). Called by st_metrics_render(), so from the HTTP thread,
 * with the registry's lock held: it must be thread-safe (read shared state
 * through atomics or under the owner's own lock), quick (it delays the
 * scrape), and must not call any st_metrics_* function but the update
 * functions (registering would deadlock). A counter's value must never
 * decrease (a count kept elsewhere); it is rendered like a gauge's double
 * (whole numbers below 1e15 print as integers).
 */
typedef int (*st_metrics_fn_t)(void *opaque, double *value);

/* Returns 0 and an empty registry in *mp (release with
 * st_metrics_destroy()), or ST_ENOMEM. */
int st_metrics_new(st_metrics_t **mp);

/* Frees the registry, every family and every child: every handle becomes
 * invalid. No other thread may use the registry or a handle any more (stop
 * the HTTP server first). NULL is allowed. */
void st_metrics_destroy(st_metrics_t *m);

/*
 * Registers a family: its type, name, HELP text (non-empty UTF-8; copied
 * like every string passed in) and up to two label names (label0, then
 * label1; NULL for none; label1 only with label0). Histograms take their
 * bucket upper bounds (finite, strictly increasing, 1 to
 * ST_METRICS_BUCKETS_MAX of them, copied; the +Inf bucket is implicit);
 * other types take NULL and 0. The family has no series until children
 * are added; a family without series is left out of the rendered text.
 * Families are rendered in the order they were registered.
 * *fp is valid until st_metrics_destroy().
 * Returns 0, ST_EINVAL (see the naming rules above; a name already
 * registered, or colliding with a histogram's _bucket/_sum/_count), or
 * ST_ENOMEM.
 */
int st_metrics_family(st_metrics_t *m, st_metrics_type_t type,
		      const char *name, const char *help, const char *label0,
		      const char *label1, const double *bounds, size_t nbounds,
		      st_metrics_family_t **fp);

/*
 * Adds the child with the given label values (one per label name of the
 * family, NULL past them; any UTF-8, the empty string included), or finds
 * it when it exists, and returns its handle, valid until
 * st_metrics_destroy(). A new child starts at zero. Returns 0, ST_EINVAL
 * (wrong type for the family, a missing or extra value, invalid UTF-8, or
 * an existing child that is a callback), or ST_ENOMEM. Takes the lock:
 * call it when a series appears, not on the hot path.
 */
int st_metrics_counter_child(st_metrics_family_t *f, const char *value0,
			     const char *value1, st_metrics_counter_t **cp);
/* For ST_METRICS_GAUGE and ST_METRICS_GAUGE_DOUBLE families. */
int st_metrics_gauge_child(st_metrics_family_t *f, const char *value0,
			   const char *value1, st_metrics_gauge_t **gp);
int st_metrics_histogram_child(st_metrics_family_t *f, const char *value0,
			       const char *value1,
			       st_metrics_histogram_t **hp);

/*
 * Adds a child computed at scrape time by fn(opaque, &value) (see
 * st_metrics_fn_t) to a counter or gauge family. Returns 0, ST_EINVAL (a
 * histogram family, bad values, or a child with these values that
 * exists already), or ST_ENOMEM.
 */
int st_metrics_child_fn(st_metrics_family_t *f, const char *value0,
			const char *value1, st_metrics_fn_t fn, void *opaque);

/*
 * Unlabelled families, registered with their only series in one call;
 * same rules and errors as st_metrics_family() and the child functions.
 * Handles are valid until st_metrics_destroy().
 */
int st_metrics_counter(st_metrics_t *m, const char *name, const char *help,
		       st_metrics_counter_t **cp);
int st_metrics_gauge(st_metrics_t *m, const char *name, const char *help,
		     st_metrics_gauge_t **gp);
int st_metrics_gauge_double(st_metrics_t *m, const char *name,
			    const char *help, st_metrics_gauge_t **gp);
int st_metrics_histogram(st_metrics_t *m, const char *name, const char *help,
			 const double *bounds, size_t nbounds,
			 st_metrics_histogram_t **hp);
int st_metrics_counter_fn(st_metrics_t *m, const char *name,
			  const char *help, st_metrics_fn_t fn, void *opaque);
int st_metrics_gauge_fn(st_metrics_t *m, const char *name, const char *help,
			st_metrics_fn_t fn, void *opaque);

/*
 * The process's own series, as Prometheus client libraries name them:
 * process_cpu_seconds_total (user + system), process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds (Unix time). Read at scrape time from
 * getrusage(), getrlimit() and /proc/self; a series whose source cannot
 * be read (no /proc) is left out of that scrape. Returns 0, ST_EINVAL
 * (registered already) or ST_ENOMEM.
 */
int st_metrics_process(st_metrics_t *m);

/*
 * Renders every family in the Prometheus text exposition format 0.0.4
 * (Content-Type: text/plain; version=0.0.4; charset=utf-8): per family a
 * "# HELP" and a "# TYPE" line, then its series in the order they were
 * added; label values escaped (\\, \", \n), HELP text escaped (\\, \n);
 * doubles in the shortest form that reads back exactly, NaN, +Inf, -Inf.
 * Calls the scrape callbacks. Returns 0 with *out (NUL-terminated,
 * *out_len bytes without the NUL; the caller frees it with free()), or
 * ST_ENOMEM (*out is NULL).
 */
int st_metrics_render(st_metrics_t *m, char **out, size_t *out_len);

/*
 * The hot path: lock-free, no allocation, relaxed atomics. Handles come
 * from the registration functions above. The structures are here only so
 * that the updates can be inlined: do not touch their fields.
 */
struct st_metrics_counter {
	_Atomic uint64_t value;
};

struct st_metrics_gauge {
	_Atomic uint64_t bits;  /* int64_t two's complement, or double bits */
	int is_double;          /* fixed at registration */
};

static inline void st_metrics_counter_add(st_metrics_counter_t *c,
					  uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static inline void st_metrics_counter_inc(st_metrics_counter_t *c)
{
	atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

/* Reads a counter (tests, periodic reports). */
static inline uint64_t st_metrics_counter_get(const st_metrics_counter_t *c)
{
	return atomic_load_explicit(&c->value, memory_order_relaxed);
}

/* Sets a gauge. On a double gauge the value is converted to double; on an
 * integer gauge, st_metrics_gauge_set_double() rounds to nearest (NaN
 * becomes 0, out-of-range values saturate). */
void st_metrics_gauge_set_double(st_metrics_gauge_t *g, double v);

static inline void st_metrics_gauge_set(st_metrics_gauge_t *g, int64_t v)
{
	if (g->is_double)
		st_metrics_gauge_set_double(g, (double)v);
	else
		atomic_store_explicit(&g->bits, (uint64_t)v,
				      memory_order_relaxed);
}

/* Adds delta (negative to decrease). st_metrics_gauge_add() on an
 * integer gauge is one atomic add (wrapping like two's complement at the
 * int64_t limits); every other case is a compare-and-swap loop, lock-free
 * but retried under contention, and st_metrics_gauge_add_double() on an
 * integer gauge rounds the result as st_metrics_gauge_set_double()
 * does. */
void st_metrics_gauge_add_double(st_metrics_gauge_t *g, double delta);

static inline void st_metrics_gauge_add(st_metrics_gauge_t *g, int64_t delta)
{
	if (g->is_double)
		st_metrics_gauge_add_double(g, (double)delta);
	else
		atomic_fetch_add_explicit(&g->bits, (uint64_t)delta,
					  memory_order_relaxed);
}

/* Reads a gauge, as a double whatever its kind (tests, reports). */
double st_metrics_gauge_get(const st_metrics_gauge_t *g);

/*
 * Records one observation in base units (seconds, bytes): one atomic
 * increment of its bucket (binary search over the bounds: v <= le) and a
 * compare-and-swap on the sum. NaN is ignored. _count is rendered as the
 * sum of the buckets, so le="+Inf" always equals _count; _sum may lag
 * them by the observations in flight during a scrape.
 */
void st_metrics_histogram_observe(st_metrics_histogram_t *h, double v);

/* Observes a duration given in nanoseconds (clock_gettime differences),
 * in seconds. */
static inline void st_metrics_histogram_observe_ns(st_metrics_histogram_t *h,
						   int64_t ns)
{
	st_metrics_histogram_observe(h, (double)ns / 1e9);
}

#endif
