/*
 * benchutil.h -- helpers the benchmarks share.
 */
#ifndef STRATA_BENCHUTIL_H
#define STRATA_BENCHUTIL_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "server.h"

/* Prints "PROGRAM: what: errstr" and exits 1. */
void bench_die(const char *what, const char *errstr)
	__attribute__((noreturn));

/* Connects to Redis (or anything speaking RESP) with a 10 s timeout on
 * connecting and on every reply; dies on failure. */
redisContext *bench_redis_connect(const char *host, int port);

/* Reads `n` replies, dying on a broken connection or an error reply. */
void bench_read_replies(redisContext *c, uint64_t n);

/* The next number of a xorshift64 generator (x: its state, not 0). */
uint64_t bench_rand(uint64_t *x);

/* The time of clock clk in seconds (CLOCK_MONOTONIC for wall time, a
 * thread's CPU clock for its CPU time). */
double bench_clock_s(clockid_t clk);

/* qsort()'s comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

/* The median of v[0..n), n >= 1 (sorts v). */
double bench_median(double *v, int n);

/* Removes the directory dir and everything under it; errors ignored. */
void bench_remove_tree(const char *dir);

/* st_server_run() on a thread of its own, named "strata-serve" (for
 * perf top -t), and that thread's CPU clock. */
typedef struct bench_server {
	st_server_t *srv;
	volatile sig_atomic_t stop;
	pthread_t thr;
	clockid_t clk;
} bench_server_t;

/* Starts serving srv (taking it over); dies on failure. */
void bench_server_start(bench_server_t *b, st_server_t *srv);

/* Stops the thread and destroys the server. */
void bench_server_stop(bench_server_t *b);

#endif
