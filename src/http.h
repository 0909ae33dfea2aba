/*
 * http.h -- the operations endpoint: Prometheus metrics and health probes,
 * served by libmicrohttpd on its own thread.
 *
 *   GET /metrics  200, Content-Type: text/plain; version=0.0.4;
 *                 charset=utf-8, the registry rendered by
 *                 st_metrics_render() (500 when out of memory)
 *   GET /healthz  200 "ok\n" while the process runs (liveness)
 *   GET /readyz   200 when every readiness check passes, else 503; the
 *                 text/plain body has one line per check, in the order
 *                 they were added, then a verdict:
 *                     [+]kafka ok
 *                     [-]caught_up failed: lag 1834 records
 *                     readyz check failed
 *                 ("readyz check passed" when all pass or there are none)
 *   other paths   404; HEAD is served like GET without a body; any other
 *                 method on a known path 405 with "Allow: GET, HEAD".
 * Every body is text/plain; charset=utf-8. Query strings are ignored.
 * GET and HEAD connections are kept alive (HTTP/1.1) for the next scrape;
 * other methods are answered at once and their connection closed,
 * without reading a request body.
 *
 * One internal thread (MHD_USE_AUTO_INTERNAL_THREAD: epoll or poll)
 * serves every connection, one request at a time; idle connections are
 * closed after 10 s, and at most 64 are open at once. libmicrohttpd's
 * messages go to st_log() (facility "http").
 *
 * Thread: st_http_start(), st_http_add_check() and st_http_stop() may be
 * called from any thread; the checks and the metrics scrape callbacks run
 * on the HTTP thread.
 */
#ifndef ST_HTTP_H
#define ST_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct st_http st_http_t;

/*
 * A readiness check. Returns 0 when ready, or a negative ST_E* code when
 * not, optionally with a short reason written into why (why_size bytes;
 * it holds "" on entry; without a reason st_strerror() of the code is
 * shown). Control characters of the reason are shown as spaces.
 * Called from the HTTP thread on every GET /readyz, with the server's
 * check lock held: it must read shared state only through atomics or
 * under its owner's own lock, must be quick and not block (no network
 * round trip: report what the pipeline last saw), and must not call
 * st_http_add_check() (deadlock).
 */
typedef int (*st_http_check_fn)(void *opaque, char *why, size_t why_size);

/*
 * Starts serving on `listen`: "host:port", ":port" (every IPv4 interface)
 * or "[ipv6]:port"; host is an address or a name resolved once, now (the
 * first address found is used); port 0 picks a free port (see
 * st_http_port()). m is borrowed: it must outlive the server. Returns 0
 * and *hp (stop and free with st_http_stop()), ST_EINVAL (malformed
 * listen address, NULL m), ST_ENET (the name does not resolve, or the
 * address cannot be bound: in use, not local, no permission; errstr
 * says which), or ST_ENOMEM.
 */
int st_http_start(st_http_t **hp, const char *listen, st_metrics_t *m,
		  char *errstr, size_t errstr_size);

/* The port the server listens on (the one picked when port 0 was asked). */
int st_http_port(const st_http_t *h);

/*
 * Adds a readiness check named name (copied; 1 to 64 characters of
 * [A-Za-z0-9_.-], unique) to GET /readyz, from now on; opaque is passed
 * to fn. Returns 0, ST_EINVAL (bad or duplicate name, NULL fn) or
 * ST_ENOMEM.
 */
int st_http_add_check(st_http_t *h, const char *name, st_http_check_fn fn,
		      void *opaque);

/* Stops the server: closes the socket, waits for the request being
 * served, joins the thread, frees everything. No check or scrape callback
 * runs after it returns. NULL is allowed. */
void st_http_stop(st_http_t *h);

#endif
