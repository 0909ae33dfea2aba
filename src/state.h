/*
 * state.h -- the LMDB environment that holds all of strata's state.
 *
 * One environment under `state.dir` holds the temporal tables
 * (temporal.h), the window state and the consumed input offsets. They
 * change inside one write transaction, so that offsets and the state they
 * produced are committed together: after a crash, processing resumes from
 * the offsets of the last commit and nothing is lost or applied twice.
 *
 * Threads: one writer (the pipeline thread). Readers in other processes
 * (`strata asof`) open the same directory read-only.
 */
#ifndef ST_STATE_H
#define ST_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

typedef struct st_state st_state_t;

enum {
	ST_STATE_READONLY = 1,
	ST_STATE_NOSYNC = 2,     /* no fsync per commit (MDB_NOSYNC) */
	ST_STATE_WRITEMAP = 4    /* pages written in the map (MDB_WRITEMAP) */
};

/*
 * Opens (creating when writable) the environment in `dir`. Returns 0 and
 * *sp (close with st_state_close()), or ST_EIO / ST_ESTATE with errstr.
 */
int st_state_open(st_state_t **sp, const char *dir, int64_t map_size,
		  int flags, char *errstr, size_t errstr_size);

/* Aborts an open write transaction, then closes. NULL is allowed. */
void st_state_close(st_state_t *st);

/* Translates an LMDB return code: 0, ST_ENOENT, ST_EFULL or ST_ESTATE
 * (errstr gets mdb_strerror() and `what`). */
int st_state_mdb_err(int rc, const char *what, char *errstr,
		     size_t errstr_size);

/*
 * The write transaction. begin() opens one when none is open and is a
 * no-op otherwise; commit() commits and closes it. After any error inside a
 * write transaction the caller must abort(): nothing of it is kept.
 * Returns 0, ST_EFULL (map full: raise state.map.size) or ST_ESTATE.
 */
int st_state_begin(st_state_t *st, char *errstr, size_t errstr_size);
int st_state_commit(st_state_t *st, char *errstr, size_t errstr_size);
void st_state_abort(st_state_t *st);

/* The open write transaction, or NULL. Borrowed until commit/abort. */
MDB_txn *st_state_write_txn(st_state_t *st);

/*
 * A read transaction, renewed on each call and valid until the next call
 * or st_state_read_end(). Values read through it are borrowed until then.
 * Inside a write transaction, returns that transaction instead.
 */
int st_state_read_begin(st_state_t *st, MDB_txn **txnp, char *errstr,
			size_t errstr_size);
void st_state_read_end(st_state_t *st);

/* Named databases, opened once at st_state_open(). */
MDB_dbi st_state_dbi_versions(const st_state_t *st);
MDB_dbi st_state_dbi_entities(const st_state_t *st);
MDB_dbi st_state_dbi_meta(const st_state_t *st);

/*
 * Stores the next offset to consume of one input partition, and one more
 * number that belongs with it (the transaction stream keeps its
 * partition's newest event time there; -1 when unused), inside the open
 * write transaction. Returns 0, ST_EFULL or ST_ESTATE.
 */
int st_state_offset_put(st_state_t *st, const char *topic, int32_t partition,
			int64_t next_offset, int64_t aux, char *errstr,
			size_t errstr_size);

/* Reads the committed next offset and aux (aux may be NULL). Returns 0,
 * ST_ENOENT or ST_ESTATE. */
int st_state_offset_get(st_state_t *st, const char *topic, int32_t partition,
			int64_t *next_offset, int64_t *aux, char *errstr,
			size_t errstr_size);

/*
 * An entity's record in the "entities" database: its window state and its
 * newest feature vector (vecrec.h, kept for strata serve), either of which
 * may be empty:
 *
 *   u32le window length, window bytes, vector bytes
 */
typedef struct st_state_entity {
	const void *win, *vec;
	size_t win_len, vec_len;
} st_state_entity_t;

/* Splits a record's bytes (borrowed by *out). Returns 0 or ST_EPARSE. */
int st_state_entity_split(const void *val, size_t len,
			  st_state_entity_t *out);

/* Reads an entity's record (borrowed until the transaction ends).
 * Returns 0, ST_ENOENT, ST_EPARSE or ST_ESTATE. */
int st_state_entity_get(st_state_t *st, const void *key, size_t key_len,
			st_state_entity_t *out, char *errstr,
			size_t errstr_size);

/*
 * Makes room for an entity's record inside the write transaction: *win
 * points to win_len bytes for the window state, followed by vec_len bytes
 * for the vector, both to fill in place before the next LMDB call (no copy
 * of the record is made first). Returns 0, ST_EFULL or ST_ESTATE.
 */
int st_state_entity_reserve(st_state_t *st, const void *key, size_t key_len,
			    size_t win_len, size_t vec_len, uint8_t **win,
			    char *errstr, size_t errstr_size);

/*
 * Small named values that describe the state (e.g. the window layout):
 * get copies into a new string (caller frees; ST_ENOENT when unset), put
 * writes inside the write transaction.
 */
int st_state_meta_get(st_state_t *st, const char *name, char **value,
		      char *errstr, size_t errstr_size);
int st_state_meta_put(st_state_t *st, const char *name, const char *value,
		      char *errstr, size_t errstr_size);

/* Map use: bytes used by pages and the map size; reader slots in use. */
int st_state_usage(st_state_t *st, int64_t *used, int64_t *size,
		   int *readers, int *max_readers);

#endif
