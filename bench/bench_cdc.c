/*
 * bench_cdc.c -- decoding Debezium change events: strata's decoder
 * (st_cdc_decode: parse, key, binary row) against jansson's json_loadb()
 * alone over the same bytes, which is what the decoder cost before it had
 * its own JSON reader. The event is a users change as the local stack's
 * Debezium writes it, with a text column of -b bytes.
 *
 * usage: bench_cdc [-n DECODES] [-b TEXT_BYTES]
 * Defaults: 200,000 decodes of each kind, a 3,300-byte text column (the
 * stack's users rows), interleaved in rounds so that both see the same
 * machine.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc.h"
#include "timefmt.h"

static void die(const char *what, const char *errstr)
{
	fprintf(stderr, "bench_cdc: %s: %s\n", what, errstr);
	exit(1);
}

/* A users change event with a text column of text_bytes bytes. */
static char *make_event(size_t text_bytes, size_t *len)
{
	static const char head[] =
		"{\"before\":null,\"after\":{\"id\":1,\"name\":\"user-1\","
		"\"email\":\"user1@example.com\",\"country\":\"FR\","
		"\"segment\":\"standard\",\"risk_tier\":4,\"bio\":\"";
	static const char tail[] =
		"\",\"updated_at\":1764633600000000},\"source\":{\"version\":"
		"\"3.1.0.Final\",\"connector\":\"postgresql\",\"name\":"
		"\"strata\",\"ts_ms\":1764633600123,\"snapshot\":\"first\","
		"\"db\":\"strata\",\"sequence\":\"[null,\\\"26715552\\\"]\","
		"\"ts_us\":1764633600123456,\"ts_ns\":1764633600123456000,"
		"\"schema\":\"public\",\"table\":\"users\",\"txId\":771,"
		"\"lsn\":26715552,\"xmin\":null},\"transaction\":null,"
		"\"op\":\"r\",\"ts_ms\":1764633600200,\"ts_us\":"
		"1764633600200123,\"ts_ns\":1764633600200123000}";
	static const char phrase[] = "Long biography of user 1. ";
	size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1, i;
	char *e = malloc(hl + text_bytes + tl + 1);

	if (!e)
		die("malloc", "out of memory");
	memcpy(e, head, hl);
	for (i = 0; i < text_bytes; i++)
		e[hl + i] = phrase[i % (sizeof(phrase) - 1)];
	memcpy(e + hl + text_bytes, tail, tl + 1);
	*len = hl + text_bytes + tl;
	return e;
}

int main(int argc, char **argv)
{
	static const char key[] = "{\"id\":1}";
	unsigned long long n = 200000, text = 3300, i;
	int opt, r, rounds = 5;
	double t_own = 0, t_jansson = 0, t0;
	char errstr[512];
	size_t len, sink = 0;
	st_cdc_msg_t m;
	json_t *j;
	char *ev;

	while ((opt = getopt(argc, argv, "n:b:")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 10); break;
		case 'b': text = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench_cdc [-n DECODES] "
				"[-b TEXT_BYTES]\n");
			return 2;
		}
	}
	printf("command: bench_cdc -n %llu -b %llu\n", n, text);
	ev = make_event(text, &len);
	if (st_cdc_decode("strata.public.users", key, sizeof(key) - 1, ev, len,
			  &m, errstr, sizeof(errstr)))
		die("the event does not decode", errstr);
	st_cdc_msg_clear(&m);
	for (r = 0; r < rounds; r++) {
		t0 = st_time_mono_us();
		for (i = 0; i < n / rounds; i++) {
			if (st_cdc_decode("strata.public.users", key,
					  sizeof(key) - 1, ev, len, &m, errstr,
					  sizeof(errstr)))
				die("decode", errstr);
			sink += m.row_len;
			st_cdc_msg_clear(&m);
		}
		t_own += st_time_mono_us() - t0;
		t0 = st_time_mono_us();
		for (i = 0; i < n / rounds; i++) {
			if (!(j = json_loadb(ev, len, JSON_REJECT_DUPLICATES |
					     JSON_ALLOW_NUL, NULL)))
				die("json_loadb", "rejected the event");
			sink += json_object_size(j);
			json_decref(j);
		}
		t_jansson += st_time_mono_us() - t0;
	}
	n = n / rounds * rounds;
	printf("event: %zu bytes\n", len);
	printf("st_cdc_decode: %llu in %.2f s = %.0f events/s (%.2f us each, "
	       "%.0f MB/s)\n", n, t_own / 1e6, n / (t_own / 1e6),
	       t_own / (double)n, (double)len * n / t_own);
	printf("jansson json_loadb alone: %llu in %.2f s = %.0f events/s "
	       "(%.2f us each, %.0f MB/s)\n", n, t_jansson / 1e6,
	       n / (t_jansson / 1e6), t_jansson / (double)n,
	       (double)len * n / t_jansson);
	printf("ratio st_cdc_decode / jansson (rate): %.1f\n",
	       t_jansson / t_own);
	printf("(checksum %zu)\n", sink);
	free(ev);
	return 0;
}
