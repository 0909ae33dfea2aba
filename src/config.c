/* config.c -- the configuration table and its parser. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

typedef enum {
	CT_STR,
	CT_INT,
	CT_SIZE,
	CT_DURATION,
	CT_BOOL,
	CT_ENUM,
	CT_DOUBLE
} conf_type_t;

typedef struct {
	const char *name;
	int value;
} conf_enum_t;

typedef struct {
	const char *name;
	conf_type_t type;
	size_t offset;
	const char *def;
	int64_t min, max;           /* for INT, SIZE, DURATION */
	const conf_enum_t *enums;   /* for ENUM, NULL-name terminated */
	const char *doc;
} conf_prop_t;

static const conf_enum_t log_levels[] = {
	{"error", ST_LOG_ERR},   {"warning", ST_LOG_WARNING},
	{"notice", ST_LOG_NOTICE}, {"info", ST_LOG_INFO},
	{"debug", ST_LOG_DEBUG}, {NULL, 0}
};

#define OFF(f) offsetof(st_config_t, f)
#define DAY_MS (24LL * 3600 * 1000)

static const conf_prop_t props[] = {
	{"log.level", CT_ENUM, OFF(log_level), "info", 0, 0, log_levels,
	 "Highest level of log lines written to stderr."},
	{"state.dir", CT_STR, OFF(state_dir), "./strata-state", 0, 0, NULL,
	 "Directory of the LMDB environment holding temporal tables, window "
	 "state and input offsets."},
	{"state.map.size", CT_SIZE, OFF(state_map_size), "1G",
	 1LL << 20, 1LL << 40, NULL,
	 "LMDB map size: the most the state may grow to. A full map stops "
	 "ingestion with a clear error; raise it and restart."},
	{"state.sync", CT_BOOL, OFF(state_sync), "true", 0, 0, NULL,
	 "fsync every LMDB commit. false (MDB_NOSYNC) is much faster and "
	 "still survives a crash of strata itself (kill -9), but an operating "
	 "system crash or power loss may corrupt the state."},
	{"state.writemap", CT_BOOL, OFF(state_writemap), "true", 0, 0, NULL,
	 "Write LMDB pages in place in the memory map (MDB_WRITEMAP) instead "
	 "of copying each commit's pages through write(): about a third less "
	 "CPU per event. The state file is then as large as state.map.size "
	 "(sparse), and a full disk stops the process with SIGBUS instead of "
	 "an error: keep free space above state.map.size, or set false."},
	{"state.vectors", CT_BOOL, OFF(state_vectors), "true", 0, 0, NULL,
	 "Keep each entity's newest feature vector in LMDB too, for strata "
	 "serve, in the entity's LMDB record beside its window state: about "
	 "twice the bytes each commit writes (the backlog benchmark's events "
	 "per CPU-second were 0.75x those without)."},
	{"state.commit.interval", CT_DURATION, OFF(state_commit_interval_ms),
	 "1s", 1, 60000, NULL,
	 "Longest time between commits of the LMDB transaction (state and "
	 "input offsets together) and, with exactly.once, of the Kafka "
	 "transaction (outputs become visible to read_committed consumers), "
	 "or after state.commit.events events, whichever comes first. Redis "
	 "is written every pass, ahead of the commit."},
	{"state.commit.events", CT_INT, OFF(state_commit_events), "65536", 1,
	 1048576, NULL,
	 "Most events in one commit. Larger batches touch each LMDB page "
	 "once for more events (less copying per event) and hold more "
	 "uncommitted work in memory and in the open Kafka transaction."},
	{"state.retention", CT_DURATION, OFF(state_retention_ms), "30d",
	 3600 * 1000, 3650 * DAY_MS, NULL,
	 "Versions older than this horizon are compacted; the version valid at "
	 "the horizon is kept."},
	{"cdc.topics", CT_STR, OFF(cdc_topics),
	 "strata.public.users,strata.public.merchants,strata.public.items",
	 0, 0, NULL,
	 "Comma-separated Debezium change topics. The table name is the last "
	 "dot-separated part of the topic name."},
	{"cdc.heartbeat.topic", CT_STR, OFF(cdc_heartbeat_topic),
	 "strata.public.strata_heartbeat", 0, 0, NULL,
	 "Change topic of the heartbeat table that the connector's "
	 "heartbeat.action.query updates; its commit times advance the CDC "
	 "watermark when the database is idle. Not stored; read from its last "
	 "few messages, since only the newest counts. Empty disables it."},
	{"transactions.topic", CT_STR, OFF(transactions_topic),
	 "strata.transactions", 0, 0, NULL,
	 "Topic of the transaction events: Avro in the Confluent wire format, "
	 "keyed by entity; consumed in the consumer group kafka.group.id."},
	{"transactions.schema", CT_STR, OFF(transactions_schema),
	 "schemas/transaction.avsc", 0, 0, NULL,
	 "strata's reader schema (Avro JSON file); every writer schema is "
	 "resolved to it."},
	{"features.file", CT_STR, OFF(features_file),
	 "examples/fraud.features", 0, 0, NULL,
	 "The feature set: entity, dimensions and features (see \"Feature "
	 "files\")."},
	{"features.topic", CT_STR, OFF(features_topic), "strata.features", 0, 0,
	 NULL,
	 "Topic the feature vectors are produced to (Avro, Confluent wire "
	 "format, keyed by entity). Empty disables it."},
	{"join.max.wait", CT_DURATION, OFF(join_max_wait_ms), "5s", 0,
	 3600000, NULL,
	 "Longest time an event waits for the CDC watermark to pass its event "
	 "time; joined at the bound, it is counted and flagged stale."},
	{"transactions.max.future", CT_DURATION, OFF(max_future_ms), "10m",
	 0, 7 * DAY_MS, NULL,
	 "How far ahead of strata's clock an event time (or a CDC commit "
	 "time) may be; later events go to the dead-letter topic with reason "
	 "future."},
	{"window.allowed.lateness", CT_DURATION, OFF(window_lateness_ms), "5s",
	 0, 7 * DAY_MS, NULL,
	 "How far behind its partition's newest event time an event may be; "
	 "later events go to the dead-letter topic with reason late."},
	{"window.cache.keys", CT_INT, OFF(window_cache_keys), "1000000", 1000,
	 1000000000, NULL,
	 "Window states kept in memory (beyond this the clean ones are dropped "
	 "after a commit and read again from LMDB when needed)."},
	{"registry.url", CT_STR, OFF(registry_url),
	 "http://127.0.0.1:8081", 0, 0, NULL,
	 "Base URL of the Confluent-compatible schema registry (Apicurio: "
	 ".../apis/ccompat/v7)."},
	{"registry.timeout", CT_DURATION, OFF(registry_timeout_ms), "5s", 100,
	 600000, NULL, "Timeout of one schema registry request."},
	{"redis.host", CT_STR, OFF(redis_host), "127.0.0.1", 0, 0, NULL,
	 "Redis host of the online store."},
	{"redis.port", CT_INT, OFF(redis_port), "6379", 1, 65535, NULL,
	 "Redis port of the online store."},
	{"redis.prefix", CT_STR, OFF(redis_prefix), "strata:user", 0, 0, NULL,
	 "Prefix of the online store keys: one hash per entity at "
	 "PREFIX:ENTITY."},
	{"redis.ttl", CT_DURATION, OFF(redis_ttl_ms), "0", 0, 3650 * DAY_MS,
	 NULL, "Expiry set on every feature hash written; 0 for none."},
	{"redis.timeout", CT_DURATION, OFF(redis_timeout_ms), "2s", 10, 600000,
	 NULL, "Timeout of one Redis socket read or write."},
	{"exactly.once", CT_BOOL, OFF(exactly_once), "true", 0, 0, NULL,
	 "Produce the features and dead letters in Kafka transactions that "
	 "also commit the input offsets (transactional.id: kafka."
	 "transactional.id, default strata-GROUP). false: idempotent "
	 "producer, at-least-once output after a crash."},
	{"http.listen", CT_STR, OFF(http_listen), "127.0.0.1:9400", 0, 0, NULL,
	 "Address of the HTTP endpoint: /metrics (Prometheus), /healthz, "
	 "/readyz. HOST:PORT, :PORT (every interface), port 0 for any free "
	 "one; empty disables it."},
	{"http.ready.max.lag", CT_INT, OFF(http_ready_max_lag), "10000", 0,
	 INT64_MAX, NULL,
	 "/readyz answers 503 while the inputs are more messages behind "
	 "than this."},
	{"serve.listen", CT_STR, OFF(serve_listen), "127.0.0.1:6390", 0, 0,
	 NULL,
	 "Address strata serve answers Redis clients on (RESP2/RESP3: HGETALL, "
	 "HGET, HMGET, HEXISTS, HLEN, EXISTS, TYPE, SCORE, RECOMMEND, PING, "
	 "INFO...). "
	 "HOST:PORT, :PORT (every interface), [IPV6]:PORT, port 0 for any "
	 "free one."},
	{"serve.metrics.listen", CT_STR, OFF(serve_metrics_listen),
	 "127.0.0.1:9401", 0, 0, NULL,
	 "Address of strata serve's HTTP endpoint: /metrics, /healthz, "
	 "/readyz. Same forms as http.listen; empty disables it."},
	{"serve.max.clients", CT_INT, OFF(serve_max_clients), "1000", 1,
	 100000, NULL,
	 "Connections strata serve keeps open at most; one more gets "
	 "\"-ERR max number of clients reached\" and is closed. The soft "
	 "limit of open files is raised to fit, or start-up fails."},
	{"serve.client.output.max", CT_SIZE, OFF(serve_client_output_max),
	 "64M", 65536, 4294967296LL, NULL,
	 "Unsent replies strata serve buffers per client before it stops "
	 "reading that client's requests until they drain."},
	{"recommend.model", CT_STR, OFF(recommend_model), "", 0, 0, NULL,
	 "ONNX model strata serve's RECOMMEND ranks the catalogue with: input "
	 "float [N, F], one row per item, its columns named in metadata "
	 "strata.features (TABLE.COLUMN, TABLE.COLUMN=TEXT, or a feature of "
	 "the user's vector; see \"Recommendations\" in the README). Empty "
	 "disables RECOMMEND."},
	{"recommend.table", CT_STR, OFF(recommend_table), "items", 0, 0, NULL,
	 "The catalogue: the CDC table whose current rows RECOMMEND ranks."},
	{"recommend.user.table", CT_STR, OFF(recommend_user_table), "users", 0,
	 0, NULL,
	 "The CDC table of the users RECOMMEND ranks for, keyed by the "
	 "entity of the feature vectors."},
	{"recommend.joins", CT_STR, OFF(recommend_joins),
	 "merchants:merchant_id", 0, 0, NULL,
	 "Tables joined to each item for the model, TABLE:COLUMN comma-"
	 "separated (at most 6): the row of TABLE whose key is the item's "
	 "COLUMN."},
	{"recommend.candidates.max", CT_INT, OFF(recommend_candidates_max),
	 "100000", 1, 10000000, NULL,
	 "Items RECOMMEND scores at most; a larger catalogue gets an error "
	 "rather than a slow answer. Every request scores every item."},
	{"scorer.model", CT_STR, OFF(scorer_model), "", 0, 0, NULL,
	 "ONNX model scoring every event's feature vector (input float [N, F] "
	 "with the feature names in metadata strata.features; see "
	 "examples/models/README.md). Empty disables scoring."},
	{"scorer.threshold", CT_DOUBLE, OFF(scorer_threshold), "0.9", 0, 1,
	 NULL, "Scores at or above it are alerts."},
	{"scores.topic", CT_STR, OFF(scores_topic), "strata.scores", 0, 0, NULL,
	 "Topic of every event's score (JSON, keyed by entity). Empty "
	 "disables it."},
	{"alerts.topic", CT_STR, OFF(alerts_topic), "strata.alerts", 0, 0, NULL,
	 "Topic of the scores at or above scorer.threshold (JSON, keyed by "
	 "entity). Empty disables it."},
	{"dlq.topic", CT_STR, OFF(dlq_topic), "strata.dlq", 0, 0, NULL,
	 "Dead-letter topic: input strata cannot use, unchanged, with headers "
	 "naming its topic, partition, offset, schema id and the reason."},
};

