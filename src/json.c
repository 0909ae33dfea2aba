/* json.c -- a one-pass JSON reader into a flat array of values. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"

#define MAX_DEPTH 2048          /* jansson's JSON_PARSER_MAX_DEPTH */

typedef const unsigned char uc_t;

typedef struct parser {
	uc_t *p, *start, *end;
	st_json_t *doc;
	int depth;
	int nomem;
	int room;               /* the string space is ready */
	uc_t *at;               /* where the first error is */
	const char *why;
} parser_t;

static int fail(parser_t *ps, uc_t *at, const char *why)
{
	ps->at = at;
	ps->why = why;
	return -1;
}

static void skip_ws(parser_t *ps)
{
	uc_t *p = ps->p;

	while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' ||
			       *p == '\t'))
		p++;
	ps->p = p;
}

/* A new value's index, or -1 when out of memory. */
static long new_val(parser_t *ps, st_json_type_t type)
{
	st_json_t *d = ps->doc;
	st_json_val_t *nv;
	size_t cap;

	if (d->n == d->cap) {
		cap = d->cap ? d->cap * 2 : 64;
		if (cap > UINT32_MAX || !(nv = realloc(d->v, cap * sizeof(*nv)))) {
			ps->nomem = 1;
			return -1;
		}
		d->v = nv;
		d->cap = cap;
	}
	nv = &d->v[d->n];
	memset(nv, 0, sizeof(*nv));
	nv->type = type;
	return (long)d->n++;
}

