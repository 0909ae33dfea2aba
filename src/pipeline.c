/* pipeline.c -- the run loop: inputs, the temporal join, windows,
 * features and outputs, committed together. */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "avro.h"
#include "dlq.h"
#include "error.h"
#include "features.h"
#include "ingest.h"
#include "kafka.h"
#include "log.h"
#include "observe.h"
#include "online.h"
#include "registry.h"
#include "scorer.h"
#include "state.h"
#include "temporal.h"
#include "timefmt.h"
#include "vecrec.h"
#include "window.h"

#define CONSUME_MAX 512        /* messages taken from Kafka per pass */
/* How long the broker must say the transaction stream's topic does not
 * exist before strata believes it (librdkafka's default
 * topic.metadata.propagation.max.ms: a broker can answer from stale
 * metadata for a while). */
#define INPUT_GONE_AFTER_US 30000000
#define ENTITY_MAX 256
#define CACHE_BLOCK 4096      /* window cache entries per allocation */
#define PREFETCH_FAR 8        /* events ahead: the index cell (see prefetch_far) */
#define PREFETCH_NEAR 4       /* events ahead: the entry */
#define PREFETCH_CLOSE 2      /* events ahead: the entry's window arrays */
#define SORT_DIRTY_FROM 1024  /* dirty states a full write sorts first */
#define FRESH_MAX 4096        /* freshness samples per Redis flush */
#define WRITE_BEHIND_BELOW 64 /* a pass of fewer events is light */
#define WRITE_BEHIND_MAX 256  /* window states written after a light pass */
/* The loop waits 1 ms for input; after IDLE_PASSES passes in a row with
 * nothing to do, IDLE_WAIT_MS (librdkafka's wake-up through the pipe ends
 * the wait early when it fires, which 2.0.x does not always do). */
#define IDLE_PASSES 8
#define IDLE_WAIT_MS 10

/* Why a message is a dead letter. */
typedef enum {
	K_EVENT = 0,
	K_DEAD
} pending_kind_t;

typedef struct pending {
	struct pending *next;
	pending_kind_t kind;
	rd_kafka_message_t *rkm;   /* owned until processed */
	int64_t schema_id;
	int64_t event_time;
	int64_t arrived_us;
	int newest;                /* its entity's newest: 1, 0, -1 unknown */
	uint64_t hash;             /* its entity key's key_hash(), 0: not yet */
	const char *entity;        /* its entity key (see entity_of) */
	size_t elen;
	char ebuf[32];             /* the key, when formatted from a number */
	st_value_t *fields;        /* decoded event; strings in buf */
	char *buf;
	size_t buf_cap;
	char reason[16];           /* K_DEAD */
	char message[400];
} pending_t;

typedef struct {
	int32_t partition;
	int64_t next_offset;       /* after the last processed message */
	int64_t max_ts;            /* newest event time processed, or -1 */
	int64_t consumed;          /* after the last message taken in */
	st_metrics_gauge_t *lag, *wm_delay;
	int64_t quiet_until;       /* output before it is already in Kafka */
	int dirty;
} part_t;

typedef struct {
	int32_t id;
	st_avro_decoder_t *dec;    /* NULL: unusable, see error */
	char *error;
	int unknown;               /* the registry does not know the id */
} schema_slot_t;

/* The newest feature vector of an entity in the current batch: only it
 * reaches Redis (the store keeps the newest vector per entity anyway), and
 * it is formatted as text only then. Strings live in the batch arena. */
typedef struct {
	size_t entity_off, elen;
	uint64_t hash;
	size_t entry;              /* its window cache entry's number */
	int64_t event_time, seq;
	int stale;
	int newest;                /* see pending_t; LMDB's copy is not read */
	long row;                  /* its score row, or -1 */
} vec_t;

/* One event to score: its features as the model's row, and where it came
 * from (the arena holds the entity). */
typedef struct {
	size_t entity_off, elen;
	int64_t event_time, offset;
	int32_t partition;
	int quiet;                 /* answered before a crash: no output */
} score_row_t;

/* A Kafka output held while a commit is in flight: its key, then its
 * value, at off in the held bytes. */
typedef struct {
	const char *topic;         /* the configuration's string */
	size_t off, klen, vlen;
} held_t;

/* A partition a transaction delivered to, at the first offset it got
 * there: rkt, as librdkafka delivered it, finds it again; topic names
 * it once the handle is gone. */
typedef struct {
	const void *rkt;
	char topic[256];
	int32_t partition;
	int64_t offset;
} probe_t;

/* The Kafka half of a commit (exactly.once): what it sends, and on the
 * commit thread, how it went. */
typedef struct {
	pthread_t thread;
	int running;               /* handed to the thread, not yet joined */
	atomic_int done;           /* the thread is finished */
	int err;
	char errstr[1024];
	rd_kafka_topic_partition_list_t *sent, *cdc;
	rd_kafka_consumer_group_metadata_t *gmd, *cdc_gmd;
	int moved;                 /* read back under the stream's group */
	uint64_t redis;            /* the Redis queue with the batch's last writes */
} kcommit_t;

#define KEY_INLINE 32          /* keys up to this long live in the entry */

/* An entity in memory: its window state and the vector kept for it in
 * LMDB (vecrec.h; vec_len 0: none), written together (state.h). What a
 * look-up compares (hash, length, a short key) shares the entry's first
 * cache line: a look-up of a random entity among 100,000 touches the
 * index cell and that line, not also a key allocated elsewhere. */
typedef struct {
	_Alignas(64) uint64_t hash;
	size_t klen;
	char *key;                 /* kin, or a copy of a longer key */
	char kin[KEY_INLINE];
	size_t num;                /* its number in the cache */
	st_window_key_t win;
	uint8_t *vec;
	size_t vec_len, vec_cap;
	int dirty;
} wentry_t;

struct st_pipeline {
	const st_config_t *conf;
	st_state_t *st;
	st_ingest_t *in;
	rd_kafka_t *consumer, *producer;
	rd_kafka_queue_t *cqueue;
	st_registry_t *reg;
	st_avro_reader_t *reader;
	schema_slot_t *schemas;
	size_t nschemas;
	st_features_t *f;
	/* Two Redis queues: while one is sent and Redis works on it, the
	 * next pass fills the other (in_flight: the one sent, or NULL). */
	st_online_t *online, *online_spare, *in_flight;
	st_avro_encoder_t *fenc;
	int32_t fschema_id;
	st_temporal_reader_t *treader;
	MDB_txn *treader_txn;

	size_t nfields;
	int tfield, efield;
	const st_window_spec_t *wins;
	size_t nwins;
	unsigned nslots;

	part_t *parts;
	size_t nparts;
	pending_t *head, *tail, *spare;
	size_t npending;

	/* The window cache: entries numbered in the order they came, in
	 * blocks of CACHE_BLOCK that never move, found through an
	 * open-addressing index of entry numbers + 1 (0: empty cell) that
	 * is at most half full. */
	wentry_t **cache;
	size_t cache_count, cache_blocks;
	uint32_t *cache_index;
	size_t cache_cap;          /* cells of the index, a power of two */
	size_t *dirty;             /* entry numbers of dirty cache entries */
	size_t ndirty, dirty_cap;

	rd_kafka_message_t *blocked;   /* waiting for the schema registry */
	int64_t retry_at_us;
	int redis_down;
	volatile sig_atomic_t *stop;
	int eos;                    /* exactly.once: Kafka transactions */
	st_pipeline_opts_t opts;
	st_observe_t *obs;
	st_metrics_counter_t *m_in, *m_out, *m_dlq_out;
	int map_full;               /* stalled on a full LMDB map */
	unsigned sample;            /* stage timing: every 16th event */
	int64_t pass_us;            /* monotonic time of this pass */
	int64_t *replay_end;        /* per partition index: end offset */
	int txn_open;
	int txn_abort_again;     /* an abort failed retriably: call it again */
	int quiet;                  /* the entry in hand was answered before */
	atomic_int fatal;           /* an error that stops the loop */
	/* The consumer reported a partition or topic unknown: from then
	 * (input_suspect_us) the broker's metadata is asked every second
	 * (next at input_check_us) until it shows the topic again, or says
	 * it does not exist after INPUT_GONE_AFTER_US: input_gone. */
	atomic_int input_missing;
	int64_t input_suspect_us, input_check_us;
	int input_gone;
	int input_assigned;         /* the topic's partitions were assigned:
				     * it existed (one missing at start is
				     * waited for) */
	uint64_t undelivered;       /* delivery failures since the last commit */
	/* Every partition the open transaction delivered to, each at one
	 * offset: whether Kafka kept the transaction reads there, and what
	 * Kafka may have left open of it is there (repair_transaction()). */
	probe_t *probes;
	size_t nprobes, probes_cap;
	int probes_short;           /* one could not be noted (no memory) */
	int repairing;              /* deliveries of the repair: no probes */
	int64_t batch_start_us;
	size_t batch_events;
	/* The commit thread's: while it runs, the next batch goes on in
	 * memory, its Kafka output held, nothing written to LMDB. */
	kcommit_t kc;
	held_t *held;
	size_t nheld, held_cap;
	char *hbuf;
	size_t hlen, hcap;
	void *compact_cursor;
	size_t compact_cursor_len;
	int64_t compact_at_us;
	int pipefd[2];

	st_pipeline_stats_t stats;
	st_ingest_stats_t cdc;
	size_t cdc_quiet_n;      /* CDC partitions whose quiet_until is read */

	/* event times of the vectors in the Redis queue (freshness), and in
	 * the queue in flight */
	int64_t fresh[FRESH_MAX], fresh_sent[FRESH_MAX];
	size_t fresh_n, fresh_sent_n;
	uint64_t redis_sent, redis_acked;   /* Redis queues sent, answered */

	/* this batch's vectors for Redis */
	vec_t *vecs;
	st_value_t *vvals;         /* nvecs x features; strings: offset in i */
	size_t nvecs, vcap;
	uint32_t *vmap;            /* open addressing: vector index + 1 */
	size_t vmap_cap;
	char *arena;
	size_t alen, acap;

	/* scoring: every event's row, scored once per pass */
	st_scorer_t *scorer;
	long *score_col;           /* model column -> feature index, or -1 */
	size_t score_nf;
	float *rows;
	float *scores;
	score_row_t *srows;
	size_t nrows, rows_cap;
	st_metrics_counter_t *m_scores_out, *m_alerts_out;

	/* per-event scratch */
	st_value_t *out;
	st_window_result_t *results;
	st_slot_t *slots;
	char **names, **values;
	size_t *value_lens;
	size_t *vidx;              /* the fields' indexes in vlayout */
	st_vecrec_layout_t *vlayout;  /* of the vectors kept in LMDB */
	char *fmt;                 /* value text, 64 bytes per feature */
	char *text;                /* st_features_eval()'s text */
	st_value_t *record;
	uint8_t *enc;
	size_t enc_cap;
};

/* ---- window cache ----------------------------------------------------- */

static uint64_t key_hash(const char *k, size_t n)
{
	return st_window_hash(k, n) | 1;
}

/* Puts entry number num (from 0) with hash h into an index of cap cells
 * (a power of two, never full) of entry numbers + 1, 0 marking an empty
 * cell: the window cache's and the batch's vectors'. */
static void index_put(uint32_t *index, size_t cap, uint64_t h, size_t num)
{
	size_t j = h & (cap - 1);

	while (index[j])
		j = (j + 1) & (cap - 1);
	index[j] = (uint32_t)num + 1;
}

/* Entry number i of the window cache. */
static inline wentry_t *cache_at(const st_pipeline_t *p, size_t i)
{
	return &p->cache[i / CACHE_BLOCK][i % CACHE_BLOCK];
}

/*
 * Makes room for one more entry: a new block of entries when the last is
 * full (entries never move), and when the index would be more than half
 * full, an index twice the size, rebuilt from the entries' hashes at 4
 * bytes a cell. Growing the cache used to move every entry into a new
 * table twice its size: a pass that crossed 65,536 entities spent 50 to
 * 130 ms in it (perf, 20,000 events/s, every event a new user).
 */
static int cache_grow(st_pipeline_t *p)
{
	if (p->cache_count == p->cache_blocks * CACHE_BLOCK) {
		wentry_t **nb = realloc(p->cache, (p->cache_blocks + 1) *
					sizeof(*nb));

		if (!nb)
			return ST_ENOMEM;
		p->cache = nb;
		if (!(nb[p->cache_blocks] = aligned_alloc(_Alignof(wentry_t),
							  CACHE_BLOCK *
							  sizeof(**nb))))
			return ST_ENOMEM;
		p->cache_blocks++;
	}
	if (p->dirty_cap < p->cache_blocks * CACHE_BLOCK) {
		/* Room for every entry: an entry is listed once. */
		size_t n = p->dirty_cap ? p->dirty_cap * 2 : CACHE_BLOCK;
		size_t *nd = realloc(p->dirty, n * sizeof(*nd));

		if (!nd)
			return ST_ENOMEM;
		p->dirty = nd;
		p->dirty_cap = n;
	}
	if ((p->cache_count + 1) * 2 > p->cache_cap) {
		size_t ncap = p->cache_cap ? p->cache_cap * 2 : 4096;
		uint32_t *ni;

		if (ncap > (size_t)UINT32_MAX)
			return ST_ENOMEM;
		if (!(ni = calloc(ncap, sizeof(*ni))))
			return ST_ENOMEM;
		for (size_t i = 0; i < p->cache_count; i++)
			index_put(ni, ncap, cache_at(p, i)->hash, i);
		free(p->cache_index);
		p->cache_index = ni;
		p->cache_cap = ncap;
	}
	return 0;
}

static void cache_clear(st_pipeline_t *p)
{
	for (size_t i = 0; i < p->cache_count; i++) {
		wentry_t *e = cache_at(p, i);

		if (e->key != e->kin)
			free(e->key);
		free(e->vec);
		st_window_key_free(&e->win);
	}
	if (p->cache_index)
		memset(p->cache_index, 0, p->cache_cap * sizeof(*p->cache_index));
	p->cache_count = 0;
	p->ndirty = 0;
}

/* The index cell of an entity: the one holding its entry's number, or
 * the empty cell where it would go. */
static uint32_t *cache_slot(st_pipeline_t *p, const char *key, size_t klen,
			    uint64_t h)
{
	size_t j;

	for (j = h & (p->cache_cap - 1); p->cache_index[j];
	     j = (j + 1) & (p->cache_cap - 1)) {
		const wentry_t *e = cache_at(p, p->cache_index[j] - 1);

		if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen))
			break;
	}
	return &p->cache_index[j];
}

/* Copies the kept vector of an entity read from LMDB into its entry. */
static int cache_take_vector(wentry_t *e, const st_state_entity_t *rec)
{
	if (rec->vec_len > e->vec_cap) {
		uint8_t *nv = realloc(e->vec, rec->vec_len);

		if (!nv)
			return ST_ENOMEM;
		e->vec = nv;
		e->vec_cap = rec->vec_len;
	}
	if (rec->vec_len)
		memcpy(e->vec, rec->vec, rec->vec_len);
	e->vec_len = rec->vec_len;
	return 0;
}

/* The window state of an entity: from the cache, else LMDB, else new. */
static int cache_get(st_pipeline_t *p, const char *key, size_t klen,
		     uint64_t h, wentry_t **ep, char *errstr,
		     size_t errstr_size)
{
	st_state_entity_t rec;
	uint32_t *slot;
	wentry_t *e;
	char *kcopy;
	int err;

	if ((err = cache_grow(p)))
		return err;
	slot = cache_slot(p, key, klen, h);
	if (*slot) {
		*ep = cache_at(p, *slot - 1);
		return 0;
	}
	e = cache_at(p, p->cache_count);
	if (klen <= KEY_INLINE)
		kcopy = e->kin;
	else if (!(kcopy = malloc(klen)))
		return ST_ENOMEM;
	memcpy(kcopy, key, klen);
	memset(&e->num, 0, sizeof(*e) - offsetof(wentry_t, num));
	e->key = kcopy;
	e->num = p->cache_count;
	e->klen = klen;
	e->hash = h;
	st_window_key_init(&e->win, p->nslots);
	*slot = (uint32_t)++p->cache_count;
	err = st_state_entity_get(p->st, key, klen, &rec, errstr,
				  errstr_size);
	if (err == ST_ENOENT) {
		err = 0;
	} else if (err == ST_EPARSE ||
		   (!err && rec.win_len &&
		    st_window_decode(&e->win, rec.win, rec.win_len))) {
		st_log(ST_LOG_ERR, "window", "window state of entity %.*s is "
		       "corrupt; starting it afresh", (int)klen, key);
		st_window_key_free(&e->win);
		p->stats.corrupt_windows++;
		err = 0;
	} else if (!err) {
		err = cache_take_vector(e, &rec);
	}
	*ep = e;
	return err;
}

static int cache_write_entry(st_pipeline_t *p, size_t idx, char *errstr,
			     size_t errstr_size)
{
	wentry_t *e = cache_at(p, idx);
	size_t win_len = st_window_encoded_len(&e->win);
	uint8_t *dst;
	int err;

	/* Encoded straight into LMDB's room for the record. */
	err = st_state_entity_reserve(p->st, e->key, e->klen, win_len,
				      e->vec_len, &dst, errstr, errstr_size);
	if (err)
		return err;
	st_window_encode_into(&e->win, dst);
	if (e->vec_len)
		memcpy(dst + win_len, e->vec, e->vec_len);
	e->dirty = 0;
	return 0;
}

/* A dirty entry's place in key order: its key's first 8 bytes. */
typedef struct {
	uint64_t prefix;
	size_t idx;
} keyed_t;

