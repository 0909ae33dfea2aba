/* check_resp.c -- the request parser and the reply writers (RESP2, and
 * RESP3 with its RESP2 fallbacks), and command numbers: every
 * request form, fed whole, byte by byte, at every split point, in random
 * pieces and through the zero-copy space; pipelining; every protocol
 * error and its stickiness; the limits, at and just over them; random
 * requests against their encoding. ST_SEED=<n> reproduces the random
 * cases, ST_CASES=<n> sets how many. */
#include <check.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "resp.h"

static uint64_t seed;
static int cases = 200;

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A growing string. */
typedef struct {
	char *s;
	size_t len, cap;
} str_t;

static void str_add(str_t *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		ck_assert_ptr_nonnull(b->s);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void str_addf(str_t *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void str_addf(str_t *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	str_add(b, tmp, (size_t)n);
}

/* A request as "arg|arg|...\n", bytes other than printable ASCII, '|'
 * and '\\' as \xHH. Checks the NUL after each argument. */
static void show(str_t *b, const st_resp_request_t *r)
{
	ck_assert_uint_ge(r->argc, 1);
	for (size_t i = 0; i < r->argc; i++) {
		const unsigned char *a = (const unsigned char *)r->argv[i];

		ck_assert_int_eq(a[r->argvlen[i]], 0);
		if (i)
			str_add(b, "|", 1);
		for (size_t j = 0; j < r->argvlen[i]; j++) {
			if (a[j] < 0x20 || a[j] >= 0x7f || a[j] == '|' ||
			    a[j] == '\\')
				str_addf(b, "\\x%02x", a[j]);
			else
				str_add(b, &a[j], 1);
		}
	}
	str_add(b, "\n", 1);
}

enum { WHOLE, BYTES, RANDOM, SPACE };

/*
 * Feeds in[0, n) in pieces (WHOLE: one; BYTES: one byte each; RANDOM:
 * sizes from the seed; SPACE: through st_resp_space() in random sizes;
 * split > 0: two pieces cut at split), draining requests after each,
 * and returns what came out: the requests, then "." when nothing is
 * left over, "+N" with N bytes of a partial request, or "!message".
 */
static char *parse_as(const char *in, size_t n, int mode, size_t split,
		      uint64_t rs)
{
	st_resp_parser_t *p;
	st_resp_request_t r;
	str_t out = {0};
	size_t off = 0;
	int rc = 0;

	ck_assert_int_eq(st_resp_parser_new(&p), 0);
	str_add(&out, "", 0);
	while (off < n && rc >= 0) {
		size_t k = n - off;

		if (split)
			k = off < split ? split - off : n - off;
		else if (mode == BYTES)
			k = 1;
		else if (mode == RANDOM || mode == SPACE)
			k = 1 + rnd(&rs) % (rnd(&rs) % 4 ? 16 : 70000);
		if (k > n - off)
			k = n - off;
		if (mode == SPACE) {
			size_t avail;
			void *sp;

			rc = st_resp_space(p, k, &sp, &avail);
			if (rc)
				break;
			ck_assert_uint_ge(avail, k);
			memcpy(sp, in + off, k);
			st_resp_wrote(p, k);
		} else if ((rc = st_resp_feed(p, in + off, k))) {
			break;
		}
		off += k;
		while ((rc = st_resp_next(p, &r)) == 1)
			show(&out, &r);
	}
	if (rc < 0) {
		ck_assert_int_eq(rc, ST_EPARSE);
		ck_assert_ptr_nonnull(st_resp_error(p));
		str_addf(&out, "!%s", st_resp_error(p));
		/* Sticky. */
		ck_assert_int_eq(st_resp_next(p, &r), ST_EPARSE);
		ck_assert_int_eq(st_resp_feed(p, "PING\r\n", 6), ST_EPARSE);
	} else if (st_resp_buffered(p)) {
		ck_assert_ptr_null(st_resp_error(p));
		str_addf(&out, "+%zu", st_resp_buffered(p));
	} else {
		str_add(&out, ".", 1);
	}
	st_resp_parser_destroy(p);
	return out.s;
}

/* Fails showing where got and want part, a few bytes of each. */
static void same(const char *got, const char *want, const char *how,
		 size_t arg)
{
	size_t i = 0;

	if (!strcmp(got, want))
		return;
	while (got[i] && got[i] == want[i])
		i++;
	ck_abort_msg("%s %zu: at byte %zu got '%.60s', want '%.60s'", how,
		     arg, i, got + i, want + i);
}

/* Checks that every way of feeding gives want. */
static void expect_n(const char *in, size_t n, const char *want)
{
	static const int modes[] = { WHOLE, BYTES, RANDOM, SPACE };
	char *got;

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		if (modes[m] == BYTES && n > 300000)
			continue;
		got = parse_as(in, n, modes[m], 0, seed + m + 1);
		same(got, want, "mode", (size_t)modes[m]);
		free(got);
	}
	for (size_t s = 1; n < 2000 && s < n; s++) {
		got = parse_as(in, n, WHOLE, s, 0);
		same(got, want, "split at", s);
		free(got);
	}
}

static void expect(const char *in, const char *want)
{
	expect_n(in, strlen(in), want);
}

/* For inputs with NUL bytes. */
#define EXPECT_LIT(lit, want) expect_n(lit, sizeof(lit) - 1, want)

START_TEST(multibulk)
{
	expect("*1\r\n$4\r\nPING\r\n", "PING\n.");
	expect("*3\r\n$4\r\nHGET\r\n$14\r\nstrata:user:42\r\n$6\r\namount"
	       "\r\n", "HGET|strata:user:42|amount\n.");
	/* Empty and binary arguments, CR LF inside a bulk. */
	EXPECT_LIT("*4\r\n$0\r\n\r\n$3\r\na\0b\r\n$4\r\n\r\n\r\n\r\n$1\r\n|\r\n",
		   "|a\\x00b|\\x0d\\x0a\\x0d\\x0a|\\x7c\n.");
	/* Lowercase commands are the handler's business. */
	expect("*2\r\n$4\r\necho\r\n$5\r\nhello\r\n", "echo|hello\n.");
}
END_TEST

START_TEST(empty_multibulk)
{
	expect("*0\r\n", ".");
	expect("*-1\r\n", ".");
	expect("*-5\r\n*0\r\n*1\r\n$4\r\nPING\r\n*0\r\n", "PING\n.");
}
END_TEST

START_TEST(inline_commands)
{
	expect("PING\r\n", "PING\n.");
	expect("PING\n", "PING\n.");
	expect("  hget\tk   f \r\n", "hget|k|f\n.");
	expect("\r\n\n   \r\nPING\r\n", "PING\n.");
	expect("set \"a b\" 'c d'\r\n", "set|a b|c d\n.");
	expect("echo \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n",
	       "echo|AJ\\x0a\\x0d\\x09\\x08\\x07\\x5c\"q\n.");
	expect("echo 'it\\'s' 'a\\b'\r\n", "echo|it's|a\\x5cb\n.");
	/* A quote inside a word opens a quoted part of the word. */
	expect("echo foo\"bar baz\" x'y z'\r\n", "echo|foobar baz|xy z\n.");
	expect("echo \"\" ''\r\n", "echo||\n.");
	/* \x with less than two hex digits is an x. */
	expect("echo \"\\x4\" \"\\xzz\"\r\n", "echo|x4|xzz\n.");
	/* A NUL byte ends the line, as in Redis. */
	EXPECT_LIT("echo a\0b c\r\nPING\r\n", "echo|a\nPING\n.");
	/* \v and \f separate words but do not end an unquoted one. */
	expect("echo\va\fb\r\n", "echo\\x0ba\\x0cb\n.");
	expect("  \v echo\r\n", "echo\n.");
}
END_TEST

START_TEST(pipelining)
{
	str_t in = {0}, want = {0};

	for (int i = 0; i < 1000; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "strata:user:%d", i);

		if (i % 3 == 0) {
			str_addf(&in, "HGETALL %s\r\n", key);
		} else {
			str_addf(&in, "*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n"
				 "$6\r\namount\r\n", n, key);
		}
		str_addf(&want, i % 3 == 0 ? "HGETALL|%s\n" :
			 "HGET|%s|amount\n", key);
	}
	str_add(&want, ".", 1);
	expect_n(in.s, in.len, want.s);
	/* A partial request at the end stays buffered. */
	str_add(&in, "*2\r\n$4\r\nECHO\r\n$3\r\nab", 21);
	want.len--;
	str_addf(&want, "+21");
	expect_n(in.s, in.len, want.s);
	free(in.s);
	free(want.s);
}
END_TEST

