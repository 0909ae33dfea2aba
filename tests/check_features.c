/* check_features.c -- the feature language: parsing, every error naming
 * its line, evaluation with dimensions, windows, nulls and formatting. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "features.h"
#include "row.h"
#include "testutil.h"

static const char *const fields[] = {
	"txn_id", "user_id", "merchant_id", "amount", "currency", "channel",
	"event_time", "device_id"
};
static const st_feat_type_t types[] = {
	ST_FEAT_STRING, ST_FEAT_NUMBER, ST_FEAT_NUMBER, ST_FEAT_NUMBER,
	ST_FEAT_STRING, ST_FEAT_STRING, ST_FEAT_NUMBER, ST_FEAT_STRING
};
#define NF 8

static st_features_t *parse(const char *text, char *errstr)
{
	st_features_t *f = NULL;
	int err = st_features_parse(&f, text, "t.features", fields, types, NF,
				    errstr, 512);

	return err ? NULL : f;
}

static uint8_t *row(const char *json, size_t *len)
{
	uint8_t *r;

	ck_assert_int_eq(st_test_row(json, &r, len), 0);
	return r;
}

static void event(st_value_t *ev, double amount, const char *channel)
{
	memset(ev, 0, NF * sizeof(*ev));
	ev[0].type = ST_VAL_STRING; ev[0].s = "t1"; ev[0].len = 2;
	ev[1].type = ST_VAL_INT; ev[1].i = 42;
	ev[2].type = ST_VAL_INT; ev[2].i = 7;
	ev[3].type = ST_VAL_DOUBLE; ev[3].d = amount;
	ev[4].type = ST_VAL_STRING; ev[4].s = "EUR"; ev[4].len = 3;
	ev[5].type = ST_VAL_STRING; ev[5].s = channel; ev[5].len = strlen(channel);
	ev[6].type = ST_VAL_INT; ev[6].i = 1700000000000LL;
	ev[7].type = ST_VAL_NULL;
}

START_TEST(example_file_loads)
{
	char path[512], errstr[512];
	const char *top = getenv("top_srcdir");
	st_features_t *f;
	size_t nw;

	snprintf(path, sizeof(path), "%s/examples/fraud.features",
		 top ? top : ".");
	ck_assert_msg(st_features_load(&f, path, fields, types, NF, errstr,
				       sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_uint_eq(st_features_count(f), 16);
	ck_assert_str_eq(st_features_name(f, 0), "amount");
	ck_assert_int_eq(st_features_entity_field(f), 1);
	ck_assert_int_eq(st_features_time_field(f), 6);
	ck_assert_uint_eq(st_features_ndims(f), 2);
	ck_assert_str_eq(st_features_dim_table(f, 1), "merchants");
	ck_assert_int_eq(st_features_dim_key_field(f, 1), 2);
	st_features_windows(f, &nw);
	ck_assert_uint_eq(nw, 9);
	ck_assert_uint_eq(st_features_nslots(f), 2);  /* amount, hash(merchant) */
	ck_assert_int_eq(st_features_max_window(f), 86400000);
	ck_assert_int_eq(st_features_type(f, 11), ST_FEAT_STRING);
	/* schemas/features.avsc is this feature set's schema
	 * (regenerate with `strata schema` after changing either). */
	{
		char *text = st_features_avro_schema(f);
		json_t *got = json_loads(text, 0, NULL), *want;

		snprintf(path, sizeof(path), "%s/schemas/features.avsc",
			 top ? top : ".");
		want = json_load_file(path, 0, NULL);
		ck_assert_ptr_nonnull(want);
		ck_assert_msg(json_equal(got, want), "schemas/features.avsc "
			      "differs from the schema of the fraud features");
		json_decref(got);
		json_decref(want);
		free(text);
	}
	st_features_free(f);
}
END_TEST

