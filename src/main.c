/*
 * main.c -- the strata command: subcommand dispatch and the wiring of the
 * pipeline stages. Only this file knows how stages connect.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "kafka.h"
#include "features.h"
#include "log.h"
#include "pipeline.h"
#include "row.h"
#include "server.h"
#include "state.h"
#include "temporal.h"
#include "timefmt.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Parses the options every daemon-like subcommand shares:
 *   -c FILE   configuration file
 *   -X k=v    set one key (after the file; may repeat)
 * Returns the index of the first operand, or -1 after printing an error.
 */
static int parse_common(int argc, char **argv, const char *usage,
			st_config_t **confp)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *path = NULL;
	char errstr[1024];
	char **sets = NULL;
	size_t nsets = 0;
	st_config_t *conf;
	int opt, ret = -1;

	conf = st_config_new();
	if (!conf) {
		fprintf(stderr, "strata: out of memory\n");
		return -1;
	}
	sets = calloc((size_t)argc + 1, sizeof(*sets));
	if (!sets)
		goto out;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+c:X:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'X':
			sets[nsets++] = optarg;
			break;
		case 'h':
			printf("%s", usage);
			goto out;
		default:
			fprintf(stderr, "%s", usage);
			goto out;
		}
	}
	if (path && st_config_load(conf, path, errstr, sizeof(errstr))) {
		fprintf(stderr, "strata: %s\n", errstr);
		goto out;
	}
	for (size_t i = 0; i < nsets; i++) {
		char *eq = strchr(sets[i], '=');

		if (!eq) {
			fprintf(stderr, "strata: -X %s: expected key=value\n",
				sets[i]);
			goto out;
		}
		*eq = '\0';
		if (st_config_set(conf, sets[i], eq + 1, "-X", 0, errstr,
				  sizeof(errstr))) {
			fprintf(stderr, "strata: %s\n", errstr);
			goto out;
		}
	}
	st_log_set_level(conf->log_level);
	*confp = conf;
	conf = NULL;
	ret = optind;
out:
	free(sets);
	st_config_destroy(conf);
	return ret;
}

static const char run_usage[] =
	"usage: strata run [-c FILE] [-X key=value]...\n"
	"  Runs the pipeline until SIGINT or SIGTERM.\n"
	"  -c, --config FILE  configuration file (see `strata help config`)\n"
	"  -X key=value       set a configuration key (repeatable)\n";

static int cmd_run(int argc, char **argv)
{
	st_config_t *conf = NULL;
	st_pipeline_t *p = NULL;
	char errstr[1024];
	int ret = 1;

	if (parse_common(argc, argv, run_usage, &conf) < 0)
		return 2;
	install_signals();
	/* The pipeline's buffers (Redis commands, LMDB pages, batches) grow
	 * and shrink every pass: kept in the heap, not handed back to the
	 * kernel and faulted in again, zeroed, on the next pass. */
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
	if (st_pipeline_new(&p, conf, NULL, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "main", "%s", errstr);
		goto out;
	}
	st_log(ST_LOG_NOTICE, "main", "strata %s running: state in %s, "
	       "transactions from %s, CDC from %s", PACKAGE_VERSION,
	       conf->state_dir, conf->transactions_topic, conf->cdc_topics);
	ret = st_pipeline_run(p, &stop_requested) ? 1 : 0;
	st_log(ST_LOG_NOTICE, "main", "stopped");
out:
	st_pipeline_destroy(p);
	st_config_destroy(conf);
	return ret;
}

