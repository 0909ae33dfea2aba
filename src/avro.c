/* avro.c -- Confluent frames and flat Avro records: schemas parsed by
 * avro-c, bodies read and written by plans compiled from them. */
#include "avro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro/basics.h>
#include <avro/errors.h>
#include <avro/schema.h>
#include <jansson.h>

#include "error.h"

/* Nesting allowed inside a skipped writer field. */
#define DEPTH_MAX 64

/* Why a body did not decode; the messages are in reasons[]. */
enum {
	R_OK,
	R_TRUNC,
	R_VARINT,
	R_LEN,
	R_INT,
	R_BOOL,
	R_ENUM,
	R_SYMBOL,
	R_BRANCH,
	R_NOMATCH,
	R_DEPTH
};

static const char *const reasons[] = {
	"no error",
	"truncated",
	"varint longer than 10 bytes",
	"negative length",
	"int out of range",
	"boolean byte neither 0 nor 1",
	"enum index out of range",
	"writer enum symbol not in the reader enum:",
	"union branch index out of range",
	"writer union branch cannot be read with the reader schema:",
	"nested deeper than 64 levels"
};

/* How the writer encoded a value (W_*) and what the reader wants (OUT_*). */
enum {
	W_NULL, W_BOOL, W_INT, W_LONG, W_FLOAT, W_DOUBLE, W_BYTES, W_FIXED,
	W_ENUM, W_UNION, W_NOMATCH
};
enum { OUT_NULL, OUT_BOOL, OUT_INT, OUT_FLOAT, OUT_DOUBLE, OUT_STRING };

typedef struct sym {
	const char *s;          /* reader symbol; NULL: not in the reader */
	size_t len;
	const char *wname;      /* writer symbol */
} sym_t;

/* The reading of one writer type as one reader type. */
typedef struct conv {
	int op;                 /* W_* */
	int out;                /* OUT_* */
	size_t n;               /* W_FIXED size, W_ENUM symbols, W_UNION
				 * branches */
	sym_t *syms;            /* W_ENUM: by writer ordinal */
	struct conv *branch;    /* W_UNION: by writer branch */
	const char *wname;      /* W_NOMATCH: the writer type */
} conv_t;

typedef struct rfield {
	const char *name;       /* borrowed from the schema */
	avro_schema_t type;     /* borrowed from the schema */
	int has_default;
	st_value_t def;         /* def.s points into defbuf */
	char *defbuf;
} rfield_t;

struct st_avro_reader {
	avro_schema_t schema;
	size_t nfields;
	rfield_t *fields;
};

/* One top-level writer field: read into a reader field, or skipped. */
typedef struct op {
	int rindex;             /* -1: skipped */
	const char *name;       /* borrowed from the writer schema */
	avro_schema_t wtype;
	conv_t conv;
} op_t;

struct st_avro_decoder {
	const st_avro_reader_t *reader;
	avro_schema_t writer;
	size_t nops;
	op_t *ops;
	st_value_t *init;       /* defaults of the fields the writer lacks */
	uint8_t *scratch;       /* the strings of the last decode */
	size_t scratch_cap;
};

/* One branch (or the only type) of a field to encode. */
typedef struct ekind {
	int type;               /* AVRO_NULL, AVRO_INT32, ... */
	size_t n;               /* fixed size, enum symbols */
	sym_t *syms;            /* enum */
} ekind_t;

typedef struct efield {
	const char *name;
	int is_union;
	size_t nb;
	ekind_t *b;
} efield_t;

struct st_avro_encoder {
	avro_schema_t schema;
	size_t nfields;
	efield_t *fields;
};

/* The bytes being read, and where decoded strings go. */
typedef struct cur {
	const uint8_t *p, *end;
	uint8_t *out;
	const char *detail;     /* names what R_SYMBOL / R_NOMATCH met */
} cur_t;

/* The buffer being written; overflow is reported once, at the end. */
typedef struct put {
	uint8_t *p, *end;
	int overflow;
} put_t;

int st_avro_frame_parse(const void *buf, size_t len, int32_t *schema_id,
			const uint8_t **body, size_t *body_len, char *errstr,
			size_t errstr_size)
{
	const uint8_t *p = buf;

	if (!buf || !len)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "empty value, not Confluent-framed Avro");
	if (len < ST_AVRO_HEADER_SIZE)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "frame of %zu bytes is shorter than the "
				 "%d-byte Confluent header", len,
				 ST_AVRO_HEADER_SIZE);
	if (p[0] != ST_AVRO_MAGIC)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "magic byte 0x%02x, expected 0x%02x (not "
				 "Confluent-framed Avro)", p[0],
				 ST_AVRO_MAGIC);
	*schema_id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
			       (uint32_t)p[3] << 8 | (uint32_t)p[4]);
	*body = p + ST_AVRO_HEADER_SIZE;
	*body_len = len - ST_AVRO_HEADER_SIZE;
	return 0;
}

/* ---- schemas ---------------------------------------------------------- */

static avro_schema_t deref(avro_schema_t s)
{
	while (is_avro_link(s))
		s = avro_schema_link_target(s);
	return s;
}

