package strata.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.streaming.api.CheckpointingMode;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.streaming.api.functions.sink.RichSinkFunction;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Flink peer of strata's pipeline benchmark: the same work on the same
 * backlog, as a Flink DataStream job on a local MiniCluster.
 *
 * <ul>
 * <li>transactions: Confluent-framed Avro (magic byte, schema id), the
 * writer schema fetched from the registry by id and cached, read with
 * schemas/transaction.avsc as the reader schema;</li>
 * <li>users and merchants: the Debezium topics (JSON, no schemas), each
 * change a version valid from its commit time (source.ts_ms);</li>
 * <li>an event-time temporal join with each: a transaction waits in keyed
 * state until the watermark of both inputs passes its event time, then
 * takes the version valid at that time (what Flink SQL's
 * FOR SYSTEM_TIME AS OF join does);</li>
 * <li>the fraud feature set of examples/fraud.features over the user's
 * last 24 hours, kept in keyed state;</li>
 * <li>Redis: one hash per user, written by a script that refuses an older
 * vector, pipelined.</li>
 * </ul>
 * Checkpoints every --checkpoint-ms (exactly-once mode, the heap state
 * backend), as strata commits its state every second. Prints one line of
 * JSON with the counts and times when the bounded sources are done.
 */
public final class FlinkFraud {
	static final long HOUR = 3_600_000L, DAY = 24 * HOUR;
	static final String[] NAMES = {
		"amount", "txn_count_1h", "txn_sum_1h", "txn_count_24h",
		"txn_sum_24h", "avg_amount_24h", "max_amount_24h",
		"distinct_merchants_24h", "avg_amount_24h_before",
		"amount_over_avg_24h", "secs_since_prev_txn", "user_segment",
		"user_segment_code", "user_risk_tier", "merchant_risk_score",
		"country_mismatch"};
	static final String[] SEGMENTS = {"standard", "silver", "gold", "platinum"};

	/* One JVM runs the whole MiniCluster: these count across its tasks. */
	static final AtomicLong DECODED = new AtomicLong(), BAD = new AtomicLong(),
		WRITTEN = new AtomicLong(), FIRST_NS = new AtomicLong(),
		LAST_NS = new AtomicLong();

	/** A transaction, and the merchant as of its event time once joined. */
	public static class Txn {
		public long userId, merchantId, eventTime, offset;
		public int partition;
		public double amount;
		public boolean merchantFound;
		public String merchantCountry;
		public double merchantRisk;
		public Txn() {}
	}

	/** One version of a users or merchants row (deleted: a tombstone). */
	public static class Version {
		public long id, validFrom;
		public boolean deleted;
		public String country, segment;
		public long riskTier;
		public double riskScore;
		public Version() {}
	}

	/** A feature vector for Redis. */
	public static class Vec {
		public long userId, eventTime, seq;
		public String[] values;
		public Vec() {}
	}

	/** A user's events of the last 24 hours, in event-time order. */
	public static class Window {
		public long[] ts = new long[4], merchant = new long[4];
		public double[] amount = new double[4];
		public int start, n;
		public Window() {}

		void add(long t, double a, long m) {
			if (start + n == ts.length) {
				if (start > 0) {
					System.arraycopy(ts, start, ts, 0, n);
					System.arraycopy(amount, start, amount, 0, n);
					System.arraycopy(merchant, start, merchant, 0, n);
					start = 0;
				}
				if (n == ts.length) {
					ts = java.util.Arrays.copyOf(ts, n * 2);
					amount = java.util.Arrays.copyOf(amount, n * 2);
					merchant = java.util.Arrays.copyOf(merchant, n * 2);
				}
			}
			ts[start + n] = t;
			amount[start + n] = a;
			merchant[start + n] = m;
			n++;
		}

		void evict(long horizon) {
			while (n > 0 && ts[start] <= horizon) {
				start++;
				n--;
			}
		}
	}

	/** Confluent-framed Avro transactions, in the source's reader thread. */
	static final class TxnFormat implements KafkaRecordDeserializationSchema<Txn> {
		private final String registry, readerSchema;
		private transient Map<Integer, GenericDatumReader<GenericRecord>> readers;
		private transient Schema reader;
		private transient BinaryDecoder dec;
		private transient GenericRecord reuse;
		private transient HttpClient http;

