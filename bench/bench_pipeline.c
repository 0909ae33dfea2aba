/*
 * bench_pipeline.c -- load generator and measuring tools for the pipeline
 * benchmark (bench/pipeline.sh drives them against the local stack).
 *
 *   bench_pipeline produce   -n COUNT [-R RATE] [-u USERS] [-U FIRST_USER]
 *                            [--unique] [--lag-ms MS]
 *       produces COUNT transactions (Avro, Confluent framing, schema
 *       registered in the real registry) keyed by user, at RATE events/s
 *       (0: as fast as possible); event time = produce time - lag.
 *   bench_pipeline freshness -n COUNT -R RATE [-U FIRST_USER] [--lag-ms MS]
 *                            [--kafka | --split] [--linger-ms MS]
 *       produces COUNT events for COUNT distinct users at RATE, and times
 *       each from just before produce to the Redis keyspace notification
 *       of its feature hash: p50 / p99 / p999 (-o FILE: every latency,
 *       in microseconds, one per line, sorted; --timeline FILE: one line
 *       per event in produce order, "sent_ms latency_us", -1 if not
 *       seen, sent_ms on CLOCK_MONOTONIC). With --kafka the same
 *       events are timed to their arrival at a plain librdkafka consumer
 *       of the topic instead: the broker's own produce-to-consume time,
 *       the floor under strata's freshness. With --split both at once:
 *       each event's freshness is split into its Kafka part (produce to
 *       the plain consumer) and the rest (that consumer to Redis), and
 *       the timeline gets a third column, the Kafka part.
 *       The generator produces with linger.ms=0 (each event sent as soon
 *       as possible; 5 when unpaced or above 50,000 events/s) unless
 *       --linger-ms says otherwise, for produce too; the latency is still
 *       timed from just before produce, the linger included.
 *   bench_pipeline consume   -n COUNT
 *       the bare librdkafka consume rate of the same topic (from the
 *       beginning, a fresh group), for comparison.
 *   bench_pipeline wait      -g GROUP -n COUNT [-T SECONDS]
 *       waits until GROUP has committed COUNT messages of the topic more
 *       than when called... (see pipeline.sh); prints the time it took.
 *
 * Common: -b BOOTSTRAP -t TOPIC -r REGISTRY_URL -s SCHEMA_FILE
 *         -H REDIS_HOST -P REDIS_PORT -x REDIS_PREFIX
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "avro.h"
#include "error.h"
#include "registry.h"
#include "timefmt.h"

static struct {
	const char *bootstrap, *topic, *registry, *schema, *redis_host,
		   *prefix, *group, *out, *timeline, *linger;
	int redis_port, unique, kafka, split;
	uint64_t count, users, first_user, seed;
	double rate;
	int64_t lag_ms, timeout_s;
} opt = {
	"127.0.0.1:19092", "strata.transactions",
	"http://127.0.0.1:18081/apis/ccompat/v7", "schemas/transaction.avsc",
	"127.0.0.1", "strata:user", "strata", NULL, NULL, NULL, 16379, 0, 0, 0, 100000, 1000, 1, 1,
	0, 0, 600
};

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "bench_pipeline: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- producing -------------------------------------------------------- */

typedef struct {
	rd_kafka_t *rk;
	st_avro_encoder_t *enc;
	int32_t schema_id;
} producer_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
	(void)rk;
	(void)o;
	if (m->err)
		fprintf(stderr, "bench_pipeline: delivery failed: %s\n",
			rd_kafka_err2str(m->err));
}