START_TEST(partial_requests)
{
	expect("*", "+1");
	expect("*2\r", "+3");
	expect("*2\r\n$4\r\nECHO\r\n$5\r\nhel", "+21");
	expect("*1\r\n$4\r\nPING\r", "+13");
	expect("*1\r\n$4\r\nPING", "+12");
	expect("PING\r", "+5");
	expect("PING\r\nECHO x", "PING\n+6");
}
END_TEST

static const struct {
	const char *in;
	const char *err;
} errors[] = {
	{ "*x\r\n", "invalid multibulk length" },
	{ "*\r\n", "invalid multibulk length" },
	{ "*1025\r\n", "invalid multibulk length" },
	{ "*01\r\n", "invalid multibulk length" },
	{ "*+1\r\n", "invalid multibulk length" },
	{ "*-0\r\n", "invalid multibulk length" },
	{ "* 1\r\n", "invalid multibulk length" },
	{ "*1 \r\n", "invalid multibulk length" },
	{ "*1\r\r\n", "invalid multibulk length" },
	{ "*99999999999999999999\r\n", "invalid multibulk length" },
	{ "*1\r\nx", "expected '$', got 'x'" },
	{ "*2\r\n$1\r\na\r\n:1\r\n", "expected '$', got ':'" },
	{ "*1\r\n\r\n", "expected '$', got '\\x0d'" },
	{ "*1\r\n$-1\r\n", "invalid bulk length" },
	{ "*1\r\n$x\r\n", "invalid bulk length" },
	{ "*1\r\n$\r\n", "invalid bulk length" },
	{ "*1\r\n$01\r\n", "invalid bulk length" },
	{ "*1\r\n$1048577\r\n", "invalid bulk length" },
	{ "*1\r\n$3\r\nabcde", "expected CRLF after bulk" },
	{ "*1\r\n$3\r\nabc\n\r", "expected CRLF after bulk" },
	{ "*1\r\n$3\r\nabc\r\r", "expected CRLF after bulk" },
	{ "echo \"abc\r\n", "unbalanced quotes in request" },
	{ "echo 'abc\r\n", "unbalanced quotes in request" },
	{ "echo \"a\"b\r\n", "unbalanced quotes in request" },
	{ "echo 'a'b\r\n", "unbalanced quotes in request" },
	{ "echo \"a\\\"\r\n", "unbalanced quotes in request" },
};

