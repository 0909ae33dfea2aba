/* check_json.c -- the JSON reader against jansson, the reference it
 * replaces: the same inputs accepted and rejected, the same values read,
 * on hand-written cases and on random documents and random damage to them.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"

#define FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* Whether the reader's value v is jansson's j; names the difference. */
static int same(const st_json_t *doc, const st_json_val_t *v, json_t *j,
		char *why, size_t n)
{
	const st_json_val_t *c;
	const char *key;
	json_t *jc;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_NULL:
		if (v->type == ST_JSON_NULL)
			return 1;
		break;
	case JSON_TRUE:
		if (v->type == ST_JSON_TRUE)
			return 1;
		break;
	case JSON_FALSE:
		if (v->type == ST_JSON_FALSE)
			return 1;
		break;
	case JSON_INTEGER:
		if (v->type == ST_JSON_INT && v->i == json_integer_value(j))
			return 1;
		break;
	case JSON_REAL:
		if (v->type == ST_JSON_REAL &&
		    !memcmp(&v->d, &(double){json_real_value(j)},
			    sizeof(double)))
			return 1;
		break;
	case JSON_STRING:
		if (v->type == ST_JSON_STRING &&
		    v->len == json_string_length(j) &&
		    !memcmp(v->s, json_string_value(j), v->len))
			return 1;
		break;
	case JSON_ARRAY:
		if (v->type != ST_JSON_ARRAY || v->count != json_array_size(j))
			break;
		for (c = st_json_first(doc, v), i = 0; c;
		     c = st_json_next(doc, c), i++)
			if (!same(doc, c, json_array_get(j, i), why, n))
				return 0;
		return 1;
	case JSON_OBJECT:
		if (v->type != ST_JSON_OBJECT || v->count != json_object_size(j))
			break;
		c = st_json_first(doc, v);
		json_object_foreach(j, key, jc) {
			if (c->key_len != strlen(key) ||
			    memcmp(c->key, key, c->key_len)) {
				snprintf(why, n, "member \"%.*s\" where jansson "
					 "has \"%s\"", (int)c->key_len, c->key,
					 key);
				return 0;
			}
			if (!same(doc, c, jc, why, n))
				return 0;
			c = st_json_next(doc, c);
		}
		return 1;
	}
	snprintf(why, n, "type %d where jansson has type %d", (int)v->type,
		 (int)json_typeof(j));
	return 0;
}

/* Parses with both; fails the test unless they agree. Returns whether the
 * input was valid. */
static int agree(const char *buf, size_t len)
{
	st_json_t doc = {0};
	json_error_t jerr;
	json_t *j = json_loadb(buf, len, FLAGS, &jerr);
	char errstr[256], why[256] = "";
	int r = st_json_parse(&doc, buf, len, errstr, sizeof(errstr));

	ck_assert_msg((r == 0) == (j != NULL),
		      "%.*s: reader %s, jansson %s", (int)(len > 200 ? 200 :
							  len), buf,
		      r ? errstr : "accepts", j ? "accepts" : jerr.text);
	if (j) {
		ck_assert_msg(same(&doc, st_json_root(&doc), j, why,
				   sizeof(why)), "%.*s: %s",
			      (int)(len > 200 ? 200 : len), buf, why);
		json_decref(j);
	} else {
		ck_assert_int_eq(r, ST_EPARSE);
		ck_assert_msg(!strncmp(errstr, "invalid JSON at byte ", 21),
			      "%s", errstr);
	}
	st_json_free(&doc);
	return j != NULL;
}

static const char *const cases[] = {
	/* valid */
	"{}", "[]", " \t\r\n{ } ", "[1,-0,0,-1,2.5,-0.0,1e3,1E-3,1.5e+2]",
	"[9223372036854775807,-9223372036854775808]", "[1e-400,4.9e-324]",
	"{\"a\":{\"b\":[true,false,null,\"x\"]},\"c\":\"\"}",
	"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"]",
	"[\"a\\u0000b\"]", "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"]",
	"{\"a\":1,\"b\":1,\"ab\":1,\"ba\":1}",
	/* invalid */
	"", " ", "1", "\"x\"", "null", "{", "[", "[1,]", "[,1]", "{\"a\"}",
	"{\"a\":}", "{\"a\":1,}", "{a:1}", "{'a':1}", "[01]", "[-]", "[1.]",
	"[.5]", "[1e]", "[1e+]", "[+1]", "[0x1]", "[NaN]", "[Infinity]",
	"[9223372036854775808]", "[-9223372036854775809]", "[1e400]",
	"[-1e400]", "[tru]", "[truex]", "[nul]", "[\"a]", "[\"\\x\"]",
	"[\"\\u12\"]", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]",
	"[\"\x01\"]", "[\"\xc0\x80\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]",
	"[\"\xc3\"]", "[\"\x80\"]", "[\"\xff\"]", "{\"a\":1,\"a\":2}",
	"{\"a\\u0000\":1}", "{}{}", "{} x", "[1]]", "\xef\xbb\xbf{}",
	"{\"a\":1 \"b\":2}", "[1 2]", "{\"a\" 1}",
};

