/* online.c -- feature vectors into Redis hashes, newest wins, coalesced in
 * the queue, several per script call, pipelined. */
#include "online.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "error.h"

/*
 * KEYS[1..K]: the keys. ARGV[1]: TTL ms ("0": none); then per key, in the
 * order of KEYS: event time, seq, the number of fields n, and n name,
 * value pairs. Returns an array of K integers: 1 when the key was
 * written, 0 when its stored pair is greater. cmp() compares canonical
 * decimal int64 strings exactly (Lua numbers are doubles, exact only
 * below 2^53, and Lua compares strings with strcoll()): by sign, then
 * length, then numerically in two parts of at most 15 digits. A key of
 * another type reads as no vector.
 */
static const char script[] =
	"local function cmp(a, b)\n"
	"  if a == b then return 0 end\n"
	"  local neg = a:byte(1) == 45\n"
	"  if neg ~= (b:byte(1) == 45) then return neg and -1 or 1 end\n"
	"  if neg then a, b = b:sub(2), a:sub(2) end\n"
	"  if #a ~= #b then return #a < #b and -1 or 1 end\n"
	"  local n = #a - 15\n"
	"  if n > 0 then\n"
	"    local x, y = tonumber(a:sub(1, n)), tonumber(b:sub(1, n))\n"
	"    if x ~= y then return x < y and -1 or 1 end\n"
	"    a, b = a:sub(n + 1), b:sub(n + 1)\n"
	"  end\n"
	"  return tonumber(a) < tonumber(b) and -1 or 1\n"
	"end\n"
	"local ttl = ARGV[1]\n"
	"local res = {}\n"
	"local a = 2\n"
	"for i, k in ipairs(KEYS) do\n"
	"  local et, sq = ARGV[a], ARGV[a + 1]\n"
	"  local last = a + 2 + 2 * tonumber(ARGV[a + 2])\n"
	"  local ok = 1\n"
	"  local cur = redis.pcall('HMGET', k, '_event_time', '_seq')\n"
	"  if cur.err == nil and cur[1] and cur[2] then\n"
	"    local c = cmp(cur[1], et)\n"
	"    if c == 0 then c = cmp(cur[2], sq) end\n"
	"    if c > 0 then ok = 0 end\n"
	"  end\n"
	"  if ok == 1 then\n"
	"    redis.call('DEL', k)\n"
	"    redis.call('HSET', k, '_event_time', et, '_seq', sq,\n"
	"               unpack(ARGV, a + 3, last))\n"
	"    if ttl ~= '0' then redis.call('PEXPIRE', k, ttl) end\n"
	"  end\n"
	"  res[i] = ok\n"
	"  a = last + 1\n"
	"end\n"
	"return res\n";

#define SHA_LEN 40
/* Bytes a RESP header or bulk header may take beyond its payload:
 * '*' or '$', 20 digits, CRLF, and the payload's CRLF. */
#define HDR_MAX 25
/* Redis's default proto-max-bulk-len. */
#define VALUE_MAX (512u << 20)
/* Writes per script call, at most (see online.h). */
#define CALL_WRITES ST_ONLINE_CALL_WRITES
/* Arguments of a script call beyond which no further write joins it (a
 * single write may have more; online.h says 4096). */
#define CALL_ARGS 4096
/* Bytes of commands formatted and written at a time: the buffer stays
 * small however long the queue grew while Redis was away, and the next
 * chunk goes out while replies are read. */
#define CHUNK_BYTES (256u << 10)
/* Unused bytes of the queue (left by writes coalesced away that did not
 * fit in place) that trigger a compaction when they also outweigh the
 * live ones. */
#define GARBAGE_MIN (256u << 10)

/* One queued write: the newest of its entity since the last flush. */
typedef struct {
	uint64_t hash;          /* of the entity */
	int64_t event_time, seq;
	size_t off;             /* its encoding in buf: key bulk, ARGV bulks */
	size_t len;             /* bytes of that encoding */
	size_t room;            /* bytes at off it may use (>= len) */
	size_t key_len;         /* bytes of the key bulk */
	size_t entity_len;      /* bytes of the entity, at the key's end */
	size_t nargs;           /* ARGV entries: 3 + 2 * nfields */
} slot_t;

/* An entry of the entity -> slot table (open addressing, linear probing);
 * in use when gen is the table's current generation. */
