/* server.c -- `strata serve`: the event loop, the connections and the
 * command table. */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "error.h"
#include "http.h"
#include "log.h"
#include "recommend.h"
#include "resp.h"
#include "scorer.h"
#include "state.h"
#include "vecrec.h"

#define EVENTS_MAX 256
#define READ_MIN (16 * 1024)      /* room offered to each read */
#define ACCEPT_PER_PASS 256
#define LOOP_TIMEOUT_MS 100
#define ACCEPT_PAUSE_NS 100000000LL
#define FDS_SPARE 32              /* beyond max_clients: state, epoll.. */

enum {
	CL_CLOSE_AFTER = 1,  /* QUIT or a protocol error: close once sent */
	CL_DIRTY = 2,        /* on the list of clients to send to */
	CL_DEAD = 4,         /* closed; freed at the end of the pass */
	CL_PAUSED = 8        /* output over the limit: requests held back */
};

typedef struct client {
	int fd;
	unsigned flags;
	uint32_t events;               /* the interest registered */
	uint64_t id;                   /* CLIENT ID: 1, 2, ... */
	char *name;                    /* CLIENT SETNAME's, or NULL */
	st_resp_parser_t *in;
	st_resp_out_t out;             /* speaks the protocol HELLO chose */
	struct client *prev, *next;    /* every client; dead ones on next */
	struct client *next_dirty;
} client_t;

typedef struct st_server st_server_t;
typedef void (*cmd_fn)(st_server_t *s, client_t *c,
		       const st_resp_request_t *r);

enum { ARG_OPTIONAL = 1, ARG_MULTIPLE = 2 };

typedef struct {
	const char *name, *type;      /* type: key, string */
	int flags;
	const char *token;            /* the word before it ("COUNT"), or
				       * NULL */
} cmd_arg_t;

/* A command, as Redis describes it (COMMAND, COMMAND DOCS). */
typedef struct {
	const char *name;             /* lowercase */
	cmd_fn fn;
	int arity;                    /* n: exactly n; -n: at least n */
	const char *flags;            /* Redis command flags */
	int first_key, last_key, step;
	const char *acl;              /* ACL categories */
	const char *summary, *since, *group, *complexity;
	cmd_arg_t args[2];
} cmd_t;

