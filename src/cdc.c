/* cdc.c -- Debezium envelope decoding with jansson. */
#include "cdc.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
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
static json_t *payload_of(json_t *root)
{
	json_t *payload;

	if (json_is_object(root) && json_object_size(root) == 2 &&
	    json_object_get(root, "schema") &&
	    (payload = json_object_get(root, "payload")))
		return payload;
	return root;
}

static json_t *parse(const void *buf, size_t len, const char *what,
		     char *errstr, size_t errstr_size)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			  &jerr);
	if (!root)
		st_seterr(errstr, errstr_size, ST_EPARSE,
			  "%s: invalid JSON at byte %d: %s", what,
			  jerr.position, jerr.text);
	return root;
}

/* Appends one key column's value in canonical text to buf. */
static int key_append(char **buf, size_t *len, json_t *v)
{
	char num[64], *nb, *dump = NULL;
	const char *s;
	size_t n;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		n = json_string_length(v);
		break;
	case JSON_INTEGER:
		n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				     json_integer_value(v));
		s = num;
		break;
	case JSON_REAL:
		n = (size_t)snprintf(num, sizeof(num), "%.17g",
				     json_real_value(v));
		s = num;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		s = json_is_true(v) ? "true" : "false";
		n = strlen(s);
		break;
	default:
		dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!dump)
			return ST_ENOMEM;
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
	json_t *root, *obj, *v;
	const char *name;
	int err = 0;

	if (!key || !key_len)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "message key: missing (the table needs a "
				 "primary key or REPLICA IDENTITY)");
	root = parse(key, key_len, "message key", errstr, errstr_size);
	if (!root)
		return ST_EPARSE;
	obj = payload_of(root);
	if (!json_is_object(obj) || !json_object_size(obj)) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message key: expected a non-empty object of "
				"key columns");
		goto out;
	}
	json_object_foreach(obj, name, v) {
		if ((err = key_append(&msg->key, &msg->key_len, v)))
			goto out;
	}
out:
	json_decref(root);
	return err;
}

static void table_from_topic(const char *topic, char *table)
{
	const char *dot = topic ? strrchr(topic, '.') : NULL;

	snprintf(table, ST_CDC_TABLE_MAX, "%s",
		 dot ? dot + 1 : topic ? topic : "");
}

static int get_int(json_t *obj, const char *name, int64_t *out)
{
	json_t *v = json_object_get(obj, name);

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	/* Debezium may encode an LSN or id as a decimal string. */
	if (json_is_string(v)) {
		char *end;
		long long n = strtoll(json_string_value(v), &end, 10);

		if (end != json_string_value(v) && !*end) {
			*out = n;
			return 0;
		}
	}
	return ST_ENOENT;
}

static int decode_change(json_t *p, st_cdc_msg_t *msg, char *errstr,
			 size_t errstr_size)
{
	json_t *op = json_object_get(p, "op"), *source, *image, *snap;
	const char *ops, *table;

	ops = json_string_value(op);
	if (!ops || strlen(ops) != 1 || !strchr("rcud", ops[0]))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "op: expected one of \"r\", \"c\", \"u\", "
				 "\"d\"%s%s", ops ? ", got " : "",
				 ops ? ops : "");
	msg->kind = ST_CDC_CHANGE;
	msg->op = ops[0];
	source = json_object_get(p, "source");
	if (!json_is_object(source))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source: missing or not an object");
	if (get_int(source, "ts_ms", &msg->ts_ms))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.ts_ms: missing or not an integer");
	if (msg->ts_ms < 0)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.ts_ms: negative");
	if (get_int(source, "lsn", &msg->lsn))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.lsn: missing or not an integer");
	if (msg->lsn < 0)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "source.lsn: negative");
	if (get_int(source, "txId", &msg->txid))
		msg->txid = -1;
	snap = json_object_get(source, "snapshot");
	msg->snapshot = json_is_true(snap) ||
			(json_is_string(snap) &&
			 strcmp(json_string_value(snap), "false"));
	table = json_string_value(json_object_get(source, "table"));
	if (table) {
		if (strlen(table) >= ST_CDC_TABLE_MAX)
			return st_seterr(errstr, errstr_size, ST_EPARSE,
					 "source.table: longer than %d bytes",
					 ST_CDC_TABLE_MAX - 1);
		snprintf(msg->table, sizeof(msg->table), "%s", table);
	}
	if (msg->op == 'd')
		return 0;
	image = json_object_get(p, "after");
	if (!json_is_object(image))
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "after: missing or not an object for op "
				 "\"%c\"", msg->op);
	if (st_row_from_json(image, &msg->row, &msg->row_len))
		return ST_ENOMEM;
	return 0;
}

static int decode_txn(json_t *p, const char *status, st_cdc_msg_t *msg,
		      char *errstr, size_t errstr_size)
{
	const char *id = json_string_value(json_object_get(p, "id"));

	if (!strcmp(status, "BEGIN"))
		msg->kind = ST_CDC_TXN_BEGIN;
	else if (!strcmp(status, "END"))
		msg->kind = ST_CDC_TXN_END;
	else
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "status: expected BEGIN or END, got %s",
				 status);
	if (!id)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "id: missing transaction id");
	snprintf(msg->txn_id, sizeof(msg->txn_id), "%s", id);
	if (get_int(p, "ts_ms", &msg->ts_ms))
		msg->ts_ms = -1;
	if (get_int(p, "event_count", &msg->event_count))
		msg->event_count = -1;
	return 0;
}

int st_cdc_decode(const char *topic, const void *key, size_t key_len,
		  const void *value, size_t value_len, st_cdc_msg_t *msg,
		  char *errstr, size_t errstr_size)
{
	json_t *root = NULL, *p;
	const char *status;
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
	root = parse(value, value_len, "message value", errstr, errstr_size);
	if (!root) {
		err = ST_EPARSE;
		goto out;
	}
	p = payload_of(root);
	if (!json_is_object(p)) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message value: expected a JSON object");
		goto out;
	}
	if (json_object_get(p, "op")) {
		table_from_topic(topic, msg->table);
		err = decode_change(p, msg, errstr, errstr_size);
		if (!err)
			err = decode_key(key, key_len, msg, errstr,
					 errstr_size);
	} else if ((status = json_string_value(json_object_get(p,
							       "status")))) {
		err = decode_txn(p, status, msg, errstr, errstr_size);
	} else if (!get_int(p, "ts_ms", &msg->ts_ms) &&
		   json_object_size(p) == 1) {
		msg->kind = ST_CDC_HEARTBEAT;
	} else {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"message value: not a Debezium change, "
				"heartbeat or transaction event (no \"op\", "
				"\"status\" or lone \"ts_ms\")");
	}
out:
	json_decref(root);
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