typedef struct {
	uint32_t gen, slot;
} entry_t;

struct st_online {
	redisContext *c;        /* NULL while disconnected */
	char *host;
	int port;
	struct timeval tv;
	char *prefix;
	size_t prefix_len;
	char sha[SHA_LEN + 1];  /* of the script, from SCRIPT LOAD */
	/* "$7 EVALSHA $40 <sha>", CRLF-separated: every command's arguments
	 * after "*<argc>" and before the number of keys. */
	char head[72];
	size_t head_len;
	char ttl_arg[32];       /* the TTL as a bulk string: "$1\r\n0\r\n" */
	size_t ttl_arg_len;
	char *buf;              /* encodings of the queued writes */
	size_t len, cap;
	size_t live;            /* bytes of buf that slots use */
	slot_t *slots;          /* the queue, in order of first arrival */
	size_t *retry;          /* slots whose call was answered NOSCRIPT */
	size_t n, ncap;
	entry_t *table;         /* tcap entries, a power of two */
	size_t tcap;
	uint32_t gen;           /* entries of another generation are free */
	char *out;              /* commands being sent; spare for compaction */
	int in_flight;          /* the queue was sent, its replies not read */
	size_t out_cap;
	st_online_stats_t stats;
};

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_i64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		return put_u64(p, 0 - (uint64_t)v);
	}
	return put_u64(p, (uint64_t)v);
}

static char *put_crlf(char *p)
{
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* "$<len>\r\n" */
static char *put_bulk_hdr(char *p, size_t len)
{
	*p++ = '$';
	if (len < 10) {            /* most values and names: no loop */
		*p++ = (char)('0' + len);
	} else if (len < 100) {
		*p++ = (char)('0' + len / 10);
		*p++ = (char)('0' + len % 10);
	} else {
		p = put_u64(p, len);
	}
	return put_crlf(p);
}

static char *put_bulk(char *p, const void *s, size_t len)
{
	p = put_bulk_hdr(p, len);
	memcpy(p, s, len);
	return put_crlf(p + len);
}

/* A decimal as a bulk string. */
static char *put_bulk_u64(char *p, uint64_t v)
{
	char num[20];

	return put_bulk(p, num, (size_t)(put_u64(num, v) - num));
}

int st_online_key(const char *prefix, const char *entity, size_t entity_len,
		  char *buf, size_t size)
{
	size_t plen = strlen(prefix);

	if (plen > INT_MAX / 2 || entity_len > (size_t)INT_MAX - plen - 2 ||
	    plen + 1 + entity_len + 1 > size)
		return ST_ERANGE;
	memcpy(buf, prefix, plen);
	buf[plen] = ':';
	if (entity_len)
		memcpy(buf + plen + 1, entity, entity_len);
	buf[plen + 1 + entity_len] = '\0';
	return (int)(plen + 1 + entity_len);
}

static void disconnect(st_online_t *o)
{
	if (o->c) {
		redisFree(o->c);
		o->c = NULL;
	}
}

/* A send or receive on the socket that ran out of redis.timeout. */
static int timed_out(const st_online_t *o, const char *what, char *errstr,
		     size_t errstr_size)
{
	return st_seterr(errstr, errstr_size, ST_EREDIS,
			 "redis %s:%d: %s: timed out after %ld ms", o->host,
			 o->port, what, (long)o->tv.tv_sec * 1000 +
			 (long)o->tv.tv_usec / 1000);
}

/* The error of a failed hiredis call on c, as ST_EREDIS. */
static int context_err(const st_online_t *o, const redisContext *c,
		       const char *what, char *errstr, size_t errstr_size)
{
	if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		return timed_out(o, what, errstr, errstr_size);
	if (c->err == REDIS_ERR_EOF)
		return st_seterr(errstr, errstr_size, ST_EREDIS,
				 "redis %s:%d: %s: connection closed by the "
				 "server", o->host, o->port, what);
	return st_seterr(errstr, errstr_size, ST_EREDIS, "redis %s:%d: %s: %s",
			 o->host, o->port, what, c->errstr);
}

/* SCRIPT LOAD on the live connection. The SHA is that of the script's
 * text, so it never changes: the queued commands keep theirs. */
static int load_script(st_online_t *o, char *errstr, size_t errstr_size)
{
	const char *argv[3] = {"SCRIPT", "LOAD", script};
	size_t lens[3] = {6, 4, sizeof(script) - 1};
	redisReply *r;
	int err = 0;

	r = redisCommandArgv(o->c, 3, argv, lens);
	if (!r) {
		err = context_err(o, o->c, "SCRIPT LOAD", errstr, errstr_size);
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		err = st_seterr(errstr, errstr_size, ST_EREDIS,
				"redis %s:%d: SCRIPT LOAD: %s", o->host,
				o->port, r->str);
		goto out;
	}
	if (r->type != REDIS_REPLY_STRING || r->len != SHA_LEN ||
	    (o->sha[0] && memcmp(o->sha, r->str, SHA_LEN))) {
		err = st_seterr(errstr, errstr_size, ST_EREDIS,
				"redis %s:%d: SCRIPT LOAD: unexpected reply",
				o->host, o->port);
		goto out;
	}
	memcpy(o->sha, r->str, SHA_LEN);
	o->sha[SHA_LEN] = '\0';
out:
	freeReplyObject(r);
	return err;
}

static int connect_redis(st_online_t *o, char *errstr, size_t errstr_size)
{
	redisContext *c;
	int err = 0;

	c = redisConnectWithTimeout(o->host, o->port, o->tv);
	if (!c)
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "redis %s:%d: out of memory", o->host,
				 o->port);
	if (c->err) {
		err = context_err(o, c, "connect", errstr, errstr_size);
		goto out;
	}
	if (redisSetTimeout(c, o->tv) != REDIS_OK ||
	    redisEnableKeepAlive(c) != REDIS_OK) {
		err = context_err(o, c, "socket options", errstr,
				  errstr_size);
		goto out;
	}
	o->c = c;
	if ((err = load_script(o, errstr, errstr_size)))
		goto out;
	c = NULL;
out:
	if (c) {
		redisFree(c);
		o->c = NULL;
	}
	return err;
}

