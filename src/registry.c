/* registry.c -- schema registry client over libcurl, JSON by jansson. */
#include "registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "error.h"

typedef struct entry {
	int32_t id;
	char *json;
	size_t len;
} entry_t;

struct st_registry {
	CURL *curl;
	struct curl_slist *headers;
	char *base;             /* without a trailing '/' */
	char curl_err[CURL_ERROR_SIZE];
	char *body;             /* the last response, NUL-terminated */
	size_t body_len, body_cap;
	int too_large, nomem;   /* why on_data() stopped a transfer */
	entry_t *cache;         /* sorted by id */
	size_t ncache, cache_cap;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
	st_registry_t *r = opaque;
	size_t len = size * n, cap;
	char *nb;

	if (len > ST_REGISTRY_RESPONSE_MAX - r->body_len) {
		r->too_large = 1;
		return 0;
	}
	if (r->body_len + len + 1 > r->body_cap) {
		cap = r->body_cap ? r->body_cap : 4096;
		while (cap < r->body_len + len + 1)
			cap *= 2;
		if (!(nb = realloc(r->body, cap))) {
			r->nomem = 1;
			return 0;
		}
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, p, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return len;
}

static int add_header(st_registry_t *r, const char *header)
{
	struct curl_slist *l = curl_slist_append(r->headers, header);

	if (!l)
		return ST_ENOMEM;
	r->headers = l;
	return 0;
}

int st_registry_new(st_registry_t **rp, const char *base_url, int timeout_ms,
		    char *errstr, size_t errstr_size)
{
	st_registry_t *r;
	size_t len;
	int err = 0;

	*rp = NULL;
	if (!base_url || (strncmp(base_url, "http://", 7) &&
			  strncmp(base_url, "https://", 8)))
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "registry URL \"%s\": expected http://... or "
				 "https://...", base_url ? base_url : "");
	if (timeout_ms <= 0)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "registry timeout %d ms: must be positive",
				 timeout_ms);
	if (!(r = calloc(1, sizeof(*r))))
		return ST_ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		free(r);
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "curl_global_init failed");
	}
	len = strlen(base_url);
	while (len && base_url[len - 1] == '/')
		len--;
	r->base = strndup(base_url, len);
	r->curl = curl_easy_init();
	r->body_cap = 4096;
	r->body = calloc(1, r->body_cap);
	/* No "Expect: 100-continue" round trip before a large POST. */
	if (!r->base || !r->curl || !r->body ||
	    add_header(r, "Accept: application/vnd.schemaregistry.v1+json, "
		       "application/json") ||
	    add_header(r, "Content-Type: "
		       "application/vnd.schemaregistry.v1+json") ||
	    add_header(r, "Expect:")) {
		err = ST_ENOMEM;
		goto out;
	}
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->curl, CURLOPT_USERAGENT, "strata");
out:
	if (err)
		st_registry_destroy(r);
	else
		*rp = r;
	return err;
}

void st_registry_destroy(st_registry_t *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->ncache; i++)
		free(r->cache[i].json);
	free(r->cache);
	free(r->body);
	if (r->curl)
		curl_easy_cleanup(r->curl);
	curl_slist_free_all(r->headers);
	free(r->base);
	free(r);
	curl_global_cleanup();
}

/*
 * Performs one request (a POST when post is not NULL). Returns 0 with the
 * HTTP status in *status and the response in r->body, or ST_ENET (no
 * response), ST_EPARSE (response too large) or ST_ENOMEM.
 */
static int request(st_registry_t *r, const char *url, const char *post,
		   long *status, char *errstr, size_t errstr_size)
{
	const char *method = post ? "POST" : "GET";
	CURLcode rc;

	r->body_len = 0;
	r->body[0] = '\0';
	r->too_large = r->nomem = 0;
	r->curl_err[0] = '\0';
	curl_easy_setopt(r->curl, CURLOPT_URL, url);
	if (post) {
		curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(post));
	} else {
		curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
	}
	rc = curl_easy_perform(r->curl);
	if (rc == CURLE_WRITE_ERROR && r->nomem)
		return ST_ENOMEM;
	if (rc == CURLE_WRITE_ERROR && r->too_large)
		return st_seterr(errstr, errstr_size, ST_EPARSE,
				 "%s %s: response larger than %d bytes",
				 method, url, ST_REGISTRY_RESPONSE_MAX);
	if (rc != CURLE_OK)
		return st_seterr(errstr, errstr_size, ST_ENET, "%s %s: %s",
				 method, url, r->curl_err[0] ? r->curl_err :
				 curl_easy_strerror(rc));
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* The registry's error JSON: {"error_code": N, "message": "..."}. *code is
 * 0 when the body is not one. The message is borrowed from *root (caller
 * json_decref()s), "" when absent. */
static const char *error_of(const st_registry_t *r, json_t **root,
			    long *code)
{
	json_t *c;
	const char *msg;

	*root = json_loadb(r->body, r->body_len, 0, NULL);
	c = json_object_get(*root, "error_code");
	*code = json_is_integer(c) ? (long)json_integer_value(c) : 0;
	msg = json_string_value(json_object_get(*root, "message"));
	return msg ? msg : "";
}

