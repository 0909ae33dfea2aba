/*
 * fuzz_resp.c -- libFuzzer target for the RESP request parser.
 * Input: one byte that seeds how the rest is cut, then the bytes a client
 * sends. The stream is parsed twice, fed whole and fed in pieces of
 * pseudo-random sizes (1 to 64 bytes, some through st_resp_space()): both
 * must yield the same requests and end the same way (the same error, or
 * the same number of bytes left). Every request is also written back as
 * an array of bulk strings, which hiredis's reply reader must read back
 * as the same arguments.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	uint64_t hash;     /* FNV-1a over every request */
	size_t requests;
	int rc;            /* how it ended: 0, or the error code */
	size_t left;       /* bytes buffered at the end */
	char err[80];
} outcome_t;

static void mix(uint64_t *h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= 0x100000001b3u;
	}
}

/* Writes the request as an array of bulks and reads it back. */
static void round_trip(const st_resp_request_t *r)
{
	st_resp_out_t o = ST_RESP_OUT_INIT;
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	redisReply *rep;

	if (!rd)
		abort();
	rd->maxbuf = 0;
	st_resp_out_array(&o, r->argc);
	for (size_t i = 0; i < r->argc; i++)
		st_resp_out_bulk(&o, r->argv[i], r->argvlen[i]);
	if (st_resp_out_failed(&o) ||
	    redisReaderFeed(rd, st_resp_out_data(&o),
			    st_resp_out_pending(&o)) != REDIS_OK ||
	    redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
		abort();
	rep = reply;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != r->argc)
		abort();
	for (size_t i = 0; i < r->argc; i++)
		if (rep->element[i]->len != r->argvlen[i] ||
		    memcmp(rep->element[i]->str, r->argv[i], r->argvlen[i]))
			abort();
	freeReplyObject(reply);
	redisReaderFree(rd);
	st_resp_out_free(&o);
}

static void drain(st_resp_parser_t *p, outcome_t *oc, int check)
{
	st_resp_request_t r;
	int rc;

	while ((rc = st_resp_next(p, &r)) == 1) {
		if (r.argc < 1 || r.argc > ST_RESP_ARGS_MAX)
			abort();
		mix(&oc->hash, &r.argc, sizeof(r.argc));
		for (size_t i = 0; i < r.argc; i++) {
			if (r.argvlen[i] > ST_RESP_BULK_MAX ||
			    r.argv[i][r.argvlen[i]] != '\0')
				abort();
			mix(&oc->hash, &r.argvlen[i], sizeof(r.argvlen[i]));
			mix(&oc->hash, r.argv[i], r.argvlen[i]);
		}
		oc->requests++;
		if (check)
			round_trip(&r);
	}
	oc->rc = rc;
}

static void run(const uint8_t *data, size_t size, uint64_t x,
		outcome_t *oc)
{
	st_resp_parser_t *p;
	size_t off = 0;

	memset(oc, 0, sizeof(*oc));
	oc->hash = 0xcbf29ce484222325u;
	if (st_resp_parser_new(&p))
		abort();
	while (off < size && oc->rc == 0) {
		size_t k = size - off;

		if (x) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			k = 1 + x % 64;
			if (k > size - off)
				k = size - off;
		}
		if (x & 0x100) {
			void *sp;
			size_t avail;

			if ((oc->rc = st_resp_space(p, k, &sp, &avail)))
				break;
			if (avail < k)
				abort();
			memcpy(sp, data + off, k);
			st_resp_wrote(p, k);
		} else if ((oc->rc = st_resp_feed(p, data + off, k))) {
			break;
		}
		off += k;
		drain(p, oc, x == 0);
	}
	if (oc->rc < 0 && !st_resp_error(p))
		abort();
	if (st_resp_error(p))
		strncpy(oc->err, st_resp_error(p), sizeof(oc->err) - 1);
	oc->left = oc->rc ? 0 : st_resp_buffered(p);
	st_resp_parser_destroy(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	outcome_t whole, pieces;

	if (size < 1)
		return 0;
	run(data + 1, size - 1, 0, &whole);
	run(data + 1, size - 1, (uint64_t)data[0] * 0x9e3779b97f4a7c15u | 1,
	    &pieces);
	if (whole.hash != pieces.hash || whole.requests != pieces.requests ||
	    whole.rc != pieces.rc || whole.left != pieces.left ||
	    strcmp(whole.err, pieces.err))
		abort();
	return 0;
}