static int keyed_cmp(const void *a, const void *b)
{
	uint64_t x = ((const keyed_t *)a)->prefix, y = ((const keyed_t *)b)->prefix;

	return (x > y) - (x < y);
}

/*
 * Puts the dirty list in (roughly) LMDB's key order, last key first, as
 * the writes pop it from the end: a batch's thousands of puts of random
 * entities then walk the tree in order, and keys that share a leaf page
 * follow each other. Keys that share their first 8 bytes keep any order,
 * which is correct, only less local. Out of memory, the order stays.
 */
static void dirty_sort(st_pipeline_t *p)
{
	keyed_t *kd = malloc(p->ndirty * sizeof(*kd));
	size_t i, j;

	if (!kd)
		return;
	for (i = 0; i < p->ndirty; i++) {
		const wentry_t *e = cache_at(p, p->dirty[i]);
		uint64_t x = 0;

		for (j = 0; j < 8; j++)
			x = x << 8 | (j < e->klen ? (unsigned char)e->key[j] : 0);
		kd[i].prefix = x;
		kd[i].idx = p->dirty[i];
	}
	qsort(kd, p->ndirty, sizeof(*kd), keyed_cmp);
	for (i = 0; i < p->ndirty; i++)
		p->dirty[p->ndirty - 1 - i] = kd[i].idx;
	free(kd);
}

/* Writes up to max of the batch's dirty window states into the open LMDB
 * transaction: all of them (max SIZE_MAX), in key order when there are
 * many; else the most recently dirtied first (the write-behind of a light
 * pass, which stays short). */
static int cache_write_dirty(st_pipeline_t *p, size_t max, char *errstr,
			     size_t errstr_size)
{
	if (max == SIZE_MAX && p->ndirty >= SORT_DIRTY_FROM)
		dirty_sort(p);
	for (size_t k = 0; k < max && p->ndirty; k++) {
		int err;

		/* The entry a few writes on: its key and window header. */
		if (p->ndirty > PREFETCH_NEAR) {
			const char *w = (const char *)cache_at(p,
				p->dirty[p->ndirty - 1 - PREFETCH_NEAR]);

			__builtin_prefetch(w);
			__builtin_prefetch(w + 64);
		}
		err = cache_write_entry(p, p->dirty[p->ndirty - 1], errstr,
					errstr_size);
		if (err)
			return err;
		p->ndirty--;
	}
	return 0;
}

/* ---- partitions ------------------------------------------------------- */

static part_t *find_part(st_pipeline_t *p, int32_t partition)
{
	for (size_t i = 0; i < p->nparts; i++)
		if (p->parts[i].partition == partition)
			return &p->parts[i];
	return NULL;
}

/*
 * The eviction horizon of an entity: no later event of its partition can
 * have a window reaching back to it. An entity's events all come from one
 * partition (the topic is keyed by entity; see the README).
 */
static int64_t evict_horizon(const st_pipeline_t *p, const part_t *pt)
{
	if (!pt || pt->max_ts < 0)
		return INT64_MIN;
	return pt->max_ts - p->conf->window_lateness_ms -
	       st_features_max_window(p->f);
}

/* ---- pending events --------------------------------------------------- */

static pending_t *pending_new(st_pipeline_t *p)
{
	pending_t *e = p->spare;

	if (e) {
		p->spare = e->next;
	} else {
		e = calloc(1, sizeof(*e));
		if (!e)
			return NULL;
		e->fields = calloc(p->nfields, sizeof(*e->fields));
		if (!e->fields) {
			free(e);
			return NULL;
		}
	}
	e->next = NULL;
	e->kind = K_EVENT;
	e->rkm = NULL;
	e->schema_id = -1;
	e->hash = 0;
	e->reason[0] = e->message[0] = '\0';
	return e;
}

static void pending_release(st_pipeline_t *p, pending_t *e)
{
	if (e->rkm)
		rd_kafka_message_destroy(e->rkm);
	e->rkm = NULL;
	e->next = p->spare;
	p->spare = e;
}

static void pending_push(st_pipeline_t *p, pending_t *e)
{
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	p->npending++;
}

static pending_t *pending_pop(st_pipeline_t *p)
{
	pending_t *e = p->head;

	p->head = e->next;
	if (!p->head)
		p->tail = NULL;
	p->npending--;
	return e;
}

/* Copies the decoded strings into the entry: the decoder reuses its own. */
static int pending_own_strings(pending_t *e, size_t nfields)
{
	size_t need = 0, off = 0;

	for (size_t i = 0; i < nfields; i++)
		if (e->fields[i].type == ST_VAL_STRING)
			need += e->fields[i].len + 1;
	if (need > e->buf_cap) {
		char *nb = realloc(e->buf, need);

		if (!nb)
			return ST_ENOMEM;
		e->buf = nb;
		e->buf_cap = need;
	}
	for (size_t i = 0; i < nfields; i++) {
		st_value_t *v = &e->fields[i];

		if (v->type != ST_VAL_STRING)
			continue;
		memcpy(e->buf + off, v->s, v->len);
		e->buf[off + v->len] = '\0';
		v->s = e->buf + off;
		off += v->len + 1;
	}
	return 0;
}

