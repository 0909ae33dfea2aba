/* observe.c -- the pipeline's series and its HTTP endpoint. */
#include "observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "http.h"
#include "state.h"

static const char *const reasons[ST_DLQ_REASONS] = {
	"decode", "schema", "key", "late", "future", "encode"
};

static const char *const stages[ST_STAGES] = {
	"decode", "join", "window", "features", "score", "redis"
};

const char *st_observe_reason(st_dlq_reason_t r)
{
	return r < ST_DLQ_REASONS ? reasons[r] : "unknown";
}

/* ---- scrape-time series ----------------------------------------------- */

static int lmdb_value(void *opaque, double *v, int which)
{
	st_observe_t *o = opaque;
	int64_t used, size;
	int readers, maxr;

	if (!o->st || st_state_usage(o->st, &used, &size, &readers, &maxr))
		return ST_ESTATE;
	*v = which == 0 ? (double)used : which == 1 ? (double)size :
	     which == 2 ? (double)readers : (double)maxr;
	return 0;
}

static int lmdb_used(void *o, double *v) { return lmdb_value(o, v, 0); }
static int lmdb_size(void *o, double *v) { return lmdb_value(o, v, 1); }
static int lmdb_readers(void *o, double *v) { return lmdb_value(o, v, 2); }
static int lmdb_max_readers(void *o, double *v) { return lmdb_value(o, v, 3); }

/* ---- readiness -------------------------------------------------------- */

static int ready_kafka(void *opaque, char *why, size_t size)
{
	st_observe_t *o = opaque;

	if (atomic_load(&o->kafka_assigned) > 0)
		return 0;
	return st_seterr(why, size, ST_EKAFKA,
			 "no partition of %s assigned yet",
			 o->conf->transactions_topic);
}

static int ready_redis(void *opaque, char *why, size_t size)
{
	st_observe_t *o = opaque;

	if (atomic_load(&o->redis_ok))
		return 0;
	return st_seterr(why, size, ST_EREDIS, "Redis %s:%lld unreachable",
			 o->conf->redis_host, (long long)o->conf->redis_port);
}

static int ready_registry(void *opaque, char *why, size_t size)
{
	st_observe_t *o = opaque;

	if (atomic_load(&o->registry_ok))
		return 0;
	return st_seterr(why, size, ST_ENET, "schema registry %s unreachable",
			 o->conf->registry_url);
}

static int ready_state(void *opaque, char *why, size_t size)
{
	st_observe_t *o = opaque;

	if (atomic_load(&o->state_ok))
		return 0;
	return st_seterr(why, size, ST_EFULL,
			 "LMDB map full: raise state.map.size");
}

static int ready_caught_up(void *opaque, char *why, size_t size)
{
	st_observe_t *o = opaque;
	long long lag = atomic_load(&o->lag);

	if (lag <= o->conf->http_ready_max_lag)
		return 0;
	return st_seterr(why, size, ST_EAGAIN, "%lld messages behind (more "
			 "than http.ready.max.lag %lld)", lag,
			 (long long)o->conf->http_ready_max_lag);
}

/* ---- registration ----------------------------------------------------- */

#define C(name, help, field) \
	if (!err) err = st_metrics_counter(o->reg, name, help, &o->field)

