/*
 * bench_scorer.c -- st_scorer_score() against a bare ONNX Runtime Run on
 * pre-made tensors, in the same run, on the same model; and the cost of
 * st_scorer_row_from_fields() per row.
 *
 * For each batch size: ns per row through st_scorer_score() (copy of the
 * rows into the scorer's buffer, Run, column 1 copied out) and through a
 * second session of the same model, with the same options, whose input
 * tensors are made in advance over the rows themselves and whose output
 * tensor is pre-allocated (Run alone). Both cycle over the same POOL rows.
 * ROUNDS rounds alternate the two; times are summed over the rounds.
 * row_from_fields: hashes of 18 fields as strata writes them to Redis (the
 * model's features as "%.9g" text, in shuffled order, plus _event_time,
 * _seq, _stale_join and a string feature the model does not read).
 *
 * usage: bench_scorer [-m MODEL] [-r REFERENCE_JSON] [-n ROWS]
 *                     [-b BATCH[,BATCH...]] [-t INTRA_THREADS] [-w]
 * Defaults: the example fraud model, trained by
 * examples/train_fraud_model.py of the source tree ($top_srcdir, ".", or
 * the program's ../ or ../../) with $PYTHON, else the tree's
 * .stack/venv/bin/python, else python3, into a temporary directory that
 * is removed after; its reference rows, perturbed, as input (without -r a
 * model given with -m gets uniform random rows in [0, 100)); 200,000 rows
 * per batch size and kind; batches 1,8,16,32,64,128,256; 1 intra-op
 * thread; times in CPU time of the benchmark's thread (-w: wall time).
 */
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <onnxruntime_c_api.h>

#include "error.h"
#include "scorer.h"

#define POOL 4096          /* rows cycled through; a multiple of batches */
#define ROUNDS 5
#define BATCHES_MAX 16
#define HASH_FIELDS_EXTRA 4
#define HASHES 64          /* one batch of HGETALL replies, hot in cache */

static const OrtApi *ort;
static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what, const char *errstr)
{
	fprintf(stderr, "bench_scorer: %s: %s\n", what, errstr);
	exit(1);
}

static void ort_check(OrtStatus *status, const char *what)
{
	if (status)
		die(what, ort->GetErrorMessage(status));
}

/* Time spent: CPU time of this thread (the default, robust on a busy
 * machine; with one intra-op thread all of the work runs on it) or wall
 * time (-w; needed with -t > 1, whose pool threads this one does not
 * see). */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs argv with stdout sent to stderr; dies unless it exits 0. */
static void run_cmd(char *const *argv)
{
	int status;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) < 0)
		die("fork", "failed");
	if (!pid) {
		dup2(2, 1);
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		die(argv[0], "training the example model failed");
}

/* The source tree: $top_srcdir, ".", or up from the program (bench/ in
 * the tree, or a build directory inside it). */
static const char *find_top(const char *argv0)
{
	static char top[512];
	const char *env_top = getenv("top_srcdir");
	char dir[400], probe[600], *slash;

	snprintf(dir, sizeof(dir), "%s", argv0);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	for (int i = 0; i < 4; i++) {
		if (i == 0 && !env_top)
			continue;
		snprintf(top, sizeof(top), "%s", i == 0 ? env_top :
			 i == 1 ? "." : dir);
		if (i == 2)
			strcat(top, "/..");
		if (i == 3)
			strcat(top, "/../..");
		snprintf(probe, sizeof(probe), "%s/examples/train_fraud_model.py",
			 top);
		if (!access(probe, R_OK))
			return top;
	}
	die("examples/train_fraud_model.py", "not found: set top_srcdir or "
	    "give a model with -m");
	return NULL;
}

/* Trains the example model into dir; returns the python used. */
static const char *train(const char *top, const char *dir, char *model,
			 char *ref, size_t size)
{
	static char python[600], script[600];
	const char *py = getenv("PYTHON");

	snprintf(python, sizeof(python), "%s/.stack/venv/bin/python", top);
	if (py && *py)
		snprintf(python, sizeof(python), "%s", py);
	else if (access(python, X_OK))
		snprintf(python, sizeof(python), "python3");
	snprintf(script, sizeof(script), "%s/examples/train_fraud_model.py",
		 top);
	snprintf(model, size, "%s/fraud_model.onnx", dir);
	snprintf(ref, size, "%s/fraud_model.json", dir);
	{
		char *argv[] = { python, script, "--out", model,
				 "--reference", ref, NULL };

		run_cmd(argv);
	}
	return python;
}

/* Fills pool (POOL x nf) from the reference rows, each value scaled by a
 * factor in [0.8, 1.2] so that the rows are not 64 repeated ones; or
 * uniform in [0, 100) without a reference. */