struct st_server {
	st_state_t *st;
	MDB_dbi dbi, meta;
	MDB_txn *txn;                 /* this pass's, or NULL */
	st_vecrec_layout_t **layouts; /* met so far; never change */
	size_t nlayouts;
	st_scorer_t *scorer;
	st_recommend_t *rec;        /* RECOMMEND's, or NULL */
	float *row;                   /* one row of the model's features */
	char *scratch;                /* NUL-terminated names and values */
	size_t scratch_cap;
	const char **names, **values;
	size_t fields_cap;
	char *kpfx;                   /* "<prefix>:" */
	size_t kpfx_len;
	int lfd, ep, port;
	int accept_paused;
	int64_t accept_resume_ns;
	int max_clients, nclients;
	size_t max_output;
	client_t *clients, *dead, *dirty;
	int64_t started_ns;
	uint64_t next_id;             /* the last client id given */
	uint64_t st_conns, st_commands, st_rejected, st_errors;
	st_metrics_t *m;
	st_http_t *http;
	st_metrics_counter_t **m_cmds;
	st_metrics_histogram_t **m_secs;
	st_metrics_gauge_t *m_conns;
	st_metrics_gauge_t *m_rec_items, *m_rec_build; /* with RECOMMEND */
	st_metrics_counter_t *m_rec_builds;
	uint64_t rec_builds;          /* builds counted so far */
	st_metrics_counter_t *m_errors;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- replies ---------------------------------------------------------- */

static void reply_error(st_server_t *s, client_t *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(st_server_t *s, client_t *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	st_resp_out_error(&c->out, msg, (size_t)n < sizeof(msg) ? (size_t)n :
			  sizeof(msg) - 1);
	s->st_errors++;
	st_metrics_counter_inc(s->m_errors);
}

/* Appends "'arg' " as Redis quotes arguments in its error texts: at most
 * room bytes of arg, cut at a NUL byte. */
static size_t quote_arg(char *dst, size_t room, const char *arg,
			size_t len)
{
	const char *z = memchr(arg, '\0', len);

	if (z)
		len = (size_t)(z - arg);
	if (len > room)
		len = room;
	dst[0] = '\'';
	memcpy(dst + 1, arg, len);
	dst[len + 1] = '\'';
	dst[len + 2] = ' ';
	return len + 3;
}

static void reply_unknown(st_server_t *s, client_t *c,
			  const st_resp_request_t *r)
{
	char name[140], args[140 * 2];
	size_t n = 0, nl;

	nl = quote_arg(name, 128, r->argv[0], r->argvlen[0]) - 1;
	for (size_t i = 1; i < r->argc && n < 128; i++)
		n += quote_arg(args + n, 128 - n, r->argv[i], r->argvlen[i]);
	reply_error(s, c, "ERR unknown command %.*s, with args beginning "
		    "with: %.*s", (int)nl, name, (int)n, args);
}

static void reply_arity(st_server_t *s, client_t *c, const char *name)
{
	reply_error(s, c, "ERR wrong number of arguments for '%s' command",
		    name);
}

/* "unknown subcommand" of a container command (COMMAND, CLIENT). */
static void reply_unknown_sub(st_server_t *s, client_t *c,
			      const st_resp_request_t *r, const char *cmd)
{
	char q[140];
	size_t n = quote_arg(q, 128, r->argv[1], r->argvlen[1]) - 1;

	reply_error(s, c, "ERR unknown subcommand %.*s. Try %s HELP.",
		    (int)n, q, cmd);
}

/* Whether argument i is word (ASCII case ignored). */
static int arg_is(const st_resp_request_t *r, size_t i, const char *word)
{
	return r->argvlen[i] == strlen(word) &&
	       !strncasecmp(r->argv[i], word, r->argvlen[i]);
}

static void out_kv(st_resp_out_t *o, const char *k, const char *v)
{
	st_resp_out_bulk(o, k, strlen(k));
	st_resp_out_bulk(o, v, strlen(v));
}

/* ---- the state -------------------------------------------------------- */

/* The pass's read transaction, begun on first use; NULL after an error
 * reply. */
static MDB_txn *read_txn(st_server_t *s, client_t *c)
{
	char errstr[256];

	if (s->txn)
		return s->txn;
	if (st_state_read_begin(s->st, &s->txn, errstr, sizeof(errstr))) {
		s->txn = NULL;
		reply_error(s, c, "ERR state: %s", errstr);
		return NULL;
	}
	return s->txn;
}

static void end_txn(st_server_t *s)
{
	if (!s->txn)
		return;
	st_state_read_end(s->st);
	s->txn = NULL;
}

static void reply_corrupt(st_server_t *s, client_t *c, const char *key,
			  size_t len)
{
	reply_error(s, c, "ERR corrupt vector record for key '%.*s'",
		    (int)(len > 128 ? 128 : len), key);
}

/*
 * Finds the vector record of key: 1 with *rec (borrowed until the pass
 * ends), 0 when missing (a key outside the prefix, or an entity with no
 * vector kept, included), -1 after an error reply.
 */
static int lookup(st_server_t *s, client_t *c, const char *key, size_t len,
		  MDB_val *rec)
{
	st_state_entity_t ent;
	MDB_val k;
	MDB_txn *txn;
	int rc;

	if (len <= s->kpfx_len || memcmp(key, s->kpfx, s->kpfx_len))
		return 0;
	k.mv_data = (void *)(key + s->kpfx_len);
	k.mv_size = len - s->kpfx_len;
	if (!(txn = read_txn(s, c)))
		return -1;
	rc = mdb_get(txn, s->dbi, &k, rec);
	if (rc == MDB_NOTFOUND || rc == MDB_BAD_VALSIZE)
		return 0;   /* BAD_VALSIZE: longer than any key stored */
	if (rc) {
		reply_error(s, c, "ERR state: %s", mdb_strerror(rc));
		return -1;
	}
	if (st_state_entity_split(rec->mv_data, rec->mv_size, &ent)) {
		reply_corrupt(s, c, key, len);
		return -1;
	}
	rec->mv_data = (void *)ent.vec;
	rec->mv_size = ent.vec_len;
	return ent.vec_len > 0;
}


/* The layout of a record found in this pass's transaction: from the
 * layouts met so far, else read from the state's meta database (written
 * before any record of it); NULL when it is not there or does not parse. */
static const st_vecrec_layout_t *find_layout(st_server_t *s,
					     const MDB_val *rec)
{
	st_vecrec_layout_t *l, **grown;
	char key[40];
	MDB_val k, v;
	uint32_t id;

	if (st_vecrec_layout_id(rec->mv_data, rec->mv_size, &id))
		return NULL;
	for (size_t i = 0; i < s->nlayouts; i++)
		if (s->layouts[i]->id == id)
			return s->layouts[i];
	st_vecrec_layout_key(id, key, sizeof(key));
	k.mv_data = key;
	k.mv_size = strlen(key);
	if (!s->txn || mdb_get(s->txn, s->meta, &k, &v) ||
	    st_vecrec_layout_parse(v.mv_data, v.mv_size, &l))
		return NULL;
	if (l->id != id ||
	    !(grown = realloc(s->layouts, (s->nlayouts + 1) * sizeof(*grown)))) {
		st_vecrec_layout_free(l);
		return NULL;
	}
	s->layouts = grown;
	s->layouts[s->nlayouts++] = l;
	return l;
}

/* Starts reading a record: 0, or -1 when it does not decode. */
static int rec_iter(st_server_t *s, const MDB_val *rec, st_vecrec_iter_t *it)
{
	const st_vecrec_layout_t *l = find_layout(s, rec);

	return l && !st_vecrec_iter_init(it, l, rec->mv_data, rec->mv_size) ?
	       0 : -1;
}

/* Finds field in rec: 1 with *value, 0 when absent, -1 when the record
 * does not decode. */
static int find_field(st_server_t *s, const MDB_val *rec, const char *field,
		      size_t flen, const char **value, size_t *vlen)
{
	st_vecrec_iter_t it;
	const char *nm;
	size_t nl;
	int rc;

	if (rec_iter(s, rec, &it))
		return -1;
	while ((rc = st_vecrec_next(&it, &nm, &nl, value, vlen)) == 1)
		if (nl == flen && !memcmp(nm, field, flen))
			return 1;
	return rc < 0 ? -1 : 0;
}

/* ---- commands --------------------------------------------------------- */

static void cmd_ping(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	if (r->argc > 2)
		reply_arity(s, c, "ping");
	else if (r->argc == 2)
		st_resp_out_bulk(&c->out, r->argv[1], r->argvlen[1]);
	else
		st_resp_out_simple(&c->out, "PONG");
}

static void cmd_echo(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	(void)s;
	st_resp_out_bulk(&c->out, r->argv[1], r->argvlen[1]);
}

static void cmd_quit(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	(void)s;
	(void)r;
	st_resp_out_simple(&c->out, "OK");
	c->flags |= CL_CLOSE_AFTER;
}

static void cmd_hgetall(st_server_t *s, client_t *c,
			const st_resp_request_t *r)
{
	size_t mark = st_resp_out_pending(&c->out), nl, vl;
	const char *nm, *val;
	st_vecrec_iter_t it;
	MDB_val rec;
	int rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (rc <= 0) {
		if (rc == 0)
			st_resp_out_map(&c->out, 0);
		return;
	}
	if (rec_iter(s, &rec, &it))
		goto corrupt;
	st_resp_out_map(&c->out, (size_t)st_vecrec_count(rec.mv_data,
							 rec.mv_size));
	while ((rc = st_vecrec_next(&it, &nm, &nl, &val, &vl)) == 1) {
		st_resp_out_bulk(&c->out, nm, nl);
		st_resp_out_bulk(&c->out, val, vl);
	}
	if (rc == 0)
		return;
	st_resp_out_truncate(&c->out, mark);
corrupt:
	reply_corrupt(s, c, r->argv[1], r->argvlen[1]);
}

static void cmd_hget(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	const char *val;
	size_t vl;
	MDB_val rec;
	int rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (rc < 0)
		return;
	if (rc > 0)
		rc = find_field(s, &rec, r->argv[2], r->argvlen[2], &val, &vl);
	if (rc > 0)
		st_resp_out_bulk(&c->out, val, vl);
	else if (rc == 0)
		st_resp_out_null(&c->out);
	else
		reply_corrupt(s, c, r->argv[1], r->argvlen[1]);
}

static void cmd_hmget(st_server_t *s, client_t *c,
		      const st_resp_request_t *r)
{
	size_t mark = st_resp_out_pending(&c->out), vl;
	const char *val;
	MDB_val rec;
	int found = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (found < 0)
		return;
	st_resp_out_array(&c->out, r->argc - 2);
	for (size_t i = 2; i < r->argc; i++) {
		int rc = found ? find_field(s, &rec, r->argv[i], r->argvlen[i],
					    &val, &vl) : 0;

		if (rc < 0) {
			st_resp_out_truncate(&c->out, mark);
			reply_corrupt(s, c, r->argv[1], r->argvlen[1]);
			return;
		}
		if (rc)
			st_resp_out_bulk(&c->out, val, vl);
		else
			st_resp_out_null(&c->out);
	}
}

static void cmd_hexists(st_server_t *s, client_t *c,
			const st_resp_request_t *r)
{
	const char *val;
	size_t vl;
	MDB_val rec;
	int rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (rc < 0)
		return;
	if (rc > 0)
		rc = find_field(s, &rec, r->argv[2], r->argvlen[2], &val, &vl);
	if (rc < 0)
		reply_corrupt(s, c, r->argv[1], r->argvlen[1]);
	else
		st_resp_out_int(&c->out, rc);
}

static void cmd_hlen(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	MDB_val rec;
	int rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (rc >= 0)
		st_resp_out_int(&c->out, rc ? st_vecrec_count(rec.mv_data,
							     rec.mv_size) : 0);
}

static void cmd_exists(st_server_t *s, client_t *c,
		       const st_resp_request_t *r)
{
	int64_t n = 0;
	MDB_val rec;

	for (size_t i = 1; i < r->argc; i++) {
		int rc = lookup(s, c, r->argv[i], r->argvlen[i], &rec);

		if (rc < 0)
			return;
		n += rc;
	}
	st_resp_out_int(&c->out, n);
}

static void cmd_type(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	MDB_val rec;
	int rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);

	if (rc >= 0)
		st_resp_out_simple(&c->out, rc ? "hash" : "none");
}

/* Copies the record's fields into NUL-terminated strings for the scorer;
 * returns the number of fields, or -1 (corrupt) or -2 (out of memory). */
static long score_fields(st_server_t *s, const MDB_val *rec)
{
	size_t need = 0, n = 0, nl, vl, off = 0;
	const char *nm, *val;
	st_vecrec_iter_t it;
	int rc;

	if (rec_iter(s, rec, &it))
		return -1;
	while ((rc = st_vecrec_next(&it, &nm, &nl, &val, &vl)) == 1) {
		need += nl + vl + 2;
		n++;
	}
	if (rc < 0)
		return -1;
	if (need > s->scratch_cap) {
		char *nb = realloc(s->scratch, need);

		if (!nb)
			return -2;
		s->scratch = nb;
		s->scratch_cap = need;
	}
	if (n > s->fields_cap) {
		const char **a = realloc(s->names, n * sizeof(*a));

		if (a)
			s->names = a;
		a = a ? realloc(s->values, n * sizeof(*a)) : NULL;
		if (!a)
			return -2;
		s->values = a;
		s->fields_cap = n;
	}
	rec_iter(s, rec, &it);
	for (size_t i = 0; i < n; i++) {
		st_vecrec_next(&it, &nm, &nl, &val, &vl);
		s->names[i] = memcpy(s->scratch + off, nm, nl);
		s->scratch[off + nl] = '\0';
		off += nl + 1;
		s->values[i] = memcpy(s->scratch + off, val, vl);
		s->scratch[off + vl] = '\0';
		off += vl + 1;
	}
	return (long)n;
}

/* A score as the pipeline writes _score: "%.9g" of the float, and "nan"
 * (never "-nan") for a NaN. Returns the length. */
static size_t format_score(char *buf, size_t size, float score)
{
	int n = isnan(score) ? snprintf(buf, size, "nan") :
		snprintf(buf, size, "%.9g", (double)score);

	return n > 0 ? (size_t)n : 0;
}

static void cmd_score(st_server_t *s, client_t *c,
		      const st_resp_request_t *r)
{
	char errstr[512], num[32];
	MDB_val rec;
	float score;
	long n;
	int rc;

	if (!s->scorer) {
		reply_error(s, c, "ERR SCORE needs a model: scorer.model is "
			    "not set");
		return;
	}
	rc = lookup(s, c, r->argv[1], r->argvlen[1], &rec);
	if (rc <= 0) {
		if (rc == 0)
			st_resp_out_null(&c->out);
		return;
	}
	n = score_fields(s, &rec);
	if (n == -1) {
		reply_corrupt(s, c, r->argv[1], r->argvlen[1]);
		return;
	}
	if (n < 0) {
		reply_error(s, c, "ERR out of memory");
		return;
	}
	/* Fails only for a model without feature names, refused at
	 * start-up. */
	if (st_scorer_row_from_fields(s->scorer, (size_t)n, s->names,
				      s->values, s->row) < 0) {
		reply_error(s, c, "ERR the model has no feature names");
		return;
	}
	if (st_scorer_score(s->scorer, s->row, 1, &score, errstr,
			    sizeof(errstr))) {
		reply_error(s, c, "ERR %s", errstr);
		return;
	}
	st_resp_out_bulk(&c->out, num, format_score(num, sizeof(num), score));
}

#define RECOMMEND_COUNT 10

static void recommend_metrics(st_server_t *s)
{
	st_recommend_stats_t st;

	if (!s->m_rec_items)
		return;
	st_recommend_stats(s->rec, &st);
	if (st.builds == s->rec_builds)
		return;
	st_metrics_counter_add(s->m_rec_builds, st.builds - s->rec_builds);
	s->rec_builds = st.builds;
	st_metrics_gauge_set(s->m_rec_items, (int64_t)st.items);
	st_metrics_gauge_set_double(s->m_rec_build, st.build_seconds);
}

/* RECOMMEND key [COUNT n]: the catalogue ranked for the key's entity. */
static void cmd_recommend(st_server_t *s, client_t *c,
			  const st_resp_request_t *r)
{
	const st_recommend_item_t *recs;
	const char *key = r->argv[1];
	size_t len = r->argvlen[1], nrec, count = RECOMMEND_COUNT;
	char errstr[512], num[40];
	long long n;
	long nfields = 0;
	MDB_val rec;
	MDB_txn *txn;
	int rc, found;

	if (!s->rec) {
		reply_error(s, c, "ERR RECOMMEND needs a model: "
			    "recommend.model is not set");
		return;
	}
	if (r->argc != 2 && (r->argc != 4 || !arg_is(r, 2, "count"))) {
		reply_error(s, c, "ERR syntax error");
		return;
	}
	if (r->argc == 4) {
		if (st_resp_parse_ll(r->argv[3], r->argvlen[3], &n)) {
			reply_error(s, c, "ERR value is not an integer or out "
				    "of range");
			return;
		}
		if (n < 1) {
			reply_error(s, c, "ERR value is out of range, must be "
				    "positive");
			return;
		}
		count = (unsigned long long)n > SIZE_MAX ? SIZE_MAX : (size_t)n;
	}
	if (len <= s->kpfx_len || memcmp(key, s->kpfx, s->kpfx_len)) {
		st_resp_out_array(&c->out, 0);
		return;
	}
	if ((rc = lookup(s, c, key, len, &rec)) < 0)
		return;
	if (rc && (nfields = score_fields(s, &rec)) < 0) {
		if (nfields == -1)
			reply_corrupt(s, c, key, len);
		else
			reply_error(s, c, "ERR out of memory");
		return;
	}
	if (!(txn = read_txn(s, c)))
		return;
	rc = st_recommend_rank(s->rec, txn, key + s->kpfx_len,
			       len - s->kpfx_len, (size_t)nfields, s->names,
			       s->values, count, &recs, &nrec, &found, errstr,
			       sizeof(errstr));
	recommend_metrics(s);
	if (rc) {
		reply_error(s, c, "ERR %s", errstr);
		return;
	}
	if (st_resp_out_proto(&c->out) == 3) {
		st_resp_out_array(&c->out, nrec);
		for (size_t i = 0; i < nrec; i++) {
			st_resp_out_array(&c->out, 2);
			st_resp_out_bulk(&c->out, recs[i].item,
					 recs[i].item_len);
			num[0] = ',';
			n = (long long)format_score(num + 1, sizeof(num) - 3,
						    recs[i].score);
			memcpy(num + 1 + n, "\r\n", 2);
			st_resp_out_raw(&c->out, num, (size_t)n + 3);
		}
		return;
	}
	st_resp_out_array(&c->out, 2 * nrec);
	for (size_t i = 0; i < nrec; i++) {
		st_resp_out_bulk(&c->out, recs[i].item, recs[i].item_len);
		st_resp_out_bulk(&c->out, num, format_score(num, sizeof(num),
							  recs[i].score));
	}
}

static void cmd_info(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	char text[1024];
	int n;

	(void)r;
	n = snprintf(text, sizeof(text),
		     "# Server\r\n"
		     "strata_version:%s\r\n"
		     "process_id:%d\r\n"
		     "tcp_port:%d\r\n"
		     "uptime_in_seconds:%" PRId64 "\r\n"
		     "\r\n"
		     "# Clients\r\n"
		     "connected_clients:%d\r\n"
		     "maxclients:%d\r\n"
		     "\r\n"
		     "# Stats\r\n"
		     "total_connections_received:%" PRIu64 "\r\n"
		     "total_commands_processed:%" PRIu64 "\r\n"
		     "rejected_connections:%" PRIu64 "\r\n"
		     "total_error_replies:%" PRIu64 "\r\n",
		     PACKAGE_VERSION, (int)getpid(), s->port,
		     (int64_t)((now_ns() - s->started_ns) / 1000000000),
		     s->nclients,
		     s->max_clients, s->st_conns, s->st_commands,
		     s->st_rejected, s->st_errors);
	st_resp_out_verbatim(&c->out, "txt", text, (size_t)n);
}

/* Whether name is made of the characters Redis allows in client names
 * and library attributes: '!' to '~' (no blanks, no control or
 * non-ASCII bytes). */
static int valid_name(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < '!' ||
		    (unsigned char)name[i] > '~')
			return 0;
	return 1;
}