START_TEST(hand_cases)
{
	const char *c = cases[_i];

	agree(c, strlen(c));
}
END_TEST

/* A raw NUL byte is no JSON anywhere. jansson, which marks an empty
 * look-ahead with NUL, skips one after a number or literal ("[1\0]");
 * the reader rejects it there too. */
START_TEST(nul_bytes)
{
	static const struct { const char *s; size_t n; } in[] = {
		{"[\"a\0b\"]", 7}, {"{}\0", 3}, {"[1\0]", 4}, {"[true\0]", 7},
		{"\0[]", 3}
	};
	st_json_t doc = {0};
	char errstr[128];
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		ck_assert_int_eq(st_json_parse(&doc, in[i].s, in[i].n, errstr,
					       sizeof(errstr)), ST_EPARSE);
	agree("[\"a\0b\"]", 7);
	agree("{}\0", 3);
	st_json_free(&doc);
}
END_TEST

/* Every value counts towards jansson's 2048 levels, a scalar too. */
START_TEST(nesting_limit)
{
	static const char *const inner[] = {"", "1", "\"s\"", "null", "{}",
					    "{\"a\":1}"};
	char buf[2 * 2050 + 16];
	size_t d, i, n;

	for (i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
		for (d = 2046; d <= 2049; d++) {
			n = strlen(inner[i]);
			memset(buf, '[', d);
			memcpy(buf + d, inner[i], n);
			memset(buf + d + n, ']', d);
			ck_assert_int_eq(agree(buf, 2 * d + n),
					 d + (n ? 1 : 0) + (inner[i][0] == '{' &&
							    n > 2) <= 2048);
		}
	}
}
END_TEST

/* Objects of many keys alike, which the duplicate check handles with a
 * hash set past 32 members: every duplicate still found. */
static size_t keys_object(char *buf, size_t cap, size_t n, size_t dup)
{
	size_t len = 0, k;

	buf[len++] = '{';
	for (k = 0; k < n; k++)
		len += (size_t)snprintf(buf + len, cap - len, "%s\"k%06zu\":%zu",
					k ? "," : "", k, k);
	if (dup < n)       /* key number dup once more, at the end */
		len += (size_t)snprintf(buf + len, cap - len, ",\"k%06zu\":0",
					dup);
	buf[len++] = '}';
	return len;
}

START_TEST(many_keys)
{
	static const size_t sizes[] = {31, 32, 33, 200, 5000};
	size_t i, n, dup, step, cap = 5001 * 24 + 64;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = sizes[i];
		step = n > 40 ? n / 7 : 1;
		ck_assert(agree(buf, keys_object(buf, cap, n, n)));
		for (dup = 0; dup < n; dup += step)
			ck_assert(!agree(buf, keys_object(buf, cap, n, dup)));
		ck_assert(!agree(buf, keys_object(buf, cap, n, n - 1)));
	}
	free(buf);
}
END_TEST

/* A deterministic generator: the same cases on every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

typedef struct out {
	char *p;
	size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->p = realloc(o->p, o->cap);
		ck_assert_ptr_nonnull(o->p);
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A string of random pieces; a key ends with a number of its own, so
 * that no object repeats one. */
static void gen_string(out_t *o, int key)
{
	static unsigned serial;
	char num[16];

	static const char *const bits[] = {
		"a", "b", "id", "op", "\\\"", "\\\\", "\\/", "\\n", "\\t",
		"\\u0041", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", " ", "Long biography. ", "\\u0000"
	};
	size_t n = rnd(5), i, nb = sizeof(bits) / sizeof(bits[0]);

	puts_(o, "\"");
	for (i = 0; i < n; i++)
		puts_(o, bits[rnd(key ? (uint32_t)nb - 1 : (uint32_t)nb)]);
	if (key) {
		snprintf(num, sizeof(num), "%u", serial++);
		puts_(o, num);
	}
	puts_(o, "\"");
}

