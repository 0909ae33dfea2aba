/* check_config.c -- the configuration loader: good files, every kind of
 * bad value, unknown keys, duplicates, missing files, kafka.* pass-through. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "kafka.h"
#include "log.h"

static char path[64];

static const char *write_file(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/check_config_XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load(const char *text, st_config_t **confp, char *errstr,
		size_t errstr_size)
{
	st_config_t *conf = st_config_new();
	int err;

	ck_assert_ptr_nonnull(conf);
	err = st_config_load(conf, write_file(text), errstr, errstr_size);
	unlink(path);
	if (confp)
		*confp = conf;
	else
		st_config_destroy(conf);
	return err;
}

START_TEST(defaults)
{
	st_config_t *conf = st_config_new();

	ck_assert_int_eq(conf->log_level, ST_LOG_INFO);
	ck_assert_str_eq(conf->state_dir, "./strata-state");
	ck_assert_int_eq(conf->state_map_size, 1LL << 30);
	ck_assert_int_eq(conf->state_retention_ms, 30LL * 86400 * 1000);
	ck_assert_str_eq(conf->cdc_heartbeat_topic,
			 "strata.public.strata_heartbeat");
	ck_assert_uint_eq(conf->kafka_count, 0);
	st_config_destroy(conf);
}
END_TEST

START_TEST(good_file)
{
	st_config_t *conf;
	char errstr[512];

	ck_assert_int_eq(load("# a comment\n"
			      "\n"
			      "  log.level = debug  \n"
			      "state.dir=/var/lib/strata\n"
			      "state.map.size = 2G\n"
			      "state.retention = 7d\n"
			      "cdc.heartbeat.topic =\n"
			      "kafka.bootstrap.servers = localhost:19092\n"
			      "kafka.client.id = a=b\n",
			      &conf, errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(conf->log_level, ST_LOG_DEBUG);
	ck_assert_str_eq(conf->state_dir, "/var/lib/strata");
	ck_assert_int_eq(conf->state_map_size, 2LL << 30);
	ck_assert_int_eq(conf->state_retention_ms, 7LL * 86400 * 1000);
	ck_assert_str_eq(conf->cdc_heartbeat_topic, "");
	ck_assert_str_eq(st_config_kafka_get(conf, "bootstrap.servers"),
			 "localhost:19092");
	ck_assert_str_eq(st_config_kafka_get(conf, "client.id"), "a=b");
	ck_assert_ptr_null(st_config_kafka_get(conf, "group.id"));
	ck_assert_int_eq(conf->kafka[0].line, 8);
	st_config_destroy(conf);
}
END_TEST

/* Each bad line: the error code and a piece the message must contain. */
static const struct {
	const char *text;
	int err;
	const char *msg;
} bad[] = {
	{"log.level = verbose\n", ST_EINVAL,
	 ":1: log.level: invalid value 'verbose' (expected one of error, "
	 "warning, notice, info, debug)"},
	{"\n\nstate.map.size = lots\n", ST_EINVAL,
	 ":3: state.map.size: invalid size 'lots'"},
	{"state.map.size = 12Q\n", ST_EINVAL, "state.map.size: invalid size"},
	{"state.map.size = 1k\n", ST_ERANGE,
	 "state.map.size: value '1k' out of range (1048576 .. "},
	{"state.map.size = 99999999999999999999\n", ST_ERANGE,
	 "out of range"},
	{"state.retention = 10 minutes\n", ST_EINVAL,
	 "state.retention: invalid duration '10 minutes' (expected e.g."},
	{"state.retention = 1s\n", ST_ERANGE,
	 "state.retention: value '1s' out of range"},
	{"state.retention = -5h\n", ST_EINVAL, "invalid duration"},
	{"lgo.level = info\n", ST_EINVAL,
	 ":1: unknown configuration key 'lgo.level'"},
	{"log.level\n", ST_EINVAL, ":1: expected 'key = value', got 'log.level'"},
	{" = info\n", ST_EINVAL, ":1: missing key before '='"},
	{"log.level = info\nlog.level = debug\n", ST_EINVAL,
	 ":2: log.level: already set on line 1"},
	{"kafka. = x\n", ST_EINVAL, "empty librdkafka property name"},
};

START_TEST(bad_values)
{
	char errstr[512];
	int err;

	err = load(bad[_i].text, NULL, errstr, sizeof(errstr));
	ck_assert_int_eq(err, bad[_i].err);
	ck_assert_msg(strstr(errstr, bad[_i].msg), "message '%s' lacks '%s'",
		      errstr, bad[_i].msg);
	ck_assert_msg(strstr(errstr, "/tmp/check_config_"),
		      "message '%s' does not name the file", errstr);
}
END_TEST

START_TEST(missing_file)
{
	st_config_t *conf = st_config_new();
	char errstr[512];

	ck_assert_int_eq(st_config_load(conf, "/nonexistent/strata.conf",
					errstr, sizeof(errstr)), ST_ENOENT);
	ck_assert_ptr_nonnull(strstr(errstr, "/nonexistent/strata.conf"));
	st_config_destroy(conf);
}
END_TEST

