/* error.c -- descriptions of strata's error codes. */
#include "error.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const descriptions[ST_E_COUNT] = {
	"success",
	"invalid argument",
	"out of memory",
	"not found",
	"I/O error",
	"malformed input",
	"state store error",
	"state store full (raise state.map.size)",
	"Kafka error",
	"Redis error",
	"timed out",
	"temporarily unavailable",
	"fenced by another instance with the same transactional id",
	"schema error",
	"event later than the allowed lateness",
	"value out of range",
	"model error",
	"network service unreachable",
};

const char *st_strerror(int err)
{
	int i = -err;

	if (i < 0 || i >= ST_E_COUNT)
		return "unknown error";
	return descriptions[i];
}

int st_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
{
	va_list ap;

	if (errstr && errstr_size > 0) {
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return err;
}

typedef struct {
	int init;
	char want[64];
	long countdown;
} point_t;

/* Points are reached from the pipeline's loop and its commit thread. */
static pthread_mutex_t point_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 when `name` is the point the variable `var` names, reached for the
 * N-th time now. */
static int point_reached(point_t *pt, const char *var, const char *name)
{
	int hit;

	pthread_mutex_lock(&point_lock);
	if (!pt->init) {
		const char *env = getenv(var);
		const char *colon;

		pt->init = 1;
		if (env && *env) {
			colon = strchr(env, ':');
			snprintf(pt->want, sizeof(pt->want), "%.*s",
				 colon ? (int)(colon - env) : (int)strlen(env),
				 env);
			pt->countdown = colon ? atol(colon + 1) : 1;
		}
	}
	hit = pt->want[0] && !strcmp(pt->want, name) && --pt->countdown == 0;
	pthread_mutex_unlock(&point_lock);
	return hit;
}

void st_crash_point(const char *name)
{
	static point_t pt;

	if (!point_reached(&pt, "STRATA_CRASH_AT", name))
		return;
	fprintf(stderr, "strata: crash point %s reached: SIGKILL\n", name);
	kill(getpid(), SIGKILL);
}

int st_fail_point(const char *name)
{
	static point_t pt;

	if (!point_reached(&pt, "STRATA_FAIL_AT", name))
		return 0;
	fprintf(stderr, "strata: failure point %s reached: failing\n", name);
	return 1;
}

void st_hold_point(const char *name)
{
	static point_t pt;
	const char *path = getenv("STRATA_HOLD_UNTIL");

	if (!point_reached(&pt, "STRATA_HOLD_AT", name) || !path)
		return;
	fprintf(stderr, "strata: hold point %s reached: holding until %s "
		"exists\n", name, path);
	while (access(path, F_OK) != 0)
		usleep(1000);
	fprintf(stderr, "strata: hold point %s released\n", name);
}