int st_observe_new(st_observe_t **op, const st_config_t *conf,
		   struct st_state *st, int serve, char *errstr,
		   size_t errstr_size)
{
	st_observe_t *o = calloc(1, sizeof(*o));
	st_metrics_family_t *f;
	int err;

	if (!o)
		return ST_ENOMEM;
	o->conf = conf;
	o->st = st;
	atomic_init(&o->kafka_assigned, 0);
	atomic_init(&o->redis_ok, 1);
	atomic_init(&o->registry_ok, 1);
	atomic_init(&o->state_ok, 1);
	atomic_init(&o->lag, 0);
	if ((err = st_metrics_new(&o->reg)))
		goto fail;
	err = st_metrics_family(o->reg, ST_METRICS_COUNTER,
				"strata_messages_in_total",
				"Messages consumed, per input topic (CDC and "
				"transactions).", "topic", NULL, NULL, 0,
				&o->in);
	if (!err)
		err = st_metrics_family(o->reg, ST_METRICS_COUNTER,
					"strata_messages_out_total",
					"Messages produced, per output topic "
					"(features, dead letters).", "topic",
					NULL, NULL, 0, &o->out);
	if (!err)
		err = st_metrics_family(o->reg, ST_METRICS_COUNTER,
					"strata_dead_letters_total",
					"Inputs sent to the dead-letter topic, "
					"per reason.", "reason", NULL, NULL, 0,
					&o->dlq_f);
	for (int r = 0; !err && r < ST_DLQ_REASONS; r++)
		err = st_metrics_counter_child(o->dlq_f, reasons[r], NULL,
					       &o->dlq[r]);
	C("strata_messages_processed_total", "Messages of the transactions "
	  "topic processed (events and dead letters); those of a batch done "
	  "again count again.", processed);
	C("strata_late_events_total", "Events later than "
	  "window.allowed.lateness (also counted as dead letters).", late);
	C("strata_stale_joins_total", "Events joined at join.max.wait, before "
	  "the CDC watermark passed their time.", stale_joins);
	C("strata_cdc_versions_total", "Row versions stored in the temporal "
	  "store.", cdc_versions);
	C("strata_cdc_duplicates_total", "CDC changes delivered again (no "
	  "effect).", cdc_duplicates);
	C("strata_redis_writes_total", "Feature vectors written to Redis.",
	  redis_written);
	C("strata_redis_rejected_older_total", "Writes Redis refused: older "
	  "than the stored vector.", redis_older);
	C("strata_redis_superseded_total", "Vectors not sent: a newer one of "
	  "the same entity was in the batch.", redis_superseded);
	C("strata_lmdb_commits_total", "LMDB transactions committed (state and "
	  "input offsets together).", lmdb_commits);
	C("strata_lmdb_aborts_total", "Batches thrown away and processed "
	  "again.", lmdb_aborts);
	C("strata_lmdb_map_full_total", "Batches aborted on a full LMDB map.",
	  map_full);
	C("strata_kafka_transactions_committed_total", "Kafka transactions "
	  "committed (exactly.once).", txn_commits);
	C("strata_kafka_transactions_aborted_total", "Kafka transactions "
	  "aborted.", txn_aborts);
	C("strata_kafka_transactions_lost_total", "Kafka transactions "
	  "acknowledged as committed that did not read back (the coordinator "
	  "lost them); their batches were processed again.", txn_lost);
	C("strata_scores_total", "Feature vectors scored by the model.",
	  scores);
	C("strata_alerts_total", "Scores at or above scorer.threshold.",
	  alerts);
	if (!err)
		err = st_metrics_family(o->reg, ST_METRICS_GAUGE,
					"strata_consumer_lag_messages",
					"Messages in the partition after the "
					"next one to process.", "topic",
					"partition", NULL, 0, &o->lag_f);
	if (!err)
		err = st_metrics_family(o->reg, ST_METRICS_GAUGE_DOUBLE,
					"strata_watermark_delay_seconds",
					"Wall clock minus the partition's newest "
					"event time processed.", "topic",
					"partition", NULL, 0, &o->wm_delay_f);
	if (!err)
		err = st_metrics_gauge_double(o->reg,
					      "strata_cdc_watermark_delay_seconds",
					      "Wall clock minus the CDC "
					      "watermark.", &o->cdc_wm_delay);
	if (!err)
		err = st_metrics_gauge(o->reg, "strata_lmdb_map_full",
				       "1 while ingestion is stalled on a full "
				       "LMDB map.", &o->stalled_map_full);
	if (!err)
		err = st_metrics_gauge_fn(o->reg, "strata_lmdb_used_bytes",
					  "Bytes of the LMDB map in use.",
					  lmdb_used, o);
	if (!err)
		err = st_metrics_gauge_fn(o->reg, "strata_lmdb_map_size_bytes",
					  "The LMDB map size (state.map.size).",
					  lmdb_size, o);
	if (!err)
		err = st_metrics_gauge_fn(o->reg, "strata_lmdb_readers",
					  "LMDB reader slots in use.",
					  lmdb_readers, o);
	if (!err)
		err = st_metrics_gauge_fn(o->reg, "strata_lmdb_max_readers",
					  "LMDB reader slots.", lmdb_max_readers,
					  o);
	if (!err)
		err = st_metrics_gauge(o->reg, "strata_model_version",
				       "Version of the loaded ONNX model (its "
				       "model_version field); 0 when none.",
				       &o->model_version);
	if (!err)
		err = st_metrics_histogram(o->reg, "strata_freshness_seconds",
					   "Event time to the Redis write of its "
					   "vector.", st_metrics_latency_buckets,
					   ST_METRICS_LATENCY_BUCKETS_COUNT,
					   &o->freshness);
	if (!err)
		err = st_metrics_family(o->reg, ST_METRICS_HISTOGRAM,
					"strata_stage_seconds",
					"Time per event (decode, join, window, "
					"features) or per pass (score, redis).",
					"stage", NULL, st_metrics_latency_buckets,
					ST_METRICS_LATENCY_BUCKETS_COUNT, &f);
	for (int s = 0; !err && s < ST_STAGES; s++)
		err = st_metrics_histogram_child(f, stages[s], NULL,
						 &o->stage[s]);
	if (!err)
		err = st_metrics_histogram(o->reg,
					   "strata_kafka_transaction_commit_seconds",
					   "Time to commit a Kafka transaction "
					   "and read its offsets back.",
					   st_metrics_latency_buckets,
					   ST_METRICS_LATENCY_BUCKETS_COUNT,
					   &o->txn_commit);
	if (!err)
		err = st_metrics_histogram(o->reg, "strata_lmdb_commit_seconds",
					   "Time to commit an LMDB transaction.",
					   st_metrics_latency_buckets,
					   ST_METRICS_LATENCY_BUCKETS_COUNT,
					   &o->lmdb_commit);
	if (!err)
		err = st_metrics_process(o->reg);
	if (err) {
		st_seterr(errstr, errstr_size, err, "metrics: %s",
			  st_strerror(err));
		goto fail;
	}
	if (serve && *conf->http_listen) {
		if ((err = st_http_start(&o->http, conf->http_listen, o->reg,
					 errstr, errstr_size)))
			goto fail;
		if ((err = st_http_add_check(o->http, "kafka", ready_kafka, o)) ||
		    (err = st_http_add_check(o->http, "redis", ready_redis, o)) ||
		    (err = st_http_add_check(o->http, "registry",
					     ready_registry, o)) ||
		    (err = st_http_add_check(o->http, "state", ready_state, o)) ||
		    (err = st_http_add_check(o->http, "caught_up",
					     ready_caught_up, o))) {
			st_seterr(errstr, errstr_size, err, "readiness checks: "
				  "%s", st_strerror(err));
			goto fail;
		}
	}
	*op = o;
	return 0;
fail:
	st_observe_destroy(o);
	return err;
}