/* Names the client (an empty name clears it), as CLIENT SETNAME and
 * HELLO SETNAME do; 0, or -1 after an error reply. */
static int set_name(st_server_t *s, client_t *c, const char *name,
		    size_t len)
{
	char *copy = NULL;

	if (!valid_name(name, len)) {
		reply_error(s, c, "ERR Client names cannot contain spaces, "
			    "newlines or special characters.");
		return -1;
	}
	if (len) {
		if (!(copy = malloc(len + 1))) {
			reply_error(s, c, "ERR out of memory");
			return -1;
		}
		memcpy(copy, name, len);
		copy[len] = '\0';
	}
	free(c->name);
	c->name = copy;
	return 0;
}

/* There are no passwords: the "default" user takes any, as Redis's
 * default user does without requirepass (nopass); no other user
 * exists. */
static int default_user(const char *user, size_t len)
{
	return len == 7 && !memcmp(user, "default", 7);
}

static void reply_wrongpass(st_server_t *s, client_t *c)
{
	reply_error(s, c, "WRONGPASS invalid username-password pair or user "
		    "is disabled.");
}

static void cmd_auth(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	if (r->argc > 3)
		reply_error(s, c, "ERR syntax error");
	else if (r->argc == 2)
		reply_error(s, c, "ERR AUTH <password> called without any "
			    "password configured for the default user. Are "
			    "you sure your configuration is correct?");
	else if (!default_user(r->argv[1], r->argvlen[1]))
		reply_wrongpass(s, c);
	else
		st_resp_out_simple(&c->out, "OK");
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]]:
 * switches the connection's protocol, then describes the server. */