static void producer_init(producer_t *p)
{
	char errstr[512], subject[256], *json;
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	st_registry_t *reg;
	FILE *fp;
	size_t len = 0, cap = 0;

	fp = fopen(opt.schema, "r");
	if (!fp)
		die("cannot read schema %s", opt.schema);
	json = NULL;
	len = (size_t)getdelim(&json, &cap, '\0', fp);
	fclose(fp);
	if (st_registry_new(&reg, opt.registry, 5000, errstr, sizeof(errstr)))
		die("registry: %s", errstr);
	snprintf(subject, sizeof(subject), "%s-value", opt.topic);
	if (st_registry_register(reg, subject, json, &p->schema_id, errstr,
				 sizeof(errstr)))
		die("registering the schema: %s", errstr);
	if (st_avro_encoder_new(&p->enc, json, len, errstr, sizeof(errstr)))
		die("encoder: %s", errstr);
	st_registry_destroy(reg);
	free(json);
	rd_kafka_conf_set(c, "bootstrap.servers", opt.bootstrap, NULL, 0);
	rd_kafka_conf_set(c, "linger.ms", opt.linger ? opt.linger :
			  opt.rate > 0 && opt.rate <= 50000 ? "0" : "5", NULL, 0);
	rd_kafka_conf_set(c, "queue.buffering.max.messages", "1000000", NULL, 0);
	rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
	rd_kafka_conf_set(c, "socket.nagle.disable", "true", NULL, 0);
	rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
	if (!p->rk)
		die("producer: %s", errstr);
}

/* Produces event i for user u. The produce time (us, monotonic) goes into
 * *sent (when not NULL) before the event is handed to librdkafka: a
 * listener may see the event before producev() returns. */
static void produce_one(producer_t *p, uint64_t i, uint64_t user,
			int64_t *sent)
{
	static const char *const channels[] = {"web", "mobile", "pos", "atm"};
	char txn[48], dev[32], key[24];
	uint8_t buf[256];
	st_value_t f[8];
	size_t len;
	char errstr[256];
	int64_t t0;

	memset(f, 0, sizeof(f));
	snprintf(txn, sizeof(txn), "t%" PRIu64 "-%" PRIu64, opt.seed, i);
	f[0].type = ST_VAL_STRING; f[0].s = txn; f[0].len = strlen(txn);
	f[1].type = ST_VAL_INT; f[1].i = (int64_t)user;
	f[2].type = ST_VAL_INT; f[2].i = (int64_t)(1 + next_rand() % 200);
	f[3].type = ST_VAL_DOUBLE;
	f[3].d = (double)(100 + next_rand() % 20000) / 100.0;
	if (next_rand() % 50 == 0)
		f[3].d *= 20;   /* the occasional outlier */
	f[4].type = ST_VAL_STRING; f[4].s = "EUR"; f[4].len = 3;
	f[5].type = ST_VAL_STRING;
	f[5].s = channels[next_rand() % 4];
	f[5].len = strlen(f[5].s);
	f[6].type = ST_VAL_INT;
	f[6].i = st_time_now_ms() - opt.lag_ms;
	if (next_rand() % 3) {
		snprintf(dev, sizeof(dev), "dev-%" PRIu64, user % 977);
		f[7].type = ST_VAL_STRING; f[7].s = dev; f[7].len = strlen(dev);
	} else {
		f[7].type = ST_VAL_NULL;
	}
	if (st_avro_encode(p->enc, p->schema_id, f, 8, buf, sizeof(buf), &len,
			   errstr, sizeof(errstr)))
		die("encode: %s", errstr);
	snprintf(key, sizeof(key), "%" PRIu64, user);
	t0 = st_time_mono_us();
	if (sent)
		__atomic_store_n(sent, t0, __ATOMIC_RELEASE);
	while (rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(opt.topic),
				 RD_KAFKA_V_KEY(key, strlen(key)),
				 RD_KAFKA_V_VALUE(buf, len),
				 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				 RD_KAFKA_V_END) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(p->rk, 5);
	rd_kafka_poll(p->rk, 0);
}

/* Paces a loop to opt.rate events/s. */
static void pace(int64_t start_us, uint64_t i)
{
	int64_t due, now;

	if (opt.rate <= 0)
		return;
	due = start_us + (int64_t)((double)i * 1e6 / opt.rate);
	now = st_time_mono_us();
	if (due > now + 200)
		usleep((useconds_t)(due - now));
}