/* The length of the valid UTF-8 sequence of 2 to 4 bytes at p, or 0. */
static size_t utf8_seq(uc_t *p, uc_t *end)
{
	unsigned c = p[0];
	uint32_t cp;
	size_t n, i;

	if (c < 0xc2)
		return 0;               /* a continuation byte, or overlong */
	if (c < 0xe0) {
		n = 2;
		cp = c & 0x1f;
	} else if (c < 0xf0) {
		n = 3;
		cp = c & 0x0f;
	} else if (c < 0xf5) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static int hex4(uc_t *p, uc_t *end, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		unsigned c = p[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static char *put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* Room for every decoded string of this input: never longer than the
 * input, so pointers into it stay valid for the whole parse. */
static int string_room(parser_t *ps)
{
	st_json_t *d = ps->doc;
	size_t need = (size_t)(ps->end - ps->start);
	char *s;

	if (d->str && d->str_cap >= need)
		return 0;
	if (!(s = realloc(d->str, need))) {
		ps->nomem = 1;
		return -1;
	}
	d->str = s;
	d->str_cap = need;
	return 0;
}

/* Decodes the escapes of a string from p (after its opening quote and the
 * plain run already scanned) into the document's string space. */
static int string_escaped(parser_t *ps, uc_t *run, uc_t *p, const char **s,
			  size_t *len)
{
	st_json_t *d = ps->doc;
	uint32_t cp, lo;
	char *o, *start;
	size_t n;

	if (!ps->room) {
		if (string_room(ps))
			return -1;
		ps->room = 1;
	}
	start = o = d->str + d->str_len;
	memcpy(o, run, (size_t)(p - run));
	o += p - run;
	for (;;) {
		if (p >= ps->end)
			return fail(ps, p, "premature end of input in a string");
		if (*p == '"')
			break;
		if (*p < 0x20)
			return fail(ps, p, "control character in a string");
		if (*p >= 0x80) {
			if (!(n = utf8_seq(p, ps->end)))
				return fail(ps, p, "invalid UTF-8");
			memcpy(o, p, n);
			o += n;
			p += n;
			continue;
		}
		if (*p != '\\') {
			*o++ = (char)*p++;
			continue;
		}
		if (++p >= ps->end)
			return fail(ps, p, "premature end of input in a string");
		switch (*p) {
		case '"': case '\\': case '/':
			*o++ = (char)*p;
			break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (hex4(p + 1, ps->end, &cp))
				return fail(ps, p - 1, "invalid \\u escape");
			p += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(ps, p - 5, "invalid Unicode: a "
					    "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (ps->end - p < 3 || p[1] != '\\' ||
				    p[2] != 'u' || hex4(p + 3, ps->end, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff)
					return fail(ps, p - 5, "invalid Unicode:"
						    " a high surrogate without "
						    "its low half");
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				p += 6;
			}
			o = put_utf8(o, cp);
			break;
		default:
			return fail(ps, p - 1, "invalid escape");
		}
		p++;
	}
	ps->p = p + 1;
	*s = start;
	*len = (size_t)(o - start);
	d->str_len += *len;
	return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether one of the 8 bytes at p is a quote, a backslash, a control
 * character or not ASCII: the bytes a string's plain run stops at. */
static int special8(uc_t *p)
{
	uint64_t w, q, b;

	memcpy(&w, p, sizeof(w));
	q = w ^ (ONES * '"');
	b = w ^ (ONES * '\\');
	return ((w | ((q - ONES) & ~q) | ((b - ONES) & ~b) |
		 ((w - ONES * 0x20) & ~w)) & HIGHS) != 0;
}

/* A string at ps->p (its opening quote). */
static int parse_string(parser_t *ps, const char **s, size_t *len)
{
	uc_t *run = ps->p + 1, *p = run, *end = ps->end;
	size_t n;

	for (;;) {
		while (end - p >= 8 && !special8(p))
			p += 8;
		if (p >= end)
			break;
		if (*p == '"') {
			*s = (const char *)run;
			*len = (size_t)(p - run);
			ps->p = p + 1;
			return 0;
		}
		if (*p == '\\')
			return string_escaped(ps, run, p, s, len);
		if (*p < 0x20)
			return fail(ps, p, "control character in a string");
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (!(n = utf8_seq(p, end)))
			return fail(ps, p, "invalid UTF-8");
		p += n;
	}
	return fail(ps, p, "premature end of input in a string");
}

static int is_digit(uc_t *p, uc_t *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static int parse_number(parser_t *ps, long idx)
{
	uc_t *start = ps->p, *p = start, *end = ps->end, *d;
	st_json_val_t *v = &ps->doc->v[idx];
	char tmp[64], *buf = tmp;
	uint64_t u = 0, lim;
	int real = 0, neg = 0;
	size_t n;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (p < end && *p == '0')
		p++;
	else if (is_digit(p, end))
		while (is_digit(p, end))
			p++;
	else
		return fail(ps, start, "invalid number");
	if (p < end && *p == '.') {
		if (!is_digit(++p, end))
			return fail(ps, start, "invalid number");
		while (is_digit(p, end))
			p++;
		real = 1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return fail(ps, start, "invalid number");
		while (is_digit(p, end))
			p++;
		real = 1;
	}
	ps->p = p;
	if (!real) {
		lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (d = start + neg; d < p; d++) {
			if (u > (lim - (uint64_t)(*d - '0')) / 10)
				return fail(ps, start, neg ?
					    "too big negative integer" :
					    "too big integer");
			u = u * 10 + (uint64_t)(*d - '0');
		}
		v->type = ST_JSON_INT;
		v->i = neg ? (int64_t)(0 - u) : (int64_t)u;
		return 0;
	}
	n = (size_t)(p - start);
	if (n >= sizeof(tmp) && !(buf = malloc(n + 1))) {
		ps->nomem = 1;
		return -1;
	}
	memcpy(buf, start, n);
	buf[n] = '\0';
	errno = 0;
	v->type = ST_JSON_REAL;
	v->d = strtod(buf, NULL);
	if (buf != tmp)
		free(buf);
	if (errno == ERANGE && (v->d == HUGE_VAL || v->d == -HUGE_VAL))
		return fail(ps, start, "real number overflow");
	return 0;
}

static int parse_value(parser_t *ps, long *out);

/* Whether the key of member k repeats one of the members linked from
 * index first (k is not linked yet). */
static int duplicate(const st_json_t *d, uint32_t first, long k)
{
	const st_json_val_t *kv = &d->v[k], *m;
	uint32_t i;

	for (i = first; i; i = m->next) {
		m = &d->v[i];
		if (m->key_len == kv->key_len &&
		    !memcmp(m->key, kv->key, kv->key_len))
			return 1;
	}
	return 0;
}

/*
 * The keys of one object, for the duplicate check. Up to KEYSET_FROM
 * members, a key's length and first byte pick one of 64 bits and only a
 * key whose bit is set is compared with the others; from there on, a hash
 * set of the members, so that an object of many keys alike ("k000001",
 * "k000002", ...) costs linear time, not quadratic.
 */
#define KEYSET_FROM 32

typedef struct keyset {
	uint64_t seen;
	uint32_t *cell;         /* member index + 1; 0: empty */
	size_t cap;
} keyset_t;

static uint64_t key_fnv(const char *k, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	while (n--)
		h = (h ^ (unsigned char)*k++) * 1099511628211ULL;
	return h;
}

/* Puts member m into the set; 1 if an equal key is there already. */
static int keyset_put(keyset_t *ks, const st_json_t *d, uint32_t m)
{
	const st_json_val_t *mv = &d->v[m], *o;
	size_t j;

	for (j = key_fnv(mv->key, mv->key_len) & (ks->cap - 1); ks->cell[j];
	     j = (j + 1) & (ks->cap - 1)) {
		o = &d->v[ks->cell[j] - 1];
		if (o->key_len == mv->key_len &&
		    !memcmp(o->key, mv->key, mv->key_len))
			return 1;
	}
	ks->cell[j] = m + 1;
	return 0;
}

/* A set of twice the room for the count members linked from first. */
static int keyset_rebuild(parser_t *ps, keyset_t *ks, uint32_t first,
			  size_t count)
{
	size_t cap = ks->cap ? ks->cap * 2 : 128;
	uint32_t i;

	while (cap < 4 * count)
		cap *= 2;
	free(ks->cell);
	if (!(ks->cell = calloc(cap, sizeof(*ks->cell)))) {
		ps->nomem = 1;
		return -1;
	}
	ks->cap = cap;
	for (i = first; i; i = ps->doc->v[i].next)
		keyset_put(ks, ps->doc, i);
	return 0;
}

/* Whether member k's key repeats an earlier member's (count of them,
 * linked from first): 1, 0, or -1 when out of memory. */
static int key_repeats(parser_t *ps, keyset_t *ks, uint32_t first,
		       size_t count, long k)
{
	const st_json_val_t *kv = &ps->doc->v[k];
	uint64_t bit;

	if (count < KEYSET_FROM) {
		bit = 1ULL << ((kv->key_len * 7 + (kv->key_len ?
				(unsigned char)kv->key[0] : 0)) & 63);
		if ((ks->seen & bit) && duplicate(ps->doc, first, k))
			return 1;
		ks->seen |= bit;
		return 0;
	}
	if ((count + 1) * 2 > ks->cap &&
	    keyset_rebuild(ps, ks, first, count + 1))
		return -1;
	return keyset_put(ks, ps->doc, (uint32_t)k);
}

/* An array or object at ps->p (its opening bracket). */
static int parse_container(parser_t *ps, long idx, int object)
{
	char close = object ? '}' : ']';
	keyset_t keys = {0};
	long prev = 0, child;
	const char *key = NULL;
	size_t key_len = 0;
	uc_t *at = ps->p, *open = ps->p;
	int r = -1, dup;

	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close)
		goto done;
	for (;;) {
		if (object) {
			at = ps->p;
			if (at >= ps->end || *at != '"') {
				fail(ps, at, "string or '}' expected");
				goto out;
			}
			if (parse_string(ps, &key, &key_len))
				goto out;
			if (memchr(key, '\0', key_len)) {
				fail(ps, at, "NUL byte in object key not "
				     "supported");
				goto out;
			}
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				fail(ps, ps->p, "':' expected");
				goto out;
			}
			ps->p++;
			skip_ws(ps);
		}
		if (parse_value(ps, &child))
			goto out;
		if (object) {
			ps->doc->v[child].key = key;
			ps->doc->v[child].key_len = key_len;
			dup = key_repeats(ps, &keys, ps->doc->v[idx].first,
					  ps->doc->v[idx].count, child);
			if (dup < 0)
				goto out;
			if (dup) {
				fail(ps, at, "duplicate object key");
				goto out;
			}
		}
		if (prev)
			ps->doc->v[prev].next = (uint32_t)child;
		else
			ps->doc->v[idx].first = (uint32_t)child;
		prev = child;
		ps->doc->v[idx].count++;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == close)
			break;
		if (ps->p >= ps->end || *ps->p != ',') {
			fail(ps, ps->p, object ? "',' or '}' expected" :
			     "',' or ']' expected");
			goto out;
		}
		ps->p++;
		skip_ws(ps);
	}
done:
	ps->p++;
	ps->doc->v[idx].s = (const char *)open;
	ps->doc->v[idx].len = (size_t)(ps->p - open);
	r = 0;
out:
	free(keys.cell);
	return r;
}

static int literal(parser_t *ps, const char *word, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return fail(ps, ps->p, "invalid token");
	ps->p += n;
	return 0;
}

static int parse_one(parser_t *ps, long *out)
{
	st_json_type_t t;
	long idx;
	int r;

	if (ps->p >= ps->end)
		return fail(ps, ps->p, "premature end of input");
	switch (*ps->p) {
	case '{': t = ST_JSON_OBJECT; break;
	case '[': t = ST_JSON_ARRAY; break;
	case '"': t = ST_JSON_STRING; break;
	case 't': t = ST_JSON_TRUE; break;
	case 'f': t = ST_JSON_FALSE; break;
	case 'n': t = ST_JSON_NULL; break;
	default:
		if (*ps->p != '-' && !is_digit(ps->p, ps->end))
			return fail(ps, ps->p, "invalid token");
		t = ST_JSON_INT;
		break;
	}
	if ((idx = new_val(ps, t)) < 0)
		return -1;
	*out = idx;
	switch (t) {
	case ST_JSON_OBJECT:
	case ST_JSON_ARRAY:
		return parse_container(ps, idx, t == ST_JSON_OBJECT);
	case ST_JSON_STRING: {
		const char *s;
		size_t len;

		if ((r = parse_string(ps, &s, &len)))
			return r;
		ps->doc->v[idx].s = s;
		ps->doc->v[idx].len = len;
		return 0;
	}
	case ST_JSON_TRUE: return literal(ps, "true", 4);
	case ST_JSON_FALSE: return literal(ps, "false", 5);
	case ST_JSON_NULL: return literal(ps, "null", 4);
	default: return parse_number(ps, idx);
	}
}

/* Every value counts towards the nesting depth, as in jansson: a scalar
 * inside 2048 arrays is one level too deep. */
static int parse_value(parser_t *ps, long *out)
{
	int r;

	if (++ps->depth > MAX_DEPTH)
		return fail(ps, ps->p, "maximum parsing depth reached");
	r = parse_one(ps, out);
	ps->depth--;
	return r;
}

int st_json_parse(st_json_t *doc, const void *buf, size_t len, char *errstr,
		  size_t errstr_size)
{
	parser_t ps = {0};
	long root;

	ps.start = ps.p = buf;
	ps.end = ps.start + len;
	ps.doc = doc;
	doc->n = 0;
	doc->str_len = 0;
	skip_ws(&ps);
	if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '[')) {
		fail(&ps, ps.p, "'[' or '{' expected");
		goto err;
	}
	if (parse_value(&ps, &root))
		goto err;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		fail(&ps, ps.p, "end of input expected");
		goto err;
	}
	return 0;