static void cmd_hello(st_server_t *s, client_t *c,
		      const st_resp_request_t *r)
{
	st_resp_out_t *o = &c->out;
	const char *name = NULL;
	size_t name_len = 0, i = 1;
	long long ver = 0;
	int wrongpass = 0;

	if (r->argc >= 2) {
		if (st_resp_parse_ll(r->argv[1], r->argvlen[1], &ver)) {
			reply_error(s, c, "ERR Protocol version is not an "
				    "integer or out of range");
			return;
		}
		if (ver < 2 || ver > 3) {
			reply_error(s, c, "NOPROTO unsupported protocol "
				    "version");
			return;
		}
		i = 2;
	}
	for (; i < r->argc; i++) {
		size_t more = r->argc - 1 - i;

		if (arg_is(r, i, "auth") && more >= 2) {
			wrongpass = !default_user(r->argv[i + 1],
						  r->argvlen[i + 1]);
			i += 2;
		} else if (arg_is(r, i, "setname") && more >= 1) {
			i++;
			name = r->argv[i];
			name_len = r->argvlen[i];
		} else {
			reply_error(s, c, "ERR Syntax error in HELLO option "
				    "'%s'", r->argv[i]);
			return;
		}
	}
	if (wrongpass) {
		reply_wrongpass(s, c);
		return;
	}
	if (name && set_name(s, c, name, name_len))
		return;
	if (ver)
		st_resp_out_set_proto(o, (int)ver);
	st_resp_out_map(o, 7);
	out_kv(o, "server", "strata");
	out_kv(o, "version", PACKAGE_VERSION);
	st_resp_out_bulk(o, "proto", 5);
	st_resp_out_int(o, st_resp_out_proto(o));
	st_resp_out_bulk(o, "id", 2);
	st_resp_out_int(o, (int64_t)c->id);
	out_kv(o, "mode", "standalone");
	out_kv(o, "role", "master");
	st_resp_out_bulk(o, "modules", 7);
	st_resp_out_array(o, 0);
}

static void cmd_client(st_server_t *s, client_t *c,
		       const st_resp_request_t *r)
{
	static const char *const help[] = {
		"CLIENT <subcommand> [<arg> [value] [opt] ...]. "
		"Subcommands are:",
		"GETNAME",
		"    Return the name of the current connection.",
		"ID",
		"    Return the ID of the current connection.",
		"SETINFO <option> <value>",
		"    Set client meta attr. Options are:",
		"    * LIB-NAME: the client lib name.",
		"    * LIB-VER: the client lib version.",
		"SETNAME <name>",
		"    Assign the name <name> to the current connection.",
		"HELP",
		"    Prints this help.",
	};
	static const struct {
		const char *name, *full;
		int arity;
	} subs[] = {
		{ "getname", "client|getname", 2 },
		{ "help", "client|help", 2 },
		{ "id", "client|id", 2 },
		{ "setinfo", "client|setinfo", 4 },
		{ "setname", "client|setname", 3 },
	};
	const size_t nsubs = sizeof(subs) / sizeof(subs[0]);
	st_resp_out_t *o = &c->out;
	size_t i = 0;

	while (i < nsubs && !arg_is(r, 1, subs[i].name))
		i++;
	if (i == nsubs) {
		reply_unknown_sub(s, c, r, "CLIENT");
		return;
	}
	if (r->argc != (size_t)subs[i].arity) {
		reply_arity(s, c, subs[i].full);
		return;
	}
	if (arg_is(r, 1, "getname")) {
		if (c->name)
			st_resp_out_bulk(o, c->name, strlen(c->name));
		else
			st_resp_out_null(o);
	} else if (arg_is(r, 1, "help")) {
		st_resp_out_array(o, sizeof(help) / sizeof(help[0]));
		for (i = 0; i < sizeof(help) / sizeof(help[0]); i++)
			st_resp_out_simple(o, help[i]);
	} else if (arg_is(r, 1, "id")) {
		st_resp_out_int(o, (int64_t)c->id);
	} else if (arg_is(r, 1, "setinfo")) {
		/* Accepted and not kept: nothing reports them. */
		if (!arg_is(r, 2, "lib-name") && !arg_is(r, 2, "lib-ver"))
			reply_error(s, c, "ERR Unrecognized option '%s'",
				    r->argv[2]);
		else if (!valid_name(r->argv[3], r->argvlen[3]))
			reply_error(s, c, "ERR %s cannot contain spaces, "
				    "newlines or special characters.",
				    r->argv[2]);
		else
			st_resp_out_simple(o, "OK");
	} else if (!set_name(s, c, r->argv[2], r->argvlen[2])) {
		st_resp_out_simple(o, "OK");
	}
}

