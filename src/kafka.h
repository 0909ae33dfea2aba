/*
 * kafka.h -- librdkafka set-up shared by every stage that talks to Kafka.
 *
 * Builds rd_kafka_conf_t objects from strata's configuration: strata's own
 * defaults first, then every `kafka.*` key of the configuration file
 * (librdkafka validates them and its message names the property), and
 * routes librdkafka's log lines into st_log() under facility "rdkafka".
 */
#ifndef ST_KAFKA_H
#define ST_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef enum {
	ST_KAFKA_CONSUMER,
	ST_KAFKA_PRODUCER
} st_kafka_role_t;

/* What a stage adds to the configuration; every field may be left 0. */
typedef struct st_kafka_opts {
	const char *group_suffix;        /* appended to group.id ("-cdc") */
	const char *const *overrides;    /* NULL-terminated name, value
					  * pairs the stage depends on,
					  * applied last */
	void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
			  void *opaque);  /* producer delivery reports */
	void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			     rd_kafka_topic_partition_list_t *partitions,
			     void *opaque);  /* consumer group rebalances */
	/* Client errors; without it librdkafka logs them (as errors). */
	void (*error_cb)(rd_kafka_t *rk, int err, const char *reason,
			 void *opaque);
	void *opaque;
} st_kafka_opts_t;

/*
 * Returns a new handle (caller destroys with rd_kafka_destroy() after
 * closing a consumer), or NULL with errstr naming the property and the file
 * line it was set on. `opts` may be NULL.
 */
rd_kafka_t *st_kafka_new(const st_config_t *conf, st_kafka_role_t role,
			 const st_kafka_opts_t *opts, char *errstr,
			 size_t errstr_size);

/*
 * Reads the offsets rk's group committed for the elements of l into their
 * offset (RD_KAFKA_OFFSET_INVALID where none). Waits, wait_ms at most,
 * while the group coordinator loads or while a partition's offset is
 * part of a transaction not yet completed (UNSTABLE_OFFSET_COMMIT): a
 * stale answer would let output be produced twice. Returns 0 or
 * ST_EKAFKA with errstr naming the partition.
 */
int st_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
		       int wait_ms, char *errstr, size_t errstr_size);

/*
 * Whether the message at `offset` of topic [partition] is committed, as a
 * read_committed consumer sees it: 1 (it is read), 0 (it belongs to an
 * aborted transaction: the partition's last stable offset is past it and
 * it is not read), or ST_ETIMEDOUT / ST_EKAFKA when that cannot be told
 * within wait_ms. rk is a read_committed consumer with
 * enable.partition.eof=true that has no subscription; it is assigned the
 * partition here and unassigned before returning.
 */
int st_kafka_message_committed(rd_kafka_t *rk, const char *topic,
			       int32_t partition, int64_t offset, int wait_ms,
			       char *errstr, size_t errstr_size);

#endif