START_TEST(set_and_override)
{
	st_config_t *conf = st_config_new();
	char errstr[512];

	ck_assert_int_eq(st_config_set(conf, "log.level", "error", "-X", 0,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(conf->log_level, ST_LOG_ERR);
	ck_assert_int_eq(st_config_set(conf, "kafka.group.id", "a", "-X", 0,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_config_set(conf, "kafka.group.id", "b", "-X", 0,
				       errstr, sizeof(errstr)), 0);
	ck_assert_uint_eq(conf->kafka_count, 1);
	ck_assert_str_eq(st_config_kafka_get(conf, "group.id"), "b");
	st_config_destroy(conf);
}
END_TEST

START_TEST(kafka_property_checked_by_librdkafka)
{
	st_config_t *conf;
	char errstr[512];
	rd_kafka_t *rk;

	ck_assert_int_eq(load("log.level = error\n"
			      "kafka.no.such.property = 1\n", &conf, errstr,
			      sizeof(errstr)), 0);
	rk = st_kafka_new(conf, ST_KAFKA_CONSUMER, NULL, errstr,
			  sizeof(errstr));
	ck_assert_ptr_null(rk);
	ck_assert_msg(strstr(errstr, ":2: kafka.no.such.property: "),
		      "got '%s'", errstr);
	st_config_destroy(conf);
}
END_TEST

/* The read-back of every commit waits inside rd_kafka_committed() at the
 * consumer's retry.backoff.ms: strata's default must reach librdkafka
 * (at librdkafka's own 100 ms every commit held the loop 100 ms), and a
 * file's value must still win. */
static void backoff_of(const char *text, st_kafka_role_t role,
		       const char *want)
{
	st_config_t *conf;
	char errstr[512], got[64];
	size_t len = sizeof(got);
	rd_kafka_t *rk;

	ck_assert_int_eq(load(text, &conf, errstr, sizeof(errstr)), 0);
	rk = st_kafka_new(conf, role, NULL, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	ck_assert_int_eq(rd_kafka_conf_get(rd_kafka_conf(rk),
					   "retry.backoff.ms", got, &len),
			 RD_KAFKA_CONF_OK);
	ck_assert_str_eq(got, want);
	rd_kafka_destroy(rk);
	st_config_destroy(conf);
}

START_TEST(kafka_retry_backoff_defaults)
{
	backoff_of("log.level = error\n", ST_KAFKA_CONSUMER, "2");
	backoff_of("log.level = error\n", ST_KAFKA_PRODUCER, "10");
	backoff_of("log.level = error\nkafka.retry.backoff.ms = 50\n",
		   ST_KAFKA_CONSUMER, "50");
}
END_TEST

START_TEST(durations_and_sizes)
{
	int64_t v;

	ck_assert_int_eq(st_parse_duration_ms("250ms", &v), 0);
	ck_assert_int_eq(v, 250);
	ck_assert_int_eq(st_parse_duration_ms("90s", &v), 0);
	ck_assert_int_eq(v, 90000);
	ck_assert_int_eq(st_parse_duration_ms("5m", &v), 0);
	ck_assert_int_eq(v, 300000);
	ck_assert_int_eq(st_parse_duration_ms("24h", &v), 0);
	ck_assert_int_eq(v, 86400000);
	ck_assert_int_eq(st_parse_duration_ms("1500", &v), 0);
	ck_assert_int_eq(v, 1500);
	ck_assert_int_eq(st_parse_duration_ms("1w", &v), ST_EINVAL);
	ck_assert_int_eq(st_parse_duration_ms("", &v), ST_EINVAL);
	ck_assert_int_eq(st_parse_duration_ms("9223372036854775807d", &v),
			 ST_ERANGE);
	ck_assert_int_eq(st_parse_size("64k", &v), 0);
	ck_assert_int_eq(v, 65536);
	ck_assert_int_eq(st_parse_size("3T", &v), 0);
	ck_assert_int_eq(v, 3LL << 40);
	ck_assert_int_eq(st_parse_size("1.5G", &v), ST_EINVAL);
}
END_TEST

START_TEST(split_list)
{
	size_t n;
	char **v = st_split_list(" a, b ,,c ,", &n);

	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0], "a");
	ck_assert_str_eq(v[1], "b");
	ck_assert_str_eq(v[2], "c");
	ck_assert_ptr_null(v[3]);
	st_strv_free(v);
	v = st_split_list("", &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v[0]);
	st_strv_free(v);
}
END_TEST

START_TEST(help_lists_every_key)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	st_config_print_help(fp, 1);
	fclose(fp);
	ck_assert_ptr_nonnull(strstr(buf, "| `log.level` | enum | `info` |"));
	ck_assert_ptr_nonnull(strstr(buf, "| `state.map.size` | size |"));
	ck_assert_ptr_nonnull(strstr(buf, "| `kafka.*` |"));
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, defaults);
	tcase_add_test(tc, good_file);
	tcase_add_loop_test(tc, bad_values, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, set_and_override);
	tcase_add_test(tc, kafka_property_checked_by_librdkafka);
	tcase_add_test(tc, kafka_retry_backoff_defaults);
	tcase_add_test(tc, durations_and_sizes);
	tcase_add_test(tc, split_list);
	tcase_add_test(tc, help_lists_every_key);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
