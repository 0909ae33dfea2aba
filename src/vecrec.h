/*
 * vecrec.h -- an entity's newest feature vector as LMDB keeps it, for
 * `strata serve`: the same fields, in the same text, as its Redis hash
 * (features, _event_time, _seq, _stale_join, _score).
 *
 *   record := u16le nfields, field*, zero*
 *   field  := u8 namelen, name[namelen], u32le valuelen, value[valuelen]
 *
 * The zero bytes (fewer than ST_VECREC_ALIGN) pad the record to a size
 * class, so that an entity's successive vectors tend to keep one size.
 *
 * Pure code: no I/O, no logging. Readers check every length.
 */
#ifndef ST_VECREC_H
#define ST_VECREC_H

#include <stddef.h>
#include <stdint.h>

#define ST_VECREC_ALIGN 64

/*
 * Encodes n fields into buf (cap bytes), padded when cap allows. Returns
 * the length, or 0 when buf is too small or a name is longer than 255
 * bytes.
 */
size_t st_vecrec_encode(uint8_t *buf, size_t cap, size_t n,
			const char *const *names, const char *const *values,
			const size_t *value_lens);

typedef struct st_vecrec_iter {
	const uint8_t *p, *end;
	unsigned left;
} st_vecrec_iter_t;

/* Starts reading a record. Returns 0, or ST_EPARSE (a corrupt record). */
int st_vecrec_iter_init(st_vecrec_iter_t *it, const uint8_t *rec,
			size_t len);

/* The number of fields of the record being read. */
unsigned st_vecrec_count(const uint8_t *rec, size_t len);

/* Returns 1 with the next field (borrowed from the record), 0 at the end,
 * or ST_EPARSE. */
int st_vecrec_next(st_vecrec_iter_t *it, const char **name, size_t *namelen,
		   const char **value, size_t *valuelen);

#endif
