/* temporal.c -- versions of reference rows in LMDB, as-of lookups,
 * history and retention. */
#include "temporal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "row.h"

#define FLAG_DELETED 0x01
#define FLAG_UNAVAILABLE 0x02          /* has unchanged-TOAST markers */
#define SUFFIX 16                      /* ~ts_ms, ~lsn */
#define PREFIX_MAX (1 + 255 + 2 + ST_TEMPORAL_KEY_MAX)
#define KEY_MAX (PREFIX_MAX + SUFFIX)
#define RESOLVE_DEPTH 64               /* older versions searched for a
					* TOAST column before giving up */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Writes table/key into buf; returns the prefix length or 0 if too long. */
static size_t make_prefix(uint8_t *buf, const char *table, const char *key,
			  size_t key_len)
{
	size_t tlen = strlen(table);

	if (tlen == 0 || tlen > 255 || key_len > ST_TEMPORAL_KEY_MAX)
		return 0;
	buf[0] = (uint8_t)tlen;
	memcpy(buf + 1, table, tlen);
	buf[1 + tlen] = (uint8_t)(key_len >> 8);
	buf[2 + tlen] = (uint8_t)key_len;
	memcpy(buf + 3 + tlen, key, key_len);
	return 3 + tlen + key_len;
}

static void put_suffix(uint8_t *p, int64_t ts, int64_t lsn)
{
	put_be64(p, ~(uint64_t)ts);
	put_be64(p + 8, ~(uint64_t)lsn);
}

static int same_prefix(const MDB_val *k, const uint8_t *prefix, size_t plen)
{
	return k->mv_size == plen + SUFFIX && !memcmp(k->mv_data, prefix, plen);
}

/* Fills the time fields of v from an LMDB key and value. */
static int decode_entry(const MDB_val *k, const MDB_val *d, st_version_t *v)
{
	const uint8_t *s = (const uint8_t *)k->mv_data + k->mv_size - SUFFIX;
	const uint8_t *val = d->mv_data;

	if (d->mv_size < 1)
		return ST_EPARSE;
	memset(v, 0, sizeof(*v));
	v->valid_from = (int64_t)~get_be64(s);
	v->lsn = (int64_t)~get_be64(s + 8);
	v->valid_to = ST_TEMPORAL_OPEN_END;
	v->deleted = val[0] & FLAG_DELETED;
	if (!v->deleted) {
		v->row = (uint8_t *)val + 1;
		v->row_len = d->mv_size - 1;
	}
	return 0;
}

#define CHANGES_KEY "temporal.changes:"

/* The meta key of table's change counter in buf; its length, 0 if the
 * table name does not fit. */
static size_t changes_key(char *buf, size_t size, const char *table)
{
	int n = snprintf(buf, size, CHANGES_KEY "%s", table);

	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Adds one to table's change counter in the write transaction. */
static int count_change(st_state_t *st, MDB_txn *txn, const char *table,
			char *errstr, size_t errstr_size)
{
	char key[sizeof(CHANGES_KEY) + 256];
	uint8_t buf[8];
	uint64_t n = 0;
	MDB_val k, v;
	int rc;

	k.mv_data = key;
	k.mv_size = changes_key(key, sizeof(key), table);
	rc = mdb_get(txn, st_state_dbi_meta(st), &k, &v);
	if (!rc && v.mv_size == 8)
		n = get_le64(v.mv_data);
	else if (rc && rc != MDB_NOTFOUND)
		return st_state_mdb_err(rc, "temporal", errstr, errstr_size);
	n++;
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(n >> (8 * i));
	v.mv_data = buf;
	v.mv_size = 8;
	rc = mdb_put(txn, st_state_dbi_meta(st), &k, &v, 0);
	return st_state_mdb_err(rc, "temporal", errstr, errstr_size);
}

int st_temporal_apply(st_state_t *st, const st_cdc_msg_t *msg,
		      st_apply_result_t *result, char *errstr,
		      size_t errstr_size)
{
	MDB_txn *txn = st_state_write_txn(st);
	uint8_t kbuf[KEY_MAX], *vbuf = NULL;
	size_t plen;
	MDB_val k, v;
	int rc, err;

	*result = ST_APPLY_IGNORED;
	if (msg->kind != ST_CDC_CHANGE)
		return 0;
	if (!txn)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "temporal apply outside a write transaction");
	plen = make_prefix(kbuf, msg->table, msg->key, msg->key_len);
	if (!plen)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "%s key of %zu bytes: longer than the %d "
				 "bytes strata stores", msg->table,
				 msg->key_len, ST_TEMPORAL_KEY_MAX);
	put_suffix(kbuf + plen, msg->ts_ms, msg->lsn);
	k.mv_data = kbuf;
	k.mv_size = plen + SUFFIX;
	v.mv_size = 1 + (msg->op == 'd' ? 0 : msg->row_len);
	vbuf = malloc(v.mv_size);
	if (!vbuf)
		return ST_ENOMEM;
	vbuf[0] = msg->op == 'd' ? FLAG_DELETED :
		  st_row_has_unavailable(msg->row, msg->row_len) ?
		  FLAG_UNAVAILABLE : 0;
	if (msg->op != 'd' && msg->row_len)
		memcpy(vbuf + 1, msg->row, msg->row_len);
	v.mv_data = vbuf;
	rc = mdb_put(txn, st_state_dbi_versions(st), &k, &v, MDB_NOOVERWRITE);
	free(vbuf);
	if (rc == MDB_KEYEXIST) {
		*result = ST_APPLY_DUPLICATE;
		return 0;
	}
	err = st_state_mdb_err(rc, "temporal", errstr, errstr_size);
	if (!err)
		err = count_change(st, txn, msg->table, errstr, errstr_size);
	if (!err)
		*result = ST_APPLY_STORED;
	return err;
}

