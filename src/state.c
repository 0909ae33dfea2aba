/* state.c -- LMDB environment, transactions and input offsets. */
#include "state.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

struct st_state {
	MDB_env *env;
	MDB_txn *wtxn;     /* open write transaction or NULL */
	MDB_txn *rtxn;     /* reusable read transaction (reset when idle) */
	int rtxn_live;
	MDB_dbi versions, entities, offsets, meta;
	int readonly;
};

int st_state_mdb_err(int rc, const char *what, char *errstr,
		     size_t errstr_size)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return ST_ENOENT;
	case MDB_MAP_FULL:
		return st_seterr(errstr, errstr_size, ST_EFULL,
				 "%s: LMDB map full: raise state.map.size "
				 "and restart (no partial state was kept)",
				 what);
	default:
		return st_seterr(errstr, errstr_size, ST_ESTATE, "%s: %s",
				 what, mdb_strerror(rc));
	}
}

static int open_dbi(MDB_txn *txn, const char *name, unsigned flags,
		    MDB_dbi *dbi, char *errstr, size_t errstr_size)
{
	int rc = mdb_dbi_open(txn, name, flags, dbi);

	if (rc == MDB_NOTFOUND)
		return st_seterr(errstr, errstr_size, ST_ENOENT,
				 "state has no '%s' database yet (has "
				 "`strata run` ever run with this state.dir?)",
				 name);
	return st_state_mdb_err(rc, name, errstr, errstr_size);
}

/* mkdir -p: creates dir and its missing parents. */
static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

int st_state_open(st_state_t **sp, const char *dir, int64_t map_size,
		  int flags, char *errstr, size_t errstr_size)
{
	st_state_t *st = calloc(1, sizeof(*st));
	/* No readahead on the map (MADV_RANDOM): a page fault in a part of
	 * the file not yet written read ahead a large folio and zeroed it,
	 * 20 to 30 ms on the CPU inside one mdb_put() (perf, 20,000
	 * events/s), where one page is all that is needed. */
	unsigned envflags = MDB_NOTLS | MDB_NORDAHEAD, dbflags;
	MDB_txn *txn = NULL;
	MDB_dbi old;
	int rc, err;

	if (!st)
		return ST_ENOMEM;
	st->readonly = flags & ST_STATE_READONLY;
	if (!st->readonly && mkdir_p(dir)) {
		err = st_seterr(errstr, errstr_size, ST_EIO,
				"state.dir %s: cannot create: %s", dir,
				strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env)) ||
	    (rc = mdb_env_set_maxdbs(st->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(st->env, 126)) ||
	    (!st->readonly &&
	     (rc = mdb_env_set_mapsize(st->env, (size_t)map_size)))) {
		err = st_state_mdb_err(rc, "state", errstr, errstr_size);
		goto fail;
	}
	if (st->readonly)
		envflags |= MDB_RDONLY;
	if (flags & ST_STATE_NOSYNC)
		envflags |= MDB_NOSYNC;
	if ((flags & ST_STATE_WRITEMAP) && !st->readonly)
		envflags |= MDB_WRITEMAP;
	rc = mdb_env_open(st->env, dir, envflags, 0644);
	if (rc) {
		err = st_seterr(errstr, errstr_size,
				rc == ENOENT ? ST_ENOENT : ST_ESTATE,
				"state.dir %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	rc = mdb_txn_begin(st->env, NULL, st->readonly ? MDB_RDONLY : 0, &txn);
	if (rc) {
		err = st_state_mdb_err(rc, "state", errstr, errstr_size);
		goto fail;
	}
	/* Window state and kept vectors had databases of their own before
	 * 2026-12-02 ("windows", "vectors"): such a state is refused, not
	 * read as if every window were empty. */
	if (mdb_dbi_open(txn, "windows", 0, &old) != MDB_NOTFOUND) {
		err = st_seterr(errstr, errstr_size, ST_ESTATE, "state.dir %s "
				"was written by an earlier strata (window state "
				"in a 'windows' database, now 'entities'), whose "
				"windows this one cannot read: use a new "
				"state.dir", dir);
		goto fail;
	}
	dbflags = st->readonly ? 0 : MDB_CREATE;
	if ((err = open_dbi(txn, "versions", dbflags, &st->versions, errstr,
			    errstr_size)) ||
	    (err = open_dbi(txn, "entities", dbflags, &st->entities, errstr,
			    errstr_size)) ||
	    (err = open_dbi(txn, "offsets", dbflags, &st->offsets, errstr,
			    errstr_size)) ||
	    (err = open_dbi(txn, "meta", dbflags, &st->meta, errstr,
			    errstr_size)))
		goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		err = st_state_mdb_err(rc, "state", errstr, errstr_size);
		goto fail;
	}
	*sp = st;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return err;
}

void st_state_close(st_state_t *st)
{
	if (!st)
		return;
	st_state_abort(st);
	if (st->rtxn)
		mdb_txn_abort(st->rtxn);
	mdb_env_close(st->env);
	free(st);
}

int st_state_begin(st_state_t *st, char *errstr, size_t errstr_size)
{
	int rc;

	if (st->wtxn)
		return 0;
	if (st->readonly)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "state opened read-only");
	rc = mdb_txn_begin(st->env, NULL, 0, &st->wtxn);
	if (rc)
		st->wtxn = NULL;
	return st_state_mdb_err(rc, "begin", errstr, errstr_size);
}

