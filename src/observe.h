/*
 * observe.h -- what `strata run` shows its operators: every Prometheus
 * series (README, "Metrics") and the HTTP endpoint serving them with
 * /healthz and /readyz.
 *
 * The pipeline thread updates the handles below directly (lock-free); the
 * HTTP thread renders them and calls the readiness checks, which read only
 * the atomic flags of st_observe_t.
 */
#ifndef ST_OBSERVE_H
#define ST_OBSERVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

struct st_http;
struct st_state;

/* Why input became a dead letter: the strata.errors.reason header. */
typedef enum {
	ST_DLQ_DECODE, ST_DLQ_SCHEMA, ST_DLQ_KEY, ST_DLQ_LATE, ST_DLQ_FUTURE,
	ST_DLQ_ENCODE, ST_DLQ_REASONS
} st_dlq_reason_t;

/* The pipeline's stages, timed per event or per pass. */
typedef enum {
	ST_STAGE_DECODE, ST_STAGE_JOIN, ST_STAGE_WINDOW, ST_STAGE_FEATURES,
	ST_STAGE_SCORE, ST_STAGE_REDIS, ST_STAGES
} st_stage_t;

typedef struct st_observe {
	st_metrics_t *reg;
	struct st_http *http;
	const st_config_t *conf;

	/* counters */
	st_metrics_family_t *in, *out, *dlq_f;
	st_metrics_counter_t *dlq[ST_DLQ_REASONS];
	st_metrics_counter_t *late, *stale_joins, *cdc_versions,
			     *cdc_duplicates, *redis_written, *redis_older,
			     *redis_superseded, *lmdb_commits, *lmdb_aborts,
			     *map_full, *txn_commits, *txn_aborts, *txn_lost,
			     *scores, *alerts, *processed;
	/* gauges */
	st_metrics_family_t *lag_f, *wm_delay_f;
	st_metrics_gauge_t *cdc_wm_delay, *stalled_map_full, *model_version;
	/* histograms */
	st_metrics_histogram_t *freshness, *stage[ST_STAGES], *txn_commit,
			       *lmdb_commit;

	/* readiness, written by the pipeline thread */
	atomic_int kafka_assigned;     /* partitions assigned */
	atomic_int redis_ok;
	atomic_int registry_ok;
	atomic_int state_ok;           /* not stalled on a full map */
	atomic_llong lag;              /* messages behind, all inputs */
	struct st_state *st;           /* for LMDB usage at scrape time */
} st_observe_t;

/*
 * Registers every series and, when `serve` and http.listen is set, starts
 * the HTTP endpoint. Returns 0 and *op (st_observe_destroy()), or an error
 * with errstr (an address already in use names it).
 */
int st_observe_new(st_observe_t **op, const st_config_t *conf,
		   struct st_state *st, int serve, char *errstr,
		   size_t errstr_size);

/* Stops the endpoint, then frees every series. NULL is allowed. */
void st_observe_destroy(st_observe_t *o);

/* The bound port of the endpoint (0 when none): for tests and logs. */
int st_observe_port(const st_observe_t *o);

/* Per-topic counters of messages in and out; returns NULL on ENOMEM (the
 * caller then does not count). Takes the registry lock: cache it. */
st_metrics_counter_t *st_observe_topic(st_observe_t *o, int out,
				       const char *topic);

/* Per-partition lag and event-time watermark delay gauges. */
st_metrics_gauge_t *st_observe_lag(st_observe_t *o, const char *topic,
				   int32_t partition);
st_metrics_gauge_t *st_observe_wm_delay(st_observe_t *o, const char *topic,
					int32_t partition);

/* The reason's label text. */
const char *st_observe_reason(st_dlq_reason_t r);

#endif