/*
 * Resolves unchanged-TOAST markers of the version under cursor `c` against
 * the older versions that follow it, and returns a new row in *outp.
 * Moves the cursor.
 */
static int resolve_row(MDB_cursor *c, const uint8_t *prefix, size_t plen,
		       const uint8_t *row, size_t row_len, uint8_t **outp,
		       size_t *out_len)
{
	const uint8_t *older[RESOLVE_DEPTH];
	size_t older_len[RESOLVE_DEPTH], n = 0, nlen;
	st_row_builder_t b = {0};
	st_row_iter_t it;
	const char *name;
	st_value_t v, ov;
	MDB_val k, d;
	char cname[256];
	int r, err = 0;

	if (!st_row_has_unavailable(row, row_len)) {
		*outp = malloc(row_len);
		if (!*outp)
			return ST_ENOMEM;
		memcpy(*outp, row, row_len);
		*out_len = row_len;
		return 0;
	}
	while (n < RESOLVE_DEPTH && !mdb_cursor_get(c, &k, &d, MDB_NEXT) &&
	       same_prefix(&k, prefix, plen)) {
		const uint8_t *val = d.mv_data;

		if (d.mv_size < 1 || (val[0] & FLAG_DELETED))
			break;
		older[n] = val + 1;
		older_len[n++] = d.mv_size - 1;
		if (!st_row_has_unavailable(val + 1, d.mv_size - 1))
			break;
	}
	if (st_row_iter_init(&it, row, row_len))
		return ST_EPARSE;
	while ((r = st_row_iter_next(&it, &name, &nlen, &v)) == 1) {
		if (v.type == ST_VAL_UNAVAILABLE) {
			int found = 0;

			memcpy(cname, name, nlen);
			cname[nlen] = '\0';
			for (size_t i = 0; i < n && !found; i++) {
				if (st_row_get(older[i], older_len[i], cname,
					       &ov))
					break;  /* column did not exist */
				if (ov.type != ST_VAL_UNAVAILABLE) {
					v = ov;
					found = 1;
				}
			}
			if (!found)
				continue;
		}
		if ((err = st_row_add(&b, name, nlen, &v)))
			goto out;
	}
	if (r < 0) {
		err = ST_EPARSE;
		goto out;
	}
	err = st_row_finish(&b, outp, out_len);
out:
	if (err)
		st_row_builder_free(&b);
	return err;
}

