/* resp.c -- the RESP2 request parser and the reply writers. */
#include "resp.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define BUF_INIT (16 * 1024)       /* a parser's first buffer */
#define BUF_SHRINK (256 * 1024)    /* freed when idle beyond this */
#define ARGS_INIT 16
#define OUT_SHRINK (1024 * 1024)
#define NONE ((size_t)-1)

enum { KIND_NONE = 0, KIND_MULTIBULK = '*', KIND_INLINE = 'i' };

struct st_resp_parser {
	char *buf;
	size_t cap, len;     /* buf[0, len) holds the bytes fed */
	size_t start;        /* first byte not handed out in a request */
	size_t pos;          /* parse position in the current request */
	size_t scan;         /* where the search for a line end resumes */
	int kind;            /* of the current request, KIND_NONE between */
	long long mbulk;     /* arguments announced; -1 before the header */
	long long bulk;      /* length of the bulk; -1 before its header */
	size_t argc, argcap;
	size_t *off, *lens;  /* argument i: buf[off[i], off[i] + lens[i]) */
	const char **argv;
	char err[64];        /* the sticky error, "" when none */
	int nomem;           /* the error is "out of memory" */
};

int st_resp_parser_new(st_resp_parser_t **pp)
{
	st_resp_parser_t *p = calloc(1, sizeof(*p));

	if (!p)
		return ST_ENOMEM;
	p->mbulk = p->bulk = -1;
	*pp = p;
	return 0;
}

void st_resp_parser_destroy(st_resp_parser_t *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->off);
	free(p->lens);
	free(p->argv);
	free(p);
}

void st_resp_reset(st_resp_parser_t *p)
{
	p->len = p->start = p->pos = p->scan = 0;
	p->kind = KIND_NONE;
	p->mbulk = p->bulk = -1;
	p->argc = 0;
	p->err[0] = '\0';
	p->nomem = 0;
}

const char *st_resp_error(const st_resp_parser_t *p)
{
	return p->err[0] ? p->err : NULL;
}

size_t st_resp_buffered(const st_resp_parser_t *p)
{
	return p->len - p->start;
}

static int fail(st_resp_parser_t *p, const char *what)
{
	snprintf(p->err, sizeof(p->err), "Protocol error: %s", what);
	return -1;
}

static int fail_nomem(st_resp_parser_t *p)
{
	snprintf(p->err, sizeof(p->err), "out of memory");
	p->nomem = 1;
	return -1;
}

/* What the sticky error makes every call return. */
static int sticky(const st_resp_parser_t *p)
{
	return p->nomem ? ST_ENOMEM : ST_EPARSE;
}

/* Moves the bytes not handed out yet to the front of the buffer. */
static void compact(st_resp_parser_t *p)
{
	size_t s = p->start;

	if (!s)
		return;
	memmove(p->buf, p->buf + s, p->len - s);
	p->len -= s;
	p->pos -= s;
	p->scan -= s;
	for (size_t i = 0; i < p->argc; i++)
		p->off[i] -= s;
	p->start = 0;
}

int st_resp_space(st_resp_parser_t *p, size_t min, void **space,
		  size_t *avail)
{
	size_t need = min ? min : 1, cap;
	char *nb;

	if (p->err[0])
		return sticky(p);
	compact(p);
	if (p->kind == KIND_MULTIBULK && p->bulk >= 0) {
		size_t end = p->pos + (size_t)p->bulk + 2;

		if (end > p->len && end - p->len > need)
			need = end - p->len;
	}
	if (p->cap - p->len < need) {
		cap = p->cap ? p->cap : BUF_INIT;
		while (cap - p->len < need)
			cap *= 2;
		nb = realloc(p->buf, cap);
		if (!nb)
			return ST_ENOMEM;
		p->buf = nb;
		p->cap = cap;
	}
	*space = p->buf + p->len;
	*avail = p->cap - p->len;
	return 0;
}

void st_resp_wrote(st_resp_parser_t *p, size_t n)
{
	assert(n <= p->cap - p->len);
	p->len += n;
}