/* There is one database, 0. */
static void cmd_select(st_server_t *s, client_t *c,
		       const st_resp_request_t *r)
{
	long long db;

	if (st_resp_parse_ll(r->argv[1], r->argvlen[1], &db) ||
	    db < INT_MIN || db > INT_MAX)
		reply_error(s, c, "ERR value is not an integer or out of "
			    "range");
	else if (db != 0)
		reply_error(s, c, "ERR DB index is out of range");
	else
		st_resp_out_simple(&c->out, "OK");
}

static void cmd_command(st_server_t *s, client_t *c,
			const st_resp_request_t *r);

static const cmd_t cmds[] = {
	{ "auth", cmd_auth, -2, "noscript loading stale fast no_auth "
	  "allow_busy", 0, 0, 0, "@fast @connection",
	  "Authenticates the connection.", "1.0.0", "connection",
	  "O(N) where N is the number of passwords defined for the user",
	  { { "username", "string", ARG_OPTIONAL, NULL },
	    { "password", "string", 0, NULL } } },
	{ "client", cmd_client, -2, "", 0, 0, 0, "@slow",
	  "A container for client connection commands.", "2.4.0",
	  "connection", "Depends on subcommand.", { { NULL, NULL, 0, NULL } } },
	{ "command", cmd_command, -1, "loading stale", 0, 0, 0,
	  "@slow @connection",
	  "Returns detailed information about all commands.", "2.8.13",
	  "server", "O(N) where N is the total number of commands",
	  { { NULL, NULL, 0, NULL } } },
	{ "echo", cmd_echo, 2, "fast", 0, 0, 0, "@fast @connection",
	  "Returns the given string.", "1.0.0", "connection", "O(1)",
	  { { "message", "string", 0, NULL } } },
	{ "exists", cmd_exists, -2, "readonly fast", 1, -1, 1,
	  "@keyspace @read @fast",
	  "Determines whether one or more keys exist.", "1.0.0", "generic",
	  "O(N) where N is the number of keys to check.",
	  { { "key", "key", ARG_MULTIPLE, NULL } } },
	{ "hello", cmd_hello, -1, "noscript loading stale fast no_auth "
	  "allow_busy", 0, 0, 0, "@fast @connection",
	  "Handshakes with the Redis server.", "6.0.0", "connection", "O(1)",
	  { { "protover", "integer", ARG_OPTIONAL, NULL } } },
	{ "hexists", cmd_hexists, 3, "readonly fast", 1, 1, 1,
	  "@read @hash @fast",
	  "Determines whether a field exists in a hash.", "2.0.0", "hash",
	  "O(1)", { { "key", "key", 0, NULL }, { "field", "string", 0, NULL } } },
	{ "hget", cmd_hget, 3, "readonly fast", 1, 1, 1, "@read @hash @fast",
	  "Returns the value of a field in a hash.", "2.0.0", "hash", "O(1)",
	  { { "key", "key", 0, NULL }, { "field", "string", 0, NULL } } },
	{ "hgetall", cmd_hgetall, 2, "readonly", 1, 1, 1, "@read @hash @slow",
	  "Returns all fields and values in a hash.", "2.0.0", "hash",
	  "O(N) where N is the size of the hash.", { { "key", "key", 0, NULL } } },
	{ "hlen", cmd_hlen, 2, "readonly fast", 1, 1, 1, "@read @hash @fast",
	  "Returns the number of fields in a hash.", "2.0.0", "hash", "O(1)",
	  { { "key", "key", 0, NULL } } },
	{ "hmget", cmd_hmget, -3, "readonly fast", 1, 1, 1,
	  "@read @hash @fast",
	  "Returns the values of all fields in a hash.", "2.0.0", "hash",
	  "O(N) where N is the number of fields being requested.",
	  { { "key", "key", 0, NULL }, { "field", "string", ARG_MULTIPLE, NULL } } },
	{ "info", cmd_info, -1, "loading stale", 0, 0, 0,
	  "@slow @dangerous",
	  "Returns information and statistics about the server.", "1.0.0",
	  "server", "O(1)",
	  { { "section", "string", ARG_OPTIONAL | ARG_MULTIPLE, NULL } } },
	{ "ping", cmd_ping, -1, "fast", 0, 0, 0, "@fast @connection",
	  "Returns the server's liveliness response.", "1.0.0", "connection",
	  "O(1)", { { "message", "string", ARG_OPTIONAL, NULL } } },
	{ "quit", cmd_quit, -1, "loading stale fast no_auth", 0, 0, 0,
	  "@fast @connection", "Closes the connection.", "1.0.0",
	  "connection", "O(1)", { { NULL, NULL, 0, NULL } } },
	{ "recommend", cmd_recommend, -2, "readonly", 1, 1, 1, "@read @slow",
	  "Returns the catalogue's items ranked by the recommendation model "
	  "for an entity, best first, with their scores (strata).", "0.1.0",
	  "module", "O(N log C) where N is the number of items and C the "
	  "count, on top of the model's scoring of N rows.",
	  { { "key", "key", 0, NULL },
	    { "count", "integer", ARG_OPTIONAL, "COUNT" } } },
	{ "score", cmd_score, 2, "readonly", 1, 1, 1, "@read @slow",
	  "Returns the model's score of an entity's stored feature vector "
	  "(strata).", "0.1.0", "module", "O(F) where F is the number of "
	  "features of the model.", { { "key", "key", 0, NULL } } },
	{ "select", cmd_select, 2, "loading stale fast", 0, 0, 0,
	  "@fast @connection", "Changes the selected database.", "1.0.0",
	  "connection", "O(1)", { { "index", "integer", 0, NULL } } },
	{ "type", cmd_type, 2, "readonly fast", 1, 1, 1,
	  "@keyspace @read @fast",
	  "Determines the type of value stored at a key.", "1.0.0",
	  "generic", "O(1)", { { "key", "key", 0, NULL } } },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const cmd_t *find_cmd(const char *name, size_t len)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strlen(cmds[i].name) == len &&
		    !strncasecmp(name, cmds[i].name, len))
			return &cmds[i];
	return NULL;
}

/* Writes words (space-separated) as a set of status replies (an array
 * in RESP2), as Redis writes command and argument flags. */
static void out_words(st_resp_out_t *o, const char *words)
{
	size_t n = 0;
	char w[64];

	for (const char *p = words; *p; p += strspn(p, " ")) {
		p += strcspn(p, " ");
		n++;
	}
	st_resp_out_set(o, n);
	for (const char *p = words; *p; p += strspn(p, " ")) {
		size_t len = strcspn(p, " ");

		snprintf(w, sizeof(w), "%.*s", (int)len, p);
		st_resp_out_simple(o, w);
		p += len;
	}
}

/* COMMAND INFO's entry of one command (Redis 7's ten fields). */
static void out_info(st_resp_out_t *o, const cmd_t *cmd)
{
	st_resp_out_array(o, 10);
	st_resp_out_bulk(o, cmd->name, strlen(cmd->name));
	st_resp_out_int(o, cmd->arity);
	out_words(o, cmd->flags);
	st_resp_out_int(o, cmd->first_key);
	st_resp_out_int(o, cmd->last_key);
	st_resp_out_int(o, cmd->step);
	out_words(o, cmd->acl);
	st_resp_out_set(o, 0);      /* tips */
	st_resp_out_set(o, 0);      /* key specifications */
	st_resp_out_set(o, 0);      /* subcommands */
}