		TxnFormat(String registry, String readerSchema) {
			this.registry = registry;
			this.readerSchema = readerSchema;
		}

		private GenericDatumReader<GenericRecord> readerFor(int id) throws IOException {
			GenericDatumReader<GenericRecord> r = readers.get(id);
			if (r != null)
				return r;
			HttpRequest req = HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id)).build();
			HttpResponse<String> resp;
			try {
				resp = http.send(req, HttpResponse.BodyHandlers.ofString());
			} catch (InterruptedException e) {
				Thread.currentThread().interrupt();
				throw new IOException("schema " + id + ": interrupted");
			}
			if (resp.statusCode() != 200)
				throw new IOException("schema " + id + ": registry answered " + resp.statusCode());
			String text = new ObjectMapper().readTree(resp.body()).get("schema").asText();
			r = new GenericDatumReader<>(new Schema.Parser().parse(text), reader);
			readers.put(id, r);
			return r;
		}

		@Override
		public void deserialize(ConsumerRecord<byte[], byte[]> rec, Collector<Txn> out) throws IOException {
			if (readers == null) {
				readers = new HashMap<>();
				reader = new Schema.Parser().parse(readerSchema);
				http = HttpClient.newHttpClient();
			}
			byte[] v = rec.value();
			if (v == null || v.length < 5 || v[0] != 0) {
				BAD.incrementAndGet();
				return;
			}
			try {
				GenericDatumReader<GenericRecord> r = readerFor(ByteBuffer.wrap(v, 1, 4).getInt());
				dec = DecoderFactory.get().binaryDecoder(v, 5, v.length - 5, dec);
				reuse = r.read(reuse, dec);
			} catch (IOException | RuntimeException e) {
				BAD.incrementAndGet();
				return;
			}
			Txn t = new Txn();
			t.userId = (Long) reuse.get("user_id");
			t.merchantId = (Long) reuse.get("merchant_id");
			t.amount = (Double) reuse.get("amount");
			t.eventTime = (Long) reuse.get("event_time");
			t.offset = rec.offset();
			t.partition = rec.partition();
			FIRST_NS.compareAndSet(0, System.nanoTime());
			DECODED.incrementAndGet();
			out.collect(t);
		}

		@Override
		public TypeInformation<Txn> getProducedType() {
			return TypeInformation.of(Txn.class);
		}
	}

	/** Debezium change events (JSON without schemas) as versions. */
	static final class CdcFormat implements KafkaRecordDeserializationSchema<Version> {
		private transient ObjectMapper json;

		@Override
		public void deserialize(ConsumerRecord<byte[], byte[]> rec, Collector<Version> out) throws IOException {
			if (rec.value() == null)
				return;   /* the tombstone after a delete */
			if (json == null)
				json = new ObjectMapper();
			JsonNode doc;
			try {
				doc = json.readTree(rec.value());
			} catch (IOException e) {
				BAD.incrementAndGet();   /* strata dead-letters it */
				return;
			}
			JsonNode after = doc.get("after"), row = after == null || after.isNull() ? doc.get("before") : after;
			JsonNode source = doc.get("source");
			if (row == null || !row.isObject() || source == null || !row.has("id")
			    || !source.has("ts_ms")) {
				BAD.incrementAndGet();
				return;
			}
			Version v = new Version();
			v.id = row.get("id").asLong();
			v.validFrom = source.get("ts_ms").asLong();
			v.deleted = after == null || after.isNull();
			v.country = row.has("country") ? row.get("country").asText() : null;
			v.segment = row.has("segment") ? row.get("segment").asText() : null;
			v.riskTier = row.has("risk_tier") ? row.get("risk_tier").asLong() : 0;
			v.riskScore = row.has("risk_score") ? row.get("risk_score").asDouble() : 0;
			out.collect(v);
		}

		@Override
		public TypeInformation<Version> getProducedType() {
			return TypeInformation.of(Version.class);
		}
	}

	/**
	 * The temporal join's common part: versions by valid-from time, and
	 * the transactions waiting for the watermark, by event time.
	 */
	abstract static class AsOf<O> extends KeyedCoProcessFunction<Long, Txn, Version, O> {
		private transient ValueState<TreeMap<Long, Version>> versions;
		private transient MapState<Long, List<Txn>> waiting;

		@Override
		public void open(Configuration parameters) {
			versions = getRuntimeContext().getState(new ValueStateDescriptor<>("versions",
				TypeInformation.of(new TypeHint<TreeMap<Long, Version>>() {})));
			waiting = getRuntimeContext().getMapState(new MapStateDescriptor<>("waiting",
				TypeInformation.of(Long.class), TypeInformation.of(new TypeHint<List<Txn>>() {})));
		}

		abstract void joined(Txn t, Version v, Collector<O> out) throws Exception;

		private void join(Txn t, Collector<O> out) throws Exception {
			TreeMap<Long, Version> m = versions.value();
			Map.Entry<Long, Version> e = m == null ? null : m.floorEntry(t.eventTime);
			joined(t, e == null || e.getValue().deleted ? null : e.getValue(), out);
		}

		@Override
		public void processElement1(Txn t, Context ctx, Collector<O> out) throws Exception {
			/* Behind the watermark (later than the 5 s the source
			 * allows): joined at once, out of order, where strata
			 * dead-letters it as late. */
			if (t.eventTime <= ctx.timerService().currentWatermark()) {
				join(t, out);
				return;
			}
			List<Txn> l = waiting.get(t.eventTime);
			if (l == null) {
				l = new ArrayList<>(1);
				ctx.timerService().registerEventTimeTimer(t.eventTime);
			}
			l.add(t);
			waiting.put(t.eventTime, l);
		}

		@Override
		public void processElement2(Version v, Context ctx, Collector<O> out) throws Exception {
			TreeMap<Long, Version> m = versions.value();
			if (m == null)
				m = new TreeMap<>();
			m.put(v.validFrom, v);
			versions.update(m);
		}

		@Override
		public void onTimer(long ts, OnTimerContext ctx, Collector<O> out) throws Exception {
			List<Txn> l = waiting.get(ts);
			if (l == null)
				return;
			waiting.remove(ts);
			/* Events of one millisecond in their input order (they may
			 * come through different upstream subtasks): the last one
			 * is the vector Redis keeps, as in strata. */
			if (l.size() > 1)
				l.sort((x, y) -> x.partition != y.partition
					? Integer.compare(x.partition, y.partition) : Long.compare(x.offset, y.offset));
			for (Txn t : l)
				join(t, out);
		}
	}

	/** Keyed by merchant: the merchant as of the event time. */
	static final class MerchantJoin extends AsOf<Txn> {
		@Override
		void joined(Txn t, Version m, Collector<Txn> out) {
			t.merchantFound = m != null;
			if (m != null) {
				t.merchantCountry = m.country;
				t.merchantRisk = m.riskScore;
			}
			out.collect(t);
		}
	}

	/** Keyed by user: the user as of the event time, then the windows. */
	static final class UserFeatures extends AsOf<Vec> {
		private transient ValueState<Window> window;

		@Override
		public void open(Configuration parameters) {
			super.open(parameters);
			window = getRuntimeContext().getState(new ValueStateDescriptor<>("window",
				TypeInformation.of(Window.class)));
		}

		private static String num(double d) {
			return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
		}

		@Override
		void joined(Txn t, Version u, Collector<Vec> out) throws Exception {
			Window w = window.value();
			if (w == null)
				w = new Window();
			long prev = w.n > 0 ? w.ts[w.start + w.n - 1] : Long.MIN_VALUE;
			w.evict(t.eventTime - DAY);
			int before = w.n;
			double sumBefore = 0;
			for (int i = w.start; i < w.start + w.n; i++)
				sumBefore += w.amount[i];
			w.add(t.eventTime, t.amount, t.merchantId);
			window.update(w);

			long c1 = 0;
			double s1 = 0, s24 = 0, max = Double.NEGATIVE_INFINITY;
			HashSet<Long> merchants = new HashSet<>();
			for (int i = w.start; i < w.start + w.n; i++) {
				double a = w.amount[i];
				if (w.ts[i] > t.eventTime - HOUR) {
					c1++;
					s1 += a;
				}
				s24 += a;
				max = Math.max(max, a);
				merchants.add(w.merchant[i]);
			}
			String[] v = new String[NAMES.length];
			v[0] = num(t.amount);
			v[1] = Long.toString(c1);
			v[2] = num(s1);
			v[3] = Integer.toString(w.n);
			v[4] = num(s24);
			v[5] = num(s24 / w.n);
			v[6] = num(max);
			v[7] = Integer.toString(merchants.size());
			v[8] = before > 0 ? num(sumBefore / before) : "";
			v[9] = before > 0 && sumBefore != 0 ? num(t.amount / (sumBefore / before)) : "";
			v[10] = prev != Long.MIN_VALUE ? num((t.eventTime - prev) / 1000.0) : "";
			v[11] = u != null && u.segment != null ? u.segment : "";
			int code = -1;
			for (int i = 0; u != null && i < SEGMENTS.length; i++)
				if (SEGMENTS[i].equals(u.segment))
					code = i;
			v[12] = code >= 0 ? Integer.toString(code) : "";
			v[13] = u != null ? Long.toString(u.riskTier) : "";
			v[14] = t.merchantFound ? num(t.merchantRisk) : "";
			v[15] = u != null && t.merchantFound && u.country != null
				? (u.country.equals(t.merchantCountry) ? "0" : "1") : "";
			Vec out1 = new Vec();
			out1.userId = t.userId;
			out1.eventTime = t.eventTime;
			out1.seq = t.offset;
			out1.values = v;
			out.collect(out1);
		}
	}

	/** Pipelined guarded writes: an older vector never replaces a newer one. */
	static final class RedisSink extends RichSinkFunction<Vec> implements CheckpointedFunction {
		static final String GUARD =
			"local cur = redis.call('HMGET', KEYS[1], '_event_time', '_seq')\n"
			+ "if cur[1] then\n"
			+ "  local et, sq = tonumber(cur[1]), tonumber(cur[2])\n"
			+ "  local net, nsq = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
			+ "  if et > net or (et == net and sq >= nsq) then return 0 end\n"
			+ "end\n"
			+ "redis.call('DEL', KEYS[1])\n"
			+ "redis.call('HSET', KEYS[1], '_event_time', ARGV[1], '_seq', ARGV[2], unpack(ARGV, 3))\n"
			+ "return 1\n";
		private final int port;
		private final String prefix;
		private transient Jedis jedis;
		private transient Pipeline pipe;
		private transient String sha;
		private transient int pending;

		RedisSink(int port, String prefix) {
			this.port = port;
			this.prefix = prefix;
		}

		@Override
		public void open(Configuration parameters) {
			jedis = new Jedis("127.0.0.1", port);
			sha = jedis.scriptLoad(GUARD);
			pipe = jedis.pipelined();
		}

		@Override
		public void invoke(Vec v, Context ctx) {
			List<String> args = new ArrayList<>(2 + 2 * NAMES.length);
			args.add(Long.toString(v.eventTime));
			args.add(Long.toString(v.seq));
			for (int i = 0; i < NAMES.length; i++) {
				args.add(NAMES[i]);
				args.add(v.values[i]);
			}
			pipe.evalsha(sha, List.of(prefix + ":" + v.userId), args);
			if (++pending >= 512)
				flush();
		}

		private void flush() {
			if (pending == 0)
				return;
			pipe.sync();
			WRITTEN.addAndGet(pending);
			LAST_NS.set(System.nanoTime());
			pending = 0;
		}

		@Override
		public void snapshotState(FunctionSnapshotContext ctx) {
			flush();
		}

		@Override
		public void initializeState(FunctionInitializationContext ctx) {
		}

		@Override
		public void finish() {
			flush();
		}

		@Override
		public void close() {
			if (jedis != null) {
				flush();
				jedis.close();
			}
		}
	}

	static KafkaSource<Version> cdc(String bootstrap, String topic, String group) {
		return KafkaSource.<Version>builder().setBootstrapServers(bootstrap).setTopics(topic)
			.setGroupId(group).setStartingOffsets(OffsetsInitializer.earliest())
			.setBounded(OffsetsInitializer.latest()).setDeserializer(new CdcFormat())
			.setProperty("isolation.level", "read_committed").build();
	}

	public static void main(String[] argv) throws Exception {
		Map<String, String> a = new HashMap<>();
		for (int i = 0; i + 1 < argv.length; i += 2) {
			if (!argv[i].startsWith("--"))
				throw new IllegalArgumentException("expected --name value, got " + argv[i]);
			a.put(argv[i].substring(2), argv[i + 1]);
		}
		for (String k : new String[] {"bootstrap", "topic", "registry", "schema", "redis-port", "prefix"})
			if (!a.containsKey(k))
				throw new IllegalArgumentException("--" + k + " is required");
		String bootstrap = a.get("bootstrap"), group = a.getOrDefault("group", "flink-" + a.get("prefix"));
		int parallelism = Integer.parseInt(a.getOrDefault("parallelism", "2"));
		long lateness = Long.parseLong(a.getOrDefault("lateness-ms", "5000"));
		long checkpoint = Long.parseLong(a.getOrDefault("checkpoint-ms", "1000"));

		Configuration conf = new Configuration();
		conf.setString("restart-strategy.type", "none");   /* a failure ends the run */
		StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);
		if (checkpoint > 0) {
			env.enableCheckpointing(checkpoint, CheckpointingMode.EXACTLY_ONCE);
			if (a.containsKey("checkpoint-dir"))
				env.getCheckpointConfig().setCheckpointStorage("file://" + a.get("checkpoint-dir"));
		}

		KafkaSource<Txn> txnSource = KafkaSource.<Txn>builder().setBootstrapServers(bootstrap)
			.setTopics(a.get("topic")).setGroupId(group)
			.setStartingOffsets(OffsetsInitializer.earliest()).setBounded(OffsetsInitializer.latest())
			.setDeserializer(new TxnFormat(a.get("registry"), Files.readString(Path.of(a.get("schema")))))
			.setProperty("isolation.level", "read_committed").build();
		DataStream<Txn> txns = env.fromSource(txnSource,
			WatermarkStrategy.<Txn>forBoundedOutOfOrderness(Duration.ofMillis(lateness))
				.withTimestampAssigner((t, ts) -> t.eventTime), "transactions");
		WatermarkStrategy<Version> byCommit = WatermarkStrategy.<Version>forMonotonousTimestamps()
			.withTimestampAssigner((v, ts) -> v.validFrom);
		DataStream<Version> users = env.fromSource(cdc(bootstrap,
			a.getOrDefault("users-topic", "strata.public.users"), group), byCommit, "users");
		DataStream<Version> merchants = env.fromSource(cdc(bootstrap,
			a.getOrDefault("merchants-topic", "strata.public.merchants"), group), byCommit, "merchants");

		txns.keyBy(t -> t.merchantId).connect(merchants.keyBy(v -> v.id))
			.process(new MerchantJoin()).name("merchant as of")
			.keyBy(t -> t.userId).connect(users.keyBy(v -> v.id))
			.process(new UserFeatures()).name("user as of, windows")
			.addSink(new RedisSink(Integer.parseInt(a.get("redis-port")), a.get("prefix"))).name("redis");

		long t0 = System.nanoTime();
		JobExecutionResult r = env.execute("strata fraud features, Flink peer");
		long t1 = System.nanoTime();
		long cpu = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
			.getProcessCpuTime();
		long span = LAST_NS.get() - FIRST_NS.get();
		System.out.printf("{\"events\": %d, \"bad\": %d, \"written\": %d, \"execute_s\": %.3f, "
			+ "\"net_runtime_s\": %.3f, \"span_s\": %.3f, \"process_cpu_s\": %.3f, "
			+ "\"jvm_uptime_s\": %.3f, \"parallelism\": %d}%n",
			DECODED.get(), BAD.get(), WRITTEN.get(), (t1 - t0) / 1e9, r.getNetRuntime() / 1e3,
			span / 1e9, cpu / 1e9, ManagementFactory.getRuntimeMXBean().getUptime() / 1e3, parallelism);
	}
}