int st_resp_feed(st_resp_parser_t *p, const void *data, size_t len)
{
	size_t avail;
	void *space;
	int err;

	if (!len)
		return p->err[0] ? sticky(p) : 0;
	if ((err = st_resp_space(p, len, &space, &avail)))
		return err;
	memcpy(space, data, len);
	st_resp_wrote(p, len);
	return 0;
}

/* Makes room for n arguments. */
static int args_reserve(st_resp_parser_t *p, size_t n)
{
	size_t cap = p->argcap ? p->argcap : ARGS_INIT;
	size_t *off, *lens;
	const char **argv;

	if (n <= p->argcap)
		return 0;
	while (cap < n)
		cap *= 2;
	off = realloc(p->off, cap * sizeof(*off));
	if (off)
		p->off = off;
	lens = realloc(p->lens, cap * sizeof(*lens));
	if (lens)
		p->lens = lens;
	argv = realloc(p->argv, cap * sizeof(*argv));
	if (argv)
		p->argv = argv;
	if (!off || !lens || !argv)
		return -1;
	p->argcap = cap;
	return 0;
}

/*
 * Reads a header number as Redis's string2ll() does: an optional '-',
 * then digits with no leading zero ("0" alone is fine, "-0" is not).
 */
int st_resp_parse_ll(const char *s, size_t n, long long *out)
{
	unsigned long long v = 0;
	int neg = 0;

	if (n && s[0] == '-') {
		neg = 1;
		s++;
		n--;
	}
	if (!n || n > 19)
		return -1;
	if (n == 1 && s[0] == '0' && !neg) {
		*out = 0;
		return 0;
	}
	if (s[0] < '1' || s[0] > '9')
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');  /* 19 digits fit */
	}
	if (v > (unsigned long long)LLONG_MAX)
		return -1;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

/* Finds the next "\r\n" at or after p->scan; returns the offset of its
 * \r, or NONE with p->scan moved as far as the search got. */
static size_t find_crlf(st_resp_parser_t *p)
{
	size_t i = p->scan;

	while (i < p->len) {
		const char *r = memchr(p->buf + i, '\r', p->len - i);

		if (!r)
			break;
		i = (size_t)(r - p->buf);
		if (i + 1 == p->len) {
			p->scan = i;
			return NONE;
		}
		if (p->buf[i + 1] == '\n')
			return i;
		i++;
	}
	p->scan = p->len;
	return NONE;
}

/* The length of the line started at `from` and not ended yet, a \r
 * at the end not counted (it may be the start of the line's end). */
static size_t line_so_far(const st_resp_parser_t *p, size_t from)
{
	size_t n = p->len - from;

	return n && p->buf[p->len - 1] == '\r' ? n - 1 : n;
}

/* Reads a "*N" or "$N" header line at p->pos; 1 with *v, 0 when the line
 * is not complete yet, -1 on error (too_big when it is too long). */
static int header(st_resp_parser_t *p, long long *v, const char *too_big,
		  const char *invalid)
{
	size_t cr = find_crlf(p);

	if (cr == NONE)
		return line_so_far(p, p->pos) > ST_RESP_INLINE_MAX ?
		       fail(p, too_big) : 0;
	if (cr - p->pos > ST_RESP_INLINE_MAX)
		return fail(p, too_big);
	if (st_resp_parse_ll(p->buf + p->pos + 1, cr - p->pos - 1, v))
		return fail(p, invalid);
	p->pos = p->scan = cr + 2;
	return 1;
}

/* 1: a request; 2: an empty request (skipped); 0: more bytes needed;
 * -1: an error. */