int st_online_new(st_online_t **op, const char *host, int port,
		  const char *prefix, int64_t ttl_ms, int timeout_ms,
		  char *errstr, size_t errstr_size)
{
	st_online_t *o = NULL;
	char num[24], *p;
	size_t nlen;
	int err = 0;

	*op = NULL;
	if (!host || !*host || port <= 0 || port > 65535 || !prefix ||
	    !*prefix || timeout_ms <= 0)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "online store: need a host, a port in "
				 "1..65535, a non-empty prefix and a timeout "
				 "> 0");
	o = calloc(1, sizeof(*o));
	if (!o || !(o->host = strdup(host)) || !(o->prefix = strdup(prefix))) {
		err = st_seterr(errstr, errstr_size, ST_ENOMEM,
				"online store: out of memory");
		goto out;
	}
	o->port = port;
	o->prefix_len = strlen(prefix);
	o->tv.tv_sec = timeout_ms / 1000;
	o->tv.tv_usec = (timeout_ms % 1000) * 1000;
	o->gen = 1;
	num[0] = '0';
	nlen = ttl_ms > 0 ? (size_t)(put_i64(num, ttl_ms) - num) : 1;
	p = put_bulk(o->ttl_arg, num, nlen);
	o->ttl_arg_len = (size_t)(p - o->ttl_arg);
	if ((err = connect_redis(o, errstr, errstr_size)))
		goto out;
	p = put_bulk(o->head, "EVALSHA", 7);
	p = put_bulk(p, o->sha, SHA_LEN);
	o->head_len = (size_t)(p - o->head);
	*op = o;
	o = NULL;
out:
	st_online_destroy(o);
	return err;
}

void st_online_destroy(st_online_t *o)
{
	if (!o)
		return;
	disconnect(o);
	free(o->host);
	free(o->prefix);
	free(o->buf);
	free(o->slots);
	free(o->retry);
	free(o->table);
	free(o->out);
	free(o);
}

size_t st_online_pending(const st_online_t *o)
{
	return o->n;
}

void st_online_stats(const st_online_t *o, st_online_stats_t *stats)
{
	*stats = o->stats;
}

/* FNV-1a, then a finalizer that spreads it into the low bits the table
 * indexes with. */
static uint64_t hash_entity(const char *entity, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)entity[i];
		h *= 0x100000001b3u;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93u;
	h ^= h >> 32;
	return h;
}