static int cmd_produce(void)
{
	producer_t p;
	int64_t t0, t1;

	producer_init(&p);
	t0 = st_time_mono_us();
	for (uint64_t i = 0; i < opt.count; i++) {
		uint64_t u = opt.unique ? opt.first_user + i :
			     opt.first_user + next_rand() % opt.users;

		pace(t0, i);
		produce_one(&p, i, u, NULL);
	}
	rd_kafka_flush(p.rk, 60000);
	t1 = st_time_mono_us();
	printf("produced %" PRIu64 " events in %.2f s (%.0f events/s)\n",
	       opt.count, (double)(t1 - t0) / 1e6,
	       (double)opt.count * 1e6 / (double)(t1 - t0));
	rd_kafka_destroy(p.rk);
	st_avro_encoder_free(p.enc);
	return 0;
}

/* ---- freshness -------------------------------------------------------- */

static int64_t *sent_us;          /* per event index, produce time */
static int64_t *lat_us;           /* per event index, latency or -1 */
static int64_t *klat_us;          /* --split: to the plain consumer, or -1 */
static atomic_int listening;      /* listener threads ready */
static atomic_int done;

/* The event of `user` was seen at `now`: its latency in lat, the first
 * time. */
static void arrived(int64_t *lat, uint64_t user, int64_t now)
{
	uint64_t i = user - opt.first_user;
	int64_t sent;

	if (user < opt.first_user || i >= opt.count || lat[i] >= 0)
		return;
	sent = __atomic_load_n(&sent_us[i], __ATOMIC_ACQUIRE);
	if (sent > 0)
		__atomic_store_n(&lat[i], now - sent, __ATOMIC_RELAXED);
}

static void *listener(void *arg)
{
	char pattern[256];
	redisContext *c;
	redisReply *r;
	size_t plen = strlen(opt.prefix) + 1;

	(void)arg;
	c = redisConnect(opt.redis_host, opt.redis_port);
	if (!c || c->err)
		die("redis: %s", c ? c->errstr : "connect");
	r = redisCommand(c, "CONFIG SET notify-keyspace-events Kh");
	freeReplyObject(r);
	snprintf(pattern, sizeof(pattern), "__keyspace@0__:%s:*", opt.prefix);
	r = redisCommand(c, "PSUBSCRIBE %s", pattern);
	freeReplyObject(r);
	atomic_fetch_add(&listening, 1);
	while (!atomic_load(&done) && redisGetReply(c, (void **)&r) == REDIS_OK) {
		int64_t now = st_time_mono_us();

		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		    !strcmp(r->element[3]->str, "hset")) {
			const char *ch = r->element[2]->str;
			const char *key = strstr(ch, "__:");

			if (key && strlen(key + 3) > plen)
				arrived(lat_us,
					strtoull(key + 3 + plen, NULL, 10),
					now);
		}
		freeReplyObject(r);
	}
	redisFree(c);
	return NULL;
}

/* A read_committed consumer in group, with extra NULL-terminated name,
 * value pairs; its events are served by rd_kafka_consumer_poll(). */
static rd_kafka_t *consumer_new(const char *group, const char *const *extra)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char errstr[512];
	rd_kafka_t *rk;

	rd_kafka_conf_set(c, "bootstrap.servers", opt.bootstrap, NULL, 0);
	rd_kafka_conf_set(c, "group.id", group, NULL, 0);
	rd_kafka_conf_set(c, "enable.auto.commit", "false", NULL, 0);
	rd_kafka_conf_set(c, "isolation.level", "read_committed", NULL, 0);
	for (; extra && extra[0]; extra += 2)
		rd_kafka_conf_set(c, extra[0], extra[1], NULL, 0);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
	if (!rk)
		die("consumer: %s", errstr);
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* --kafka: times each event to its arrival at a plain consumer of the
 * topic, assigned at the partitions' ends before anything is produced. */