#define NPROPS (sizeof(props) / sizeof(props[0]))

static const char *type_name(conf_type_t t)
{
	switch (t) {
	case CT_STR: return "string";
	case CT_INT: return "integer";
	case CT_SIZE: return "size";
	case CT_DURATION: return "duration";
	case CT_BOOL: return "boolean";
	case CT_ENUM: return "enum";
	case CT_DOUBLE: return "number";
	}
	return "?";
}

static const conf_prop_t *find_prop(const char *name)
{
	for (size_t i = 0; i < NPROPS; i++)
		if (!strcmp(props[i].name, name))
			return &props[i];
	return NULL;
}

int st_parse_duration_ms(const char *s, int64_t *out)
{
	static const struct { const char *sfx; int64_t mul; } units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
		{"d", 86400000}, {"", 1}
	};
	char *end;
	long long v;

	if (!s || !isdigit((unsigned char)*s))
		return ST_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return ST_ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].sfx))
			continue;
		if (v > INT64_MAX / units[i].mul)
			return ST_ERANGE;
		*out = v * units[i].mul;
		return 0;
	}
	return ST_EINVAL;
}

int st_parse_size(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return ST_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return ST_ERANGE;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return ST_EINVAL;
	}
	if (*end)
		return ST_EINVAL;
	if (v > (INT64_MAX >> shift))
		return ST_ERANGE;
	*out = (int64_t)v << shift;
	return 0;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!*s)
		return ST_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return ST_ERANGE;
	if (*end)
		return ST_EINVAL;
	*out = v;
	return 0;
}