static int is_flat(avro_schema_t s)
{
	switch (avro_typeof(s)) {
	case AVRO_NULL:
	case AVRO_BOOLEAN:
	case AVRO_INT32:
	case AVRO_INT64:
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
	case AVRO_STRING:
	case AVRO_BYTES:
	case AVRO_ENUM:
	case AVRO_FIXED:
		return 1;
	default:
		return 0;
	}
}

/* A flat type, or a union of flat types. */
static int is_supported(avro_schema_t s)
{
	size_t i, n;

	s = deref(s);
	if (!is_avro_union(s))
		return is_flat(s);
	n = avro_schema_union_size(s);
	for (i = 0; i < n; i++)
		if (!is_flat(deref(avro_schema_union_branch(s, (int)i))))
			return 0;
	return 1;
}

/* Describes a type for messages: "long", "enum Channel", ["null",...]. */
static const char *type_desc(avro_schema_t s, char *buf, size_t size)
{
	size_t i, n, off;
	int w;

	s = deref(s);
	if (is_avro_named_type(s)) {
		snprintf(buf, size, "%s %s", is_avro_record(s) ? "record" :
			 is_avro_enum(s) ? "enum" : "fixed",
			 avro_schema_name(s));
		return buf;
	}
	if (!is_avro_union(s)) {
		snprintf(buf, size, "%s", avro_schema_type_name(s));
		return buf;
	}
	n = avro_schema_union_size(s);
	off = 0;
	for (i = 0; i < n && off < size; i++) {
		w = snprintf(buf + off, size - off, "%s\"%s\"", i ? "," : "[",
			     avro_schema_type_name(deref(
				     avro_schema_union_branch(s, (int)i))));
		off += w > 0 ? (size_t)w : 0;
	}
	if (off < size)
		snprintf(buf + off, size - off, "]");
	return buf;
}

static int parse_schema(const char *json, size_t len, const char *what,
			avro_schema_t *sp, char *errstr, size_t errstr_size)
{
	avro_schema_t s = NULL, rec;
	const char *name;
	size_t i, j, n;
	int err = 0;

	if (!json || avro_schema_from_json_length(json, len, &s)) {
		s = NULL;
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"%s schema: %s", what,
				json ? avro_strerror() : "missing");
		goto out;
	}
	rec = deref(s);
	if (!is_avro_record(rec)) {
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"%s schema: not a record", what);
		goto out;
	}
	n = avro_schema_record_size(rec);
	if (!n) {
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"%s schema: a record without fields", what);
		goto out;
	}
	/* avro-c accepts a field name twice. */
	for (i = 1; i < n; i++) {
		name = avro_schema_record_field_name(rec, (int)i);
		for (j = 0; j < i; j++) {
			if (!strcmp(name, avro_schema_record_field_name(
					    rec, (int)j))) {
				err = st_seterr(errstr, errstr_size,
						ST_ESCHEMA, "%s schema: field "
						"%s appears twice", what,
						name);
				goto out;
			}
		}
	}
out:
	if (err && s)
		avro_schema_decref(s);
	else if (!err)
		*sp = s;
	return err;
}

/* ---- reader ----------------------------------------------------------- */

/* Copies a JSON string of code points 0-255 (Avro's bytes default) as
 * bytes. Returns the length, or -1 for a larger code point. */
static long latin1(const char *s, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	long n = 0;

	while (p < end) {
		if (*p < 0x80) {
			out[n++] = (char)*p++;
		} else if ((*p == 0xc2 || *p == 0xc3) && p + 1 < end) {
			out[n++] = (char)((*p & 0x03) << 6 | (p[1] & 0x3f));
			p += 2;
		} else {
			return -1;
		}
	}
	return n;
}

/* Sets a field's default from its JSON value; for a union the default is
 * of the first branch. Returns 0, 1 (does not match the type) or
 * ST_ENOMEM. */
static int set_default(rfield_t *f, json_t *def)
{
	avro_schema_t t = deref(f->type);
	st_value_t *v = &f->def;
	const char *s;
	size_t len;
	long n;

	if (is_avro_union(t))
		t = deref(avro_schema_union_branch(t, 0));
	switch (avro_typeof(t)) {
	case AVRO_NULL:
		if (!json_is_null(def))
			return 1;
		v->type = ST_VAL_NULL;
		break;
	case AVRO_BOOLEAN:
		if (!json_is_boolean(def))
			return 1;
		v->type = ST_VAL_BOOL;
		v->i = json_is_true(def);
		break;
	case AVRO_INT32:
	case AVRO_INT64:
		if (!json_is_integer(def))
			return 1;
		v->type = ST_VAL_INT;
		v->i = json_integer_value(def);
		if (is_avro_int32(t) && (v->i < INT32_MIN || v->i > INT32_MAX))
			return 1;
		break;
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		if (!json_is_number(def))
			return 1;
		v->type = ST_VAL_DOUBLE;
		v->d = json_number_value(def);
		break;
	default:
		if (!json_is_string(def))
			return 1;
		s = json_string_value(def);
		len = json_string_length(def);
		if (!(f->defbuf = malloc(len + 1)))
			return ST_ENOMEM;
		v->type = ST_VAL_STRING;
		v->s = f->defbuf;
		v->len = len;
		if (is_avro_string(t) || is_avro_enum(t)) {
			memcpy(f->defbuf, s, len);
			if (is_avro_enum(t) &&
			    avro_schema_enum_get_by_name(t, s) < 0)
				return 1;
			break;
		}
		n = latin1(s, len, f->defbuf);
		if (n < 0 || (is_avro_fixed(t) &&
			      n != avro_schema_fixed_size(t)))
			return 1;
		v->len = (size_t)n;
		break;
	}
	f->has_default = 1;
	return 0;
}

