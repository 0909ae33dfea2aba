/* cdc.c -- Debezium envelope decoding over the JSON reader of json.c. */
#include "cdc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "row.h"

const char *st_cdc_op_name(char op)
{
	switch (op) {
	case 'r': return "read";
	case 'c': return "create";
	case 'u': return "update";
	case 'd': return "delete";
	default: return "unknown";
	}
}

/* Unwraps {"schema":..,"payload":..} written with schemas.enable=true. */
static const st_json_val_t *payload_of(const st_json_t *doc)
{
	const st_json_val_t *root = st_json_root(doc), *payload;

	if (root->type == ST_JSON_OBJECT && root->count == 2 &&
	    st_json_get(doc, root, "schema") &&
	    (payload = st_json_get(doc, root, "payload")))
		return payload;
	return root;
}

static int parse(st_json_t *doc, const void *buf, size_t len,
		 const char *what, char *errstr, size_t errstr_size)
{
	char why[160];
	int err;

	if ((err = st_json_parse(doc, buf, len, why, sizeof(why))))
		return st_seterr(errstr, errstr_size, err, "%s: %s", what,
				 why);
	return 0;
}

/* Appends one key column's value in canonical text to buf. */
static int key_append(char **buf, size_t *len, const st_json_val_t *v)
{
	char num[64], *nb, *dump = NULL;
	const char *s;
	size_t n;
	int err;

	switch (v->type) {
	case ST_JSON_STRING:
		s = v->s;
		n = v->len;
		break;
	case ST_JSON_INT:
		n = (size_t)snprintf(num, sizeof(num), "%lld",
				     (long long)v->i);
		s = num;
		break;
	case ST_JSON_REAL:
		n = (size_t)snprintf(num, sizeof(num), "%.17g", v->d);
		s = num;
		break;
	case ST_JSON_TRUE:
	case ST_JSON_FALSE:
		s = v->type == ST_JSON_TRUE ? "true" : "false";
		n = strlen(s);
		break;
	case ST_JSON_NULL:
		s = "null";
		n = 4;
		break;
	default:
		if ((err = st_json_dump(v, &dump)))
			return err;
		s = dump;
		n = strlen(dump);
		break;
	}
	nb = realloc(*buf, *len + n + 2);
	if (!nb) {
		free(dump);
		return ST_ENOMEM;
	}
	if (*len)
		nb[(*len)++] = ',';
	memcpy(nb + *len, s, n);
	*len += n;
	nb[*len] = '\0';
	*buf = nb;
	free(dump);
	return 0;
}

static int decode_key(const void *key, size_t key_len, st_cdc_msg_t *msg,
		      char *errstr, size_t errstr_size)
{
	const st_json_val_t *obj, *v;
	st_json_t doc = {0};
	int err;

	if (!key || !key_len)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "message key: missing (the table needs a "
				 "primary key or REPLICA IDENTITY)");
	if ((err = parse(&doc, key, key_len, "message key", errstr,
			 errstr_size)))
		goto out;
	obj = payload_of(&doc);
	if (obj->type != ST_JSON_OBJECT || !obj->count) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message key: expected a non-empty object of "
				"key columns");
		goto out;
	}
	for (v = st_json_first(&doc, obj); v; v = st_json_next(&doc, v))
		if ((err = key_append(&msg->key, &msg->key_len, v))) {
			st_seterr(errstr, errstr_size, err, "message key: "
				  "column %.*s: %s", (int)v->key_len, v->key,
				  st_strerror(err));
			goto out;
		}
out:
	st_json_free(&doc);
	return err;
}

static void table_from_topic(const char *topic, char *table)
{
	const char *dot = topic ? strrchr(topic, '.') : NULL;

	snprintf(table, ST_CDC_TABLE_MAX, "%s",
		 dot ? dot + 1 : topic ? topic : "");
}

/* Copies a string value of at most size - 1 bytes, NUL-ended; a NUL
 * inside ends it early. */
static void copy_str(char *out, size_t size, const st_json_val_t *v)
{
	size_t n = v->len < size - 1 ? v->len : size - 1;

	memcpy(out, v->s, n);
	out[n] = '\0';
}

static int get_int(const st_json_t *doc, const st_json_val_t *obj,
		   const char *name, int64_t *out)
{
	const st_json_val_t *v = st_json_get(doc, obj, name);
	char num[32], *end;
	long long n;

	if (v && v->type == ST_JSON_INT) {
		*out = v->i;
		return 0;
	}
	/* Debezium may encode an LSN or id as a decimal string. */
	if (v && v->type == ST_JSON_STRING && v->len && v->len < sizeof(num)) {
		copy_str(num, sizeof(num), v);
		errno = 0;
		n = strtoll(num, &end, 10);
		if (end == num + v->len && !errno) {
			*out = n;
			return 0;
		}
	}
	return ST_ENOENT;
}

