/*
 * dlq.h -- the dead-letter topic.
 *
 * A message strata cannot use (malformed Debezium JSON, a bad Avro frame,
 * an unknown schema, an event later than the allowed lateness) is produced
 * to the dead-letter topic unchanged (same key and value), with headers
 * that say where it came from and why, after the convention of Kafka
 * Connect's errors.deadletterqueue.context.headers:
 *
 *   strata.errors.topic       source topic
 *   strata.errors.partition   source partition (decimal)
 *   strata.errors.offset      source offset (decimal)
 *   strata.errors.schema.id   Confluent schema id, when the frame had one
 *   strata.errors.reason      a short machine-readable reason: "decode",
 *                             "schema", "late", "key", ...
 *   strata.errors.message     the human-readable error
 *   strata.errors.truncated   "true" when the value was too large to keep
 */
#ifndef ST_DLQ_H
#define ST_DLQ_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct st_dlq_origin {
	const char *topic;
	int32_t partition;
	int64_t offset;
	int64_t schema_id;      /* -1 when unknown */
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
} st_dlq_origin_t;

/*
 * Produces one dead letter (asynchronously; delivery is reported by the
 * producer's delivery callback). A value too large for the broker is sent
 * without it, with the header strata.errors.truncated=true. Returns 0,
 * ST_EAGAIN (librdkafka's queue is full: serve it with rd_kafka_poll()
 * and call again) or ST_EKAFKA.
 */
int st_dlq_send(rd_kafka_t *producer, const char *dlq_topic,
		const st_dlq_origin_t *origin, const char *reason,
		const char *message);

#endif
