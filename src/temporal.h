/*
 * temporal.h -- versioned temporal tables in LMDB.
 *
 * Every Debezium change of a row becomes a version of that row, valid from
 * its source commit time (source.ts_ms) until the next version of the same
 * key; a delete ends validity. Versions of one key are ordered by
 * (commit time, LSN). The LMDB key of a version is
 *
 *   u8 tlen | table | u16be klen | key | u64be ~ts_ms | u64be ~lsn
 *
 * so that the versions of a key sit newest first and an as-of lookup
 * (table, key, t) is one B-tree seek: the first entry at or after
 * (table, key, ~t) is the version valid at t. Delivering the same change
 * again writes the same LMDB key: a no-op. Arrival order does not matter.
 *
 * An unchanged TOAST column (Debezium's __debezium_unavailable_value) is
 * stored as a marker meaning "as in the previous version" and resolved
 * against the older versions on every read, so the answer never depends on
 * the order in which changes arrived; the placeholder is never returned.
 *
 * Writes go into the state's open write transaction (state.h).
 */
#ifndef ST_TEMPORAL_H
#define ST_TEMPORAL_H

#include <stddef.h>
#include <stdint.h>

#include "cdc.h"
#include "state.h"

#define ST_TEMPORAL_KEY_MAX 400     /* bytes of a primary key */
#define ST_TEMPORAL_OPEN_END INT64_MAX

typedef struct st_version {
	int64_t valid_from;     /* commit time, ms since the epoch */
	int64_t valid_to;       /* next version's commit time, or OPEN_END */
	int64_t lsn;
	int deleted;            /* a delete: no row from valid_from on */
	uint8_t *row;           /* resolved row (owned by caller); NULL if
				 * deleted */
	size_t row_len;
} st_version_t;

/* What st_temporal_apply() did. */
typedef enum {
	ST_APPLY_STORED = 1,    /* a new version */
	ST_APPLY_DUPLICATE,     /* that exact version was already stored */
	ST_APPLY_IGNORED        /* tombstone, heartbeat, transaction event */
} st_apply_result_t;

/*
 * Applies one decoded CDC message inside the open write transaction.
 * Returns 0 with *result, ST_EINVAL (key too long: errstr says so),
 * ST_EFULL or ST_ESTATE. On an error the caller aborts the transaction.
 */
int st_temporal_apply(st_state_t *st, const st_cdc_msg_t *msg,
		      st_apply_result_t *result, char *errstr,
		      size_t errstr_size);

/*
 * The version of (table, key) valid at t (ms). Returns 0 with *out (free
 * with st_version_clear()), ST_ENOENT when no version is valid at t (none
 * yet, or deleted: then out->deleted is set and out->valid_from says
 * when), or ST_ESTATE/ST_EPARSE.
 */
int st_temporal_asof(st_state_t *st, const char *table, const char *key,
		     size_t key_len, int64_t t, st_version_t *out,
		     char *errstr, size_t errstr_size);

/*
 * Calls fn for every version of (table, key), newest first. The version
 * passed is borrowed for the duration of the call. Returns 0, ST_ENOENT
 * when the key has no version, or the first non-zero value fn returned.
 */
typedef int (*st_version_fn)(const st_version_t *v, void *opaque);
int st_temporal_history(st_state_t *st, const char *table, const char *key,
			size_t key_len, st_version_fn fn, void *opaque,
			char *errstr, size_t errstr_size);

/*
 * Retention: removes, for every key, the versions that ended before
 * `horizon` (ms), keeping the version valid at the horizon with its
 * unchanged-TOAST columns resolved. Works inside the open write
 * transaction on at most `budget` keys starting after *cursor (an opaque
 * position, start with NULL; the call replaces it, caller frees; NULL when
 * the scan has finished). Returns 0 with *removed, ST_EFULL or ST_ESTATE.
 */
int st_temporal_compact(st_state_t *st, int64_t horizon, size_t budget,
			void **cursor, size_t *cursor_len, uint64_t *removed,
			char *errstr, size_t errstr_size);

void st_version_clear(st_version_t *v);

/*
 * The join's fast path: a reader bound to one read transaction, answering
 * as-of lookups without copying. Open it after st_state_read_begin() (or
 * inside the write transaction); rows it returns are borrowed until the
 * next lookup or the end of that transaction.
 */
typedef struct st_temporal_reader st_temporal_reader_t;

/* Returns a reader (free with st_temporal_reader_free()), NULL on ENOMEM. */
st_temporal_reader_t *st_temporal_reader_new(st_state_t *st);
void st_temporal_reader_free(st_temporal_reader_t *r);

/* Binds the reader to txn (a new transaction each batch). */
int st_temporal_reader_bind(st_temporal_reader_t *r, MDB_txn *txn);

/* Must be called when the write transaction the reader was bound to has
 * committed or aborted: LMDB freed the reader's cursor with it. */
void st_temporal_reader_txn_ended(st_temporal_reader_t *r);

#define ST_TEMPORAL_READER_SLOTS 8

/*
 * The row of (table, key) valid at t, with unchanged-TOAST columns
 * resolved. A row that needed resolving is kept in the reader's buffer
 * number `slot` (0 .. ST_TEMPORAL_READER_SLOTS - 1): rows looked up into
 * different slots stay valid together, until the next lookup into the same
 * slot or the end of the transaction. Returns 0 with *row and *row_len
 * borrowed so, ST_ENOENT (no version, or deleted), ST_EINVAL (key too
 * long, bad slot), ST_ESTATE or ST_EPARSE.
 */
int st_temporal_lookup(st_temporal_reader_t *r, int slot, const char *table,
		       const char *key, size_t key_len, int64_t t,
		       const uint8_t **row, size_t *row_len);

/*
 * How many versions of `table` have ever been stored (st_temporal_apply()
 * returning ST_APPLY_STORED), in the transaction the reader is bound to:
 * a change counter, kept in the state's meta database beside the
 * versions and committed with them. Equal counts in two snapshots mean
 * the table's versions did not change between them (retention removes
 * versions without counting: the rows valid at any time since its
 * horizon stay the same). Returns 0 with *count (0 for a table never
 * changed), ST_EINVAL or ST_ESTATE.
 */
int st_temporal_changes(st_temporal_reader_t *r, const char *table,
			uint64_t *count);

/*
 * Calls fn for every key of `table` with a row valid at t (ms), in key
 * order (the LMDB order: shorter keys first, then bytewise), with the
 * key and its row, unchanged-TOAST columns resolved; keys deleted or not
 * yet present at t are skipped. The key and row passed are borrowed for
 * the call; fn may make lookups into every slot but `slot`, which holds
 * the resolved rows of the scan. The reader must be bound. Returns 0,
 * the first non-zero value fn returned, ST_EINVAL (bad table or slot),
 * ST_EPARSE (a corrupt version key) or ST_ESTATE.
 */
typedef int (*st_temporal_scan_fn)(const char *key, size_t key_len,
				   const uint8_t *row, size_t row_len,
				   void *opaque);
int st_temporal_scan(st_temporal_reader_t *r, int slot, const char *table,
		     int64_t t, st_temporal_scan_fn fn, void *opaque);

#endif
