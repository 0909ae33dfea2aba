/*
 * registry.h -- client of a Confluent-compatible schema registry.
 *
 * Fetches writer schemas by id and registers schemas under a subject,
 * through the REST API of the Confluent Schema Registry, which Apicurio
 * Registry also serves under .../apis/ccompat/v7:
 *
 *   GET  {base}/schemas/ids/{id}           200 {"schema": "<json text>"}
 *                                          404 {"error_code": 40403, ...}
 *   POST {base}/subjects/{subject}/versions  body {"schema": "<json text>"}
 *                                          200 {"id": N}, 409 incompatible,
 *                                          422 invalid schema
 *
 * A schema id never changes meaning, so fetched schemas are cached by id
 * for the life of the client.
 *
 * The errors tell the caller what to do with the message at hand:
 *   ST_ENOENT   the registry answered that the id does not exist: the
 *               message cannot be decoded, dead-letter it
 *   ST_ENET     the registry did not answer usefully (connection refused
 *               or reset, timeout, HTTP 5xx, any other unexpected status,
 *               a 404 that is not the registry's own): back off and retry
 *               the same message; never the message's fault
 *   ST_EPARSE   a success response that is not the expected JSON
 *   ST_ESCHEMA  the registry refused a schema (409, 422), or the schema
 *               of an id is not Avro
 *
 * One libcurl easy handle, reused, so that the connection stays open
 * between requests. Calls block for at most timeout_ms each. Not
 * thread-safe: use one client per thread.
 */
#ifndef ST_REGISTRY_H
#define ST_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

/* Largest response accepted; a larger one is ST_EPARSE. */
#define ST_REGISTRY_RESPONSE_MAX (16 * 1024 * 1024)

typedef struct st_registry st_registry_t;

/*
 * Creates a client of the registry at base_url (http:// or https://, e.g.
 * http://127.0.0.1:18081/apis/ccompat/v7). Connects lazily. Returns 0 and
 * *rp (free with st_registry_destroy()), ST_EINVAL (bad URL, timeout_ms
 * not positive) or ST_ENOMEM.
 */
int st_registry_new(st_registry_t **rp, const char *base_url, int timeout_ms,
		    char *errstr, size_t errstr_size);

/* NULL is allowed. */
void st_registry_destroy(st_registry_t *r);

/*
 * The schema with this id, from the cache or else from the registry. On
 * success *schema_json (NUL-terminated) and *len are borrowed until
 * st_registry_destroy(). Returns 0, ST_ENOENT, ST_ENET, ST_EPARSE,
 * ST_ESCHEMA (not an Avro schema) or ST_ENOMEM, with errstr.
 */
int st_registry_get(st_registry_t *r, int32_t id, const char **schema_json,
		    size_t *len, char *errstr, size_t errstr_size);

/*
 * Registers schema_json (NUL-terminated JSON text) under subject, or finds
 * it registered already, and sets *id. Returns 0, ST_ESCHEMA (rejected:
 * incompatible with the subject's earlier versions, or invalid; errstr
 * has the registry's message), ST_ENET, ST_EPARSE, ST_EINVAL (schema_json
 * not UTF-8) or ST_ENOMEM.
 */
int st_registry_register(st_registry_t *r, const char *subject,
			 const char *schema_json, int32_t *id, char *errstr,
			 size_t errstr_size);

#endif