/* COMMAND DOCS's entry of one command: its name, then a map. */
static void out_docs(st_resp_out_t *o, const cmd_t *cmd)
{
	size_t nargs = 0;

	while (nargs < 2 && cmd->args[nargs].name)
		nargs++;
	st_resp_out_bulk(o, cmd->name, strlen(cmd->name));
	st_resp_out_map(o, nargs ? 5 : 4);
	out_kv(o, "summary", cmd->summary);
	out_kv(o, "since", cmd->since);
	out_kv(o, "group", cmd->group);
	out_kv(o, "complexity", cmd->complexity);
	if (!nargs)
		return;
	st_resp_out_bulk(o, "arguments", 9);
	st_resp_out_array(o, nargs);
	for (size_t i = 0; i < nargs; i++) {
		const cmd_arg_t *a = &cmd->args[i];
		int f = a->flags;

		st_resp_out_map(o, 2 + (a->token != NULL) + (f != 0));
		out_kv(o, "name", a->name);
		out_kv(o, "type", a->type);
		if (a->token)
			out_kv(o, "token", a->token);
		if (!f)
			continue;
		st_resp_out_bulk(o, "flags", 5);
		out_words(o, f == (ARG_OPTIONAL | ARG_MULTIPLE) ?
			  "optional multiple" : f == ARG_OPTIONAL ?
			  "optional" : "multiple");
	}
}

static void cmd_command(st_server_t *s, client_t *c,
			const st_resp_request_t *r)
{
	static const char *const help[] = {
		"COMMAND <subcommand> [<arg> [value] [opt] ...]. "
		"Subcommands are:",
		"(no subcommand)",
		"    Return details about all commands.",
		"COUNT",
		"    Return the total number of commands in this server.",
		"INFO <command-name> [<command-name> ...]",
		"    Return details about the given commands.",
		"DOCS [<command-name> ...]",
		"    Return documentation details about the given commands, "
		"or all of them.",
		"HELP",
		"    Print this help.",
	};
	const char *sub = r->argc > 1 ? r->argv[1] : "";
	st_resp_out_t *o = &c->out;

	if (r->argc == 1) {
		st_resp_out_array(o, NCMDS);
		for (size_t i = 0; i < NCMDS; i++)
			out_info(o, &cmds[i]);
	} else if (!strcasecmp(sub, "count")) {
		if (r->argc != 2)
			reply_arity(s, c, "command|count");
		else
			st_resp_out_int(o, (int64_t)NCMDS);
	} else if (!strcasecmp(sub, "info") || !strcasecmp(sub, "docs")) {
		int docs = !strcasecmp(sub, "docs");
		size_t n = r->argc - 2;

		if (!docs && r->argc < 3) {
			reply_arity(s, c, "command|info");
			return;
		}
		if (docs && n == 0) {
			st_resp_out_map(o, NCMDS);
			for (size_t i = 0; i < NCMDS; i++)
				out_docs(o, &cmds[i]);
			return;
		}
		if (docs) {
			/* Only the known commands, as Redis does. */
			size_t known = 0;

			for (size_t i = 2; i < r->argc; i++)
				known += !!find_cmd(r->argv[i], r->argvlen[i]);
			st_resp_out_map(o, known);
		} else {
			st_resp_out_array(o, n);
		}
		for (size_t i = 2; i < r->argc; i++) {
			const cmd_t *cmd = find_cmd(r->argv[i],
						    r->argvlen[i]);

			if (cmd && docs)
				out_docs(o, cmd);
			else if (cmd)
				out_info(o, cmd);
			else if (!docs)
				st_resp_out_null(o);
		}
	} else if (!strcasecmp(sub, "help") && r->argc == 2) {
		st_resp_out_array(o, sizeof(help) / sizeof(help[0]));
		for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++)
			st_resp_out_simple(o, help[i]);
	} else {
		reply_unknown_sub(s, c, r, "COMMAND");
	}
}

/* Runs one request. */
static void call(st_server_t *s, client_t *c, const st_resp_request_t *r)
{
	const cmd_t *cmd = find_cmd(r->argv[0], r->argvlen[0]);
	size_t i;
	int64_t t0;

	if (!cmd) {
		reply_unknown(s, c, r);
		return;
	}
	if ((cmd->arity > 0 && r->argc != (size_t)cmd->arity) ||
	    r->argc < (size_t)(cmd->arity < 0 ? -cmd->arity : cmd->arity)) {
		reply_arity(s, c, cmd->name);
		return;
	}
	i = (size_t)(cmd - cmds);
	t0 = now_ns();
	cmd->fn(s, c, r);
	st_metrics_histogram_observe_ns(s->m_secs[i], now_ns() - t0);
	st_metrics_counter_inc(s->m_cmds[i]);
	s->st_commands++;
}

/* ---- connections ------------------------------------------------------ */

static void close_client(st_server_t *s, client_t *c)
{
	if (c->flags & CL_DEAD)
		return;
	close(c->fd);   /* leaves the epoll set too */
	c->fd = -1;
	c->flags |= CL_DEAD;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = s->dead;
	s->dead = c;
	s->nclients--;
	if (s->m_conns)
		st_metrics_gauge_set(s->m_conns, s->nclients);
	if (s->accept_paused)
		s->accept_resume_ns = 0;   /* a descriptor is free again */
}

static void free_client(client_t *c)
{
	st_resp_parser_destroy(c->in);
	st_resp_out_free(&c->out);
	free(c->name);
	free(c);
}

static void free_dead(st_server_t *s)
{
	while (s->dead) {
		client_t *c = s->dead;

		s->dead = c->next;
		free_client(c);
	}
}

static void mark_dirty(st_server_t *s, client_t *c)
{
	if (c->flags & CL_DIRTY)
		return;
	c->flags |= CL_DIRTY;
	c->next_dirty = s->dirty;
	s->dirty = c;
}

/* Registers the interest the client's state calls for. */
static void set_interest(st_server_t *s, client_t *c)
{
	struct epoll_event ev = { 0 };
	uint32_t want = 0;

	if (!(c->flags & (CL_CLOSE_AFTER | CL_PAUSED)))
		want |= EPOLLIN;
	if (st_resp_out_pending(&c->out))
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev)) {
		st_log(ST_LOG_WARNING, "serve", "epoll_ctl: %s",
		       strerror(errno));
		close_client(s, c);
		return;
	}
	c->events = want;
}

/* Runs the complete requests buffered, while the output is under the
 * limit (the client is paused when it is not). A protocol error is
 * answered and ends the connection. */
static void run_requests(st_server_t *s, client_t *c)
{
	st_resp_request_t r;
	int rc = 0;

	while (!(c->flags & CL_CLOSE_AFTER)) {
		if (st_resp_out_pending(&c->out) >= s->max_output) {
			c->flags |= CL_PAUSED;
			break;
		}
		if ((rc = st_resp_next(c->in, &r)) != 1)
			break;
		call(s, c, &r);
	}
	if (rc < 0) {
		st_log(ST_LOG_DEBUG, "serve", "client %d: %s", c->fd,
		       st_resp_error(c->in));
		reply_error(s, c, "ERR %s", st_resp_error(c->in));
		c->flags |= CL_CLOSE_AFTER;
	}
	if (st_resp_out_failed(&c->out)) {
		st_log(ST_LOG_WARNING, "serve", "client %d: out of memory for "
		       "its replies: closed", c->fd);
		close_client(s, c);
	}
}

