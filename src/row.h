/*
 * row.h -- the compact binary form of one version of a reference-data row.
 *
 * Debezium delivers rows as JSON; strata stores and joins them in this form
 * so that reading one column at join time is a short scan, not a JSON parse.
 *
 *   row   := u8 format(=1) u16le nfields field*
 *   field := u8 type u8 namelen name[namelen] payload
 *   payload: NULL/UNAVAILABLE: none; BOOL: u8; INT: i64le; DOUBLE: f64le;
 *            STRING: u32le len bytes[len]
 *
 * Pure code: no I/O, no logging. Readers check every length, so a corrupt
 * row yields ST_EPARSE, never an out-of-bounds read.
 */
#ifndef ST_ROW_H
#define ST_ROW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "json.h"

typedef enum {
	ST_VAL_NULL = 0,
	ST_VAL_BOOL = 1,
	ST_VAL_INT = 2,
	ST_VAL_DOUBLE = 3,
	ST_VAL_STRING = 4,
	/* Debezium's __debezium_unavailable_value: an unchanged TOAST column.
	 * Never stored: the temporal store replaces it with the previous
	 * version's value (or drops the column when there is none). */
	ST_VAL_UNAVAILABLE = 5
} st_val_type_t;

typedef struct st_value {
	st_val_type_t type;
	int64_t i;          /* BOOL and INT */
	double d;           /* DOUBLE */
	const char *s;      /* STRING: borrowed from the row, not terminated */
	size_t len;
} st_value_t;

/* A growing row; zero-initialise, add fields, take buf, or free it. */
typedef struct st_row_builder {
	uint8_t *buf;
	size_t len, cap;
	unsigned nfields;
} st_row_builder_t;

/* Appends a field. Returns 0, ST_EINVAL (name over 255 bytes, more than
 * 65535 fields) or ST_ENOMEM. */
int st_row_add(st_row_builder_t *b, const char *name, size_t namelen,
	       const st_value_t *v);

/* Finishes the row: *rowp (caller frees) and *lenp. Resets the builder. */
int st_row_finish(st_row_builder_t *b, uint8_t **rowp, size_t *lenp);

void st_row_builder_free(st_row_builder_t *b);

/* Iterates over a row's fields. */
typedef struct st_row_iter {
	const uint8_t *p, *end;
	unsigned left;
} st_row_iter_t;

/* Starts iteration. Returns 0 or ST_EPARSE for a malformed header. */
int st_row_iter_init(st_row_iter_t *it, const uint8_t *row, size_t len);

/* Returns 1 and the next field (name borrowed from the row), 0 at the end,
 * or ST_EPARSE when the row is malformed. */
int st_row_iter_next(st_row_iter_t *it, const char **name, size_t *namelen,
		     st_value_t *v);

/* Finds a column by name. Returns 0, ST_ENOENT or ST_EPARSE. */
int st_row_get(const uint8_t *row, size_t len, const char *name,
	       st_value_t *out);

/* Builds a row from an object of a parsed JSON document, its members in
 * order; objects and arrays inside become strings of compact JSON, the
 * unavailable placeholder becomes ST_VAL_UNAVAILABLE. Returns 0, ST_EINVAL
 * (not an object), ST_ENOMEM, or what st_json_dump() returns. */
int st_row_from_jval(const st_json_t *doc, const st_json_val_t *obj,
		     uint8_t **rowp, size_t *lenp);

/* Returns a new JSON object for a row (caller json_decref()s), or NULL on
 * a malformed row or ENOMEM. */
json_t *st_row_to_json(const uint8_t *row, size_t len);

/* Returns 1 when the row has a field of type ST_VAL_UNAVAILABLE. */
int st_row_has_unavailable(const uint8_t *row, size_t len);

/*
 * Resolves unchanged-TOAST placeholders: each ST_VAL_UNAVAILABLE field of
 * `row` takes the value of the same column in `prev` (dropped when prev is
 * NULL or lacks it). Returns 0 with a new row in *outp (caller frees),
 * ST_EPARSE or ST_ENOMEM.
 */
int st_row_merge_unavailable(const uint8_t *row, size_t len,
			     const uint8_t *prev, size_t prev_len,
			     uint8_t **outp, size_t *out_len);

/* The text Debezium puts in place of an unchanged TOAST column. */
#define ST_DEBEZIUM_UNAVAILABLE "__debezium_unavailable_value"

#endif