static void dead(pending_t *e, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void dead(pending_t *e, const char *reason, const char *fmt, ...)
{
	va_list ap;

	e->kind = K_DEAD;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* ---- decoding --------------------------------------------------------- */

/*
 * The decoder of a writer schema id, fetched from the registry once.
 * Returns 0 (*slotp set; its dec is NULL when the schema cannot be read
 * with strata's reader schema), ST_ENOENT (unknown id) or ST_ENET.
 */
static int schema_for(st_pipeline_t *p, int32_t id, schema_slot_t **slotp,
		      char *errstr, size_t errstr_size)
{
	const char *json;
	schema_slot_t *s;
	char why[400];
	size_t len;
	int err;

	for (size_t i = 0; i < p->nschemas; i++) {
		if (p->schemas[i].id == id) {
			*slotp = &p->schemas[i];
			return 0;
		}
	}
	err = st_registry_get(p->reg, id, &json, &len, why, sizeof(why));
	if (err == ST_ENET || err == ST_ENOMEM) {
		st_seterr(errstr, errstr_size, err, "%s", why);
		return err;
	}
	s = realloc(p->schemas, (p->nschemas + 1) * sizeof(*s));
	if (!s)
		return ST_ENOMEM;
	p->schemas = s;
	s = &p->schemas[p->nschemas++];
	s->id = id;
	s->dec = NULL;
	s->error = NULL;
	s->unknown = 0;
	if (err) {
		/* Unknown, not Avro, or an unreadable answer: remembered, so
		 * the registry is asked once. */
		s->error = strdup(why);
		s->unknown = err == ST_ENOENT;
	} else if (st_avro_decoder_new(&s->dec, p->reader, json, len, why,
				       sizeof(why))) {
		s->dec = NULL;
		s->error = strdup(why);
		st_log(ST_LOG_WARNING, "avro", "schema id %d cannot be read: %s",
		       id, why);
	} else {
		st_log(ST_LOG_INFO, "avro", "schema id %d: reading with strata's "
		       "reader schema", id);
	}
	*slotp = s;
	return 0;
}

/*
 * Turns a message into a pending entry: a decoded event or a dead letter.
 * Returns 0, or ST_ENET when the registry is unreachable (the message is
 * kept by the caller and tried again).
 */
/* decode_message()'s work, timed by it. */
static int decode_body(st_pipeline_t *p, rd_kafka_message_t *rkm,
		       pending_t *e, char *errstr, size_t errstr_size)
{
	const uint8_t *body;
	schema_slot_t *slot;
	char why[400];
	size_t body_len;
	int32_t id;
	int err;

	if (st_avro_frame_parse(rkm->payload, rkm->len, &id, &body, &body_len,
				why, sizeof(why))) {
		dead(e, "decode", "%s", why);
		return 0;
	}
	e->schema_id = id;
	err = schema_for(p, id, &slot, why, sizeof(why));
	if (err) {
		st_seterr(errstr, errstr_size, err, "schema registry: %s", why);
		return err;
	}
	if (!slot->dec) {
		dead(e, "schema", slot->unknown ? "unknown schema id %d: %s" :
		     "schema id %d cannot be read with the reader schema: %s",
		     id, slot->error ? slot->error : "?");
		return 0;
	}
	if (st_avro_decode(slot->dec, body, body_len, e->fields, why,
			   sizeof(why))) {
		dead(e, "decode", "schema id %d: %s", id, why);
		return 0;
	}
	if (e->fields[p->tfield].type != ST_VAL_INT) {
		dead(e, "decode", "event time field %s is null",
		     st_avro_reader_field_name(p->reader, (size_t)p->tfield));
		return 0;
	}
	if (e->fields[p->efield].type == ST_VAL_NULL ||
	    (e->fields[p->efield].type == ST_VAL_STRING &&
	     e->fields[p->efield].len > ENTITY_MAX)) {
		dead(e, "key", "entity field %s is null or longer than %d bytes",
		     st_avro_reader_field_name(p->reader, (size_t)p->efield),
		     ENTITY_MAX);
		return 0;
	}
	e->event_time = e->fields[p->tfield].i;
	if (e->event_time < 0) {
		dead(e, "decode", "event time %" PRId64 " is before 1970",
		     e->event_time);
		return 0;
	}
	if (e->event_time > st_time_now_ms() + p->conf->max_future_ms) {
		char t[40];

		dead(e, "future", "event time %s is more than %" PRId64 " ms "
		     "ahead of the clock",
		     st_time_format(e->event_time, t, sizeof(t)),
		     p->conf->max_future_ms);
		return 0;
	}
	return pending_own_strings(e, p->nfields);
}

static int decode_message(st_pipeline_t *p, rd_kafka_message_t *rkm,
			  pending_t *e, char *errstr, size_t errstr_size)
{
	int err;

	e->rkm = rkm;
	e->arrived_us = p->pass_us;
	if ((++p->sample & 15) == 0) {
		int64_t t0 = st_time_mono_us();

		err = decode_body(p, rkm, e, errstr, errstr_size);
		st_metrics_histogram_observe_ns(p->obs->stage[ST_STAGE_DECODE],
			(uint64_t)(st_time_mono_us() - t0) * 1000);
		return err;
	}
	return decode_body(p, rkm, e, errstr, errstr_size);
}

/* Seeks the consumer; every partition's result is checked, and `consumed`
 * follows, so that the messages fetched again are taken in. */
static int seek_parts(st_pipeline_t *p, rd_kafka_topic_partition_list_t *l,
		      char *errstr, size_t errstr_size)
{
	rd_kafka_error_t *kerr = rd_kafka_seek_partitions(p->consumer, l,
							  10000);
	int err = 0;

	if (kerr) {
		err = st_seterr(errstr, errstr_size, ST_EKAFKA, "seek: %s",
				rd_kafka_error_string(kerr));
		rd_kafka_error_destroy(kerr);
		return err;
	}
	for (int i = 0; i < l->cnt; i++) {
		part_t *pt = find_part(p, l->elems[i].partition);

		if (l->elems[i].err)
			return st_seterr(errstr, errstr_size, ST_EKAFKA,
					 "seek %s [%d]: %s", l->elems[i].topic,
					 l->elems[i].partition,
					 rd_kafka_err2str(l->elems[i].err));
		if (pt)
			pt->consumed = l->elems[i].offset < 0 ? 0 :
				       l->elems[i].offset;
	}
	return 0;
}

/* Remembers the lowest offset of a partition to fetch again. */
static void rewind_to(rd_kafka_topic_partition_list_t *l,
		      const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	rd_kafka_topic_partition_t *tp =
		rd_kafka_topic_partition_list_find(l, topic, m->partition);

	if (!tp)
		rd_kafka_topic_partition_list_add(l, topic, m->partition)
			->offset = m->offset;
	else if (m->offset < tp->offset)
		tp->offset = m->offset;
}

/* An error saying a partition or topic of the input is unknown: the
 * topic may have been deleted (see input_topic_gone()). */
static int unknown_input(int err)
{
	return err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
	       err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
	       err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* Takes messages from the transaction consumer into the pending queue. */
static int consume(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	rd_kafka_message_t *msgs[CONSUME_MAX];
	rd_kafka_topic_partition_list_t *rewind;
	ssize_t n;
	int err = 0, taken = 0;

	if (p->blocked) {
		pending_t *e;

		if (st_time_mono_us() < p->retry_at_us)
			return 0;
		e = pending_new(p);
		if (!e)
			return ST_ENOMEM;
		err = decode_message(p, p->blocked, e, errstr, errstr_size);
		if (err) {
			e->rkm = NULL;
			pending_release(p, e);
			p->retry_at_us = st_time_mono_us() + 1000000;
			return err == ST_ENET ? 0 : err;
		}
		st_log(ST_LOG_NOTICE, "avro", "schema registry reachable again");
		p->blocked = NULL;
		pending_push(p, e);
		taken = 1;
	}
	if (p->npending >= (size_t)p->conf->state_commit_events * 4)
		return taken;
	rewind = rd_kafka_topic_partition_list_new(4);
	n = rd_kafka_consume_batch_queue(p->cqueue, 0, msgs, CONSUME_MAX);
	for (ssize_t i = 0; i < n; i++) {
		rd_kafka_message_t *rkm = msgs[i];
		pending_t *e;
		part_t *pt;

		if (p->blocked) {
			/* Behind a blocked message: consume it again later. */
			if (!rkm->err)
				rewind_to(rewind, rkm);
			rd_kafka_message_destroy(rkm);
			continue;
		}
		if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
			char why[512];
			rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(
				p->consumer, why, sizeof(why));

			err = ferr == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID ?
			      ST_EFENCED : ST_EKAFKA;
			st_seterr(errstr, errstr_size, err, "consumer: %s%s",
				  why, err == ST_EFENCED ? " (another consumer "
				  "with the same group.instance.id took over: "
				  "this one stops)" : "");
			p->fatal = err;
			for (; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
			break;
		}
		if (rkm->err) {
			if (unknown_input(rkm->err))
				atomic_store(&p->input_missing, 1);
			if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				st_log(ST_LOG_WARNING, "kafka", "%s",
				       rd_kafka_message_errstr(rkm));
			rd_kafka_message_destroy(rkm);
			continue;
		}
		pt = find_part(p, rkm->partition);
		if (!pt || rkm->offset < pt->consumed) {
			/* Not ours, or fetched again after a seek. */
			rd_kafka_message_destroy(rkm);
			continue;
		}
		pt->consumed = rkm->offset + 1;
		p->stats.events_in++;
		st_metrics_counter_inc(p->m_in);
		e = pending_new(p);
		if (!e) {
			for (ssize_t j = i; j < n; j++)
				rd_kafka_message_destroy(msgs[j]);
			rd_kafka_topic_partition_list_destroy(rewind);
			return ST_ENOMEM;
		}
		err = decode_message(p, rkm, e, errstr, errstr_size);
		if (err == ST_ENET) {
			st_log(ST_LOG_ERR, "avro", "%s; holding the stream and "
			       "retrying every second", errstr);
			e->rkm = NULL;
			pending_release(p, e);
			p->blocked = rkm;
			p->retry_at_us = st_time_mono_us() + 1000000;
			err = 0;
			continue;
		}
		if (err) {
			pending_release(p, e);
			for (ssize_t j = i + 1; j < n; j++)
				rd_kafka_message_destroy(msgs[j]);
			rd_kafka_topic_partition_list_destroy(rewind);
			return err;
		}
		pending_push(p, e);
		taken++;
	}
	if (p->fatal) {
		rd_kafka_topic_partition_list_destroy(rewind);
		if (!err)   /* set elsewhere: the commit thread, a rebalance */
			st_seterr(errstr, errstr_size, p->fatal, "stopping "
				  "after a fatal error (%s)",
				  st_strerror(p->fatal));
		return p->fatal;
	}
	if (p->blocked) {
		/* The blocked message's successors were dropped from memory:
		 * fetch them again. */
		rd_kafka_message_t *b = p->blocked;
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
			rewind, rd_kafka_topic_name(b->rkt), b->partition);

		if (!tp)
			tp = rd_kafka_topic_partition_list_add(rewind,
				rd_kafka_topic_name(b->rkt), b->partition);
		tp->offset = b->offset + 1;
	}
	if (rewind->cnt)
		err = seek_parts(p, rewind, errstr, errstr_size);
	rd_kafka_topic_partition_list_destroy(rewind);
	return err ? err : taken;
}

/* ---- processing ------------------------------------------------------- */

/* Produces, waiting while librdkafka's queue is full. Returns 0 or
 * ST_EKAFKA (the batch must not commit). */
static int produce_now(st_pipeline_t *p, const char *topic, const void *key,
		       size_t klen, const void *val, size_t vlen,
		       char *errstr, size_t errstr_size)
{
	rd_kafka_resp_err_t err;

	while ((err = rd_kafka_producev(p->producer, RD_KAFKA_V_TOPIC(topic),
			RD_KAFKA_V_KEY((void *)key, klen),
			RD_KAFKA_V_VALUE((void *)val, vlen),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
	       !*p->stop)
		rd_kafka_poll(p->producer, 10);
	if (err)
		return st_seterr(errstr, errstr_size, ST_EKAFKA,
				 "cannot produce to %s: %s", topic,
				 rd_kafka_err2str(err));
	return 0;
}

/* Appends n bytes to a buffer of *len bytes that grows (doubling from
 * 64 KiB) as needed: the batch arena's and the held output's. */
static int bytes_add(char **buf, size_t *len, size_t *cap, const void *s,
		     size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 65536;
		char *nb;

		while (ncap < *len + n)
			ncap *= 2;
		if (!(nb = realloc(*buf, ncap)))
			return ST_ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	if (n)
		memcpy(*buf + *len, s, n);
	*len += n;
	return 0;
}

/* Keeps an output for the next transaction: the one open is committing. */
static int hold_output(st_pipeline_t *p, const char *topic, const void *key,
		       size_t klen, const void *val, size_t vlen)
{
	held_t *h;
	size_t off = p->hlen;

	if (p->nheld == p->held_cap) {
		size_t n = p->held_cap ? p->held_cap * 2 : 256;
		held_t *nh = realloc(p->held, n * sizeof(*nh));

		if (!nh)
			return ST_ENOMEM;
		p->held = nh;
		p->held_cap = n;
	}
	if (bytes_add(&p->hbuf, &p->hlen, &p->hcap, key, klen) ||
	    bytes_add(&p->hbuf, &p->hlen, &p->hcap, val, vlen)) {
		p->hlen = off;
		return ST_ENOMEM;
	}
	h = &p->held[p->nheld++];
	h->topic = topic;
	h->off = off;
	h->klen = klen;
	h->vlen = vlen;
	return 0;
}

/* Produces the outputs held while the previous transaction committed
 * into the one now open. */
static int release_held(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	for (size_t k = 0; k < p->nheld; k++) {
		const held_t *h = &p->held[k];
		int err = produce_now(p, h->topic, p->hbuf + h->off, h->klen,
				      p->hbuf + h->off + h->klen, h->vlen,
				      errstr, errstr_size);

		if (err)
			return err;
	}
	p->nheld = 0;
	p->hlen = 0;
	return 0;
}

/* Produces an output of the batch, or holds it while the previous
 * batch's transaction commits. */
static int produce_retry(st_pipeline_t *p, const char *topic,
			 const void *key, size_t klen, const void *val,
			 size_t vlen, char *errstr, size_t errstr_size)
{
	int err;

	if (p->quiet || p->opts.replay)
		return 0;
	if (!p->kc.running)
		return produce_now(p, topic, key, klen, val, vlen, errstr,
				   errstr_size);
	if ((err = hold_output(p, topic, key, klen, val, vlen)))
		return st_seterr(errstr, errstr_size, err, "holding output "
				 "for %s: %s", topic, st_strerror(err));
	return 0;
}

static int commit_collect(st_pipeline_t *p, char *errstr,
			  size_t errstr_size);

static st_dlq_reason_t reason_of(const char *reason)
{
	for (int r = 0; r < ST_DLQ_REASONS; r++)
		if (!strcmp(reason, st_observe_reason((st_dlq_reason_t)r)))
			return (st_dlq_reason_t)r;
	return ST_DLQ_DECODE;
}

static int send_dead_letter(st_pipeline_t *p, pending_t *e, char *errstr,
			    size_t errstr_size)
{
	rd_kafka_message_t *m = e->rkm;
	st_dlq_origin_t o = {rd_kafka_topic_name(m->rkt), m->partition,
			     m->offset, e->schema_id, m->key, m->key_len,
			     m->payload, m->len};
	int err;

	p->stats.dead_letters++;
	st_metrics_counter_inc(p->obs->dlq[reason_of(e->reason)]);
	if (p->quiet || p->opts.replay)
		return 0;
	/* Rare: waits for the transaction in flight instead of holding. */
	if (p->kc.running &&
	    ((err = commit_collect(p, errstr, errstr_size)) ||
	     (err = st_state_begin(p->st, errstr, errstr_size))))
		return err;
	st_log(ST_LOG_WARNING, "pipeline", "%s [%d] @%" PRId64 ": %s: %s; "
	       "sent to %s", o.topic, o.partition, o.offset, e->reason,
	       e->message, p->conf->dlq_topic);
	while ((err = st_dlq_send(p->producer, p->conf->dlq_topic, &o,
				  e->reason, e->message)) == ST_EAGAIN &&
	       !*p->stop)
		rd_kafka_poll(p->producer, 10);
	if (err)
		return st_seterr(errstr, errstr_size, err, "cannot send a dead "
				 "letter to %s: %s", p->conf->dlq_topic,
				 st_strerror(err));
	st_metrics_counter_inc(p->m_dlq_out);
	return 0;
}

/* Its entity key and the key's hash, worked out once per event: by the
 * look-ahead (prefetch_far) or, for the last few of a pass, when it is
 * processed. */
static void entity_of(const st_pipeline_t *p, pending_t *e)
{
	if (e->hash)
		return;
	e->elen = st_features_key_text(&e->fields[p->efield], e->ebuf,
				       sizeof(e->ebuf), &e->entity);
	e->hash = key_hash(e->entity, e->elen);
}

static int encode_features(st_pipeline_t *p, pending_t *e, const char *entity,
			   size_t elen, int stale, size_t *lenp);

static int arena_add(st_pipeline_t *p, const char *s, size_t n,
		     size_t *off)
{
	*off = p->alen;
	return bytes_add(&p->arena, &p->alen, &p->acap, s, n);
}

static int vmap_grow(st_pipeline_t *p)
{
	size_t ncap = p->vmap_cap ? p->vmap_cap * 2 : 1024;
	uint32_t *nm = calloc(ncap, sizeof(*nm));

	if (!nm)
		return ST_ENOMEM;
	for (size_t i = 0; i < p->nvecs; i++)
		index_put(nm, ncap, p->vecs[i].hash, i);
	free(p->vmap);
	p->vmap = nm;
	p->vmap_cap = ncap;
	return 0;
}

/* Keeps the event's vector if it is its entity's newest in the batch;
 * entry is the entity's number in the window cache. */
static int stage_vector(st_pipeline_t *p, pending_t *e, const char *entity,
			size_t elen, size_t entry, int stale)
{
	size_t nf = st_features_count(p->f), j;
	uint64_t h = e->hash;
	int64_t seq = e->rkm->offset;
	st_value_t *vals;
	vec_t *v = NULL;
	int err;

	if ((p->nvecs + 1) * 2 > p->vmap_cap && (err = vmap_grow(p)))
		return err;
	for (j = h & (p->vmap_cap - 1); p->vmap[j]; j = (j + 1) & (p->vmap_cap - 1)) {
		vec_t *c = &p->vecs[p->vmap[j] - 1];

		if (c->hash == h && c->elen == elen &&
		    !memcmp(p->arena + c->entity_off, entity, elen)) {
			v = c;
			break;
		}
	}
	if (v && (e->event_time < v->event_time ||
		  (e->event_time == v->event_time && seq < v->seq))) {
		p->stats.redis_coalesced++;
		st_metrics_counter_inc(p->obs->redis_superseded);
		return 0;   /* an older vector: Redis would refuse it */
	}
	if (v) {
		p->stats.redis_coalesced++;   /* the one it replaces */
		st_metrics_counter_inc(p->obs->redis_superseded);
	}
	if (!v) {
		if (p->nvecs == p->vcap) {
			size_t ncap = p->vcap ? p->vcap * 2 : 256;
			vec_t *nv = realloc(p->vecs, ncap * sizeof(*nv));
			st_value_t *nvv;

			if (!nv)
				return ST_ENOMEM;
			p->vecs = nv;
			nvv = realloc(p->vvals, ncap * nf * sizeof(*nvv));
			if (!nvv)
				return ST_ENOMEM;
			p->vvals = nvv;
			p->vcap = ncap;
		}
		v = &p->vecs[p->nvecs];
		if ((err = arena_add(p, entity, elen, &v->entity_off)))
			return err;
		v->elen = elen;
		v->hash = h;
		v->entry = entry;
		p->vmap[j] = (uint32_t)++p->nvecs;
	}
	v->event_time = e->event_time;
	v->seq = seq;
	v->stale = stale;
	v->newest = e->newest;
	v->row = p->scorer ? (long)p->nrows - 1 : -1;
	vals = p->vvals + (size_t)(v - p->vecs) * nf;
	for (size_t i = 0; i < nf; i++) {
		size_t off;

		vals[i] = p->out[i];
		if (vals[i].type != ST_VAL_STRING)
			continue;
		if ((err = arena_add(p, p->out[i].s, p->out[i].len, &off)))
			return err;
		vals[i].s = NULL;
		vals[i].i = (int64_t)off;
	}
	return 0;
}

/* Keeps the event's features as the model's input row, to be scored with
 * the rest of the pass. */
static int add_score_row(st_pipeline_t *p, pending_t *e, const char *entity,
			 size_t elen)
{
	score_row_t *r;
	float *row;
	int err;

	if (p->nrows == p->rows_cap) {
		size_t ncap = p->rows_cap ? p->rows_cap * 2 : 256;
		float *nr = realloc(p->rows, ncap * p->score_nf * sizeof(*nr));
		float *ns;
		score_row_t *nm;

		if (!nr)
			return ST_ENOMEM;
		p->rows = nr;
		if (!(ns = realloc(p->scores, ncap * sizeof(*ns))))
			return ST_ENOMEM;
		p->scores = ns;
		if (!(nm = realloc(p->srows, ncap * sizeof(*nm))))
			return ST_ENOMEM;
		p->srows = nm;
		p->rows_cap = ncap;
	}
	row = p->rows + p->nrows * p->score_nf;
	for (size_t j = 0; j < p->score_nf; j++) {
		const st_value_t *v = p->score_col[j] < 0 ? NULL :
				      &p->out[p->score_col[j]];

		row[j] = v && v->type == ST_VAL_DOUBLE ? (float)v->d : NAN;
	}
	r = &p->srows[p->nrows];
	if ((err = arena_add(p, entity, elen, &r->entity_off)))
		return err;
	r->elen = elen;
	r->event_time = e->event_time;
	r->offset = e->rkm->offset;
	r->partition = e->rkm->partition;
	r->quiet = p->quiet;
	p->nrows++;
	return 0;
}

/* One score as JSON on the scores or alerts topic. */
static int produce_score(st_pipeline_t *p, const char *topic,
			 const score_row_t *r, float score,
			 st_metrics_counter_t *out, char *errstr,
			 size_t errstr_size)
{
	char buf[512], num[32];
	int n, err;

	/* Nine significant digits read back to the same float. */
	snprintf(num, sizeof(num), "%.9g", (double)score);
	n = snprintf(buf, sizeof(buf), "{\"entity\":\"%.*s\",\"event_time\":%"
		     PRId64 ",\"source_partition\":%d,\"source_offset\":%"
		     PRId64 ",\"score\":%s,\"model_version\":%" PRId64 "}",
		     (int)r->elen, p->arena + r->entity_off, r->event_time,
		     r->partition, r->offset, num,
		     st_scorer_version(p->scorer));
	if (n < 0 || (size_t)n >= sizeof(buf))
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "score record too long");
	if ((err = produce_retry(p, topic, p->arena + r->entity_off, r->elen,
				 buf, (size_t)n, errstr, errstr_size)))
		return err;
	if (out)
		st_metrics_counter_inc(out);
	return 0;
}

/* Scores every event of the pass, produces scores and alerts. */
static int score_rows(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int64_t t0 = st_time_mono_us();
	int err;

	if (!p->nrows)
		return 0;
	if ((err = st_scorer_score(p->scorer, p->rows, p->nrows, p->scores,
				   errstr, errstr_size)))
		return err;
	st_metrics_histogram_observe_ns(p->obs->stage[ST_STAGE_SCORE],
					(uint64_t)(st_time_mono_us() - t0) * 1000);
	st_metrics_counter_add(p->obs->scores, p->nrows);
	for (size_t i = 0; i < p->nrows; i++) {
		const score_row_t *r = &p->srows[i];
		int alert = p->scores[i] >= p->conf->scorer_threshold;

		if (alert)
			st_metrics_counter_inc(p->obs->alerts);
		if (r->quiet || p->opts.replay)
			continue;
		if (*p->conf->scores_topic &&
		    (err = produce_score(p, p->conf->scores_topic, r,
					 p->scores[i], p->m_scores_out, errstr,
					 errstr_size)))
			return err;
		if (alert && *p->conf->alerts_topic &&
		    (err = produce_score(p, p->conf->alerts_topic, r,
					 p->scores[i], p->m_alerts_out, errstr,
					 errstr_size)))
			return err;
	}
	return 0;
}

/* A record's integer field: its value is not NUL-terminated. */
static int64_t field_int(const char *val, size_t len)
{
	char buf[24];

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, val, len);
	buf[len] = '\0';
	return strtoll(buf, NULL, 10);
}

/*
 * Keeps the entity's newest vector for LMDB too (for `strata serve`): in
 * its cache entry, written with its window state. The guard Redis applies
 * holds: an older (event time, offset) never replaces a newer one; the
 * window state decides it (v->newest), else the kept record's own fields.
 * The n fields are in p->names / values / value_lens, their layout
 * indexes in p->vidx; _event_time and _seq go first.
 */
static int keep_vector(st_pipeline_t *p, const vec_t *v, size_t n)
{
	const char *entity = p->arena + v->entity_off;
	wentry_t *e;
	char et[24], sq[24];
	size_t len, need = 16 + ST_VECREC_ALIGN;

	if (!p->conf->state_vectors)
		return 0;
	/* The event was applied to the entity's window this pass, and the
	 * cache is cleared only with no vector staged: its entry is still
	 * the one staged. */
	e = v->entry < p->cache_count ? cache_at(p, v->entry) : NULL;
	if (!e || e->hash != v->hash || e->klen != v->elen ||
	    memcmp(e->key, entity, v->elen))
		return ST_ESTATE;
	if (!v->newest && e->vec_len)
		return 0;
	if (v->newest < 0 && e->vec_len) {
		st_vecrec_iter_t it;
		const char *nm, *val;
		size_t nl, vl;
		int64_t oet = 0, osq = 0;

		if (!st_vecrec_iter_init(&it, NULL, e->vec, e->vec_len) &&
		    st_vecrec_next(&it, &nm, &nl, &val, &vl) == 1) {
			oet = field_int(val, vl);
			if (st_vecrec_next(&it, &nm, &nl, &val, &vl) == 1)
				osq = field_int(val, vl);
		}
		if (oet > v->event_time || (oet == v->event_time && osq > v->seq))
			return 0;
	}
	memmove(p->vidx + 2, p->vidx, n * sizeof(*p->vidx));
	memmove(p->values + 2, p->values, n * sizeof(*p->values));
	memmove(p->value_lens + 2, p->value_lens, n * sizeof(*p->value_lens));
	p->vidx[0] = 0;
	p->values[0] = et;
	p->value_lens[0] = st_features_format_int(v->event_time, et,
						  sizeof(et));
	p->vidx[1] = 1;
	p->values[1] = sq;
	p->value_lens[1] = st_features_format_int(v->seq, sq, sizeof(sq));
	for (size_t i = 0; i < n + 2; i++)
		need += 2 * ST_VECREC_MAX_FIELD + p->value_lens[i];
	if (need > e->vec_cap) {
		/* The old bytes are not needed (read above): a fresh block,
		 * with room to spare, as the next vectors' lengths vary by a
		 * few bytes (realloc() here was 5% of the loop's samples,
		 * perf). */
		size_t cap = (need + need / 4 + 127) & ~(size_t)127;
		uint8_t *nb = malloc(cap);

		if (!nb)
			return ST_ENOMEM;
		free(e->vec);
		e->vec = nb;
		e->vec_cap = cap;
	}
	len = st_vecrec_encode(e->vec, e->vec_cap, p->vlayout, n + 2, p->vidx,
			       (const char *const *)p->values, p->value_lens);
	memmove(p->vidx, p->vidx + 2, n * sizeof(*p->vidx));
	memmove(p->values, p->values + 2, n * sizeof(*p->values));
	memmove(p->value_lens, p->value_lens + 2, n * sizeof(*p->value_lens));
	if (!len) {
		e->vec_len = 0;   /* what the buffer held is overwritten */
		return ST_EINVAL;
	}
	e->vec_len = len;
	if (!e->dirty) {
		p->dirty[p->ndirty++] = e->num;
		e->dirty = 1;
	}
	return 0;
}

/* Reads the replies to (or sends and reads) the writes of queue o, whose
 * event times are fresh[0..*fresh_n), and counts what they did. */
static int online_done(st_pipeline_t *p, st_online_t *o, int64_t *fresh,
		       size_t *fresh_n, char *errstr, size_t errstr_size)
{
	uint64_t applied = 0, rejected = 0;
	int err = st_online_flush(o, &applied, &rejected, errstr,
				  errstr_size);

	p->stats.redis_applied += applied;
	p->stats.redis_rejected += rejected;
	st_metrics_counter_add(p->obs->redis_written, applied);
	st_metrics_counter_add(p->obs->redis_older, rejected);
	if (!err) {
		/* Freshness: event time to acknowledged write. */
		int64_t now = st_time_now_ms();

		for (size_t k = 0; k < *fresh_n; k++)
			st_metrics_histogram_observe(p->obs->freshness,
				(double)(now - fresh[k]) / 1000.0);
		*fresh_n = 0;
	}
	return err;
}

/* Reads Redis's replies up to queue number upto: written before LMDB
 * says the batch is done. */
static int redis_answered(st_pipeline_t *p, uint64_t upto, char *errstr,
			  size_t errstr_size)
{
	int err;

	if (!p->in_flight || p->redis_acked >= upto)
		return 0;
	err = online_done(p, p->in_flight, p->fresh_sent, &p->fresh_sent_n,
			  errstr, errstr_size);
	if (!err) {
		p->in_flight = NULL;
		p->redis_acked = p->redis_sent;
	}
	return err;
}

/*
 * Formats the batch's vectors, queues them, sends them to Redis and
 * returns: the next call reads the replies (Redis works while the next
 * pass runs), or redis_answered(). A queue in flight is always finished
 * first. The online store keeps what it could not send and resends it
 * next time.
 */
static int flush_online(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	size_t nf = st_features_count(p->f);
	int64_t t0;
	int err = 0;

	if (!p->online)
		return 0;
	if (p->scorer && (err = score_rows(p, errstr, errstr_size)))
		return err;
	for (size_t k = 0; k < p->nvecs && !err; k++) {
		const vec_t *v = &p->vecs[k];
		const st_value_t *vals = p->vvals + k * nf;
		size_t n = 0;

		/* keep_vector() reads a random entry and its vector: load
		 * those of a vector a few places ahead meanwhile. */
		if (p->conf->state_vectors && k + PREFETCH_NEAR < p->nvecs &&
		    p->vecs[k + PREFETCH_NEAR].entry < p->cache_count)
			__builtin_prefetch(cache_at(p, p->vecs[k +
						PREFETCH_NEAR].entry));

		for (size_t i = 0; i < nf; i++) {
			if (vals[i].type == ST_VAL_NULL)
				continue;
			p->names[n] = (char *)st_features_name(p->f, i);
			p->vidx[n] = i + 2;
			if (vals[i].type == ST_VAL_STRING) {
				p->values[n] = p->arena + vals[i].i;
				p->value_lens[n] = vals[i].len;
			} else {
				p->values[n] = p->fmt + i * 64;
				p->value_lens[n] = st_features_format(&vals[i],
							p->values[n], 64);
			}
			n++;
		}
		p->names[n] = "_stale_join";
		p->vidx[n] = nf + 2;
		p->values[n] = v->stale ? "1" : "0";
		p->value_lens[n++] = 1;
		if (v->row >= 0) {
			p->names[n] = "_score";
			p->vidx[n] = nf + 3;
			p->values[n] = p->fmt + nf * 64;
			p->value_lens[n] = (size_t)snprintf(p->values[n], 64,
				"%.9g", (double)p->scores[v->row]);
			n++;
		}
		if (p->fresh_n < FRESH_MAX)
			p->fresh[p->fresh_n++] = v->event_time;
		if ((err = keep_vector(p, v, n)))
			break;
		err = st_online_queue(p->online, p->arena + v->entity_off,
				      v->elen, v->event_time, v->seq, n,
				      (const char *const *)p->names,
				      (const char *const *)p->values,
				      p->value_lens);
	}
	if (err)
		return st_seterr(errstr, errstr_size, err, "online store: %s",
				 st_strerror(err));
	p->nvecs = 0;
	p->nrows = 0;
	p->alen = 0;
	if (p->vmap)
		memset(p->vmap, 0, p->vmap_cap * sizeof(*p->vmap));
	t0 = st_time_mono_us();
	/* The queue in flight first (its replies), then this pass's. */
	err = redis_answered(p, p->redis_sent, errstr, errstr_size);
	if (!err && st_online_pending(p->online)) {
		if (!(err = st_online_send(p->online, errstr, errstr_size))) {
			p->redis_sent++;
			p->in_flight = p->online;
			p->online = p->online_spare;
			p->online_spare = p->in_flight;
			memcpy(p->fresh_sent, p->fresh,
			       p->fresh_n * sizeof(*p->fresh));
			p->fresh_sent_n = p->fresh_n;
			p->fresh_n = 0;
		}
	}
	st_metrics_histogram_observe_ns(p->obs->stage[ST_STAGE_REDIS],
					(uint64_t)(st_time_mono_us() - t0) * 1000);
	return err;
}

/* Writes a string as a JSON string. */
static void json_string_out(FILE *fp, const char *s, size_t n)
{
	putc('"', fp);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c < 0x20)
			fprintf(fp, "\\u%04x", c);
		else
			putc(c, fp);
	}
	putc('"', fp);
}