int st_state_commit(st_state_t *st, char *errstr, size_t errstr_size)
{
	int rc;

	if (!st->wtxn)
		return 0;
	rc = mdb_txn_commit(st->wtxn);
	st->wtxn = NULL;
	return st_state_mdb_err(rc, "commit", errstr, errstr_size);
}

void st_state_abort(st_state_t *st)
{
	if (!st->wtxn)
		return;
	mdb_txn_abort(st->wtxn);
	st->wtxn = NULL;
}

MDB_txn *st_state_write_txn(st_state_t *st)
{
	return st->wtxn;
}

int st_state_read_begin(st_state_t *st, MDB_txn **txnp, char *errstr,
			size_t errstr_size)
{
	int rc;

	if (st->wtxn) {
		*txnp = st->wtxn;
		return 0;
	}
	if (st->rtxn_live) {
		mdb_txn_reset(st->rtxn);
		st->rtxn_live = 0;
	}
	if (st->rtxn)
		rc = mdb_txn_renew(st->rtxn);
	else
		rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
	if (rc == MDB_MAP_RESIZED && !st->wtxn) {
		/* Another process (strata run restarted with a larger
		 * state.map.size) grew the map: adopt its size. No
		 * transaction of ours is open at this point. */
		if (st->rtxn) {
			mdb_txn_abort(st->rtxn);
			st->rtxn = NULL;
		}
		rc = mdb_env_set_mapsize(st->env, 0);
		if (!rc)
			rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY,
					   &st->rtxn);
	}
	if (rc)
		return st_state_mdb_err(rc, "read", errstr, errstr_size);
	st->rtxn_live = 1;
	*txnp = st->rtxn;
	return 0;
}

void st_state_read_end(st_state_t *st)
{
	if (st->rtxn_live) {
		mdb_txn_reset(st->rtxn);
		st->rtxn_live = 0;
	}
}

MDB_dbi st_state_dbi_versions(const st_state_t *st)
{
	return st->versions;
}

MDB_dbi st_state_dbi_entities(const st_state_t *st)
{
	return st->entities;
}

MDB_dbi st_state_dbi_meta(const st_state_t *st)
{
	return st->meta;
}

/* Offset keys: topic bytes, NUL, partition as 4 big-endian bytes. */
static size_t offset_key(char *buf, size_t size, const char *topic,
			 int32_t partition)
{
	size_t n = strlen(topic);
	uint32_t p = (uint32_t)partition;

	if (n + 5 > size)
		return 0;
	memcpy(buf, topic, n + 1);
	buf[n + 1] = (char)(p >> 24);
	buf[n + 2] = (char)(p >> 16);
	buf[n + 3] = (char)(p >> 8);
	buf[n + 4] = (char)p;
	return n + 5;
}

int st_state_offset_put(st_state_t *st, const char *topic, int32_t partition,
			int64_t next_offset, int64_t aux, char *errstr,
			size_t errstr_size)
{
	int64_t val[2] = {next_offset, aux};
	char kbuf[300];
	MDB_val k, v;

	k.mv_size = offset_key(kbuf, sizeof(kbuf), topic, partition);
	if (!k.mv_size)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "topic name too long: %s", topic);
	if (!st->wtxn)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "offset_put outside a write transaction");
	k.mv_data = kbuf;
	v.mv_data = val;
	v.mv_size = sizeof(val);
	return st_state_mdb_err(mdb_put(st->wtxn, st->offsets, &k, &v, 0),
				"offset", errstr, errstr_size);
}