static void fill_pool(float *pool, size_t nf, const char *ref)
{
	json_t *j = NULL, *rows = NULL;
	json_error_t jerr;
	size_t nref = 0;

	if (ref) {
		if (!(j = json_load_file(ref, 0, &jerr)))
			die(ref, jerr.text);
		rows = json_object_get(j, "rows");
		nref = json_array_size(rows);
		if (!nref || json_array_size(json_array_get(rows, 0)) != nf)
			die(ref, "rows do not match the model's input");
	}
	for (size_t i = 0; i < POOL; i++)
		for (size_t k = 0; k < nf; k++) {
			double u = ldexp((double)(next_rand() >> 11), -53);
			json_t *v;

			if (!nref) {
				pool[i * nf + k] = (float)(u * 100.0);
				continue;
			}
			v = json_array_get(json_array_get(rows, i % nref), k);
			pool[i * nf + k] = (float)(json_number_value(v) *
						   (0.8 + 0.4 * u));
		}
	json_decref(j);
}

/* The bare session: same model, same options as st_scorer_new(). */
typedef struct {
	OrtEnv *env;
	OrtSession *session;
	OrtMemoryInfo *mem;
	const char *in_name, *out_name;
	size_t out_rank, out_cols;
} bare_t;

static void bare_open(bare_t *b, const char *model, int threads,
		      const char *in_name, const char *out_name)
{
	OrtSessionOptions *o;
	OrtTypeInfo *ti;
	const OrtTensorTypeAndShapeInfo *tt;
	int64_t dims[2] = { 0, 1 };
	size_t n;

	ort_check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "bench", &b->env),
		  "CreateEnv");
	ort_check(ort->CreateSessionOptions(&o), "CreateSessionOptions");
	ort_check(ort->SetIntraOpNumThreads(o, threads), "threads");
	ort_check(ort->SetInterOpNumThreads(o, 1), "threads");
	ort_check(ort->SetSessionExecutionMode(o, ORT_SEQUENTIAL), "mode");
	ort_check(ort->SetSessionGraphOptimizationLevel(o, ORT_ENABLE_ALL),
		  "optimization level");
	ort_check(ort->CreateSession(b->env, model, o, &b->session), model);
	ort->ReleaseSessionOptions(o);
	ort_check(ort->CreateCpuMemoryInfo(OrtDeviceAllocator,
					   OrtMemTypeDefault, &b->mem),
		  "memory info");
	b->in_name = in_name;
	b->out_name = out_name;
	ort_check(ort->SessionGetOutputCount(b->session, &n), "outputs");
	for (size_t i = 0; i < n; i++) {
		OrtAllocator *a;
		char *name;
		int match;

		ort_check(ort->GetAllocatorWithDefaultOptions(&a), "allocator");
		ort_check(ort->SessionGetOutputName(b->session, i, a, &name),
			  "output name");
		match = !strcmp(name, out_name);
		ort_check(ort->AllocatorFree(a, name), "free");
		if (!match)
			continue;
		ort_check(ort->SessionGetOutputTypeInfo(b->session, i, &ti),
			  "output type");
		ort_check(ort->CastTypeInfoToTensorInfo(ti, &tt), "output");
		ort_check(ort->GetDimensionsCount(tt, &b->out_rank), "rank");
		ort_check(ort->GetDimensions(tt, dims, b->out_rank), "dims");
		ort->ReleaseTypeInfo(ti);
	}
	b->out_cols = b->out_rank == 2 ? (size_t)dims[1] : 1;
}

static void bare_close(bare_t *b)
{
	ort->ReleaseMemoryInfo(b->mem);
	ort->ReleaseSession(b->session);
	ort->ReleaseEnv(b->env);
}

static OrtValue *tensor(const bare_t *b, float *data, size_t rows,
			size_t cols, size_t rank)
{
	int64_t dims[2] = { (int64_t)rows, (int64_t)cols };
	OrtValue *v = NULL;

	ort_check(ort->CreateTensorWithDataAsOrtValue(b->mem, data,
		rows * cols * sizeof(float), dims, rank,
		ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &v), "tensor");
	return v;
}

/* Times `iters` batches of `batch` rows; returns the elapsed ns. */
static double time_scorer(st_scorer_t *s, const float *pool, size_t nf,
			  size_t batch, size_t iters, float *scores)
{
	char errstr[512];
	double t0 = now_ns();

	for (size_t i = 0; i < iters; i++) {
		size_t off = (i * batch) % POOL;

		if (st_scorer_score(s, pool + off * nf, batch, scores, errstr,
				    sizeof(errstr)))
			die("score", errstr);
	}
	return now_ns() - t0;
}

