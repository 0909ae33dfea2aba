/*
 * fuzz_cdc.c -- libFuzzer target for the Debezium envelope decoder.
 * Input: message key, a newline, message value (an empty value is a
 * tombstone). Every accepted message is also converted back to JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc.h"
#include "row.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t klen = nl ? (size_t)(nl - data) : size;
	const uint8_t *value = nl ? nl + 1 : NULL;
	size_t vlen = nl ? size - klen - 1 : 0;
	char errstr[512];
	st_cdc_msg_t m;

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
