/* ingest.c -- the CDC consumer, its offsets in LMDB, and the CDC
 * watermark prober. */
#include "ingest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc.h"
#include "dlq.h"
#include "error.h"
#include "kafka.h"
#include "log.h"
#include "observe.h"
#include "temporal.h"
#include "timefmt.h"

#define PROBE_INTERVAL_US 20000
#define QUERY_TIMEOUT_MS 2000
#define HEARTBEAT_QUERY_MS 10000

typedef struct {
	char *topic;
	int32_t partition;
	int64_t position;      /* next offset to apply */
	int64_t quiet_until;   /* dead letters before it are already out */
	int dirty;             /* position not yet written to LMDB */
	st_metrics_counter_t *in;   /* messages consumed */
	st_metrics_gauge_t *lag;
} cdc_part_t;

struct st_ingest {
	rd_kafka_t *rk;
	rd_kafka_t *probe;     /* its own connection: the consumer's fetches
				* (long polls) would delay offset queries */
	rd_kafka_queue_t *queue;
	st_state_t *st;
	rd_kafka_t *dlq;
	st_observe_t *obs;
	st_metrics_counter_t *dlq_out;
	char *dlq_topic;
	char *heartbeat_topic;   /* NULL when none */
	int64_t max_future_ms;
	char **topics;
	cdc_part_t *parts;
	size_t nparts;

	pthread_t prober;
	int prober_started;
	atomic_int stop;
	atomic_llong newest;
	pthread_mutex_t lock;  /* parts list shape, candidate */
	int cand_ready;
	int64_t cand_ts;
	int64_t *cand_targets;
	size_t cand_n;
	int64_t watermark;
	unsigned rewinds;      /* st_ingest_rewind() calls: the prober probes
				* again after one, for the same time too */
};

static cdc_part_t *find_part(st_ingest_t *in, const char *topic,
			     int32_t partition)
{
	for (size_t i = 0; i < in->nparts; i++)
		if (in->parts[i].partition == partition &&
		    !strcmp(in->parts[i].topic, topic))
			return &in->parts[i];
	return NULL;
}

/* Adds the partitions of `topic` that are not assigned yet to `add`. */
static void collect_new(st_ingest_t *in, const rd_kafka_metadata_topic_t *mt,
			rd_kafka_topic_partition_list_t *add)
{
	for (int p = 0; p < mt->partition_cnt; p++)
		if (!find_part(in, mt->topic, mt->partitions[p].id))
			rd_kafka_topic_partition_list_add(add, mt->topic,
							  mt->partitions[p].id);
}

/*
 * The heartbeat table carries progress, not data, and only its newest
 * change counts: a partition is read from its last HEARTBEAT_TAIL
 * offsets, not through every heartbeat since the connector started (ten
 * a second at the shipped heartbeat.interval.ms, which a fresh state
 * would otherwise decode, hours of them, before its first join). A few
 * rather than one, so that a transaction marker at the end (a connector
 * writing exactly-once) does not hide the newest heartbeat. The
 * watermark stays proven: the prober reads every partition's end after
 * the heartbeat it saw.
 */
#define HEARTBEAT_TAIL 16

static int is_heartbeat(const st_ingest_t *in, const char *topic)
{
	return in->heartbeat_topic && !strcmp(topic, in->heartbeat_topic);
}

/* Where a heartbeat partition is read from: its end less HEARTBEAT_TAIL,
 * or -1 when that is unknown (then it is read from where LMDB has it). */
static int64_t heartbeat_start(st_ingest_t *in, const char *topic,
			       int32_t partition)
{
	int64_t lo, hi;
	rd_kafka_resp_err_t rerr = rd_kafka_query_watermark_offsets(
		in->rk, topic, partition, &lo, &hi, HEARTBEAT_QUERY_MS);

	if (rerr) {
		st_log(ST_LOG_WARNING, "cdc", "%s [%d]: end offsets: %s; "
		       "reading every heartbeat from the stored position",
		       topic, partition, rd_kafka_err2str(rerr));
		return -1;
	}
	return hi - HEARTBEAT_TAIL > lo ? hi - HEARTBEAT_TAIL : lo;
}

