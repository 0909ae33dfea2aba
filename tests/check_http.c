/* check_http.c -- the operations endpoint on 127.0.0.1 and a free port,
 * fetched with libcurl: /metrics, /healthz, /readyz (ready and not),
 * 404, 405, HEAD, and the errors of st_http_start(). */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "error.h"
#include "http.h"
#include "metrics.h"

typedef struct {
	long status;
	char *type;      /* Content-Type, or NULL */
	char *body;
	size_t body_len;
	char *headers;
	size_t headers_len;
} reply_t;

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
	FILE *fp = opaque;

	return fwrite(p, size, n, fp);
}

/* Sends method (GET, HEAD, POST...) to path on the server's port. */
static void fetch(const st_http_t *h, const char *method, const char *path,
		  reply_t *r)
{
	char url[128];
	const char *type = NULL;
	FILE *body, *headers;
	CURL *curl;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", st_http_port(h),
		 path);
	ck_assert_ptr_nonnull(body = open_memstream(&r->body, &r->body_len));
	ck_assert_ptr_nonnull(headers = open_memstream(&r->headers,
						       &r->headers_len));
	ck_assert_ptr_nonnull(curl = curl_easy_init());
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, headers);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "x=1");
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	ck_assert_int_eq(curl_easy_perform(curl), CURLE_OK);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
	r->type = type ? strdup(type) : NULL;
	curl_easy_cleanup(curl);
	ck_assert_int_eq(fclose(body), 0);
	ck_assert_int_eq(fclose(headers), 0);
}

static void reply_free(reply_t *r)
{
	free(r->type);
	free(r->body);
	free(r->headers);
}

static st_metrics_t *metrics;
static st_metrics_counter_t *events;
static st_http_t *server;

static void setup(void)
{
	st_metrics_family_t *dead;
	st_metrics_counter_t *late;
	st_metrics_histogram_t *h;
	char errstr[256];

	ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
	ck_assert_int_eq(st_metrics_new(&metrics), 0);
	ck_assert_int_eq(st_metrics_counter(metrics, "strata_events_in_total",
		"Transaction messages consumed.", &events), 0);
	ck_assert_int_eq(st_metrics_family(metrics, ST_METRICS_COUNTER,
		"strata_dead_letters_total", "Messages dead-lettered.",
		"reason", NULL, NULL, 0, &dead), 0);
	ck_assert_int_eq(st_metrics_counter_child(dead, "late", NULL, &late),
			 0);
	ck_assert_int_eq(st_metrics_histogram(metrics, "strata_batch_seconds",
		"Time to process a batch.", st_metrics_latency_buckets,
		ST_METRICS_LATENCY_BUCKETS_COUNT, &h), 0);
	st_metrics_counter_add(events, 42);
	st_metrics_counter_inc(late);
	st_metrics_histogram_observe(h, 0.003);
	ck_assert_int_eq(st_http_start(&server, "127.0.0.1:0", metrics,
				       errstr, sizeof(errstr)), 0);
	ck_assert_int_gt(st_http_port(server), 0);
}

static void teardown(void)
{
	st_http_stop(server);
	server = NULL;
	st_metrics_destroy(metrics);
	metrics = NULL;
	curl_global_cleanup();
}