/* One replayed vector, one JSON object on a line. */
static int replay_out(st_pipeline_t *p, pending_t *e, const char *entity,
		      size_t elen, int stale, char *errstr,
		      size_t errstr_size)
{
	FILE *fp = p->opts.out;
	char num[64];

	if (e->event_time < p->opts.from_ms || e->event_time >= p->opts.to_ms)
		return 0;
	fputs("{\"entity\":", fp);
	json_string_out(fp, entity, elen);
	fprintf(fp, ",\"event_time\":%" PRId64 ",\"source_partition\":%d,"
		"\"source_offset\":%" PRId64 ",\"stale_join\":%s",
		e->event_time, e->rkm->partition, e->rkm->offset,
		stale ? "true" : "false");
	for (size_t i = 0; i < st_features_count(p->f); i++) {
		const st_value_t *v = &p->out[i];

		fputs(",", fp);
		json_string_out(fp, st_features_name(p->f, i),
				strlen(st_features_name(p->f, i)));
		putc(':', fp);
		if (v->type == ST_VAL_STRING)
			json_string_out(fp, v->s, v->len);
		else if (st_features_format(v, num, sizeof(num)))
			fputs(num, fp);
		else
			fputs("null", fp);
	}
	fputs("}\n", fp);
	if (ferror(fp))
		return st_seterr(errstr, errstr_size, ST_EIO,
				 "writing the replay output: %s",
				 strerror(errno));
	p->stats.replayed++;
	return 0;
}

/* Writes an event's output; w is its entity's window cache entry. */
static int emit(st_pipeline_t *p, pending_t *e, const char *entity,
		size_t elen, const wentry_t *w, int stale, char *errstr,
		size_t errstr_size)
{
	size_t len = 0;
	int err;

	if (p->opts.replay)
		return replay_out(p, e, entity, elen, stale, errstr,
				  errstr_size);
	if (p->fenc && (err = encode_features(p, e, entity, elen, stale,
					      &len)))
		return err;
	if (p->scorer && (err = add_score_row(p, e, entity, elen)))
		return st_seterr(errstr, errstr_size, err, "scoring: %s",
				 st_strerror(err));
	if ((err = stage_vector(p, e, entity, elen, w->num, stale)))
		return st_seterr(errstr, errstr_size, err, "staging the "
				 "vector: %s", st_strerror(err));
	if (!p->fenc)
		return 0;
	if ((err = produce_retry(p, p->conf->features_topic, entity, elen,
				 p->enc, len, errstr, errstr_size)))
		return err;
	if (!p->quiet)
		st_metrics_counter_inc(p->m_out);
	return 0;
}

/* The features record in the Confluent wire format, into p->enc. Returns
 * 0, ST_EINVAL (a value that does not fit its field: the caller
 * dead-letters the event) or ST_ENOMEM. */
static int encode_features(st_pipeline_t *p, pending_t *e, const char *entity,
			   size_t elen, int stale, size_t *lenp)
{
	size_t nf = st_features_count(p->f);
	int err;

	p->record[0].type = ST_VAL_STRING;
	p->record[0].s = entity;
	p->record[0].len = elen;
	p->record[1].type = ST_VAL_INT;
	p->record[1].i = e->event_time;
	p->record[2].type = ST_VAL_INT;
	p->record[2].i = e->rkm->partition;
	p->record[3].type = ST_VAL_INT;
	p->record[3].i = e->rkm->offset;
	p->record[4].type = ST_VAL_BOOL;
	p->record[4].i = stale;
	memcpy(p->record + 5, p->out, nf * sizeof(*p->out));
	for (;;) {
		uint8_t *nb;

		err = st_avro_encode(p->fenc, p->fschema_id, p->record, nf + 5,
				     p->enc, p->enc_cap, lenp, e->message,
				     sizeof(e->message));
		if (err != ST_ERANGE)
			return err;
		nb = realloc(p->enc, p->enc_cap * 2);
		if (!nb)
			return ST_ENOMEM;
		p->enc = nb;
		p->enc_cap *= 2;
	}
}

static int bind_reader(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	MDB_txn *txn;
	int err;

	if ((err = st_state_begin(p->st, errstr, errstr_size)))
		return err;
	txn = st_state_write_txn(p->st);
	if (txn == p->treader_txn)
		return 0;
	if ((err = st_temporal_reader_bind(p->treader, txn)))
		return st_seterr(errstr, errstr_size, err, "temporal reader: %s",
				 st_strerror(err));
	p->treader_txn = txn;
	return 0;
}

/*
 * Whether an event is its entity's newest by (event time, input position)
 * among the events applied to its window state, which are those whose
 * vectors Redis and LMDB were given: 1, 0 (an older one, out of order), or
 * -1 when the state cannot tell (every entry evicted at that very time).
 */
static int entity_newest(const st_window_key_t *k, int64_t ts, uint64_t seq)
{
	size_t last;

	if (!k->count)
		return ts > k->prev_evicted_ts ? 1 : -1;
	last = k->start + k->count - 1;
	return ts > k->ts[last] || (ts == k->ts[last] && seq >= k->seq[last]);
}

static int process_event(st_pipeline_t *p, pending_t *e, const part_t *pt,
			 int stale, char *errstr, size_t errstr_size)
{
	const uint8_t *rows[ST_FEATURES_MAX_DIMS];
	size_t lens[ST_FEATURES_MAX_DIMS];
	char kbuf[32];
	wentry_t *w;
	int err;

	/* Stage times are sampled: one event in 16 is timed. */
	int timed = (++p->sample & 15) == 0;
	int64_t t0 = timed ? st_time_mono_us() : 0, t1 = 0, t2 = 0, t3;

	for (size_t d = 0; d < st_features_ndims(p->f); d++) {
		const st_value_t *kv = &e->fields[st_features_dim_key_field(p->f,
									    d)];
		const char *key;
		size_t klen = st_features_key_text(kv, kbuf, sizeof(kbuf),
						   &key);

		rows[d] = NULL;
		lens[d] = 0;
		if (kv->type == ST_VAL_NULL)
			continue;
		err = st_temporal_lookup(p->treader, (int)d,
					 st_features_dim_table(p->f, d), key,
					 klen, e->event_time, &rows[d],
					 &lens[d]);
		if (err == ST_ENOENT || err == ST_EINVAL) {
			rows[d] = NULL;
			continue;
		}
		if (err)
			return st_seterr(errstr, errstr_size, err, "as-of "
					 "lookup in %s: %s",
					 st_features_dim_table(p->f, d),
					 st_strerror(err));
	}
	if (timed)
		t1 = st_time_mono_us();
	entity_of(p, e);
	if ((err = cache_get(p, e->entity, e->elen, e->hash, &w, errstr,
			     errstr_size)))
		return err;
	if (!w->dirty)
		p->dirty[p->ndirty++] = w->num;
	e->newest = entity_newest(&w->win, e->event_time,
				  (uint64_t)e->rkm->offset);
	st_features_slots(p->f, e->fields, p->slots);
	err = st_window_add(&w->win, e->event_time,
			    (uint64_t)e->rkm->offset,
			    p->slots, evict_horizon(p, pt), p->wins, p->nwins,
			    p->results);
	if (err)
		return err;
	w->dirty = 1;
	if (timed)
		t2 = st_time_mono_us();
	if ((err = st_features_eval(p->f, e->fields, rows, lens, p->results,
				    p->out, p->text)))
		return st_seterr(errstr, errstr_size, err, "evaluating "
				 "features: a corrupt dimension row");
	if (timed) {
		t3 = st_time_mono_us();
		st_metrics_histogram_observe_ns(p->obs->stage[ST_STAGE_JOIN],
						(uint64_t)(t1 - t0) * 1000);
		st_metrics_histogram_observe_ns(p->obs->stage[ST_STAGE_WINDOW],
						(uint64_t)(t2 - t1) * 1000);
		st_metrics_histogram_observe_ns(
			p->obs->stage[ST_STAGE_FEATURES],
			(uint64_t)(t3 - t2) * 1000);
	}
	p->stats.events_out++;
	if (stale) {
		p->stats.stale_joins++;
		st_metrics_counter_inc(p->obs->stale_joins);
	}
	return emit(p, e, e->entity, e->elen, w, stale, errstr, errstr_size);
}

/*
 * Loads ahead of time the window cache memory the events ahead will touch.
 * The entity of a backlog's next event is a random one of many: its index
 * cell and then its entry are cache misses, one after the other, that
 * stalled the loop (perf: the index probe was the loop's hottest spot).
 * An event PREFETCH_FAR places ahead gets its hash and its index cell
 * loaded; one PREFETCH_NEAR ahead, whose cell is then in the cache, its
 * entry's first two lines (the key, the window state's header); one
 * PREFETCH_CLOSE ahead, whose entry is then in the cache, the start of its
 * window's arrays (times, positions, slot values).
 */

static void prefetch_far(st_pipeline_t *p, pending_t *e)
{
	if (!e || e->kind != K_EVENT || !p->cache_cap)
		return;
	entity_of(p, e);
	__builtin_prefetch(&p->cache_index[e->hash & (p->cache_cap - 1)]);
}

/* The entry in the first index cell of e's entity (most often its own,
 * else a neighbour's: only memory to load), or NULL. */
static const wentry_t *first_cell_entry(const st_pipeline_t *p,
					const pending_t *e)
{
	uint32_t i;

	if (!e || !e->hash || !p->cache_cap)
		return NULL;
	i = p->cache_index[e->hash & (p->cache_cap - 1)];
	return i && i <= p->cache_count ? cache_at(p, i - 1) : NULL;
}

static void prefetch_near(const st_pipeline_t *p, const pending_t *e)
{
	const char *w = (const char *)first_cell_entry(p, e);

	if (w) {
		__builtin_prefetch(w);
		__builtin_prefetch(w + 64);
	}
}

static void prefetch_close(const st_pipeline_t *p, const pending_t *e)
{
	const wentry_t *w = first_cell_entry(p, e);
	const st_window_key_t *k;
	const char *s;
	size_t n, off;

	if (!w || !w->win.ts)
		return;
	k = &w->win;
	__builtin_prefetch(k->ts + k->start);
	__builtin_prefetch(k->seq + k->start);
	s = (const char *)(k->slots + k->start * k->nslots);
	n = k->count * k->nslots * sizeof(*k->slots);
	for (off = 0; off < n && off < 256; off += 64)
		__builtin_prefetch(s + off);
}

static pending_t *ahead(pending_t *e, int n)
{
	while (e && n-- > 0)
		e = e->next;
	return e;
}

/* Processes pending entries in order while they are ready. */
static int process_ready(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int64_t cdc_wm = st_ingest_watermark(p->in), now = st_time_mono_us();
	pending_t *soon = ahead(p->head, PREFETCH_CLOSE);
	pending_t *near = ahead(soon, PREFETCH_NEAR - PREFETCH_CLOSE);
	pending_t *far = ahead(near, PREFETCH_FAR - PREFETCH_NEAR);
	int done = 0, err;

	for (pending_t *f = p->head; f && f != far; f = f->next)
		prefetch_far(p, f);
	while (p->head &&
	       p->batch_events < (size_t)p->conf->state_commit_events) {
		pending_t *e = p->head;
		part_t *pt = find_part(p, e->rkm->partition);
		int stale = 0;

		prefetch_far(p, far);
		prefetch_near(p, near);
		prefetch_close(p, soon);
		far = far ? far->next : NULL;
		near = near ? near->next : NULL;
		soon = soon ? soon->next : NULL;

		if (e->kind == K_EVENT && pt && pt->max_ts >= 0 &&
		    e->event_time < pt->max_ts - p->conf->window_lateness_ms) {
			char t1[40], t2[40];

			dead(e, "late", "event time %s is more than %" PRId64
			     " ms behind the partition's newest %s",
			     st_time_format(e->event_time, t1, sizeof(t1)),
			     p->conf->window_lateness_ms,
			     st_time_format(pt->max_ts, t2, sizeof(t2)));
			p->stats.late++;
			st_metrics_counter_inc(p->obs->late);
		}
		if (e->kind == K_EVENT && e->event_time > cdc_wm) {
			/* CDC is not read while a commit is in flight. */
			if (p->kc.running || now - e->arrived_us <
			    p->conf->join_max_wait_ms * 1000)
				break;   /* the CDC stream has not passed it */
			stale = 1;
		}
		if ((err = bind_reader(p, errstr, errstr_size)))
			return err;
		pending_pop(p);
		p->quiet = pt && e->rkm->offset < pt->quiet_until;
		if (e->kind == K_DEAD) {
			err = send_dead_letter(p, e, errstr, errstr_size);
		} else {
			err = process_event(p, e, pt, stale, errstr,
					    errstr_size);
			if (err == ST_EINVAL) {
				/* The event counted; its output cannot be
				 * written: the output is the dead letter. */
				char why[sizeof(e->message)];

				memcpy(why, e->message, sizeof(why));
				dead(e, "encode", "features do not fit the "
				     "features schema: %s", why);
				err = send_dead_letter(p, e, errstr,
						       errstr_size);
			}
		}
		if (err) {
			pending_release(p, e);
			return err;
		}
		if (pt) {
			pt->next_offset = e->rkm->offset + 1;
			if (e->kind == K_EVENT && e->event_time > pt->max_ts)
				pt->max_ts = e->event_time;
			pt->dirty = 1;
		}
		if (!p->batch_start_us)
			p->batch_start_us = now;
		p->batch_events++;
		pending_release(p, e);
		st_metrics_counter_inc(p->obs->processed);
		done++;
	}
	return done;
}

/* Turns a transactional API error into a strata error: fatal ones (a
 * fenced producer) stop the pipeline. Frees kerr. */
