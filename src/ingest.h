/*
 * ingest.h -- CDC ingestion: Debezium topics into the temporal store.
 *
 * Every instance reads every partition of the CDC topics (no consumer
 * group: the temporal store is local and complete), from the offsets
 * stored in LMDB beside the versions they produced. Messages are applied
 * inside the state's open write transaction; the caller commits.
 *
 * The CDC watermark W promises that every change committed at or before W
 * has been applied. It advances like this: a prober thread takes the
 * newest commit time X seen on any CDC partition (a change's source.ts_ms;
 * when the database is idle, the changes the connector's
 * heartbeat.action.query writes to the heartbeat table, whose topic is
 * cdc.heartbeat.topic and whose rows are not stored), then asks the broker
 * for the end offset of every CDC partition. Once this instance has
 * applied every partition up to those offsets, W becomes X. This holds
 * when the connector's producer sends one request at a time to one broker
 * (scripts/conf/connect-distributed.properties, a single-broker or
 * single-leader deployment): every record sent before X's record was in
 * the log when X's was seen. Debezium's own heartbeat records carry the
 * connector's clock, not a commit time, and do not move W.
 *
 * Thread: one caller thread, plus the internal prober thread.
 */
#ifndef ST_INGEST_H
#define ST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "state.h"

typedef struct st_ingest st_ingest_t;

typedef struct st_ingest_stats {
	uint64_t messages;      /* consumed */
	uint64_t versions;      /* new versions stored */
	uint64_t duplicates;    /* changes already stored */
	uint64_t heartbeats;
	uint64_t dead_letters;  /* sent to the dead-letter topic */
} st_ingest_stats_t;

/*
 * Creates the CDC consumer and assigns every partition of cdc.topics and
 * cdc.heartbeat.topic that exists (missing ones are retried by
 * st_ingest_refresh()). `dlq` is the producer for dead letters (borrowed;
 * NULL: malformed messages are counted and skipped, as a replay does).
 * `obs` (borrowed, may be NULL) receives the CDC series.
 * Returns 0 and *ip, or an error with errstr.
 */
struct st_observe;
int st_ingest_new(st_ingest_t **ip, const st_config_t *conf, st_state_t *st,
		  rd_kafka_t *dlq, struct st_observe *obs, char *errstr,
		  size_t errstr_size);

void st_ingest_destroy(st_ingest_t *in);

/*
 * Makes the consumer's queue write one byte to fd whenever it becomes
 * non-empty, for poll(2) loops.
 */
void st_ingest_io_event(st_ingest_t *in, int fd);

/*
 * Consumes up to `max` messages without blocking, applying each inside the
 * state's write transaction (begun here when none is open) and recording
 * the next offsets there. Returns the number of messages consumed, or
 * ST_EFULL / ST_ESTATE (the caller aborts and calls st_ingest_rewind()).
 * Malformed messages go to the dead-letter topic and are counted.
 */
int st_ingest_poll(st_ingest_t *in, size_t max, st_ingest_stats_t *stats,
		   char *errstr, size_t errstr_size);

/* After an aborted write transaction: seeks every partition back to the
 * offsets committed in LMDB. */
int st_ingest_rewind(st_ingest_t *in, char *errstr, size_t errstr_size);

/* The CDC watermark (ms), or -1 before the first proof. */
int64_t st_ingest_watermark(st_ingest_t *in);

/* The newest source time seen (ms), or -1. */
int64_t st_ingest_newest(st_ingest_t *in);

/* Group metadata of the CDC consumer (group.id + "-cdc"; it never joins
 * the group: generation -1), under which the CDC positions are committed
 * in the Kafka transaction. Free with
 * rd_kafka_consumer_group_metadata_destroy(). */
rd_kafka_consumer_group_metadata_t *st_ingest_group_metadata(st_ingest_t *in);

/* The offsets committed in Kafka for the elements of l (-1001 when none),
 * as st_kafka_committed() reads them, waiting wait_ms at most. */
int st_ingest_committed(st_ingest_t *in, rd_kafka_topic_partition_list_t *l,
			int wait_ms, char *errstr, size_t errstr_size);

/*
 * Appends every CDC partition with its position (the next offset to
 * apply) to l, for the offsets a Kafka transaction commits. The caller
 * owns l.
 */
void st_ingest_positions(st_ingest_t *in, rd_kafka_topic_partition_list_t *l);

/*
 * After a crash between a Kafka transaction's commit and LMDB's: messages
 * of (topic, partition) before `until` were already answered in Kafka, so
 * their dead letters are not produced again (they are still applied).
 */
void st_ingest_set_quiet(st_ingest_t *in, const char *topic,
			 int32_t partition, int64_t until);

/* After a Kafka commit of st_ingest_positions(): dead letters before them
 * are out, whatever happens to the LMDB commit that follows. */
void st_ingest_positions_committed(st_ingest_t *in);

/* The CDC partitions read, so far. */
size_t st_ingest_nparts(const st_ingest_t *in);

/* Sets the lag gauges of the CDC partitions (end offset, cached from the
 * last fetch, minus position) and returns their sum. */
int64_t st_ingest_update_lag(st_ingest_t *in);

/* Assigns partitions that appeared since the last call (new topics or
 * partitions). Cheap when nothing changed; call every few seconds. */
int st_ingest_refresh(st_ingest_t *in, char *errstr, size_t errstr_size);

#endif
