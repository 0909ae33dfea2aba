/*
 * benchutil.h -- helpers the benchmarks share.
 */
#ifndef STRATA_BENCHUTIL_H
#define STRATA_BENCHUTIL_H

#include <stdint.h>

#include <hiredis/hiredis.h>

/* Prints "PROGRAM: what: errstr" and exits 1. */
void bench_die(const char *what, const char *errstr)
	__attribute__((noreturn));

/* Connects to Redis (or anything speaking RESP) with a 10 s timeout on
 * connecting and on every reply; dies on failure. */
redisContext *bench_redis_connect(const char *host, int port);

/* Reads `n` replies, dying on a broken connection or an error reply. */
void bench_read_replies(redisContext *c, uint64_t n);

#endif