/* avro-c drops defaults: they are read from the JSON text. */
static int read_defaults(st_avro_reader_t *r, const char *json, size_t len,
			 char *errstr, size_t errstr_size)
{
	json_t *root, *fields, *f, *def;
	json_error_t jerr;
	const char *name;
	char desc[128];
	size_t i;
	int idx, rc, err = 0;

	root = json_loadb(json, len, 0, &jerr);
	fields = json_object_get(root, "fields");
	json_array_foreach(fields, i, f) {
		name = json_string_value(json_object_get(f, "name"));
		def = json_object_get(f, "default");
		if (!name || !def ||
		    (idx = st_avro_reader_field(r, name)) < 0)
			continue;
		rc = set_default(&r->fields[idx], def);
		if (rc == ST_ENOMEM) {
			err = ST_ENOMEM;
			goto out;
		}
		if (rc) {
			err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
					"reader schema: field %s: default does "
					"not match type %s", name,
					type_desc(r->fields[idx].type, desc,
						  sizeof(desc)));
			goto out;
		}
	}
out:
	json_decref(root);
	return err;
}

int st_avro_reader_new(st_avro_reader_t **rp, const char *reader_json,
		       size_t len, char *errstr, size_t errstr_size)
{
	st_avro_reader_t *r;
	avro_schema_t rec;
	char desc[128];
	size_t i;
	int err;

	*rp = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return ST_ENOMEM;
	if ((err = parse_schema(reader_json, len, "reader", &r->schema,
				errstr, errstr_size)))
		goto out;
	rec = deref(r->schema);
	r->nfields = avro_schema_record_size(rec);
	if (!(r->fields = calloc(r->nfields, sizeof(*r->fields)))) {
		err = ST_ENOMEM;
		goto out;
	}
	for (i = 0; i < r->nfields; i++) {
		r->fields[i].name = avro_schema_record_field_name(rec,
								  (int)i);
		r->fields[i].type = avro_schema_record_field_get_by_index(
			rec, (int)i);
		if (!is_supported(r->fields[i].type)) {
			err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
					"reader schema: field %s: unsupported "
					"type %s (strata reads primitives, "
					"enums, fixed and unions of these)",
					r->fields[i].name,
					type_desc(r->fields[i].type, desc,
						  sizeof(desc)));
			goto out;
		}
	}
	err = read_defaults(r, reader_json, len, errstr, errstr_size);
out:
	if (err)
		st_avro_reader_free(r);
	else
		*rp = r;
	return err;
}

void st_avro_reader_free(st_avro_reader_t *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; r->fields && i < r->nfields; i++)
		free(r->fields[i].defbuf);
	free(r->fields);
	if (r->schema)
		avro_schema_decref(r->schema);
	free(r);
}

size_t st_avro_reader_nfields(const st_avro_reader_t *r)
{
	return r->nfields;
}

int st_avro_reader_field(const st_avro_reader_t *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].name, name))
			return (int)i;
	return ST_ENOENT;
}

const char *st_avro_reader_field_name(const st_avro_reader_t *r, size_t i)
{
	return r->fields[i].name;
}

/* ---- resolution ------------------------------------------------------- */

/* Whether a flat writer type reads as a flat reader type: the same type
 * (named types: the same name and size), or a promotion unless exact. */
static int resolves(avro_schema_t w, avro_schema_t r, int exact)
{
	avro_type_t wt = avro_typeof(w), rt = avro_typeof(r);

	if (wt == rt) {
		if (wt == AVRO_ENUM)
			return !strcmp(avro_schema_name(w),
				       avro_schema_name(r));
		if (wt == AVRO_FIXED)
			return !strcmp(avro_schema_name(w),
				       avro_schema_name(r)) &&
			       avro_schema_fixed_size(w) ==
			       avro_schema_fixed_size(r);
		return is_flat(w);
	}
	if (exact)
		return 0;
	switch (wt) {
	case AVRO_INT32:
		return rt == AVRO_INT64 || rt == AVRO_FLOAT ||
		       rt == AVRO_DOUBLE;
	case AVRO_INT64:
		return rt == AVRO_FLOAT || rt == AVRO_DOUBLE;
	case AVRO_FLOAT:
		return rt == AVRO_DOUBLE;
	case AVRO_STRING:
		return rt == AVRO_BYTES;
	case AVRO_BYTES:
		return rt == AVRO_STRING;
	default:
		return 0;
	}
}