START_TEST(serves_metrics)
{
	reply_t r;
	char *text;
	size_t len;

	fetch(server, "GET", "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.type, "text/plain; version=0.0.4; charset=utf-8");
	ck_assert_int_eq(st_metrics_render(metrics, &text, &len), 0);
	ck_assert_uint_eq(r.body_len, len);
	ck_assert_str_eq(r.body, text);
	ck_assert_ptr_nonnull(strstr(r.body, "\nstrata_events_in_total 42\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
		"\nstrata_dead_letters_total{reason=\"late\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
		"\nstrata_batch_seconds_bucket{le=\"0.005\"} 1\n"));
	free(text);
	reply_free(&r);

	/* the next scrape sees the updates */
	st_metrics_counter_inc(events);
	fetch(server, "GET", "/metrics?x=1", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\nstrata_events_in_total 43\n"));
	reply_free(&r);
}
END_TEST

START_TEST(serves_healthz)
{
	reply_t r;

	fetch(server, "GET", "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.type, "text/plain; charset=utf-8");
	ck_assert_str_eq(r.body, "ok\n");
	reply_free(&r);

	fetch(server, "HEAD", "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_ptr_nonnull(strstr(r.headers, "Content-Length: 3\r\n"));
	reply_free(&r);
}
END_TEST

typedef struct {
	atomic_int ready;
	const char *why;
} probe_t;

static int check_probe(void *opaque, char *why, size_t why_size)
{
	probe_t *p = opaque;

	if (atomic_load(&p->ready))
		return 0;
	if (p->why)
		snprintf(why, why_size, "%s", p->why);
	return ST_ENET;
}

START_TEST(serves_readyz)
{
	probe_t kafka = { 1, NULL };
	probe_t redis = { 1, "connection refused\nby 127.0.0.1:16379" };
	probe_t caught_up = { 1, NULL };
	reply_t r;

	/* no checks: ready */
	fetch(server, "GET", "/readyz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.type, "text/plain; charset=utf-8");
	ck_assert_str_eq(r.body, "readyz check passed\n");
	reply_free(&r);

	ck_assert_int_eq(st_http_add_check(server, "kafka", check_probe,
					   &kafka), 0);
	ck_assert_int_eq(st_http_add_check(server, "redis", check_probe,
					   &redis), 0);
	ck_assert_int_eq(st_http_add_check(server, "caught_up", check_probe,
					   &caught_up), 0);
	fetch(server, "GET", "/readyz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "[+]kafka ok\n[+]redis ok\n[+]caught_up ok\n"
				 "readyz check passed\n");
	reply_free(&r);

	atomic_store(&redis.ready, 0);
	atomic_store(&caught_up.ready, 0);
	fetch(server, "GET", "/readyz", &r);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(r.type, "text/plain; charset=utf-8");
	ck_assert_str_eq(r.body,
		"[+]kafka ok\n"
		"[-]redis failed: connection refused by 127.0.0.1:16379\n"
		"[-]caught_up failed: network service unreachable\n"
		"readyz check failed\n");
	reply_free(&r);

	/* liveness does not depend on readiness */
	fetch(server, "GET", "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);

	atomic_store(&redis.ready, 1);
	atomic_store(&caught_up.ready, 1);
	fetch(server, "GET", "/readyz", &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
}
END_TEST

START_TEST(bad_checks_rejected)
{
	probe_t p = { 1, NULL };
	char name[80];

	ck_assert_int_eq(st_http_add_check(server, "kafka", check_probe, &p),
			 0);
	ck_assert_int_eq(st_http_add_check(server, "kafka", check_probe, &p),
			 ST_EINVAL);
	ck_assert_int_eq(st_http_add_check(server, "", check_probe, &p),
			 ST_EINVAL);
	ck_assert_int_eq(st_http_add_check(server, "a b", check_probe, &p),
			 ST_EINVAL);
	ck_assert_int_eq(st_http_add_check(server, "a\n", check_probe, &p),
			 ST_EINVAL);
	ck_assert_int_eq(st_http_add_check(server, NULL, check_probe, &p),
			 ST_EINVAL);
	ck_assert_int_eq(st_http_add_check(server, "redis", NULL, &p),
			 ST_EINVAL);
	memset(name, 'x', 65);
	name[65] = '\0';
	ck_assert_int_eq(st_http_add_check(server, name, check_probe, &p),
			 ST_EINVAL);
	name[64] = '\0';
	ck_assert_int_eq(st_http_add_check(server, name, check_probe, &p), 0);
}
END_TEST

START_TEST(not_found_and_not_allowed)
{
	static const char *const paths[] = { "/", "/nope", "/metrics/",
					     "/METRICS", "/healthz/x" };
	static const char *const methods[] = { "POST", "PUT", "DELETE" };
	reply_t r;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fetch(server, "GET", paths[i], &r);
		ck_assert_int_eq(r.status, 404);
		ck_assert_str_eq(r.type, "text/plain; charset=utf-8");
		ck_assert_str_eq(r.body, "not found\n");
		reply_free(&r);
	}
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		fetch(server, methods[i], "/metrics", &r);
		ck_assert_int_eq(r.status, 405);
		ck_assert_str_eq(r.type, "text/plain; charset=utf-8");
		ck_assert_str_eq(r.body, "method not allowed\n");
		ck_assert_ptr_nonnull(strstr(r.headers,
					     "\r\nAllow: GET, HEAD\r\n"));
		reply_free(&r);
	}
	fetch(server, "POST", "/readyz", &r);
	ck_assert_int_eq(r.status, 405);
	reply_free(&r);
	fetch(server, "POST", "/nope", &r);
	ck_assert_int_eq(r.status, 404);
	reply_free(&r);
}
END_TEST

static size_t drop(char *p, size_t size, size_t n, void *opaque)
{
	(void)p;
	(void)opaque;
	return size * n;
}

/* Prometheus keeps its connection between scrapes. */
START_TEST(keeps_connections_alive)
{
	static const char *const paths[] = { "/metrics", "/healthz", "/nope",
					     "/readyz", "/metrics" };
	char url[128];
	long status, connects;
	CURL *curl;
	size_t i;

	ck_assert_ptr_nonnull(curl = curl_easy_init());
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, drop);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
			 st_http_port(server), paths[i]);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		ck_assert_int_eq(curl_easy_perform(curl), CURLE_OK);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
		ck_assert_int_eq(status, strcmp(paths[i], "/nope") ? 200 : 404);
		ck_assert_int_eq(connects, i == 0 ? 1 : 0);
	}
	curl_easy_cleanup(curl);
}
END_TEST

START_TEST(listen_addresses)
{
	static const char *const bad[] = {
		"", "9400", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
		"127.0.0.1:65536", "127.0.0.1:123456", "::1:9400", "[::1:9400",
		"127.0.0.1:-1", "127.0.0.1: 80", "[]:0", "[:0",
	};
	char errstr[256], listen[64];
	st_http_t *h = (st_http_t *)1, *any;
	reply_t r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr[0] = '\0';
		ck_assert_int_eq(st_http_start(&h, bad[i], metrics, errstr,
					       sizeof(errstr)), ST_EINVAL);
		ck_assert_ptr_null(h);
		ck_assert_ptr_nonnull(strstr(errstr, "bad listen address"));
	}
	ck_assert_int_eq(st_http_start(&h, NULL, metrics, errstr,
				       sizeof(errstr)), ST_EINVAL);
	ck_assert_int_eq(st_http_start(&h, "127.0.0.1:0", NULL, errstr,
				       sizeof(errstr)), ST_EINVAL);

	/* the port is taken */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", st_http_port(server));
	ck_assert_int_eq(st_http_start(&h, listen, metrics, errstr,
				       sizeof(errstr)), ST_ENET);
	ck_assert_ptr_null(h);
	ck_assert_ptr_nonnull(strstr(errstr, listen));

	/* an address that is not local */
	ck_assert_int_eq(st_http_start(&h, "192.0.2.1:0", metrics, errstr,
				       sizeof(errstr)), ST_ENET);

	/* a name that does not resolve */
	ck_assert_int_eq(st_http_start(&h, "no-such-host.invalid:0", metrics,
				       errstr, sizeof(errstr)), ST_ENET);
	ck_assert_ptr_nonnull(strstr(errstr, "cannot resolve"));

	/* every interface, and a name */
	ck_assert_int_eq(st_http_start(&any, ":0", metrics, errstr,
				       sizeof(errstr)), 0);
	fetch(any, "GET", "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	st_http_stop(any);
	ck_assert_int_eq(st_http_start(&any, "localhost:0", metrics, errstr,
				       sizeof(errstr)), 0);
	st_http_stop(any);
	/* IPv6 loopback, where the host has it */
	if (st_http_start(&any, "[::1]:0", metrics, errstr,
			  sizeof(errstr)) == 0) {
		ck_assert_int_gt(st_http_port(any), 0);
		st_http_stop(any);
	}
	st_http_stop(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, serves_metrics);
	tcase_add_test(tc, serves_healthz);
	tcase_add_test(tc, serves_readyz);
	tcase_add_test(tc, bad_checks_rejected);
	tcase_add_test(tc, not_found_and_not_allowed);
	tcase_add_test(tc, keeps_connections_alive);
	tcase_add_test(tc, listen_addresses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
