/*
 * check_ingest.c -- the CDC consumer against librdkafka's mock cluster and
 * a temporary LMDB: change topics are read from the beginning (or the
 * position LMDB holds), the heartbeat table's topic from its last few
 * messages only, since only its newest change counts, and the CDC
 * watermark is still proven.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "error.h"
#include "ingest.h"
#include "state.h"
#include "timefmt.h"

#define USERS "t.public.users"
#define HEARTBEAT "t.public.strata_heartbeat"
#define HEARTBEATS 50
#define FIRST_TS 1700000000000LL

static char dir[64];
static char errstr[512];
static st_state_t *st;
static rd_kafka_t *producer;     /* owns the mock cluster */
static char bootstraps[256];

static void produce(const char *topic, const char *key, const char *value)
{
	rd_kafka_resp_err_t e = rd_kafka_producev(
		producer, RD_KAFKA_V_TOPIC(topic),
		RD_KAFKA_V_KEY(key, strlen(key)),
		RD_KAFKA_V_VALUE((void *)value, strlen(value)),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);

	ck_assert_msg(!e, "produce: %s", rd_kafka_err2str(e));
}

/* A Debezium change event of `table` without an embedded schema. */
static void change(const char *topic, const char *table, int id,
		   int64_t ts_ms, int64_t lsn)
{
	char key[64], value[512];

	snprintf(key, sizeof(key), "{\"id\":%d}", id);
	snprintf(value, sizeof(value),
		 "{\"before\":null,\"after\":{\"id\":%d,\"segment\":\"s\"},"
		 "\"source\":{\"ts_ms\":%lld,\"lsn\":%lld,\"table\":\"%s\","
		 "\"snapshot\":\"false\",\"txId\":%lld},\"op\":\"u\","
		 "\"ts_ms\":%lld}", id, (long long)ts_ms, (long long)lsn,
		 table, (long long)lsn, (long long)ts_ms);
	produce(topic, key, value);
}

static void setup(void)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	char rderr[512];

	snprintf(dir, sizeof(dir), "/tmp/check_ingest_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(st_state_open(&st, dir, 64LL << 20, 0, errstr,
				       sizeof(errstr)), 0);
	ck_assert_int_eq(rd_kafka_conf_set(kc, "test.mock.num.brokers", "1",
					   rderr, sizeof(rderr)), 0);
	ck_assert_int_eq(rd_kafka_conf_set(kc, "log_level", "3", rderr,
					   sizeof(rderr)), 0);
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rderr, sizeof(rderr));
	ck_assert_msg(producer != NULL, "%s", rderr);
	mc = rd_kafka_handle_mock_cluster(producer);
	ck_assert_ptr_nonnull(mc);
	snprintf(bootstraps, sizeof(bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(mc));
	ck_assert_int_eq(rd_kafka_mock_topic_create(mc, USERS, 1, 1), 0);
	ck_assert_int_eq(rd_kafka_mock_topic_create(mc, HEARTBEAT, 1, 1), 0);
	for (int i = 0; i < 3; i++)
		change(USERS, "users", i + 1, FIRST_TS + i, 100 + i);
	for (int i = 0; i < HEARTBEATS; i++)
		change(HEARTBEAT, "strata_heartbeat", 1, FIRST_TS + 1000 + i,
		       200 + i);
	ck_assert_int_eq(rd_kafka_flush(producer, 10000), 0);
}

static void teardown(void)
{
	char cmd[128];

	rd_kafka_destroy(producer);
	st_state_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static st_config_t *conf;

/* A CDC consumer over the mock cluster; heartbeat_from >= 0 stores that
 * heartbeat position in LMDB first, as an earlier run would have. */
static st_ingest_t *open_ingest(int64_t heartbeat_from)
{
	st_ingest_t *in;

	conf = st_config_new();
	ck_assert_ptr_nonnull(conf);
	ck_assert_int_eq(st_config_set(conf, "kafka.bootstrap.servers",
				       bootstraps, "test", 0, errstr,
				       sizeof(errstr)), 0);
	ck_assert_int_eq(st_config_set(conf, "cdc.topics", USERS, "test", 0,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(st_config_set(conf, "cdc.heartbeat.topic", HEARTBEAT,
				       "test", 0, errstr, sizeof(errstr)), 0);
	if (heartbeat_from >= 0) {
		ck_assert_int_eq(st_state_begin(st, errstr, sizeof(errstr)), 0);
		ck_assert_int_eq(st_state_offset_put(st, HEARTBEAT, 0,
						     heartbeat_from, -1, errstr,
						     sizeof(errstr)), 0);
		ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)),
				 0);
	}
	ck_assert_msg(st_ingest_new(&in, conf, st, NULL, NULL, errstr,
				    sizeof(errstr)) == 0, "%s", errstr);
	return in;
}