/* Fills cv for a flat writer type w that resolves to reader type r. */
static int build(conv_t *cv, avro_schema_t w, avro_schema_t r)
{
	size_t i;
	int ri;

	switch (avro_typeof(r)) {
	case AVRO_NULL: cv->out = OUT_NULL; break;
	case AVRO_BOOLEAN: cv->out = OUT_BOOL; break;
	case AVRO_INT32:
	case AVRO_INT64: cv->out = OUT_INT; break;
	case AVRO_FLOAT: cv->out = OUT_FLOAT; break;
	case AVRO_DOUBLE: cv->out = OUT_DOUBLE; break;
	default: cv->out = OUT_STRING; break;
	}
	switch (avro_typeof(w)) {
	case AVRO_NULL: cv->op = W_NULL; break;
	case AVRO_BOOLEAN: cv->op = W_BOOL; break;
	case AVRO_INT32: cv->op = W_INT; break;
	case AVRO_INT64: cv->op = W_LONG; break;
	case AVRO_FLOAT: cv->op = W_FLOAT; break;
	case AVRO_DOUBLE: cv->op = W_DOUBLE; break;
	case AVRO_FIXED:
		cv->op = W_FIXED;
		cv->n = (size_t)avro_schema_fixed_size(w);
		break;
	case AVRO_ENUM:
		cv->op = W_ENUM;
		cv->n = (size_t)avro_schema_enum_number_of_symbols(w);
		if (!(cv->syms = calloc(cv->n ? cv->n : 1, sizeof(sym_t))))
			return ST_ENOMEM;
		for (i = 0; i < cv->n; i++) {
			cv->syms[i].wname = avro_schema_enum_get(w, (int)i);
			ri = avro_schema_enum_get_by_name(r,
							  cv->syms[i].wname);
			if (ri < 0)
				continue;
			cv->syms[i].s = avro_schema_enum_get(r, ri);
			cv->syms[i].len = strlen(cv->syms[i].s);
		}
		break;
	default:
		cv->op = W_BYTES;
		break;
	}
	return 0;
}

/* A flat writer type against a reader type; a reader union takes the
 * first branch of the same type, else the first that promotes. Returns 0,
 * 1 (no match) or ST_ENOMEM. */
static int resolve_flat(conv_t *cv, avro_schema_t w, avro_schema_t r)
{
	avro_schema_t rb;
	size_t i, n;
	int exact;

	if (!is_flat(w))
		return 1;
	if (!is_avro_union(r))
		return resolves(w, r, 0) ? build(cv, w, r) : 1;
	n = avro_schema_union_size(r);
	for (exact = 1; exact >= 0; exact--) {
		for (i = 0; i < n; i++) {
			rb = deref(avro_schema_union_branch(r, (int)i));
			if (resolves(w, rb, exact))
				return build(cv, w, rb);
		}
	}
	return 1;
}

/* A writer union resolves branch by branch: a branch the reader cannot
 * read fails only when a body uses it; at least one must resolve. */
static int resolve(conv_t *cv, avro_schema_t w, avro_schema_t r)
{
	avro_schema_t wb;
	size_t i, matched = 0;
	int rc;

	w = deref(w);
	r = deref(r);
	if (!is_avro_union(w))
		return resolve_flat(cv, w, r);
	cv->op = W_UNION;
	cv->n = avro_schema_union_size(w);
	if (!(cv->branch = calloc(cv->n ? cv->n : 1, sizeof(conv_t))))
		return ST_ENOMEM;
	for (i = 0; i < cv->n; i++) {
		wb = deref(avro_schema_union_branch(w, (int)i));
		rc = resolve_flat(&cv->branch[i], wb, r);
		if (rc < 0)
			return rc;
		if (rc) {
			cv->branch[i].op = W_NOMATCH;
			cv->branch[i].wname = avro_schema_type_name(wb);
		} else {
			matched++;
		}
	}
	return matched ? 0 : 1;
}

static void conv_clear(conv_t *cv)
{
	size_t i;

	if (cv->branch)
		for (i = 0; i < cv->n; i++)
			conv_clear(&cv->branch[i]);
	free(cv->branch);
	free(cv->syms);
}

