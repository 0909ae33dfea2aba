/* log.c -- timestamped log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int st_log_level = ST_LOG_INFO;

void st_log_set_level(int level)
{
	st_log_level = level;
}

const char *st_log_level_name(int level)
{
	switch (level) {
	case ST_LOG_ERR: return "error";
	case ST_LOG_WARNING: return "warning";
	case ST_LOG_NOTICE: return "notice";
	case ST_LOG_INFO: return "info";
	case ST_LOG_DEBUG: return "debug";
	default: return level < ST_LOG_ERR ? "error" : "debug";
	}
}

void st_log_write(int level, const char *facility, const char *fmt, ...)
{
	char msg[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-7s %-8s %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		st_log_level_name(level), facility, msg);
}