int st_ingest_refresh(st_ingest_t *in, char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *add, *all = NULL;
	rd_kafka_resp_err_t rerr;
	cdc_part_t *np;
	int err = 0;

	add = rd_kafka_topic_partition_list_new(8);
	rerr = rd_kafka_metadata(in->rk, 1, NULL, &md, 5000);
	if (rerr) {
		err = st_seterr(errstr, errstr_size, ST_EKAFKA,
				"CDC topic metadata: %s", rd_kafka_err2str(rerr));
		goto out;
	}
	for (char **t = in->topics; *t; t++) {
		int found = 0;

		for (int i = 0; i < md->topic_cnt; i++) {
			if (strcmp(md->topics[i].topic, *t) ||
			    md->topics[i].err)
				continue;
			collect_new(in, &md->topics[i], add);
			found = 1;
		}
		if (!found && !in->nparts)
			st_log(ST_LOG_WARNING, "cdc", "topic %s does not exist "
			       "yet; will look again", *t);
	}
	if (!add->cnt)
		goto out;
	/* Where the new heartbeat partitions start, asked before the lock
	 * (the prober takes it), kept in the list's offsets meanwhile. */
	for (int i = 0; i < add->cnt; i++)
		add->elems[i].offset = is_heartbeat(in, add->elems[i].topic) ?
			heartbeat_start(in, add->elems[i].topic,
					add->elems[i].partition) : -1;
	/* The prober reads the list under the lock: realloc under it too. */
	pthread_mutex_lock(&in->lock);
	np = realloc(in->parts, (in->nparts + (size_t)add->cnt) * sizeof(*np));
	if (!np) {
		pthread_mutex_unlock(&in->lock);
		err = ST_ENOMEM;
		goto out;
	}
	in->parts = np;
	for (int i = 0; i < add->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &add->elems[i];
		cdc_part_t *p = &in->parts[in->nparts];
		int64_t off, tail = tp->offset;

		p->topic = strdup(tp->topic);
		p->partition = tp->partition;
		p->quiet_until = -1;
		p->dirty = 0;
		p->in = in->obs ? st_observe_topic(in->obs, 0, tp->topic) : NULL;
		p->lag = in->obs ? st_observe_lag(in->obs, tp->topic,
						  tp->partition) : NULL;
		if (!st_state_offset_get(in->st, tp->topic, tp->partition, &off,
					 NULL, NULL, 0)) {
			tp->offset = off;
			p->position = off;
		} else {
			tp->offset = RD_KAFKA_OFFSET_BEGINNING;
			p->position = 0;
		}
		if (tail > p->position) {
			tp->offset = p->position = tail;
			p->dirty = 1;
		}
		in->nparts++;
		if (tp->offset < 0)
			st_log(ST_LOG_INFO, "cdc", "reading %s [%d] from the "
			       "beginning", tp->topic, tp->partition);
		else
			st_log(ST_LOG_INFO, "cdc", "reading %s [%d] from "
			       "offset %lld", tp->topic, tp->partition,
			       (long long)tp->offset);
	}
	in->cand_ready = 0;  /* the candidate did not cover new partitions */
	pthread_mutex_unlock(&in->lock);
	/* assign() replaces the assignment: pass every partition. */
	all = rd_kafka_topic_partition_list_new((int)in->nparts);
	for (size_t i = 0; i < in->nparts; i++) {
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
			all, in->parts[i].topic, in->parts[i].partition);

		tp->offset = in->parts[i].position > 0 ? in->parts[i].position :
			     RD_KAFKA_OFFSET_BEGINNING;
	}
	rerr = rd_kafka_assign(in->rk, all);
	if (rerr)
		err = st_seterr(errstr, errstr_size, ST_EKAFKA,
				"assigning CDC partitions: %s",
				rd_kafka_err2str(rerr));
out:
	if (all)
		rd_kafka_topic_partition_list_destroy(all);
	rd_kafka_topic_partition_list_destroy(add);
	if (md)
		rd_kafka_metadata_destroy(md);
	return err;
}

/* The prober: turns "newest source time seen" into a provable watermark
 * candidate by reading the end offsets of every CDC partition after it. */