int st_avro_decoder_new(st_avro_decoder_t **dp,
			const st_avro_reader_t *reader,
			const char *writer_json, size_t len, char *errstr,
			size_t errstr_size)
{
	st_avro_decoder_t *d;
	avro_schema_t w, rrec;
	char wdesc[128], rdesc[128];
	unsigned char *seen = NULL;
	size_t i, nr = reader->nfields;
	int ri, rc, err;

	*dp = NULL;
	if (!(d = calloc(1, sizeof(*d))))
		return ST_ENOMEM;
	d->reader = reader;
	if ((err = parse_schema(writer_json, len, "writer", &d->writer,
				errstr, errstr_size)))
		goto out;
	w = deref(d->writer);
	rrec = deref(reader->schema);
	if (strcmp(avro_schema_name(w), avro_schema_name(rrec))) {
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"writer record %s is not the reader's %s",
				avro_schema_name(w), avro_schema_name(rrec));
		goto out;
	}
	d->nops = avro_schema_record_size(w);
	d->ops = calloc(d->nops, sizeof(*d->ops));
	d->init = calloc(nr, sizeof(*d->init));
	seen = calloc(nr, 1);
	if (!d->ops || !d->init || !seen) {
		err = ST_ENOMEM;
		goto out;
	}
	for (i = 0; i < d->nops; i++) {
		op_t *op = &d->ops[i];

		op->name = avro_schema_record_field_name(w, (int)i);
		op->wtype = avro_schema_record_field_get_by_index(w, (int)i);
		op->rindex = ri = st_avro_reader_field(reader, op->name);
		if (ri < 0)
			continue;
		seen[ri] = 1;
		rc = resolve(&op->conv, op->wtype, reader->fields[ri].type);
		if (rc < 0) {
			err = rc;
			goto out;
		}
		if (rc) {
			err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
					"field %s: writer type %s cannot be "
					"read as %s", op->name,
					type_desc(op->wtype, wdesc,
						  sizeof(wdesc)),
					type_desc(reader->fields[ri].type,
						  rdesc, sizeof(rdesc)));
			goto out;
		}
	}
	for (i = 0; i < nr; i++) {
		if (seen[i])
			continue;
		if (!reader->fields[i].has_default) {
			err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
					"field %s: missing from the writer "
					"schema and without a default in the "
					"reader schema",
					reader->fields[i].name);
			goto out;
		}
		d->init[i] = reader->fields[i].def;
	}
out:
	free(seen);
	if (err)
		st_avro_decoder_free(d);
	else
		*dp = d;
	return err;
}

void st_avro_decoder_free(st_avro_decoder_t *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; d->ops && i < d->nops; i++)
		conv_clear(&d->ops[i].conv);
	free(d->ops);
	free(d->init);
	free(d->scratch);
	if (d->writer)
		avro_schema_decref(d->writer);
	free(d);
}

/* ---- decoding --------------------------------------------------------- */

static inline int rd_long(cur_t *c, int64_t *v)
{
	const uint8_t *p = c->p;
	uint64_t u = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		if (p == c->end)
			return R_TRUNC;
		if (shift > 63)
			return R_VARINT;
		b = *p++;
		u |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	c->p = p;
	*v = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
	return 0;
}

static inline int rd_int(cur_t *c, int64_t *v)
{
	int rc = rd_long(c, v);

	if (!rc && (*v < INT32_MIN || *v > INT32_MAX))
		return R_INT;
	return rc;
}

/* A length prefix: at most the bytes left. */
static inline int rd_len(cur_t *c, size_t *len)
{
	int64_t n;
	int rc;

	if ((rc = rd_long(c, &n)))
		return rc;
	if (n < 0)
		return R_LEN;
	if ((uint64_t)n > (uint64_t)(c->end - c->p))
		return R_TRUNC;
	*len = (size_t)n;
	return 0;
}