void st_observe_destroy(st_observe_t *o)
{
	if (!o)
		return;
	st_http_stop(o->http);
	st_metrics_destroy(o->reg);
	free(o);
}

int st_observe_port(const st_observe_t *o)
{
	return o && o->http ? st_http_port(o->http) : 0;
}

st_metrics_counter_t *st_observe_topic(st_observe_t *o, int out,
				       const char *topic)
{
	st_metrics_counter_t *c = NULL;

	if (st_metrics_counter_child(out ? o->out : o->in, topic, NULL, &c))
		return NULL;
	return c;
}

static st_metrics_gauge_t *part_gauge(st_metrics_family_t *f,
				      const char *topic, int32_t partition)
{
	st_metrics_gauge_t *g = NULL;
	char p[16];

	snprintf(p, sizeof(p), "%d", partition);
	if (st_metrics_gauge_child(f, topic, p, &g))
		return NULL;
	return g;
}

st_metrics_gauge_t *st_observe_lag(st_observe_t *o, const char *topic,
				   int32_t partition)
{
	return part_gauge(o->lag_f, topic, partition);
}

st_metrics_gauge_t *st_observe_wm_delay(st_observe_t *o, const char *topic,
					int32_t partition)
{
	return part_gauge(o->wm_delay_f, topic, partition);
}