static void *prober_main(void *arg)
{
	st_ingest_t *in = arg;
	int64_t probed = -1;
	unsigned rewinds = 0;

	while (!atomic_load(&in->stop)) {
		int64_t x = atomic_load(&in->newest), *targets;
		char **names;
		int32_t *ids;
		size_t n;
		int ok = 1, busy;

		pthread_mutex_lock(&in->lock);
		busy = in->cand_ready;
		n = in->nparts;
		if (rewinds != in->rewinds) {
			/* The watermark was reset: what was probed before
			 * must be proven again, even with nothing newer. */
			rewinds = in->rewinds;
			probed = -1;
		}
		pthread_mutex_unlock(&in->lock);
		if (x <= probed || busy || !n) {
			usleep(PROBE_INTERVAL_US);
			continue;
		}
		targets = calloc(n, sizeof(*targets));
		names = calloc(n, sizeof(*names));
		ids = calloc(n, sizeof(*ids));
		pthread_mutex_lock(&in->lock);
		for (size_t i = 0; targets && names && ids && i < n; i++) {
			names[i] = strdup(in->parts[i].topic);
			ids[i] = in->parts[i].partition;
		}
		pthread_mutex_unlock(&in->lock);
		for (size_t i = 0; ok && targets && names && ids && i < n; i++) {
			int64_t lo, hi;

			ok = names[i] && !rd_kafka_query_watermark_offsets(
				in->probe, names[i], ids[i], &lo, &hi,
				QUERY_TIMEOUT_MS);
			if (ok)
				targets[i] = hi;
		}
		pthread_mutex_lock(&in->lock);
		if (ok && targets && names && ids && n == in->nparts) {
			free(in->cand_targets);
			in->cand_targets = targets;
			in->cand_n = n;
			in->cand_ts = x;
			in->cand_ready = 1;
			targets = NULL;
			probed = x;
		}
		pthread_mutex_unlock(&in->lock);
		for (size_t i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
		free(ids);
		free(targets);
		if (!ok)
			usleep(PROBE_INTERVAL_US * 10);
	}
	return NULL;
}

int st_ingest_new(st_ingest_t **ip, const st_config_t *conf, st_state_t *st,
		  rd_kafka_t *dlq, st_observe_t *obs, char *errstr,
		  size_t errstr_size)
{
	st_ingest_t *in = calloc(1, sizeof(*in));
	size_t ntopics = 0;
	char **v;
	int err;

	if (!in)
		return ST_ENOMEM;
	pthread_mutex_init(&in->lock, NULL);
	atomic_init(&in->newest, -1);
	atomic_init(&in->stop, 0);
	in->watermark = -1;
	in->st = st;
	in->dlq = dlq;
	in->obs = obs;
	in->dlq_topic = strdup(conf->dlq_topic);
	if (obs && dlq)
		in->dlq_out = st_observe_topic(obs, 1, conf->dlq_topic);
	in->topics = st_split_list(conf->cdc_topics, &ntopics);
	if (!in->dlq_topic || !in->topics) {
		err = ST_ENOMEM;
		goto fail;
	}
	in->max_future_ms = conf->max_future_ms;
	if (*conf->cdc_heartbeat_topic) {
		v = realloc(in->topics, (ntopics + 2) * sizeof(*v));
		if (!v) {
			err = ST_ENOMEM;
			goto fail;
		}
		in->topics = v;
		v[ntopics] = strdup(conf->cdc_heartbeat_topic);
		v[++ntopics] = NULL;
		in->heartbeat_topic = strdup(conf->cdc_heartbeat_topic);
		if (!v[ntopics - 1] || !in->heartbeat_topic) {
			err = ST_ENOMEM;
			goto fail;
		}
	}
	static const char *const overrides[] = {
		"enable.partition.eof", "true", NULL
	};

	const st_kafka_opts_t opts = {
		.group_suffix = "-cdc", .overrides = overrides
	};

	in->rk = st_kafka_new(conf, ST_KAFKA_CONSUMER, &opts, errstr,
			      errstr_size);
	if (!in->rk) {
		err = ST_EKAFKA;
		goto fail;
	}
	in->queue = rd_kafka_queue_get_consumer(in->rk);
	in->probe = st_kafka_new(conf, ST_KAFKA_PRODUCER, NULL, errstr,
				 errstr_size);
	if (!in->probe) {
		err = ST_EKAFKA;
		goto fail;
	}
	if ((err = st_ingest_refresh(in, errstr, errstr_size)))
		goto fail;
	if (pthread_create(&in->prober, NULL, prober_main, in)) {
		err = st_seterr(errstr, errstr_size, ST_ENOMEM,
				"cannot start the CDC watermark thread");
		goto fail;
	}
	in->prober_started = 1;
	*ip = in;
	return 0;
fail:
	st_ingest_destroy(in);
	return err;
}

void st_ingest_destroy(st_ingest_t *in)
{
	if (!in)
		return;
	atomic_store(&in->stop, 1);
	if (in->prober_started)
		pthread_join(in->prober, NULL);
	if (in->queue)
		rd_kafka_queue_destroy(in->queue);
	if (in->rk) {
		rd_kafka_consumer_close(in->rk);
		rd_kafka_destroy(in->rk);
	}
	if (in->probe)
		rd_kafka_destroy(in->probe);
	for (size_t i = 0; i < in->nparts; i++)
		free(in->parts[i].topic);
	free(in->parts);
	free(in->cand_targets);
	st_strv_free(in->topics);
	free(in->dlq_topic);
	free(in->heartbeat_topic);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

void st_ingest_io_event(st_ingest_t *in, int fd)
{
	static const char one = 1;

	rd_kafka_queue_io_event_enable(in->queue, fd, &one, 1);
}

static void note_newest(st_ingest_t *in, int64_t ts)
{
	/* A commit time ahead of our clock by more than the allowed skew is
	 * not believed: it would let every event through unjoined and make
	 * retention remove live versions. */
	if (ts > st_time_now_ms() + in->max_future_ms) {
		st_log(ST_LOG_WARNING, "cdc", "source time %lld ms is more than "
		       "%lld ms ahead of the clock; not advancing the CDC "
		       "watermark with it", (long long)ts,
		       (long long)in->max_future_ms);
		return;
	}
	if (ts > atomic_load(&in->newest))
		atomic_store(&in->newest, ts);
}

static int dead_letter(st_ingest_t *in, const st_dlq_origin_t *o,
		       const char *reason, const char *why, char *errstr,
		       size_t errstr_size)
{
	cdc_part_t *p = find_part(in, o->topic, o->partition);
	int err;

	if (!in->dlq || (p && o->offset < p->quiet_until))
		return 0;   /* a replay, or produced before a crash */
	while ((err = st_dlq_send(in->dlq, in->dlq_topic, o, reason, why)) ==
	       ST_EAGAIN)
		rd_kafka_poll(in->dlq, 10);
	if (err)
		return st_seterr(errstr, errstr_size, err, "cannot send a dead "
				 "letter to %s: %s", in->dlq_topic,
				 st_strerror(err));
	if (in->dlq_out)
		st_metrics_counter_inc(in->dlq_out);
	if (in->obs)
		st_metrics_counter_inc(in->obs->dlq[!strcmp(reason, "key") ?
					ST_DLQ_KEY : ST_DLQ_DECODE]);
	return 0;
}

/* Applies one message; malformed ones become dead letters. */
static int apply_message(st_ingest_t *in, rd_kafka_message_t *rkm,
			 st_ingest_stats_t *stats, char *errstr,
			 size_t errstr_size)
{
	const char *topic = rd_kafka_topic_name(rkm->rkt);
	st_apply_result_t result;
	char why[512];
	st_cdc_msg_t m;
	int err = 0;

	if (st_cdc_decode(topic, rkm->key, rkm->key_len, rkm->payload,
			  rkm->len, &m, why, sizeof(why))) {
		st_dlq_origin_t o = {topic, rkm->partition, rkm->offset, -1,
				     rkm->key, rkm->key_len, rkm->payload,
				     rkm->len};

		st_log(ST_LOG_WARNING, "cdc", "%s [%d] @%lld: %s: %s%s",
		       topic, rkm->partition, (long long)rkm->offset, why,
		       in->dlq ? "sent to " : "skipped",
		       in->dlq ? in->dlq_topic : "");
		stats->dead_letters++;
		return dead_letter(in, &o, "decode", why, errstr, errstr_size);
	}
	if (m.kind == ST_CDC_CHANGE && is_heartbeat(in, topic)) {
		/* The heartbeat table: progress, not reference data. */
		note_newest(in, m.ts_ms);
		stats->heartbeats++;
		goto out;
	}
	err = st_temporal_apply(in->st, &m, &result, errstr, errstr_size);
	if (err == ST_EINVAL) {
		/* A key strata cannot store: a dead letter, not a stop. */
		st_dlq_origin_t o = {topic, rkm->partition, rkm->offset, -1,
				     rkm->key, rkm->key_len, rkm->payload,
				     rkm->len};

		st_log(ST_LOG_WARNING, "cdc", "%s [%d] @%lld: %s: %s%s",
		       topic, rkm->partition, (long long)rkm->offset, errstr,
		       in->dlq ? "sent to " : "skipped",
		       in->dlq ? in->dlq_topic : "");
		stats->dead_letters++;
		snprintf(why, sizeof(why), "%s", errstr);
		err = dead_letter(in, &o, "key", why, errstr, errstr_size);
		goto out;
	}
	if (err)
		goto out;
	switch (m.kind) {
	case ST_CDC_CHANGE:
		note_newest(in, m.ts_ms);
		if (result == ST_APPLY_STORED)
			stats->versions++;
		else
			stats->duplicates++;
		if (in->obs)
			st_metrics_counter_inc(result == ST_APPLY_STORED ?
					       in->obs->cdc_versions :
					       in->obs->cdc_duplicates);
		st_log(ST_LOG_DEBUG, "cdc", "%s [%d] @%lld: %s %s key=%s "
		       "ts_ms=%lld lsn=%lld%s", topic, rkm->partition,
		       (long long)rkm->offset, st_cdc_op_name(m.op), m.table,
		       m.key, (long long)m.ts_ms, (long long)m.lsn,
		       result == ST_APPLY_DUPLICATE ? " (duplicate)" : "");
		break;
	case ST_CDC_HEARTBEAT:
		/* Debezium's heartbeat record carries the connector's clock,
		 * not a commit time: it proves nothing about the WAL. */
		stats->heartbeats++;
		break;
	default:
		break;
	}
out:
	st_cdc_msg_clear(&m);
	return err;
}

int st_ingest_poll(st_ingest_t *in, size_t max, st_ingest_stats_t *stats,
		   char *errstr, size_t errstr_size)
{
	rd_kafka_message_t *msgs[256];
	ssize_t n;
	size_t done = 0;
	int err = 0;

	if (max > sizeof(msgs) / sizeof(msgs[0]))
		max = sizeof(msgs) / sizeof(msgs[0]);
	n = rd_kafka_consume_batch_queue(in->queue, 0, msgs, max);
	if (n <= 0)
		return 0;
	if ((err = st_state_begin(in->st, errstr, errstr_size)))
		goto out;
	for (; done < (size_t)n && !err; done++) {
		rd_kafka_message_t *rkm = msgs[done];
		cdc_part_t *p;

		if (rkm->err && rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			st_log(ST_LOG_WARNING, "cdc", "%s",
			       rd_kafka_message_errstr(rkm));
			continue;
		}
		p = rkm->rkt ? find_part(in, rd_kafka_topic_name(rkm->rkt),
					 rkm->partition) : NULL;
		if (!p)
			continue;
		if (rkm->err) {
			/* End of partition: everything before is applied. */
			if (rkm->offset > p->position) {
				p->position = rkm->offset;
				p->dirty = 1;
			}
			continue;
		}
		stats->messages++;
		if (p->in)
			st_metrics_counter_inc(p->in);
		err = apply_message(in, rkm, stats, errstr, errstr_size);
		p->position = rkm->offset + 1;
		p->dirty = 1;
	}
	for (size_t i = 0; i < in->nparts && !err; i++) {
		if (!in->parts[i].dirty)
			continue;
		err = st_state_offset_put(in->st, in->parts[i].topic,
					  in->parts[i].partition,
					  in->parts[i].position, -1, errstr,
					  errstr_size);
		in->parts[i].dirty = 0;
	}
out:
	for (ssize_t i = 0; i < n; i++)
		rd_kafka_message_destroy(msgs[i]);
	return err ? err : (int)n;
}

int st_ingest_rewind(st_ingest_t *in, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_error_t *kerr;
	int err = 0;

	l = rd_kafka_topic_partition_list_new((int)in->nparts);
	for (size_t i = 0; i < in->nparts; i++) {
		cdc_part_t *p = &in->parts[i];
		int64_t off;

		if (st_state_offset_get(in->st, p->topic, p->partition, &off,
					NULL, NULL, 0))
			off = RD_KAFKA_OFFSET_BEGINNING;
		/* Heartbeats hold no state: the skip to the tail stands, and
		 * the last one is read again for the watermark's sake. */
		if (is_heartbeat(in, p->topic) &&
		    p->position - 1 > (off < 0 ? 0 : off)) {
			off = p->position - 1;
			p->dirty = 1;
		} else {
			p->dirty = 0;
		}
		p->position = off < 0 ? 0 : off;
		rd_kafka_topic_partition_list_add(l, p->topic, p->partition)
			->offset = off;
	}
	/* Versions behind the rewound positions are gone with the aborted
	 * transaction: the watermark must be proven again. */
	pthread_mutex_lock(&in->lock);
	in->watermark = -1;
	in->cand_ready = 0;
	in->rewinds++;
	pthread_mutex_unlock(&in->lock);
	atomic_store(&in->newest, -1);
	kerr = rd_kafka_seek_partitions(in->rk, l, 10000);
	if (kerr) {
		err = st_seterr(errstr, errstr_size, ST_EKAFKA,
				"rewinding CDC partitions: %s",
				rd_kafka_error_string(kerr));
		rd_kafka_error_destroy(kerr);
	}
	for (int i = 0; !err && i < l->cnt; i++)
		if (l->elems[i].err)
			err = st_seterr(errstr, errstr_size, ST_EKAFKA,
					"rewinding %s [%d]: %s",
					l->elems[i].topic,
					l->elems[i].partition,
					rd_kafka_err2str(l->elems[i].err));
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

int64_t st_ingest_watermark(st_ingest_t *in)
{
	pthread_mutex_lock(&in->lock);
	if (in->cand_ready && in->cand_n == in->nparts) {
		size_t i;

		for (i = 0; i < in->nparts; i++)
			if (in->parts[i].position < in->cand_targets[i])
				break;
		if (i == in->nparts) {
			if (in->cand_ts > in->watermark)
				in->watermark = in->cand_ts;
			in->cand_ready = 0;
		}
	}
	pthread_mutex_unlock(&in->lock);
	return in->watermark;
}

int64_t st_ingest_newest(st_ingest_t *in)
{
	return atomic_load(&in->newest);
}

void st_ingest_positions(st_ingest_t *in, rd_kafka_topic_partition_list_t *l)
{
	/* Never behind what Kafka already holds: while re-applying after a
	 * restart, LMDB's position trails the committed one, and moving the
	 * committed offset back would forget which output is already out. */
	for (size_t i = 0; i < in->nparts; i++) {
		const cdc_part_t *p = &in->parts[i];

		rd_kafka_topic_partition_list_add(l, p->topic, p->partition)
			->offset = p->position > p->quiet_until ?
				   p->position : p->quiet_until;
	}
}

rd_kafka_consumer_group_metadata_t *st_ingest_group_metadata(st_ingest_t *in)
{
	return rd_kafka_consumer_group_metadata(in->rk);
}

int st_ingest_committed(st_ingest_t *in, rd_kafka_topic_partition_list_t *l,
			int wait_ms, char *errstr, size_t errstr_size)
{
	return st_kafka_committed(in->rk, l, wait_ms, errstr, errstr_size);
}

void st_ingest_set_quiet(st_ingest_t *in, const char *topic,
			 int32_t partition, int64_t until)
{
	cdc_part_t *p = find_part(in, topic, partition);

	if (p && until > p->quiet_until)
		p->quiet_until = until;
}

void st_ingest_positions_committed(st_ingest_t *in)
{
	for (size_t i = 0; i < in->nparts; i++)
		if (in->parts[i].position > in->parts[i].quiet_until)
			in->parts[i].quiet_until = in->parts[i].position;
}

size_t st_ingest_nparts(const st_ingest_t *in)
{
	return in->nparts;
}

int64_t st_ingest_update_lag(st_ingest_t *in)
{
	int64_t total = 0;

	for (size_t i = 0; i < in->nparts; i++) {
		cdc_part_t *p = &in->parts[i];
		int64_t lo, hi;

		if (rd_kafka_get_watermark_offsets(in->rk, p->topic,
						   p->partition, &lo, &hi) ||
		    hi < 0)
			continue;
		if (hi > p->position)
			total += hi - p->position;
		if (p->lag)
			st_metrics_gauge_set(p->lag, hi > p->position ?
					     hi - p->position : 0);
	}
	return total;
}