static int parse_multibulk(st_resp_parser_t *p)
{
	long long ll;
	int rc;

	if (p->mbulk < 0) {
		rc = header(p, &ll, "too big mbulk count string",
			    "invalid multibulk length");
		if (rc <= 0)
			return rc;
		if (ll > ST_RESP_ARGS_MAX)
			return fail(p, "invalid multibulk length");
		if (ll <= 0)
			return 2;
		if (args_reserve(p, (size_t)ll))
			return fail_nomem(p);
		p->mbulk = ll;
		p->argc = 0;
		p->bulk = -1;
	}
	while (p->argc < (size_t)p->mbulk) {
		size_t end;

		if (p->bulk < 0) {
			unsigned char c;

			if (p->pos == p->len)
				return 0;
			c = (unsigned char)p->buf[p->pos];
			if (c != '$') {
				char what[40];

				snprintf(what, sizeof(what),
					 c >= 0x20 && c < 0x7f ?
					 "expected '$', got '%c'" :
					 "expected '$', got '\\x%02x'", c);
				return fail(p, what);
			}
			rc = header(p, &ll, "too big bulk count string",
				    "invalid bulk length");
			if (rc <= 0)
				return rc;
			if (ll < 0 || ll > ST_RESP_BULK_MAX)
				return fail(p, "invalid bulk length");
			if (p->pos - p->start + (size_t)ll + 2 >
			    ST_RESP_REQUEST_MAX)
				return fail(p, "request too big");
			p->bulk = ll;
		}
		end = p->pos + (size_t)p->bulk;
		if (p->len < end + 2)
			return 0;
		if (p->buf[end] != '\r' || p->buf[end + 1] != '\n')
			return fail(p, "expected CRLF after bulk");
		p->buf[end] = '\0';
		p->off[p->argc] = p->pos;
		p->lens[p->argc] = (size_t)p->bulk;
		p->argc++;
		p->pos = p->scan = end + 2;
		p->bulk = -1;
	}
	return 1;
}

/* isspace() in the C locale. */
static int blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Splits buf[p->start, e) into arguments as sdssplitargs() does, in
 * place: an argument is never longer than the text it comes from, so
 * writing at w never overtakes reading at i. Each argument gets a NUL
 * after it, at a byte already read (a separator, a quote or buf[e]).
 */
static int split_inline(st_resp_parser_t *p, size_t e)
{
	char *b = p->buf;
	size_t i = p->start, w = p->start;

	p->argc = 0;
	for (;;) {
		size_t a;
		int inq = 0, insq = 0, done = 0;

		while (i < e && blank(b[i]))
			i++;
		if (i == e)
			return 0;
		if (p->argc == ST_RESP_ARGS_MAX)
			return fail(p, "too many arguments in inline request");
		if (args_reserve(p, p->argc + 1))
			return fail_nomem(p);
		a = w;
		while (!done) {
			if (inq) {
				if (i == e)
					return fail(p, "unbalanced quotes in "
						    "request");
				if (b[i] == '\\' && i + 3 < e &&
				    b[i + 1] == 'x' && hexval(b[i + 2]) >= 0 &&
				    hexval(b[i + 3]) >= 0) {
					b[w++] = (char)(hexval(b[i + 2]) * 16 +
							hexval(b[i + 3]));
					i += 3;
				} else if (b[i] == '\\' && i + 1 < e) {
					char c = b[++i];

					b[w++] = c == 'n' ? '\n' :
						 c == 'r' ? '\r' :
						 c == 't' ? '\t' :
						 c == 'b' ? '\b' :
						 c == 'a' ? '\a' : c;
				} else if (b[i] == '"') {
					if (i + 1 < e && !blank(b[i + 1]))
						return fail(p, "unbalanced "
							    "quotes in request");
					done = 1;
				} else {
					b[w++] = b[i];
				}
			} else if (insq) {
				if (i == e)
					return fail(p, "unbalanced quotes in "
						    "request");
				if (b[i] == '\\' && i + 1 < e &&
				    b[i + 1] == '\'') {
					i++;
					b[w++] = '\'';
				} else if (b[i] == '\'') {
					if (i + 1 < e && !blank(b[i + 1]))
						return fail(p, "unbalanced "
							    "quotes in request");
					done = 1;
				} else {
					b[w++] = b[i];
				}
			} else if (i == e || b[i] == ' ' || b[i] == '\n' ||
				   b[i] == '\r' || b[i] == '\t') {
				done = 1;
			} else if (b[i] == '"') {
				inq = 1;
			} else if (b[i] == '\'') {
				insq = 1;
			} else {
				b[w++] = b[i];
			}
			if (i < e)
				i++;
		}
		p->off[p->argc] = a;
		p->lens[p->argc] = w - a;
		p->argc++;
		b[w++] = '\0';
	}
}

