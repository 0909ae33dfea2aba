/*
 * json.h -- a JSON reader for the Debezium messages strata consumes.
 *
 * One pass over the bytes fills a flat array of values: no allocation per
 * value, strings without escapes point into the input. It accepts exactly
 * what jansson's json_loadb() accepts with JSON_REJECT_DUPLICATES |
 * JSON_ALLOW_NUL (a top-level object or array, strict RFC 8259 numbers,
 * valid UTF-8, \u0000 inside strings but not in object keys, no duplicate
 * keys, at most 2048 levels of nesting), and reads the same values
 * (integers that fit in int64_t, reals through strtod()); tests/check_json
 * compares the two on random inputs. One difference: a raw NUL byte after
 * a number or literal, which jansson skips, is an error here as it is
 * everywhere else. jansson costs about 100 instructions a
 * byte on a change event whose text columns are long; this reader, a few.
 *
 * Pure code: no I/O, no logging.
 */
#ifndef ST_JSON_H
#define ST_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	ST_JSON_NULL,
	ST_JSON_FALSE,
	ST_JSON_TRUE,
	ST_JSON_INT,
	ST_JSON_REAL,
	ST_JSON_STRING,
	ST_JSON_ARRAY,
	ST_JSON_OBJECT
} st_json_type_t;

/* One value. Index 0 is the document's root, so 0 also means "none". */
typedef struct st_json_val {
	st_json_type_t type;
	uint32_t next;      /* the next element or member of the parent */
	uint32_t first;     /* array, object: the first element or member */
	uint32_t count;     /* array, object: how many */
	const char *key;    /* an object member's name: decoded, no NUL */
	size_t key_len;
	const char *s;      /* string: the decoded bytes, which may hold
			     * NULs and are not NUL-ended; array, object:
			     * the value's text in the input */
	size_t len;
	int64_t i;          /* integer */
	double d;           /* real */
} st_json_val_t;

/* A parsed document. Zero-initialise; reusable; release with
 * st_json_free(). Its strings borrow from the input buffer, which must
 * outlive every use of the document. */
typedef struct st_json {
	st_json_val_t *v;
	size_t n, cap;
	char *str;          /* decoded strings that had escapes */
	size_t str_len, str_cap;
} st_json_t;

/*
 * Parses len bytes. Returns 0, ST_EPARSE with errstr "invalid JSON at byte
 * N: reason" (N counts from 0: where the offending token starts), or
 * ST_ENOMEM.
 */
int st_json_parse(st_json_t *doc, const void *buf, size_t len, char *errstr,
		  size_t errstr_size);

void st_json_free(st_json_t *doc);

/* The root, after a successful parse. */
static inline const st_json_val_t *st_json_root(const st_json_t *doc)
{
	return &doc->v[0];
}

/* An array's or object's first element or member, or NULL. */
static inline const st_json_val_t *st_json_first(const st_json_t *doc,
						 const st_json_val_t *v)
{
	return v->first ? &doc->v[v->first] : NULL;
}

/* The element or member after v, or NULL. */
static inline const st_json_val_t *st_json_next(const st_json_t *doc,
						const st_json_val_t *v)
{
	return v->next ? &doc->v[v->next] : NULL;
}

/* An object's member by name, or NULL (also when v is no object). */
const st_json_val_t *st_json_get(const st_json_t *doc,
				 const st_json_val_t *v, const char *name);

/*
 * An array or object in compact JSON, as jansson's json_dumps() with
 * JSON_COMPACT writes it (which it does: the text is handed to jansson).
 * Returns 0 and *out, a NUL-ended string the caller frees; ST_ENOMEM; or
 * ST_EPARSE should jansson refuse what this reader accepted (a bug: the
 * two are meant to agree).
 */
int st_json_dump(const st_json_val_t *v, char **out);

/* Whether v is a string equal to the NUL-ended s. */
int st_json_streq(const st_json_val_t *v, const char *s);

#endif