static int txn_error(st_pipeline_t *p, rd_kafka_error_t *kerr,
		     const char *what, char *errstr, size_t errstr_size)
{
	int fenced = rd_kafka_error_code(kerr) == RD_KAFKA_RESP_ERR__FENCED ||
		     rd_kafka_error_code(kerr) ==
		     RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
	int err = fenced ? ST_EFENCED : ST_EKAFKA;

	st_seterr(errstr, errstr_size, err, "%s: %s%s", what,
		  rd_kafka_error_string(kerr),
		  fenced ? " (another instance with the same "
		  "transactional.id took over: this one stops)" : "");
	if (rd_kafka_error_is_fatal(kerr) || fenced)
		p->fatal = err;
	rd_kafka_error_destroy(kerr);
	return err;
}

static int begin_kafka_txn(st_pipeline_t *p, char *errstr,
			   size_t errstr_size)
{
	rd_kafka_error_t *kerr;

	if (!p->eos || p->txn_open)
		return 0;
	if (p->txn_abort_again) {
		if ((kerr = rd_kafka_abort_transaction(p->producer, 60000)))
			return txn_error(p, kerr, "abort transaction", errstr,
					 errstr_size);
		p->txn_abort_again = 0;
	}
	if ((kerr = rd_kafka_begin_transaction(p->producer)))
		return txn_error(p, kerr, "begin transaction", errstr,
				 errstr_size);
	p->txn_open = 1;
	p->nprobes = 0;
	p->probes_short = 0;
	return 0;
}

/* Where the transaction stream's partitions are, as a Kafka transaction
 * commits them: never behind Kafka's committed offset (quiet_until):
 * while re-applying after a restart LMDB's position trails it, and
 * moving it back would produce the output again after the next
 * restart. */
static rd_kafka_topic_partition_list_t *txn_positions(const st_pipeline_t *p)
{
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new((int)p->nparts);

	for (size_t i = 0; i < p->nparts; i++) {
		const part_t *pt = &p->parts[i];

		rd_kafka_topic_partition_list_add(l,
			p->conf->transactions_topic, pt->partition)->offset =
			pt->next_offset > pt->quiet_until ? pt->next_offset :
							     pt->quiet_until;
	}
	return l;
}

/* Reads the committed offsets (stable: no transaction of ours pending)
 * of the transaction stream's group, or with cdc of the CDC consumer's,
 * into got, waiting wait_ms at most; *behind tells whether one is short
 * of sent. */
static int read_back(st_pipeline_t *p, int cdc,
		     const rd_kafka_topic_partition_list_t *sent,
		     rd_kafka_topic_partition_list_t *got, int wait_ms,
		     int *behind, char *errstr, size_t errstr_size)
{
	int err = cdc ? st_ingest_committed(p->in, got, wait_ms, errstr,
					    errstr_size) :
			st_kafka_committed(p->consumer, got, wait_ms, errstr,
					   errstr_size);

	*behind = -1;
	for (int i = 0; !err && i < sent->cnt && *behind < 0; i++)
		if (got->elems[i].offset < sent->elems[i].offset)
			*behind = i;
	return err;
}

/*
 * Ends what Kafka may hold open of the transaction just acknowledged: a
 * transaction of the same producer that writes one record to every
 * partition the acknowledged one delivered to, and sends the same
 * offsets, is aborted. Why: a transaction coordinator that cannot find a
 * partition's leader when it completes a commit takes the partition for
 * deleted and skips its marker (seen with Kafka 4.x: the single broker in
 * controlled shutdown, its partitions leaderless, while a commit was
 * acknowledged). That part of the transaction stays open on the
 * partition, its last stable offset stuck before it; the next
 * transaction of this producer to write there continues it, and its
 * commit would bring the batch out a second time after the batch was
 * done again. The abort's markers decide every such part, aborted; the
 * parts Kafka did complete stay as they were. An abort of a transaction
 * with nothing in it never reaches the coordinator: the offsets sent put
 * the group's partition in it. The records carry the header
 * strata.txn.repair; a read_committed consumer never sees them.
 */
static int repair_transaction(st_pipeline_t *p, int cdc,
			      const rd_kafka_topic_partition_list_t *sent,
			      char *errstr, size_t errstr_size)
{
	static const char key[] = "strata-txn-repair";
	rd_kafka_consumer_group_metadata_t *cgmd;
	rd_kafka_error_t *kerr = rd_kafka_begin_transaction(p->producer);
	rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
	uint64_t undelivered = p->undelivered;

	if (kerr)
		return txn_error(p, kerr, "repairing the transaction: begin",
				 errstr, errstr_size);
	p->repairing = 1;
	for (size_t i = 0; i < p->nprobes && !rerr; i++)
		rerr = rd_kafka_producev(p->producer,
			RD_KAFKA_V_TOPIC(p->probes[i].topic),
			RD_KAFKA_V_PARTITION(p->probes[i].partition),
			RD_KAFKA_V_KEY((void *)key, sizeof(key) - 1),
			RD_KAFKA_V_HEADER("strata.txn.repair", "abort", 5),
			RD_KAFKA_V_END);
	/* Delivered, each partition is in the transaction for sure. */
	if (!rerr)
		rerr = rd_kafka_flush(p->producer, 30000);
	cgmd = cdc ? st_ingest_group_metadata(p->in) :
		     rd_kafka_consumer_group_metadata(p->consumer);
	kerr = rd_kafka_send_offsets_to_transaction(p->producer, sent, cgmd,
						    30000);
	rd_kafka_consumer_group_metadata_destroy(cgmd);
	if (kerr) {	/* the abort below ends it all the same */
		st_log(ST_LOG_WARNING, "pipeline", "repairing the transaction: "
		       "send offsets: %s", rd_kafka_error_string(kerr));
		rd_kafka_error_destroy(kerr);
	}
	kerr = rd_kafka_abort_transaction(p->producer, 60000);
	p->repairing = 0;
	p->undelivered = undelivered;	/* the repair's records are no output */
	if (kerr)
		return txn_error(p, kerr, "repairing the transaction: abort",
				 errstr, errstr_size);
	if (rerr)
		return st_seterr(errstr, errstr_size, ST_EKAFKA, "repairing the "
				 "transaction: its partitions were not all "
				 "reached: %s", rd_kafka_err2str(rerr));
	return 0;
}

/*
 * How long a transaction can stay open on a partition: the coordinator
 * either completes what it acknowledged or aborts it at the producer's
 * transaction.timeout.ms (librdkafka's default 60 s), looking every 10 s
 * (transaction.abort.timed.out.transaction.cleanup.interval.ms); a
 * restarted broker first loads its state. A wait shorter than that
 * guesses, and a wrong guess doubles or loses a batch.
 */
static int settle_ms(const st_pipeline_t *p)
{
	const char *v = st_config_kafka_get(p->conf, "transaction.timeout.ms");
	long timeout = v ? strtol(v, NULL, 10) : 60000;

	if (timeout <= 0 || timeout > 900000)
		timeout = 60000;
	return (int)timeout + 60000;
}

/*
 * Whether the output of the transaction just committed is in Kafka, read
 * at each partition it delivered to: *kept and *lost count them, *first_lost
 * is the first of the lost (-1: none). Returns 0, or a negative error when a
 * partition cannot tell (its last stable offset held before the
 * transaction's message past settle_ms()).
 */