START_TEST(protocol_errors)
{
	char want[128];

	snprintf(want, sizeof(want), "!Protocol error: %s", errors[_i].err);
	expect(errors[_i].in, want);
}
END_TEST

/* Requests before the error are handed out; nothing after it. */
START_TEST(error_after_requests)
{
	expect("PING\r\n*1\r\n$4\r\nPING\r\n*a\r\n*1\r\n$4\r\nPING\r\n",
	       "PING\nPING\n!Protocol error: invalid multibulk length");
}
END_TEST

START_TEST(reset_clears_error)
{
	st_resp_parser_t *p;
	st_resp_request_t r;

	ck_assert_int_eq(st_resp_parser_new(&p), 0);
	ck_assert_int_eq(st_resp_feed(p, "*x\r\nPING\r\n", 10), 0);
	ck_assert_int_eq(st_resp_next(p, &r), ST_EPARSE);
	ck_assert_str_eq(st_resp_error(p),
			 "Protocol error: invalid multibulk length");
	ck_assert_int_eq(st_resp_next(p, &r), ST_EPARSE);
	st_resp_reset(p);
	ck_assert_ptr_null(st_resp_error(p));
	ck_assert_uint_eq(st_resp_buffered(p), 0);
	ck_assert_int_eq(st_resp_next(p, &r), 0);
	ck_assert_int_eq(st_resp_feed(p, "PING\r\n", 6), 0);
	ck_assert_int_eq(st_resp_next(p, &r), 1);
	ck_assert_uint_eq(r.argc, 1);
	ck_assert_str_eq(r.argv[0], "PING");
	st_resp_parser_destroy(p);
}
END_TEST

