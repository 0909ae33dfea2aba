/*
 * recommend.h -- the recommendation scoring service behind `strata
 * serve`'s RECOMMEND: every item of the catalogue ranked for one user by
 * an ONNX model.
 *
 * The catalogue is a table of the temporal store (recommend.table,
 * "items" by default): every key whose newest version is not a delete is
 * a candidate. Each candidate is one row of the model's input: a float
 * tensor [N, F] read as st_scorer_t reads it (scorer.h). The model names
 * its F columns in its "strata.features" metadata, and each name says
 * where its value comes from:
 *
 *   ITEMS.COL          column COL of the candidate's row (ITEMS is
 *                      recommend.table)
 *   JOIN.COL           column COL of the row of table JOIN whose key is
 *                      the candidate's column named for JOIN in
 *                      recommend.joins ("merchants:merchant_id": the
 *                      item's merchant)
 *   USERS.COL          column COL of the user's row (USERS is
 *                      recommend.user.table; the key is the entity)
 *   TABLE.COL=TEXT     1 when that column's text is TEXT, else 0: a
 *                      one-hot category (for any of the three above)
 *   a name without a dot
 *                      the field of that name of the user's feature
 *                      vector, as SCORE reads it (st_scorer_row_from_fields)
 *
 * A dotted name whose table is none of the three is refused at start-up
 * (feature names have no dots, so it cannot be a vector's field).
 *
 * A column's number: an integer or a double as it is, a boolean 0 or 1,
 * a string of up to 511 bytes read whole by strtod (Debezium's
 * decimal.handling.mode "string" sends numeric as "12.50"); any other
 * string is NaN. For =TEXT the column's text is compared: a string as it
 * is, an integer in decimal, a boolean "true" or "false"; a double
 * column gives NaN. A column that is null or absent, or a row that is
 * absent, is NaN (missing) either way: what a NaN does is the model's
 * business (scorer.h). A joined row's key is the candidate's column as
 * the pipeline writes keys (st_features_key_text()).
 *
 * Rows are the tables' newest versions (the current catalogue, as the
 * online store holds the newest vector), read in the caller's LMDB read
 * transaction. The candidates' columns (ITEMS and JOIN) are computed when
 * first asked for and kept until the catalogue or a joined table changes
 * (st_temporal_changes(): the windows and offsets `strata run` commits
 * every second do not count); a request then copies them, fills in the
 * user's columns, scores every candidate and keeps the best COUNT:
 * O(N log COUNT) in the catalogue's size N, which
 * recommend.candidates.max bounds.
 *
 * Ranking: highest score first; equal scores in the store's key order
 * (shorter keys first, then bytewise); NaN scores last.
 *
 * Errors: ST_EINVAL (bad configuration: errstr names the setting),
 * ST_EMODEL (the model cannot be loaded, has no feature names, or failed
 * to run), ST_ERANGE (more candidates than recommend.candidates.max),
 * ST_ENOMEM, ST_ESTATE / ST_EPARSE (the state could not be read).
 *
 * Thread: one recommender per thread (it holds a scorer and buffers).
 */
#ifndef ST_RECOMMEND_H
#define ST_RECOMMEND_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "state.h"

/* The settings (config keys in brackets); borrowed for _new() only. */
typedef struct st_recommend_conf {
	const char *model;         /* [recommend.model] the ONNX model */
	const char *table;         /* [recommend.table] the catalogue */
	const char *user_table;    /* [recommend.user.table] */
	const char *joins;         /* [recommend.joins] "TABLE:COLUMN,..."
				    * or NULL / "" */
	size_t candidates_max;     /* [recommend.candidates.max] >= 1 */
} st_recommend_conf_t;

typedef struct st_recommend st_recommend_t;

/* One ranked item: its key (borrowed until the next st_recommend_rank() or
 * st_recommend_destroy()) and its score. */
typedef struct st_recommend_item {
	const char *item;
	size_t item_len;
	float score;
} st_recommend_item_t;

/*
 * Checks conf, loads the model and reads its feature names into column
 * sources (above). st is borrowed until st_recommend_destroy(). Returns
 * 0 and *rp, ST_EINVAL (a malformed recommend.joins, an empty table name,
 * candidates_max 0, a column of a table not configured), ST_EMODEL ("recommend.model PATH: ...", including a
 * model without "strata.features") or ST_ENOMEM, with errstr.
 */
int st_recommend_new(st_recommend_t **rp, st_state_t *st,
		     const st_recommend_conf_t *conf, char *errstr,
		     size_t errstr_size);

/*
 * Ranks the catalogue for the entity `user` (user_len bytes): txn is a
 * read transaction of st (the caller's, open for the call); the user's
 * feature vector is given as nfields name/value pairs (NUL-terminated,
 * borrowed for the call; 0 fields for an entity with no vector). At most
 * `count` items are returned in *out (an array borrowed until the next
 * call), *nout of them: fewer when the catalogue is smaller. *found says
 * whether the user has a row in recommend.user.table; with neither that
 * row nor a vector (nfields 0) nothing is ranked (*nout 0). Returns 0 or
 * an error (above) with errstr.
 */
int st_recommend_rank(st_recommend_t *r, MDB_txn *txn, const char *user,
		      size_t user_len, size_t nfields,
		      const char *const *names, const char *const *values,
		      size_t count, const st_recommend_item_t **out,
		      size_t *nout, int *found, char *errstr,
		      size_t errstr_size);

/* What the recommender has done (for metrics): the items of the
 * catalogue at the last build of their columns (recommend.candidates.max
 * + 1 when it was over: the build stops there; those read before a
 * failure), how many builds were attempted (failed ones included: a
 * failed build is tried again at the next request), and how long the
 * last one took (seconds). */
typedef struct st_recommend_stats {
	size_t items;
	uint64_t builds;
	double build_seconds;
} st_recommend_stats_t;

void st_recommend_stats(const st_recommend_t *r, st_recommend_stats_t *out);

/* Releases the model and every buffer. NULL is allowed. */
void st_recommend_destroy(st_recommend_t *r);

#endif
