/*
 * online.h -- the writer of the online store: feature vectors into Redis.
 *
 * One Redis hash per entity, under the key `<prefix>:<entity>` (prefix
 * "strata:user", entity "42": "strata:user:42"). It holds every feature
 * of the newest vector (name -> value string) and two fields of strata's:
 *
 *   _event_time   the vector's event time, ms since the epoch (decimal)
 *   _seq          the input position it reflects (decimal int64; strata
 *                 passes partition << 40 | offset, opaque here)
 *
 * A write never replaces a newer vector with an older one. One Lua script
 * (loaded with SCRIPT LOAD at every connect, run with EVALSHA) compares
 * (event_time, seq) with the stored (_event_time, _seq), as a pair, in
 * Redis, atomically for each key:
 *   - stored pair greater: nothing changes; the write counts as rejected;
 *   - otherwise (no hash, or a pair lower or equal): the key is deleted
 *     and written anew with every field of the vector, so no field of an
 *     older vector lingers; then PEXPIRE ttl when a TTL is configured.
 *     An equal pair rewrites: re-applying a write after a crash is
 *     harmless. Without a TTL the key has none (DEL dropped any).
 * The final content of a key is thus the same whatever the order in which
 * writes arrive. The key belongs to strata: a key of another type under
 * the prefix is replaced by the first write. Needs Redis >= 4.0 (HSET
 * with several fields) and a single Redis, not a Cluster (one script call
 * names several keys); a Redis that lost its script cache (SCRIPT FLUSH,
 * restart, failover) answers NOSCRIPT, and the script is loaded again and
 * the writes of those calls resent transparently.
 *
 * Writes are coalesced and pipelined: st_online_queue() keeps at most one
 * write per entity in the queue, the one with the greatest (event_time,
 * seq) pair (an equal pair: the later call's), encoded and ready to send
 * (no I/O); the others never reach Redis and count as coalesced (see
 * st_online_stats()). Since Redis would have kept the same vector, this
 * changes nothing but the load. st_online_flush() sends the whole queue
 * in one go, ST_ONLINE_CALL_WRITES writes per script call at most, and
 * reads every reply. A failed flush keeps the queue: the next flush
 * resends all of it, which is safe because every write is idempotent.
 * Every write that st_online_queue() accepted is counted once, when it
 * leaves the queue: as coalesced, or by the successful flush that sent it
 * (as applied or rejected_older), or not at all when
 * st_online_destroy() drops it.
 *
 * Errors: ST_EINVAL (bad argument), ST_ENOMEM, ST_EREDIS (unreachable,
 * connection lost, timed out, or an error reply such as OOM or READONLY).
 *
 * Thread: an st_online_t is used by one thread at a time; separate
 * objects are independent. The process must ignore SIGPIPE (main.c does):
 * hiredis writes with write(2), and a server that goes away would
 * otherwise kill the process.
 */
#ifndef ST_ONLINE_H
#define ST_ONLINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_online st_online_t;

/* Fields a vector may have (the Lua script unpacks them as arguments). */
#define ST_ONLINE_FIELDS_MAX 1024

/* Writes per script call, at most; fewer when their fields add up to
 * more than 4096 arguments (a single write may exceed that). 32 spreads
 * the fixed cost of a call (about a sixth of a lone write's) thinly
 * enough; larger calls gain little and block other clients longer (32
 * vectors of 15 fields keep Redis busy for a few hundred microseconds). */
#define ST_ONLINE_CALL_WRITES 32

/* Counters since st_online_new(), for metrics. */
typedef struct {
	uint64_t coalesced; /* writes dropped in the queue for a newer one
			     * (or an equal one queued later) */
	uint64_t calls;     /* script calls sent, resends included */
} st_online_stats_t;

