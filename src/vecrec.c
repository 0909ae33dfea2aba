/* vecrec.c -- encoding and reading vector records and their layouts. */
#include "vecrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* Splits l->text (len bytes) into its names. */
static int split(st_vecrec_layout_t *l, size_t len)
{
	size_t n = 1, k = 0, start = 0;

	for (size_t i = 0; i < len; i++)
		n += l->text[i] == '\n';
	l->names = malloc(n * sizeof(*l->names));
	l->lens = malloc(n * sizeof(*l->lens));
	if (!l->names || !l->lens)
		return ST_ENOMEM;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && l->text[i] != '\n')
			continue;
		if (i == start)
			return ST_EPARSE;
		l->names[k] = l->text + start;
		l->lens[k++] = i - start;
		start = i + 1;
	}
	l->n = n;
	l->id = fnv1a(l->text, len);
	return 0;
}

int st_vecrec_layout_parse(const char *text, size_t len,
			   st_vecrec_layout_t **out)
{
	st_vecrec_layout_t *l = calloc(1, sizeof(*l));
	int err = ST_ENOMEM;

	if (!l || !(l->text = malloc(len + 1)))
		goto fail;
	memcpy(l->text, text, len);
	l->text[len] = '\0';
	if ((err = split(l, len)))
		goto fail;
	*out = l;
	return 0;
fail:
	st_vecrec_layout_free(l);
	return err;
}

int st_vecrec_layout_new(const char *const *names, size_t n,
			 st_vecrec_layout_t **out)
{
	size_t len = 0, off = 0;
	char *text;
	int err;

	if (!n)
		return ST_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!names[i][0] || strchr(names[i], '\n'))
			return ST_EINVAL;
		len += strlen(names[i]) + 1;
	}
	if (!(text = malloc(len)))
		return ST_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]);

		memcpy(text + off, names[i], nl);
		off += nl;
		text[off++] = i + 1 < n ? '\n' : '\0';
	}
	err = st_vecrec_layout_parse(text, len - 1, out);
	free(text);
	return err;
}

void st_vecrec_layout_free(st_vecrec_layout_t *l)
{
	if (!l)
		return;
	free(l->names);
	free(l->lens);
	free(l->text);
	free(l);
}

void st_vecrec_layout_key(uint32_t id, char *buf, size_t size)
{
	snprintf(buf, size, "vector.layout.%08x", (unsigned)id);
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Reads a varint of at most 9 bytes: the new position, or NULL. */
static const uint8_t *get_varint(const uint8_t *p, const uint8_t *end,
				 uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; p < end && shift < 63; shift += 7) {
		uint8_t b = *p++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return p;
		}
	}
	return NULL;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t st_vecrec_encode(uint8_t *buf, size_t cap,
			const st_vecrec_layout_t *l, size_t n,
			const size_t *index, const char *const *values,
			const size_t *value_lens)
{
	uint8_t *p = buf, *end = buf + cap;
	size_t off;

	if (cap < 5 + varint_len(n))
		return 0;
	*p++ = ST_VECREC_MAGIC;
	for (int b = 0; b < 4; b++)
		*p++ = (uint8_t)(l->id >> (8 * b));
	p = put_varint(p, n);
	for (size_t i = 0; i < n; i++) {
		size_t vl = value_lens[i];

		if (index[i] >= l->n || (size_t)(end - p) < vl ||
		    (size_t)(end - p) - vl < varint_len(index[i]) +
					     varint_len(vl))
			return 0;
		p = put_varint(p, index[i]);
		p = put_varint(p, vl);
		memcpy(p, values[i], vl);
		p += vl;
	}
	off = (size_t)(p - buf);
	if (off % ST_VECREC_ALIGN &&
	    cap - off >= ST_VECREC_ALIGN - off % ST_VECREC_ALIGN) {
		size_t pad = ST_VECREC_ALIGN - off % ST_VECREC_ALIGN;

		memset(buf + off, 0, pad);
		off += pad;
	}
	return off;
}

int st_vecrec_layout_id(const uint8_t *rec, size_t len, uint32_t *id)
{
	if (!rec || len < 6 || rec[0] != ST_VECREC_MAGIC)
		return ST_EPARSE;
	*id = (uint32_t)rec[1] | (uint32_t)rec[2] << 8 |
	      (uint32_t)rec[3] << 16 | (uint32_t)rec[4] << 24;
	return 0;
}

int st_vecrec_iter_init(st_vecrec_iter_t *it, const st_vecrec_layout_t *l,
			const uint8_t *rec, size_t len)
{
	uint32_t id;

	if (st_vecrec_layout_id(rec, len, &id) || (l && id != l->id))
		return ST_EPARSE;
	it->l = l;
	it->end = rec + len;
	it->p = get_varint(rec + 5, it->end, &it->left);
	/* st_vecrec_count() answers for the same records. */
	return it->p && it->left <= 65535 ? 0 : ST_EPARSE;
}

unsigned st_vecrec_count(const uint8_t *rec, size_t len)
{
	uint64_t n;

	if (!rec || len < 6 || rec[0] != ST_VECREC_MAGIC ||
	    !get_varint(rec + 5, rec + len, &n) || n > 65535)
		return 0;
	return (unsigned)n;
}

/* 1 when p..end is zero padding (shorter than a size class). */
static int padding(const uint8_t *p, const uint8_t *end)
{
	if (end - p >= ST_VECREC_ALIGN)
		return 0;
	for (; p < end; p++)
		if (*p)
			return 0;
	return 1;
}

int st_vecrec_next(st_vecrec_iter_t *it, const char **name, size_t *namelen,
		   const char **value, size_t *valuelen)
{
	const uint8_t *p = it->p;
	uint64_t idx, vl;

	if (!it->left)
		return padding(p, it->end) ? 0 : ST_EPARSE;
	if (!(p = get_varint(p, it->end, &idx)) ||
	    (it->l && idx >= it->l->n) ||
	    !(p = get_varint(p, it->end, &vl)) ||
	    (uint64_t)(it->end - p) < vl)
		return ST_EPARSE;
	*name = it->l ? it->l->names[idx] : NULL;
	*namelen = it->l ? it->l->lens[idx] : 0;
	*value = (const char *)p;
	*valuelen = (size_t)vl;
	it->p = p + vl;
	it->left--;
	return 1;
}