/* Sends what the socket takes; 0, or -1 when the client was closed. */
static int send_out(st_server_t *s, client_t *c)
{
	while (st_resp_out_pending(&c->out)) {
		ssize_t n = send(c->fd, st_resp_out_data(&c->out),
				 st_resp_out_pending(&c->out), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			close_client(s, c);
			return -1;
		}
		st_resp_out_consume(&c->out, (size_t)n);
	}
	if (!st_resp_out_pending(&c->out) && (c->flags & CL_CLOSE_AFTER)) {
		close_client(s, c);
		return -1;
	}
	return 0;
}

/* Sends; once the output of a paused client drains under the limit,
 * runs the requests held back. Then updates the interest. */
static void service(st_server_t *s, client_t *c)
{
	for (;;) {
		if (send_out(s, c))
			return;
		if (!(c->flags & CL_PAUSED) ||
		    st_resp_out_pending(&c->out) >= s->max_output)
			break;
		c->flags &= ~(unsigned)CL_PAUSED;
		run_requests(s, c);
		if (c->flags & CL_DEAD)
			return;
	}
	set_interest(s, c);
}

static void on_readable(st_server_t *s, client_t *c)
{
	size_t avail;
	ssize_t n;
	void *sp;

	if (c->flags & CL_CLOSE_AFTER)
		return;
	if (st_resp_space(c->in, READ_MIN, &sp, &avail)) {
		close_client(s, c);
		return;
	}
	n = recv(c->fd, sp, avail, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		return;
	if (n <= 0) {
		/* Gone, possibly in the middle of a request. */
		close_client(s, c);
		return;
	}
	st_resp_wrote(c->in, (size_t)n);
	run_requests(s, c);
	if (!(c->flags & CL_DEAD))
		mark_dirty(s, c);
}

static void add_client(st_server_t *s, int fd)
{
	struct epoll_event ev = { 0 };
	client_t *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || st_resp_parser_new(&c->in))
		goto fail;
	c->fd = fd;
	c->id = ++s->next_id;
	c->events = EPOLLIN;
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->nclients++;
	st_metrics_gauge_set(s->m_conns, s->nclients);
	return;
fail:
	st_log(ST_LOG_WARNING, "serve", "cannot take a connection: %s",
	       c ? strerror(errno) : "out of memory");
	close(fd);
	if (c)
		free_client(c);
}

static void pause_accept(st_server_t *s, int64_t until_ns)
{
	if (!s->accept_paused && epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL))
		return;
	s->accept_paused = 1;
	s->accept_resume_ns = until_ns;
}

static void resume_accept(st_server_t *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->lfd };

	if (!s->accept_paused || now_ns() < s->accept_resume_ns)
		return;
	if (!epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev))
		s->accept_paused = 0;
}

static void accept_clients(st_server_t *s)
{
	static const char full[] = "-ERR max number of clients reached\r\n";

	for (int i = 0; i < ACCEPT_PER_PASS; i++) {
		int fd = accept4(s->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors or memory: stop taking
			 * connections for a while rather than spin. */
			st_log(ST_LOG_WARNING, "serve", "accept: %s",
			       strerror(errno));
			pause_accept(s, now_ns() + ACCEPT_PAUSE_NS);
			return;
		}
		s->st_conns++;
		if (s->nclients >= s->max_clients) {
			(void)!send(fd, full, sizeof(full) - 1,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			s->st_rejected++;
			s->st_errors++;
			st_metrics_counter_inc(s->m_errors);
			continue;
		}
		add_client(s, fd);
	}
}

/* Sends to every client that has new output. */
static void flush_dirty(st_server_t *s)
{
	while (s->dirty) {
		client_t *c = s->dirty;

		s->dirty = c->next_dirty;
		c->flags &= ~(unsigned)CL_DIRTY;
		if (!(c->flags & CL_DEAD))
			service(s, c);
	}
}

int st_server_run(st_server_t *s, volatile sig_atomic_t *stop,
		  char *errstr, size_t errstr_size)
{
	struct epoll_event ev[EVENTS_MAX];

	while (!*stop) {
		int n = epoll_wait(s->ep, ev, EVENTS_MAX, LOOP_TIMEOUT_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return st_seterr(errstr, errstr_size, ST_EIO,
					 "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			client_t *c = ev[i].data.ptr;
			uint32_t e = ev[i].events;

			if (ev[i].data.ptr == &s->lfd) {
				accept_clients(s);
				continue;
			}
			if (c->flags & CL_DEAD)
				continue;
			if (e & EPOLLIN)
				on_readable(s, c);
			else if (e & (EPOLLERR | EPOLLHUP))
				close_client(s, c);
			if (!(c->flags & CL_DEAD) && (e & EPOLLOUT))
				mark_dirty(s, c);
		}
		flush_dirty(s);
		end_txn(s);
		free_dead(s);
		resume_accept(s);
	}
	return 0;
}

/* ---- start-up --------------------------------------------------------- */

/* Splits "host:port", ":port" or "[v6]:port"; host "" for ":port". */
static int split_listen(const char *addr, char *host, size_t hsize,
			char *port, size_t psize)
{
	const char *colon, *h = addr;
	size_t hl;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (!rb || rb[1] != ':')
			return -1;
		h = addr + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -1;
		hl = (size_t)(colon - addr);
	}
	if (hl >= hsize || strlen(colon + 1) >= psize || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atol(colon + 1) > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static int open_listener(st_server_t *s, const char *addr, char *errstr,
			 size_t errstr_size)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	char host[256], port[8];
	int one = 1, rc, err = 0;

	if (!addr || split_listen(addr, host, sizeof(host), port,
				    sizeof(port)))
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "serve.listen '%s': expected HOST:PORT, :PORT "
				 "or [IPV6]:PORT", addr ? addr : "");
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(*host ? host : "0.0.0.0", port, &hints, &ai);
	if (rc)
		return st_seterr(errstr, errstr_size, ST_ENET,
				 "serve.listen %s: %s", addr,
				 gai_strerror(rc));
	s->lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
			SOCK_CLOEXEC, ai->ai_protocol);
	if (s->lfd < 0 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s->lfd, ai->ai_addr, ai->ai_addrlen) ||
	    listen(s->lfd, 511) ||
	    getsockname(s->lfd, (struct sockaddr *)&sa, &salen)) {
		err = st_seterr(errstr, errstr_size, ST_ENET,
				"serve.listen %s: %s", addr,
				strerror(errno));
		goto out;
	}
	s->port = ntohs(sa.ss_family == AF_INET6 ?
			((struct sockaddr_in6 *)&sa)->sin6_port :
			((struct sockaddr_in *)&sa)->sin_port);
out:
	freeaddrinfo(ai);
	return err;
}

