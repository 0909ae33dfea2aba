/*
 * benchutil.c -- helpers the benchmarks share.
 */
#include "benchutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void bench_die(const char *what, const char *errstr)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
		errstr);
	exit(1);
}

redisContext *bench_redis_connect(const char *host, int port)
{
	struct timeval tv = {10, 0};
	redisContext *c = redisConnectWithTimeout(host, port, tv);

	if (!c || c->err)
		bench_die("connect", c ? c->errstr : "out of memory");
	redisSetTimeout(c, tv);
	return c;
}

void bench_read_replies(redisContext *c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		void *r;

		if (redisGetReply(c, &r) != REDIS_OK)
			bench_die("reply", c->errstr);
		if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
			bench_die("reply", ((redisReply *)r)->str);
		freeReplyObject(r);
	}
}