static const char *slot_entity(const st_online_t *o, const slot_t *s)
{
	return o->buf + s->off + s->key_len - 2 - s->entity_len;
}

/* The slot queued for the entity, or NULL. */
static slot_t *find(st_online_t *o, uint64_t h, const char *entity,
		    size_t len)
{
	size_t mask = o->tcap - 1, i;

	if (!o->tcap)
		return NULL;
	for (i = h & mask; o->table[i].gen == o->gen; i = (i + 1) & mask) {
		slot_t *s = &o->slots[o->table[i].slot];

		if (s->hash == h && s->entity_len == len &&
		    (!len || !memcmp(slot_entity(o, s), entity, len)))
			return s;
	}
	return NULL;
}

static void insert(entry_t *table, size_t tcap, uint32_t gen, uint64_t h,
		   size_t slot)
{
	size_t mask = tcap - 1, i;

	for (i = h & mask; table[i].gen == gen; i = (i + 1) & mask)
		;
	table[i].gen = gen;
	table[i].slot = (uint32_t)slot;
}

/* Room for one more slot: slot and retry arrays, and a table at most
 * half full. Leaves the queue as it was on failure. */
static int reserve_slot(st_online_t *o)
{
	if (o->n >= UINT32_MAX - 1)
		return ST_ENOMEM;
	if (o->n == o->ncap) {
		size_t ncap = o->ncap ? o->ncap * 2 : 1024;
		slot_t *slots;
		size_t *retry;

		if (!(slots = realloc(o->slots, ncap * sizeof(*slots))))
			return ST_ENOMEM;
		o->slots = slots;
		if (!(retry = realloc(o->retry, ncap * sizeof(*retry))))
			return ST_ENOMEM;
		o->retry = retry;
		o->ncap = ncap;
	}
	if (2 * (o->n + 1) > o->tcap) {
		size_t tcap = o->tcap ? o->tcap * 2 : 2048;
		entry_t *table = calloc(tcap, sizeof(*table));

		if (!table)
			return ST_ENOMEM;
		for (size_t i = 0; i < o->n; i++)
			insert(table, tcap, 1, o->slots[i].hash, i);
		free(o->table);
		o->table = table;
		o->tcap = tcap;
		o->gen = 1;
	}
	return 0;
}

/* Room for `need` more bytes in buf. */
static int reserve_bytes(st_online_t *o, size_t need)
{
	size_t cap = o->cap ? o->cap : 64 << 10;
	char *buf;

	if (o->cap - o->len >= need)
		return 0;
	while (cap - o->len < need)
		cap *= 2;
	if (!(buf = realloc(o->buf, cap)))
		return ST_ENOMEM;
	o->buf = buf;
	o->cap = cap;
	return 0;
}

/* Room for `need` bytes in out, keeping its first `keep`. */
static int reserve_out(st_online_t *o, size_t keep, size_t need)
{
	size_t cap = o->out_cap ? o->out_cap : 64 << 10;
	char *out;

	if (o->out_cap >= need)
		return 0;
	while (cap < need)
		cap *= 2;
	if (keep) {
		out = realloc(o->out, cap);
	} else {
		free(o->out);
		o->out = NULL;
		o->out_cap = 0;
		out = malloc(cap);
	}
	if (!out)
		return ST_ENOMEM;
	o->out = out;
	o->out_cap = cap;
	return 0;
}

/* When the bytes left unused by coalesced writes outweigh the live ones,
 * copies the live encodings into out, in queue order, and swaps the two
 * buffers. Optional: skipped when out cannot grow. */
static void compact(st_online_t *o)
{
	size_t garbage = o->len - o->live, at = 0, cap;
	char *t;

	if (garbage < GARBAGE_MIN || garbage < o->live ||
	    reserve_out(o, 0, o->live))
		return;
	for (size_t i = 0; i < o->n; i++) {
		slot_t *s = &o->slots[i];

		memcpy(o->out + at, o->buf + s->off, s->len);
		s->off = at;
		s->room = s->len;
		at += s->len;
	}
	t = o->buf;
	o->buf = o->out;
	o->out = t;
	cap = o->cap;
	o->cap = o->out_cap;
	o->out_cap = cap;
	o->len = at;
}

