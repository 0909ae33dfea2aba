/* dlq.c -- dead letters with provenance headers. */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static int produce_letter(rd_kafka_t *producer, const char *dlq_topic,
		const st_dlq_origin_t *origin, const char *reason,
		const char *message, int truncated);

int st_dlq_send(rd_kafka_t *producer, const char *dlq_topic,
		const st_dlq_origin_t *origin, const char *reason,
		const char *message)
{
	int err = produce_letter(producer, dlq_topic, origin, reason, message, 0);

	if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		err = produce_letter(producer, dlq_topic, origin, reason, message, 1);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return ST_EAGAIN;
	return err ? ST_EKAFKA : 0;
}

/* Returns librdkafka's error code. */
static int produce_letter(rd_kafka_t *producer, const char *dlq_topic,
		const st_dlq_origin_t *origin, const char *reason,
		const char *message, int truncated)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
	char part[16], off[24], sid[24];
	rd_kafka_resp_err_t err;

	snprintf(part, sizeof(part), "%" PRId32, origin->partition);
	snprintf(off, sizeof(off), "%" PRId64, origin->offset);
	rd_kafka_header_add(hdrs, "strata.errors.topic", -1, origin->topic, -1);
	rd_kafka_header_add(hdrs, "strata.errors.partition", -1, part, -1);
	rd_kafka_header_add(hdrs, "strata.errors.offset", -1, off, -1);
	if (origin->schema_id >= 0) {
		snprintf(sid, sizeof(sid), "%" PRId64, origin->schema_id);
		rd_kafka_header_add(hdrs, "strata.errors.schema.id", -1, sid,
				    -1);
	}
	rd_kafka_header_add(hdrs, "strata.errors.reason", -1, reason, -1);
	rd_kafka_header_add(hdrs, "strata.errors.message", -1, message, -1);
	if (truncated)
		rd_kafka_header_add(hdrs, "strata.errors.truncated", -1, "true",
				    -1);
	err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(dlq_topic),
				RD_KAFKA_V_KEY((void *)origin->key,
					       origin->key_len),
				RD_KAFKA_V_VALUE(truncated ? NULL :
						 (void *)origin->value,
						 truncated ? 0 : origin->value_len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(hdrs);
	return err;
}
