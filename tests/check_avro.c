/* check_avro.c -- Confluent frames; reading transactions written with
 * schema v1 and v2 by the v1 and v2 reader schemas; promotions, enum
 * symbols by name, skipped complex fields, defaults; incompatible writer
 * schemas; every truncation and corruption of a body; the encoder. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"
#include "error.h"
#include "row.h"

/* Fields of schemas/transaction.avsc, in order. */
enum {
	TXN_ID, USER_ID, MERCHANT_ID, AMOUNT, CURRENCY, CHANNEL, EVENT_TIME,
	DEVICE_ID, NFIELDS_V2
};

/* Reads $top_srcdir/schemas/NAME; caller frees. */
static char *schema_text(const char *name, size_t *len)
{
	const char *top = getenv("top_srcdir");
	char path[4096], *buf;
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/schemas/%s", top ? top : ".", name);
	fp = fopen(path, "rb");
	ck_assert_msg(fp != NULL, "cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static st_avro_reader_t *reader_from(const char *name)
{
	st_avro_reader_t *r;
	char errstr[512], *json;
	size_t len;

	json = schema_text(name, &len);
	ck_assert_msg(st_avro_reader_new(&r, json, len, errstr,
					 sizeof(errstr)) == 0, "%s", errstr);
	free(json);
	return r;
}

static st_avro_decoder_t *decoder_from(const st_avro_reader_t *r,
				       const char *json)
{
	st_avro_decoder_t *d;
	char errstr[512];

	ck_assert_msg(st_avro_decoder_new(&d, r, json, strlen(json), errstr,
					  sizeof(errstr)) == 0, "%s", errstr);
	return d;
}

static st_avro_decoder_t *decoder_from_file(const st_avro_reader_t *r,
					    const char *name)
{
	st_avro_decoder_t *d;
	char *json;
	size_t len;

	json = schema_text(name, &len);
	json = realloc(json, len + 1);
	d = decoder_from(r, json);
	free(json);
	return d;
}

static st_avro_encoder_t *encoder_from(const char *json)
{
	st_avro_encoder_t *e;
	char errstr[512];

	ck_assert_msg(st_avro_encoder_new(&e, json, strlen(json), errstr,
					  sizeof(errstr)) == 0, "%s", errstr);
	return e;
}

static st_avro_encoder_t *encoder_from_file(const char *name)
{
	st_avro_encoder_t *e;
	char *json;
	size_t len;

	json = schema_text(name, &len);
	e = encoder_from(json);
	free(json);
	return e;
}

static st_value_t vint(int64_t i)
{
	st_value_t v = {.type = ST_VAL_INT, .i = i};

	return v;
}

static st_value_t vdouble(double d)
{
	st_value_t v = {.type = ST_VAL_DOUBLE, .d = d};

	return v;
}

static st_value_t vstr(const char *s)
{
	st_value_t v = {.type = ST_VAL_STRING, .s = s, .len = strlen(s)};

	return v;
}

static st_value_t vnull(void)
{
	st_value_t v = {.type = ST_VAL_NULL};

	return v;
}

/* A typical transaction, in schema order (v1 takes the first 7). */
static void txn(st_value_t *f, const char *device_id)
{
	f[TXN_ID] = vstr("txn-000000012345");
	f[USER_ID] = vint(123456);
	f[MERCHANT_ID] = vint(98765);
	f[AMOUNT] = vdouble(42.5);
	f[CURRENCY] = vstr("EUR");
	f[CHANNEL] = vstr("mobile");
	f[EVENT_TIME] = vint(1700000000123LL);
	f[DEVICE_ID] = device_id ? vstr(device_id) : vnull();
}

/* Encodes fields and returns the body (the frame past its header). */
static size_t encode_body(st_avro_encoder_t *e, const st_value_t *f,
			  size_t n, uint8_t *frame, size_t cap,
			  const uint8_t **body)
{
	char errstr[512];
	size_t len, body_len;
	int32_t id;

	ck_assert_msg(st_avro_encode(e, 7, f, n, frame, cap, &len, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_int_eq(st_avro_frame_parse(frame, len, &id, body,
					     &body_len, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(id, 7);
	return body_len;
}

static void assert_str(const st_value_t *v, const char *s)
{
	ck_assert_int_eq(v->type, ST_VAL_STRING);
	ck_assert_uint_eq(v->len, strlen(s));
	ck_assert_int_eq(memcmp(v->s, s, v->len), 0);
}

static void assert_txn(const st_value_t *f, const char *device_id)
{
	assert_str(&f[TXN_ID], "txn-000000012345");
	ck_assert_int_eq(f[USER_ID].type, ST_VAL_INT);
	ck_assert_int_eq(f[USER_ID].i, 123456);
	ck_assert_int_eq(f[MERCHANT_ID].i, 98765);
	ck_assert_int_eq(f[AMOUNT].type, ST_VAL_DOUBLE);
	ck_assert(f[AMOUNT].d == 42.5);
	assert_str(&f[CURRENCY], "EUR");
	assert_str(&f[CHANNEL], "mobile");
	ck_assert_int_eq(f[EVENT_TIME].type, ST_VAL_INT);
	ck_assert_int_eq(f[EVENT_TIME].i, 1700000000123LL);
	if (device_id)
		assert_str(&f[DEVICE_ID], device_id);
}

START_TEST(frame_good)
{
	const uint8_t frame[] = {0x00, 0x00, 0x00, 0x01, 0x2c, 0xaa, 0xbb};
	const uint8_t max[] = {0x00, 0x7f, 0xff, 0xff, 0xff};
	const uint8_t *body;
	size_t body_len;
	char errstr[512];
	int32_t id;

	ck_assert_int_eq(st_avro_frame_parse(frame, sizeof(frame), &id,
					     &body, &body_len, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(id, 300);
	ck_assert_ptr_eq(body, frame + 5);
	ck_assert_uint_eq(body_len, 2);
	ck_assert_int_eq(st_avro_frame_parse(max, sizeof(max), &id, &body,
					     &body_len, errstr,
					     sizeof(errstr)), 0);
	ck_assert_int_eq(id, INT32_MAX);
	ck_assert_uint_eq(body_len, 0);
}
END_TEST

static const struct {
	const char *value;
	size_t len;
	const char *msg;
} bad_frames[] = {
	{NULL, 0, "empty value, not Confluent-framed Avro"},
	{"", 0, "empty value"},
	{"\0\0\0", 3, "frame of 3 bytes is shorter than the 5-byte Confluent "
		      "header"},
	{"{\"a\":1}", 7, "magic byte 0x7b, expected 0x00 (not "
			 "Confluent-framed Avro)"},
	{"\x01\0\0\0\x01\x02", 6, "magic byte 0x01"},
};

START_TEST(frame_bad)
{
	const uint8_t *body;
	size_t body_len;
	char errstr[512];
	int32_t id;

	ck_assert_int_eq(st_avro_frame_parse(bad_frames[_i].value,
					     bad_frames[_i].len, &id, &body,
					     &body_len, errstr,
					     sizeof(errstr)), ST_EPARSE);
	ck_assert_msg(strstr(errstr, bad_frames[_i].msg), "'%s' lacks '%s'",
		      errstr, bad_frames[_i].msg);
}
END_TEST

START_TEST(reader_fields)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");

	ck_assert_uint_eq(st_avro_reader_nfields(r), NFIELDS_V2);
	ck_assert_int_eq(st_avro_reader_field(r, "txn_id"), TXN_ID);
	ck_assert_int_eq(st_avro_reader_field(r, "device_id"), DEVICE_ID);
	ck_assert_int_eq(st_avro_reader_field(r, "nope"), ST_ENOENT);
	ck_assert_str_eq(st_avro_reader_field_name(r, EVENT_TIME),
			 "event_time");
	st_avro_reader_free(r);
}
END_TEST

/* v2 written, v2 read: device_id present, as a string and as null. */
START_TEST(v2_by_v2)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d = decoder_from_file(r, "transaction.avsc");
	st_avro_encoder_t *e = encoder_from_file("transaction.avsc");
	st_value_t in[NFIELDS_V2], out[NFIELDS_V2];
	uint8_t frame[256];
	const uint8_t *body;
	char errstr[512];
	size_t len;

	txn(in, "dev-abcdef");
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_msg(st_avro_decode(d, body, len, out, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	assert_txn(out, "dev-abcdef");
	txn(in, NULL);
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_int_eq(st_avro_decode(d, body, len, out, errstr,
					sizeof(errstr)), 0);
	assert_txn(out, NULL);
	ck_assert_int_eq(out[DEVICE_ID].type, ST_VAL_NULL);
	st_avro_encoder_free(e);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

/* v1 written, v2 read: device_id takes its default, null. */
START_TEST(v1_by_v2)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d = decoder_from_file(r, "transaction.v1.avsc");
	st_avro_encoder_t *e = encoder_from_file("transaction.v1.avsc");
	st_value_t in[NFIELDS_V2], out[NFIELDS_V2];
	uint8_t frame[256];
	const uint8_t *body;
	char errstr[512];
	size_t len;

	txn(in, NULL);
	len = encode_body(e, in, NFIELDS_V2 - 1, frame, sizeof(frame), &body);
	ck_assert_msg(st_avro_decode(d, body, len, out, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	assert_txn(out, NULL);
	ck_assert_int_eq(out[DEVICE_ID].type, ST_VAL_NULL);
	st_avro_encoder_free(e);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

/* v2 written, v1 read: device_id is skipped, null or not. */
START_TEST(v2_by_v1)
{
	st_avro_reader_t *r = reader_from("transaction.v1.avsc");
	st_avro_decoder_t *d = decoder_from_file(r, "transaction.avsc");
	st_avro_encoder_t *e = encoder_from_file("transaction.avsc");
	st_value_t in[NFIELDS_V2], out[NFIELDS_V2 - 1];
	uint8_t frame[256];
	const uint8_t *body;
	char errstr[512];
	size_t len;

	ck_assert_uint_eq(st_avro_reader_nfields(r), NFIELDS_V2 - 1);
	txn(in, "dev-abcdef");
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_msg(st_avro_decode(d, body, len, out, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	assert_txn(out, NULL);
	txn(in, NULL);
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_int_eq(st_avro_decode(d, body, len, out, errstr,
					sizeof(errstr)), 0);
	assert_txn(out, NULL);
	st_avro_encoder_free(e);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

#define CHANNEL_ENUM(syms) \
	"{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":" \
	"\"Channel\",\"symbols\":[" syms "]}}"

/* int -> long, float -> double, long -> double; enum symbols matched by
 * name, not ordinal; a writer union read as a plain reader type. */
static const char promoting[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"namespace\":\"other\","
	"\"fields\":["
	"{\"name\":\"event_time\",\"type\":\"long\"},"
	"{\"name\":\"user_id\",\"type\":\"int\"},"
	"{\"name\":\"merchant_id\",\"type\":\"int\"},"
	"{\"name\":\"amount\",\"type\":\"float\"},"
	"{\"name\":\"txn_id\",\"type\":[\"null\",\"string\"]},"
	"{\"name\":\"currency\",\"type\":\"bytes\"},"
	CHANNEL_ENUM("\"kiosk\",\"atm\",\"pos\",\"mobile\",\"web\"") ","
	"{\"name\":\"device_id\",\"type\":\"string\"}]}";

START_TEST(promotions_and_symbols)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d = decoder_from(r, promoting);
	st_avro_encoder_t *e = encoder_from(promoting);
	st_value_t in[NFIELDS_V2], out[NFIELDS_V2];
	uint8_t frame[256];
	const uint8_t *body;
	char errstr[512];
	size_t len;

	in[0] = vint(1700000000123LL);
	in[1] = vint(123456);
	in[2] = vint(98765);
	in[3] = vdouble(42.5);
	in[4] = vstr("txn-000000012345");
	in[5] = vstr("EUR");
	in[6] = vstr("mobile");
	in[7] = vstr("dev-1");
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_msg(st_avro_decode(d, body, len, out, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	assert_txn(out, "dev-1");
	/* "kiosk" is writer symbol 0, unknown to the reader. */
	in[6] = vstr("kiosk");
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_int_eq(st_avro_decode(d, body, len, out, errstr,
					sizeof(errstr)), ST_EPARSE);
	ck_assert_msg(strstr(errstr, "field channel: writer enum symbol not "
			     "in the reader enum: kiosk"), "%s", errstr);
	/* txn_id null: the writer's null branch has no reader match. */
	in[6] = vstr("web");
	in[4] = vnull();
	len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame), &body);
	ck_assert_int_eq(st_avro_decode(d, body, len, out, errstr,
					sizeof(errstr)), ST_EPARSE);
	ck_assert_msg(strstr(errstr, "field txn_id: writer union branch "
			     "cannot be read with the reader schema: null"),
		      "%s", errstr);
	st_avro_encoder_free(e);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

/* Reader fields the writer lacks take their defaults. */
static const char with_defaults[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"score\",\"type\":\"double\",\"default\":1.5},"
	"{\"name\":\"tier\",\"type\":\"string\",\"default\":\"std\"},"
	"{\"name\":\"vip\",\"type\":\"boolean\",\"default\":true},"
	"{\"name\":\"n\",\"type\":[\"int\",\"null\"],\"default\":-3},"
	CHANNEL_ENUM("\"web\",\"pos\"") ","
	"{\"name\":\"tag\",\"type\":{\"type\":\"fixed\",\"name\":\"Tag\","
	"\"size\":2},\"default\":\"\\u00ffa\"}]}";

START_TEST(defaults)
{
	st_avro_reader_t *r;
	st_avro_decoder_t *d;
	st_value_t out[7];
	const uint8_t body[] = {0x02, 0x02}; /* user_id 1, channel pos */
	char errstr[512];

	ck_assert_msg(st_avro_reader_new(&r, with_defaults,
					 strlen(with_defaults), errstr,
					 sizeof(errstr)) == 0, "%s", errstr);
	d = decoder_from(r,
		"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
		"{\"name\":\"user_id\",\"type\":\"long\"},"
		CHANNEL_ENUM("\"web\",\"pos\"") "]}");
	ck_assert_msg(st_avro_decode(d, body, sizeof(body), out, errstr,
				     sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_int_eq(out[0].i, 1);
	ck_assert(out[1].type == ST_VAL_DOUBLE && out[1].d == 1.5);
	assert_str(&out[2], "std");
	ck_assert(out[3].type == ST_VAL_BOOL && out[3].i == 1);
	ck_assert(out[4].type == ST_VAL_INT && out[4].i == -3);
	assert_str(&out[5], "pos");
	ck_assert_int_eq(out[6].type, ST_VAL_STRING);
	ck_assert_uint_eq(out[6].len, 2);
	ck_assert_int_eq(memcmp(out[6].s, "\xff" "a", 2), 0);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

static const struct {
	const char *json, *msg;
} bad_readers[] = {
	{"{\"type\":\"record\"", "reader schema: "},
	{"\"string\"", "reader schema: not a record"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[]}",
	 "reader schema: a record without fields"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\","
	 "\"type\":{\"type\":\"array\",\"items\":\"long\"}}]}",
	 "reader schema: field a: unsupported type array"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\","
	 "\"type\":[\"null\",{\"type\":\"record\",\"name\":\"R\","
	 "\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}]}]}",
	 "reader schema: field a: unsupported type [\"null\",\"R\"]"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\","
	 "\"type\":\"long\",\"default\":\"x\"}]}",
	 "reader schema: field a: default does not match type long"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\","
	 "\"type\":[\"null\",\"long\"],\"default\":5}]}",
	 "reader schema: field a: default does not match type [\"null\","
	 "\"long\"]"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\","
	 "\"type\":\"int\",\"default\":3000000000}]}",
	 "default does not match type int"},
	{"{\"type\":\"record\",\"name\":\"T\",\"fields\":["
	 CHANNEL_ENUM("\"web\"") "],\"x\":1}", NULL},
};

START_TEST(reader_errors)
{
	st_avro_reader_t *r;
	char errstr[512];
	int rc;

	rc = st_avro_reader_new(&r, bad_readers[_i].json,
				strlen(bad_readers[_i].json), errstr,
				sizeof(errstr));
	if (!bad_readers[_i].msg) {
		ck_assert_msg(rc == 0, "%s", errstr);
		st_avro_reader_free(r);
		return;
	}
	ck_assert_int_eq(rc, ST_ESCHEMA);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(errstr, bad_readers[_i].msg), "'%s' lacks '%s'",
		      errstr, bad_readers[_i].msg);
}
END_TEST

#define V2_FIELDS(amount) \
	"{\"name\":\"txn_id\",\"type\":\"string\"}," \
	"{\"name\":\"user_id\",\"type\":\"long\"}," \
	"{\"name\":\"merchant_id\",\"type\":\"long\"}," \
	"{\"name\":\"amount\",\"type\":" amount "}," \
	"{\"name\":\"currency\",\"type\":\"string\"}," \
	CHANNEL_ENUM("\"web\",\"mobile\",\"pos\",\"atm\"") "," \
	"{\"name\":\"event_time\",\"type\":\"long\"}"

static const struct {
	const char *json, *msg;
} bad_writers[] = {
	{"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	 V2_FIELDS("\"string\"") "]}",
	 "field amount: writer type string cannot be read as double"},
	{"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	 V2_FIELDS("[\"null\",\"string\"]") "]}",
	 "field amount: writer type [\"null\",\"string\"] cannot be read as "
	 "double"},
	{"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	 "{\"name\":\"txn_id\",\"type\":\"string\"}]}",
	 "field user_id: missing from the writer schema and without a "
	 "default"},
	{"{\"type\":\"record\",\"name\":\"Payment\",\"fields\":["
	 V2_FIELDS("\"double\"") "]}",
	 "writer record Payment is not the reader's Transaction"},
	{"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	 V2_FIELDS("\"double\"") ",{\"name\":\"amount\",\"type\":\"long\"}]}",
	 "writer schema: field amount appears twice"},
	{"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	 V2_FIELDS("\"Money\"") "]}",
	 "writer schema: Unknown Avro \"type\": Money"},
	{"not json", "writer schema: "},
	{"[\"null\",\"string\"]", "writer schema: not a record"},
};

START_TEST(writer_errors)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d;
	char errstr[512];

	ck_assert_int_eq(st_avro_decoder_new(&d, r, bad_writers[_i].json,
					     strlen(bad_writers[_i].json),
					     errstr, sizeof(errstr)),
			 ST_ESCHEMA);
	ck_assert_ptr_null(d);
	ck_assert_msg(strstr(errstr, bad_writers[_i].msg), "'%s' lacks '%s'",
		      errstr, bad_writers[_i].msg);
	st_avro_reader_free(r);
}
END_TEST

/* Every proper prefix of a valid body fails cleanly; so does a byte more. */
static void truncations(st_avro_decoder_t *d, const uint8_t *body,
			size_t len, size_t nfields)
{
	st_value_t out[16];
	char errstr[512];
	uint8_t *copy;
	size_t n;

	ck_assert_uint_le(nfields, 16);
	for (n = 0; n < len; n++) {
		/* An exact-size heap copy lets ASan see reads past the end. */
		copy = malloc(n ? n : 1);
		memcpy(copy, body, n);
		ck_assert_msg(st_avro_decode(d, copy, n, out, errstr,
					     sizeof(errstr)) == ST_EPARSE,
			      "prefix of %zu bytes decoded", n);
		free(copy);
	}
	copy = malloc(len + 1);
	memcpy(copy, body, len);
	copy[len] = 0;
	ck_assert_int_eq(st_avro_decode(d, copy, len + 1, out, errstr,
					sizeof(errstr)), ST_EPARSE);
	ck_assert_msg(strstr(errstr, "1 bytes after the end of the record"),
		      "%s", errstr);
	ck_assert_int_eq(st_avro_decode(d, copy, len, out, errstr,
					sizeof(errstr)), 0);
	free(copy);
}

START_TEST(truncated_and_trailing)
{
	st_avro_reader_t *r2 = reader_from("transaction.avsc");
	st_avro_reader_t *r1 = reader_from("transaction.v1.avsc");
	st_avro_decoder_t *d22 = decoder_from_file(r2, "transaction.avsc");
	st_avro_decoder_t *d12 = decoder_from_file(r1, "transaction.avsc");
	st_avro_decoder_t *d21 = decoder_from_file(r2, "transaction.v1.avsc");
	st_avro_encoder_t *e2 = encoder_from_file("transaction.avsc");
	st_avro_encoder_t *e1 = encoder_from_file("transaction.v1.avsc");
	st_value_t in[NFIELDS_V2];
	uint8_t frame[256];
	const uint8_t *body;
	size_t len;

	txn(in, "dev-abcdef");
	len = encode_body(e2, in, NFIELDS_V2, frame, sizeof(frame), &body);
	truncations(d22, body, len, NFIELDS_V2);
	truncations(d12, body, len, NFIELDS_V2 - 1);
	len = encode_body(e1, in, NFIELDS_V2 - 1, frame, sizeof(frame),
			  &body);
	truncations(d21, body, len, NFIELDS_V2);
	st_avro_encoder_free(e1);
	st_avro_encoder_free(e2);
	st_avro_decoder_free(d21);
	st_avro_decoder_free(d12);
	st_avro_decoder_free(d22);
	st_avro_reader_free(r1);
	st_avro_reader_free(r2);
}
END_TEST

/* Writer-only fields of every complex type are skipped. */
static const char complex_writer[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	"{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":"
	"\"string\"}},"
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
	"{\"name\":\"geo\",\"type\":[\"null\",{\"type\":\"record\",\"name\":"
	"\"Geo\",\"fields\":[{\"name\":\"lat\",\"type\":\"double\"},"
	"{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"h\",\"type\":"
	"{\"type\":\"fixed\",\"name\":\"H\",\"size\":3}}]}]},"
	"{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
	"{\"name\":\"f\",\"type\":\"float\"},"
	"{\"name\":\"e\",\"type\":" "{\"type\":\"enum\",\"name\":\"E\","
	"\"symbols\":[\"a\",\"b\"]}},"
	"{\"name\":\"i\",\"type\":\"int\"}]}";

static const char complex_reader[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"f\",\"type\":\"double\"}]}";

static const uint8_t complex_body[] = {
	0x04, 0x02, 'a', 0x04, 'b', 'c', 0x00,     /* tags: ["a","bc"] */
	0x54,                                      /* user_id: 42 */
	0x01, 0x06, 0x02, 'k', 0x0a, 0x00,         /* attrs: {"k":5}, sized */
	0x02, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x01, 'x', 'y', 'z', /* geo */
	0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00,        /* nulls: 2^31-1 nulls */
	0x00, 0x00, 0xc0, 0x3f,                    /* f: 1.5 */
	0x02,                                      /* e: b */
	0x01                                       /* i: -1 */
};

START_TEST(skipped_complex_fields)
{
	st_avro_reader_t *r;
	st_avro_decoder_t *d;
	st_value_t out[2];
	char errstr[512];

	ck_assert_int_eq(st_avro_reader_new(&r, complex_reader,
					    strlen(complex_reader), errstr,
					    sizeof(errstr)), 0);
	d = decoder_from(r, complex_writer);
	ck_assert_msg(st_avro_decode(d, complex_body, sizeof(complex_body),
				     out, errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
	ck_assert_int_eq(out[0].i, 42);
	ck_assert(out[1].type == ST_VAL_DOUBLE && out[1].d == 1.5);
	truncations(d, complex_body, sizeof(complex_body), 2);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

/* Corruptions of the v2 body "txn_id" onwards, by hand. */
static const struct {
	uint8_t body[24];
	size_t len;
	const char *msg;
} corrupt[] = {
	{{0x7e}, 1, "field txn_id: truncated at byte 1 of 1"},
	{{0x01}, 1, "field txn_id: negative length"},
	{{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 9,
	 "field txn_id: truncated"},
	{{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
	 11, "field txn_id: varint longer than 10 bytes"},
	{{0x00, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x08}, 13,
	 "field channel: enum index out of range"},
	{{0x00, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01}, 13,
	 "field channel: enum index out of range"},
	{{0x00, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0x02, 0x04},
	 15, "field device_id: union branch index out of range"},
	{{0x00, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0x02, 0x00,
	  0x00}, 16, "1 bytes after the end of the record"},
};

START_TEST(corrupt_bodies)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d = decoder_from_file(r, "transaction.avsc");
	st_value_t out[NFIELDS_V2];
	char errstr[512];

	ck_assert_int_eq(st_avro_decode(d, corrupt[_i].body, corrupt[_i].len,
					out, errstr, sizeof(errstr)),
			 ST_EPARSE);
	ck_assert_msg(strstr(errstr, corrupt[_i].msg), "'%s' lacks '%s'",
		      errstr, corrupt[_i].msg);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

/* Odd values survive encode, frame parse and decode. */
START_TEST(round_trip)
{
	st_avro_reader_t *r = reader_from("transaction.avsc");
	st_avro_decoder_t *d = decoder_from_file(r, "transaction.avsc");
	st_avro_encoder_t *e = encoder_from_file("transaction.avsc");
	static const int64_t ints[] = {0, -1, 1, 63, 64, -64, -65, INT32_MAX,
				       INT64_MIN, INT64_MAX};
	static const char *const syms[] = {"web", "mobile", "pos", "atm"};
	st_value_t in[NFIELDS_V2], out[NFIELDS_V2];
	uint8_t frame[256];
	const uint8_t *body;
	char errstr[512];
	size_t i, len;

	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		txn(in, i % 2 ? "" : NULL);
		in[TXN_ID] = vstr(i % 2 ? "" : "x");
		in[USER_ID] = vint(ints[i]);
		in[MERCHANT_ID] = vint(-(ints[i] / 2));
		in[AMOUNT] = vdouble((double)ints[i] / 3);
		in[CHANNEL] = vstr(syms[i % 4]);
		len = encode_body(e, in, NFIELDS_V2, frame, sizeof(frame),
				  &body);
		ck_assert_msg(st_avro_decode(d, body, len, out, errstr,
					     sizeof(errstr)) == 0, "%s",
			      errstr);
		assert_str(&out[TXN_ID], i % 2 ? "" : "x");
		ck_assert_int_eq(out[USER_ID].i, ints[i]);
		ck_assert_int_eq(out[MERCHANT_ID].i, -(ints[i] / 2));
		ck_assert(out[AMOUNT].d == (double)ints[i] / 3);
		assert_str(&out[CHANNEL], syms[i % 4]);
		ck_assert_int_eq(out[DEVICE_ID].type,
				 i % 2 ? ST_VAL_STRING : ST_VAL_NULL);
	}
	st_avro_encoder_free(e);
	st_avro_decoder_free(d);
	st_avro_reader_free(r);
}
END_TEST

static const char map_schema[] =
	"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"m\","
	"\"type\":{\"type\":\"map\",\"values\":\"int\"}}]}";

START_TEST(encoder_errors)
{
	st_avro_encoder_t *e = encoder_from_file("transaction.avsc");
	st_avro_encoder_t *e32;
	st_value_t in[NFIELDS_V2];
	uint8_t frame[256];
	char errstr[512];
	size_t len, need, cap;

	txn(in, "dev-abcdef");
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2 - 1, frame,
					sizeof(frame), &len, errstr,
					sizeof(errstr)), ST_EINVAL);
	ck_assert_str_eq(errstr, "7 values for a record of 8 fields");
	in[USER_ID] = vstr("42");
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
					sizeof(frame), &len, errstr,
					sizeof(errstr)), ST_EINVAL);
	ck_assert_str_eq(errstr, "field user_id: string value for type long");
	txn(in, "dev-abcdef");
	in[CHANNEL] = vstr("fax");
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
					sizeof(frame), &len, errstr,
					sizeof(errstr)), ST_EINVAL);
	ck_assert_str_eq(errstr, "field channel: \"fax\" is not a symbol of "
			 "the enum");
	txn(in, NULL);
	in[DEVICE_ID] = vint(3);
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
					sizeof(frame), &len, errstr,
					sizeof(errstr)), ST_EINVAL);
	ck_assert_str_eq(errstr, "field device_id: integer value fits no "
			 "branch of the union");
	txn(in, NULL);
	in[AMOUNT] = vint(3);
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
					sizeof(frame), &len, errstr,
					sizeof(errstr)), ST_EINVAL);
	txn(in, "dev-abcdef");
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
					sizeof(frame), &need, errstr,
					sizeof(errstr)), 0);
	for (cap = 0; cap < need; cap++)
		ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame,
						cap, &len, errstr,
						sizeof(errstr)), ST_ERANGE);
	ck_assert_int_eq(st_avro_encode(e, 1, in, NFIELDS_V2, frame, need,
					&len, errstr, sizeof(errstr)), 0);
	ck_assert_uint_eq(len, need);
	e32 = encoder_from("{\"type\":\"record\",\"name\":\"T\",\"fields\":["
			   "{\"name\":\"n\",\"type\":\"int\"}]}");
	in[0] = vint(INT32_MAX + 1LL);
	ck_assert_int_eq(st_avro_encode(e32, 1, in, 1, frame, sizeof(frame),
					&len, errstr, sizeof(errstr)),
			 ST_EINVAL);
	ck_assert_str_eq(errstr, "field n: 2147483648 is out of range for "
			 "int");
	st_avro_encoder_free(e32);
	ck_assert_int_eq(st_avro_encoder_new(&e32, map_schema,
					     strlen(map_schema), errstr,
					     sizeof(errstr)), ST_ESCHEMA);
	ck_assert_ptr_null(e32);
	ck_assert_str_eq(errstr, "encoder schema: field m: unsupported type "
			 "map");
	st_avro_encoder_free(e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("avro");
	TCase *tc = tcase_create("avro");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, frame_good);
	tcase_add_loop_test(tc, frame_bad, 0,
			    sizeof(bad_frames) / sizeof(bad_frames[0]));
	tcase_add_test(tc, reader_fields);
	tcase_add_test(tc, v2_by_v2);
	tcase_add_test(tc, v1_by_v2);
	tcase_add_test(tc, v2_by_v1);
	tcase_add_test(tc, promotions_and_symbols);
	tcase_add_test(tc, defaults);
	tcase_add_loop_test(tc, reader_errors, 0,
			    sizeof(bad_readers) / sizeof(bad_readers[0]));
	tcase_add_loop_test(tc, writer_errors, 0,
			    sizeof(bad_writers) / sizeof(bad_writers[0]));
	tcase_add_test(tc, truncated_and_trailing);
	tcase_add_test(tc, skipped_complex_fields);
	tcase_add_loop_test(tc, corrupt_bodies, 0,
			    sizeof(corrupt) / sizeof(corrupt[0]));
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, encoder_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