int st_temporal_asof(st_state_t *st, const char *table, const char *key,
		     size_t key_len, int64_t t, st_version_t *out,
		     char *errstr, size_t errstr_size)
{
	uint8_t kbuf[KEY_MAX];
	MDB_cursor *c = NULL;
	MDB_txn *txn;
	MDB_val k, d, nk, nd;
	size_t plen;
	int rc, err;

	memset(out, 0, sizeof(*out));
	plen = make_prefix(kbuf, table, key, key_len);
	if (!plen)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "table name or key too long");
	if (t < 0)
		return ST_ENOENT;
	put_suffix(kbuf + plen, t, INT64_MAX);
	if ((err = st_state_read_begin(st, &txn, errstr, errstr_size)))
		return err;
	rc = mdb_cursor_open(txn, st_state_dbi_versions(st), &c);
	if (rc) {
		err = st_state_mdb_err(rc, "asof", errstr, errstr_size);
		goto out;
	}
	k.mv_data = kbuf;
	k.mv_size = plen + SUFFIX;
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (rc || !same_prefix(&k, kbuf, plen)) {
		err = rc && rc != MDB_NOTFOUND ?
		      st_state_mdb_err(rc, "asof", errstr, errstr_size) :
		      ST_ENOENT;
		goto out;
	}
	if ((err = decode_entry(&k, &d, out)))
		goto out;
	/* The next newer version, if any, ends this one's validity. */
	nk = k;
	if (!mdb_cursor_get(c, &nk, &nd, MDB_PREV) &&
	    same_prefix(&nk, kbuf, plen))
		out->valid_to = (int64_t)~get_be64((const uint8_t *)nk.mv_data +
						   nk.mv_size - SUFFIX);
	if (out->deleted) {
		err = ST_ENOENT;
		goto out;
	}
	/* Back to the version found, then resolve against older ones. */
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
	if (rc) {
		err = st_state_mdb_err(rc, "asof", errstr, errstr_size);
		goto out;
	}
	err = resolve_row(c, kbuf, plen, out->row, out->row_len, &out->row,
			  &out->row_len);
	if (err) {
		out->row = NULL;
		st_seterr(errstr, errstr_size, err, "%s %.*s: corrupt version",
			  table, (int)key_len, key);
	}
out:
	if (c)
		mdb_cursor_close(c);
	if (txn != st_state_write_txn(st))
		st_state_read_end(st);
	if (err)
		out->row = NULL;
	return err;
}

int st_temporal_history(st_state_t *st, const char *table, const char *key,
			size_t key_len, st_version_fn fn, void *opaque,
			char *errstr, size_t errstr_size)
{
	uint8_t kbuf[KEY_MAX];
	MDB_cursor *c = NULL, *rc_cur = NULL;
	int64_t newer_from = ST_TEMPORAL_OPEN_END;
	MDB_txn *txn;
	MDB_val k, d, rk, rd;
	size_t plen;
	int rc, err, found = 0;
	st_version_t v;

	plen = make_prefix(kbuf, table, key, key_len);
	if (!plen)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "table name or key too long");
	memset(kbuf + plen, 0, SUFFIX);
	if ((err = st_state_read_begin(st, &txn, errstr, errstr_size)))
		return err;
	if ((rc = mdb_cursor_open(txn, st_state_dbi_versions(st), &c)) ||
	    (rc = mdb_cursor_open(txn, st_state_dbi_versions(st), &rc_cur))) {
		err = st_state_mdb_err(rc, "history", errstr, errstr_size);
		goto out;
	}
	k.mv_data = kbuf;
	k.mv_size = plen + SUFFIX;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	     !rc && same_prefix(&k, kbuf, plen);
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint8_t *resolved = NULL;
		size_t resolved_len = 0;

		found = 1;
		if ((err = decode_entry(&k, &d, &v)))
			goto out;
		v.valid_to = newer_from;
		newer_from = v.valid_from;
		if (!v.deleted) {
			rk = k;
			if ((rc = mdb_cursor_get(rc_cur, &rk, &rd,
						 MDB_SET_KEY))) {
				err = st_state_mdb_err(rc, "history", errstr,
						       errstr_size);
				goto out;
			}
			err = resolve_row(rc_cur, kbuf, plen, v.row, v.row_len,
					  &resolved, &resolved_len);
			if (err)
				goto out;
			v.row = resolved;
			v.row_len = resolved_len;
		}
		err = fn(&v, opaque);
		free(resolved);
		if (err)
			goto out;
	}
	if (rc && rc != MDB_NOTFOUND)
		err = st_state_mdb_err(rc, "history", errstr, errstr_size);
	else if (!found)
		err = ST_ENOENT;
