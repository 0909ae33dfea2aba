/*
 * fuzz_cdc.c -- libFuzzer target for the Debezium envelope decoder.
 * Input: message key, a newline, message value (an empty value is a
 * tombstone). Every accepted message is also converted back to JSON, and
 * the JSON reader must accept or reject the value as jansson does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc.h"
#include "json.h"
#include "row.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A raw NUL byte is left out: jansson skips some (see json.h). */
static void same_verdict(const uint8_t *p, size_t n)
{
	st_json_t doc = {0};
	json_t *j;
	int r;

	if (memchr(p, '\0', n))
		return;
	r = st_json_parse(&doc, p, n, NULL, 0);
	j = json_loadb((const char *)p, n,
		       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if ((r == 0) != (j != NULL))
		abort();
	json_decref(j);
	st_json_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t klen = nl ? (size_t)(nl - data) : size;
	const uint8_t *value = nl ? nl + 1 : NULL;
	size_t vlen = nl ? size - klen - 1 : 0;
	char errstr[512];
	st_cdc_msg_t m;

	same_verdict(value ? value : data, value ? vlen : klen);
	if (st_cdc_decode("strata.public.users", klen ? data : NULL, klen,
			  vlen ? value : NULL, vlen, &m, errstr,
			  sizeof(errstr)) == 0) {
		if (m.row) {
			json_t *j = st_row_to_json(m.row, m.row_len);

			if (!j)
				abort();  /* a row we built must read back */
			json_decref(j);
		}
		st_cdc_msg_clear(&m);
	}
	return 0;
}