static void close_ingest(st_ingest_t *in)
{
	st_ingest_destroy(in);
	st_config_destroy(conf);
}

/* Reads until every partition is at its end, in one LMDB transaction
 * left open; returns what was read. */
static st_ingest_stats_t drain(st_ingest_t *in)
{
	st_ingest_stats_t stats = {0};
	int64_t give_up = st_time_mono_us() + 20 * 1000000LL;

	for (;;) {
		int64_t users = -1, hb = -1;
		int n = st_ingest_poll(in, 256, &stats, errstr, sizeof(errstr));
		rd_kafka_topic_partition_list_t *pos =
			rd_kafka_topic_partition_list_new(2);

		ck_assert_msg(n >= 0, "%s", errstr);
		st_ingest_positions(in, pos);
		for (int i = 0; i < pos->cnt; i++) {
			if (!strcmp(pos->elems[i].topic, USERS))
				users = pos->elems[i].offset;
			else
				hb = pos->elems[i].offset;
		}
		rd_kafka_topic_partition_list_destroy(pos);
		if (users == 3 && hb == HEARTBEATS)
			return stats;
		ck_assert_msg(st_time_mono_us() < give_up, "positions stuck "
			      "at users %lld, heartbeat %lld", (long long)users,
			      (long long)hb);
		if (!n)
			usleep(10000);
	}
}

/* The watermark reaches the newest heartbeat's commit time: the skip
 * still proves it. */
static void watermark_reaches_last_heartbeat(st_ingest_t *in)
{
	int64_t want = FIRST_TS + 1000 + HEARTBEATS - 1, w;
	int64_t give_up = st_time_mono_us() + 20 * 1000000LL;

	ck_assert_int_eq(st_ingest_newest(in), want);
	while ((w = st_ingest_watermark(in)) != want) {
		ck_assert_msg(st_time_mono_us() < give_up, "watermark %lld, "
			      "want %lld", (long long)w, (long long)want);
		usleep(10000);
	}
}

/* Where the heartbeat topic is read from: the tail of HEARTBEATS
 * messages for a fresh state and for an LMDB position behind the tail,
 * the stored position when it is later; every change either way. */
static const struct {
	int64_t stored;            /* heartbeat position in LMDB, -1: none */
	uint64_t heartbeats;       /* read to reach the end */
} starts[] = {
	{-1, 16},
	{10, 16},
	{45, 5},
};

START_TEST(heartbeats_from_the_tail)
{
	st_ingest_t *in = open_ingest(starts[_i].stored);
	st_ingest_stats_t s = drain(in);

	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	ck_assert_uint_eq(s.versions, 3);
	ck_assert_uint_eq(s.heartbeats, starts[_i].heartbeats);
	watermark_reaches_last_heartbeat(in);
	close_ingest(in);
}
END_TEST

/* A batch aborted before its first commit rewinds the change topics to
 * LMDB (the beginning: nothing stored), not the heartbeats back through
 * the skipped history; the watermark, reset, is proven again from the
 * same heartbeat, nothing newer arriving. */
START_TEST(rewind_keeps_the_skip)
{
	st_ingest_t *in = open_ingest(-1);
	st_ingest_stats_t s = drain(in);

	ck_assert_uint_eq(s.heartbeats, 16);
	watermark_reaches_last_heartbeat(in);	/* probed once already */
	st_state_abort(st);
	ck_assert_msg(st_ingest_rewind(in, errstr, sizeof(errstr)) == 0, "%s",
		      errstr);
	s = drain(in);
	ck_assert_int_eq(st_state_commit(st, errstr, sizeof(errstr)), 0);
	ck_assert_uint_eq(s.versions, 3);	/* applied again */
	ck_assert_uint_eq(s.heartbeats, 1);	/* the last one again */
	watermark_reaches_last_heartbeat(in);
	close_ingest(in);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("mock cluster");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, heartbeats_from_the_tail, 0,
			    sizeof(starts) / sizeof(starts[0]));
	tcase_add_test(tc, rewind_keeps_the_skip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
