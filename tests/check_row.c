/* check_row.c -- binary rows: round trips, lookups, TOAST merging and
 * malformed bytes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "row.h"
#include "testutil.h"

START_TEST(json_round_trip)
{
	const char *in = "{\"id\":7,\"name\":\"Ann\",\"score\":0.25,"
			 "\"vip\":true,\"note\":null,\"tags\":[1, {\"a\" : "
			 "\"\\u0000/\"}],\"empty\":\"\"}";
	uint8_t *row;
	size_t len;
	json_t *out;
	st_value_t v;

	ck_assert_int_eq(st_test_row(in, &row, &len), 0);
	out = st_row_to_json(row, len);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(json_integer_value(json_object_get(out, "id")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(out, "name")), "Ann");
	ck_assert_double_eq(json_real_value(json_object_get(out, "score")), 0.25);
	ck_assert(json_is_true(json_object_get(out, "vip")));
	ck_assert(json_is_null(json_object_get(out, "note")));
	ck_assert_str_eq(json_string_value(json_object_get(out, "tags")),
			 "[1,{\"a\":\"\\u0000/\"}]");
	ck_assert_str_eq(json_string_value(json_object_get(out, "empty")), "");
	ck_assert_int_eq(st_row_get(row, len, "score", &v), 0);
	ck_assert_int_eq(v.type, ST_VAL_DOUBLE);
	ck_assert_int_eq(st_row_get(row, len, "name", &v), 0);
	ck_assert_int_eq(v.type, ST_VAL_STRING);
	ck_assert_uint_eq(v.len, 3);
	ck_assert_int_eq(memcmp(v.s, "Ann", 3), 0);
	ck_assert_int_eq(st_row_get(row, len, "nam", &v), ST_ENOENT);
	ck_assert_int_eq(st_row_get(row, len, "missing", &v), ST_ENOENT);
	json_decref(out);
	free(row);
}
END_TEST

START_TEST(not_an_object)
{
	const char *in = "[1]";
	uint8_t *row;
	size_t len;

	ck_assert_int_eq(st_test_row(in, &row, &len), ST_EINVAL);
}
END_TEST

START_TEST(merge_unavailable)
{
	const char *prev_j = ("{\"id\":1,\"bio\":\"long text\",\"age\":30}");
	const char *cur_j = ("{\"id\":1,\"bio\":\"" ST_DEBEZIUM_UNAVAILABLE
			   "\",\"age\":31,\"blob\":\"" ST_DEBEZIUM_UNAVAILABLE
			   "\"}");
	uint8_t *prev, *cur, *out;
	size_t prev_len, cur_len, out_len;
	st_value_t v;

	ck_assert_int_eq(st_test_row(prev_j, &prev, &prev_len), 0);
	ck_assert_int_eq(st_test_row(cur_j, &cur, &cur_len), 0);
	ck_assert(st_row_has_unavailable(cur, cur_len));
	ck_assert(!st_row_has_unavailable(prev, prev_len));
	ck_assert_int_eq(st_row_merge_unavailable(cur, cur_len, prev, prev_len,
						  &out, &out_len), 0);
	ck_assert(!st_row_has_unavailable(out, out_len));
	ck_assert_int_eq(st_row_get(out, out_len, "bio", &v), 0);
	ck_assert_int_eq(v.type, ST_VAL_STRING);
	ck_assert_int_eq(memcmp(v.s, "long text", 9), 0);
	ck_assert_int_eq(st_row_get(out, out_len, "age", &v), 0);
	ck_assert_int_eq(v.i, 31);
	/* No earlier value: the column is absent, never the placeholder. */
	ck_assert_int_eq(st_row_get(out, out_len, "blob", &v), ST_ENOENT);
	free(out);
	ck_assert_int_eq(st_row_merge_unavailable(cur, cur_len, NULL, 0, &out,
						  &out_len), 0);
	ck_assert_int_eq(st_row_get(out, out_len, "bio", &v), ST_ENOENT);
	free(out);
	free(prev);
	free(cur);
}
END_TEST

START_TEST(truncated_rows_rejected)
{
	const char *in = ("{\"id\":123456,\"name\":\"someone\",\"x\":1.5}");
	uint8_t *row;
	size_t len;
	st_value_t v;

	ck_assert_int_eq(st_test_row(in, &row, &len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		int r = st_row_get(row, cut, "x", &v);

		ck_assert_msg(r == ST_EPARSE || r == ST_ENOENT,
			      "cut %zu gave %d", cut, r);
		ck_assert_ptr_null(st_row_to_json(row, cut));
	}
	row[3] = 99; /* unknown type */
	ck_assert_int_eq(st_row_get(row, len, "x", &v), ST_EPARSE);
	free(row);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("row");
	TCase *tc = tcase_create("row");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, json_round_trip);
	tcase_add_test(tc, not_an_object);
	tcase_add_test(tc, merge_unavailable);
	tcase_add_test(tc, truncated_rows_rejected);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
