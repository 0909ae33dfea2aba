/*
 * error.h -- strata's error codes.
 *
 * Every function that can fail returns int: 0 on success or one of the
 * negative ST_E* codes below. Modules translate the errors of the libraries
 * they wrap (LMDB, librdkafka, hiredis, avro-c, libpq) into these codes at
 * their boundary and put the details into the caller's errstr buffer.
 */
#ifndef ST_ERROR_H
#define ST_ERROR_H

#include <stddef.h>

enum {
	ST_OK = 0,
	ST_EINVAL = -1,    /* bad argument or bad configuration value */
	ST_ENOMEM = -2,    /* allocation failed */
	ST_ENOENT = -3,    /* no such file, key, version or schema */
	ST_EIO = -4,       /* operating-system I/O error */
	ST_EPARSE = -5,    /* malformed outside bytes (JSON, Avro, RESP) */
	ST_ESTATE = -6,    /* LMDB error other than map full */
	ST_EFULL = -7,     /* LMDB map full: raise state.map.size */
	ST_EKAFKA = -8,    /* librdkafka error */
	ST_EREDIS = -9,    /* Redis unreachable or replied with an error */
	ST_ETIMEDOUT = -10,/* an operation's bound was reached */
	ST_EAGAIN = -11,   /* temporary condition: try again */
	ST_EFENCED = -12,  /* another instance took over the transactional id */
	ST_ESCHEMA = -13,  /* schema missing, unknown id or incompatible */
	ST_ELATE = -14,    /* event later than the allowed lateness */
	ST_ERANGE = -15,   /* value out of range */
	ST_EMODEL = -16,   /* ONNX model could not be loaded or run */
	ST_ENET = -17,     /* network service unreachable (registry, HTTP) */
	ST_E_COUNT = 18
};

/* Returns a static, human-readable description of an ST_E* code. */
const char *st_strerror(int err);

/*
 * Formats into errstr (always NUL-terminated when errstr_size > 0) and
 * returns err, so that error paths read `return st_seterr(...)`.
 */
int st_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Named crash points, for the crash-recovery tests: when the environment
 * variable STRATA_CRASH_AT is "NAME" or "NAME:N", the N-th time (default
 * the first) the program reaches st_crash_point("NAME") it kills itself
 * with SIGKILL, as `kill -9` would. Costs one comparison otherwise.
 */
void st_crash_point(const char *name);

/*
 * Named failure points, the same way: when STRATA_FAIL_AT is "NAME" or
 * "NAME:N", returns 1 the N-th time the program reaches
 * st_fail_point("NAME") (and 0 otherwise), for the caller to take its
 * error path as if the step had failed.
 */
int st_fail_point(const char *name);

/*
 * Named hold points, for tests that must act at one step of the program
 * (stop the broker just as a commit goes out): when STRATA_HOLD_AT is
 * "NAME" or "NAME:N", the N-th time the program reaches
 * st_hold_point("NAME") it says so on stderr and waits until the file
 * STRATA_HOLD_UNTIL names exists.
 */
void st_hold_point(const char *name);

#endif