int st_online_queue(st_online_t *o, const char *entity, size_t entity_len,
		    int64_t event_time_ms, int64_t seq, size_t nfields,
		    const char *const *names, const char *const *values,
		    const size_t *value_lens)
{
	char et[24], sq[24];
	size_t etl, sql, need, key_len, len, i;
	size_t name_lens[ST_ONLINE_FIELDS_MAX];
	uint64_t h;
	slot_t *s;
	char *start, *p;
	int err;

	if (o->in_flight)
		return ST_EINVAL;
	if ((!entity && entity_len) || entity_len > VALUE_MAX ||
	    nfields > ST_ONLINE_FIELDS_MAX ||
	    (nfields && (!names || !values)))
		return ST_EINVAL;
	etl = (size_t)(put_i64(et, event_time_ms) - et);
	sql = (size_t)(put_i64(sq, seq) - sq);
	need = HDR_MAX + o->prefix_len + 1 + entity_len + 3 * HDR_MAX + etl +
	       sql + 20;
	for (i = 0; i < nfields; i++) {
		size_t vlen;

		if (!names[i] || (names[i][0] == '_' &&
				  (!strcmp(names[i], "_event_time") ||
				   !strcmp(names[i], "_seq"))))
			return ST_EINVAL;
		vlen = value_lens ? value_lens[i] :
		       values[i] ? strlen(values[i]) : 0;
		if ((!values[i] && vlen) || vlen > VALUE_MAX)
			return ST_EINVAL;
		name_lens[i] = strlen(names[i]);
		need += 2 * HDR_MAX + name_lens[i] + vlen;
	}
	h = hash_entity(entity, entity_len);
	s = find(o, h, entity, entity_len);
	if (s && (s->event_time > event_time_ms ||
		  (s->event_time == event_time_ms && s->seq > seq))) {
		o->stats.coalesced++;
		return 0;
	}
	if (!s && (err = reserve_slot(o)))
		return err;
	compact(o);
	if ((err = reserve_bytes(o, need)))
		return err;
	start = p = o->buf + o->len;
	p = put_bulk_hdr(p, o->prefix_len + 1 + entity_len);
	memcpy(p, o->prefix, o->prefix_len);
	p += o->prefix_len;
	*p++ = ':';
	if (entity_len)
		memcpy(p, entity, entity_len);
	p = put_crlf(p + entity_len);
	key_len = (size_t)(p - start);
	p = put_bulk(p, et, etl);
	p = put_bulk(p, sq, sql);
	p = put_bulk_u64(p, nfields);
	for (i = 0; i < nfields; i++) {
		size_t vlen = value_lens ? value_lens[i] :
			      values[i] ? strlen(values[i]) : 0;

		p = put_bulk(p, names[i], name_lens[i]);
		p = put_bulk(p, vlen ? values[i] : "", vlen);
	}
	len = (size_t)(p - start);
	if (s) {
		o->stats.coalesced++;
		o->live -= s->len;
		if (len <= s->room) {
			memcpy(o->buf + s->off, start, len);
		} else {
			s->off = o->len;
			s->room = len;
			o->len += len;
		}
	} else {
		s = &o->slots[o->n];
		s->hash = h;
		s->off = o->len;
		s->room = len;
		s->key_len = key_len;
		s->entity_len = entity_len;
		insert(o->table, o->tcap, o->gen, h, o->n);
		o->n++;
		o->len += len;
	}
	s->len = len;
	s->event_time = event_time_ms;
	s->seq = seq;
	s->nargs = 3 + 2 * nfields;
	o->live += len;
	return 0;
}

static const slot_t *slot_at(const st_online_t *o, const size_t *idx,
			     size_t k)
{
	return &o->slots[idx ? idx[k] : k];
}

/* The end of the script call that starts at write `from` of the list:
 * CALL_WRITES writes at most, and no more than CALL_ARGS arguments
 * unless the call holds one write. */
static size_t call_end(const st_online_t *o, const size_t *idx, size_t count,
		       size_t from)
{
	size_t k = from, args = 0;

	while (k < count && k - from < CALL_WRITES) {
		size_t a = 1 + slot_at(o, idx, k)->nargs;

		if (k > from && args + a > CALL_ARGS)
			break;
		args += a;
		k++;
	}
	return k;
}

