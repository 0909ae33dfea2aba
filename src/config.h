/*
 * config.h -- strata's configuration: one table drives parsing, validation,
 * `strata help config` and the README's configuration section.
 *
 * A configuration file holds `key = value` lines; `#` starts a comment line.
 * Keys starting with `kafka.` are not in the table: they are handed, without
 * the prefix, to librdkafka, which validates them (see the kafka module).
 * Every error names the key and, for files, the file and line.
 *
 * Not thread-safe; build the configuration before starting threads and treat
 * it as read-only afterwards.
 */
#ifndef ST_CONFIG_H
#define ST_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One librdkafka property taken from a `kafka.*` key. */
typedef struct st_config_kv {
	char *name;   /* without the "kafka." prefix */
	char *value;
	int line;     /* file line it came from, 0 for command line/default */
} st_config_kv_t;

typedef struct st_config {
	/* log */
	int log_level;
	/* state */
	char *state_dir;
	int64_t state_map_size;
	int64_t state_retention_ms;
	int state_sync;
	int state_writemap;
	int state_vectors;
	/* cdc */
	char *cdc_topics;
	char *cdc_heartbeat_topic;
	/* transactions and features */
	char *transactions_topic;
	char *transactions_schema;
	char *features_file;
	char *features_topic;
	int64_t join_max_wait_ms;
	int64_t max_future_ms;
	int64_t window_lateness_ms;
	int64_t window_cache_keys;
	/* schema registry */
	char *registry_url;
	int64_t registry_timeout_ms;
	/* online store */
	char *redis_host;
	int64_t redis_port;
	char *redis_prefix;
	int64_t redis_ttl_ms;
	int64_t redis_timeout_ms;
	/* operations */
	char *http_listen;
	int64_t http_ready_max_lag;
	/* strata serve */
	char *serve_listen;
	char *serve_metrics_listen;
	int64_t serve_max_clients;
	int64_t serve_client_output_max;
	char *recommend_model;
	char *recommend_table;
	char *recommend_user_table;
	char *recommend_joins;
	int64_t recommend_candidates_max;
	/* scoring */
	char *scorer_model;
	double scorer_threshold;
	char *scores_topic;
	char *alerts_topic;
	/* outputs */
	int exactly_once;
	char *dlq_topic;
	int64_t state_commit_interval_ms;
	int64_t state_commit_events;
	/* librdkafka pass-through, in order of appearance */
	st_config_kv_t *kafka;
	size_t kafka_count;
	/* where each table key was set: line numbers (0 = default) */
	int *lines;
	char *path;   /* the file loaded last, or NULL */
} st_config_t;

/*
 * Returns a configuration holding every default, or NULL when out of memory.
 * Caller frees with st_config_destroy().
 */
st_config_t *st_config_new(void);

void st_config_destroy(st_config_t *conf);

/*
 * Sets one key. `where` prefixes error messages ("strata.conf:12", "-X").
 * Returns 0, ST_EINVAL (unknown key, bad value; errstr says which) or
 * ST_ERANGE (value outside the key's range), ST_ENOMEM.
 */
int st_config_set(st_config_t *conf, const char *key, const char *value,
		  const char *where, int line, char *errstr, size_t errstr_size);

/*
 * Loads a file of `key = value` lines on top of the current values.
 * Returns 0, ST_ENOENT/ST_EIO when the file cannot be read, or the first
 * error of st_config_set() (errstr names file, line and key). A key given
 * twice in one file is an error.
 */
int st_config_load(st_config_t *conf, const char *path, char *errstr,
		   size_t errstr_size);

/* Looks up a kafka.* pass-through value (name without prefix); borrowed. */
const char *st_config_kafka_get(const st_config_t *conf, const char *name);

/*
 * Prints every key with type, default, range and doc: plain text for
 * --help, or a Markdown table (markdown != 0) for the README.
 */
void st_config_print_help(FILE *fp, int markdown);

/* Parses "250ms", "10s", "5m", "1h", "7d" or a bare number of ms. */
int st_parse_duration_ms(const char *s, int64_t *out);

/* Parses "4096", "64k", "512M", "2G" (powers of 1024). */
int st_parse_size(const char *s, int64_t *out);

/*
 * Splits a comma-separated list into a NULL-terminated array of trimmed,
 * non-empty strings. Caller frees with st_strv_free(). NULL on ENOMEM.
 */
char **st_split_list(const char *s, size_t *countp);
void st_strv_free(char **v);

#endif
