/*
 * timefmt.h -- event times as strata prints and reads them: milliseconds
 * since the Unix epoch, written as RFC 3339 in UTC.
 * Pure code: no I/O.
 */
#ifndef ST_TIMEFMT_H
#define ST_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses epoch milliseconds ("1700000000123") or RFC 3339
 * ("2026-11-25T08:19:08Z", "2026-11-25T08:19:08.123+01:00", a space for
 * the T is accepted). Returns 0, or ST_EINVAL for anything else.
 */
int st_time_parse(const char *s, int64_t *ms);

/* Writes RFC 3339 UTC with milliseconds ("2026-11-25T08:19:08.123Z") into
 * buf (at least 32 bytes); returns buf. */
char *st_time_format(int64_t ms, char *buf, size_t size);

/* Wall-clock time in ms since the epoch. */
int64_t st_time_now_ms(void);

/* Monotonic time in microseconds. */
int64_t st_time_mono_us(void);

#endif
