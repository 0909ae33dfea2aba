/*
 * http.c -- /metrics, /healthz and /readyz on libmicrohttpd's internal
 * thread.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "error.h"
#include "http.h"
#include "log.h"

#define CHECK_NAME_MAX 64
#define WHY_MAX 256

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define TEXT_METRICS "text/plain; version=0.0.4; charset=utf-8"

typedef struct check {
	char *name;
	st_http_check_fn fn;
	void *opaque;
} check_t;

struct st_http {
	struct MHD_Daemon *daemon;
	st_metrics_t *metrics;
	int port;
	atomic_int running;     /* 0 while starting: MHD messages -> errstr */
	pthread_mutex_t lock;   /* checks, start_err */
	check_t *checks;
	size_t nchecks;
	size_t cap;
	char start_err[512];    /* MHD's first message while starting */
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	st_http_t *h = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	if (atomic_load(&h->running)) {
		st_log(ST_LOG_WARNING, "http", "%s", msg);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (!h->start_err[0])
		memcpy(h->start_err, msg, n + 1);
	pthread_mutex_unlock(&h->lock);
}

/* Queues a response; body is static (free_body 0) or malloc'ed and
 * taken over (free_body 1, freed on every path). */
static enum MHD_Result respond(struct MHD_Connection *conn,
			       unsigned int status, const char *type,
			       char *body, size_t len, int free_body,
			       const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (free_body)
		r = MHD_create_response_from_buffer_with_free_callback(
			len, body, free);
	else
		r = MHD_create_response_from_buffer(len, body,
						    MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (free_body)
			free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) !=
		    MHD_YES ||
	    (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
					      allow) != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_static(struct MHD_Connection *conn,
				      unsigned int status, const char *body)
{
	return respond(conn, status, TEXT_PLAIN, (char *)body, strlen(body), 0,
		       NULL);
}

static enum MHD_Result serve_metrics(st_http_t *h,
				     struct MHD_Connection *conn)
{
	char *text;
	size_t len;

	if (st_metrics_render(h->metrics, &text, &len) < 0)
		return respond_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				      "cannot render metrics: out of memory\n");
	return respond(conn, MHD_HTTP_OK, TEXT_METRICS, text, len, 1, NULL);
}

/* Shows control characters as spaces, so that a reason stays one line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static enum MHD_Result serve_readyz(st_http_t *h,
				    struct MHD_Connection *conn)
{
	char why[WHY_MAX], *body = NULL;
	size_t len = 0, i;
	int failed = 0, rc;
	FILE *fp;

	if (!(fp = open_memstream(&body, &len)))
		return respond_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				      "out of memory\n");
	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nchecks; i++) {
		why[0] = '\0';
		rc = h->checks[i].fn(h->checks[i].opaque, why, sizeof(why));
		why[sizeof(why) - 1] = '\0';
		if (rc == 0) {
			fprintf(fp, "[+]%s ok\n", h->checks[i].name);
			continue;
		}
		failed = 1;
		one_line(why);
		fprintf(fp, "[-]%s failed: %s\n", h->checks[i].name,
			why[0] ? why : st_strerror(rc));
	}
	pthread_mutex_unlock(&h->lock);
	fprintf(fp, "readyz check %s\n", failed ? "failed" : "passed");
	if (fclose(fp) != 0 || !body) {
		free(body);
		return respond_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				      "out of memory\n");
	}
	return respond(conn, failed ? MHD_HTTP_SERVICE_UNAVAILABLE :
				      MHD_HTTP_OK,
		       TEXT_PLAIN, body, len, 1, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	static int seen;
	st_http_t *h = cls;
	int known, get;

	(void)version;
	(void)upload_data;
	known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
		strcmp(url, "/readyz") == 0;
	get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	      strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (get) {
		/* Answering on the first call (headers only) makes MHD close
		 * the connection; the second call, after the body (dropped),
		 * keeps it alive for the next scrape. */
		if (!*con_cls) {
			*con_cls = &seen;
			return MHD_YES;
		}
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
	}
	if (!known)
		return respond_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (!get)   /* answered at once: MHD closes rather than read a body */
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_PLAIN,
			       (char *)"method not allowed\n",
			       strlen("method not allowed\n"), 0,
			       "GET, HEAD");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/readyz") == 0)
		return serve_readyz(h, conn);
	return respond_static(conn, MHD_HTTP_OK, "ok\n");
}

/*
 * Splits "host:port", ":port" or "[v6]:port" and resolves it into *ss.
 * Returns 0, ST_EINVAL or ST_ENET (with errstr).
 */
