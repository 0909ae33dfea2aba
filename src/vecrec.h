/*
 * vecrec.h -- an entity's newest feature vector as LMDB keeps it, for
 * `strata serve`: the same fields, in the same text, as its Redis hash
 * (_event_time, _seq, features, _stale_join, _score).
 *
 * The field names are not repeated in every record: a layout (every name a
 * record of one feature set may hold, in order) is stored once, and each
 * record names its layout by id and its fields by index into it.
 *
 *   record := u8 ST_VECREC_MAGIC, u32le layout id, varint nfields,
 *             field*, zero*
 *   field  := varint index, varint valuelen, value[valuelen]
 *   layout text := the names joined by '\n' (its id: FNV-1a 32 of it)
 *
 * Varints are LEB128 (7 bits a byte, low first). The zero bytes (fewer than
 * ST_VECREC_ALIGN) pad the record to a size class, so that an entity's
 * successive vectors tend to keep one size and LMDB overwrites them in
 * place.
 *
 * Pure code: no I/O, no logging. Readers check every length and index.
 */
#ifndef ST_VECREC_H
#define ST_VECREC_H

#include <stddef.h>
#include <stdint.h>

#define ST_VECREC_ALIGN 32
#define ST_VECREC_MAGIC 0xf2

typedef struct st_vecrec_layout {
	uint32_t id;
	size_t n;
	const char **names;        /* point into text */
	size_t *lens;
	char *text;                /* names joined by '\n', NUL-terminated */
} st_vecrec_layout_t;

/*
 * A layout of n names (each non-empty, without '\n'). Returns 0 with
 * *out (caller frees with st_vecrec_layout_free), ST_EINVAL for a bad name,
 * or ST_ENOMEM.
 */
int st_vecrec_layout_new(const char *const *names, size_t n,
			 st_vecrec_layout_t **out);

/* The layout whose text is text[0..len). Returns 0 with *out (caller
 * frees), ST_EPARSE for an empty name, or ST_ENOMEM. */
int st_vecrec_layout_parse(const char *text, size_t len,
			   st_vecrec_layout_t **out);

void st_vecrec_layout_free(st_vecrec_layout_t *l);

/* The LMDB meta key a layout is stored under: "vector.layout.<8 hex>". */
void st_vecrec_layout_key(uint32_t id, char *buf, size_t size);

/*
 * Encodes n fields of layout l into buf (cap bytes), padded when cap
 * allows: field i has name l->names[index[i]] and values[i] (value_lens[i]
 * bytes). Returns the length, or 0 when buf is too small or an index is
 * outside the layout. 16 bytes, plus 2 * ST_VECREC_MAX_FIELD and the value
 * a field, plus ST_VECREC_ALIGN, always fit.
 */
#define ST_VECREC_MAX_FIELD 10
size_t st_vecrec_encode(uint8_t *buf, size_t cap,
			const st_vecrec_layout_t *l, size_t n,
			const size_t *index, const char *const *values,
			const size_t *value_lens);

/* The layout id of a record: 0 with *id, or ST_EPARSE. */
int st_vecrec_layout_id(const uint8_t *rec, size_t len, uint32_t *id);

typedef struct st_vecrec_iter {
	const st_vecrec_layout_t *l;
	const uint8_t *p, *end;
	uint64_t left;
} st_vecrec_iter_t;

/* Starts reading a record with its layout l (borrowed while reading; NULL:
 * names are not resolved, *name is NULL). Returns 0, or ST_EPARSE (a
 * corrupt record, or one of another layout). */
int st_vecrec_iter_init(st_vecrec_iter_t *it, const st_vecrec_layout_t *l,
			const uint8_t *rec, size_t len);

/* The number of fields of a record (0 when it does not decode). */
unsigned st_vecrec_count(const uint8_t *rec, size_t len);

/* Returns 1 with the next field (the name borrowed from the layout, the
 * value from the record), 0 at the end, or ST_EPARSE. */
int st_vecrec_next(st_vecrec_iter_t *it, const char **name, size_t *namelen,
		   const char **value, size_t *valuelen);

#endif