static int decode_change(const st_json_t *doc, const st_json_val_t *p,
			 st_cdc_msg_t *msg, char *errstr, size_t errstr_size)
{
	const st_json_val_t *op = st_json_get(doc, p, "op"), *source, *image;
	const st_json_val_t *snap, *table;
	int err;

	if (!op || op->type != ST_JSON_STRING || op->len != 1 ||
	    !memchr("rcud", op->s[0], 4))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "op: expected one of \"r\", \"c\", \"u\", "
				 "\"d\"%s%.*s",
				 op && op->type == ST_JSON_STRING ? ", got " :
				 "", op && op->type == ST_JSON_STRING ?
				 (int)(op->len > 16 ? 16 : op->len) : 0,
				 op && op->type == ST_JSON_STRING ? op->s : "");
	msg->kind = ST_CDC_CHANGE;
	msg->op = op->s[0];
	source = st_json_get(doc, p, "source");
	if (!source || source->type != ST_JSON_OBJECT)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source: missing or not an object");
	if (get_int(doc, source, "ts_ms", &msg->ts_ms))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.ts_ms: missing or not an integer");
	if (msg->ts_ms < 0)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.ts_ms: negative");
	if (get_int(doc, source, "lsn", &msg->lsn))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.lsn: missing or not an integer");
	if (msg->lsn < 0)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.lsn: negative");
	if (get_int(doc, source, "txId", &msg->txid))
		msg->txid = -1;
	snap = st_json_get(doc, source, "snapshot");
	msg->snapshot = snap && (snap->type == ST_JSON_TRUE ||
				 (snap->type == ST_JSON_STRING &&
				  !st_json_streq(snap, "false")));
	table = st_json_get(doc, source, "table");
	if (table && table->type == ST_JSON_STRING) {
		if (table->len >= ST_CDC_TABLE_MAX)
			return st_seterr(errstr, errstr_size, ST_EPARSE,
					 "source.table: longer than %d bytes",
					 ST_CDC_TABLE_MAX - 1);
		copy_str(msg->table, sizeof(msg->table), table);
	}
	if (msg->op == 'd')
		return 0;
	image = st_json_get(doc, p, "after");
	if (!image || image->type != ST_JSON_OBJECT)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "after: missing or not an object for op "
				 "\"%c\"", msg->op);
	if ((err = st_row_from_jval(doc, image, &msg->row, &msg->row_len)))
		return st_seterr(errstr, errstr_size, err, "after: %s",
				 st_strerror(err));
	return 0;
}

static int decode_txn(const st_json_t *doc, const st_json_val_t *p,
		      const st_json_val_t *status, st_cdc_msg_t *msg,
		      char *errstr, size_t errstr_size)
{
	const st_json_val_t *id = st_json_get(doc, p, "id");

	if (st_json_streq(status, "BEGIN"))
		msg->kind = ST_CDC_TXN_BEGIN;
	else if (st_json_streq(status, "END"))
		msg->kind = ST_CDC_TXN_END;
	else
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "status: expected BEGIN or END, got %.*s",
				 (int)(status->len > 32 ? 32 : status->len),
				 status->s);
	if (!id || id->type != ST_JSON_STRING)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "id: missing transaction id");
	copy_str(msg->txn_id, sizeof(msg->txn_id), id);
	if (get_int(doc, p, "ts_ms", &msg->ts_ms))
		msg->ts_ms = -1;
	if (get_int(doc, p, "event_count", &msg->event_count))
		msg->event_count = -1;
	return 0;
}

int st_cdc_decode(const char *topic, const void *key, size_t key_len,
		  const void *value, size_t value_len, st_cdc_msg_t *msg,
		  char *errstr, size_t errstr_size)
{
	const st_json_val_t *p, *status;
	st_json_t doc = {0};
	int err = 0;

	memset(msg, 0, sizeof(*msg));
	msg->lsn = -1;
	msg->txid = -1;
	if (!value || !value_len) {
		msg->kind = ST_CDC_TOMBSTONE;
		table_from_topic(topic, msg->table);
		err = decode_key(key, key_len, msg, errstr, errstr_size);
		goto out;
	}
	if ((err = parse(&doc, value, value_len, "message value", errstr,
			 errstr_size)))
		goto out;
	p = payload_of(&doc);
	if (p->type != ST_JSON_OBJECT) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message value: expected a JSON object");
		goto out;
	}
	status = st_json_get(&doc, p, "status");
	if (st_json_get(&doc, p, "op")) {
		table_from_topic(topic, msg->table);
		err = decode_change(&doc, p, msg, errstr, errstr_size);
		if (!err)
			err = decode_key(key, key_len, msg, errstr,
					 errstr_size);
	} else if (status && status->type == ST_JSON_STRING) {
		err = decode_txn(&doc, p, status, msg, errstr, errstr_size);
	} else if (!get_int(&doc, p, "ts_ms", &msg->ts_ms) && p->count == 1) {
		msg->kind = ST_CDC_HEARTBEAT;
	} else {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message value: not a Debezium change, "
				"heartbeat or transaction event (no \"op\", "
				"\"status\" or lone \"ts_ms\")");
	}
out:
	st_json_free(&doc);
	if (err)
		st_cdc_msg_clear(msg);
	return err;
}

void st_cdc_msg_clear(st_cdc_msg_t *msg)
{
	free(msg->key);
	free(msg->row);
	msg->key = NULL;
	msg->row = NULL;
	msg->key_len = msg->row_len = 0;
}
