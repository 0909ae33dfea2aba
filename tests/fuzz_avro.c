/*
 * fuzz_avro.c -- libFuzzer target for Confluent-framed Avro input.
 * Input: one Kafka message value. The frame's schema id picks one of four
 * decoders (id % 4):
 *   0  a writer with fields of every type (array, map, nested and
 *      recursive records, unions, fixed, enum, ...) read by a flat reader
 *      that skips some and promotes others
 *   1  schemas/transaction.avsc (v2) read by v2
 *   2  schemas/transaction.v1.avsc read by v2 (defaults)
 *   3  v2 read by v1 (skipped union)
 * The schemas come from $top_srcdir/schemas, else from the copies below.
 * A body that decodes is encoded again with the reader schema and must
 * decode to the same values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char v2_copy[] =
	"{\"type\":\"record\",\"name\":\"Transaction\","
	"\"namespace\":\"strata\",\"fields\":["
	"{\"name\":\"txn_id\",\"type\":\"string\"},"
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"merchant_id\",\"type\":\"long\"},"
	"{\"name\":\"amount\",\"type\":\"double\"},"
	"{\"name\":\"currency\",\"type\":\"string\"},"
	"{\"name\":\"channel\",\"type\":{\"type\":\"enum\","
	"\"name\":\"Channel\",\"symbols\":[\"web\",\"mobile\",\"pos\","
	"\"atm\"]}},"
	"{\"name\":\"event_time\",\"type\":{\"type\":\"long\","
	"\"logicalType\":\"timestamp-millis\"}},"
	"{\"name\":\"device_id\",\"type\":[\"null\",\"string\"],"
	"\"default\":null}]}";

static const char v1_copy[] =
	"{\"type\":\"record\",\"name\":\"Transaction\","
	"\"namespace\":\"strata\",\"fields\":["
	"{\"name\":\"txn_id\",\"type\":\"string\"},"
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"merchant_id\",\"type\":\"long\"},"
	"{\"name\":\"amount\",\"type\":\"double\"},"
	"{\"name\":\"currency\",\"type\":\"string\"},"
	"{\"name\":\"channel\",\"type\":{\"type\":\"enum\","
	"\"name\":\"Channel\",\"symbols\":[\"web\",\"mobile\",\"pos\","
	"\"atm\"]}},"
	"{\"name\":\"event_time\",\"type\":{\"type\":\"long\","
	"\"logicalType\":\"timestamp-millis\"}}]}";

static const char complex_writer[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	"{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":"
	"\"string\"}},"
	"{\"name\":\"user_id\",\"type\":\"int\"},"
	"{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":"
	"[\"long\",\"boolean\"]}},"
	"{\"name\":\"tree\",\"type\":{\"type\":\"record\",\"name\":\"Node\","
	"\"fields\":[{\"name\":\"v\",\"type\":\"int\"},{\"name\":\"kids\","
	"\"type\":{\"type\":\"array\",\"items\":\"Node\"}}]}},"
	"{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
	"{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"H\","
	"\"size\":3}},"
	"{\"name\":\"f\",\"type\":[\"null\",\"float\",\"string\"]},"
	"{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
	"\"symbols\":[\"a\",\"b\",\"c\"]}},"
	"{\"name\":\"ok\",\"type\":\"boolean\"},"
	"{\"name\":\"raw\",\"type\":\"bytes\"},"
	"{\"name\":\"sd\",\"type\":\"double\"},"
	"{\"name\":\"sf\",\"type\":\"float\"},"
	"{\"name\":\"se\",\"type\":{\"type\":\"enum\",\"name\":\"S\","
	"\"symbols\":[\"x\",\"y\"]}},"
	"{\"name\":\"empty\",\"type\":{\"type\":\"array\",\"items\":"
	"{\"type\":\"record\",\"name\":\"Z\",\"fields\":[{\"name\":\"z\","
	"\"type\":{\"type\":\"fixed\",\"name\":\"Z0\",\"size\":0}}]}}},"
	"{\"name\":\"amount\",\"type\":\"long\"},"
	"{\"name\":\"ratio\",\"type\":\"int\"}]}";

static const char complex_reader[] =
	"{\"type\":\"record\",\"name\":\"Transaction\",\"fields\":["
	"{\"name\":\"user_id\",\"type\":\"long\"},"
	"{\"name\":\"f\",\"type\":[\"null\",\"double\"]},"
	"{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
	"\"symbols\":[\"b\",\"a\"]}},"
	"{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"H\","
	"\"size\":3}},"
	"{\"name\":\"ok\",\"type\":\"boolean\"},"
	"{\"name\":\"raw\",\"type\":\"string\"},"
	"{\"name\":\"extra\",\"type\":\"float\",\"default\":0.5},"
	"{\"name\":\"amount\",\"type\":\"double\"},"
	"{\"name\":\"ratio\",\"type\":\"float\"}]}";

#define NCASES 4
#define NFIELDS_MAX 16

static struct {
	st_avro_reader_t *reader;
	st_avro_decoder_t *decoder;   /* writer -> reader */
	st_avro_encoder_t *encoder;   /* reader */
	st_avro_decoder_t *again;     /* reader -> reader */
} cases[NCASES];

