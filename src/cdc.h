/*
 * cdc.h -- decoder of Debezium PostgreSQL change events.
 *
 * Input: the key and value bytes of one Kafka message as Kafka Connect's
 * JSON converter writes them, with or without embedded schemas
 * ({"schema":..,"payload":..}). Recognised messages:
 *   - change events (op r, c, u, d) of a table topic,
 *   - tombstones (null value after a delete),
 *   - heartbeats ({"ts_ms": N} on the heartbeat topic),
 *   - transaction metadata (status BEGIN / END).
 *
 * Pure code: no I/O, no logging. Errors are returned with a message that
 * names the field at fault; the caller sends the message to the dead-letter
 * topic with it.
 */
#ifndef ST_CDC_H
#define ST_CDC_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	ST_CDC_CHANGE = 1,     /* op r, c, u or d */
	ST_CDC_TOMBSTONE,      /* null value: the key was deleted before */
	ST_CDC_HEARTBEAT,      /* source progress while the database is idle */
	ST_CDC_TXN_BEGIN,      /* transaction metadata */
	ST_CDC_TXN_END
} st_cdc_kind_t;

#define ST_CDC_TABLE_MAX 64
#define ST_CDC_TXN_ID_MAX 64

typedef struct st_cdc_msg {
	st_cdc_kind_t kind;
	char op;                /* 'r', 'c', 'u', 'd' for ST_CDC_CHANGE */
	int snapshot;           /* source.snapshot was true/first/last/... */
	char table[ST_CDC_TABLE_MAX];  /* source.table, or topic's last part */
	char *key;              /* canonical primary key (owned), NUL-ended:
				 * the key columns' values joined by ',' */
	size_t key_len;
	int64_t ts_ms;          /* source.ts_ms: commit time; heartbeat ts */
	int64_t lsn;            /* source.lsn, -1 when absent */
	int64_t txid;           /* source.txId, -1 when absent */
	char txn_id[ST_CDC_TXN_ID_MAX];  /* metadata: "txId:lsn" */
	int64_t event_count;    /* metadata END: events in the transaction */
	uint8_t *row;           /* the after image (owned); NULL for d */
	size_t row_len;
} st_cdc_msg_t;

/*
 * Decodes one message. `topic` names the table when a tombstone has no
 * value to say it. Returns 0 and fills *msg (release with
 * st_cdc_msg_clear()), or ST_EPARSE with errstr naming the field at fault,
 * or ST_ENOMEM. On error *msg holds nothing to release.
 */
int st_cdc_decode(const char *topic, const void *key, size_t key_len,
		  const void *value, size_t value_len, st_cdc_msg_t *msg,
		  char *errstr, size_t errstr_size);

void st_cdc_msg_clear(st_cdc_msg_t *msg);

/* Returns "read", "create", "update", "delete" for an op letter. */
const char *st_cdc_op_name(char op);

#endif