err:
	doc->n = 0;
	if (ps.nomem)
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "out of memory parsing JSON");
	return st_seterr(errstr, errstr_size, ST_EPARSE,
			 "invalid JSON at byte %zu: %s",
			 (size_t)(ps.at - ps.start), ps.why);
}

void st_json_free(st_json_t *doc)
{
	free(doc->v);
	free(doc->str);
	memset(doc, 0, sizeof(*doc));
}

const st_json_val_t *st_json_get(const st_json_t *doc,
				 const st_json_val_t *v, const char *name)
{
	size_t n = strlen(name);
	const st_json_val_t *m;

	if (!v || v->type != ST_JSON_OBJECT)
		return NULL;
	for (m = st_json_first(doc, v); m; m = st_json_next(doc, m))
		if (m->key_len == n && !memcmp(m->key, name, n))
			return m;
	return NULL;
}

int st_json_dump(const st_json_val_t *v, char **out)
{
	json_error_t jerr;
	json_t *j = json_loadb(v->s, v->len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
			       &jerr);

	*out = NULL;
	if (!j)
		return json_error_code(&jerr) == json_error_out_of_memory ?
		       ST_ENOMEM : ST_EPARSE;
	*out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	return *out ? 0 : ST_ENOMEM;
}

int st_json_streq(const st_json_val_t *v, const char *s)
{
	size_t n = strlen(s);

	return v && v->type == ST_JSON_STRING && v->len == n &&
	       !memcmp(v->s, s, n);
}
