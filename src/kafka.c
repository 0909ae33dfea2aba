/* kafka.c -- librdkafka configuration and logging glue. */
#include "kafka.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "timefmt.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	(void)rk;
	/* One file (and strata's defaults) configures both roles: a
	 * property of the other role is expected, not worth a warning. */
	if (!strcmp(fac, "CONFWARN") && strstr(buf, " property and will be "
					       "ignored by this "))
		level = ST_LOG_DEBUG;
	st_log(level, "rdkafka", "%s", buf);
}

static int set(rd_kafka_conf_t *kc, const char *name, const char *value,
	       const char *where, char *errstr, size_t errstr_size)
{
	char rderr[512];

	if (rd_kafka_conf_set(kc, name, value, rderr, sizeof(rderr)) ==
	    RD_KAFKA_CONF_OK)
		return 0;
	return st_seterr(errstr, errstr_size, ST_EINVAL, "%s: kafka.%s: %s",
			 where, name, rderr);
}

rd_kafka_t *st_kafka_new(const st_config_t *conf, st_kafka_role_t role,
			 const st_kafka_opts_t *opts, char *errstr,
			 size_t errstr_size)
{
	static const char *const consumer_defaults[][2] = {
		{"group.id", "strata"},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"auto.offset.reset", "earliest"},
		{"isolation.level", "read_committed"},
		/* A restarted instance waits out its dead predecessor's
		 * session before the group rebalances: keep it short. */
		{"session.timeout.ms", "10000"},
		{"heartbeat.interval.ms", "2000"},
		{"socket.nagle.disable", "true"},
		/* A commit is read back right after it is acknowledged, and
		 * the group's offsets read as unstable until the coordinator
		 * has written its markers: librdkafka retries the offset
		 * fetch at this backoff inside rd_kafka_committed(), holding
		 * the loop (at its default 100 ms, freshness p99 at 1,000
		 * events/s was 107 ms against 7.7 ms at 2, side by side).
		 * librdkafka 2.0.2 calls it a producer property and warns on
		 * a consumer, but its request retries use it all the same. */
		{"retry.backoff.ms", "2"},
	};
	static const char *const producer_defaults[][2] = {
		{"enable.idempotence", "true"},
		/* Bigger batches, fewer produce requests and wake-ups: on a
		 * 300,000-event backlog 170,455 events per CPU-second against
		 * 105,634 at 5 ms (median of 5 pairs, each pair higher). A
		 * transaction's output is not visible before its commit, and
		 * the commit sends what waits without lingering; with
		 * exactly.once=false the features topic trails by up to
		 * 50 ms (Redis does not wait for it). */
		{"linger.ms", "50"},
		{"socket.nagle.disable", "true"},
		/* A new transaction's first partitions are refused (concurrent
		 * transactions) until the last one's markers are written:
		 * retried at the default 100 ms, its output waited that long. */
		{"retry.backoff.ms", "10"},
	};
	const char *const (*defs)[2] = role == ST_KAFKA_CONSUMER ?
		consumer_defaults : producer_defaults;
	size_t ndefs = role == ST_KAFKA_CONSUMER ?
		sizeof(consumer_defaults) / sizeof(consumer_defaults[0]) :
		sizeof(producer_defaults) / sizeof(producer_defaults[0]);
	static const st_kafka_opts_t none;
	const char *const *overrides;
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	char where[600], rderr[512], group[512];
	rd_kafka_t *rk;

	if (!opts)
		opts = &none;
	overrides = opts->overrides;
	for (size_t i = 0; i < ndefs; i++)
		if (set(kc, defs[i][0], defs[i][1], "default", errstr,
			errstr_size))
			goto fail;
	for (size_t i = 0; i < conf->kafka_count; i++) {
		const st_config_kv_t *kv = &conf->kafka[i];

		/* Consumer-only and producer-only properties may share one
		 * file: librdkafka warns, but does not fail, on a property of
		 * the other role. */
		if (kv->line)
			snprintf(where, sizeof(where), "%s:%d",
				 conf->path ? conf->path : "?", kv->line);
		else
			snprintf(where, sizeof(where), "-X");
		if (set(kc, kv->name, kv->value, where, errstr, errstr_size))
			goto fail;
	}
	if (role == ST_KAFKA_CONSUMER && opts->group_suffix) {
		size_t len = sizeof(group);

		if (rd_kafka_conf_get(kc, "group.id", group, &len) !=
		    RD_KAFKA_CONF_OK)
			group[0] = '\0';
		strncat(group, opts->group_suffix,
			sizeof(group) - strlen(group) - 1);
		if (set(kc, "group.id", group, "group.id", errstr,
			errstr_size))
			goto fail;
	}
	for (; overrides && overrides[0]; overrides += 2)
		if (set(kc, overrides[0], overrides[1], "strata", errstr,
			errstr_size))
			goto fail;
	rd_kafka_conf_set_log_cb(kc, log_cb);
	if (opts->dr_msg_cb)
		rd_kafka_conf_set_dr_msg_cb(kc, opts->dr_msg_cb);
	if (opts->rebalance_cb)
		rd_kafka_conf_set_rebalance_cb(kc, opts->rebalance_cb);
	if (opts->error_cb)
		rd_kafka_conf_set_error_cb(kc, opts->error_cb);
	if (opts->opaque)
		rd_kafka_conf_set_opaque(kc, opts->opaque);
	rk = rd_kafka_new(role == ST_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER :
			  RD_KAFKA_PRODUCER, kc, rderr, sizeof(rderr));
	if (!rk) {
		/* On failure the configuration is still ours to free. */
		st_seterr(errstr, errstr_size, ST_EKAFKA,
			  "cannot create Kafka client: %s", rderr);
		goto fail;
	}
	return rk;