static void describe_range(const conf_prop_t *p, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	if (p->type == CT_ENUM) {
		for (const conf_enum_t *e = p->enums; e->name; e++)
			off += snprintf(buf + off, off < size ? size - off : 0,
					"%s%s", e == p->enums ? "" : ", ",
					e->name);
	} else if (p->type == CT_BOOL) {
		snprintf(buf, size, "true, false");
	} else if (p->type != CT_STR) {
		snprintf(buf, size, "%lld .. %lld%s", (long long)p->min,
			 (long long)p->max,
			 p->type == CT_DURATION ? " ms" :
			 p->type == CT_SIZE ? " bytes" : "");
	}
}

/* Applies value to the field of p; errors name the key. */
static int apply(st_config_t *conf, const conf_prop_t *p, const char *value,
		 const char *where, char *errstr, size_t errstr_size)
{
	char *field = (char *)conf + p->offset;
	char range[256];
	int64_t v = 0;
	int err = 0;

	switch (p->type) {
	case CT_STR: {
		char *copy = strdup(value);

		if (!copy)
			return ST_ENOMEM;
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case CT_ENUM:
		for (const conf_enum_t *e = p->enums; e->name; e++) {
			if (!strcmp(e->name, value)) {
				*(int *)field = e->value;
				return 0;
			}
		}
		describe_range(p, range, sizeof(range));
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%s: %s: invalid value '%s' (expected one of "
				 "%s)", where, p->name, value, range);
	case CT_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "1")) {
			*(int *)field = 1;
			return 0;
		}
		if (!strcmp(value, "false") || !strcmp(value, "0")) {
			*(int *)field = 0;
			return 0;
		}
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%s: %s: invalid boolean '%s' (expected true "
				 "or false)", where, p->name, value);
	case CT_DOUBLE: {
		char *end;
		double d;

		errno = 0;
		d = strtod(value, &end);
		if (end == value || *end || errno || d != d)
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "%s: %s: invalid number '%s'", where,
					 p->name, value);
		if (d < (double)p->min || d > (double)p->max) {
			describe_range(p, range, sizeof(range));
			return st_seterr(errstr, errstr_size, ST_ERANGE,
					 "%s: %s: value '%s' out of range (%s)",
					 where, p->name, value, range);
		}
		*(double *)field = d;
		return 0;
	}
	case CT_INT:
		err = parse_int(value, &v);
		break;
	case CT_SIZE:
		err = st_parse_size(value, &v);
		break;
	case CT_DURATION:
		err = st_parse_duration_ms(value, &v);
		break;
	}
	if (err == ST_EINVAL)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%s: %s: invalid %s '%s'%s", where, p->name,
				 type_name(p->type), value,
				 p->type == CT_DURATION ?
				 " (expected e.g. 500ms, 10s, 5m, 1h, 7d)" :
				 p->type == CT_SIZE ?
				 " (expected e.g. 4096, 64k, 512M, 2G)" : "");
	if (err || v < p->min || v > p->max) {
		describe_range(p, range, sizeof(range));
		return st_seterr(errstr, errstr_size, ST_ERANGE,
				 "%s: %s: value '%s' out of range (%s)", where,
				 p->name, value, range);
	}
	*(int64_t *)field = v;
	return 0;
}