/* Same returns as parse_multibulk(). */
static int parse_inline(st_resp_parser_t *p)
{
	const char *nl = memchr(p->buf + p->scan, '\n', p->len - p->scan);
	size_t end, e;
	const char *z;

	if (!nl) {
		p->scan = p->len;
		return line_so_far(p, p->start) > ST_RESP_INLINE_MAX ?
		       fail(p, "too big inline request") : 0;
	}
	end = (size_t)(nl - p->buf);
	e = end > p->start && p->buf[end - 1] == '\r' ? end - 1 : end;
	if (e - p->start > ST_RESP_INLINE_MAX)
		return fail(p, "too big inline request");
	if ((z = memchr(p->buf + p->start, '\0', e - p->start)))
		e = (size_t)(z - p->buf);
	if (split_inline(p, e))
		return -1;
	p->pos = p->scan = end + 1;
	return p->argc ? 1 : 2;
}

int st_resp_next(st_resp_parser_t *p, st_resp_request_t *req)
{
	int rc;

	if (p->err[0])
		return sticky(p);
	for (;;) {
		if (p->start == p->len) {
			/* Everything handed out: start again at the front,
			 * and give a large buffer back. */
			p->len = p->start = p->pos = p->scan = 0;
			if (p->cap > BUF_SHRINK) {
				free(p->buf);
				p->buf = NULL;
				p->cap = 0;
			}
			return 0;
		}
		if (p->kind == KIND_NONE) {
			p->kind = p->buf[p->start] == '*' ? KIND_MULTIBULK :
				  KIND_INLINE;
			p->pos = p->scan = p->start;
			p->mbulk = p->bulk = -1;
			p->argc = 0;
		}
		rc = p->kind == KIND_MULTIBULK ? parse_multibulk(p) :
		     parse_inline(p);
		if (rc < 0)
			return sticky(p);
		if (rc == 0)
			return 0;
		p->kind = KIND_NONE;
		p->start = p->pos;
		if (rc == 2)
			continue;
		for (size_t i = 0; i < p->argc; i++)
			p->argv[i] = p->buf + p->off[i];
		req->argc = p->argc;
		req->argv = p->argv;
		req->argvlen = p->lens;
		return 1;
	}
}

/* ---- reply writers ---------------------------------------------------- */

