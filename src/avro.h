/*
 * avro.h -- Confluent-framed Avro: frames, schema resolution, decoding and
 * encoding of flat records.
 *
 * A Kafka message value in the Confluent wire format is
 *
 *   u8 magic(=0) | i32be schema id | Avro binary body
 *
 * where the id names the writer schema in a schema registry (registry.h).
 * strata reads every writer version with one reader schema of its own
 * (schemas/transaction.avsc), following Avro's schema resolution: writer
 * fields unknown to the reader are skipped, reader fields absent from the
 * writer take their default, enum symbols are matched by name, numbers are
 * promoted (int -> long -> float -> double) and unions are resolved branch
 * by branch.
 *
 * Schemas are parsed with avro-c. Bodies are decoded by a plan compiled
 * once per (writer, reader) pair: no allocation per decode, every length
 * checked against the bytes left, so that a truncated or corrupt body is
 * ST_EPARSE and never an out-of-bounds read or a huge allocation. (avro-c's
 * own resolved writer is not used for decoding: in 1.11 it ignores
 * defaults, maps enums by ordinal, allocates twice per string and
 * allocates whatever a length prefix claims.)
 *
 * The reader schema must be a record whose fields are null, boolean, int,
 * long, float, double, string, bytes, enum, fixed or unions of these; each
 * decodes into one st_value_t (row.h):
 *   int, long (also timestamp-millis)  ST_VAL_INT
 *   float, double                      ST_VAL_DOUBLE
 *   string, bytes, fixed               ST_VAL_STRING
 *   enum                               ST_VAL_STRING holding the symbol
 *   boolean                            ST_VAL_BOOL (i = 0 or 1)
 *   null, a union's null branch        ST_VAL_NULL
 *   a union's other branches           that branch's value
 * Writer fields that are skipped may be of any type.
 *
 * Pure code: no I/O, no logging. Objects are not thread-safe: use one
 * decoder or encoder per thread (a reader may be shared once built).
 */
#ifndef ST_AVRO_H
#define ST_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "row.h"

#define ST_AVRO_MAGIC 0x00
#define ST_AVRO_HEADER_SIZE 5   /* magic + schema id */

/*
 * Splits a Confluent frame. On success *schema_id is the writer schema id
 * and *body / *body_len point into buf (borrowed from the caller). Returns
 * 0 or ST_EPARSE (NULL or empty value, shorter than the header, magic byte
 * other than 0x00).
 */
int st_avro_frame_parse(const void *buf, size_t len, int32_t *schema_id,
			const uint8_t **body, size_t *body_len, char *errstr,
			size_t errstr_size);

/* The reader schema, with the default values of its fields. */
typedef struct st_avro_reader st_avro_reader_t;

/*
 * Parses the reader schema JSON text (len bytes, need not be terminated).
 * Returns 0 and *rp (free with st_avro_reader_free() after every decoder
 * built on it), ST_ESCHEMA (not valid Avro, not a record, a field of an
 * unsupported type, a default that does not match its field) or
 * ST_ENOMEM, with errstr.
 */
int st_avro_reader_new(st_avro_reader_t **rp, const char *reader_json,
		       size_t len, char *errstr, size_t errstr_size);

/* NULL is allowed. */
void st_avro_reader_free(st_avro_reader_t *r);

/* Number of top-level fields: the size of the array st_avro_decode()
 * fills. */
size_t st_avro_reader_nfields(const st_avro_reader_t *r);

/* Index of a top-level field, or ST_ENOENT. */
int st_avro_reader_field(const st_avro_reader_t *r, const char *name);

/* Name of field i (< nfields), borrowed until st_avro_reader_free(). */
const char *st_avro_reader_field_name(const st_avro_reader_t *r, size_t i);

/* The resolution of one writer schema to the reader schema. */
typedef struct st_avro_decoder st_avro_decoder_t;

/*
 * Parses a writer schema (as the registry returned it) and resolves it to
 * the reader. The reader is borrowed and must outlive the decoder.
 * Returns 0 and *dp (free with st_avro_decoder_free()), ST_ESCHEMA when
 * the writer schema does not parse or cannot be read with the reader
 * (errstr names the field: a type that does not promote, a reader field
 * without default missing from the writer, a different record name), or
 * ST_ENOMEM.
 */
int st_avro_decoder_new(st_avro_decoder_t **dp,
			const st_avro_reader_t *reader,
			const char *writer_json, size_t len, char *errstr,
			size_t errstr_size);

/* NULL is allowed. */
void st_avro_decoder_free(st_avro_decoder_t *d);

/*
 * Decodes one Avro body (the frame without its header) into fields[i] for
 * every reader field i; fields must hold st_avro_reader_nfields() values.
 * Strings are borrowed from the decoder until its next decode or its
 * free; they are not NUL-terminated. The body must be consumed exactly.
 * Returns 0, ST_EPARSE (truncated or corrupt body, trailing bytes, an
 * enum symbol or union branch the reader lacks: errstr names the field
 * and the byte offset) or ST_ENOMEM. On error fields holds nothing
 * usable.
 */
int st_avro_decode(st_avro_decoder_t *d, const uint8_t *body, size_t len,
		   st_value_t *fields, char *errstr, size_t errstr_size);

/* Writes flat records in the Confluent frame. */
typedef struct st_avro_encoder st_avro_encoder_t;

/*
 * Parses the schema of the records to write. Its top-level fields must be
 * of the types listed above. Returns 0 and *ep (free with
 * st_avro_encoder_free()), ST_ESCHEMA or ST_ENOMEM.
 */
int st_avro_encoder_new(st_avro_encoder_t **ep, const char *schema_json,
			size_t len, char *errstr, size_t errstr_size);

/* NULL is allowed. */
void st_avro_encoder_free(st_avro_encoder_t *e);

/*
 * Writes magic, schema_id and the body of one record into buf (cap bytes)
 * and its size to *len. fields[i] is the value of the i-th field in schema
 * order: ST_VAL_INT for int, long and timestamp-millis; ST_VAL_DOUBLE for
 * double and float; ST_VAL_STRING for string, bytes, fixed (exact size)
 * and enum (a symbol); ST_VAL_BOOL for boolean; ST_VAL_NULL for null. A
 * union takes the null branch for ST_VAL_NULL, else its first branch that
 * accepts the value. Returns 0, ST_EINVAL (nfields is not the schema's,
 * a value of the wrong type, out of range for int, an unknown symbol:
 * errstr names the field) or ST_ERANGE (cap too small). On error buf
 * holds nothing usable.
 */
int st_avro_encode(st_avro_encoder_t *e, int32_t schema_id,
		   const st_value_t *fields, size_t nfields, uint8_t *buf,
		   size_t cap, size_t *len, char *errstr,
		   size_t errstr_size);

#endif