st_config_t *st_config_new(void)
{
	st_config_t *conf = calloc(1, sizeof(*conf));
	char errstr[256];

	if (!conf)
		return NULL;
	conf->lines = calloc(NPROPS, sizeof(*conf->lines));
	if (!conf->lines)
		goto fail;
	for (size_t i = 0; i < NPROPS; i++) {
		/* Defaults are part of the table; a bad one is a bug. */
		if (apply(conf, &props[i], props[i].def, "default", errstr,
			  sizeof(errstr)))
			goto fail;
	}
	return conf;
fail:
	st_config_destroy(conf);
	return NULL;
}

void st_config_destroy(st_config_t *conf)
{
	if (!conf)
		return;
	for (size_t i = 0; i < NPROPS; i++)
		if (props[i].type == CT_STR)
			free(*(char **)((char *)conf + props[i].offset));
	for (size_t i = 0; i < conf->kafka_count; i++) {
		free(conf->kafka[i].name);
		free(conf->kafka[i].value);
	}
	free(conf->kafka);
	free(conf->lines);
	free(conf->path);
	free(conf);
}

static int set_kafka(st_config_t *conf, const char *name, const char *value,
		     int line)
{
	st_config_kv_t *kv;
	char *n, *v;

	for (size_t i = 0; i < conf->kafka_count; i++) {
		if (strcmp(conf->kafka[i].name, name))
			continue;
		v = strdup(value);
		if (!v)
			return ST_ENOMEM;
		free(conf->kafka[i].value);
		conf->kafka[i].value = v;
		conf->kafka[i].line = line;
		return 0;
	}
	kv = realloc(conf->kafka, (conf->kafka_count + 1) * sizeof(*kv));
	if (!kv)
		return ST_ENOMEM;
	conf->kafka = kv;
	n = strdup(name);
	v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return ST_ENOMEM;
	}
	kv[conf->kafka_count].name = n;
	kv[conf->kafka_count].value = v;
	kv[conf->kafka_count].line = line;
	conf->kafka_count++;
	return 0;
}

