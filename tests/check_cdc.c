/* check_cdc.c -- decoding Debezium envelopes: every op, tombstones,
 * heartbeats, transaction metadata, embedded schemas, TOAST placeholders
 * and malformed input. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cdc.h"
#include "error.h"
#include "row.h"

#define TOPIC "strata.public.users"
#define KEY "{\"id\":42}"
#define SOURCE(op_ts) \
	"\"source\":{\"version\":\"3.1.0.Final\",\"connector\":\"postgresql\"," \
	"\"name\":\"strata\",\"ts_ms\":" op_ts ",\"snapshot\":\"false\"," \
	"\"db\":\"strata\",\"sequence\":\"[null,\\\"23456\\\"]\"," \
	"\"schema\":\"public\",\"table\":\"users\",\"txId\":771," \
	"\"lsn\":23456,\"xmin\":null}"

static int decode(const char *key, const char *value, st_cdc_msg_t *m,
		  char *errstr)
{
	return st_cdc_decode(TOPIC, key, key ? strlen(key) : 0, value,
			     value ? strlen(value) : 0, m, errstr, 512);
}

START_TEST(update_event)
{
	const char *v = "{\"before\":null,\"after\":{\"id\":42,\"name\":"
			"\"Ann\",\"segment\":\"gold\",\"risk_tier\":2},"
			SOURCE("1700000000123") ",\"transaction\":{\"id\":"
			"\"771:23456\",\"total_order\":1,"
			"\"data_collection_order\":1},\"op\":\"u\","
			"\"ts_ms\":1700000000200}";
	st_cdc_msg_t m;
	char errstr[512];
	st_value_t val;

	ck_assert_int_eq(decode(KEY, v, &m, errstr), 0);
	ck_assert_int_eq(m.kind, ST_CDC_CHANGE);
	ck_assert_int_eq(m.op, 'u');
	ck_assert_str_eq(m.table, "users");
	ck_assert_str_eq(m.key, "42");
	ck_assert_int_eq(m.ts_ms, 1700000000123LL);
	ck_assert_int_eq(m.lsn, 23456);
	ck_assert_int_eq(m.txid, 771);
	ck_assert_int_eq(m.snapshot, 0);
	ck_assert_int_eq(st_row_get(m.row, m.row_len, "segment", &val), 0);
	ck_assert_int_eq(memcmp(val.s, "gold", 4), 0);
	st_cdc_msg_clear(&m);
}
END_TEST

START_TEST(snapshot_read_with_schema_envelope)
{
	const char *k = "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":"
			"\"int64\",\"field\":\"id\"}]},\"payload\":{\"id\":7}}";
	const char *v = "{\"schema\":{\"type\":\"struct\"},\"payload\":{"
			"\"before\":null,\"after\":{\"id\":7},\"source\":{"
			"\"ts_ms\":5,\"lsn\":\"99\",\"snapshot\":\"first\","
			"\"table\":\"users\"},\"op\":\"r\",\"ts_ms\":6}}";
	st_cdc_msg_t m;
	char errstr[512];

	ck_assert_int_eq(decode(k, v, &m, errstr), 0);
	ck_assert_int_eq(m.op, 'r');
	ck_assert_int_eq(m.snapshot, 1);
	ck_assert_str_eq(m.key, "7");
	ck_assert_int_eq(m.lsn, 99);
	ck_assert_int_eq(m.txid, -1);
	st_cdc_msg_clear(&m);
}
END_TEST

START_TEST(delete_and_tombstone)
{
	const char *v = "{\"before\":{\"id\":42},\"after\":null,"
			SOURCE("1700000009000") ",\"op\":\"d\",\"ts_ms\":1}";
	st_cdc_msg_t m;
	char errstr[512];

	ck_assert_int_eq(decode(KEY, v, &m, errstr), 0);
	ck_assert_int_eq(m.op, 'd');
	ck_assert_ptr_null(m.row);
	ck_assert_str_eq(m.key, "42");
	st_cdc_msg_clear(&m);
	ck_assert_int_eq(decode(KEY, NULL, &m, errstr), 0);
	ck_assert_int_eq(m.kind, ST_CDC_TOMBSTONE);
	ck_assert_str_eq(m.table, "users");
	ck_assert_str_eq(m.key, "42");
	st_cdc_msg_clear(&m);
}
END_TEST

START_TEST(composite_and_string_keys)
{
	const char *v = "{\"after\":{\"a\":\"x\",\"b\":2},\"source\":{"
			"\"ts_ms\":1,\"lsn\":2,\"table\":\"pairs\"},"
			"\"op\":\"c\"}";
	st_cdc_msg_t m;
	char errstr[512];

	ck_assert_int_eq(decode("{\"a\":\"x\",\"b\":2}", v, &m, errstr), 0);
	ck_assert_str_eq(m.key, "x,2");
	ck_assert_str_eq(m.table, "pairs");
	st_cdc_msg_clear(&m);
}
END_TEST

START_TEST(heartbeat_and_transactions)
{
	st_cdc_msg_t m;
	char errstr[512];

	ck_assert_int_eq(st_cdc_decode("__debezium-heartbeat.strata",
				       "{\"serverName\":\"strata\"}", 24,
				       "{\"ts_ms\":1700000001000}", 23, &m,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_eq(m.kind, ST_CDC_HEARTBEAT);
	ck_assert_int_eq(m.ts_ms, 1700000001000LL);
	st_cdc_msg_clear(&m);
	ck_assert_int_eq(decode("{\"id\":\"771\"}",
				"{\"status\":\"BEGIN\",\"id\":\"771:23456\","
				"\"event_count\":null,\"data_collections\":"
				"null,\"ts_ms\":1700000000123}", &m, errstr), 0);
	ck_assert_int_eq(m.kind, ST_CDC_TXN_BEGIN);
	ck_assert_str_eq(m.txn_id, "771:23456");
	st_cdc_msg_clear(&m);
	ck_assert_int_eq(decode("{\"id\":\"771\"}",
				"{\"status\":\"END\",\"id\":\"771:23456\","
				"\"event_count\":3,\"data_collections\":[],"
				"\"ts_ms\":1700000000123}", &m, errstr), 0);
	ck_assert_int_eq(m.kind, ST_CDC_TXN_END);
	ck_assert_int_eq(m.event_count, 3);
	st_cdc_msg_clear(&m);
}
END_TEST

START_TEST(toast_placeholder_marked)
{
	const char *v = "{\"after\":{\"id\":42,\"bio\":\""
			ST_DEBEZIUM_UNAVAILABLE "\"}," SOURCE("10")
			",\"op\":\"u\"}";
	st_cdc_msg_t m;
	char errstr[512];
	st_value_t val;

	ck_assert_int_eq(decode(KEY, v, &m, errstr), 0);
	ck_assert_int_eq(st_row_get(m.row, m.row_len, "bio", &val), 0);
	ck_assert_int_eq(val.type, ST_VAL_UNAVAILABLE);
	st_cdc_msg_clear(&m);
}
END_TEST

static const struct {
	const char *key, *value, *msg;
} bad[] = {
	{KEY, "{\"op\":\"u\"", "message value: invalid JSON at byte"},
	{KEY, "[1,2]", "message value: expected a JSON object"},
	{KEY, "{\"hello\":1}", "not a Debezium change, heartbeat or"},
	{KEY, "{\"op\":\"x\",\"source\":{}}", "op: expected one of"},
	{KEY, "{\"op\":5}", "op: expected one of"},
	{KEY, "{\"op\":\"c\",\"after\":{}}", "source: missing"},
	{KEY, "{\"op\":\"c\",\"source\":{\"lsn\":1},\"after\":{}}",
	 "source.ts_ms: missing or not an integer"},
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":-1,\"lsn\":1},\"after\":{}}",
	 "source.ts_ms: negative"},
	/* A number in a string must be whole and in range: it was clamped
	 * to INT64_MAX before. */
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":\"99999999999999999999\","
	 "\"lsn\":1},\"after\":{}}", "source.ts_ms: missing or not an integer"},
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":\"12\\u0000\",\"lsn\":1},"
	 "\"after\":{}}", "source.ts_ms: missing or not an integer"},
	{KEY, "{\"op\":\"r\\u0000\",\"source\":{}}", "op: expected one of"},
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":1,\"lsn\":-2},\"after\":{}}",
	 "source.lsn: negative"},
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":1},\"after\":{}}",
	 "source.lsn: missing"},
	{KEY, "{\"op\":\"c\",\"source\":{\"ts_ms\":1,\"lsn\":2}}",
	 "after: missing or not an object for op \"c\""},
	{NULL, "{\"op\":\"c\",\"source\":{\"ts_ms\":1,\"lsn\":2},\"after\":{}}",
	 "message key: missing"},
	{"{}", "{\"op\":\"c\",\"source\":{\"ts_ms\":1,\"lsn\":2},\"after\":{}}",
	 "message key: expected a non-empty object"},
	{"{\"id\":", "{\"op\":\"d\",\"source\":{\"ts_ms\":1,\"lsn\":2}}",
	 "message key: invalid JSON"},
	{"{\"id\":1}", "{\"status\":\"MAYBE\",\"id\":\"1\"}",
	 "status: expected BEGIN or END"},
	{"{\"id\":1}", "{\"status\":\"BEGIN\\u0000\",\"id\":\"1\"}",
	 "status: expected BEGIN or END"},
	{"{\"id\":1}", "{\"op\":\"c\",\"op\":\"d\"}", "invalid JSON"},
	{NULL, NULL, "message key: missing"},
};

START_TEST(malformed)
{
	st_cdc_msg_t m;
	char errstr[512];

	ck_assert_int_eq(decode(bad[_i].key, bad[_i].value, &m, errstr),
			 ST_EPARSE);
	ck_assert_msg(strstr(errstr, bad[_i].msg), "'%s' lacks '%s'", errstr,
		      bad[_i].msg);
	ck_assert_ptr_null(m.key);
	ck_assert_ptr_null(m.row);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cdc");
	TCase *tc = tcase_create("cdc");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, update_event);
	tcase_add_test(tc, snapshot_read_with_schema_envelope);
	tcase_add_test(tc, delete_and_tombstone);
	tcase_add_test(tc, composite_and_string_keys);
	tcase_add_test(tc, heartbeat_and_transactions);
	tcase_add_test(tc, toast_placeholder_marked);
	tcase_add_loop_test(tc, malformed, 0, sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
