/*
 * features.h -- the declared feature set: parsing and evaluation.
 *
 * A feature file (see examples/fraud.features and the README) declares
 *
 *   entity = user_id                      event field keying windows and
 *                                         the online store
 *   time = event_time                     event field holding event time
 *   dimension user = users(user_id)       as-of join: table users, key =
 *                                         the event's user_id
 *   feature NAME [: string|number] = EXPR
 *
 * EXPR: numbers, 'strings', event fields, DIM.attribute (the dimension's
 * row as of the event's time), earlier features by name, + - * /,
 * comparisons == != < <= > >= (1 or 0), parentheses, and the functions
 *   count() | sum(F) | avg(F) | min(F) | max(F) | distinct(F)
 *       over DURATION [excluding current]     event-time window of the key
 *   seconds_since_previous()                  since the key's previous event
 *   code(EXPR, 'a', 'b', ...)                 index of the value in the list
 * Null propagates: a missing dimension row or attribute, an empty window's
 * avg/min/max, a division by zero, an unknown code() value are null.
 * Text that reads as a number (Debezium's decimals) counts as a number.
 *
 * Pure code: no I/O except st_features_load() reading its file; no
 * logging. A loaded feature set is read-only and may be shared by threads.
 */
#ifndef ST_FEATURES_H
#define ST_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "row.h"
#include "window.h"

#define ST_FEATURES_MAX_DIMS 8

typedef enum {
	ST_FEAT_NUMBER,
	ST_FEAT_STRING
} st_feat_type_t;

typedef struct st_features st_features_t;

/*
 * Parses a feature set. `fields` and `field_types` describe the event
 * (the reader schema's top-level fields). `origin` names the text in
 * errors ("fraud.features"), which read "origin:line: message".
 * Returns 0 and *fp (free with st_features_free()), ST_EINVAL or ST_ENOMEM.
 */
int st_features_parse(st_features_t **fp, const char *text,
		      const char *origin, const char *const *fields,
		      const st_feat_type_t *field_types, size_t nfields,
		      char *errstr, size_t errstr_size);

/* As st_features_parse(), reading the file at path (ST_ENOENT, ST_EIO). */
int st_features_load(st_features_t **fp, const char *path,
		     const char *const *fields,
		     const st_feat_type_t *field_types, size_t nfields,
		     char *errstr, size_t errstr_size);

void st_features_free(st_features_t *f);

size_t st_features_count(const st_features_t *f);
const char *st_features_name(const st_features_t *f, size_t i);
st_feat_type_t st_features_type(const st_features_t *f, size_t i);

/* Event field indexes of the entity and of the event time. */
int st_features_entity_field(const st_features_t *f);
int st_features_time_field(const st_features_t *f);

/* Dimensions: name ("user"), table ("users"), event field of the key. */
size_t st_features_ndims(const st_features_t *f);
const char *st_features_dim_name(const st_features_t *f, size_t i);
const char *st_features_dim_table(const st_features_t *f, size_t i);
int st_features_dim_key_field(const st_features_t *f, size_t i);

/* The window aggregates the features use (deduplicated), the number of
 * value slots each window entry stores, and the longest window. */
const st_window_spec_t *st_features_windows(const st_features_t *f,
					    size_t *n);
unsigned st_features_nslots(const st_features_t *f);
int64_t st_features_max_window(const st_features_t *f);

/* Fills the window slots of an event: numbers (NaN for a null or a
 * value that is not a number), or hashes for distinct (0 for null). */
void st_features_slots(const st_features_t *f, const st_value_t *event,
		       st_slot_t *slots);

/* Bytes of text per feature that st_features_eval() may need. */
#define ST_FEATURES_TEXT 32

/*
 * Evaluates every feature of one event. dim_rows[i] / dim_lens[i] hold
 * dimension i's row as of the event's time (NULL when absent); win holds
 * the results of st_features_windows() in order. out[i] is ST_VAL_DOUBLE,
 * ST_VAL_STRING or ST_VAL_NULL, converted to the feature's type (a number
 * for a string feature is written as text into text + i *
 * ST_FEATURES_TEXT; text holds count * ST_FEATURES_TEXT bytes). Strings
 * are borrowed from the event, a row, the feature set or text.
 * Returns 0 or ST_EPARSE (a corrupt dimension row).
 */
int st_features_eval(const st_features_t *f, const st_value_t *event,
		     const uint8_t *const *dim_rows, const size_t *dim_lens,
		     const st_window_result_t *win, st_value_t *out,
		     char *text);

/*
 * A description of the window state layout (value slots and window
 * specs). Window state saved under one layout cannot be read under
 * another; strata keeps it beside the state and refuses to start on a
 * change. Returns a new string (caller frees) or NULL on ENOMEM.
 */
char *st_features_layout(const st_features_t *f);

/*
 * The Avro schema of the feature vectors (JSON text, caller frees):
 * record strata.Features with entity (string), event_time
 * (timestamp-millis), source_partition, source_offset, stale_join, then
 * one field per feature, ["null", "double"] or ["null", "string"] with
 * default null. Returns NULL on ENOMEM.
 */
char *st_features_avro_schema(const st_features_t *f);

/*
 * Writes a value as the online store and the exported data hold it:
 * numbers in the shortest form that reads back to the same double
 * (integers without a fraction), strings as they are. Returns the length
 * written (snprintf semantics), 0 for null.
 */
size_t st_features_format(const st_value_t *v, char *buf, size_t size);

/* An integer in decimal, as st_features_format() writes it, fast. */
size_t st_features_format_int(int64_t v, char *buf, size_t size);

/* The text of a field used as a key (an entity, a dimension's or a joined
 * row's key), as the temporal store's keys are written: a string as it
 * is; an integer or boolean in decimal; a double as "%.17g". Returns its
 * length with *out (v's string, or buf of size bytes), or 0 for null and
 * other types. */
size_t st_features_key_text(const st_value_t *v, char *buf, size_t size,
			    const char **out);

#endif