/* n arguments "a" as a multibulk request. */
static void many_args(str_t *in, str_t *want, size_t n)
{
	str_addf(in, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++) {
		str_add(in, "$1\r\na\r\n", 7);
		if (want)
			str_add(want, i ? "|a" : "a", i ? 2 : 1);
	}
	if (want)
		str_add(want, "\n.", 2);
}

START_TEST(limit_args)
{
	str_t in = {0}, want = {0}, line = {0}, lwant = {0};

	many_args(&in, &want, ST_RESP_ARGS_MAX);
	expect_n(in.s, in.len, want.s);
	in.len = 0;
	many_args(&in, NULL, ST_RESP_ARGS_MAX + 1);
	expect_n(in.s, in.len, "!Protocol error: invalid multibulk length");
	/* Inline too. */
	for (int i = 0; i < ST_RESP_ARGS_MAX; i++) {
		str_add(&line, "a ", 2);
		str_add(&lwant, i ? "|a" : "a", i ? 2 : 1);
	}
	str_add(&lwant, "\n.", 2);
	str_add(&line, "\r\n", 2);
	expect_n(line.s, line.len, lwant.s);
	line.len -= 2;
	str_add(&line, "a\r\n", 3);
	expect_n(line.s, line.len,
		 "!Protocol error: too many arguments in inline request");
	free(in.s);
	free(want.s);
	free(line.s);
	free(lwant.s);
}
END_TEST