static int resolve(const char *listen, struct sockaddr_storage *ss,
		   char *errstr, size_t errstr_size)
{
	char host[256];
	const char *colon, *port, *p, *start = listen;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	int rc;

	if (!listen || !(colon = strrchr(listen, ':')))
		goto bad;
	port = colon + 1;
	if (!*port || strlen(port) > 5)
		goto bad;
	for (p = port; *p; p++)
		if (*p < '0' || *p > '9')
			goto bad;
	if (atoi(port) > 65535)
		goto bad;
	if (listen[0] == '[') {
		if (colon - listen < 3 || colon[-1] != ']')
			goto bad;
		hlen = (size_t)(colon - listen) - 2;
		start = listen + 1;
	} else {
		hlen = (size_t)(colon - listen);
		if (memchr(listen, ':', hlen))
			goto bad;   /* a bare IPv6 address needs brackets */
	}
	if (hlen >= sizeof(host))
		goto bad;
	memcpy(host, start, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = hlen ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(hlen ? host : NULL, port, &hints, &res)) != 0)
		return st_seterr(errstr, errstr_size, ST_ENET,
				 "http: cannot resolve \"%s\": %s", host,
				 gai_strerror(rc));
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
bad:
	return st_seterr(errstr, errstr_size, ST_EINVAL,
			 "http: bad listen address \"%s\" (want host:port, "
			 ":port or [ipv6]:port)", listen ? listen : "(null)");
}

int st_http_start(st_http_t **hp, const char *listen, st_metrics_t *m,
		  char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	st_http_t *h;
	unsigned int flags;
	uint16_t port;
	int rc;

	*hp = NULL;
	if (!m)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "http: no metrics registry");
	if ((rc = resolve(listen, &ss, errstr, errstr_size)) < 0)
		return rc;
	if (!(h = calloc(1, sizeof(*h))))
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "http: out of memory");
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "http: out of memory");
	}
	h->metrics = m;
	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The port argument is only used by MHD's messages here. */
	port = ntohs(ss.ss_family == AF_INET6 ?
		     ((struct sockaddr_in6 *)&ss)->sin6_port :
		     ((struct sockaddr_in *)&ss)->sin_port);
	h->daemon = MHD_start_daemon(
		flags, port, NULL, NULL, handle, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
		MHD_OPTION_END);
	if (!h->daemon) {
		rc = st_seterr(errstr, errstr_size, ST_ENET,
			       "http: cannot listen on %s: %s", listen,
			       h->start_err[0] ? h->start_err :
						 "libmicrohttpd failed");
		goto fail;
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || info->port == 0) {
		rc = st_seterr(errstr, errstr_size, ST_ENET,
			       "http: cannot learn the port bound for %s",
			       listen);
		goto fail;
	}
	h->port = info->port;
	atomic_store(&h->running, 1);
	*hp = h;
	return 0;
fail:
	st_http_stop(h);
	return rc;
}

int st_http_port(const st_http_t *h)
{
	return h->port;
}

static int valid_check_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
		      s[n] == '.' || s[n] == '-'))
			return 0;
	return n >= 1 && n <= CHECK_NAME_MAX;
}

int st_http_add_check(st_http_t *h, const char *name, st_http_check_fn fn,
		      void *opaque)
{
	check_t *checks;
	char *copy = NULL;
	size_t i, cap;
	int rc = 0;

	if (!name || !fn || !valid_check_name(name))
		return ST_EINVAL;
	if (!(copy = strdup(name)))
		return ST_ENOMEM;
	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nchecks; i++)
		if (strcmp(h->checks[i].name, name) == 0) {
			rc = ST_EINVAL;
			goto out;
		}
	if (h->nchecks == h->cap) {
		cap = h->cap ? h->cap * 2 : 8;
		if (!(checks = realloc(h->checks, cap * sizeof(*checks)))) {
			rc = ST_ENOMEM;
			goto out;
		}
		h->checks = checks;
		h->cap = cap;
	}
	h->checks[h->nchecks].name = copy;
	h->checks[h->nchecks].fn = fn;
	h->checks[h->nchecks].opaque = opaque;
	h->nchecks++;
	copy = NULL;
out:
	pthread_mutex_unlock(&h->lock);
	free(copy);
	return rc;
}

void st_http_stop(st_http_t *h)
{
	size_t i;

	if (!h)
		return;
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	for (i = 0; i < h->nchecks; i++)
		free(h->checks[i].name);
	free(h->checks);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