static int outputs_kept(st_pipeline_t *p, size_t *kept, size_t *lost,
			long *first_lost, char *errstr, size_t errstr_size)
{
	static const char *const eof[] = {"enable.partition.eof", "true",
					  "isolation.level", "read_committed",
					  NULL};
	st_kafka_opts_t o = {"-probe", eof, NULL, NULL, NULL, NULL};
	rd_kafka_t *rk;
	int err = 0;

	*kept = *lost = 0;
	*first_lost = -1;
	if (!p->nprobes)
		return 0;
	if (!(rk = st_kafka_new(p->conf, ST_KAFKA_CONSUMER, &o, errstr,
				errstr_size)))
		return ST_EKAFKA;
	for (size_t i = 0; i < p->nprobes && !err; i++) {
		const probe_t *pr = &p->probes[i];
		int r = st_kafka_message_committed(rk, pr->topic, pr->partition,
						   pr->offset, settle_ms(p),
						   errstr, errstr_size);

		if (r < 0)
			err = r;
		else if (r)
			(*kept)++;
		else if ((*lost)++ == 0)
			*first_lost = (long)i;
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return err;
}

/*
 * Reads back what the transaction just committed. A transaction
 * coordinator that moves (broker restart) just after acknowledging a
 * commit can lose it or leave parts of it open (repair_transaction()).
 * The offsets read back stable prove the commit: the transaction
 * stream's group's, or the CDC consumer's (cdc) when only those moved.
 * When they do not show it, what Kafka holds open of the transaction is
 * aborted, and the offsets read again are the truth: short of sent,
 * Kafka has not consumed the batch's input, and it is done again
 * (ST_EAGAIN); else the batch stands. Output that Kafka kept on some
 * partitions and not on others is logged as the error it is: the batch
 * is then doubled or lost there, as the offsets decide. Unreadable,
 * strata cannot know: fatal, and a restart's init_transactions()
 * settles it.
 */
static int verify_kafka_commit(st_pipeline_t *p, int cdc,
			       const rd_kafka_topic_partition_list_t *sent,
			       char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *got =
		rd_kafka_topic_partition_list_copy(sent);
	/* The failure point reads back as a Kafka that kept the output and
	 * lost the offsets does (seen once, the broker restarted while the
	 * transaction committed). */
	int lose = st_fail_point("kafka_offsets_lost");
	size_t kept, lost;
	long first_lost;
	int behind, err;

	err = read_back(p, cdc, sent, got, 10000, &behind, errstr,
			errstr_size);
	if (lose && !err)
		behind = 0;
	if (!err && behind < 0)
		goto out;
	st_log(ST_LOG_WARNING, "pipeline", "the commit Kafka acknowledged "
	       "does not read back (%s); aborting what Kafka holds open of "
	       "it on its %zu output partitions, then reading again",
	       err ? errstr : "the offsets are behind those sent", p->nprobes);
	if (p->probes_short)
		err = st_seterr(errstr, errstr_size, ST_ENOMEM, "the "
				"transaction's output partitions were not all "
				"noted (out of memory)");
	else if (!(err = repair_transaction(p, cdc, sent, errstr,
					    errstr_size)))
		err = read_back(p, cdc, sent, got, 60000, &behind, errstr,
				errstr_size);
	if (err) {
		if (!p->fatal)
			p->fatal = ST_EKAFKA;
		goto out;
	}
	if (lose)
		behind = 0;
	if ((err = outputs_kept(p, &kept, &lost, &first_lost, errstr,
				errstr_size))) {
		/* Cannot tell (a partition's last stable offset held by
		 * another producer's transaction past settle_ms()): the
		 * offsets alone decide. */
		st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
		kept = lost = 0;
		err = 0;
	} else if (kept && lost) {
		const probe_t *pr = &p->probes[first_lost];

		st_log(ST_LOG_ERR, "pipeline", "Kafka completed the "
		       "acknowledged transaction on %zu of its %zu output "
		       "partitions, not on %s [%d] (and %zu more): the batch's "
		       "output there is %s", kept, kept + lost, pr->topic,
		       (int)pr->partition, lost - 1, behind >= 0 ?
		       "doubled where it was kept, as the batch is done again" :
		       "lost, as the offsets say the batch is done");
	}
	if (behind >= 0 && kept && !lost) {
		/* The output is there: only the offsets were lost. The batch
		 * stands; the next transaction commits the offsets again, and
		 * meanwhile LMDB's offsets are ahead, which a restart reads. */
		st_log(ST_LOG_WARNING, "pipeline", "Kafka kept the "
		       "transaction's output but not its input offsets (%s "
		       "[%d] reads back at %" PRId64 ", not %" PRId64 "): the "
		       "batch stands", sent->elems[behind].topic,
		       (int)sent->elems[behind].partition,
		       got->elems[behind].offset, sent->elems[behind].offset);
		goto out;
	}
	if (behind >= 0) {
		const rd_kafka_topic_partition_t *s = &sent->elems[behind];

		st_metrics_counter_inc(p->obs->txn_lost);
		err = st_seterr(errstr, errstr_size, ST_EAGAIN, "Kafka lost the "
				"transaction it acknowledged as committed: %s "
				"[%d] reads back at offset %" PRId64 ", not %"
				PRId64 "; the batch is processed again",
				s->topic, (int)s->partition,
				got->elems[behind].offset, s->offset);
	}
out:
	rd_kafka_topic_partition_list_destroy(got);
	return err;
}

/*
 * The Kafka half of a commit, on the loop's thread: the batch's input
 * positions and the groups they commit under. The transaction stream's
 * positions under the group the consumer is a member of (while it has
 * partitions: between assignments its generation is not valid), the CDC
 * positions under the CDC consumer's group, which has no members.
 */
static void kafka_commit_prepare(st_pipeline_t *p)
{
	kcommit_t *kc = &p->kc;

	kc->sent = p->nparts ? txn_positions(p) : NULL;
	kc->gmd = p->nparts ? rd_kafka_consumer_group_metadata(p->consumer) :
			      NULL;
	kc->cdc = rd_kafka_topic_partition_list_new(8);
	st_ingest_positions(p->in, kc->cdc);
	kc->cdc_gmd = st_ingest_group_metadata(p->in);
	/* Read back under the transaction stream's group when its
	 * positions moved (the transaction is atomic: that proves all of
	 * it), else under the CDC group. */
	kc->moved = 0;
	for (int i = 0; kc->sent && i < kc->sent->cnt && !kc->moved; i++)
		kc->moved = kc->sent->elems[i].offset > p->parts[i].quiet_until;
}

/*
 * Sends the prepared positions into the open Kafka transaction, commits
 * it (outputs and offsets become visible together) and reads it back.
 * Runs on the commit thread, or the loop's: it touches only the producer,
 * the consumers' committed offsets and what kafka_commit_prepare() made.
 */
static int kafka_commit_run(st_pipeline_t *p, char *errstr,
			    size_t errstr_size)
{
	kcommit_t *kc = &p->kc;
	rd_kafka_error_t *kerr = NULL;
	int64_t t0;

	if (kc->sent) {
		kerr = rd_kafka_send_offsets_to_transaction(p->producer,
							    kc->sent, kc->gmd,
							    30000);
		if (kerr)
			return txn_error(p, kerr, "send offsets to "
					 "transaction", errstr, errstr_size);
	}
	if (kc->cdc->cnt &&
	    (kerr = rd_kafka_send_offsets_to_transaction(p->producer, kc->cdc,
							 kc->cdc_gmd, 30000)))
		return txn_error(p, kerr, "send CDC offsets to transaction",
				 errstr, errstr_size);
	st_crash_point("before_kafka_commit");
	st_hold_point("before_kafka_commit");
	t0 = st_time_mono_us();
	for (;;) {
		/* The failure point leaves Kafka as a coordinator that lost
		 * the commit does: aborted, while strata hears success. */
		if (st_fail_point("kafka_commit_lost")) {
			kerr = rd_kafka_abort_transaction(p->producer, 60000);
			break;
		}
		kerr = rd_kafka_commit_transaction(p->producer, 60000);
		if (!kerr || !rd_kafka_error_is_retriable(kerr) || *p->stop)
			break;
		rd_kafka_error_destroy(kerr);
	}
	if (kerr)
		return txn_error(p, kerr, "commit transaction", errstr,
				 errstr_size);
	p->txn_open = 0;
	if (kc->moved || kc->cdc->cnt) {
		int err = verify_kafka_commit(p, !kc->moved,
					      kc->moved ? kc->sent : kc->cdc,
					      errstr, errstr_size);

		if (err)
			return err;
	}
	st_metrics_histogram_observe_ns(p->obs->txn_commit,
					(uint64_t)(st_time_mono_us() - t0) * 1000);
	st_metrics_counter_inc(p->obs->txn_commits);
	return 0;
}

/* Back on the loop's thread: after a commit (ok), Kafka holds these
 * offsets, and output before them is out even if the LMDB commit that
 * follows fails and the batch is done again. Frees what was sent. */
static void kafka_commit_done(st_pipeline_t *p, int ok)
{
	kcommit_t *kc = &p->kc;

	for (int i = 0; ok && kc->sent && i < kc->sent->cnt; i++) {
		part_t *pt = find_part(p, kc->sent->elems[i].partition);

		if (pt && kc->sent->elems[i].offset > pt->quiet_until)
			pt->quiet_until = kc->sent->elems[i].offset;
	}
	if (ok)
		st_ingest_positions_committed(p->in);
	if (kc->sent)
		rd_kafka_topic_partition_list_destroy(kc->sent);
	if (kc->gmd)
		rd_kafka_consumer_group_metadata_destroy(kc->gmd);
	rd_kafka_topic_partition_list_destroy(kc->cdc);
	rd_kafka_consumer_group_metadata_destroy(kc->cdc_gmd);
	kc->sent = kc->cdc = NULL;
	kc->gmd = kc->cdc_gmd = NULL;
}

static void *kafka_commit_thread(void *arg)
{
	st_pipeline_t *p = arg;
	ssize_t n;

	p->kc.err = kafka_commit_run(p, p->kc.errstr, sizeof(p->kc.errstr));
	atomic_store(&p->kc.done, 1);
	n = write(p->pipefd[1], "", 1);   /* wakes the loop; full: awake */
	(void)n;
	return NULL;
}

/* Tells the consumer group how far the stream is (for lag tools); LMDB
 * decides. With exactly.once, the transaction commits the offsets. */
static void tell_group(st_pipeline_t *p)
{
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new((int)p->nparts);

	for (size_t i = 0; i < p->nparts; i++) {
		if (!p->parts[i].dirty)
			continue;
		rd_kafka_topic_partition_list_add(l,
			p->conf->transactions_topic,
			p->parts[i].partition)->offset =
			p->parts[i].next_offset;
		p->parts[i].dirty = 0;
	}
	if (l->cnt)
		rd_kafka_commit(p->consumer, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
}

/* The second half of a commit, Kafka's done: Redis has the batch, then
 * LMDB commits it. */
static int commit_end(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int64_t t0;
	int err;

	if ((err = redis_answered(p, p->kc.redis, errstr, errstr_size)))
		return err;
	st_crash_point("after_kafka_commit");
	if (st_fail_point("lmdb_commit"))
		return st_seterr(errstr, errstr_size, ST_ESTATE, "LMDB "
				 "commit: failure injected (STRATA_FAIL_AT)");
	t0 = st_time_mono_us();
	err = st_state_commit(p->st, errstr, errstr_size);
	st_metrics_histogram_observe_ns(p->obs->lmdb_commit,
					(uint64_t)(st_time_mono_us() - t0) * 1000);
	st_temporal_reader_txn_ended(p->treader);
	p->treader_txn = NULL;
	if (err)
		return err;
	st_crash_point("after_lmdb_commit");
	p->stats.commits++;
	st_metrics_counter_inc(p->obs->lmdb_commits);
	if (!p->eos)
		tell_group(p);
	/* The next batch, taken while this one committed, is in memory:
	 * written before the cache is emptied; not while vectors staged
	 * this pass still need their entries (a dead letter's collect). */
	if (p->cache_count > (size_t)p->conf->window_cache_keys &&
	    !p->nvecs) {
		if (p->ndirty &&
		    ((err = st_state_begin(p->st, errstr, errstr_size)) ||
		     (err = cache_write_dirty(p, SIZE_MAX, errstr,
					      errstr_size))))
			return err;
		cache_clear(p);
	}
	return 0;
}

/*
 * The first half of a commit. Redis first, then Kafka, then LMDB: a
 * crash in between re-applies the batch; the guarded Redis writes make
 * that harmless, and output already committed in Kafka is not produced
 * again (quiet_until). With exactly.once and async, the Kafka transaction
 * commits on a thread of its own while the loop goes on with the next
 * batch (commit_collect() finishes it); else the whole commit is done.
 */
static int commit_begin(st_pipeline_t *p, int async, char *errstr,
			size_t errstr_size)
{
	int err;

	/* Outputs held, then the scores flush_online() produces. */
	if (p->eos && ((err = begin_kafka_txn(p, errstr, errstr_size)) ||
		       (err = release_held(p, errstr, errstr_size))))
		return err;
	if ((err = flush_online(p, errstr, errstr_size)))
		return err;
	p->kc.redis = p->redis_sent;
	if ((err = cache_write_dirty(p, SIZE_MAX, errstr, errstr_size)))
		return err;
	/* Everything produced for this batch must be in Kafka before the
	 * offsets that produced it are committed in LMDB. */
	if (!p->eos) {
		if (rd_kafka_outq_len(p->producer) > 0 &&
		    rd_kafka_flush(p->producer, 30000))
			return st_seterr(errstr, errstr_size, ST_EKAFKA,
					 "Kafka output not delivered within "
					 "30 s");
		if (p->undelivered) {
			p->undelivered = 0;
			return st_seterr(errstr, errstr_size, ST_EKAFKA,
					 "Kafka output of the batch not "
					 "delivered (see the errors above)");
		}
	}
	for (size_t i = 0; i < p->nparts; i++) {
		part_t *pt = &p->parts[i];

		if (!pt->dirty)
			continue;
		err = st_state_offset_put(p->st, p->conf->transactions_topic,
					  pt->partition, pt->next_offset,
					  pt->max_ts, errstr, errstr_size);
		if (err)
			return err;
		if (p->eos)
			pt->dirty = 0;
	}
	p->batch_start_us = 0;
	p->batch_events = 0;
	if (!p->eos)
		return commit_end(p, errstr, errstr_size);
	kafka_commit_prepare(p);
	if (async) {
		atomic_store(&p->kc.done, 0);
		if (!(err = pthread_create(&p->kc.thread, NULL,
					   kafka_commit_thread, p))) {
			p->kc.running = 1;
			return 0;
		}
		st_log(ST_LOG_WARNING, "pipeline", "cannot start the commit "
		       "thread (%s): committing on the loop's", strerror(err));
	}
	err = kafka_commit_run(p, errstr, errstr_size);
	kafka_commit_done(p, !err);
	return err ? err : commit_end(p, errstr, errstr_size);
}

/*
 * Waits for the Kafka transaction on the commit thread and finishes the
 * commit. The next batch, taken meanwhile, then goes on in a new LMDB
 * transaction and a new Kafka transaction, its held output first.
 */
static int commit_collect(st_pipeline_t *p, char *errstr,
			  size_t errstr_size)
{
	int err;

	pthread_join(p->kc.thread, NULL);
	p->kc.running = 0;
	if ((err = p->kc.err))
		snprintf(errstr, errstr_size, "%s", p->kc.errstr);
	kafka_commit_done(p, !err);
	if (!err)
		err = commit_end(p, errstr, errstr_size);
	/* Its dirty window states and held output come from its events. */
	if (!err && p->batch_events)
		err = st_state_begin(p->st, errstr, errstr_size);
	if (!err && !(err = begin_kafka_txn(p, errstr, errstr_size)))
		err = release_held(p, errstr, errstr_size);
	return err;
}

/* Commits the batch, and first the one in flight. */
static int commit(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int err;

	if (p->kc.running && (err = commit_collect(p, errstr, errstr_size)))
		return err;
	if (!st_state_write_txn(p->st))
		return 0;
	return commit_begin(p, 0, errstr, errstr_size);
}

/* Throws away the open batch: LMDB aborts, Redis writes queued are kept
 * (idempotent), inputs rewind to the committed offsets. */
static void abort_batch(st_pipeline_t *p)
{
	char errstr[1024];
	rd_kafka_topic_partition_list_t *l;

	/* The batch in flight commits if it can: only the next is lost. */
	if (p->kc.running && commit_collect(p, errstr, sizeof(errstr)))
		st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
	p->nheld = 0;
	p->hlen = 0;
	if (p->txn_open) {
		rd_kafka_error_t *kerr = rd_kafka_abort_transaction(p->producer,
								    60000);

		/* After a retriable failure the abort must be called
		 * again (librdkafka's rule): begin_kafka_txn() does. */
		int again = kerr && rd_kafka_error_is_retriable(kerr);

		if (kerr) {
			char why[512];

			txn_error(p, kerr, "abort transaction", why,
				  sizeof(why));
			st_log(ST_LOG_ERR, "pipeline", "%s%s", why,
			       again ? "; will abort again" : "");
		}
		st_metrics_counter_inc(p->obs->txn_aborts);
		p->txn_open = 0;
		p->txn_abort_again = again;
	}
	st_state_abort(p->st);
	p->stats.aborts++;
	st_metrics_counter_inc(p->obs->lmdb_aborts);
	p->nvecs = 0;
	p->nrows = 0;
	p->alen = 0;
	if (p->vmap)
		memset(p->vmap, 0, p->vmap_cap * sizeof(*p->vmap));
	st_temporal_reader_txn_ended(p->treader);
	p->treader_txn = NULL;
	p->batch_start_us = 0;
	p->batch_events = 0;
	cache_clear(p);
	if (st_ingest_rewind(p->in, errstr, sizeof(errstr)))
		st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
	while (p->head)
		pending_release(p, pending_pop(p));
	if (p->blocked) {
		rd_kafka_message_destroy(p->blocked);
		p->blocked = NULL;
	}
	l = rd_kafka_topic_partition_list_new((int)p->nparts);
	for (size_t i = 0; i < p->nparts; i++) {
		part_t *pt = &p->parts[i];
		int64_t off = RD_KAFKA_OFFSET_BEGINNING, mts = -1;

		int err = st_state_offset_get(p->st,
					      p->conf->transactions_topic,
					      pt->partition, &off, &mts,
					      errstr, sizeof(errstr));

		if (err && err != ST_ENOENT) {
			st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
			p->fatal = err;
			break;
		}
		pt->next_offset = err ? 0 : off;
		pt->max_ts = err ? -1 : mts;
		pt->dirty = 0;
		rd_kafka_topic_partition_list_add(l,
			p->conf->transactions_topic, pt->partition)->offset = off;
	}
	if (l->cnt && !p->fatal && seek_parts(p, l, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "pipeline", "rewinding: %s", errstr);
		p->fatal = ST_EKAFKA;
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* ---- consumer group --------------------------------------------------- */

static int committed_offsets(st_pipeline_t *p,
			     rd_kafka_topic_partition_list_t *l, char *errstr,
			     size_t errstr_size);

/*
 * Takes partitions in: their offsets from LMDB (the beginning when LMDB has
 * none; any other error is fatal: a wrong start double-counts), and with
 * exactly-once the offsets Kafka committed (output before them is not
 * produced again). Sets each element's offset for assign().
 */
static int add_parts(st_pipeline_t *p, rd_kafka_topic_partition_list_t *parts,
		     char *errstr, size_t errstr_size)
{
	part_t *np = realloc(p->parts, (p->nparts + (size_t)parts->cnt) *
			     sizeof(*np));
	size_t first = p->nparts;

	if (!np)
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "out of memory");
	p->parts = np;
	if (parts->cnt)
		p->input_assigned = 1;
	for (int i = 0; i < parts->cnt; i++)
		p->parts[first + (size_t)i].quiet_until = -1;
	if (p->eos) {
		rd_kafka_topic_partition_list_t *c =
			rd_kafka_topic_partition_list_copy(parts);
		int err = committed_offsets(p, c, errstr, errstr_size);

		for (int i = 0; !err && i < c->cnt; i++)
			p->parts[first + (size_t)i].quiet_until =
				c->elems[i].offset;
		rd_kafka_topic_partition_list_destroy(c);
		if (err) {
			p->fatal = err;
			return err;
		}
	}
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		part_t *pt = &p->parts[p->nparts];
		int64_t off, mts;
		int err;

		pt->partition = tp->partition;
		pt->dirty = 0;
		err = st_state_offset_get(p->st, tp->topic, tp->partition,
					  &off, &mts, errstr, errstr_size);
		if (err && err != ST_ENOENT) {
			p->nparts = first;
			p->fatal = err;
			return err;
		}
		p->nparts++;
		pt->lag = st_observe_lag(p->obs, tp->topic, tp->partition);
		pt->wm_delay = st_observe_wm_delay(p->obs, tp->topic,
						   tp->partition);
		tp->offset = err ? RD_KAFKA_OFFSET_BEGINNING : off;
		pt->next_offset = err ? 0 : off;
		pt->consumed = pt->next_offset;
		pt->max_ts = err ? -1 : mts;
		if (pt->quiet_until > pt->next_offset)
			st_log(ST_LOG_INFO, "pipeline", "assigned %s [%d] "
			       "from offset %" PRId64 " (output up to the "
			       "Kafka-committed offset %" PRId64 " is not "
			       "produced again)", tp->topic, tp->partition,
			       pt->next_offset, pt->quiet_until);
		else if (pt->quiet_until >= 0)
			st_log(ST_LOG_INFO, "pipeline", "assigned %s [%d] "
			       "from offset %" PRId64 " (Kafka-committed: %"
			       PRId64 ")", tp->topic, tp->partition,
			       pt->next_offset, pt->quiet_until);
		else
			st_log(ST_LOG_INFO, "pipeline", "assigned %s [%d] "
			       "from offset %" PRId64 " (nothing committed in "
			       "Kafka)", tp->topic, tp->partition,
			       pt->next_offset);
	}
	return 0;
}

/* The transaction consumer's client errors (served on the loop's thread,
 * in consume()): logged as librdkafka logs them without a callback; one
 * saying a partition or topic is unknown has the loop look whether its
 * topic is gone. */
static void consumer_error(rd_kafka_t *rk, int err, const char *reason,
			   void *opaque)
{
	st_pipeline_t *p = opaque;

	st_log(ST_LOG_ERR, "rdkafka", "%s: %s", rd_kafka_name(rk), reason);
	if (unknown_input(err))
		atomic_store(&p->input_missing, 1);
}

/* What a broker's metadata says of the transaction stream's topic: 1 it
 * does not exist, 0 it does, -1 no answer or none that says. */
static int input_topic_state(st_pipeline_t *p)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(
		p->consumer, p->conf->transactions_topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int state = -1;

	if (!rkt)
		return -1;
	if (!rd_kafka_metadata(p->consumer, 0, rkt, &md, 5000) &&
	    md->broker_cnt > 0 && md->topic_cnt == 1) {
		if (md->topics[0].err ==
		    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			state = 1;
		else if (!md->topics[0].err && md->topics[0].partition_cnt > 0)
			state = 0;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return state;
}

/*
 * Whether the transaction stream's topic was deleted while strata ran.
 * Once the consumer has reported it unknown after its partitions were
 * assigned (a topic missing at start is waited for), the broker is asked
 * every second; an answer that shows the topic ends the suspicion, and
 * an answer that it does not exist INPUT_GONE_AFTER_US after the first
 * report is believed. Nothing is then left to consume or to commit
 * offsets for: strata stops with an error instead of idling, as a Kafka
 * Streams application stops on a missing source topic.
 */
static int input_topic_gone(st_pipeline_t *p, int64_t now)
{
	const char *topic = p->conf->transactions_topic;
	int state;

	if (atomic_exchange(&p->input_missing, 0) && p->input_assigned &&
	    !p->input_suspect_us) {
		st_log(ST_LOG_WARNING, "pipeline", "transactions topic %s: "
		       "the consumer reports it or its partitions unknown; "
		       "asking the broker every second (stopping if it says "
		       "the topic does not exist for %d s)", topic,
		       INPUT_GONE_AFTER_US / 1000000);
		p->input_suspect_us = now;
		p->input_check_us = now;
	}
	if (!p->input_suspect_us || now < p->input_check_us)
		return 0;
	p->input_check_us = now + 1000000;
	state = input_topic_state(p);
	if (state == 0) {
		st_log(ST_LOG_NOTICE, "pipeline", "transactions topic %s: "
		       "the broker shows it", topic);
		p->input_suspect_us = 0;
		return 0;
	}
	if (state < 0 || now - p->input_suspect_us < INPUT_GONE_AFTER_US)
		return 0;
	st_log(ST_LOG_ERR, "pipeline", "transactions topic %s no longer "
	       "exists (deleted while strata ran): stopping; the batch in "
	       "progress is aborted", topic);
	return 1;
}

static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	st_pipeline_t *p = opaque;
	char errstr[512];

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (add_parts(p, parts, errstr, sizeof(errstr))) {
			st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
			rd_kafka_assign(rk, NULL);
			return;
		}
		rd_kafka_assign(rk, parts);
		return;
	}
	/* Revoked: commit what is processed; the rest is the new owner's. */
	if (commit(p, errstr, sizeof(errstr))) {
		st_log(ST_LOG_ERR, "pipeline", "commit before revoke: %s; "
		       "the batch will be processed again", errstr);
		abort_batch(p);
	}
	while (p->head)
		pending_release(p, pending_pop(p));
	if (p->blocked) {
		rd_kafka_message_destroy(p->blocked);
		p->blocked = NULL;
	}
	cache_clear(p);
	p->nparts = 0;
	rd_kafka_assign(rk, NULL);
}

/* ---- set-up ----------------------------------------------------------- */

static int field_types(const char *schema_json, const st_avro_reader_t *r,
		       st_feat_type_t *types, char *errstr,
		       size_t errstr_size)
{
	json_t *root = json_loads(schema_json, 0, NULL), *fields, *f;
	size_t i;

	fields = json_object_get(root, "fields");
	if (!json_is_array(fields)) {
		json_decref(root);
		return st_seterr(errstr, errstr_size, ST_ESCHEMA,
				 "reader schema: no fields");
	}
	json_array_foreach(fields, i, f) {
		json_t *t = json_object_get(f, "type"), *b;
		size_t j;
		const char *name;
		int idx;

		/* A ["null", T] union takes T's kind. */
		if (json_is_array(t))
			json_array_foreach(t, j, b)
				if (!json_is_string(b) ||
				    strcmp(json_string_value(b), "null")) {
					t = b;
					break;
				}
		if (json_is_object(t))
			t = json_object_get(t, "type");
		name = json_string_value(json_object_get(f, "name"));
		idx = name ? st_avro_reader_field(r, name) : -1;
		if (idx < 0)
			continue;
		types[idx] = json_is_string(t) &&
			     (!strcmp(json_string_value(t), "string") ||
			      !strcmp(json_string_value(t), "enum")) ?
			     ST_FEAT_STRING : ST_FEAT_NUMBER;
	}
	json_decref(root);
	return 0;
}

/* The model, and which feature feeds each of its columns (by name). */
static int load_scorer(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int err;

	if (!*p->conf->scorer_model || p->opts.replay)
		return 0;
	if ((err = st_scorer_new(&p->scorer, p->conf->scorer_model, 1, errstr,
				 errstr_size)))
		return err;
	p->score_nf = st_scorer_nfeatures(p->scorer);
	p->score_col = calloc(p->score_nf, sizeof(*p->score_col));
	if (!p->score_col)
		return ST_ENOMEM;
	for (size_t j = 0; j < p->score_nf; j++) {
		const char *name = st_scorer_feature(p->scorer, j);

		p->score_col[j] = -1;
		for (size_t i = 0; name && i < st_features_count(p->f); i++)
			if (!strcmp(name, st_features_name(p->f, i)))
				p->score_col[j] = (long)i;
		if (!name)
			return st_seterr(errstr, errstr_size, ST_EMODEL,
					 "scorer.model %s: no feature names "
					 "(metadata strata.features)",
					 p->conf->scorer_model);
		if (p->score_col[j] < 0)
			return st_seterr(errstr, errstr_size, ST_EMODEL,
					 "scorer.model %s: feature '%s' is not "
					 "in features.file %s",
					 p->conf->scorer_model, name,
					 p->conf->features_file);
		if (st_features_type(p->f, (size_t)p->score_col[j]) !=
		    ST_FEAT_NUMBER)
			return st_seterr(errstr, errstr_size, ST_EMODEL,
					 "scorer.model %s: feature '%s' is a "
					 "string; the model takes numbers",
					 p->conf->scorer_model, name);
	}
	st_log(ST_LOG_INFO, "pipeline", "scoring with %s (version %" PRId64
	       ", %zu features), alerts at >= %g", p->conf->scorer_model,
	       st_scorer_version(p->scorer), p->score_nf,
	       p->conf->scorer_threshold);
	return 0;
}

/* The meta value under key: *have gets the stored one (caller frees), or
 * NULL when there was none and want is now stored, in a transaction of its
 * own. */
static int meta_once(st_pipeline_t *p, const char *key, const char *want,
		     char **have, char *errstr, size_t errstr_size)
{
	int err = st_state_meta_get(p->st, key, have, errstr, errstr_size);

	if (err != ST_ENOENT)
		return err;
	*have = NULL;
	if (!(err = st_state_begin(p->st, errstr, errstr_size)) &&
	    !(err = st_state_meta_put(p->st, key, want, errstr, errstr_size)))
		return st_state_commit(p->st, errstr, errstr_size);
	st_state_abort(p->st);
	return err;
}

/* Window state written under one feature set cannot be read under a
 * feature set whose windows differ: refuse to start rather than corrupt. */
static int check_layout(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	char *want = st_features_layout(p->f), *have = NULL;
	int err;

	if (!want)
		return ST_ENOMEM;
	err = meta_once(p, "window.layout", want, &have, errstr, errstr_size);
	if (!err && have && strcmp(have, want)) {
		err = st_seterr(errstr, errstr_size, ST_EINVAL,
				"features.file %s changes the window layout of "
				"the state in %s (was: %s; now: %s): use a new "
				"state.dir, or remove this one to start the "
				"windows afresh", p->conf->features_file,
				p->conf->state_dir, have, want);
	}
	free(want);
	free(have);
	return err;
}

/* The layout of the vectors kept in LMDB (see vecrec.h), stored once under
 * its id for `strata serve`. */
static int vector_layout(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	size_t nf = st_features_count(p->f);
	const char **names = calloc(nf + 4, sizeof(*names));
	char key[40], *have = NULL;
	int err = ST_ENOMEM;

	if (!names)
		goto out;
	names[0] = "_event_time";
	names[1] = "_seq";
	for (size_t i = 0; i < nf; i++)
		names[i + 2] = st_features_name(p->f, i);
	names[nf + 2] = "_stale_join";
	names[nf + 3] = "_score";
	if ((err = st_vecrec_layout_new(names, nf + 4, &p->vlayout))) {
		st_seterr(errstr, errstr_size, err, "features.file %s: a "
			  "feature name cannot be stored: %s",
			  p->conf->features_file, st_strerror(err));
		goto out;
	}
	if (!p->conf->state_vectors || p->opts.replay)
		goto out;
	st_vecrec_layout_key(p->vlayout->id, key, sizeof(key));
	err = meta_once(p, key, p->vlayout->text, &have, errstr, errstr_size);
	if (!err && have && strcmp(have, p->vlayout->text)) {
		err = st_seterr(errstr, errstr_size, ST_ESTATE,
				"state.dir %s: %s holds another feature set's "
				"names (a hash collision): use a new state.dir",
				p->conf->state_dir, key);
	}
out:
	free(names);
	free(have);
	return err;
}

static char *read_file(const char *path, size_t *lenp)
{
	FILE *fp = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!fp)
		return NULL;
	n = getdelim(&text, &cap, '\0', fp);
	fclose(fp);
	if (n < 0) {
		free(text);
		return NULL;
	}
	*lenp = (size_t)n;
	return text;
}

/*
 * Offsets the consumer group committed in Kafka transactions. Inputs
 * between LMDB's offset and these were answered in Kafka before a crash
 * stopped LMDB's commit: they are applied again, quietly. Fills the
 * offsets of l (RD_KAFKA_OFFSET_INVALID when none).
 */
static int committed_offsets(st_pipeline_t *p,
			     rd_kafka_topic_partition_list_t *l, char *errstr,
			     size_t errstr_size)
{
	return st_kafka_committed(p->consumer, l, 60000, errstr,
				  errstr_size);
}

/* Replay: every partition of the transactions topic, from LMDB's offsets
 * (the beginning in a fresh state), up to its end offset now. */
static int replay_assign(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_topic_t *t;
	rd_kafka_resp_err_t rerr;
	int err = 0;

	t = rd_kafka_topic_new(p->consumer, p->conf->transactions_topic, NULL);
	rerr = rd_kafka_metadata(p->consumer, 0, t, &md, 10000);
	rd_kafka_topic_destroy(t);
	if (rerr || md->topics[0].err) {
		err = st_seterr(errstr, errstr_size, ST_EKAFKA, "%s: %s",
				p->conf->transactions_topic,
				rd_kafka_err2str(rerr ? rerr : md->topics[0].err));
		goto out;
	}
	l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	p->replay_end = calloc((size_t)md->topics[0].partition_cnt + 1,
			       sizeof(*p->replay_end));
	if (!p->replay_end) {
		err = ST_ENOMEM;
		goto out;
	}
	for (int i = 0; i < md->topics[0].partition_cnt; i++) {
		int32_t part = md->topics[0].partitions[i].id;
		int64_t lo, hi;

		rerr = rd_kafka_query_watermark_offsets(p->consumer,
			p->conf->transactions_topic, part, &lo, &hi, 10000);
		if (rerr) {
			err = st_seterr(errstr, errstr_size, ST_EKAFKA,
					"end offset of %s [%d]: %s",
					p->conf->transactions_topic, part,
					rd_kafka_err2str(rerr));
			goto out;
		}
		p->replay_end[i] = hi;
		rd_kafka_topic_partition_list_add(l,
			p->conf->transactions_topic, part);
	}
	if ((err = add_parts(p, l, errstr, errstr_size)))
		goto out;
	if ((rerr = rd_kafka_assign(p->consumer, l)))
		err = st_seterr(errstr, errstr_size, ST_EKAFKA, "assign: %s",
				rd_kafka_err2str(rerr));
out:
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	if (md)
		rd_kafka_metadata_destroy(md);
	return err;
}

/* Replay is over when every partition reached its end offset. */
static int replay_done(const st_pipeline_t *p)
{
	if (p->head || p->blocked)
		return 0;
	for (size_t i = 0; i < p->nparts; i++)
		if (p->parts[i].next_offset < p->replay_end[i])
			return 0;
	return 1;
}

static int quiet_cdc(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *l;
	int err;

	if (!p->eos) {
		p->cdc_quiet_n = st_ingest_nparts(p->in);
		return 0;
	}
	l = rd_kafka_topic_partition_list_new(8);
	st_ingest_positions(p->in, l);
	err = st_ingest_committed(p->in, l, 60000, errstr, errstr_size);
	for (int i = 0; !err && i < l->cnt; i++) {
		if (l->elems[i].offset < 0)
			continue;
		st_ingest_set_quiet(p->in, l->elems[i].topic,
				    l->elems[i].partition, l->elems[i].offset);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (!err)
		p->cdc_quiet_n = st_ingest_nparts(p->in);
	return err;
}

static int load_reader(const st_config_t *conf, st_avro_reader_t **rp,
		       char *errstr, size_t errstr_size)
{
	size_t len;
	char *json = read_file(conf->transactions_schema, &len);
	int err;

	if (!json)
		return st_seterr(errstr, errstr_size, ST_ENOENT,
				 "transactions.schema: cannot read %s: %s",
				 conf->transactions_schema, strerror(errno));
	err = st_avro_reader_new(rp, json, len, errstr, errstr_size);
	free(json);
	return err;
}

static int load_features(const st_config_t *conf,
			 const st_avro_reader_t *reader, st_features_t **fp,
			 char *errstr, size_t errstr_size)
{
	size_t n = st_avro_reader_nfields(reader), len;
	const char **names = calloc(n, sizeof(*names));
	st_feat_type_t *types = calloc(n, sizeof(*types));
	char *json = read_file(conf->transactions_schema, &len);
	int err;

	if (!names || !types || !json) {
		err = json ? ST_ENOMEM : st_seterr(errstr, errstr_size, ST_EIO,
						   "cannot read %s",
						   conf->transactions_schema);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		names[i] = st_avro_reader_field_name(reader, i);
	if (!(err = field_types(json, reader, types, errstr, errstr_size)))
		err = st_features_load(fp, conf->features_file, names, types,
				       n, errstr, errstr_size);
out:
	free(names);
	free(types);
	free(json);
	return err;
}

int st_features_load_for(const st_config_t *conf, st_features_t **fp,
			 char *errstr, size_t errstr_size)
{
	st_avro_reader_t *reader = NULL;
	int err = load_reader(conf, &reader, errstr, errstr_size);

	if (!err)
		err = load_features(conf, reader, fp, errstr, errstr_size);
	st_avro_reader_free(reader);
	return err;
}

/* Notes the partition of a message the open transaction delivered, the
 * first time it delivers there. A transaction writes to few partitions
 * (the features', the dead letters'); the last one noted is the likeliest
 * to match. */
static void note_probe(st_pipeline_t *p, const rd_kafka_message_t *rkm)
{
	probe_t *pr;

	for (size_t i = p->nprobes; i-- > 0;)
		if (p->probes[i].rkt == rkm->rkt &&
		    p->probes[i].partition == rkm->partition)
			return;
	if (p->nprobes == p->probes_cap) {
		size_t cap = p->probes_cap ? p->probes_cap * 2 : 16;

		if (!(pr = realloc(p->probes, cap * sizeof(*pr)))) {
			p->probes_short = 1;
			return;
		}
		p->probes = pr;
		p->probes_cap = cap;
	}
	pr = &p->probes[p->nprobes++];
	pr->rkt = rkm->rkt;
	snprintf(pr->topic, sizeof(pr->topic), "%s",
		 rd_kafka_topic_name(rkm->rkt));
	pr->partition = rkm->partition;
	pr->offset = rkm->offset;
}

static void delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
		     void *opaque)
{
	st_pipeline_t *p = opaque;

	(void)rk;
	if (!rkm->err) {
		if (p->eos && !p->repairing)
			note_probe(p, rkm);
		return;
	}
	st_log(ST_LOG_ERR, "kafka", "message to %s not delivered: %s",
	       rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
	p->undelivered++;
}

int st_pipeline_new(st_pipeline_t **pp, const st_config_t *conf,
		    const st_pipeline_opts_t *opts, char *errstr,
		    size_t errstr_size)
{
	const char *producer_overrides[8] = {
		"enable.idempotence", "true", NULL
	};
	char txn_id[300];
	st_pipeline_t *p = calloc(1, sizeof(*p));
	st_kafka_opts_t popts = {0}, copts = {0};
	rd_kafka_topic_partition_list_t *topics = NULL;
	rd_kafka_resp_err_t rerr;
	char *fschema = NULL, subject[300];
	size_t nf;
	int err;

	if (!p)
		return ST_ENOMEM;
	p->conf = conf;
	if (opts)
		p->opts = *opts;
	p->pipefd[0] = p->pipefd[1] = -1;
	if ((err = st_state_open(&p->st, conf->state_dir, conf->state_map_size,
				 (conf->state_sync ? 0 : ST_STATE_NOSYNC) |
				 (conf->state_writemap ? ST_STATE_WRITEMAP : 0),
				 errstr, errstr_size)))
		goto fail;
	/* The reader schema and the feature set. */
	if ((err = load_reader(conf, &p->reader, errstr, errstr_size)) ||
	    (err = load_features(conf, p->reader, &p->f, errstr, errstr_size)))
		goto fail;
	p->nfields = st_avro_reader_nfields(p->reader);
	p->tfield = st_features_time_field(p->f);
	p->efield = st_features_entity_field(p->f);
	p->wins = st_features_windows(p->f, &p->nwins);
	p->nslots = st_features_nslots(p->f);
	nf = st_features_count(p->f);
	p->out = calloc(nf, sizeof(*p->out));
	p->results = calloc(p->nwins + 1, sizeof(*p->results));
	p->slots = calloc(p->nslots + 1, sizeof(*p->slots));
	p->names = calloc(nf + 4, sizeof(*p->names));
	p->values = calloc(nf + 4, sizeof(*p->values));
	p->value_lens = calloc(nf + 4, sizeof(*p->value_lens));
	p->vidx = calloc(nf + 4, sizeof(*p->vidx));
	p->fmt = malloc((nf + 1) * 64);
	p->text = malloc(nf * ST_FEATURES_TEXT);
	p->record = calloc(nf + 5, sizeof(*p->record));
	p->enc_cap = 4096;
	p->enc = malloc(p->enc_cap);
	p->treader = st_temporal_reader_new(p->st);
	if (!p->out || !p->results || !p->slots || !p->names || !p->values ||
	    !p->value_lens || !p->vidx || !p->fmt || !p->text || !p->record ||
	    !p->enc || !p->treader) {
		err = ST_ENOMEM;
		goto fail;
	}
	if ((err = load_scorer(p, errstr, errstr_size)) ||
	    (err = check_layout(p, errstr, errstr_size)) ||
	    (err = vector_layout(p, errstr, errstr_size)) ||
	    (err = st_observe_new(&p->obs, conf, p->st, !p->opts.replay,
				  errstr, errstr_size)))
		goto fail;
	p->m_in = st_observe_topic(p->obs, 0, conf->transactions_topic);
	p->m_out = st_observe_topic(p->obs, 1, conf->features_topic);
	p->m_dlq_out = st_observe_topic(p->obs, 1, conf->dlq_topic);
	if (p->scorer) {
		p->m_scores_out = st_observe_topic(p->obs, 1, conf->scores_topic);
		p->m_alerts_out = st_observe_topic(p->obs, 1, conf->alerts_topic);
		st_metrics_gauge_set(p->obs->model_version,
				     st_scorer_version(p->scorer));
	}
	if (st_observe_port(p->obs))
		st_log(ST_LOG_NOTICE, "pipeline", "metrics on http://%s/metrics "
		       "(port %d); health on /healthz and /readyz",
		       conf->http_listen, st_observe_port(p->obs));
	/* Outside services. */
	if ((err = st_registry_new(&p->reg, conf->registry_url,
				   (int)conf->registry_timeout_ms, errstr,
				   errstr_size)))
		goto fail;
	for (int i = 0; i < 2 && !p->opts.replay; i++)
		if ((err = st_online_new(i ? &p->online_spare : &p->online,
					 conf->redis_host,
					 (int)conf->redis_port,
					 conf->redis_prefix, conf->redis_ttl_ms,
					 (int)conf->redis_timeout_ms, errstr,
					 errstr_size)))
			goto fail;
	if (*conf->features_topic && !p->opts.replay) {
		fschema = st_features_avro_schema(p->f);
		snprintf(subject, sizeof(subject), "%s-value",
			 conf->features_topic);
		if (!fschema ||
		    (err = st_registry_register(p->reg, subject, fschema,
						&p->fschema_id, errstr,
						errstr_size)) ||
		    (err = st_avro_encoder_new(&p->fenc, fschema,
					       strlen(fschema), errstr,
					       errstr_size)))
			goto fail;
		st_log(ST_LOG_INFO, "pipeline", "features schema registered as "
		       "%s, id %d", subject, p->fschema_id);
	}
	p->eos = conf->exactly_once && !p->opts.replay;
	if (p->eos && !st_config_kafka_get(conf, "transactional.id")) {
		const char *g = st_config_kafka_get(conf, "group.id");

		snprintf(txn_id, sizeof(txn_id), "strata-%s", g ? g : "strata");
		producer_overrides[2] = "transactional.id";
		producer_overrides[3] = txn_id;
		producer_overrides[4] = NULL;
	}
	popts.overrides = producer_overrides;
	popts.dr_msg_cb = delivery;
	popts.opaque = p;
	p->producer = st_kafka_new(conf, ST_KAFKA_PRODUCER, &popts, errstr,
				   errstr_size);
	if (!p->producer) {
		err = ST_EKAFKA;
		goto fail;
	}
	if (p->eos) {
		/* Fences any older instance with this transactional.id and
		 * aborts what it left open. */
		rd_kafka_error_t *kerr = rd_kafka_init_transactions(p->producer,
								    60000);

		if (kerr) {
			err = txn_error(p, kerr, "init transactions", errstr,
					errstr_size);
			goto fail;
		}
	}
	{
		const char *strategy = st_config_kafka_get(
			conf, "partition.assignment.strategy");

		if (strategy && strstr(strategy, "cooperative")) {
			err = st_seterr(errstr, errstr_size, ST_EINVAL,
					"kafka.partition.assignment.strategy="
					"%s: strata needs an eager strategy "
					"(range or roundrobin)", strategy);
			goto fail;
		}
	}
	copts.rebalance_cb = p->opts.replay ? NULL : rebalance;
	copts.error_cb = consumer_error;
	copts.opaque = p;
	p->consumer = st_kafka_new(conf, ST_KAFKA_CONSUMER, &copts, errstr,
				   errstr_size);
	if (!p->consumer) {
		err = ST_EKAFKA;
		goto fail;
	}
	rd_kafka_poll_set_consumer(p->consumer);
	p->cqueue = rd_kafka_queue_get_consumer(p->consumer);
	if (pipe2(p->pipefd, O_NONBLOCK | O_CLOEXEC)) {
		err = st_seterr(errstr, errstr_size, ST_EIO, "pipe: %s",
				strerror(errno));
		goto fail;
	}
	if ((err = st_ingest_new(&p->in, conf, p->st,
				 p->opts.replay ? NULL : p->producer, p->obs,
				 errstr, errstr_size)) ||
	    (err = quiet_cdc(p, errstr, errstr_size)))
		goto fail;
	st_ingest_io_event(p->in, p->pipefd[1]);
	{
		static const char one = 1;

		rd_kafka_queue_io_event_enable(p->cqueue, p->pipefd[1], &one, 1);
	}
	if (p->opts.replay) {
		if ((err = replay_assign(p, errstr, errstr_size)))
			goto fail;
		goto done;
	}
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, conf->transactions_topic,
					  RD_KAFKA_PARTITION_UA);
	rerr = rd_kafka_subscribe(p->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (rerr) {
		err = st_seterr(errstr, errstr_size, ST_EKAFKA,
				"subscribing to %s: %s",
				conf->transactions_topic,
				rd_kafka_err2str(rerr));
		goto fail;
	}
done:
	free(fschema);
	*pp = p;
	return 0;
fail:
	free(fschema);
	st_pipeline_destroy(p);
	return err;
}

void st_pipeline_destroy(st_pipeline_t *p)
{
	pending_t *e;

	if (!p)
		return;
	if (p->kc.running) {
		pthread_join(p->kc.thread, NULL);
		p->kc.running = 0;
		kafka_commit_done(p, 0);
	}
	/* librdkafka's termination rule: every message the application
	 * holds is destroyed before its handle. */
	while (p->head)
		pending_release(p, pending_pop(p));
	if (p->blocked)
		rd_kafka_message_destroy(p->blocked);
	p->blocked = NULL;
	if (p->consumer && p->input_gone) {
		/* librdkafka 2.0 never finishes destroying a consumer whose
		 * partition was deleted under it (fixed upstream in 2.5),
		 * and has no public flag to skip the wait: the handle is
		 * left to the process's exit, and writes to the pipe no
		 * more. */
		if (p->cqueue) {
			rd_kafka_queue_io_event_enable(p->cqueue, -1, NULL, 0);
			rd_kafka_queue_destroy(p->cqueue);
		}
	} else if (p->consumer) {
		rd_kafka_consumer_close(p->consumer);
		if (p->cqueue)
			rd_kafka_queue_destroy(p->cqueue);
		rd_kafka_destroy(p->consumer);
	}
	st_ingest_destroy(p->in);
	if (p->producer) {
		rd_kafka_flush(p->producer, 10000);
		rd_kafka_destroy(p->producer);
	}
	while ((e = p->spare)) {
		p->spare = e->next;
		free(e->fields);
		free(e->buf);
		free(e);
	}
	cache_clear(p);
	for (size_t i = 0; i < p->cache_blocks; i++)
		free(p->cache[i]);
	free(p->cache);
	free(p->cache_index);
	free(p->dirty);
	for (size_t i = 0; i < p->nschemas; i++) {
		st_avro_decoder_free(p->schemas[i].dec);
		free(p->schemas[i].error);
	}
	free(p->schemas);
	st_temporal_reader_free(p->treader);
	st_observe_destroy(p->obs);   /* the HTTP thread reads the state */
	st_state_close(p->st);
	st_online_destroy(p->online);
	st_online_destroy(p->online_spare);
	st_avro_encoder_free(p->fenc);
	st_registry_destroy(p->reg);
	st_features_free(p->f);
	st_avro_reader_free(p->reader);
	if (p->pipefd[0] >= 0) {
		close(p->pipefd[0]);
		close(p->pipefd[1]);
	}
	free(p->parts);
	free(p->out);
	free(p->results);
	free(p->slots);
	free(p->names);
	free(p->values);
	free(p->value_lens);
	free(p->vidx);
	st_vecrec_layout_free(p->vlayout);
	free(p->fmt);
	free(p->text);
	free(p->vecs);
	free(p->vvals);
	free(p->vmap);
	free(p->arena);
	free(p->record);
	free(p->enc);
	free(p->compact_cursor);
	free(p->replay_end);
	free(p->held);
	free(p->probes);
	free(p->hbuf);
	st_scorer_destroy(p->scorer);
	free(p->score_col);
	free(p->rows);
	free(p->scores);
	free(p->srows);
	free(p);
}

const st_pipeline_stats_t *st_pipeline_stats(const st_pipeline_t *p)
{
	return &p->stats;
}

/* ---- the loop --------------------------------------------------------- */

/* A batch that cannot go on: thrown away, retried in 10 s. */
static void batch_failed(st_pipeline_t *p, int err, const char *errstr)
{
	if (p->fatal) {
		st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
		return;
	}
	st_log(ST_LOG_ERR, "pipeline", "%s; batch aborted, retrying in %d s",
	       errstr, err == ST_EFULL ? 10 : 1);
	if (err == ST_EFULL) {
		st_metrics_counter_inc(p->obs->map_full);
		st_metrics_gauge_set(p->obs->stalled_map_full, 1);
		atomic_store(&p->obs->state_ok, 0);
		p->map_full = 1;
	}
	abort_batch(p);
	/* A full map waits for room; anything else (a rebalance under way,
	 * a broker away) is worth another try soon. */
	for (int i = 0; i < (err == ST_EFULL ? 100 : 10) && !*p->stop; i++)
		usleep(100000);
}

/* A batch committed: a stall on a full map, if any, is over. */
static void room_again(st_pipeline_t *p)
{
	if (!p->map_full)
		return;
	st_log(ST_LOG_NOTICE, "pipeline", "LMDB has room again");
	p->map_full = 0;
	st_metrics_gauge_set(p->obs->stalled_map_full, 0);
	atomic_store(&p->obs->state_ok, 1);
}

/* Gauges and readiness, once a second from the pipeline thread. */
static void update_gauges(st_pipeline_t *p)
{
	int64_t now = st_time_now_ms(), lag = st_ingest_update_lag(p->in),
		w = st_ingest_watermark(p->in);

	for (size_t i = 0; i < p->nparts; i++) {
		part_t *pt = &p->parts[i];
		int64_t lo, hi;

		if (!rd_kafka_get_watermark_offsets(p->consumer,
						    p->conf->transactions_topic,
						    pt->partition, &lo, &hi) &&
		    hi > pt->next_offset) {
			lag += hi - pt->next_offset;
			if (pt->lag)
				st_metrics_gauge_set(pt->lag,
						     hi - pt->next_offset);
		} else if (pt->lag) {
			st_metrics_gauge_set(pt->lag, 0);
		}
		if (pt->wm_delay && pt->max_ts >= 0)
			st_metrics_gauge_set_double(pt->wm_delay,
				(double)(now - pt->max_ts) / 1000.0);
	}
	if (w >= 0)
		st_metrics_gauge_set_double(p->obs->cdc_wm_delay,
					    (double)(now - w) / 1000.0);
	atomic_store(&p->obs->lag, lag);
	atomic_store(&p->obs->kafka_assigned, (int)p->nparts);
	atomic_store(&p->obs->redis_ok, !p->redis_down);
	atomic_store(&p->obs->registry_ok, p->blocked == NULL);
}

/* Retention of the temporal store: a slice of keys per call, inside the
 * open write transaction, resuming where the previous slice stopped. */
static int compact_slice(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
	int64_t newest = st_ingest_newest(p->in), now = st_time_mono_us();
	uint64_t removed = 0;
	char h[40];
	int err;

	/* The transaction stream may lag CDC: keep what its slowest assigned
	 * partition can still ask for. */
	for (size_t i = 0; i < p->nparts; i++)
		if (p->parts[i].max_ts >= 0 && p->parts[i].max_ts < newest)
			newest = p->parts[i].max_ts;
	if (now < p->compact_at_us || newest < 0)
		return 0;
	if ((err = st_state_begin(p->st, errstr, errstr_size)))
		return err;
	err = st_temporal_compact(p->st, newest - p->conf->state_retention_ms,
				  1000, &p->compact_cursor,
				  &p->compact_cursor_len, &removed, errstr,
				  errstr_size);
	if (!err && removed)
		st_log(ST_LOG_INFO, "temporal", "retention removed %" PRIu64
		       " versions that ended before %s", removed,
		       st_time_format(newest - p->conf->state_retention_ms, h,
				      sizeof(h)));
	/* A finished scan waits a minute; a partial one goes on soon. */
	p->compact_at_us = now + (p->compact_cursor ? 100000 : 60000000);
	return err;
}

static void report(st_pipeline_t *p)
{
	char wm[40];
	int64_t w = st_ingest_watermark(p->in);
	st_online_stats_t oc = {0};

	if (p->online) {
		st_online_stats_t spare;

		st_online_stats(p->online, &oc);
		st_online_stats(p->online_spare, &spare);
		oc.coalesced += spare.coalesced;
	}
	st_log(ST_LOG_INFO, "pipeline", "events in %" PRIu64 ", out %" PRIu64
	       ", dead letters %" PRIu64 " (late %" PRIu64 "), stale joins %"
	       PRIu64 ", redis %" PRIu64 " written / %" PRIu64 " older "
	       "refused / %" PRIu64 " superseded in the batch, commits %"
	       PRIu64 "; cdc %" PRIu64 " versions, %"
	       PRIu64 " duplicates; CDC watermark %s (%" PRId64 " ms behind "
	       "the clock); pending %zu",
	       p->stats.events_in, p->stats.events_out, p->stats.dead_letters,
	       p->stats.late, p->stats.stale_joins, p->stats.redis_applied,
	       p->stats.redis_rejected, p->stats.redis_coalesced + oc.coalesced,
	       p->stats.commits, p->cdc.versions,
	       p->cdc.duplicates,
	       w < 0 ? "none yet" : st_time_format(w, wm, sizeof(wm)),
	       w < 0 ? 0 : st_time_now_ms() - w, p->npending);
}

/* When the open batch is due to commit by time (state.commit.interval). */
static int64_t commit_due_us(const st_pipeline_t *p)
{
	return p->batch_start_us + p->conf->state_commit_interval_ms * 1000;
}

/* After a commit or a commit's half: a Redis outage holds the stream, a
 * fatal error stops it, anything else throws the batch away. Returns
 * whether it failed. */
static int commit_failed(st_pipeline_t *p, int err, const char *errstr)
{
	if (!err)
		return 0;
	if (err == ST_EREDIS) {
		st_log(ST_LOG_ERR, "pipeline", "%s; holding the stream until "
		       "Redis is back", errstr);
		p->redis_down = 1;
	} else if (p->fatal) {
		st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
	} else {
		batch_failed(p, err, errstr);
	}
	return 1;
}

int st_pipeline_run(st_pipeline_t *p, volatile sig_atomic_t *stop)
{
	int64_t next_report = 0, next_refresh = 0, next_gauges = 0;
	char errstr[1024] = "";
	int err = 0, idle = 0;

	p->stop = stop;
	while (!*stop && !p->fatal) {
		struct pollfd pfd = {p->pipefd[0], POLLIN, 0};
		int64_t now = st_time_mono_us();
		char drain[256];
		int n_cdc = 0, n_in = 0, n_done = 0, timeout;

		p->pass_us = now;

		if (p->redis_down) {
			/* Backpressure: nothing moves until Redis is back. */
			err = commit(p, errstr, sizeof(errstr));
			if (!err) {
				st_log(ST_LOG_NOTICE, "pipeline", "Redis "
				       "reachable again; batch committed");
				p->redis_down = 0;
				room_again(p);
			} else if (err == ST_EREDIS) {
				usleep(500000);
			} else if (p->fatal) {
				st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
			} else {
				/* Redis is back, Kafka failed the batch. */
				p->redis_down = 0;
				batch_failed(p, err, errstr);
			}
			update_gauges(p);
			if (!p->kc.running)
				rd_kafka_poll(p->producer, 0);
			continue;
		}
		/* The transaction in flight committed: LMDB follows. */
		if (p->kc.running && atomic_load(&p->kc.done)) {
			err = commit_collect(p, errstr, sizeof(errstr));
			if (commit_failed(p, err, errstr))
				continue;
			room_again(p);
		}
		if (!p->kc.running &&
		    begin_kafka_txn(p, errstr, sizeof(errstr))) {
			st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
			if (!p->fatal) {
				abort_batch(p);
				usleep(500000);
			}
			continue;
		}
		/* librdkafka's queue IO events do not fire for every message
		 * batch fetched (2.0.x), so the pipe only shortens the wait. */
		timeout = idle < IDLE_PASSES || p->head || p->kc.running ||
			  p->in_flight ? 1 : IDLE_WAIT_MS;
		/* Not past the batch's commit time. */
		if (timeout > 1 && p->batch_start_us &&
		    st_state_write_txn(p->st)) {
			int64_t left = commit_due_us(p) - now;

			if (left < timeout * 1000)
				timeout = left > 1000 ? (int)(left / 1000) : 1;
		}
		if (poll(&pfd, 1, timeout) > 0)
			while (read(p->pipefd[0], drain, sizeof(drain)) > 0)
				;
		/* While a commit is in flight nothing is written to LMDB:
		 * no CDC, no retention, no write-behind. */
		n_cdc = p->kc.running ? 0 : st_ingest_poll(p->in, 256, &p->cdc,
							   errstr,
							   sizeof(errstr));
		if (n_cdc >= 0)
			n_in = consume(p, errstr, sizeof(errstr));
		if (input_topic_gone(p, now)) {
			p->input_gone = 1;
			p->fatal = ST_EKAFKA;
			break;
		}
		if (n_cdc >= 0 && n_in >= 0)
			n_done = process_ready(p, errstr, sizeof(errstr));
		if (n_cdc >= 0 && n_in >= 0 && n_done >= 0 &&
		    !p->kc.running && compact_slice(p, errstr, sizeof(errstr)))
			n_done = -1;
		if (n_cdc < 0 || n_in < 0 || n_done < 0) {
			/* The entry in hand is gone: rewound, done again
			 * (also after a Redis outage a dead letter's wait
			 * for the commit in flight met). */
			batch_failed(p, n_cdc < 0 ? n_cdc : n_in < 0 ? n_in :
				     n_done, errstr);
			continue;
		}
		now = st_time_mono_us();
		idle = n_cdc || n_in || n_done ? 0 :
		       idle < IDLE_PASSES ? idle + 1 : idle;
		if ((n_done || p->in_flight) && !p->redis_down &&
		    (err = flush_online(p, errstr, sizeof(errstr)))) {
			st_log(ST_LOG_ERR, "pipeline", "%s; holding the stream "
			       "until Redis is back", errstr);
			p->redis_down = 1;
			continue;
		}
		/* A light pass leaves time: some of the batch's window
		 * states are written now, so that the commit, while events
		 * wait, has less to write. */
		if (n_done < WRITE_BEHIND_BELOW && !p->kc.running &&
		    st_state_write_txn(p->st) &&
		    (err = cache_write_dirty(p, WRITE_BEHIND_MAX, errstr,
					     sizeof(errstr)))) {
			batch_failed(p, err, errstr);
			continue;
		}
		/* Redis is written every pass; the state, the offsets and the
		 * Kafka outputs commit together, every state.commit.interval
		 * or state.commit.events events, the Kafka transaction on the
		 * commit thread. */
		if (!p->kc.running && st_state_write_txn(p->st)) {
			if (!p->batch_start_us)
				p->batch_start_us = now;
			if (p->batch_events >=
			    (size_t)p->conf->state_commit_events ||
			    now >= commit_due_us(p)) {
				err = commit_begin(p, 1, errstr,
						   sizeof(errstr));
				if (!commit_failed(p, err, errstr) &&
				    !p->kc.running)
					room_again(p);
			}
		}
		/* While a commit is in flight the producer is the commit
		 * thread's, and new CDC partitions wait. */
		if (!p->kc.running)
			rd_kafka_poll(p->producer, 0);
		if (!p->kc.running && now >= next_refresh) {
			if (st_ingest_refresh(p->in, errstr, sizeof(errstr)))
				st_log(ST_LOG_WARNING, "pipeline", "%s", errstr);
			/* New CDC partitions: where Kafka has their dead
			 * letters up to, before they are read. */
			if (st_ingest_nparts(p->in) != p->cdc_quiet_n &&
			    quiet_cdc(p, errstr, sizeof(errstr))) {
				st_log(ST_LOG_ERR, "pipeline", "%s", errstr);
				p->fatal = ST_EKAFKA;
				break;
			}
			next_refresh = now + 10000000;
		}
		if (now >= next_report) {
			report(p);
			next_report = now + 10000000;
		}
		if (now >= next_gauges) {
			update_gauges(p);
			next_gauges = now + 1000000;
		}
		if (p->opts.replay && replay_done(p))
			break;
	}
	if (p->fatal) {
		st_log(ST_LOG_ERR, "pipeline", "stopping after a fatal error "
		       "(%s)", st_strerror(p->fatal));
		abort_batch(p);
		return p->fatal;
	}
	st_log(ST_LOG_NOTICE, "pipeline", "stopping: committing processed "
	       "input");
	err = commit(p, errstr, sizeof(errstr));
	if (err)
		st_log(ST_LOG_ERR, "pipeline", "final commit: %s", errstr);
	report(p);
	return err;
}