out:
	if (rc_cur)
		mdb_cursor_close(rc_cur);
	if (c)
		mdb_cursor_close(c);
	if (txn != st_state_write_txn(st))
		st_state_read_end(st);
	return err;
}

/* Compacts the versions of one key; the cursor is on its newest. */
static int compact_key(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *c,
		       const uint8_t *prefix, size_t plen, int64_t horizon,
		       uint64_t *removed)
{
	MDB_val k, d;
	uint8_t keep_key[KEY_MAX], *resolved = NULL;
	size_t resolved_len;
	int kept = 0, keep_deleted = 0, rc, err = 0;
	st_version_t v;

	for (rc = mdb_cursor_get(c, &k, &d, MDB_GET_CURRENT);
	     !rc && same_prefix(&k, prefix, plen);
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (decode_entry(&k, &d, &v))
			return ST_ESTATE;
		if (v.valid_from > horizon)
			continue;
		if (!kept) {
			/* The version valid at the horizon: keep it, with its
			 * TOAST columns resolved before older ones go. */
			kept = 1;
			keep_deleted = v.deleted;
			memcpy(keep_key, k.mv_data, k.mv_size);
			if (v.deleted || !st_row_has_unavailable(v.row,
								 v.row_len))
				continue;
			err = resolve_row(c, prefix, plen, v.row, v.row_len,
					  &resolved, &resolved_len);
			if (err)
				return err;
			/* resolve_row moved the cursor: go back. */
			k.mv_data = keep_key;
			k.mv_size = plen + SUFFIX;
			rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
			if (rc)
				break;
			continue;
		}
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		(*removed)++;
	}
	if (rc && rc != MDB_NOTFOUND) {
		err = st_state_mdb_err(rc, "compact", NULL, 0);
		goto out;
	}
	rc = 0;
	if (!kept)
		goto out;
	k.mv_data = keep_key;
	k.mv_size = plen + SUFFIX;
	if (keep_deleted) {
		/* Nothing is valid at the horizon: the delete goes too. */
		rc = mdb_del(txn, dbi, &k, NULL);
		if (!rc)
			(*removed)++;
	} else if (resolved) {
		uint8_t *val = malloc(resolved_len + 1);

		if (!val) {
			err = ST_ENOMEM;
			goto out;
		}
		val[0] = 0;
		memcpy(val + 1, resolved, resolved_len);
		d.mv_data = val;
		d.mv_size = resolved_len + 1;
		rc = mdb_put(txn, dbi, &k, &d, 0);
		free(val);
	}
	err = st_state_mdb_err(rc, "compact", NULL, 0);
out:
	free(resolved);
	return err;
}

/* Positions c on the first version of the key after the one whose prefix
 * is buf[0..plen) (buf has SUFFIX bytes of room after it). Returns
 * mdb_cursor_get()'s code. */
static int seek_next_key(MDB_cursor *c, uint8_t *buf, size_t plen,
			 MDB_val *k, MDB_val *d)
{
	int rc;

	memset(buf + plen, 0xff, SUFFIX);
	k->mv_data = buf;
	k->mv_size = plen + SUFFIX;
	rc = mdb_cursor_get(c, k, d, MDB_SET_RANGE);
	while (!rc && same_prefix(k, buf, plen))
		rc = mdb_cursor_get(c, k, d, MDB_NEXT);
	return rc;
}