void st_resp_out_free(st_resp_out_t *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

size_t st_resp_out_pending(const st_resp_out_t *o)
{
	return o->len - o->head;
}

const char *st_resp_out_data(const st_resp_out_t *o)
{
	return o->buf + o->head;
}

int st_resp_out_failed(const st_resp_out_t *o)
{
	return o->failed;
}

void st_resp_out_consume(st_resp_out_t *o, size_t n)
{
	assert(n <= o->len - o->head);
	o->head += n;
	if (o->head < o->len)
		return;
	o->head = o->len = 0;
	if (o->cap > OUT_SHRINK) {
		free(o->buf);
		o->buf = NULL;
		o->cap = 0;
	}
}

void st_resp_out_truncate(st_resp_out_t *o, size_t mark)
{
	assert(mark <= o->len - o->head);
	o->len = o->head + mark;
}

/* Makes room for n more bytes: moves the pending bytes to the front
 * when that frees at least as much as they weigh, else grows. */
static int reserve(st_resp_out_t *o, size_t n)
{
	size_t pending = o->len - o->head, cap;
	char *nb;

	if (o->cap - o->len >= n)
		return 0;
	if (o->head && o->head >= pending && o->cap - pending >= n) {
		memmove(o->buf, o->buf + o->head, pending);
		o->head = 0;
		o->len = pending;
		return 0;
	}
	cap = o->cap ? o->cap : 1024;
	while (cap - o->len < n) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	nb = realloc(o->buf, cap);
	if (!nb)
		goto fail;
	o->buf = nb;
	o->cap = cap;
	return 0;
fail:
	o->failed = 1;
	return ST_ENOMEM;
}

/* Writes v in decimal at dst; returns the number of digits. */
static size_t put_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

/* "<c><n>\r\n" */
static int put_header(st_resp_out_t *o, char c, int neg, uint64_t n)
{
	char *d;

	if (reserve(o, 24))
		return ST_ENOMEM;
	d = o->buf + o->len;
	*d++ = c;
	if (neg)
		*d++ = '-';
	d += put_u64(d, n);
	*d++ = '\r';
	*d++ = '\n';
	o->len = (size_t)(d - o->buf);
	return 0;
}

int st_resp_out_raw(st_resp_out_t *o, const void *data, size_t len)
{
	if (reserve(o, len))
		return ST_ENOMEM;
	if (len)
		memcpy(o->buf + o->len, data, len);
	o->len += len;
	return 0;
}

/* c, then len bytes of s, then \r\n; \r and \n of s become spaces when
 * sanitize is set. */
static int put_line(st_resp_out_t *o, char c, const char *s, size_t len,
		    int sanitize)
{
	char *d;

	if (len > SIZE_MAX - 3 || reserve(o, len + 3))
		return ST_ENOMEM;
	d = o->buf + o->len;
	*d++ = c;
	memcpy(d, s, len);
	if (sanitize)
		for (size_t i = 0; i < len; i++)
			if (d[i] == '\r' || d[i] == '\n')
				d[i] = ' ';
	d += len;
	*d++ = '\r';
	*d++ = '\n';
	o->len = (size_t)(d - o->buf);
	return 0;
}

int st_resp_out_simple(st_resp_out_t *o, const char *s)
{
	return put_line(o, '+', s, strlen(s), 1);
}

int st_resp_out_error(st_resp_out_t *o, const char *msg, size_t len)
{
	return put_line(o, '-', msg, len, 1);
}

int st_resp_out_errorf(st_resp_out_t *o, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	return st_resp_out_error(o, msg, (size_t)n < sizeof(msg) ?
				 (size_t)n : sizeof(msg) - 1);
}

int st_resp_out_int(st_resp_out_t *o, int64_t n)
{
	return n < 0 ? put_header(o, ':', 1, 0 - (uint64_t)n) :
	       put_header(o, ':', 0, (uint64_t)n);
}

int st_resp_out_bulk(st_resp_out_t *o, const void *data, size_t len)
{
	char *d;

	if (len > SIZE_MAX - 32 || reserve(o, len + 32))
		return ST_ENOMEM;
	d = o->buf + o->len;
	*d++ = '$';
	d += put_u64(d, len);
	*d++ = '\r';
	*d++ = '\n';
	if (len)
		memcpy(d, data, len);
	d += len;
	*d++ = '\r';
	*d++ = '\n';
	o->len = (size_t)(d - o->buf);
	return 0;
}

void st_resp_out_set_proto(st_resp_out_t *o, int proto)
{
	assert(proto == 2 || proto == 3);
	o->resp3 = proto == 3;
}

int st_resp_out_proto(const st_resp_out_t *o)
{
	return o->resp3 ? 3 : 2;
}

int st_resp_out_null(st_resp_out_t *o)
{
	return o->resp3 ? st_resp_out_raw(o, "_\r\n", 3) :
	       st_resp_out_raw(o, "$-1\r\n", 5);
}

int st_resp_out_array(st_resp_out_t *o, size_t n)
{
	return put_header(o, '*', 0, n);
}

int st_resp_out_map(st_resp_out_t *o, size_t n)
{
	if (o->resp3)
		return put_header(o, '%', 0, n);
	if (n > SIZE_MAX / 2) {
		o->failed = 1;
		return ST_ENOMEM;
	}
	return put_header(o, '*', 0, 2 * n);
}

int st_resp_out_set(st_resp_out_t *o, size_t n)
{
	return put_header(o, o->resp3 ? '~' : '*', 0, n);
}

int st_resp_out_verbatim(st_resp_out_t *o, const char *fmt,
			 const void *data, size_t len)
{
	char *d;

	assert(strlen(fmt) == 3);
	if (!o->resp3)
		return st_resp_out_bulk(o, data, len);
	if (len > SIZE_MAX - 40 || reserve(o, len + 40))
		return ST_ENOMEM;
	d = o->buf + o->len;
	*d++ = '=';
	d += put_u64(d, len + 4);
	*d++ = '\r';
	*d++ = '\n';
	memcpy(d, fmt, 3);
	d[3] = ':';
	d += 4;
	if (len)
		memcpy(d, data, len);
	d += len;
	*d++ = '\r';
	*d++ = '\n';
	o->len = (size_t)(d - o->buf);
	return 0;
}