static inline uint64_t le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	       (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void set_number(st_value_t *v, int out, int64_t n)
{
	if (out == OUT_INT) {
		v->type = ST_VAL_INT;
		v->i = n;
	} else {
		v->type = ST_VAL_DOUBLE;
		v->d = out == OUT_FLOAT ? (double)(float)n : (double)n;
	}
}

static inline void set_string(cur_t *c, st_value_t *v, size_t len)
{
	memcpy(c->out, c->p, len);
	v->type = ST_VAL_STRING;
	v->s = (const char *)c->out;
	v->len = len;
	c->out += len;
	c->p += len;
}

static int rd_conv(cur_t *c, const conv_t *cv, st_value_t *v)
{
	int64_t n;
	uint64_t u;
	uint32_t u32;
	float f;
	size_t len;
	int rc;

	switch (cv->op) {
	case W_NULL:
		v->type = ST_VAL_NULL;
		return 0;
	case W_BOOL:
		if (c->p == c->end)
			return R_TRUNC;
		if (*c->p > 1)
			return R_BOOL;
		v->type = ST_VAL_BOOL;
		v->i = *c->p++;
		return 0;
	case W_INT:
		if ((rc = rd_int(c, &n)))
			return rc;
		set_number(v, cv->out, n);
		return 0;
	case W_LONG:
		if ((rc = rd_long(c, &n)))
			return rc;
		set_number(v, cv->out, n);
		return 0;
	case W_FLOAT:
		if (c->end - c->p < 4)
			return R_TRUNC;
		u32 = le32(c->p);
		memcpy(&f, &u32, sizeof(f));
		c->p += 4;
		v->type = ST_VAL_DOUBLE;
		v->d = f;
		return 0;
	case W_DOUBLE:
		if (c->end - c->p < 8)
			return R_TRUNC;
		u = le64(c->p);
		memcpy(&v->d, &u, sizeof(v->d));
		c->p += 8;
		v->type = ST_VAL_DOUBLE;
		return 0;
	case W_BYTES:
		if ((rc = rd_len(c, &len)))
			return rc;
		set_string(c, v, len);
		return 0;
	case W_FIXED:
		if ((size_t)(c->end - c->p) < cv->n)
			return R_TRUNC;
		set_string(c, v, cv->n);
		return 0;
	case W_ENUM:
		if ((rc = rd_long(c, &n)))
			return rc;
		if (n < 0 || (uint64_t)n >= cv->n)
			return R_ENUM;
		if (!cv->syms[n].s) {
			c->detail = cv->syms[n].wname;
			return R_SYMBOL;
		}
		v->type = ST_VAL_STRING;
		v->s = cv->syms[n].s;
		v->len = cv->syms[n].len;
		return 0;
	case W_UNION:
		if ((rc = rd_long(c, &n)))
			return rc;
		if (n < 0 || (uint64_t)n >= cv->n)
			return R_BRANCH;
		return rd_conv(c, &cv->branch[n], v);
	default:
		c->detail = cv->wname;
		return R_NOMATCH;
	}
}

static int skip(cur_t *c, avro_schema_t s, int depth);

/* Whether every value of the type is encoded in zero bytes. */
static int zero_size(avro_schema_t s, int depth)
{
	size_t i, n;

	s = deref(s);
	if (depth > DEPTH_MAX)
		return 0;
	switch (avro_typeof(s)) {
	case AVRO_NULL:
		return 1;
	case AVRO_FIXED:
		return avro_schema_fixed_size(s) == 0;
	case AVRO_RECORD:
		n = avro_schema_record_size(s);
		for (i = 0; i < n; i++)
			if (!zero_size(avro_schema_record_field_get_by_index(
					       s, (int)i), depth + 1))
				return 0;
		return 1;
	default:
		return 0;
	}
}

/* Array and map blocks: a count (negative: followed by the block's size
 * in bytes), items, until a count of 0. */
static int skip_blocks(cur_t *c, avro_schema_t item, int map, int depth)
{
	int64_t count, k;
	size_t size;
	int rc, empty = !map && zero_size(item, depth + 1);

	for (;;) {
		if ((rc = rd_long(c, &count)))
			return rc;
		if (!count)
			return 0;
		if (count < 0) {
			if ((rc = rd_len(c, &size)))
				return rc;
			c->p += size;
			continue;
		}
		if (empty)
			continue;
		/* Every item takes a byte at least. */
		if ((uint64_t)count > (uint64_t)(c->end - c->p))
			return R_TRUNC;
		for (k = 0; k < count; k++) {
			if (map && (rc = rd_len(c, &size)))
				return rc;
			if (map)
				c->p += size;
			if ((rc = skip(c, item, depth + 1)))
				return rc;
		}
	}
}

static int skip(cur_t *c, avro_schema_t s, int depth)
{
	int64_t n;
	size_t i, len;
	int rc;

	if (depth > DEPTH_MAX)
		return R_DEPTH;
	s = deref(s);
	switch (avro_typeof(s)) {
	case AVRO_NULL:
		return 0;
	case AVRO_BOOLEAN:
		if (c->p == c->end)
			return R_TRUNC;
		if (*c->p++ > 1)
			return R_BOOL;
		return 0;
	case AVRO_INT32:
		return rd_int(c, &n);
	case AVRO_INT64:
		return rd_long(c, &n);
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		len = is_avro_float(s) ? 4 : 8;
		if ((size_t)(c->end - c->p) < len)
			return R_TRUNC;
		c->p += len;
		return 0;
	case AVRO_STRING:
	case AVRO_BYTES:
		if ((rc = rd_len(c, &len)))
			return rc;
		c->p += len;
		return 0;
	case AVRO_FIXED:
		len = (size_t)avro_schema_fixed_size(s);
		if ((size_t)(c->end - c->p) < len)
			return R_TRUNC;
		c->p += len;
		return 0;
	case AVRO_ENUM:
		if ((rc = rd_long(c, &n)))
			return rc;
		if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
			return R_ENUM;
		return 0;
	case AVRO_UNION:
		if ((rc = rd_long(c, &n)))
			return rc;
		if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
			return R_BRANCH;
		return skip(c, avro_schema_union_branch(s, (int)n),
			    depth + 1);
	case AVRO_RECORD:
		len = avro_schema_record_size(s);
		for (i = 0; i < len; i++)
			if ((rc = skip(c, avro_schema_record_field_get_by_index(
					       s, (int)i), depth + 1)))
				return rc;
		return 0;
	case AVRO_ARRAY:
		return skip_blocks(c, avro_schema_array_items(s), 0, depth);
	case AVRO_MAP:
		return skip_blocks(c, avro_schema_map_values(s), 1, depth);
	default:
		c->detail = avro_schema_type_name(s);
		return R_NOMATCH;
	}
}

int st_avro_decode(st_avro_decoder_t *d, const uint8_t *body, size_t len,
		   st_value_t *fields, char *errstr, size_t errstr_size)
{
	const op_t *op = NULL;
	uint8_t *nb;
	cur_t c;
	size_t i;
	int rc = 0;

	if (len > d->scratch_cap) {
		if (!(nb = realloc(d->scratch, len)))
			return ST_ENOMEM;
		d->scratch = nb;
		d->scratch_cap = len;
	}
	memcpy(fields, d->init, d->reader->nfields * sizeof(*fields));
	if (!len)
		body = (const uint8_t *)"";
	c.p = body;
	c.end = body + len;
	c.out = d->scratch;
	c.detail = NULL;
	for (i = 0; i < d->nops && !rc; i++) {
		op = &d->ops[i];
		if (op->rindex >= 0)
			rc = rd_conv(&c, &op->conv, &fields[op->rindex]);
		else
			rc = skip(&c, op->wtype, 0);
	}
	if (rc)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "field %s: %s%s%s at byte %zu of %zu",
				 op->name, reasons[rc], c.detail ? " " : "",
				 c.detail ? c.detail : "",
				 (size_t)(c.p - body), len);
	if (c.p != c.end)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "%zu bytes after the end of the record (body "
				 "of %zu bytes)", (size_t)(c.end - c.p), len);
	return 0;
}