int st_temporal_compact(st_state_t *st, int64_t horizon, size_t budget,
			void **cursor, size_t *cursor_len, uint64_t *removed,
			char *errstr, size_t errstr_size)
{
	MDB_txn *txn = st_state_write_txn(st);
	MDB_dbi dbi = st_state_dbi_versions(st);
	uint8_t prefix[PREFIX_MAX];
	MDB_cursor *c = NULL;
	MDB_val k, d;
	size_t plen, done = 0;
	int rc, err = 0;

	*removed = 0;
	if (!txn)
		return st_seterr(errstr, errstr_size, ST_ESTATE,
				 "compact outside a write transaction");
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return st_state_mdb_err(rc, "compact", errstr, errstr_size);
	if (*cursor) {
		/* Resume after the last key compacted. */
		memcpy(prefix, *cursor, *cursor_len);
		rc = seek_next_key(c, prefix, *cursor_len, &k, &d);
	} else {
		rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
	}
	free(*cursor);
	*cursor = NULL;
	while (!rc && done < budget) {
		if (k.mv_size <= SUFFIX) {
			err = st_seterr(errstr, errstr_size, ST_ESTATE,
					"compact: corrupt version key");
			goto out;
		}
		plen = k.mv_size - SUFFIX;
		memcpy(prefix, k.mv_data, plen);
		err = compact_key(txn, dbi, c, prefix, plen, horizon, removed);
		if (err) {
			st_seterr(errstr, errstr_size, err, "compact: %s",
				  st_strerror(err));
			goto out;
		}
		done++;
		rc = seek_next_key(c, prefix, plen, &k, &d);
		if (!rc && done == budget) {
			*cursor = malloc(plen);
			if (!*cursor) {
				err = ST_ENOMEM;
				goto out;
			}
			memcpy(*cursor, prefix, plen);
			*cursor_len = plen;
		}
	}
	if (rc && rc != MDB_NOTFOUND)
		err = st_state_mdb_err(rc, "compact", errstr, errstr_size);
out:
	mdb_cursor_close(c);
	return err;
}

void st_version_clear(st_version_t *v)
{
	free(v->row);
	v->row = NULL;
	v->row_len = 0;
}

struct st_temporal_reader {
	st_state_t *st;
	MDB_cursor *cursor;
	uint8_t *resolved[ST_TEMPORAL_READER_SLOTS];  /* owned */
};

st_temporal_reader_t *st_temporal_reader_new(st_state_t *st)
{
	st_temporal_reader_t *r = calloc(1, sizeof(*r));

	if (r)
		r->st = st;
	return r;
}

void st_temporal_reader_free(st_temporal_reader_t *r)
{
	if (!r)
		return;
	if (r->cursor)
		mdb_cursor_close(r->cursor);
	for (int i = 0; i < ST_TEMPORAL_READER_SLOTS; i++)
		free(r->resolved[i]);
	free(r);
}

void st_temporal_reader_txn_ended(st_temporal_reader_t *r)
{
	r->cursor = NULL;
}

int st_temporal_reader_bind(st_temporal_reader_t *r, MDB_txn *txn)
{
	int rc;

	/* A cursor of a write transaction cannot be renewed: reopen. */
	if (r->cursor && !mdb_cursor_renew(txn, r->cursor))
		return 0;
	if (r->cursor)
		mdb_cursor_close(r->cursor);
	r->cursor = NULL;
	rc = mdb_cursor_open(txn, st_state_dbi_versions(r->st), &r->cursor);
	if (rc)
		r->cursor = NULL;
	return st_state_mdb_err(rc, "reader", NULL, 0);
}

int st_temporal_lookup(st_temporal_reader_t *r, int slot, const char *table,
		       const char *key, size_t key_len, int64_t t,
		       const uint8_t **row, size_t *row_len)
{
	uint8_t kbuf[KEY_MAX];
	const uint8_t *val;
	MDB_val k, d;
	size_t plen;
	int rc, err;

	plen = make_prefix(kbuf, table, key, key_len);
	if (!plen || slot < 0 || slot >= ST_TEMPORAL_READER_SLOTS)
		return ST_EINVAL;
	if (t < 0)
		return ST_ENOENT;
	put_suffix(kbuf + plen, t, INT64_MAX);
	k.mv_data = kbuf;
	k.mv_size = plen + SUFFIX;
	rc = mdb_cursor_get(r->cursor, &k, &d, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND || (!rc && !same_prefix(&k, kbuf, plen)))
		return ST_ENOENT;
	if (rc)
		return st_state_mdb_err(rc, "lookup", NULL, 0);
	val = d.mv_data;
	if (d.mv_size < 1)
		return ST_EPARSE;
	if (val[0] & FLAG_DELETED)
		return ST_ENOENT;
	if (!(val[0] & FLAG_UNAVAILABLE)) {
		*row = val + 1;
		*row_len = d.mv_size - 1;
		return 0;
	}
	free(r->resolved[slot]);
	r->resolved[slot] = NULL;
	err = resolve_row(r->cursor, kbuf, plen, val + 1, d.mv_size - 1,
			  &r->resolved[slot], row_len);
	if (!err)
		*row = r->resolved[slot];
	return err;
}