START_TEST(evaluation)
{
	char errstr[512];
	st_features_t *f = parse(
		"entity = user_id\n"
		"dimension user = users(user_id)\n"
		"dimension merchant = merchants(merchant_id)\n"
		"feature a = amount * 2 + 1\n"
		"feature ratio = a / (amount - amount)\n"     /* div by 0: null */
		"feature mism = user.country != merchant.country\n"
		"feature seg : string = user.segment\n"
		"feature segc = code(user.segment, 'silver', 'gold')\n"
		"feature price = merchant.fee * 2\n"          /* "1.25" decimal */
		"feature missing = merchant.nope\n"
		"feature web = channel == 'web'\n"
		"feature cnt = count() over 1h\n"
		"feature avgx = avg(amount) over 24h excluding current\n"
		"feature over = amount / avgx\n"
		"feature neg = -a\n"
		"feature ch = channel\n"
		"feature astext : string = amount\n", errstr);
	st_window_result_t win[2] = {{3, 0}, {0, 1}};
	const uint8_t *rows[2];
	size_t lens[2], ul, ml;
	uint8_t *u = row("{\"country\":\"DE\",\"segment\":\"gold\"}", &ul);
	uint8_t *m = row("{\"country\":\"FR\",\"fee\":\"1.25\"}", &ml);
	st_value_t ev[NF], out[16];
	char buf[64], text[16 * ST_FEATURES_TEXT];

	ck_assert_msg(f != NULL, "%s", errstr);
	rows[0] = u; lens[0] = ul;
	rows[1] = m; lens[1] = ml;
	event(ev, 10.5, "web");
	ck_assert_int_eq(st_features_eval(f, ev, rows, lens, win, out, text), 0);
	ck_assert_double_eq(out[0].d, 22);
	ck_assert_int_eq(out[1].type, ST_VAL_NULL);
	ck_assert_double_eq(out[2].d, 1);
	ck_assert_int_eq(out[3].type, ST_VAL_STRING);
	ck_assert_int_eq(memcmp(out[3].s, "gold", 4), 0);
	ck_assert_double_eq(out[4].d, 1);
	ck_assert_double_eq(out[5].d, 2.5);
	ck_assert_int_eq(out[6].type, ST_VAL_NULL);
	ck_assert_double_eq(out[7].d, 1);
	ck_assert_double_eq(out[8].d, 3);
	ck_assert_int_eq(out[9].type, ST_VAL_NULL);   /* empty window */
	ck_assert_int_eq(out[10].type, ST_VAL_NULL);  /* null propagates */
	ck_assert_double_eq(out[11].d, -22);
	ck_assert_int_eq(out[12].type, ST_VAL_STRING);
	/* A number for a string feature is written as text. */
	ck_assert_int_eq(out[13].type, ST_VAL_STRING);
	ck_assert_int_eq(memcmp(out[13].s, "10.5", 4), 0);
	ck_assert_uint_eq(out[13].len, 4);
	/* No dimension rows: nulls, never a crash. */
	rows[0] = rows[1] = NULL;
	ck_assert_int_eq(st_features_eval(f, ev, rows, lens, win, out, text), 0);
	ck_assert_int_eq(out[2].type, ST_VAL_NULL);
	ck_assert_int_eq(out[3].type, ST_VAL_NULL);
	ck_assert_uint_eq(st_features_format(&out[0], buf, sizeof(buf)), 2);
	ck_assert_str_eq(buf, "22");
	st_features_free(f);
	free(u);
	free(m);
}
END_TEST

/* Significant digits of a decimal number. */
static int significant(const char *s)
{
	int n = 0, started = 0;

	for (; *s; s++) {
		if (*s >= '1' && *s <= '9')
			started = 1;
		if (started && *s >= '0' && *s <= '9')
			n++;
	}
	return n;
}