/* Makes room for max_clients descriptors, raising the soft limit. */
static int fit_fd_limit(int max_clients, char *errstr, size_t errstr_size)
{
	rlim_t need = (rlim_t)max_clients + FDS_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
			      rl.rlim_max >= need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < need)
			return st_seterr(errstr, errstr_size, ST_EINVAL,
					 "serve.max.clients %d needs %llu open "
					 "files, the limit is %llu (ulimit -n)",
					 max_clients, (unsigned long long)need,
					 (unsigned long long)rl.rlim_cur);
	}
	return 0;
}

static int load_model(st_server_t *s, const char *model, char *errstr,
		      size_t errstr_size)
{
	int err;

	if (!model || !*model)
		return 0;
	if ((err = st_scorer_new(&s->scorer, model, 1, errstr, errstr_size)))
		return err;
	if (!st_scorer_feature(s->scorer, 0))
		return st_seterr(errstr, errstr_size, ST_EMODEL,
				 "scorer.model %s: no feature names (metadata "
				 "%s): SCORE cannot build rows", model,
				 ST_SCORER_META_FEATURES);
	s->row = calloc(st_scorer_nfeatures(s->scorer), sizeof(float));
	return s->row ? 0 : ST_ENOMEM;
}

static int register_metrics(st_server_t *s)
{
	st_metrics_family_t *cf, *hf;
	int err;

	s->m_cmds = calloc(NCMDS, sizeof(*s->m_cmds));
	s->m_secs = calloc(NCMDS, sizeof(*s->m_secs));
	if (!s->m_cmds || !s->m_secs)
		return ST_ENOMEM;
	if ((err = st_metrics_new(&s->m)) ||
	    (err = st_metrics_family(s->m, ST_METRICS_COUNTER,
				     "strata_resp_commands_total",
				     "Commands run over the Redis protocol.",
				     "command", NULL, NULL, 0, &cf)) ||
	    (err = st_metrics_family(s->m, ST_METRICS_HISTOGRAM,
				     "strata_resp_command_seconds",
				     "Time to run a command and build its "
				     "reply.", "command", NULL,
				     st_metrics_latency_buckets,
				     ST_METRICS_LATENCY_BUCKETS_COUNT, &hf)) ||
	    (err = st_metrics_gauge(s->m, "strata_resp_connections",
				    "Open client connections.",
				    &s->m_conns)) ||
	    (err = st_metrics_counter(s->m, "strata_resp_errors_total",
				      "Error replies sent (protocol errors, "
				      "unknown commands, wrong arity, "
				      "refused connections...).",
				      &s->m_errors)) ||
	    (err = st_metrics_process(s->m)))
		return err;
	if (s->rec &&
	    ((err = st_metrics_gauge(s->m, "strata_recommend_items",
				     "Items in the catalogue RECOMMEND ranks "
				     "(at the last build of their columns; "
				     "recommend.candidates.max + 1 when over "
				     "it).",
				     &s->m_rec_items)) ||
	     (err = st_metrics_counter(s->m, "strata_recommend_builds_total",
				       "Builds of the items' columns tried (the "
				       "first request, after each change of "
				       "the catalogue or a joined table, and "
				       "after a failed one).",
				       &s->m_rec_builds)) ||
	     (err = st_metrics_gauge_double(s->m,
					    "strata_recommend_build_seconds",
					    "Time the last build of the "
					    "items' columns took, on the "
					    "serving thread.",
					    &s->m_rec_build))))
		return err;
	for (size_t i = 0; i < NCMDS; i++)
		if ((err = st_metrics_counter_child(cf, cmds[i].name, NULL,
						    &s->m_cmds[i])) ||
		    (err = st_metrics_histogram_child(hf, cmds[i].name, NULL,
						      &s->m_secs[i])))
			return err;
	return 0;
}

int st_server_new(st_server_t **sp, const st_server_conf_t *conf,
		  char *errstr, size_t errstr_size)
{
	struct epoll_event ev = { .events = EPOLLIN };
	st_server_t *s = calloc(1, sizeof(*s));
	int err;

	*sp = NULL;
	if (!s)
		return ST_ENOMEM;
	s->lfd = s->ep = -1;
	if (!conf->prefix || !*conf->prefix || !conf->state_dir) {
		err = st_seterr(errstr, errstr_size, ST_EINVAL, "%s is empty",
				conf->state_dir ? "redis.prefix" :
				"state.dir");
		goto fail;
	}
	if (conf->max_clients < 1 || conf->max_output <= 0) {
		err = st_seterr(errstr, errstr_size, ST_EINVAL, "%s must be "
				"positive", conf->max_clients < 1 ?
				"serve.max.clients" :
				"serve.client.output.max");
		goto fail;
	}
	s->max_clients = conf->max_clients;
	s->max_output = (size_t)conf->max_output;
	s->kpfx_len = strlen(conf->prefix) + 1;
	if (!(s->kpfx = malloc(s->kpfx_len + 1))) {
		err = ST_ENOMEM;
		goto fail;
	}
	snprintf(s->kpfx, s->kpfx_len + 1, "%s:", conf->prefix);
	if ((err = fit_fd_limit(conf->max_clients, errstr, errstr_size)) ||
	    (err = st_state_open(&s->st, conf->state_dir, 0,
				 ST_STATE_READONLY, errstr, errstr_size)) ||
	    (err = load_model(s, conf->model, errstr, errstr_size)))
		goto fail;
	if (conf->recommend && conf->recommend->model &&
	    *conf->recommend->model &&
	    (err = st_recommend_new(&s->rec, s->st, conf->recommend, errstr,
				    errstr_size)))
		goto fail;
	s->dbi = st_state_dbi_entities(s->st);
	s->meta = st_state_dbi_meta(s->st);
	if ((err = register_metrics(s))) {
		st_seterr(errstr, errstr_size, err, "metrics: %s",
			  st_strerror(err));
		goto fail;
	}
	if ((err = open_listener(s, conf->listen, errstr, errstr_size)))
		goto fail;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.ptr = &s->lfd;
	if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev)) {
		err = st_seterr(errstr, errstr_size, ST_EIO, "epoll: %s",
				strerror(errno));
		goto fail;
	}
	if (conf->metrics_listen && *conf->metrics_listen &&
	    (err = st_http_start(&s->http, conf->metrics_listen, s->m, errstr,
				 errstr_size)))
		goto fail;
	s->started_ns = now_ns();
	*sp = s;
	return 0;
fail:
	st_server_destroy(s);
	return err;
}

int st_server_port(const st_server_t *s)
{
	return s->port;
}

int st_server_metrics_port(const st_server_t *s)
{
	return s->http ? st_http_port(s->http) : 0;
}

st_metrics_t *st_server_metrics(st_server_t *s)
{
	return s->m;
}

void st_server_destroy(st_server_t *s)
{
	if (!s)
		return;
	while (s->clients)
		close_client(s, s->clients);
	free_dead(s);
	end_txn(s);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->ep >= 0)
		close(s->ep);
	st_http_stop(s->http);
	st_metrics_destroy(s->m);
	free(s->m_cmds);
	free(s->m_secs);
	st_recommend_destroy(s->rec);
	st_scorer_destroy(s->scorer);
	st_state_close(s->st);
	free(s->row);
	free(s->scratch);
	free(s->names);
	free(s->values);
	free(s->kpfx);
	for (size_t i = 0; i < s->nlayouts; i++)
		st_vecrec_layout_free(s->layouts[i]);
	free(s->layouts);
	free(s);
}