/*
 * Writes out[0..used) to the connection's socket, after whatever hiredis
 * still holds (nothing: every command before went out whole). Straight
 * to the socket, not copied into hiredis's buffer first; the replies are
 * read through hiredis as before.
 */
static int write_out(st_online_t *o, size_t used, char *errstr,
		     size_t errstr_size)
{
	size_t off = 0;

	for (int done = !sdslen(o->c->obuf); !done;)
		if (redisBufferWrite(o->c, &done) != REDIS_OK)
			return context_err(o, o->c, "EVALSHA", errstr,
					   errstr_size);
	while (off < used) {
		ssize_t n = send(o->c->fd, o->out + off, used - off,
				 MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return timed_out(o, "EVALSHA", errstr, errstr_size);
		else
			return st_seterr(errstr, errstr_size, ST_EREDIS,
					 "redis %s:%d: EVALSHA: %s", o->host,
					 o->port, n ? strerror(errno) :
					 "nothing written");
	}
	return 0;
}

/* Sends script calls from write `from` on, up to CHUNK_BYTES of them (at
 * least one). Returns the write after the last one sent; *err is set
 * (with errstr) on an error. */
static size_t send_chunk(st_online_t *o, const size_t *idx, size_t count,
			 size_t from, int *err, char *errstr,
			 size_t errstr_size)
{
	size_t used = 0, k = from, calls = 0;

	while (k < count && used < CHUNK_BYTES) {
		size_t end = call_end(o, idx, count, k), argc = 4 + end - k;
		size_t need = used + 3 * HDR_MAX + o->head_len + o->ttl_arg_len;
		char *p;

		for (size_t j = k; j < end; j++) {
			argc += slot_at(o, idx, j)->nargs;
			need += slot_at(o, idx, j)->len;
		}
		if ((*err = reserve_out(o, used, need)))
			return k;
		p = o->out + used;
		*p++ = '*';
		p = put_crlf(put_u64(p, argc));
		memcpy(p, o->head, o->head_len);
		p = put_bulk_u64(p + o->head_len, end - k);
		for (size_t j = k; j < end; j++) {
			const slot_t *s = slot_at(o, idx, j);

			memcpy(p, o->buf + s->off, s->key_len);
			p += s->key_len;
		}
		memcpy(p, o->ttl_arg, o->ttl_arg_len);
		p += o->ttl_arg_len;
		for (size_t j = k; j < end; j++) {
			const slot_t *s = slot_at(o, idx, j);

			memcpy(p, o->buf + s->off + s->key_len,
			       s->len - s->key_len);
			p += s->len - s->key_len;
		}
		used = (size_t)(p - o->out);
		calls++;
		k = end;
	}
	if (!(*err = write_out(o, used, errstr, errstr_size)))
		o->stats.calls += calls;
	return k;
}

/* The reply to one script call of `n` writes: adds to *ok and *older.
 * Returns 0, 1 for NOSCRIPT, or ST_EREDIS. */
static int call_result(const st_online_t *o, const redisReply *r, size_t n,
		       uint64_t *ok, uint64_t *older, char *errstr,
		       size_t errstr_size)
{
	if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8))
		return 1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == n) {
		for (size_t i = 0; i < n; i++) {
			const redisReply *e = r->element[i];

			if (e->type != REDIS_REPLY_INTEGER ||
			    (e->integer != 0 && e->integer != 1))
				goto bad;
			if (e->integer)
				(*ok)++;
			else
				(*older)++;
		}
		return 0;
	}
bad:
	return st_seterr(errstr, errstr_size, ST_EREDIS,
			 "redis %s:%d: EVALSHA: %s", o->host, o->port,
			 r->type == REDIS_REPLY_ERROR ? r->str :
			 "unexpected reply");
}

/* Reads the reply to the script call of writes k.. of idx (or of the
 * queue), counts it, lists the writes of a call answered NOSCRIPT in
 * o->retry, and moves *k past the call. */
static int read_call(st_online_t *o, const size_t *idx, size_t count,
		     size_t *k, uint64_t *ok, uint64_t *older, size_t *nretry,
		     char *errstr, size_t errstr_size)
{
	size_t end = call_end(o, idx, count, *k);
	void *reply;
	int res;

	if (redisGetReply(o->c, &reply) != REDIS_OK)
		return context_err(o, o->c, "EVALSHA", errstr, errstr_size);
	res = call_result(o, reply, end - *k, ok, older, errstr, errstr_size);
	freeReplyObject(reply);
	if (res < 0)
		return res;
	for (; *k < end; (*k)++)
		if (res)
			o->retry[(*nretry)++] = idx ? idx[*k] : *k;
	if (*k < count)
		st_crash_point("redis_mid_pipeline");
	return 0;
}

