/* vecrec.c -- encoding and reading vector records. */
#include "vecrec.h"

#include <string.h>

#include "error.h"

size_t st_vecrec_encode(uint8_t *buf, size_t cap, size_t n,
			const char *const *names, const char *const *values,
			const size_t *value_lens)
{
	size_t off = 2;

	if (cap < 2 || n > 65535)
		return 0;
	buf[0] = (uint8_t)n;
	buf[1] = (uint8_t)(n >> 8);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]), vl = value_lens[i];

		if (nl > 255 || vl > UINT32_MAX || cap - off < 5 + nl + vl)
			return 0;
		buf[off++] = (uint8_t)nl;
		memcpy(buf + off, names[i], nl);
		off += nl;
		for (int b = 0; b < 4; b++)
			buf[off++] = (uint8_t)(vl >> (8 * b));
		memcpy(buf + off, values[i], vl);
		off += vl;
	}
	/* Zero padding up to a size class: a newer vector of the entity is
	 * then mostly the same size, and LMDB overwrites it in place
	 * instead of deleting and inserting (two moves of the page). */
	if (off % ST_VECREC_ALIGN &&
	    cap - off >= ST_VECREC_ALIGN - off % ST_VECREC_ALIGN) {
		size_t pad = ST_VECREC_ALIGN - off % ST_VECREC_ALIGN;

		memset(buf + off, 0, pad);
		off += pad;
	}
	return off;
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

int st_vecrec_iter_init(st_vecrec_iter_t *it, const uint8_t *rec,
			size_t len)
{
	if (!rec || len < 2)
		return ST_EPARSE;
	it->left = (unsigned)rec[0] | (unsigned)rec[1] << 8;
	it->p = rec + 2;
	it->end = rec + len;
	return 0;
}

unsigned st_vecrec_count(const uint8_t *rec, size_t len)
{
	return rec && len >= 2 ? ((unsigned)rec[0] | (unsigned)rec[1] << 8) : 0;
}

int st_vecrec_next(st_vecrec_iter_t *it, const char **name, size_t *namelen,
		   const char **value, size_t *valuelen)
{
	const uint8_t *p = it->p;
	size_t nl, vl;

	if (!it->left)
		return padding(p, it->end) ? 0 : ST_EPARSE;
	if (it->end - p < 1)
		return ST_EPARSE;
	nl = *p++;
	if ((size_t)(it->end - p) < nl + 4)
		return ST_EPARSE;
	*name = (const char *)p;
	*namelen = nl;
	p += nl;
	vl = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
	     (size_t)p[3] << 24;
	p += 4;
	if ((size_t)(it->end - p) < vl)
		return ST_EPARSE;
	*value = (const char *)p;
	*valuelen = vl;
	it->p = p + vl;
	it->left--;
	return 1;
}