int st_config_set(st_config_t *conf, const char *key, const char *value,
		  const char *where, int line, char *errstr, size_t errstr_size)
{
	const conf_prop_t *p;
	int err;

	if (!strncmp(key, "kafka.", 6)) {
		if (!key[6])
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "%s: empty librdkafka property name "
					 "after 'kafka.'", where);
		return set_kafka(conf, key + 6, value, line);
	}
	p = find_prop(key);
	if (!p)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%s: unknown configuration key '%s' (see "
				 "`strata help config`)", where, key);
	err = apply(conf, p, value, where, errstr, errstr_size);
	if (!err)
		conf->lines[p - props] = line;
	return err;
}

const char *st_config_kafka_get(const st_config_t *conf, const char *name)
{
	for (size_t i = 0; i < conf->kafka_count; i++)
		if (!strcmp(conf->kafka[i].name, name))
			return conf->kafka[i].value;
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Remembers which keys a file set, to reject a key given twice. */
typedef struct {
	char **keys;
	int *lines;
	size_t n;
} seen_t;

static int seen_add(seen_t *s, const char *key, int line, int *prev)
{
	char **k;
	int *l;

	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->keys[i], key)) {
			*prev = s->lines[i];
			return 1;
		}
	}
	k = realloc(s->keys, (s->n + 1) * sizeof(*k));
	if (!k)
		return ST_ENOMEM;
	s->keys = k;
	l = realloc(s->lines, (s->n + 1) * sizeof(*l));
	if (!l)
		return ST_ENOMEM;
	s->lines = l;
	if (!(s->keys[s->n] = strdup(key)))
		return ST_ENOMEM;
	s->lines[s->n++] = line;
	return 0;
}

static void seen_free(seen_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->lines);
}

