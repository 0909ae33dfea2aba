/*
 * pipeline.h -- `strata run`: the wiring of every stage.
 *
 *   CDC topics --ingest--> temporal store (LMDB)
 *   transactions --avro/registry--> wait for the CDC watermark -->
 *       as-of join (temporal) --> windows --> features -->
 *       Redis (online) + features topic; bad input --> dead-letter topic
 *
 * One thread runs the loop; LMDB holds the versions, the window state and
 * the input offsets, committed together after the batch's Redis writes
 * have been acknowledged. See the README, "Semantics".
 */
#ifndef ST_PIPELINE_H
#define ST_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct st_pipeline st_pipeline_t;

/* Counters, for the periodic report and the metrics endpoint. */
typedef struct st_pipeline_stats {
	uint64_t events_in;        /* transaction messages consumed */
	uint64_t events_out;       /* feature vectors computed */
	uint64_t dead_letters;     /* transaction messages dead-lettered */
	uint64_t late;             /* ... of which: later than allowed */
	uint64_t stale_joins;      /* joined at join.max.wait */
	uint64_t redis_applied;
	uint64_t redis_rejected;   /* older than the stored vector */
	uint64_t redis_coalesced;  /* superseded by a newer vector of the
				    * same entity in the batch */
	uint64_t commits;
	uint64_t aborts;           /* batches thrown away and redone */
	uint64_t corrupt_windows;  /* unreadable window states restarted */
	uint64_t replayed;         /* vectors written by a replay */
} st_pipeline_stats_t;

/* How the pipeline runs; zero for `strata run`. */
typedef struct st_pipeline_opts {
	/*
	 * Replay (`strata replay`): the same code path over the inputs as they
	 * are in Kafka now, from the beginning, with a state of its own
	 * (state.dir), no consumer group, no Redis, no Kafka output and no
	 * dead letters; every feature vector whose event time is in
	 * [from_ms, to_ms) is written to `out` as one JSON object per line,
	 * numbers written as the online store writes them; the run ends once
	 * every transaction partition is processed up to its end offset as it
	 * was at the start.
	 */
	int replay;
	FILE *out;
	int64_t from_ms, to_ms;
} st_pipeline_opts_t;

/*
 * Builds every stage from the configuration: opens LMDB, loads the reader
 * schema and the feature set, connects to Kafka, the registry and Redis,
 * registers the features schema. `opts` may be NULL. Returns 0 and *pp,
 * or an error with errstr naming what failed.
 */
int st_pipeline_new(st_pipeline_t **pp, const st_config_t *conf,
		    const st_pipeline_opts_t *opts, char *errstr,
		    size_t errstr_size);

/* Runs until *stop becomes non-zero (or, replaying, the inputs end), then
 * commits what is done. Returns 0, or an error that stopped the pipeline
 * (logged). */
int st_pipeline_run(st_pipeline_t *p, volatile sig_atomic_t *stop);

const st_pipeline_stats_t *st_pipeline_stats(const st_pipeline_t *p);

/*
 * Loads features.file against the event fields of transactions.schema, as
 * the pipeline does. Returns 0 and *fp (st_features_free()), or an error
 * with errstr.
 */
struct st_features;
int st_features_load_for(const st_config_t *conf, struct st_features **fp,
			 char *errstr, size_t errstr_size);

void st_pipeline_destroy(st_pipeline_t *p);

#endif