/* Reads $top_srcdir/schemas/NAME, or copies the fallback; caller frees. */
static char *schema(const char *name, const char *fallback)
{
	const char *top = getenv("top_srcdir");
	char path[4096], *buf;
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/schemas/%s", top ? top : ".", name);
	fp = fopen(path, "rb");
	if (!fp)
		return strdup(fallback);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n + 1 : 1);
	if (!buf || n <= 0 || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		abort();
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void setup_case(int i, const char *writer, const char *reader)
{
	char errstr[512];

	if (st_avro_reader_new(&cases[i].reader, reader, strlen(reader),
			       errstr, sizeof(errstr)) ||
	    st_avro_reader_nfields(cases[i].reader) > NFIELDS_MAX ||
	    st_avro_decoder_new(&cases[i].decoder, cases[i].reader, writer,
				strlen(writer), errstr, sizeof(errstr)) ||
	    st_avro_encoder_new(&cases[i].encoder, reader, strlen(reader),
				errstr, sizeof(errstr)) ||
	    st_avro_decoder_new(&cases[i].again, cases[i].reader, reader,
				strlen(reader), errstr, sizeof(errstr))) {
		fprintf(stderr, "fuzz_avro: case %d: %s\n", i, errstr);
		abort();
	}
}

static void setup(void)
{
	char *v2 = schema("transaction.avsc", v2_copy);
	char *v1 = schema("transaction.v1.avsc", v1_copy);

	if (!v1 || !v2)
		abort();
	setup_case(0, complex_writer, complex_reader);
	setup_case(1, v2, v2);
	setup_case(2, v1, v2);
	setup_case(3, v2, v1);
	free(v1);
	free(v2);
}

static int same(const st_value_t *a, const st_value_t *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case ST_VAL_BOOL:
	case ST_VAL_INT:
		return a->i == b->i;
	case ST_VAL_DOUBLE:
		return !memcmp(&a->d, &b->d, sizeof(a->d));
	case ST_VAL_STRING:
		return a->len == b->len && (!a->len ||
					    !memcmp(a->s, b->s, a->len));
	default:
		return 1;
	}
}

/* Encodes the decoded values with the reader schema; they must decode
 * to themselves. */
static void round_trip(int c, const st_value_t *fields, size_t n)
{
	st_value_t again[NFIELDS_MAX];
	const uint8_t *body;
	char errstr[512];
	size_t i, cap = 5, len, body_len;
	uint8_t *buf;
	int32_t id;

	for (i = 0; i < n; i++)
		cap += 20 + (fields[i].type == ST_VAL_STRING ?
			     fields[i].len : 0);
	if (!(buf = malloc(cap)))
		abort();
	if (st_avro_encode(cases[c].encoder, c, fields, n, buf, cap, &len,
			   errstr, sizeof(errstr)) ||
	    st_avro_frame_parse(buf, len, &id, &body, &body_len, errstr,
				sizeof(errstr)) || id != c ||
	    st_avro_decode(cases[c].again, body, body_len, again, errstr,
			   sizeof(errstr))) {
		fprintf(stderr, "fuzz_avro: round trip: %s\n", errstr);
		abort();
	}
	for (i = 0; i < n; i++)
		if (!same(&fields[i], &again[i]))
			abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	st_value_t fields[NFIELDS_MAX];
	const uint8_t *body;
	char errstr[512];
	size_t body_len;
	int32_t id;
	int c;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (st_avro_frame_parse(data, size, &id, &body, &body_len, errstr,
				sizeof(errstr)))
		return 0;
	c = (int)((uint32_t)id % NCASES);
	if (st_avro_decode(cases[c].decoder, body, body_len, fields, errstr,
			   sizeof(errstr)) == 0)
		round_trip(c, fields, st_avro_reader_nfields(cases[c].reader));
	return 0;
}