int st_config_load(st_config_t *conf, const char *path, char *errstr,
		   size_t errstr_size)
{
	seen_t seen = {0};
	char *buf = NULL, where[512];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, err = 0, prev;
	FILE *fp;

	fp = fopen(path, "r");
	if (!fp)
		return st_seterr(errstr, errstr_size,
				 errno == ENOENT ? ST_ENOENT : ST_EIO,
				 "%s: cannot open configuration file: %s",
				 path, strerror(errno));
	while ((len = getline(&buf, &cap, fp)) >= 0) {
		char *line, *eq, *key, *value;

		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if ((size_t)len != strlen(buf)) {
			err = st_seterr(errstr, errstr_size, ST_EINVAL,
					"%s: NUL byte in line", where);
			goto out;
		}
		line = trim(buf);
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			err = st_seterr(errstr, errstr_size, ST_EINVAL,
					"%s: expected 'key = value', got '%s'",
					where, line);
			goto out;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (!*key) {
			err = st_seterr(errstr, errstr_size, ST_EINVAL,
					"%s: missing key before '='", where);
			goto out;
		}
		err = seen_add(&seen, key, lineno, &prev);
		if (err == 1) {
			err = st_seterr(errstr, errstr_size, ST_EINVAL,
					"%s: %s: already set on line %d", where,
					key, prev);
			goto out;
		}
		if (err)
			goto out;
		err = st_config_set(conf, key, value, where, lineno, errstr,
				    errstr_size);
		if (err)
			goto out;
	}
	if (ferror(fp)) {
		err = st_seterr(errstr, errstr_size, ST_EIO,
				"%s: read error: %s", path, strerror(errno));
		goto out;
	}
	free(conf->path);
	conf->path = strdup(path);
	if (!conf->path)
		err = ST_ENOMEM;
out:
	seen_free(&seen);
	free(buf);
	fclose(fp);
	return err;
}

void st_config_print_help(FILE *fp, int markdown)
{
	char range[256];

	if (markdown) {
		fprintf(fp, "| key | type | default | range | description |\n");
		fprintf(fp, "| --- | --- | --- | --- | --- |\n");
	}
	for (size_t i = 0; i < NPROPS; i++) {
		const conf_prop_t *p = &props[i];

		describe_range(p, range, sizeof(range));
		if (markdown)
			fprintf(fp, "| `%s` | %s | `%s` | %s | %s |\n",
				p->name, type_name(p->type), p->def, range,
				p->doc);
		else
			fprintf(fp, "  %-24s %-8s default: %s%s%s\n      %s\n",
				p->name, type_name(p->type),
				*p->def ? p->def : "(empty)",
				*range ? "  range: " : "", range, p->doc);
	}
	if (markdown)
		fprintf(fp, "| `kafka.*` | string | | | Passed without the "
			"`kafka.` prefix to librdkafka (consumer and "
			"producer), e.g. `kafka.bootstrap.servers`. strata's "
			"own defaults, which these override: consumers "
			"`group.id=strata`, `enable.auto.commit=false`, "
			"`auto.offset.reset=earliest`, "
			"`isolation.level=read_committed`, "
			"`session.timeout.ms=10000`, "
			"`heartbeat.interval.ms=2000`, "
			"`retry.backoff.ms=2`; producers "
			"`enable.idempotence=true`, `linger.ms=50`, "
			"`retry.backoff.ms=10`; both "
			"`socket.nagle.disable=true`. |\n");
	else
		fprintf(fp, "  %-24s %-8s\n      %s\n", "kafka.*", "string",
			"Passed without the prefix to librdkafka, e.g. "
			"kafka.bootstrap.servers.");
}

char **st_split_list(const char *s, size_t *countp)
{
	char *copy = strdup(s), *tok, *save = NULL;
	char **v = NULL, **nv;
	size_t n = 0;

	if (!copy)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		goto fail;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *t = trim(tok);

		if (!*t)
			continue;
		nv = realloc(v, (n + 2) * sizeof(*v));
		if (!nv)
			goto fail;
		v = nv;
		if (!(v[n] = strdup(t)))
			goto fail;
		v[++n] = NULL;
	}
	free(copy);
	if (countp)
		*countp = n;
	return v;
fail:
	free(copy);
	st_strv_free(v);
	return NULL;
}

void st_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