fail:
	rd_kafka_conf_destroy(kc);
	return NULL;
}

static int retriable_offset_err(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
	       e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
	       e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
	       e == RD_KAFKA_RESP_ERR__TRANSPORT;
}

int st_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
		       int wait_ms, char *errstr, size_t errstr_size)
{
	int64_t give_up = st_time_mono_us() + (int64_t)wait_ms * 1000;

	for (int attempt = 0;; attempt++) {
		rd_kafka_resp_err_t rerr, perr = RD_KAFKA_RESP_ERR_NO_ERROR;
		const rd_kafka_topic_partition_t *bad = NULL;

		for (int i = 0; i < l->cnt; i++) {
			l->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
			l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
		}
		int64_t left = (give_up - st_time_mono_us()) / 1000;

		rerr = rd_kafka_committed(rk, l, left < 1 ? 1 :
					  left < 10000 ? (int)left : 10000);
		for (int i = 0; !rerr && i < l->cnt && !bad; i++)
			if (l->elems[i].err) {
				bad = &l->elems[i];
				perr = bad->err;
			}
		if (!rerr && !bad)
			return 0;
		if (!retriable_offset_err(rerr ? rerr : perr) ||
		    st_time_mono_us() >= give_up) {
			if (bad)
				return st_seterr(errstr, errstr_size,
						 ST_EKAFKA, "reading the "
						 "committed offset of %s "
						 "[%d]: %s", bad->topic,
						 (int)bad->partition,
						 rd_kafka_err2str(perr));
			return st_seterr(errstr, errstr_size, ST_EKAFKA,
					 "reading committed offsets: %s",
					 rd_kafka_err2str(rerr));
		}
		if (attempt == 9)	/* after about 0.65 s */
			st_log(ST_LOG_INFO, "kafka", "committed offsets not "
			       "readable yet (%s); waiting",
			       rd_kafka_err2str(rerr ? rerr : perr));
		/* Backoff 2, 4, 8 .. 128 ms, then 200: pending transaction
		 * markers land within milliseconds, a coordinator loading
		 * takes seconds. */
		usleep(attempt < 7 ? 2000u << attempt : 200000u);
	}
}

int st_kafka_message_committed(rd_kafka_t *rk, const char *topic,
			       int32_t partition, int64_t offset, int wait_ms,
			       char *errstr, size_t errstr_size)
{
	int64_t give_up = st_time_mono_us() + (int64_t)wait_ms * 1000, lo, hi;
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t rerr;
	int result = ST_ETIMEDOUT;

	/* The last stable offset (a read_committed consumer's end) must be
	 * past the message: before that its transaction is still open. */
	for (;;) {
		rerr = rd_kafka_query_watermark_offsets(rk, topic, partition,
							&lo, &hi, 5000);
		if (!rerr && hi > offset)
			break;
		if (st_time_mono_us() >= give_up) {
			result = rerr ? ST_EKAFKA : ST_ETIMEDOUT;
			st_seterr(errstr, errstr_size, result, "%s [%d]: the "
				  "transaction of offset %" PRId64 " did not "
				  "complete: %s", topic, (int)partition,
				  offset, rerr ? rd_kafka_err2str(rerr) :
				  "the last stable offset stays before it");
			goto out;
		}
		usleep(50000);
	}
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset =
		offset;
	if ((rerr = rd_kafka_assign(rk, l))) {
		result = st_seterr(errstr, errstr_size, ST_EKAFKA, "%s [%d]: "
				   "assign: %s", topic, (int)partition,
				   rd_kafka_err2str(rerr));
		goto out;
	}
	/* The first message read from there, or the end: aborted messages
	 * are skipped by the read_committed fetch. */
	while (result == ST_ETIMEDOUT && st_time_mono_us() < give_up) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			result = 0;
		else if (!m->err && m->partition == partition)
			result = m->offset == offset;
		rd_kafka_message_destroy(m);
	}
	if (result == ST_ETIMEDOUT)
		st_seterr(errstr, errstr_size, result, "%s [%d]: offset %"
			  PRId64 " not read within %d ms", topic,
			  (int)partition, offset, wait_ms);
	rd_kafka_assign(rk, NULL);
out:
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	return result;
}