START_TEST(formatting)
{
	st_value_t v = {.type = ST_VAL_DOUBLE};
	char buf[64];

	v.d = 0.1;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0.1");
	v.d = 1.0 / 3;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_double_eq(strtod(buf, NULL), 1.0 / 3);
	v.d = -7;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-7");
	v.d = 1e20;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1e+20");
	v.d = -12.05;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-12.05");
	v.d = 0.000123;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0.000123");
	/* Every form reads back to the same double. */
	for (int i = 0; i < 200000; i++) {
		uint64_t bits = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^
				(uint64_t)rand();

		memcpy(&v.d, &bits, sizeof(v.d));
		if (!isfinite(v.d))
			continue;
		if (i % 2)
			v.d = (double)(rand() % 1000000) / 100.0 *
			      (i % 3 ? 1 : -1) + (i % 5 ? 0 : 1.0 / 3);
		st_features_format(&v, buf, sizeof(buf));
		ck_assert_msg(strtod(buf, NULL) == v.d, "%.17g printed as %s",
			      v.d, buf);
	}
	/* Outside the short forms, exactly what %.17g writes. */
	for (int i = 0; i < 200000; i++) {
		char want[64];
		double scale = pow(10, (double)(rand() % 18 - 4));

		v.type = ST_VAL_DOUBLE;
		v.d = (double)rand() / RAND_MAX * scale * (i % 2 ? 1 : -1);
		if (i % 7 == 0)
			v.d = (double)(rand() % 100000) / 100 + 0.1 * (i % 13);
		st_features_format(&v, buf, sizeof(buf));
		snprintf(want, sizeof(want), "%.17g", v.d);
		if (significant(buf) >= 16 && !strchr(want, 'e'))
			ck_assert_msg(!strcmp(buf, want), "%s != %s", buf, want);
		ck_assert_msg(strtod(buf, NULL) == v.d, "%s", buf);
	}
	v.type = ST_VAL_INT;
	v.i = INT64_MIN;
	st_features_format(&v, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-9223372036854775808");
	v.type = ST_VAL_NULL;
	ck_assert_uint_eq(st_features_format(&v, buf, sizeof(buf)), 0);
}
END_TEST

static const struct { const char *text, *msg; } bad[] = {
	{"feature a = amount\n", "t.features: no 'entity = FIELD' line"},
	{"entity = nobody\n", ":1: entity: no event field 'nobody'"},
	{"entity = user_id\n\nfeature x = amont\n",
	 ":3: unknown name 'amont'"},
	{"entity = user_id\nfeature x = sum(currency) over 1h\n",
	 ":2: sum(currency): 'currency' is not a number"},
	{"entity = user_id\nfeature x = count() over 1 hour\n",
	 ":2: count(): invalid window length '1'"},
	{"entity = user_id\nfeature x = count()\n", "expected 'over DURATION'"},
	{"entity = user_id\nfeature x = user.segment\n",
	 ":2: unknown dimension 'user'"},
	{"entity = user_id\nfeature x = 1\nfeature x = 2\n",
	 ":3: feature 'x' declared twice"},
	{"entity = user_id\nfeature x = (1 + 2\n", "expected ')'"},
	{"entity = user_id\nfeature x = 1 2\n", "x: unexpected '2'"},
	{"entity = user_id\nfeature x = median(amount) over 1h\n",
	 "unknown function median()"},
	{"entity = user_id\nfeature x = y\nfeature y = 1\n",
	 ":2: unknown name 'y'"},
	{"entity = user_id\n", "no features declared"},
	{"entity = user_id\nwindow x = 1\n", ":2: expected 'feature'"},
	{"entity = user_id\ndimension u = users(nope)\n",
	 "dimension u: no event field 'nope'"},
	{"entity = user_id\nfeature x : date = 1\n", "type must be"},
	{"entity = user_id\nfeature x = 'open\n", "unterminated string"},
	{"entity = user_id\nfeature x = code(amount)\n", "code(EXPR"},
	{"entity = user_id\nfeature _seq = 1\n", "names starting with '_'"},
};

START_TEST(errors_name_the_line)
{
	char errstr[512];

	ck_assert_ptr_null(parse(bad[_i].text, errstr));
	ck_assert_msg(strstr(errstr, bad[_i].msg), "'%s' lacks '%s'", errstr,
		      bad[_i].msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("features");
	TCase *tc = tcase_create("features");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, example_file_loads);
	tcase_add_test(tc, evaluation);
	tcase_add_test(tc, formatting);
	tcase_add_loop_test(tc, errors_name_the_line, 0,
			    sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
