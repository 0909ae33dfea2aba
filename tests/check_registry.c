/* check_registry.c -- the schema registry client against a fake registry:
 * a thread answering canned HTTP/1.1 responses on 127.0.0.1, keeping
 * connections alive, counting requests and connections. */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "registry.h"

#define BASE "/apis/ccompat/v7"
#define SCHEMA "{\"type\":\"string\"}"

static const struct route {
	const char *method, *path;
	int status, delay_ms;
	const char *body;
} routes[] = {
	{"GET", BASE "/schemas/ids/1", 200, 0,
	 "{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}"},
	{"GET", BASE "/schemas/ids/2", 200, 0,
	 "{\"schema\":\"syntax = \\\"proto3\\\";\","
	 "\"schemaType\":\"PROTOBUF\"}"},
	{"GET", BASE "/schemas/ids/3", 200, 0,
	 "{\"schema\":\"{\\\"type\\\":\\\"long\\\"}\","
	 "\"schemaType\":\"AVRO\"}"},
	{"GET", BASE "/schemas/ids/404", 404, 0,
	 "{\"error_code\":40403,\"message\":\"Schema 404 not found\"}"},
	{"GET", BASE "/schemas/ids/500", 500, 0,
	 "{\"error_code\":50001,\"message\":\"Error in the backend\"}"},
	{"GET", BASE "/schemas/ids/503", 503, 0, "Service Unavailable"},
	{"GET", BASE "/schemas/ids/7", 200, 0, "not json"},
	{"GET", BASE "/schemas/ids/8", 200, 0, "{\"id\":8}"},
	{"GET", BASE "/schemas/ids/9", 200, 2000,
	 "{\"schema\":\"\\\"int\\\"\"}"},
	{"POST", BASE "/subjects/transactions-value/versions", 200, 0,
	 "{\"id\":12}"},
	{"POST", BASE "/subjects/a%20b%2Fc/versions", 200, 0, "{\"id\":3}"},
	{"POST", BASE "/subjects/old-value/versions", 409, 0,
	 "{\"error_code\":409,\"message\":\"Schema being registered is "
	 "incompatible with an earlier schema\"}"},
	{"POST", BASE "/subjects/junk-value/versions", 422, 0,
	 "{\"error_code\":42201,\"message\":\"Invalid schema\"}"},
	{"POST", BASE "/subjects/odd-value/versions", 200, 0,
	 "{\"id\":\"12\"}"},
};

/* Anything else: a 404 that is not the registry's (a wrong base path). */
static const struct route not_found = {
	NULL, NULL, 404, 0, "<html><body>Not Found</body></html>"
};

static struct server {
	int lfd, port;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop, requests, connections;
	char last_body[4096], last_type[256];
} srv;

static int stopping(void)
{
	int stop;

	pthread_mutex_lock(&srv.lock);
	stop = srv.stop;
	pthread_mutex_unlock(&srv.lock);
	return stop;
}

/* Waits up to 50 ms for fd; -1 when the server stops. */
static int wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (!stopping())
		if (poll(&p, 1, 50) > 0)
			return 0;
	return -1;
}

static const struct route *route_of(const char *method, const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(routes[i].method, method) &&
		    !strcmp(routes[i].path, path))
			return &routes[i];
	return &not_found;
}

/* Whether the client closed the connection (within 10 ms). */
static int hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	return poll(&p, 1, 10) > 0 &&
	       recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static void respond(int fd, const struct route *rt)
{
	char head[256];
	int n, waited;

	for (waited = 0; waited < rt->delay_ms; waited += 10)
		if (stopping() || hung_up(fd))
			return;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d Canned\r\n"
		     "Content-Type: application/vnd.schemaregistry.v1+json\r\n"
		     "Content-Length: %zu\r\n\r\n", rt->status,
		     strlen(rt->body));
	send(fd, head, (size_t)n, MSG_NOSIGNAL);
	send(fd, rt->body, strlen(rt->body), MSG_NOSIGNAL);
}