static void *kafka_listener(void *arg)
{
	static const char *const extra[] = {
		"enable.partition.eof", "true",
		"socket.nagle.disable", "true", NULL
	};
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_t *t;
	rd_kafka_t *rk;

	(void)arg;
	rk = consumer_new("bench-kafka-latency", extra);
	t = rd_kafka_topic_new(rk, opt.topic, NULL);
	if (rd_kafka_metadata(rk, 0, t, &md, 5000) || !md->topic_cnt)
		die("metadata for %s", opt.topic);
	l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++) {
		int32_t id = md->topics[0].partitions[i].id;
		int64_t lo, hi;

		if (rd_kafka_query_watermark_offsets(rk, opt.topic, id, &lo,
						     &hi, 5000))
			die("end offsets of %s", opt.topic);
		rd_kafka_topic_partition_list_add(l, opt.topic, id)->offset =
			hi;
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	if (rd_kafka_assign(rk, l))
		die("assign %s", opt.topic);
	/* Listening once every partition's fetcher has reported its end:
	 * before that the first events would wait for the fetchers. */
	for (int eofs = 0; eofs < l->cnt;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++;
		if (m)
			rd_kafka_message_destroy(m);
	}
	rd_kafka_topic_partition_list_destroy(l);
	atomic_fetch_add(&listening, 1);
	while (!atomic_load(&done)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		int64_t now = st_time_mono_us();

		if (!m)
			continue;
		if (!m->err && m->key && m->key_len < 24) {
			char key[24];

			memcpy(key, m->key, m->key_len);
			key[m->key_len] = '\0';
			arrived(opt.split ? klat_us : lat_us,
				strtoull(key, NULL, 10), now);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts the n values of v and prints " p50 .., p99 .., p999 .., max .."
 * in ms (nothing when n is 0). */
static void print_quantiles(int64_t *v, uint64_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	if (n)
		printf(", p50 %.3f ms, p99 %.3f ms, p999 %.3f ms, max %.3f ms",
		       (double)v[n / 2] / 1000,
		       (double)v[(size_t)((double)n * 0.99)] / 1000,
		       (double)v[(size_t)((double)n * 0.999)] / 1000,
		       (double)v[n - 1] / 1000);
}

/* --split: the Kafka part and the rest of the events seen by both. */
static void print_split(int64_t *v)
{
	static const char *const label[] = {
		"  Kafka part (produce to a plain consumer of the topic)",
		"  the rest (that consumer to the Redis notification)"
	};

	for (int rest = 0; rest < 2; rest++) {
		uint64_t n = 0;

		for (uint64_t i = 0; i < opt.count; i++)
			if (lat_us[i] >= 0 && klat_us[i] >= 0)
				v[n++] = rest ? lat_us[i] - klat_us[i] :
					 klat_us[i];
		printf("%s: %" PRIu64 " events", label[rest], n);
		print_quantiles(v, n);
		printf("\n");
	}
}

static int cmd_freshness(void)
{
	uint64_t seen = 0, unnotified = 0;
	pthread_t th, kth;
	producer_t p;
	int64_t t0, *v;

	sent_us = calloc(opt.count, sizeof(*sent_us));
	lat_us = malloc(opt.count * sizeof(*lat_us));
	klat_us = malloc(opt.count * sizeof(*klat_us));
	v = malloc(opt.count * sizeof(*v));
	for (uint64_t i = 0; i < opt.count; i++)
		lat_us[i] = klat_us[i] = -1;
	if (opt.split)
		opt.kafka = 0;
	producer_init(&p);
	/* One event outside the timed range first: the producer's
	 * connection and idempotence id are not part of the latency. */
	produce_one(&p, opt.count, opt.first_user + opt.count, NULL);
	rd_kafka_flush(p.rk, 30000);
	pthread_create(&th, NULL, opt.kafka ? kafka_listener : listener,
		       NULL);
	if (opt.split)
		pthread_create(&kth, NULL, kafka_listener, NULL);
	while (atomic_load(&listening) < 1 + opt.split)
		usleep(1000);
	t0 = st_time_mono_us();
	for (uint64_t i = 0; i < opt.count; i++) {
		pace(t0, i);
		produce_one(&p, i, opt.first_user + i, &sent_us[i]);
	}
	rd_kafka_flush(p.rk, 60000);
	/* Wait for stragglers: up to 10 s after the last produce. */
	for (int w = 0; w < 100; w++) {
		seen = 0;
		for (uint64_t i = 0; i < opt.count; i++)
			seen += __atomic_load_n(&lat_us[i],
						__ATOMIC_RELAXED) >= 0;
		if (seen == opt.count)
			break;
		usleep(100000);
	}
	atomic_store(&done, 1);
	if (!opt.kafka) {
		/* Wake the listener with one more notification. */
		redisContext *c = redisConnect(opt.redis_host, opt.redis_port);
		char key[256];

		snprintf(key, sizeof(key), "%s:bench-end", opt.prefix);
		freeReplyObject(redisCommand(c, "HSET %s x 1", key));
		freeReplyObject(redisCommand(c, "DEL %s", key));
		/* Events not timed: written without a notification seen, or
		 * not written at all? */
		for (uint64_t i = 0; i < opt.count; i++) {
			redisReply *r;

			if (__atomic_load_n(&lat_us[i], __ATOMIC_RELAXED) >= 0)
				continue;
			r = redisCommand(c, "EXISTS %s:%" PRIu64, opt.prefix,
					 opt.first_user + i);
			if (r && r->type == REDIS_REPLY_INTEGER && r->integer)
				unnotified++;
			freeReplyObject(r);
		}
		redisFree(c);
	}
	pthread_join(th, NULL);
	if (opt.split)
		pthread_join(kth, NULL);
	seen = 0;
	for (uint64_t i = 0; i < opt.count; i++)
		if (lat_us[i] >= 0)
			v[seen++] = lat_us[i];
	qsort(v, seen, sizeof(*v), cmp_i64);
	if (opt.out) {
		FILE *fp = fopen(opt.out, "w");

		if (!fp)
			die("cannot write %s", opt.out);
		for (uint64_t i = 0; i < seen; i++)
			fprintf(fp, "%" PRId64 "\n", v[i]);
		fclose(fp);
	}
	if (opt.timeline) {
		FILE *fp = fopen(opt.timeline, "w");

		if (!fp)
			die("cannot write %s", opt.timeline);
		for (uint64_t i = 0; i < opt.count; i++) {
			fprintf(fp, "%.3f %" PRId64, (double)sent_us[i] / 1000.0,
				lat_us[i]);
			if (opt.split)
				fprintf(fp, " %" PRId64, klat_us[i]);
			fprintf(fp, "\n");
		}
		fclose(fp);
	}
	printf("%s at %.0f events/s (event time = produce time - %"
	       PRId64 " ms): %" PRIu64 " of %" PRIu64 " seen",
	       opt.kafka ? "Kafka produce-to-consume" : "freshness", opt.rate,
	       opt.lag_ms, seen, opt.count);
	if (unnotified)
		printf(" (%" PRIu64 " more in Redis, their notification not "
		       "seen within 10 s)", unnotified);
	print_quantiles(v, seen);
	printf("\n");
	if (opt.split)
		print_split(v);
	rd_kafka_destroy(p.rk);
	st_avro_encoder_free(p.enc);
	return seen == opt.count ? 0 : 1;
}

/* ---- bare consume ----------------------------------------------------- */

static int cmd_consume(void)
{
	static const char *const extra[] = {
		"auto.offset.reset", "earliest", NULL
	};
	char group[64];
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *rk;
	uint64_t n = 0, bytes = 0;
	int64_t t0 = 0, t1 = 0;

	snprintf(group, sizeof(group), "bench-consume-%d", (int)getpid());
	rk = consumer_new(group, extra);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, opt.topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	while (n < opt.count) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);

		if (!m) {
			if (t0 && st_time_mono_us() - t1 > 10000000)
				break;
			continue;
		}
		if (!m->err) {
			if (!t0)
				t0 = st_time_mono_us();
			n++;
			bytes += m->len;
			t1 = st_time_mono_us();
		}
		rd_kafka_message_destroy(m);
	}
	printf("bare consume: %" PRIu64 " messages (%" PRIu64 " bytes) in "
	       "%.2f s = %.0f messages/s\n", n, bytes, (double)(t1 - t0) / 1e6,
	       (double)n * 1e6 / (double)(t1 - t0 + 1));
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return n == opt.count ? 0 : 1;
}

/* ---- waiting for strata ----------------------------------------------- */

/* Sum of the group's committed offsets on the topic. */
static int64_t committed_total(rd_kafka_t *rk, int *nparts)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, opt.topic, NULL);
	rd_kafka_topic_partition_list_t *l;
	int64_t sum = 0;

	if (rd_kafka_metadata(rk, 0, t, &md, 5000))
		die("metadata for %s", opt.topic);
	l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(l, opt.topic,
			md->topics[0].partitions[i].id);
	*nparts = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	if (!rd_kafka_committed(rk, l, 5000))
		for (int i = 0; i < l->cnt; i++)
			if (l->elems[i].offset > 0)
				sum += l->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return sum;
}