static int unexpected(const st_registry_t *r, const char *method,
		      const char *url, long status, char *errstr,
		      size_t errstr_size)
{
	json_t *root;
	const char *msg;
	long code;

	msg = error_of(r, &root, &code);
	st_seterr(errstr, errstr_size, ST_ENET, "%s %s: HTTP %ld%s%s", method,
		  url, status, *msg ? ": " : "", msg);
	json_decref(root);
	return ST_ENET;
}

static entry_t *cache_find(st_registry_t *r, int32_t id, size_t *pos)
{
	size_t lo = 0, hi = r->ncache, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->cache[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return lo < r->ncache && r->cache[lo].id == id ? &r->cache[lo] : NULL;
}

static entry_t *cache_add(st_registry_t *r, size_t pos, int32_t id,
			  const char *json, size_t len)
{
	entry_t *nc;
	char *copy;
	size_t cap;

	if (r->ncache == r->cache_cap) {
		cap = r->cache_cap ? 2 * r->cache_cap : 16;
		if (!(nc = realloc(r->cache, cap * sizeof(*nc))))
			return NULL;
		r->cache = nc;
		r->cache_cap = cap;
	}
	if (!(copy = malloc(len + 1)))
		return NULL;
	memcpy(copy, json, len);
	copy[len] = '\0';
	memmove(&r->cache[pos + 1], &r->cache[pos],
		(r->ncache - pos) * sizeof(*r->cache));
	r->cache[pos].id = id;
	r->cache[pos].json = copy;
	r->cache[pos].len = len;
	r->ncache++;
	return &r->cache[pos];
}

int st_registry_get(st_registry_t *r, int32_t id, const char **schema_json,
		    size_t *len, char *errstr, size_t errstr_size)
{
	json_t *root = NULL, *schema;
	const char *type, *msg;
	entry_t *e;
	char *url = NULL;
	size_t pos;
	long status, code;
	int err;

	if ((e = cache_find(r, id, &pos)))
		goto found;
	if (asprintf(&url, "%s/schemas/ids/%" PRId32, r->base, id) < 0) {
		url = NULL;
		err = ST_ENOMEM;
		goto out;
	}
	if ((err = request(r, url, NULL, &status, errstr, errstr_size)))
		goto out;
	if (status == 404) {
		msg = error_of(r, &root, &code);
		/* Confluent's 404xx, not a wrong path or a proxy's page. */
		if (code / 100 == 404)
			err = st_seterr(errstr, errstr_size, ST_ENOENT,
					"schema id %" PRId32 " not found in "
					"the registry (%ld: %s)", id, code,
					msg);
		else
			err = unexpected(r, "GET", url, status, errstr,
					 errstr_size);
		goto out;
	}
	if (status != 200) {
		err = unexpected(r, "GET", url, status, errstr, errstr_size);
		goto out;
	}
	root = json_loadb(r->body, r->body_len, 0, NULL);
	schema = json_object_get(root, "schema");
	if (!json_is_string(schema)) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"GET %s: response is not an object with a "
				"\"schema\" string", url);
		goto out;
	}
	type = json_string_value(json_object_get(root, "schemaType"));
	if (type && strcmp(type, "AVRO")) {
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"schema id %" PRId32 " is %s, not AVRO", id,
				type);
		goto out;
	}
	if (!(e = cache_add(r, pos, id, json_string_value(schema),
			    json_string_length(schema)))) {
		err = ST_ENOMEM;
		goto out;
	}
found:
	*schema_json = e->json;
	*len = e->len;
	err = 0;
out:
	json_decref(root);
	free(url);
	return err;
}

int st_registry_register(st_registry_t *r, const char *subject,
			 const char *schema_json, int32_t *id, char *errstr,
			 size_t errstr_size)
{
	json_t *req = NULL, *root = NULL, *jid;
	char *esc = NULL, *url = NULL, *post = NULL;
	const char *msg;
	long status, code;
	int err = 0;

	req = json_pack("{s:s}", "schema", schema_json);
	if (!req) {
		err = st_seterr(errstr, errstr_size, ST_EINVAL,
				"subject %s: schema text is not UTF-8",
				subject);
		goto out;
	}
	esc = curl_easy_escape(r->curl, subject, 0);
	post = json_dumps(req, JSON_COMPACT);
	if (!esc || !post ||
	    asprintf(&url, "%s/subjects/%s/versions", r->base, esc) < 0) {
		url = NULL;
		err = ST_ENOMEM;
		goto out;
	}
	if ((err = request(r, url, post, &status, errstr, errstr_size)))
		goto out;
	if (status == 409 || status == 422) {
		msg = error_of(r, &root, &code);
		err = st_seterr(errstr, errstr_size, ST_ESCHEMA,
				"subject %s: schema %s (HTTP %ld%s%s)",
				subject, status == 409 ? "incompatible with "
				"an earlier version" : "invalid", status,
				*msg ? ": " : "", msg);
		goto out;
	}
	if (status != 200) {
		err = unexpected(r, "POST", url, status, errstr, errstr_size);
		goto out;
	}
	root = json_loadb(r->body, r->body_len, 0, NULL);
	jid = json_object_get(root, "id");
	if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
	    json_integer_value(jid) > INT32_MAX) {
		err = st_seterr(errstr, errstr_size, ST_EPARSE,
				"POST %s: response is not an object with an "
				"\"id\" integer", url);
		goto out;
	}
	*id = (int32_t)json_integer_value(jid);
out:
	json_decref(root);
	json_decref(req);
	free(post);
	curl_free(esc);
	free(url);
	return err;
}