START_TEST(limit_bulk)
{
	size_t n = ST_RESP_BULK_MAX;
	str_t in = {0}, want = {0};
	char *big = malloc(n + 1);

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n + 1);
	str_addf(&in, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", n);
	str_add(&in, big, n);
	str_add(&in, "\r\nPING\r\n", 8);
	str_add(&want, "ECHO|", 5);
	str_add(&want, big, n);
	str_add(&want, "\nPING\n.", 7);
	expect_n(in.s, in.len, want.s);
	in.len = 0;
	str_addf(&in, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", n + 1);
	expect_n(in.s, in.len, "!Protocol error: invalid bulk length");
	free(in.s);
	free(want.s);
	free(big);
}
END_TEST

START_TEST(limit_inline)
{
	size_t n = ST_RESP_INLINE_MAX;
	str_t in = {0}, want = {0};
	char *big = malloc(n + 2);

	ck_assert_ptr_nonnull(big);
	memset(big, 'y', n + 2);
	memcpy(big, "ECHO ", 5);
	/* A line of exactly the limit, \r\n not counted. */
	str_add(&in, big, n);
	str_add(&in, "\r\n", 2);
	str_add(&want, "ECHO|", 5);
	str_add(&want, big + 5, n - 5);
	str_add(&want, "\n.", 2);
	expect_n(in.s, in.len, want.s);
	/* One byte more, with its end of line or without. */
	in.len = 0;
	str_add(&in, big, n + 1);
	str_add(&in, "\r\n", 2);
	expect_n(in.s, in.len, "!Protocol error: too big inline request");
	expect_n(big, n + 1, "!Protocol error: too big inline request");
	expect_n(big, n, "+65536");
	free(in.s);
	free(want.s);
	free(big);
}
END_TEST

START_TEST(limit_header_lines)
{
	size_t n = ST_RESP_INLINE_MAX + 2;
	char *big = malloc(n + 8);

	ck_assert_ptr_nonnull(big);
	memset(big, '1', n + 8);
	big[0] = '*';
	expect_n(big, n, "!Protocol error: too big mbulk count string");
	/* At the limit, a line is read (and its number refused). */
	memcpy(big + ST_RESP_INLINE_MAX, "\r\n", 2);
	expect_n(big, ST_RESP_INLINE_MAX + 2,
		 "!Protocol error: invalid multibulk length");
	memcpy(big + ST_RESP_INLINE_MAX, "1\r\n", 3);
	expect_n(big, ST_RESP_INLINE_MAX + 3,
		 "!Protocol error: too big mbulk count string");
	memset(big, '1', n + 8);
	memcpy(big, "*1\r\n$", 5);
	expect_n(big, n + 5, "!Protocol error: too big bulk count string");
	free(big);
}
END_TEST

START_TEST(limit_request)
{
	size_t per = ST_RESP_BULK_MAX, n = ST_RESP_REQUEST_MAX / per + 1;
	char *big = malloc(per);
	str_t in = {0};

	ck_assert_ptr_nonnull(big);
	memset(big, 'z', per);
	str_addf(&in, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++) {
		str_addf(&in, "$%zu\r\n", per);
		str_add(&in, big, per);
		str_add(&in, "\r\n", 2);
	}
	ck_assert_ptr_nonnull(in.s);
	for (int m = WHOLE; m <= SPACE; m++) {
		char *got;

		if (m == BYTES)
			continue;
		got = parse_as(in.s, in.len, m, 0, seed);
		ck_assert_str_eq(got, "!Protocol error: request too big");
		free(got);
	}
	free(in.s);
	free(big);
}
END_TEST

/* Once a bulk's header is in, the space offered holds all of it. */
START_TEST(space_for_bulk)
{
	st_resp_parser_t *p;
	st_resp_request_t r;
	size_t avail;
	void *sp;

	ck_assert_int_eq(st_resp_parser_new(&p), 0);
	ck_assert_int_eq(st_resp_feed(p, "*1\r\n$500000\r\n", 13), 0);
	ck_assert_int_eq(st_resp_next(p, &r), 0);
	ck_assert_int_eq(st_resp_space(p, 1, &sp, &avail), 0);
	ck_assert_uint_ge(avail, 500002);
	memset(sp, 'q', 500000);
	memcpy((char *)sp + 500000, "\r\n", 2);
	st_resp_wrote(p, 500002);
	ck_assert_int_eq(st_resp_next(p, &r), 1);
	ck_assert_uint_eq(r.argvlen[0], 500000);
	ck_assert_int_eq(st_resp_next(p, &r), 0);
	/* The large buffer was given back; the parser goes on. */
	ck_assert_int_eq(st_resp_feed(p, "PING\r\n", 6), 0);
	ck_assert_int_eq(st_resp_next(p, &r), 1);
	ck_assert_str_eq(r.argv[0], "PING");
	st_resp_parser_destroy(p);
}
END_TEST

/* Random requests, encoded as multibulk (and inline when their bytes
 * allow), pipelined, against what they hold. */
START_TEST(random_requests)
{
	uint64_t x = seed * 2654435761u + 7;

	for (int c = 0; c < cases; c++) {
		str_t in = {0}, want = {0};
		int nreq = 1 + (int)(rnd(&x) % 20);

		for (int q = 0; q < nreq; q++) {
			int argc = 1 + (int)(rnd(&x) % 6);
			int inl = rnd(&x) % 3 == 0;
			char args[6][64];
			size_t lens[6];

			for (int a = 0; a < argc; a++) {
				lens[a] = (size_t)(rnd(&x) %
						   (a == 0 ? 16 : 64));
				for (size_t j = 0; j < lens[a]; j++)
					args[a][j] = inl ?
						(char)('a' + rnd(&x) % 26) :
						(char)rnd(&x);
				if (inl && !lens[a]) {
					lens[a] = 1;
					args[a][0] = 'k';
				}
			}
			if (inl) {
				for (int a = 0; a < argc; a++) {
					str_add(&in, " ", 1);
					str_add(&in, args[a], lens[a]);
				}
				str_add(&in, "\r\n", 2);
			} else {
				str_addf(&in, "*%d\r\n", argc);
				for (int a = 0; a < argc; a++) {
					str_addf(&in, "$%zu\r\n", lens[a]);
					str_add(&in, args[a], lens[a]);
					str_add(&in, "\r\n", 2);
				}
			}
			for (int a = 0; a < argc; a++) {
				if (a)
					str_add(&want, "|", 1);
				for (size_t j = 0; j < lens[a]; j++) {
					unsigned char ch =
						(unsigned char)args[a][j];

					if (ch < 0x20 || ch >= 0x7f ||
					    ch == '|' || ch == '\\')
						str_addf(&want, "\\x%02x", ch);
					else
						str_add(&want, &ch, 1);
				}
			}
			str_add(&want, "\n", 1);
		}
		str_add(&want, ".", 1);
		for (int m = WHOLE; m <= SPACE; m++) {
			char *got = parse_as(in.s, in.len, m, 0, x + (uint64_t)m);

			same(got, want.s, "random case, mode",
			     (size_t)c * 10 + (size_t)m);
			free(got);
		}
		free(in.s);
		free(want.s);
	}
}
END_TEST

/* ---- writers ---------------------------------------------------------- */

static void out_is(st_resp_out_t *o, const char *want, size_t n)
{
	ck_assert_uint_eq(st_resp_out_pending(o), n);
	ck_assert_int_eq(memcmp(st_resp_out_data(o), want, n), 0);
	st_resp_out_consume(o, n);
	ck_assert_uint_eq(st_resp_out_pending(o), 0);
}

#define OUT_IS(o, lit) out_is(o, lit, sizeof(lit) - 1)

START_TEST(writers)
{
	st_resp_out_t o = ST_RESP_OUT_INIT;

	ck_assert_int_eq(st_resp_out_simple(&o, "PONG"), 0);
	OUT_IS(&o, "+PONG\r\n");
	ck_assert_int_eq(st_resp_out_error(&o, "ERR a\r\nb", 8), 0);
	OUT_IS(&o, "-ERR a  b\r\n");
	ck_assert_int_eq(st_resp_out_errorf(&o, "ERR unknown command '%s'",
					     "x\ny"), 0);
	OUT_IS(&o, "-ERR unknown command 'x y'\r\n");
	ck_assert_int_eq(st_resp_out_int(&o, 0), 0);
	ck_assert_int_eq(st_resp_out_int(&o, -42), 0);
	ck_assert_int_eq(st_resp_out_int(&o, INT64_MAX), 0);
	ck_assert_int_eq(st_resp_out_int(&o, INT64_MIN), 0);
	OUT_IS(&o, ":0\r\n:-42\r\n:9223372036854775807\r\n"
	       ":-9223372036854775808\r\n");
	ck_assert_int_eq(st_resp_out_bulk(&o, "a\0\r\n", 4), 0);
	ck_assert_int_eq(st_resp_out_bulk(&o, NULL, 0), 0);
	ck_assert_int_eq(st_resp_out_null(&o), 0);
	ck_assert_int_eq(st_resp_out_array(&o, 2), 0);
	ck_assert_int_eq(st_resp_out_array(&o, 0), 0);
	ck_assert_int_eq(st_resp_out_raw(&o, "+OK\r\n", 5), 0);
	OUT_IS(&o, "$4\r\na\0\r\n\r\n$0\r\n\r\n$-1\r\n*2\r\n*0\r\n+OK\r\n");
	ck_assert_int_eq(st_resp_out_failed(&o), 0);
	st_resp_out_free(&o);
}
END_TEST

/* The RESP3 types, and their RESP2 forms before and after a switch. */
START_TEST(writers_resp3)
{
	st_resp_out_t o = ST_RESP_OUT_INIT;

	ck_assert_int_eq(st_resp_out_proto(&o), 2);
	ck_assert_int_eq(st_resp_out_map(&o, 3), 0);
	ck_assert_int_eq(st_resp_out_set(&o, 2), 0);
	ck_assert_int_eq(st_resp_out_null(&o), 0);
	ck_assert_int_eq(st_resp_out_verbatim(&o, "txt", "a\r\nb", 4), 0);
	OUT_IS(&o, "*6\r\n*2\r\n$-1\r\n$4\r\na\r\nb\r\n");
	st_resp_out_set_proto(&o, 3);
	ck_assert_int_eq(st_resp_out_proto(&o), 3);
	ck_assert_int_eq(st_resp_out_map(&o, 3), 0);
	ck_assert_int_eq(st_resp_out_map(&o, 0), 0);
	ck_assert_int_eq(st_resp_out_set(&o, 2), 0);
	ck_assert_int_eq(st_resp_out_null(&o), 0);
	ck_assert_int_eq(st_resp_out_verbatim(&o, "txt", "a\r\nb", 4), 0);
	ck_assert_int_eq(st_resp_out_verbatim(&o, "mkd", NULL, 0), 0);
	OUT_IS(&o, "%3\r\n%0\r\n~2\r\n_\r\n=8\r\ntxt:a\r\nb\r\n"
	       "=4\r\nmkd:\r\n");
	/* The rest is the same in both. */
	ck_assert_int_eq(st_resp_out_array(&o, 1), 0);
	ck_assert_int_eq(st_resp_out_bulk(&o, "x", 1), 0);
	ck_assert_int_eq(st_resp_out_int(&o, 7), 0);
	ck_assert_int_eq(st_resp_out_simple(&o, "OK"), 0);
	OUT_IS(&o, "*1\r\n$1\r\nx\r\n:7\r\n+OK\r\n");
	st_resp_out_set_proto(&o, 2);
	ck_assert_int_eq(st_resp_out_null(&o), 0);
	OUT_IS(&o, "$-1\r\n");
	ck_assert_int_eq(st_resp_out_failed(&o), 0);
	st_resp_out_free(&o);
}
END_TEST

/* Numbers of commands, read as string2ll() reads them. */
START_TEST(parse_numbers)
{
	static const char *const bad[] = {
		"", "-", "00", "01", "-0", "+1", " 1", "1 ", "1a", "0x10",
		"9223372036854775808", "12345678901234567890"
	};
	long long v = 1;

	ck_assert_int_eq(st_resp_parse_ll("0", 1, &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(st_resp_parse_ll("3", 1, &v), 0);
	ck_assert_int_eq(v, 3);
	ck_assert_int_eq(st_resp_parse_ll("-16", 3, &v), 0);
	ck_assert_int_eq(v, -16);
	ck_assert_int_eq(st_resp_parse_ll("9223372036854775807", 19, &v), 0);
	ck_assert_int_eq(v, LLONG_MAX);
	ck_assert_int_eq(st_resp_parse_ll("12", 1, &v), 0);
	ck_assert_int_eq(v, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(st_resp_parse_ll(bad[i], strlen(bad[i]), &v) ==
			      -1, "'%s' read", bad[i]);
}
END_TEST

/* Partial sends, taking a reply back, and growth past what was sent. */
START_TEST(out_consume_truncate)
{
	st_resp_out_t o = ST_RESP_OUT_INIT;
	str_t want = {0};
	size_t sent = 0, mark;
	char v[100];

	memset(v, 'v', sizeof(v));
	for (int i = 0; i < 20000; i++) {
		ck_assert_int_eq(st_resp_out_bulk(&o, v, (size_t)i % 100), 0);
		str_addf(&want, "$%d\r\n%.*s\r\n", i % 100, i % 100, v);
		mark = st_resp_out_pending(&o);
		ck_assert_int_eq(st_resp_out_array(&o, 3), 0);
		ck_assert_int_eq(st_resp_out_bulk(&o, "x", 1), 0);
		st_resp_out_truncate(&o, mark);
		if (i % 7 == 0) {
			size_t n = st_resp_out_pending(&o) / 2;

			ck_assert_int_eq(memcmp(st_resp_out_data(&o),
						want.s + sent, n), 0);
			st_resp_out_consume(&o, n);
			sent += n;
		}
	}
	ck_assert_uint_eq(st_resp_out_pending(&o), want.len - sent);
	ck_assert_int_eq(memcmp(st_resp_out_data(&o), want.s + sent,
				want.len - sent), 0);
	st_resp_out_consume(&o, want.len - sent);
	ck_assert_int_eq(st_resp_out_simple(&o, "OK"), 0);
	OUT_IS(&o, "+OK\r\n");
	st_resp_out_free(&o);
	free(want.s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resp");
	TCase *tc = tcase_create("resp");
	const char *env = getenv("ST_SEED");
	SRunner *sr;
	int failed;

	seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	seed |= 1;
	if ((env = getenv("ST_CASES")))
		cases = atoi(env);
	printf("resp tests: ST_SEED=%llu\n", (unsigned long long)seed);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, multibulk);
	tcase_add_test(tc, empty_multibulk);
	tcase_add_test(tc, inline_commands);
	tcase_add_test(tc, pipelining);
	tcase_add_test(tc, partial_requests);
	tcase_add_loop_test(tc, protocol_errors, 0,
			    sizeof(errors) / sizeof(errors[0]));
	tcase_add_test(tc, error_after_requests);
	tcase_add_test(tc, reset_clears_error);
	tcase_add_test(tc, limit_args);
	tcase_add_test(tc, limit_bulk);
	tcase_add_test(tc, limit_inline);
	tcase_add_test(tc, limit_header_lines);
	tcase_add_test(tc, limit_request);
	tcase_add_test(tc, space_for_bulk);
	tcase_add_test(tc, random_requests);
	tcase_add_test(tc, writers);
	tcase_add_test(tc, writers_resp3);
	tcase_add_test(tc, parse_numbers);
	tcase_add_test(tc, out_consume_truncate);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
