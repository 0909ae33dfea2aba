/*
 * log.h -- the one logging call of strata.
 *
 * Talk goes to stderr, data to stdout. st_log() checks the level before it
 * formats anything, so a disabled debug line costs one comparison.
 * Levels follow syslog numbering, as librdkafka's log callback does, so its
 * messages are passed straight in (facility "rdkafka").
 * Thread-safe: each line is written with one fprintf on a locked stream.
 */
#ifndef ST_LOG_H
#define ST_LOG_H

enum {
	ST_LOG_ERR = 3,
	ST_LOG_WARNING = 4,
	ST_LOG_NOTICE = 5,
	ST_LOG_INFO = 6,
	ST_LOG_DEBUG = 7
};

extern int st_log_level;

/* Sets the highest level written (ST_LOG_*). */
void st_log_set_level(int level);

/* Returns the level's name ("error", "warning", ...). */
const char *st_log_level_name(int level);

void st_log_write(int level, const char *facility, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define st_log(level, facility, ...)                                      \
	do {                                                              \
		if ((level) <= st_log_level)                              \
			st_log_write((level), (facility), __VA_ARGS__);   \
	} while (0)

#endif