/* ---- strata replay ---------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag,
			struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static const char replay_usage[] =
	"usage: strata replay [-c FILE] [-X key=value]... [--from TIME]\n"
	"                     [--to TIME] [--state DIR] [--out FILE]\n"
	"  Runs the pipeline's code over the inputs as they are in Kafka now,\n"
	"  from the beginning, with a state of its own (a temporary directory\n"
	"  unless --state), and writes every feature vector whose event time\n"
	"  is in [--from, --to) as one JSON object per line to --out (default\n"
	"  stdout): training data that agrees with what `strata run` wrote.\n"
	"  No Redis, no Kafka output, no consumer group. Ends at the inputs'\n"
	"  end offsets as they were at the start.\n";

static int cmd_replay(int argc, char **argv)
{
	st_pipeline_opts_t opts = {.replay = 1, .from_ms = INT64_MIN,
				   .to_ms = INT64_MAX};
	const char *state = NULL, *out = NULL;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	char tmp[] = "/tmp/strata-replay-XXXXXX", errstr[1024], group[64];
	st_config_t *conf = NULL;
	st_pipeline_t *p = NULL;
	int nrest = 1, ret = 2;

	if (!rest)
		return 2;
	/* Take replay's own options out; the rest are the common ones. */
	rest[0] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int64_t *tp = NULL;

		if (!strcmp(a, "--from") || !strcmp(a, "--to") ||
		    !strcmp(a, "--state") || !strcmp(a, "--out")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s", replay_usage);
				goto out;
			}
			if (!strcmp(a, "--from"))
				tp = &opts.from_ms;
			else if (!strcmp(a, "--to"))
				tp = &opts.to_ms;
			else if (!strcmp(a, "--state"))
				state = argv[i + 1];
			else
				out = argv[i + 1];
			if (tp && st_time_parse(argv[i + 1], tp)) {
				fprintf(stderr, "strata replay: %s %s: expected "
					"RFC 3339 or epoch milliseconds\n", a,
					argv[i + 1]);
				goto out;
			}
			i++;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	if (parse_common(nrest, rest, replay_usage, &conf) < 0)
		goto out;
	install_signals();
	if (!state && !(state = mkdtemp(tmp))) {
		fprintf(stderr, "strata replay: mkdtemp: %s\n", strerror(errno));
		goto out;
	}
	snprintf(group, sizeof(group), "strata-replay-%d", (int)getpid());
	if (st_config_set(conf, "state.dir", state, "replay", 0, errstr,
			  sizeof(errstr)) ||
	    st_config_set(conf, "kafka.group.id", group, "replay", 0, errstr,
			  sizeof(errstr)) ||
	    st_config_set(conf, "state.sync", "false", "replay", 0, errstr,
			  sizeof(errstr))) {
		fprintf(stderr, "strata replay: %s\n", errstr);
		goto out;
	}
	opts.out = out ? fopen(out, "w") : stdout;
	if (!opts.out) {
		fprintf(stderr, "strata replay: %s: %s\n", out, strerror(errno));
		goto out;
	}
	if (st_pipeline_new(&p, conf, &opts, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "replay", "%s", errstr);
		goto out;
	}
	ret = st_pipeline_run(p, &stop_requested) ? 1 : 0;
	st_log(ST_LOG_NOTICE, "replay", "%llu feature vectors written",
	       (unsigned long long)st_pipeline_stats(p)->replayed);
out:
	st_pipeline_destroy(p);
	if (opts.out && opts.out != stdout && fclose(opts.out))
		ret = 1;
	if (state == tmp)
		nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	st_config_destroy(conf);
	free(rest);
	return ret;
}

/* ---- strata asof ------------------------------------------------------ */

static void print_version(FILE *fp, const char *table, const char *key,
			  const st_version_t *v)
{
	char from[40], to[40], *row = NULL;
	json_t *j = v->row ? st_row_to_json(v->row, v->row_len) : NULL;

	if (j)
		row = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(fp, "{\"table\":\"%s\",\"key\":\"%s\",\"valid_from\":\"%s\","
		"\"valid_to\":%s%s%s,\"lsn\":%lld,\"deleted\":%s,\"row\":%s}\n",
		table, key, st_time_format(v->valid_from, from, sizeof(from)),
		v->valid_to == ST_TEMPORAL_OPEN_END ? "" : "\"",
		v->valid_to == ST_TEMPORAL_OPEN_END ? "null" :
		st_time_format(v->valid_to, to, sizeof(to)),
		v->valid_to == ST_TEMPORAL_OPEN_END ? "" : "\"",
		(long long)v->lsn, v->deleted ? "true" : "false",
		row ? row : "null");
	free(row);
	json_decref(j);
}