/* The row of the version under the cursor (key k, value d): 1 with *row
 * valid at t, 0 when it is a delete, or an error. A row with
 * unchanged-TOAST markers is resolved into *resolved. Moves the cursor. */
static int version_row(MDB_cursor *c, const uint8_t *prefix, size_t plen,
		       const MDB_val *d, uint8_t **resolved,
		       const uint8_t **row, size_t *row_len)
{
	const uint8_t *val = d->mv_data;

	if (d->mv_size < 1)
		return ST_EPARSE;
	if (val[0] & FLAG_DELETED)
		return 0;
	if (!(val[0] & FLAG_UNAVAILABLE)) {
		*row = val + 1;
		*row_len = d->mv_size - 1;
		return 1;
	}
	free(*resolved);
	*resolved = NULL;
	int err = resolve_row(c, prefix, plen, val + 1, d->mv_size - 1,
			      resolved, row_len);
	if (err)
		return err;
	*row = *resolved;
	return 1;
}

int st_temporal_scan(st_temporal_reader_t *r, int slot, const char *table,
		     int64_t t, st_temporal_scan_fn fn, void *opaque)
{
	size_t tlen = table ? strlen(table) : 0, klen, plen;
	uint8_t kbuf[KEY_MAX];
	const uint8_t *row = NULL, *kp;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	size_t row_len = 0;
	int rc, err = 0;

	if (!tlen || tlen > 255 || slot < 0 ||
	    slot >= ST_TEMPORAL_READER_SLOTS || !fn)
		return ST_EINVAL;
	if (!r->cursor)
		return ST_ESTATE;
	rc = mdb_cursor_open(mdb_cursor_txn(r->cursor),
			     st_state_dbi_versions(r->st), &c);
	if (rc)
		return st_state_mdb_err(rc, "scan", NULL, 0);
	kbuf[0] = (uint8_t)tlen;
	memcpy(kbuf + 1, table, tlen);
	k.mv_data = kbuf;
	k.mv_size = 1 + tlen;
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (!rc) {
		kp = k.mv_data;
		if (k.mv_size < 1 + tlen || memcmp(kp, kbuf, 1 + tlen))
			break;                  /* past the table */
		if (k.mv_size < 3 + tlen + SUFFIX) {
			err = ST_EPARSE;
			break;
		}
		klen = (size_t)kp[1 + tlen] << 8 | kp[2 + tlen];
		plen = 3 + tlen + klen;
		if (k.mv_size != plen + SUFFIX || klen > ST_TEMPORAL_KEY_MAX) {
			err = ST_EPARSE;
			break;
		}
		memcpy(kbuf, kp, plen);
		/* The version valid at t: the first at or after ~t. */
		put_suffix(kbuf + plen, t, INT64_MAX);
		k.mv_data = kbuf;
		k.mv_size = plen + SUFFIX;
		rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
		if (rc && rc != MDB_NOTFOUND)
			break;
		if (!rc && t >= 0 && same_prefix(&k, kbuf, plen)) {
			err = version_row(c, kbuf, plen, &d,
					  &r->resolved[slot], &row, &row_len);
			if (err == 1)
				err = fn((const char *)kbuf + 3 + tlen, klen,
					 row, row_len, opaque);
			if (err)
				break;
		}
		rc = seek_next_key(c, kbuf, plen, &k, &d);
	}
	if (!err && rc && rc != MDB_NOTFOUND)
		err = st_state_mdb_err(rc, "scan", NULL, 0);
	mdb_cursor_close(c);
	return err;
}

int st_temporal_changes(st_temporal_reader_t *r, const char *table,
			uint64_t *count)
{
	char key[sizeof(CHANGES_KEY) + 256];
	MDB_val k, v;
	int rc;

	*count = 0;
	if (!table || !*table || strlen(table) > 255)
		return ST_EINVAL;
	if (!r->cursor)
		return ST_ESTATE;
	k.mv_data = key;
	k.mv_size = changes_key(key, sizeof(key), table);
	rc = mdb_get(mdb_cursor_txn(r->cursor), st_state_dbi_meta(r->st), &k,
		     &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return st_state_mdb_err(rc, "changes", NULL, 0);
	if (v.mv_size == 8)
		*count = get_le64(v.mv_data);
	return 0;
}