/*
 * Sends the writes idx[0..count) (the whole queue when idx is NULL), in
 * script calls, and reads the replies, counting results into *ok and
 * *older. The writes of calls answered NOSCRIPT are listed in o->retry
 * (written in place over idx when idx is o->retry: entry j is written
 * only after entry j was read and sent), their number into *nretry.
 */
static int exchange(st_online_t *o, const size_t *idx, size_t count,
		    uint64_t *ok, uint64_t *older, size_t *nretry,
		    char *errstr, size_t errstr_size)
{
	size_t sent, mark = 0, k = 0;
	int err = 0;

	*nretry = 0;
	sent = send_chunk(o, idx, count, 0, &err, errstr, errstr_size);
	while (k < count && !err) {
		if (k == mark && sent < count) {
			mark = sent;
			sent = send_chunk(o, idx, count, sent, &err, errstr,
					  errstr_size);
			if (err)
				break;
		}
		err = read_call(o, idx, count, &k, ok, older, nretry, errstr,
				errstr_size);
	}
	if (err == ST_ENOMEM)
		st_seterr(errstr, errstr_size, ST_ENOMEM,
			  "online store: out of memory");
	return err;
}

/* Reads the replies to the queue st_online_send() sent; the writes of
 * calls answered NOSCRIPT are listed in o->retry, their number into
 * *nretry. */
static int collect(st_online_t *o, uint64_t *ok, uint64_t *older,
		   size_t *nretry, char *errstr, size_t errstr_size)
{
	size_t k = 0;
	int err = 0;

	*nretry = 0;
	while (k < o->n && !err)
		err = read_call(o, NULL, o->n, &k, ok, older, nretry, errstr,
				errstr_size);
	return err;
}

int st_online_send(st_online_t *o, char *errstr, size_t errstr_size)
{
	size_t k = 0;
	int err = 0;

	if (!o->n || o->in_flight)
		return 0;
	if (!o->c && (err = connect_redis(o, errstr, errstr_size)))
		return err;
	while (k < o->n && !err)
		k = send_chunk(o, NULL, o->n, k, &err, errstr, errstr_size);
	if (err == ST_ENOMEM)
		st_seterr(errstr, errstr_size, ST_ENOMEM,
			  "online store: out of memory");
	if (err)
		disconnect(o);
	else
		o->in_flight = 1;
	return err;
}

int st_online_flush(st_online_t *o, uint64_t *applied,
		    uint64_t *rejected_older, char *errstr,
		    size_t errstr_size)
{
	uint64_t ok = 0, older = 0;
	size_t nretry = 0;
	int err = 0, sent = o->in_flight;

	o->in_flight = 0;
	if (!o->n)
		goto out;
	if (sent) {
		if ((err = collect(o, &ok, &older, &nretry, errstr,
				   errstr_size)))
			goto out;
	} else {
		if (!o->c && (err = connect_redis(o, errstr, errstr_size)))
			goto out;
		if ((err = exchange(o, NULL, o->n, &ok, &older, &nretry,
				    errstr, errstr_size)))
			goto out;
	}
	if (nretry) {
		if ((err = load_script(o, errstr, errstr_size)) ||
		    (err = exchange(o, o->retry, nretry, &ok, &older,
				    &nretry, errstr, errstr_size)))
			goto out;
		if (nretry) {
			err = st_seterr(errstr, errstr_size, ST_EREDIS,
					"redis %s:%d: NOSCRIPT right after "
					"SCRIPT LOAD", o->host, o->port);
			goto out;
		}
	}
	o->n = 0;
	o->len = 0;
	o->live = 0;
	if (++o->gen == 0) {
		memset(o->table, 0, o->tcap * sizeof(*o->table));
		o->gen = 1;
	}
out:
	if (err) {
		disconnect(o);
		ok = older = 0;
	}
	if (applied)
		*applied = ok;
	if (rejected_older)
		*rejected_older = older;
	return err;
}