/* ---- encoding --------------------------------------------------------- */

static int ekind_init(ekind_t *k, avro_schema_t s)
{
	size_t i;

	k->type = avro_typeof(s);
	if (is_avro_fixed(s))
		k->n = (size_t)avro_schema_fixed_size(s);
	if (!is_avro_enum(s))
		return 0;
	k->n = (size_t)avro_schema_enum_number_of_symbols(s);
	if (!(k->syms = calloc(k->n ? k->n : 1, sizeof(sym_t))))
		return ST_ENOMEM;
	for (i = 0; i < k->n; i++) {
		k->syms[i].s = avro_schema_enum_get(s, (int)i);
		k->syms[i].len = strlen(k->syms[i].s);
	}
	return 0;
}

int st_avro_encoder_new(st_avro_encoder_t **ep, const char *schema_json,
			size_t len, char *errstr, size_t errstr_size)
{
	st_avro_encoder_t *e;
	avro_schema_t rec, t;
	efield_t *f;
	char desc[128];
	size_t i, j;
	int err;

	*ep = NULL;
	if (!(e = calloc(1, sizeof(*e))))
		return ST_ENOMEM;
	if ((err = parse_schema(schema_json, len, "encoder", &e->schema,
				errstr, errstr_size)))
		goto out;
	rec = deref(e->schema);
	e->nfields = avro_schema_record_size(rec);
	if (!(e->fields = calloc(e->nfields, sizeof(*e->fields)))) {
		err = ST_ENOMEM;
		goto out;
	}
	for (i = 0; i < e->nfields; i++) {
		f = &e->fields[i];
		f->name = avro_schema_record_field_name(rec, (int)i);
		t = deref(avro_schema_record_field_get_by_index(rec, (int)i));
		if (!is_supported(t)) {
			err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
					"encoder schema: field %s: "
					"unsupported type %s", f->name,
					type_desc(t, desc, sizeof(desc)));
			goto out;
		}
		f->is_union = is_avro_union(t);
		f->nb = f->is_union ? avro_schema_union_size(t) : 1;
		if (!(f->b = calloc(f->nb ? f->nb : 1, sizeof(*f->b)))) {
			err = ST_ENOMEM;
			goto out;
		}
		for (j = 0; j < f->nb; j++) {
			err = ekind_init(&f->b[j], f->is_union ?
					 deref(avro_schema_union_branch(
						 t, (int)j)) : t);
			if (err)
				goto out;
		}
	}
out:
	if (err)
		st_avro_encoder_free(e);
	else
		*ep = e;
	return err;
}

void st_avro_encoder_free(st_avro_encoder_t *e)
{
	size_t i, j;

	if (!e)
		return;
	for (i = 0; e->fields && i < e->nfields; i++) {
		for (j = 0; e->fields[i].b && j < e->fields[i].nb; j++)
			free(e->fields[i].b[j].syms);
		free(e->fields[i].b);
	}
	free(e->fields);
	if (e->schema)
		avro_schema_decref(e->schema);
	free(e);
}

static void put_bytes(put_t *w, const void *p, size_t n)
{
	if (w->overflow || (size_t)(w->end - w->p) < n) {
		w->overflow = 1;
		return;
	}
	if (n)
		memcpy(w->p, p, n);
	w->p += n;
}

static void put_long(put_t *w, int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	uint8_t b[10];
	size_t n = 0;

	while (u > 0x7f) {
		b[n++] = (uint8_t)(u | 0x80);
		u >>= 7;
	}
	b[n++] = (uint8_t)u;
	put_bytes(w, b, n);
}

static void put_le(put_t *w, uint64_t u, size_t n)
{
	uint8_t b[8];
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(u >> (8 * i));
	put_bytes(w, b, n);
}

/* The enum ordinal of a symbol, or -1. */
static long symbol_index(const ekind_t *k, const st_value_t *v)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (k->syms[i].len == v->len &&
		    !memcmp(k->syms[i].s, v->s, v->len))
			return (long)i;
	return -1;
}