static double time_bare(const bare_t *b, OrtValue *const *inputs,
			OrtValue *out, size_t batch, size_t iters)
{
	double t0 = now_ns();

	for (size_t i = 0; i < iters; i++) {
		const OrtValue *in = inputs[(i * batch) % POOL / batch];
		OrtValue *o = out;

		ort_check(ort->Run(b->session, NULL, &b->in_name, &in, 1,
				   &b->out_name, 1, &o), "Run");
	}
	return now_ns() - t0;
}

/* One batch size: warm both, then ROUNDS alternating rounds. */
static void compare(st_scorer_t *s, const bare_t *b, float *pool,
		    size_t nf, size_t batch, uint64_t rows)
{
	size_t iters = (size_t)(rows / ROUNDS / batch), nin = POOL / batch;
	OrtValue **inputs = calloc(nin, sizeof(*inputs)), *out;
	float *scores = malloc(batch * sizeof(float));
	float *outbuf = malloc(batch * b->out_cols * sizeof(float));
	double t_st = 0, t_bare = 0, n;

	if (!inputs || !scores || !outbuf)
		die("malloc", "out of memory");
	if (!iters)
		iters = 1;
	for (size_t i = 0; i < nin; i++)
		inputs[i] = tensor(b, pool + i * batch * nf, batch, nf, 2);
	out = tensor(b, outbuf, batch, b->out_cols, b->out_rank);
	time_scorer(s, pool, nf, batch, nin, scores);
	time_bare(b, inputs, out, batch, nin);
	for (int r = 0; r < ROUNDS; r++) {
		if (r & 1) {
			t_bare += time_bare(b, inputs, out, batch, iters);
			t_st += time_scorer(s, pool, nf, batch, iters, scores);
		} else {
			t_st += time_scorer(s, pool, nf, batch, iters, scores);
			t_bare += time_bare(b, inputs, out, batch, iters);
		}
	}
	n = (double)(iters * batch * ROUNDS);
	printf("%5zu  %12.0f  %12.0f  %6.3f  %+9.0f  %10.0f\n", batch,
	       t_st / n, t_bare / n, t_bare / t_st, (t_st - t_bare) / n,
	       1e9 * n / t_st);
	for (size_t i = 0; i < nin; i++)
		ort->ReleaseValue(inputs[i]);
	ort->ReleaseValue(out);
	free(inputs);
	free(scores);
	free(outbuf);
}

/* A Redis hash as HGETALL returns it, for pool row i. */
typedef struct {
	const char **names;
	char **values;
} hash_t;

static void make_hash(st_scorer_t *s, const float *row, size_t nf,
		      hash_t *h)
{
	static const char *const extra_names[HASH_FIELDS_EXTRA] = {
		"_event_time", "_seq", "_stale_join", "user_segment"
	};
	static const char *const extra_values[HASH_FIELDS_EXTRA] = {
		"1700000000123", "1099511627776042", "0", "gold"
	};
	size_t n = nf + HASH_FIELDS_EXTRA;

	h->names = calloc(n, sizeof(*h->names));
	h->values = calloc(n, sizeof(*h->values));
	if (!h->names || !h->values)
		die("malloc", "out of memory");
	for (size_t k = 0; k < n; k++) {
		char buf[32];

		if (k < nf) {
			h->names[k] = st_scorer_feature(s, k);
			snprintf(buf, sizeof(buf), "%.9g", row[k]);
		} else {
			h->names[k] = extra_names[k - nf];
			snprintf(buf, sizeof(buf), "%s", extra_values[k - nf]);
		}
		if (!(h->values[k] = strdup(buf)))
			die("malloc", "out of memory");
	}
	for (size_t k = n - 1; k > 0; k--) {   /* Redis has no field order */
		size_t j = next_rand() % (k + 1);
		const char *tn = h->names[k];
		char *tv = h->values[k];

		h->names[k] = h->names[j];
		h->values[k] = h->values[j];
		h->names[j] = tn;
		h->values[j] = tv;
	}
}