static int print_history_cb(const st_version_t *v, void *opaque)
{
	const char *const *tk = opaque;

	print_version(stdout, tk[0], tk[1], v);
	return 0;
}

static const char asof_usage[] =
	"usage: strata asof [-c FILE] [-X key=value]... TABLE KEY TIME\n"
	"       strata asof [-c FILE] [-X key=value]... --history TABLE KEY\n"
	"  Prints, as JSON on stdout, the version of the row valid at TIME\n"
	"  (RFC 3339, epoch milliseconds or `now`), or every version with its\n"
	"  validity interval. Reads the state in state.dir; safe while\n"
	"  `strata run` writes it. Exit status 1: no version valid then.\n";

static int cmd_asof(int argc, char **argv)
{
	const char *tk[2];
	st_config_t *conf = NULL;
	st_state_t *st = NULL;
	st_version_t v;
	int history = 0, first, ret = 2, err;
	char errstr[1024], when[40];
	int64_t t = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--history")) {
			history = 1;
			memmove(&argv[i], &argv[i + 1],
				(size_t)(argc - i) * sizeof(*argv));
			argc--;
			break;
		}
	}
	if ((first = parse_common(argc, argv, asof_usage, &conf)) < 0)
		return 2;
	if (argc - first != (history ? 2 : 3)) {
		fprintf(stderr, "%s", asof_usage);
		goto out;
	}
	tk[0] = argv[first];
	tk[1] = argv[first + 1];
	if (!history && !strcmp(argv[first + 2], "now"))
		t = st_time_now_ms();
	else if (!history && st_time_parse(argv[first + 2], &t)) {
		fprintf(stderr, "strata asof: TIME '%s': expected RFC 3339 "
			"(2026-11-25T08:00:00Z) or epoch milliseconds\n",
			argv[first + 2]);
		goto out;
	}
	if ((err = st_state_open(&st, conf->state_dir, conf->state_map_size,
				 ST_STATE_READONLY, errstr, sizeof(errstr)))) {
		fprintf(stderr, "strata asof: %s\n", errstr);
		goto out;
	}
	if (history) {
		err = st_temporal_history(st, tk[0], tk[1], strlen(tk[1]),
					  print_history_cb, tk, errstr,
					  sizeof(errstr));
		if (err == ST_ENOENT)
			fprintf(stderr, "strata asof: %s %s: no versions\n",
				tk[0], tk[1]);
	} else {
		err = st_temporal_asof(st, tk[0], tk[1], strlen(tk[1]), t, &v,
				       errstr, sizeof(errstr));
		if (!err)
			print_version(stdout, tk[0], tk[1], &v);
		else if (err == ST_ENOENT && v.deleted)
			fprintf(stderr, "strata asof: %s %s: deleted at %s\n",
				tk[0], tk[1], st_time_format(v.valid_from, when,
							     sizeof(when)));
		else if (err == ST_ENOENT)
			fprintf(stderr, "strata asof: %s %s: no version valid "
				"at %s\n", tk[0], tk[1],
				st_time_format(t, when, sizeof(when)));
		st_version_clear(&v);
	}
	if (err && err != ST_ENOENT)
		fprintf(stderr, "strata asof: %s\n", errstr);
	ret = err == 0 ? 0 : err == ST_ENOENT ? 1 : 2;
out:
	st_state_close(st);
	st_config_destroy(conf);
	return ret;
}

static const char schema_usage[] =
	"usage: strata schema [-c FILE] [-X key=value]...\n"
	"  Prints the Avro schema of the feature vectors that `strata run`\n"
	"  registers for features.topic, from transactions.schema and\n"
	"  features.file.\n";

/* ---- strata serve ---- */

static const char serve_usage[] =
	"usage: strata serve [-c FILE] [-X key=value]...\n"
	"  Answers Redis clients on serve.listen (HGETALL, HGET, HMGET,\n"
	"  HEXISTS, HLEN, EXISTS, TYPE, SCORE, RECOMMEND, PING, INFO, HELLO,\n"
	"  CLIENT, ...; RESP2 and RESP3) from the feature vectors `strata run`\n"
	"  keeps in state.dir, under the keys redis.prefix:ENTITY, until\n"
	"  SIGINT or SIGTERM. Safe while `strata run` writes the state.\n";