/*
 * Connects to host:port (TCP, keepalive on) and loads the script.
 * `prefix` (non-empty) and `host` are copied. ttl_ms > 0 sets a PEXPIRE
 * on every key written; 0 or less: no expiry. timeout_ms (> 0) bounds
 * the connect and each socket read or write (SO_RCVTIMEO/SO_SNDTIMEO),
 * not a whole flush. Returns 0 and *op (release with
 * st_online_destroy()), ST_EINVAL, ST_ENOMEM, or ST_EREDIS with errstr
 * when Redis is unreachable or refuses the script.
 */
int st_online_new(st_online_t **op, const char *host, int port,
		  const char *prefix, int64_t ttl_ms, int timeout_ms,
		  char *errstr, size_t errstr_size);

/*
 * Queues the write of one vector for entity[0..entity_len) (any bytes).
 * names[i] are NUL-terminated feature names, neither "_event_time" nor
 * "_seq"; values[i] has value_lens[i] bytes (value_lens NULL: values are
 * NUL-terminated). When the queue already holds a write for the entity,
 * only the one with the greater (event_time_ms, seq) pair stays (this
 * one on an equal pair) and the other counts as coalesced. Everything is
 * copied into the queue, already encoded for Redis, before return: the
 * arguments are borrowed for the call only. No I/O. Allocates only to
 * grow the queue beyond its largest size so far.
 * Returns 0, ST_EINVAL (bad name, nfields > ST_ONLINE_FIELDS_MAX), or
 * ST_ENOMEM (the queue is left as it was).
 */
int st_online_queue(st_online_t *o, const char *entity, size_t entity_len,
		    int64_t event_time_ms, int64_t seq, size_t nfields,
		    const char *const *names, const char *const *values,
		    const size_t *value_lens);

/*
 * Sends every queued write (one pipeline of script calls of up to
 * ST_ONLINE_CALL_WRITES writes) and reads every reply. When the
 * connection is broken (an earlier failure), makes one attempt to
 * reconnect and reload the script first. On 0 the queue is empty and
 * *applied / *rejected_older (each may be NULL) count the writes of this
 * send that were stored / refused as older than the stored vector; a
 * resent batch counts each write once more, by what it did this time
 * (an equal pair is stored again and counts as applied). Writes
 * coalesced away in the queue are in neither count (st_online_stats()).
 * Calls answered NOSCRIPT are resent after SCRIPT LOAD, and only they.
 * On ST_EREDIS (connect refused, connection lost, timeout, or an error
 * reply other than NOSCRIPT) the connection is closed, the queue is kept
 * whole, both counts are 0, and errstr says why; some writes may have
 * been applied. The caller retries later (with backoff): the next flush
 * reconnects and resends everything. ST_ENOMEM leaves the queue whole.
 */
int st_online_flush(st_online_t *o, uint64_t *applied,
		    uint64_t *rejected_older, char *errstr,
		    size_t errstr_size);

/*
 * Sends every queued write like st_online_flush() but returns without
 * reading the replies, so that the caller works while Redis does; the
 * next st_online_flush() reads them (and does what a flush does with
 * them: counts, NOSCRIPT resends, on failure keeps the queue whole and
 * resends it on the flush after). Nothing may be queued in between.
 * Returns 0 (also when the queue is empty), or ST_EREDIS / ST_ENOMEM with
 * the connection closed and the queue kept whole.
 */
int st_online_send(st_online_t *o, char *errstr, size_t errstr_size);

/* Writes queued and not yet acknowledged by a successful flush: one per
 * entity at most, after coalescing. */
size_t st_online_pending(const st_online_t *o);

/* Copies the counters into *stats. */
void st_online_stats(const st_online_t *o, st_online_stats_t *stats);

/* Closes the connection and frees everything; queued writes are dropped.
 * NULL is allowed. */
void st_online_destroy(st_online_t *o);

/*
 * Writes the key `<prefix>:<entity>` and a NUL after it into buf. The key
 * may contain any bytes (entity is binary). Returns its length (without
 * the NUL), or ST_ERANGE when size cannot hold key and NUL. Pure.
 */
int st_online_key(const char *prefix, const char *entity, size_t entity_len,
		  char *buf, size_t size);

#endif