static void bench_fields(st_scorer_t *s, const float *pool, size_t nf,
			 uint64_t rows)
{
	size_t n = nf + HASH_FIELDS_EXTRA;
	hash_t *h = calloc(HASHES, sizeof(*h));
	float *row = malloc(nf * sizeof(float));
	double t0, t = 0, sink = 0;

	if (!h || !row)
		die("malloc", "out of memory");
	for (size_t i = 0; i < HASHES; i++)
		make_hash(s, pool + i * nf, nf, &h[i]);
	for (int r = 0; r < ROUNDS + 1; r++) {
		t0 = now_ns();
		for (uint64_t i = 0; i < rows / ROUNDS; i++) {
			const hash_t *x = &h[i % HASHES];

			if (st_scorer_row_from_fields(s, n, x->names,
				(const char *const *)x->values, row) !=
			    (int)nf)
				die("row_from_fields", "a feature is missing");
			sink += row[i % nf];
		}
		if (r)          /* round 0 warms up */
			t += now_ns() - t0;
	}
	printf("row_from_fields: %.0f ns per row (%zu fields per hash, %zu "
	       "of them features, values \"%%.9g\", shuffled; checksum %g)\n",
	       t / (double)(rows / ROUNDS * ROUNDS), n, nf, sink);
	for (size_t i = 0; i < HASHES; i++) {
		for (size_t k = 0; k < n; k++)
			free(h[i].values[k]);
		free(h[i].names);
		free(h[i].values);
	}
	free(h);
	free(row);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[1024];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_scorer [-m MODEL] [-r REFERENCE_JSON] "
		"[-n ROWS] [-b BATCH[,BATCH...]] [-t INTRA_THREADS] [-w]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char model[512] = "", ref[512] = "", tmp[256] = "", errstr[512];
	char blist[256] = "1,8,16,32,64,128,256", cpu[128] = "?";
	size_t batches[BATCHES_MAX], nb = 0, nf;
	const char *python = NULL;
	uint64_t rows = 200000;
	int opt, threads = 1;
	st_scorer_t *s;
	float *pool;
	FILE *f;
	bare_t b;

	while ((opt = getopt(argc, argv, "m:r:n:b:t:w")) != -1) {
		switch (opt) {
		case 'm': snprintf(model, sizeof(model), "%s", optarg); break;
		case 'r': snprintf(ref, sizeof(ref), "%s", optarg); break;
		case 'n': rows = strtoull(optarg, NULL, 10); break;
		case 'b': snprintf(blist, sizeof(blist), "%s", optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'w': clock_id = CLOCK_MONOTONIC; break;
		default: usage();
		}
	}
	for (char *p = blist; *p && nb < BATCHES_MAX; nb++) {
		char *end;

		batches[nb] = strtoul(p, &end, 10);
		if (!batches[nb] || POOL % batches[nb] ||
		    (*end && *end != ','))
			die("-b", "batches divide 4096 (1, 2, 4, ... 4096)");
		p = *end ? end + 1 : end;
	}
	if (!nb || !rows || threads < 1)
		usage();
	ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
	if (!ort)
		die("onnxruntime", "C API version not supported");
	printf("command: bench_scorer -m %s%s%s -n %llu -b %s -t %d%s\n",
	       *model ? model : "(example, trained)", *ref ? " -r " : "",
	       ref, (unsigned long long)rows, blist, threads,
	       clock_id == CLOCK_MONOTONIC ? " -w" : "");
	if (!*model) {
		const char *top = find_top(argv[0]);

		snprintf(tmp, sizeof(tmp), "/tmp/bench_scorer_XXXXXX");
		if (!mkdtemp(tmp))
			die("mkdtemp", tmp);
		python = train(top, tmp, model, ref, sizeof(model));
		printf("model: trained with %s %s/examples/train_fraud_model.py "
		       "--out %s --reference %s\n", python, top, model, ref);
	}
	if ((f = fopen("/proc/cpuinfo", "r"))) {
		char line[256];

		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "model name", 10)) {
				char *c = strchr(line, ':');

				snprintf(cpu, sizeof(cpu), "%.120s",
					 c ? c + 2 : line);
				cpu[strcspn(cpu, "\n")] = '\0';
				break;
			}
		fclose(f);
	}
	if (st_scorer_new(&s, model, threads, errstr, sizeof(errstr)))
		die("load", errstr);
	nf = st_scorer_nfeatures(s);
	printf("onnxruntime %s, %s x %ld online, %zu features, input '%s', "
	       "output '%s', %d intra-op thread(s), %d rounds, %s time\n",
	       OrtGetApiBase()->GetVersionString(), cpu,
	       sysconf(_SC_NPROCESSORS_ONLN), nf, st_scorer_input_name(s),
	       st_scorer_output_name(s), threads, ROUNDS,
	       clock_id == CLOCK_MONOTONIC ? "wall" : "thread CPU");
	if (!(pool = malloc(POOL * nf * sizeof(float))))
		die("malloc", "out of memory");
	fill_pool(pool, nf, *ref ? ref : NULL);
	bare_open(&b, model, threads, st_scorer_input_name(s),
		  st_scorer_output_name(s));
	printf("batch  strata ns/row  bare ns/row  bare/strata  overhead  "
	       "strata rows/s\n");
	for (size_t i = 0; i < nb; i++)
		compare(s, &b, pool, nf, batches[i], rows);
	if (st_scorer_feature(s, 0))
		bench_fields(s, pool, nf, rows * 5);
	else
		printf("row_from_fields: the model has no %s metadata\n",
		       ST_SCORER_META_FEATURES);
	bare_close(&b);
	st_scorer_destroy(s);
	free(pool);
	if (*tmp)
		remove_dir(tmp);
	return 0;
}