/* Whether a value can be written as type k. */
static int accepts(const ekind_t *k, const st_value_t *v)
{
	switch (v->type) {
	case ST_VAL_NULL:
		return k->type == AVRO_NULL;
	case ST_VAL_BOOL:
		return k->type == AVRO_BOOLEAN;
	case ST_VAL_INT:
		return k->type == AVRO_INT64 ||
		       (k->type == AVRO_INT32 && v->i >= INT32_MIN &&
			v->i <= INT32_MAX);
	case ST_VAL_DOUBLE:
		return k->type == AVRO_DOUBLE || k->type == AVRO_FLOAT;
	case ST_VAL_STRING:
		return k->type == AVRO_STRING || k->type == AVRO_BYTES ||
		       (k->type == AVRO_FIXED && v->len == k->n) ||
		       (k->type == AVRO_ENUM && symbol_index(k, v) >= 0);
	default:
		return 0;
	}
}

static void put_value(put_t *w, const ekind_t *k, const st_value_t *v)
{
	uint32_t u32;
	uint64_t u;
	float f;

	switch (k->type) {
	case AVRO_NULL:
		break;
	case AVRO_BOOLEAN:
		put_le(w, v->i != 0, 1);
		break;
	case AVRO_INT32:
	case AVRO_INT64:
		put_long(w, v->i);
		break;
	case AVRO_FLOAT:
		f = (float)v->d;
		memcpy(&u32, &f, sizeof(u32));
		put_le(w, u32, 4);
		break;
	case AVRO_DOUBLE:
		memcpy(&u, &v->d, sizeof(u));
		put_le(w, u, 8);
		break;
	case AVRO_ENUM:
		put_long(w, symbol_index(k, v));
		break;
	case AVRO_FIXED:
		put_bytes(w, v->s, v->len);
		break;
	default:
		put_long(w, (int64_t)v->len);
		put_bytes(w, v->s, v->len);
		break;
	}
}

static const char *const val_names[] = {
	"null", "boolean", "integer", "double", "string", "unavailable"
};

static const char *val_name(st_val_type_t t)
{
	return (unsigned)t < sizeof(val_names) / sizeof(val_names[0]) ?
	       val_names[t] : "unknown";
}

static const char *kind_name(int type)
{
	switch (type) {
	case AVRO_NULL: return "null";
	case AVRO_BOOLEAN: return "boolean";
	case AVRO_INT32: return "int";
	case AVRO_INT64: return "long";
	case AVRO_FLOAT: return "float";
	case AVRO_DOUBLE: return "double";
	case AVRO_STRING: return "string";
	case AVRO_BYTES: return "bytes";
	case AVRO_ENUM: return "enum";
	default: return "fixed";
	}
}

static int mismatch(const efield_t *f, const st_value_t *v, char *errstr,
		    size_t errstr_size)
{
	const ekind_t *k = &f->b[0];

	if (f->is_union)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "field %s: %s value fits no branch of the "
				 "union", f->name, val_name(v->type));
	if (v->type == ST_VAL_INT && k->type == AVRO_INT32)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "field %s: %lld is out of range for int",
				 f->name, (long long)v->i);
	if (v->type == ST_VAL_STRING && k->type == AVRO_ENUM)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "field %s: \"%.*s\" is not a symbol of the "
				 "enum", f->name,
				 v->len > 64 ? 64 : (int)v->len, v->s);
	if (v->type == ST_VAL_STRING && k->type == AVRO_FIXED)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "field %s: %zu bytes for a fixed of %zu",
				 f->name, v->len, k->n);
	return st_seterr(errstr, errstr_size, ST_EINVAL,
			 "field %s: %s value for type %s", f->name,
			 val_name(v->type), kind_name(k->type));
}

int st_avro_encode(st_avro_encoder_t *e, int32_t schema_id,
		   const st_value_t *fields, size_t nfields, uint8_t *buf,
		   size_t cap, size_t *len, char *errstr,
		   size_t errstr_size)
{
	const efield_t *f;
	uint8_t header[ST_AVRO_HEADER_SIZE];
	put_t w;
	size_t i, b;

	if (nfields != e->nfields)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%zu values for a record of %zu fields",
				 nfields, e->nfields);
	w.p = buf;
	w.end = buf + cap;
	w.overflow = 0;
	header[0] = ST_AVRO_MAGIC;
	header[1] = (uint8_t)((uint32_t)schema_id >> 24);
	header[2] = (uint8_t)((uint32_t)schema_id >> 16);
	header[3] = (uint8_t)((uint32_t)schema_id >> 8);
	header[4] = (uint8_t)schema_id;
	put_bytes(&w, header, sizeof(header));
	for (i = 0; i < nfields; i++) {
		f = &e->fields[i];
		for (b = 0; b < f->nb; b++)
			if (accepts(&f->b[b], &fields[i]))
				break;
		if (b == f->nb)
			return mismatch(f, &fields[i], errstr, errstr_size);
		if (f->is_union)
			put_long(&w, (int64_t)b);
		put_value(&w, &f->b[b], &fields[i]);
	}
	if (w.overflow)
		return st_seterr(errstr, errstr_size, ST_ERANGE,
				 "record does not fit in a buffer of %zu "
				 "bytes", cap);
	*len = (size_t)(w.p - buf);
	return 0;
}