int st_state_offset_get(st_state_t *st, const char *topic, int32_t partition,
			int64_t *next_offset, int64_t *aux, char *errstr,
			size_t errstr_size)
{
	int64_t val[2];
	char kbuf[300];
	MDB_txn *txn;
	MDB_val k, v;
	int err;

	k.mv_size = offset_key(kbuf, sizeof(kbuf), topic, partition);
	if (!k.mv_size)
		return ST_ENOENT;
	k.mv_data = kbuf;
	if ((err = st_state_read_begin(st, &txn, errstr, errstr_size)))
		return err;
	err = st_state_mdb_err(mdb_get(txn, st->offsets, &k, &v), "offset",
			       errstr, errstr_size);
	if (!err) {
		if (v.mv_size != sizeof(val)) {
			err = st_seterr(errstr, errstr_size, ST_ESTATE,
					"offset of %s [%d]: corrupt value",
					topic, partition);
		} else {
			memcpy(val, v.mv_data, sizeof(val));
			*next_offset = val[0];
			if (aux)
				*aux = val[1];
		}
	}
	if (txn != st->wtxn)
		st_state_read_end(st);
	return err;
}

int st_state_entity_split(const void *val, size_t len,
			  st_state_entity_t *out)
{
	const uint8_t *p = val;
	size_t wl;

	if (len < 4)
		return ST_EPARSE;
	wl = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
	     (size_t)p[3] << 24;
	if (wl > len - 4)
		return ST_EPARSE;
	out->win = p + 4;
	out->win_len = wl;
	out->vec = p + 4 + wl;
	out->vec_len = len - 4 - wl;
	return 0;
}

int st_state_entity_get(st_state_t *st, const void *key, size_t key_len,
			st_state_entity_t *out, char *errstr,
			size_t errstr_size)
{
	MDB_val k = {key_len, (void *)key}, v;
	MDB_txn *txn = NULL;
	int err;

	if ((err = st_state_read_begin(st, &txn, errstr, errstr_size)))
		return err;
	err = st_state_mdb_err(mdb_get(txn, st->entities, &k, &v), "entity",
			       errstr, errstr_size);
	if (!err && st_state_entity_split(v.mv_data, v.mv_size, out))
		err = st_seterr(errstr, errstr_size, ST_EPARSE, "entity "
				"%.*s: corrupt record", (int)key_len,
				(const char *)key);
	return err;
}

int st_state_entity_reserve(st_state_t *st, const void *key, size_t key_len,
			    size_t win_len, size_t vec_len, uint8_t **win,
			    char *errstr, size_t errstr_size)
{
	MDB_val k = {key_len, (void *)key}, v = {4 + win_len + vec_len, NULL};
	uint8_t *p;
	int rc;

	if (!st->wtxn)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "entity record outside a write transaction");
	if (win_len > UINT32_MAX)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "entity %.*s: window state too large",
				 (int)key_len, (const char *)key);
	rc = mdb_put(st->wtxn, st->entities, &k, &v, MDB_RESERVE);
	if (rc)
		return st_state_mdb_err(rc, "entity", errstr, errstr_size);
	p = v.mv_data;
	for (int b = 0; b < 4; b++)
		p[b] = (uint8_t)(win_len >> (8 * b));
	*win = p + 4;
	return 0;
}

int st_state_meta_get(st_state_t *st, const char *name, char **value,
		      char *errstr, size_t errstr_size)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	MDB_txn *txn = NULL;
	int err;

	if ((err = st_state_read_begin(st, &txn, errstr, errstr_size)))
		return err;
	err = st_state_mdb_err(mdb_get(txn, st->meta, &k, &v), name, errstr,
			       errstr_size);
	if (!err && !(*value = strndup(v.mv_data, v.mv_size)))
		err = ST_ENOMEM;
	if (txn != st->wtxn)
		st_state_read_end(st);
	return err;
}

int st_state_meta_put(st_state_t *st, const char *name, const char *value,
		      char *errstr, size_t errstr_size)
{
	MDB_val k = {strlen(name), (void *)name},
		v = {strlen(value), (void *)value};

	if (!st->wtxn)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "meta_put outside a write transaction");
	return st_state_mdb_err(mdb_put(st->wtxn, st->meta, &k, &v, 0), name,
				errstr, errstr_size);
}

int st_state_usage(st_state_t *st, int64_t *used, int64_t *size,
		   int *readers, int *max_readers)
{
	MDB_envinfo info;
	MDB_stat stat;
	unsigned maxr = 0;

	if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &stat) ||
	    mdb_env_get_maxreaders(st->env, &maxr))
		return ST_ESTATE;
	*used = (int64_t)(info.me_last_pgno + 1) * stat.ms_psize;
	*size = (int64_t)info.me_mapsize;
	*readers = (int)info.me_numreaders;
	*max_readers = (int)maxr;
	return 0;
}