/* Serves requests on one connection until the client closes it. */
static void serve(int fd)
{
	char buf[16384], method[16], path[1024], *end, *h, *type;
	size_t len = 0, body_len, head_len;
	ssize_t n;

	for (;;) {
		end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
		if (!end) {
			if (len == sizeof(buf) || wait_readable(fd))
				return;
			n = recv(fd, buf + len, sizeof(buf) - len, 0);
			if (n <= 0)
				return;
			len += (size_t)n;
			continue;
		}
		*end = '\0';
		head_len = (size_t)(end - buf) + 4;
		body_len = 0;
		type = NULL;
		for (h = strstr(buf, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
			if (!strncasecmp(h + 2, "Content-Length:", 15))
				body_len = strtoul(h + 17, NULL, 10);
			if (!strncasecmp(h + 2, "Content-Type:", 13))
				type = h + 16;
		}
		while (len < head_len + body_len) {
			if (wait_readable(fd))
				return;
			n = recv(fd, buf + len, sizeof(buf) - len, 0);
			if (n <= 0)
				return;
			len += (size_t)n;
		}
		if (sscanf(buf, "%15s %1023s", method, path) != 2)
			return;
		pthread_mutex_lock(&srv.lock);
		srv.requests++;
		snprintf(srv.last_body, sizeof(srv.last_body), "%.*s",
			 (int)body_len, buf + head_len);
		snprintf(srv.last_type, sizeof(srv.last_type), "%.*s",
			 type ? (int)strcspn(type, "\r") : 0,
			 type ? type : "");
		pthread_mutex_unlock(&srv.lock);
		respond(fd, route_of(method, path));
		memmove(buf, buf + head_len + body_len,
			len - head_len - body_len);
		len -= head_len + body_len;
	}
}

static void *server_main(void *arg)
{
	int fd;

	(void)arg;
	while (!wait_readable(srv.lfd)) {
		if ((fd = accept(srv.lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&srv.lock);
		srv.connections++;
		pthread_mutex_unlock(&srv.lock);
		serve(fd);
		close(fd);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1, port chosen by the kernel. */
static int listen_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void server_start(void)
{
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.lock, NULL);
	srv.lfd = listen_any(&srv.port);
	ck_assert_int_eq(pthread_create(&srv.thread, NULL, server_main, NULL),
			 0);
}

static void server_stop(void)
{
	pthread_mutex_lock(&srv.lock);
	srv.stop = 1;
	pthread_mutex_unlock(&srv.lock);
	pthread_join(srv.thread, NULL);
	close(srv.lfd);
	pthread_mutex_destroy(&srv.lock);
}

static int count(const int *what)
{
	int n;

	pthread_mutex_lock(&srv.lock);
	n = *what;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* The body and content type of the last request. */
static void last_request(char *body, size_t body_size, char *type,
			 size_t type_size)
{
	pthread_mutex_lock(&srv.lock);
	snprintf(body, body_size, "%s", srv.last_body);
	snprintf(type, type_size, "%s", srv.last_type);
	pthread_mutex_unlock(&srv.lock);
}

static st_registry_t *client(int timeout_ms)
{
	st_registry_t *r;
	char url[128], errstr[512];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d" BASE "/", srv.port);
	ck_assert_msg(st_registry_new(&r, url, timeout_ms, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	return r;
}

START_TEST(get_and_cache)
{
	st_registry_t *r = client(2000);
	const char *json, *again;
	char errstr[512];
	size_t len;

	ck_assert_msg(st_registry_get(r, 1, &json, &len, errstr,
				      sizeof(errstr)) == 0, "%s", errstr);
	ck_assert_str_eq(json, SCHEMA);
	ck_assert_uint_eq(len, strlen(SCHEMA));
	ck_assert_int_eq(count(&srv.requests), 1);
	ck_assert_int_eq(st_registry_get(r, 1, &again, &len, errstr,
					 sizeof(errstr)), 0);
	ck_assert_ptr_eq(again, json);
	ck_assert_int_eq(count(&srv.requests), 1);
	ck_assert_int_eq(st_registry_get(r, 3, &json, &len, errstr,
					 sizeof(errstr)), 0);
	ck_assert_str_eq(json, "{\"type\":\"long\"}");
	ck_assert_int_eq(st_registry_get(r, 1, &again, &len, errstr,
					 sizeof(errstr)), 0);
	ck_assert_str_eq(again, SCHEMA);
	ck_assert_int_eq(count(&srv.requests), 2);
	/* One connection, kept alive. */
	ck_assert_int_eq(count(&srv.connections), 1);
	st_registry_destroy(r);
}
END_TEST

static const struct {
	int32_t id;
	int err;
	const char *msg;
} get_errors[] = {
	{404, ST_ENOENT, "schema id 404 not found in the registry (40403: "
			 "Schema 404 not found)"},
	{500, ST_ENET, "/schemas/ids/500: HTTP 500: Error in the backend"},
	{503, ST_ENET, "/schemas/ids/503: HTTP 503"},
	{7, ST_EPARSE, "/schemas/ids/7: response is not an object with a "
		       "\"schema\" string"},
	{8, ST_EPARSE, "response is not an object with a \"schema\" string"},
	{2, ST_ESCHEMA, "schema id 2 is PROTOBUF, not AVRO"},
	{6, ST_ENET, "/schemas/ids/6: HTTP 404"},
};

START_TEST(get_errors_mapped)
{
	st_registry_t *r = client(2000);
	const char *json;
	char errstr[512];
	size_t len;

	ck_assert_int_eq(st_registry_get(r, get_errors[_i].id, &json, &len,
					 errstr, sizeof(errstr)),
			 get_errors[_i].err);
	ck_assert_msg(strstr(errstr, get_errors[_i].msg), "'%s' lacks '%s'",
		      errstr, get_errors[_i].msg);
	/* Errors are not cached: the registry is asked again. */
	ck_assert_int_eq(st_registry_get(r, get_errors[_i].id, &json, &len,
					 errstr, sizeof(errstr)),
			 get_errors[_i].err);
	ck_assert_int_eq(count(&srv.requests), 2);
	st_registry_destroy(r);
}
END_TEST

START_TEST(timeout_is_net)
{
	st_registry_t *r = client(200);
	const char *json;
	char errstr[512];
	size_t len;

	ck_assert_int_eq(st_registry_get(r, 9, &json, &len, errstr,
					 sizeof(errstr)), ST_ENET);
	ck_assert_msg(strstr(errstr, "GET http://127.0.0.1:"), "%s", errstr);
	ck_assert_msg(strstr(errstr, "imed out"), "%s", errstr);
	/* The client recovers on a new connection. */
	ck_assert_int_eq(st_registry_get(r, 1, &json, &len, errstr,
					 sizeof(errstr)), 0);
	st_registry_destroy(r);
}
END_TEST

START_TEST(closed_port_is_net)
{
	st_registry_t *r;
	const char *json;
	char url[128], errstr[512];
	size_t len;
	int port, fd = listen_any(&port);

	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d" BASE, port);
	ck_assert_int_eq(st_registry_new(&r, url, 1000, errstr,
					 sizeof(errstr)), 0);
	ck_assert_int_eq(st_registry_get(r, 1, &json, &len, errstr,
					 sizeof(errstr)), ST_ENET);
	ck_assert_msg(strstr(errstr, "/schemas/ids/1: "), "%s", errstr);
	st_registry_destroy(r);
}
END_TEST

START_TEST(register_schema)
{
	st_registry_t *r = client(2000);
	char errstr[512], body[4096], type[256];
	int32_t id = -1;

	ck_assert_msg(st_registry_register(r, "transactions-value", SCHEMA,
					   &id, errstr, sizeof(errstr)) == 0,
		      "%s", errstr);
	ck_assert_int_eq(id, 12);
	last_request(body, sizeof(body), type, sizeof(type));
	ck_assert_str_eq(body,
			 "{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}");
	ck_assert_str_eq(type, "application/vnd.schemaregistry.v1+json");
	ck_assert_int_eq(st_registry_register(r, "a b/c", SCHEMA, &id, errstr,
					      sizeof(errstr)), 0);
	ck_assert_int_eq(id, 3);
	ck_assert_int_eq(count(&srv.connections), 1);
	st_registry_destroy(r);
}
END_TEST

static const struct {
	const char *subject;
	int err;
	const char *msg;
} register_errors[] = {
	{"old-value", ST_ESCHEMA, "subject old-value: schema incompatible "
	 "with an earlier version (HTTP 409: Schema being registered is "
	 "incompatible with an earlier schema)"},
	{"junk-value", ST_ESCHEMA, "subject junk-value: schema invalid (HTTP "
	 "422: Invalid schema)"},
	{"odd-value", ST_EPARSE, "response is not an object with an \"id\" "
	 "integer"},
	{"unknown", ST_ENET, "/subjects/unknown/versions: HTTP 404"},
};

START_TEST(register_errors_mapped)
{
	st_registry_t *r = client(2000);
	char errstr[512];
	int32_t id;

	ck_assert_int_eq(st_registry_register(r, register_errors[_i].subject,
					      SCHEMA, &id, errstr,
					      sizeof(errstr)),
			 register_errors[_i].err);
	ck_assert_msg(strstr(errstr, register_errors[_i].msg),
		      "'%s' lacks '%s'", errstr, register_errors[_i].msg);
	st_registry_destroy(r);
}
END_TEST

START_TEST(bad_arguments)
{
	st_registry_t *r;
	char errstr[512];

	ck_assert_int_eq(st_registry_new(&r, "ftp://127.0.0.1/", 1000, errstr,
					 sizeof(errstr)), ST_EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(errstr, "registry URL \"ftp://127.0.0.1/\": expected "
			 "http://... or https://...");
	ck_assert_int_eq(st_registry_new(&r, "http://127.0.0.1/", 0, errstr,
					 sizeof(errstr)), ST_EINVAL);
	ck_assert_str_eq(errstr, "registry timeout 0 ms: must be positive");
	st_registry_destroy(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, server_start, server_stop);
	tcase_add_test(tc, get_and_cache);
	tcase_add_loop_test(tc, get_errors_mapped, 0,
			    sizeof(get_errors) / sizeof(get_errors[0]));
	tcase_add_test(tc, timeout_is_net);
	tcase_add_test(tc, closed_port_is_net);
	tcase_add_test(tc, register_schema);
	tcase_add_loop_test(tc, register_errors_mapped, 0,
			    sizeof(register_errors) /
			    sizeof(register_errors[0]));
	tcase_add_test(tc, bad_arguments);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