static int cmd_wait(void)
{
	rd_kafka_t *rk = consumer_new(opt.group, NULL);
	int64_t target, t0 = st_time_mono_us(), now;
	int nparts;

	target = (int64_t)opt.count;
	for (;;) {
		int64_t got = committed_total(rk, &nparts);

		now = st_time_mono_us();
		if (got >= target) {
			printf("group %s reached %" PRId64 " committed messages "
			       "after %.2f s\n", opt.group, got,
			       (double)(now - t0) / 1e6);
			break;
		}
		if (now - t0 > opt.timeout_s * 1000000) {
			printf("group %s: only %" PRId64 " of %" PRId64
			       " committed after %" PRId64 " s\n", opt.group,
			       got, target, opt.timeout_s);
			rd_kafka_destroy(rk);
			return 1;
		}
		usleep(20000);
	}
	rd_kafka_destroy(rk);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"unique", no_argument, NULL, 1},
		{"lag-ms", required_argument, NULL, 2},
		{"kafka", no_argument, NULL, 3},
		{"timeline", required_argument, NULL, 4},
		{"split", no_argument, NULL, 5},
		{"linger-ms", required_argument, NULL, 6},
		{NULL, 0, NULL, 0}
	};
	const char *cmd;
	int o;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_pipeline produce|freshness|"
			"consume|wait [options] (see the source header)\n");
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "b:t:r:s:H:P:x:g:n:R:u:U:S:T:o:",
				longopts, NULL)) != -1) {
		switch (o) {
		case 'b': opt.bootstrap = optarg; break;
		case 't': opt.topic = optarg; break;
		case 'r': opt.registry = optarg; break;
		case 's': opt.schema = optarg; break;
		case 'H': opt.redis_host = optarg; break;
		case 'P': opt.redis_port = atoi(optarg); break;
		case 'x': opt.prefix = optarg; break;
		case 'g': opt.group = optarg; break;
		case 'n': opt.count = strtoull(optarg, NULL, 10); break;
		case 'R': opt.rate = atof(optarg); break;
		case 'u': opt.users = strtoull(optarg, NULL, 10); break;
		case 'U': opt.first_user = strtoull(optarg, NULL, 10); break;
		case 'S': opt.seed = strtoull(optarg, NULL, 10); break;
		case 'T': opt.timeout_s = atoll(optarg); break;
		case 'o': opt.out = optarg; break;
		case 1: opt.unique = 1; break;
		case 2: opt.lag_ms = atoll(optarg); break;
		case 3: opt.kafka = 1; break;
		case 4: opt.timeline = optarg; break;
		case 5: opt.split = 1; break;
		case 6: opt.linger = optarg; break;
		default: return 2;
		}
	}
	rng ^= opt.seed * 0x9E3779B97F4A7C15ULL;
	printf("command:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);
	if (!strcmp(cmd, "produce"))
		return cmd_produce();
	if (!strcmp(cmd, "freshness"))
		return cmd_freshness();
	if (!strcmp(cmd, "consume"))
		return cmd_consume();
	if (!strcmp(cmd, "wait"))
		return cmd_wait();
	fprintf(stderr, "bench_pipeline: unknown command %s\n", cmd);
	return 2;
}
