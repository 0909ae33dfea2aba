/* row.c -- encoding, reading and JSON conversion of binary rows. */
#include "row.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define ROW_FORMAT 1

static int reserve(st_row_builder_t *b, size_t more)
{
	uint8_t *nb;
	size_t ncap;

	if (b->len + more <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < b->len + more)
		ncap *= 2;
	nb = realloc(b->buf, ncap);
	if (!nb)
		return ST_ENOMEM;
	b->buf = nb;
	b->cap = ncap;
	return 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

int st_row_add(st_row_builder_t *b, const char *name, size_t namelen,
	       const st_value_t *v)
{
	size_t need = 2 + namelen + 8 + 4 + (v->type == ST_VAL_STRING ? v->len : 0);
	uint8_t *p;
	uint64_t bits;

	if (namelen > 255 || b->nfields >= 65535 ||
	    (v->type == ST_VAL_STRING && v->len > UINT32_MAX))
		return ST_EINVAL;
	if (!b->len) {
		if (reserve(b, 3))
			return ST_ENOMEM;
		b->len = 3;
	}
	if (reserve(b, need))
		return ST_ENOMEM;
	p = b->buf + b->len;
	*p++ = (uint8_t)v->type;
	*p++ = (uint8_t)namelen;
	memcpy(p, name, namelen);
	p += namelen;
	switch (v->type) {
	case ST_VAL_NULL:
	case ST_VAL_UNAVAILABLE:
		break;
	case ST_VAL_BOOL:
		*p++ = v->i ? 1 : 0;
		break;
	case ST_VAL_INT:
		put_u64(p, (uint64_t)v->i);
		p += 8;
		break;
	case ST_VAL_DOUBLE:
		memcpy(&bits, &v->d, 8);
		put_u64(p, bits);
		p += 8;
		break;
	case ST_VAL_STRING:
		for (int i = 0; i < 4; i++)
			*p++ = (uint8_t)(v->len >> (8 * i));
		if (v->len)
			memcpy(p, v->s, v->len);
		p += v->len;
		break;
	}
	b->len = (size_t)(p - b->buf);
	b->nfields++;
	return 0;
}

int st_row_finish(st_row_builder_t *b, uint8_t **rowp, size_t *lenp)
{
	if (!b->len) {
		if (reserve(b, 3))
			return ST_ENOMEM;
		b->len = 3;
	}
	b->buf[0] = ROW_FORMAT;
	b->buf[1] = (uint8_t)(b->nfields & 0xff);
	b->buf[2] = (uint8_t)(b->nfields >> 8);
	*rowp = b->buf;
	*lenp = b->len;
	memset(b, 0, sizeof(*b));
	return 0;
}

void st_row_builder_free(st_row_builder_t *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

int st_row_iter_init(st_row_iter_t *it, const uint8_t *row, size_t len)
{
	if (!row || len < 3 || row[0] != ROW_FORMAT)
		return ST_EPARSE;
	it->p = row + 3;
	it->end = row + len;
	it->left = (unsigned)row[1] | ((unsigned)row[2] << 8);
	return 0;
}

int st_row_iter_next(st_row_iter_t *it, const char **name, size_t *namelen,
		     st_value_t *v)
{
	const uint8_t *p = it->p;
	size_t avail, n;
	uint64_t bits;

	if (!it->left)
		return p == it->end ? 0 : ST_EPARSE;
	avail = (size_t)(it->end - p);
	if (avail < 2 || avail - 2 < p[1])
		return ST_EPARSE;
	memset(v, 0, sizeof(*v));
	v->type = (st_val_type_t)p[0];
	*namelen = p[1];
	*name = (const char *)p + 2;
	p += 2 + p[1];
	avail = (size_t)(it->end - p);
	switch (v->type) {
	case ST_VAL_NULL:
	case ST_VAL_UNAVAILABLE:
		break;
	case ST_VAL_BOOL:
		if (avail < 1)
			return ST_EPARSE;
		v->i = *p++;
		break;
	case ST_VAL_INT:
	case ST_VAL_DOUBLE:
		if (avail < 8)
			return ST_EPARSE;
		bits = get_u64(p);
		p += 8;
		if (v->type == ST_VAL_INT)
			v->i = (int64_t)bits;
		else
			memcpy(&v->d, &bits, 8);
		break;
	case ST_VAL_STRING:
		if (avail < 4)
			return ST_EPARSE;
		n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
		    (size_t)p[3] << 24;
		p += 4;
		if (avail - 4 < n)
			return ST_EPARSE;
		v->s = (const char *)p;
		v->len = n;
		p += n;
		break;
	default:
		return ST_EPARSE;
	}
	it->p = p;
	it->left--;
	return 1;
}

int st_row_get(const uint8_t *row, size_t len, const char *name,
	       st_value_t *out)
{
	size_t want = strlen(name), nlen;
	st_row_iter_t it;
	const char *n;
	int r;

	if (st_row_iter_init(&it, row, len))
		return ST_EPARSE;
	while ((r = st_row_iter_next(&it, &n, &nlen, out)) == 1)
		if (nlen == want && !memcmp(n, name, nlen))
			return 0;
	return r < 0 ? r : ST_ENOENT;
}

int st_row_from_jval(const st_json_t *doc, const st_json_val_t *obj,
		     uint8_t **rowp, size_t *lenp)
{
	st_row_builder_t b = {0};
	const st_json_val_t *val;
	char *dump;
	int err = 0;

	if (obj->type != ST_JSON_OBJECT)
		return ST_EINVAL;
	for (val = st_json_first(doc, obj); val; val = st_json_next(doc, val)) {
		st_value_t v = {0};

		dump = NULL;
		switch (val->type) {
		case ST_JSON_NULL:
			v.type = ST_VAL_NULL;
			break;
		case ST_JSON_TRUE:
		case ST_JSON_FALSE:
			v.type = ST_VAL_BOOL;
			v.i = val->type == ST_JSON_TRUE;
			break;
		case ST_JSON_INT:
			v.type = ST_VAL_INT;
			v.i = val->i;
			break;
		case ST_JSON_REAL:
			v.type = ST_VAL_DOUBLE;
			v.d = val->d;
			break;
		case ST_JSON_STRING:
			v.type = ST_VAL_STRING;
			v.s = val->s;
			v.len = val->len;
			if (v.len == sizeof(ST_DEBEZIUM_UNAVAILABLE) - 1 &&
			    !memcmp(v.s, ST_DEBEZIUM_UNAVAILABLE, v.len))
				v.type = ST_VAL_UNAVAILABLE;
			break;
		case ST_JSON_OBJECT:
		case ST_JSON_ARRAY:
			if ((err = st_json_dump(val, &dump)))
				goto out;
			v.type = ST_VAL_STRING;
			v.s = dump;
			v.len = strlen(dump);
			break;
		}
		err = st_row_add(&b, val->key, val->key_len, &v);
		free(dump);
		if (err)
			goto out;
	}
	err = st_row_finish(&b, rowp, lenp);
out:
	if (err)
		st_row_builder_free(&b);
	return err;
}

json_t *st_row_to_json(const uint8_t *row, size_t len)
{
	json_t *obj = json_object(), *jv;
	st_row_iter_t it;
	const char *n;
	size_t nlen;
	st_value_t v;
	char name[256];
	int r;

	if (!obj || st_row_iter_init(&it, row, len))
		goto fail;
	while ((r = st_row_iter_next(&it, &n, &nlen, &v)) == 1) {
		memcpy(name, n, nlen);
		name[nlen] = '\0';
		switch (v.type) {
		case ST_VAL_BOOL: jv = json_boolean(v.i); break;
		case ST_VAL_INT: jv = json_integer(v.i); break;
		case ST_VAL_DOUBLE: jv = json_real(v.d); break;
		case ST_VAL_STRING: jv = json_stringn_nocheck(v.s, v.len); break;
		case ST_VAL_UNAVAILABLE:
			jv = json_string(ST_DEBEZIUM_UNAVAILABLE);
			break;
		default: jv = json_null(); break;
		}
		if (!jv || json_object_set_new(obj, name, jv))
			goto fail;
	}
	if (r < 0)
		goto fail;
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

int st_row_has_unavailable(const uint8_t *row, size_t len)
{
	st_row_iter_t it;
	const char *n;
	size_t nlen;
	st_value_t v;

	if (st_row_iter_init(&it, row, len))
		return 0;
	while (st_row_iter_next(&it, &n, &nlen, &v) == 1)
		if (v.type == ST_VAL_UNAVAILABLE)
			return 1;
	return 0;
}

int st_row_merge_unavailable(const uint8_t *row, size_t len,
			     const uint8_t *prev, size_t prev_len,
			     uint8_t **outp, size_t *out_len)
{
	st_row_builder_t b = {0};
	st_row_iter_t it, pit;
	const char *n, *pn;
	size_t nlen, pnlen;
	st_value_t v, pv;
	int r, pr, err = 0;

	if (st_row_iter_init(&it, row, len))
		return ST_EPARSE;
	while ((r = st_row_iter_next(&it, &n, &nlen, &v)) == 1) {
		if (v.type == ST_VAL_UNAVAILABLE) {
			if (!prev)
				continue;
			if (st_row_iter_init(&pit, prev, prev_len))
				return ST_EPARSE;
			while ((pr = st_row_iter_next(&pit, &pn, &pnlen,
						      &pv)) == 1)
				if (pnlen == nlen && !memcmp(pn, n, nlen))
					break;
			if (pr < 0) {
				err = ST_EPARSE;
				goto out;
			}
			if (pr == 0 || pv.type == ST_VAL_UNAVAILABLE)
				continue;
			v = pv;
		}
		if ((err = st_row_add(&b, n, nlen, &v)))
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