static int cmd_serve(int argc, char **argv)
{
	st_config_t *conf = NULL;
	st_recommend_conf_t rc;
	st_server_conf_t sc;
	st_server_t *s = NULL;
	char errstr[1024];
	int ret = 1;

	if (parse_common(argc, argv, serve_usage, &conf) < 0)
		return 2;
	install_signals();
	rc = (st_recommend_conf_t){
		.model = conf->recommend_model,
		.table = conf->recommend_table,
		.user_table = conf->recommend_user_table,
		.joins = conf->recommend_joins,
		.candidates_max = (size_t)conf->recommend_candidates_max,
	};
	sc = (st_server_conf_t){
		.listen = conf->serve_listen, .state_dir = conf->state_dir,
		.prefix = conf->redis_prefix, .model = conf->scorer_model,
		.metrics_listen = conf->serve_metrics_listen,
		.max_clients = (int)conf->serve_max_clients,
		.max_output = conf->serve_client_output_max,
		.recommend = &rc,
	};
	if (st_server_new(&s, &sc, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "main", "%s", errstr);
		goto out;
	}
	st_log(ST_LOG_NOTICE, "main", "strata %s serving %s:* from %s on "
	       "port %d%s%s%s%s", PACKAGE_VERSION, conf->redis_prefix,
	       conf->state_dir, st_server_port(s),
	       *conf->scorer_model ? ", SCORE with " : "", conf->scorer_model,
	       *conf->recommend_model ? ", RECOMMEND with " : "",
	       conf->recommend_model);
	if (st_server_run(s, &stop_requested, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "main", "%s", errstr);
		goto out;
	}
	st_log(ST_LOG_NOTICE, "main", "stopped");
	ret = 0;
out:
	st_server_destroy(s);
	st_config_destroy(conf);
	return ret;
}

static int cmd_schema(int argc, char **argv)
{
	st_config_t *conf = NULL;
	st_features_t *f = NULL;
	char errstr[1024], *text = NULL;
	json_t *j = NULL;
	int ret = 1;

	if (parse_common(argc, argv, schema_usage, &conf) < 0)
		return 2;
	if (st_features_load_for(conf, &f, errstr, sizeof(errstr))) {
		fprintf(stderr, "strata schema: %s\n", errstr);
		goto out;
	}
	text = st_features_avro_schema(f);
	j = text ? json_loads(text, 0, NULL) : NULL;
	if (!j)
		goto out;
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("\n");
	ret = 0;
out:
	json_decref(j);
	free(text);
	st_features_free(f);
	st_config_destroy(conf);
	return ret;
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("strata %s (librdkafka %s)\n", PACKAGE_VERSION,
	       rd_kafka_version_str());
	return 0;
}

static int cmd_help(int argc, char **argv);

typedef struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} command_t;

static const command_t commands[] = {
	{"run", cmd_run, "run the pipeline: CDC, join, windows, Redis"},
	{"asof", cmd_asof, "print a row as it was at a time, or its history"},
	{"serve", cmd_serve, "answer Redis clients (HGETALL, SCORE...) from the stored vectors"},
	{"replay", cmd_replay, "run the pipeline's code over Kafka's inputs into training data"},
	{"schema", cmd_schema, "print the Avro schema of the feature vectors"},
	{"version", cmd_version, "print the version"},
	{"help", cmd_help, "this help; `help config` lists every configuration key"},
};

static int cmd_help(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "config")) {
		int markdown = argc > 2 && !strcmp(argv[2], "--markdown");

		if (!markdown)
			printf("Configuration keys (`key = value` lines in the "
			       "file given with -c, or -X key=value):\n\n");
		st_config_print_help(stdout, markdown);
		return 0;
	}
	printf("usage: strata COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("\n`strata COMMAND --help` describes a command's options.\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cmd_help(0, NULL);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	fprintf(stderr, "strata: unknown command '%s' (see `strata help`)\n",
		argv[1]);
	return 2;
}