static void gen_value(out_t *o, int depth)
{
	static const char *const nums[] = {
		"0", "-0", "7", "-42", "1700000000123", "9223372036854775807",
		"-9223372036854775808", "0.25", "-1.5e3", "1E-7", "3.141592653589793",
		"1e308", "2.2250738585072014e-308", "123456789012345678.5"
	};
	uint32_t k = rnd(depth > 3 ? 6 : 8), n, i;

	switch (k) {
	case 0: puts_(o, "null"); break;
	case 1: puts_(o, rnd(2) ? "true" : "false"); break;
	case 2: case 3:
		puts_(o, nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
		break;
	case 4: case 5: gen_string(o, 0); break;
	case 6:
		puts_(o, "[");
		for (n = rnd(4), i = 0; i < n; i++) {
			if (i)
				puts_(o, rnd(4) ? "," : " , ");
			gen_value(o, depth + 1);
		}
		puts_(o, "]");
		break;
	default:
		puts_(o, "{");
		for (n = rnd(5), i = 0; i < n; i++) {
			if (i)
				puts_(o, ",");
			gen_string(o, 1);
			puts_(o, rnd(4) ? ":" : " :\n");
			gen_value(o, depth + 1);
		}
		puts_(o, "}");
		break;
	}
}

/* Damage: a byte replaced, inserted or removed, or the end cut off. */
static void damage(out_t *o)
{
	static const char alphabet[] = "{}[]\",:\\u0 -+.eE1a\x01\x1f\x80\xc3"
				       "\xed\xf4\xff";
	size_t at = o->len ? rnd((uint32_t)o->len) : 0;
	char c = alphabet[rnd(sizeof(alphabet) - 1)];

	switch (rnd(4)) {
	case 0:
		if (o->len)
			o->p[at] = c;
		break;
	case 1:
		put(o, "", 1);
		memmove(o->p + at + 1, o->p + at, o->len - at - 1);
		o->p[at] = c;
		break;
	case 2:
		if (o->len) {
			memmove(o->p + at, o->p + at + 1, o->len - at - 1);
			o->len--;
		}
		break;
	default:
		o->len = at;
		break;
	}
}

START_TEST(random_documents)
{
	out_t o = {0};
	int i, d, valid = 0, invalid = 0;

	for (i = 0; i < 20000; i++) {
		o.len = 0;
		puts_(&o, rnd(2) ? "{\"after\":" : "[");
		gen_value(&o, 0);
		puts_(&o, o.p[0] == '{' ? "}" : "]");
		ck_assert_msg(agree(o.p, o.len), "generated invalid: %s", o.p);
		for (d = (int)rnd(3); d >= 0; d--)
			damage(&o);
		if (agree(o.p, o.len))
			valid++;
		else
			invalid++;
	}
	/* The damage must reach both outcomes for the comparison to mean
	 * anything. */
	ck_assert_int_gt(valid, 1000);
	ck_assert_int_gt(invalid, 1000);
	free(o.p);
}
END_TEST

START_TEST(lookups_and_reuse)
{
	const char *a = "{\"op\":\"u\",\"after\":{\"id\":1},\"s\":\"x\\ny\"}";
	const char *b = "[\"\\u0041\\u0042\", 2]";
	const st_json_val_t *v;
	st_json_t doc = {0};

	ck_assert_int_eq(st_json_parse(&doc, a, strlen(a), NULL, 0), 0);
	v = st_json_get(&doc, st_json_root(&doc), "after");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->type, ST_JSON_OBJECT);
	ck_assert_uint_eq(v->len, 8);
	ck_assert_int_eq(memcmp(v->s, "{\"id\":1}", 8), 0);
	ck_assert(st_json_streq(st_json_get(&doc, st_json_root(&doc), "op"),
				"u"));
	ck_assert(st_json_streq(st_json_get(&doc, st_json_root(&doc), "s"),
				"x\ny"));
	ck_assert_ptr_null(st_json_get(&doc, st_json_root(&doc), "o"));
	ck_assert_ptr_null(st_json_get(&doc, v->first ?
				       st_json_first(&doc, v) : v, "id"));
	/* The same document again, for a second input. */
	ck_assert_int_eq(st_json_parse(&doc, b, strlen(b), NULL, 0), 0);
	v = st_json_first(&doc, st_json_root(&doc));
	ck_assert(st_json_streq(v, "AB"));
	ck_assert_int_eq(st_json_next(&doc, v)->i, 2);
	ck_assert_ptr_null(st_json_next(&doc, st_json_next(&doc, v)));
	st_json_free(&doc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, hand_cases, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, nesting_limit);
	tcase_add_test(tc, many_keys);
	tcase_add_test(tc, random_documents);
	tcase_add_test(tc, lookups_and_reuse);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
