/*
 * benchutil.c -- helpers the benchmarks share.
 */
#include "benchutil.h"

#include <errno.h>
#include <ftw.h>
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

uint64_t bench_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

double bench_clock_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
			struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void bench_remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void *serve(void *opaque)
{
	static char errstr[512];
	bench_server_t *b = opaque;

	if (st_server_run(b->srv, &b->stop, errstr, sizeof(errstr)))
		bench_die("serve", errstr);
	return NULL;
}

void bench_server_start(bench_server_t *b, st_server_t *srv)
{
	b->srv = srv;
	b->stop = 0;
	if (pthread_create(&b->thr, NULL, serve, b) ||
	    pthread_getcpuclockid(b->thr, &b->clk))
		bench_die("thread", "cannot start");
	pthread_setname_np(b->thr, "strata-serve");
}

void bench_server_stop(bench_server_t *b)
{
	b->stop = 1;
	pthread_join(b->thr, NULL);
	st_server_destroy(b->srv);
	b->srv = NULL;
}
