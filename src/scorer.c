/* scorer.c -- ONNX Runtime (C API) behind st_scorer_*. */
#include "scorer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <onnxruntime_c_api.h>

#include "error.h"
#include "log.h"

/* Output ranks: candidates for the score, best first. */
enum {
	OUT_PROBA_NAMED,   /* "probabilities" float [N, 2] */
	OUT_PROBA,         /* float [N, 2] */
	OUT_SINGLE,        /* float [N] or [N, 1] */
	OUT_NONE
};

/* Tensors over the scorer's buffers for one batch size. */
typedef struct {
	size_t rows;             /* 0: unused */
	uint64_t stamp;          /* last use, for eviction */
	OrtValue *in, *out;
} shape_t;

struct st_scorer {
	int64_t version;        /* the model's model_version */
	const OrtApi *api;
	OrtSession *session;
	OrtMemoryInfo *mem;
	char *path;
	char *input_name, *output_name;
	size_t nf;               /* F */
	size_t out_rank;         /* 1 or 2 */
	size_t out_cols;         /* 2: column 1 is the score; 1 */
	char *names_buf;         /* metadata names, NUL-separated */
	char **names;            /* F pointers into names_buf, or NULL */
	uint32_t *hmap;          /* name -> column + 1, open addressing */
	size_t hcap;             /* power of two, >= 2 F */
	float *in_buf, *out_buf; /* cap * nf, cap * out_cols */
	size_t cap;              /* rows */
	shape_t shapes[ST_SCORER_SHAPES];
	uint64_t clock;
	int env_held;
};

/* The process-wide environment. */
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
static OrtEnv *env;
static unsigned env_refs;

static void ort_log(void *param, OrtLoggingLevel severity,
		    const char *category, const char *logid,
		    const char *code_location, const char *message)
{
	int level;

	(void)param;
	(void)category;
	(void)logid;
	(void)code_location;
	if (severity >= ORT_LOGGING_LEVEL_ERROR)
		level = ST_LOG_ERR;
	else if (severity == ORT_LOGGING_LEVEL_WARNING)
		level = ST_LOG_WARNING;
	else if (severity == ORT_LOGGING_LEVEL_INFO)
		level = ST_LOG_INFO;
	else
		level = ST_LOG_DEBUG;
	st_log(level, "onnxruntime", "%s", message);
}

/* Formats an ORT error into errstr as ST_EMODEL and releases it. */
static int ort_fail(const OrtApi *api, OrtStatus *status, char *errstr,
		    size_t errstr_size, const char *path, const char *what)
{
	int err = st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: %s: %s",
			    path, what, api->GetErrorMessage(status));

	api->ReleaseStatus(status);
	return err;
}

static int env_acquire(const OrtApi **apip, const char *path, char *errstr,
		       size_t errstr_size)
{
	const OrtApi *api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
	OrtStatus *status;
	int err = 0;

	if (!api)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "ONNX Runtime library %s lacks C API version "
				 "%d (built with newer headers)", path,
				 OrtGetApiBase()->GetVersionString(),
				 ORT_API_VERSION);
	pthread_mutex_lock(&env_lock);
	if (!env_refs) {
		status = api->CreateEnvWithCustomLogger(ort_log, NULL,
			ORT_LOGGING_LEVEL_WARNING, "strata", &env);
		if (status)
			err = ort_fail(api, status, errstr, errstr_size, path,
				       "cannot create the ONNX Runtime "
				       "environment");
	}
	if (!err)
		env_refs++;
	pthread_mutex_unlock(&env_lock);
	*apip = api;
	return err;
}

/* AllocatorFree() returns a status for form's sake. */
static void ort_free(const OrtApi *api, OrtAllocator *alloc, void *p)
{
	OrtStatus *status = api->AllocatorFree(alloc, p);

	if (status)
		api->ReleaseStatus(status);
}

static void env_release(const OrtApi *api)
{
	pthread_mutex_lock(&env_lock);
	if (!--env_refs) {
		api->ReleaseEnv(env);
		env = NULL;
	}
	pthread_mutex_unlock(&env_lock);
}

static const char *elem_name(ONNXTensorElementDataType t)
{
	switch (t) {
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
	case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return "string";
	default: return "an unsupported element type";
	}
}

static const char *kind_name(enum ONNXType t)
{
	switch (t) {
	case ONNX_TYPE_SEQUENCE: return "a sequence";
	case ONNX_TYPE_MAP: return "a map";
	case ONNX_TYPE_OPTIONAL: return "an optional";
	case ONNX_TYPE_SPARSETENSOR: return "a sparse tensor";
	default: return "not a tensor";
	}
}

/* A value's description: "float32 [?, 2]", "a sequence". */
typedef struct {
	enum ONNXType kind;
	ONNXTensorElementDataType elem;
	size_t rank;
	int64_t dims[4];         /* the first four */
} vinfo_t;

static void vinfo_text(const vinfo_t *v, char *buf, size_t size)
{
	size_t n;

	if (v->kind != ONNX_TYPE_TENSOR) {
		snprintf(buf, size, "%s", kind_name(v->kind));
		return;
	}
	n = (size_t)snprintf(buf, size, "%s [", elem_name(v->elem));
	for (size_t i = 0; i < v->rank && i < 4 && n < size; i++) {
		if (v->dims[i] < 0)
			n += (size_t)snprintf(buf + n, size - n, "%s?",
					      i ? ", " : "");
		else
			n += (size_t)snprintf(buf + n, size - n, "%s%lld",
					      i ? ", " : "",
					      (long long)v->dims[i]);
	}
	if (n < size)
		snprintf(buf + n, size - n, "%s]", v->rank > 4 ? ", ..." : "");
}

/* Reads the type of input (output = 0) or output (1) i. */
static int value_info(st_scorer_t *s, int output, size_t i, vinfo_t *v,
		      char *errstr, size_t errstr_size)
{
	const OrtApi *api = s->api;
	const OrtTensorTypeAndShapeInfo *tt;
	OrtTypeInfo *ti = NULL;
	OrtStatus *status;
	int64_t dims[64];

	memset(v, 0, sizeof(*v));
	status = output ? api->SessionGetOutputTypeInfo(s->session, i, &ti) :
			  api->SessionGetInputTypeInfo(s->session, i, &ti);
	if (!status)
		status = api->GetOnnxTypeFromTypeInfo(ti, &v->kind);
	if (!status && v->kind == ONNX_TYPE_TENSOR)
		status = api->CastTypeInfoToTensorInfo(ti, &tt);
	if (!status && v->kind == ONNX_TYPE_TENSOR)
		status = api->GetTensorElementType(tt, &v->elem);
	if (!status && v->kind == ONNX_TYPE_TENSOR)
		status = api->GetDimensionsCount(tt, &v->rank);
	if (!status && v->kind == ONNX_TYPE_TENSOR && v->rank <= 64) {
		status = api->GetDimensions(tt, dims, v->rank);
		if (!status)
			memcpy(v->dims, dims, (v->rank < 4 ? v->rank : 4) *
			       sizeof(dims[0]));
	}
	if (ti)
		api->ReleaseTypeInfo(ti);
	if (status)
		return ort_fail(api, status, errstr, errstr_size, s->path,
				output ? "cannot read an output's type" :
					 "cannot read the input's type");
	return 0;
}

/* Copies the name of input (output = 0) or output (1) i into *namep. */
static int value_name(st_scorer_t *s, OrtAllocator *alloc, int output,
		      size_t i, char **namep, char *errstr,
		      size_t errstr_size)
{
	const OrtApi *api = s->api;
	OrtStatus *status;
	char *name = NULL;

	status = output ? api->SessionGetOutputName(s->session, i, alloc,
						   &name) :
			  api->SessionGetInputName(s->session, i, alloc, &name);
	if (status)
		return ort_fail(api, status, errstr, errstr_size, s->path,
				"cannot read a name");
	*namep = strdup(name);
	ort_free(api, alloc, name);
	return *namep ? 0 : ST_ENOMEM;
}

static int check_input(st_scorer_t *s, OrtAllocator *alloc, char *errstr,
		       size_t errstr_size)
{
	const OrtApi *api = s->api;
	OrtStatus *status;
	char desc[96];
	vinfo_t v;
	size_t n;
	int err;

	if ((status = api->SessionGetInputCount(s->session, &n)))
		return ort_fail(api, status, errstr, errstr_size, s->path,
				"cannot count the inputs");
	if (n != 1)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "has %zu inputs; strata feeds one, a float32 "
				 "tensor [N, F]", s->path, n);
	if ((err = value_name(s, alloc, 0, 0, &s->input_name, errstr,
			      errstr_size)) ||
	    (err = value_info(s, 0, 0, &v, errstr, errstr_size)))
		return err;
	vinfo_text(&v, desc, sizeof(desc));
	if (v.kind != ONNX_TYPE_TENSOR ||
	    v.elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || v.rank != 2)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "input '%s' is %s, not a float32 tensor "
				 "[N, F]", s->path, s->input_name, desc);
	if (v.dims[1] <= 0)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "input '%s' is %s: the number of features F "
				 "(dimension 1) must be fixed", s->path,
				 s->input_name, desc);
	if (v.dims[0] >= 0)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "input '%s' is %s: the batch dimension is "
				 "fixed; export the model with a dynamic batch "
				 "axis", s->path, s->input_name, desc);
	s->nf = (size_t)v.dims[1];
	return 0;
}

static int output_rank(const vinfo_t *v, const char *name)
{
	if (v->kind != ONNX_TYPE_TENSOR ||
	    v->elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || v->rank < 1 ||
	    v->rank > 2 || v->dims[0] >= 0)
		return OUT_NONE;
	if (v->rank == 2 && v->dims[1] == 2)
		return strcmp(name, "probabilities") ? OUT_PROBA :
						      OUT_PROBA_NAMED;
	if (v->rank == 1 || v->dims[1] == 1)
		return OUT_SINGLE;
	return OUT_NONE;
}

static int pick_output(st_scorer_t *s, OrtAllocator *alloc, char *errstr,
		       size_t errstr_size)
{
	const OrtApi *api = s->api;
	OrtStatus *status;
	char seen[512], desc[96], *name;
	int best = OUT_NONE, zipmap = 0, err;
	size_t n, len = 0;
	vinfo_t v;

	if ((status = api->SessionGetOutputCount(s->session, &n)))
		return ort_fail(api, status, errstr, errstr_size, s->path,
				"cannot count the outputs");
	seen[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int r;

		if ((err = value_name(s, alloc, 1, i, &name, errstr,
				      errstr_size)))
			return err;
		if ((err = value_info(s, 1, i, &v, errstr, errstr_size))) {
			free(name);
			return err;
		}
		r = output_rank(&v, name);
		if (r < best) {
			best = r;
			free(s->output_name);
			s->output_name = name;
			s->out_rank = v.rank;
			s->out_cols = r == OUT_SINGLE ? 1 : 2;
		} else {
			vinfo_text(&v, desc, sizeof(desc));
			if (len < sizeof(seen))
				len += (size_t)snprintf(seen + len,
							sizeof(seen) - len,
							"%s'%s' %s",
							i ? ", " : "", name,
							desc);
			zipmap |= v.kind == ONNX_TYPE_SEQUENCE;
			free(name);
		}
	}
	if (best == OUT_NONE)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "no output to read a score from (a float32 "
				 "tensor [N, 2], column 1 read, or [N] or "
				 "[N, 1]); its outputs: %s%s", s->path,
				 n ? seen : "none",
				 zipmap ? " (a ZipMap: export the "
				 "classifier with skl2onnx option zipmap="
				 "False)" : "");
	return 0;
}

static uint64_t name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325u;

	while (*name)
		h = (h ^ (unsigned char)*name++) * 0x100000001b3u;
	return h;
}

/* The column of a feature name, or -1. */
static long name_column(const st_scorer_t *s, const char *name)
{
	size_t j = name_hash(name) & (s->hcap - 1);

	while (s->hmap[j]) {
		size_t c = s->hmap[j] - 1;

		if (!strcmp(s->names[c], name))
			return (long)c;
		j = (j + 1) & (s->hcap - 1);
	}
	return -1;
}

/* Splits the metadata list into s->names and indexes them. */
static int parse_names(st_scorer_t *s, const char *list, char *errstr,
		       size_t errstr_size)
{
	size_t count = 1, i = 0;
	char *p, *name, *end;

	for (const char *c = list; *c; c++)
		count += *c == ',';
	if (count != s->nf)
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "metadata %s names %zu features, input '%s' "
				 "has %zu columns", s->path,
				 ST_SCORER_META_FEATURES, count,
				 s->input_name, s->nf);
	for (s->hcap = 8; s->hcap < 2 * s->nf; s->hcap *= 2)
		;
	if (!(s->names_buf = strdup(list)) ||
	    !(s->names = calloc(s->nf, sizeof(*s->names))) ||
	    !(s->hmap = calloc(s->hcap, sizeof(*s->hmap))))
		return ST_ENOMEM;
	for (p = s->names_buf; i < s->nf; i++) {
		size_t j;

		name = p;
		p += strcspn(p, ",");
		if (*p)
			*p++ = '\0';
		while (*name == ' ' || *name == '\t')
			name++;
		end = name + strlen(name);
		while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*name)
			return st_seterr(errstr, errstr_size, ST_EMODEL,
					 "model %s: metadata %s: feature %zu "
					 "has an empty name", s->path,
					 ST_SCORER_META_FEATURES, i);
		if (name_column(s, name) >= 0)
			return st_seterr(errstr, errstr_size, ST_EMODEL,
					 "model %s: metadata %s: '%s' comes "
					 "twice", s->path,
					 ST_SCORER_META_FEATURES, name);
		s->names[i] = name;
		for (j = name_hash(name) & (s->hcap - 1); s->hmap[j];
		     j = (j + 1) & (s->hcap - 1))
			;
		s->hmap[j] = (uint32_t)i + 1;
	}
	return 0;
}

static int read_metadata(st_scorer_t *s, OrtAllocator *alloc, char *errstr,
			 size_t errstr_size)
{
	const OrtApi *api = s->api;
	OrtModelMetadata *md = NULL;
	OrtStatus *status;
	char *list = NULL;
	int err = 0;

	status = api->SessionGetModelMetadata(s->session, &md);
	if (!status)
		status = api->ModelMetadataGetVersion(md, &s->version);
	if (!status)
		status = api->ModelMetadataLookupCustomMetadataMap(md, alloc,
			ST_SCORER_META_FEATURES, &list);
	if (status)
		err = ort_fail(api, status, errstr, errstr_size, s->path,
			       "cannot read the metadata");
	else if (list)
		err = parse_names(s, list, errstr, errstr_size);
	if (list)
		ort_free(api, alloc, list);
	if (md)
		api->ReleaseModelMetadata(md);
	return err;
}

/* Fails with a clear message when the file cannot be read at all. */
static int check_file(const char *path, char *errstr, size_t errstr_size)
{
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return st_seterr(errstr, errstr_size, ST_EMODEL,
				 "model %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		close(fd);
		return st_seterr(errstr, errstr_size, ST_EMODEL,
				 "model %s: not a regular file", path);
	}
	close(fd);
	return 0;
}

int st_scorer_new(st_scorer_t **sp, const char *model_path,
		  int intra_threads, char *errstr, size_t errstr_size)
{
	OrtSessionOptions *opts = NULL;
	OrtAllocator *alloc;
	OrtStatus *status;
	const OrtApi *api;
	st_scorer_t *s;
	int err;

	if (!sp || !model_path || !*model_path)
		return st_seterr(errstr, errstr_size, ST_EINVAL,
				 "no model path");
	*sp = NULL;
	if ((err = check_file(model_path, errstr, errstr_size)))
		return err;
	if (!(s = calloc(1, sizeof(*s))) ||
	    !(s->path = strdup(model_path))) {
		free(s);
		return st_seterr(errstr, errstr_size, ST_ENOMEM,
				 "out of memory");
	}
	if ((err = env_acquire(&s->api, model_path, errstr, errstr_size)))
		goto out;
	s->env_held = 1;
	api = s->api;
	status = api->CreateSessionOptions(&opts);
	if (!status)
		status = api->SetIntraOpNumThreads(opts, intra_threads > 0 ?
						   intra_threads : 1);
	if (!status)
		status = api->SetInterOpNumThreads(opts, 1);
	if (!status)
		status = api->SetSessionExecutionMode(opts, ORT_SEQUENTIAL);
	if (!status)
		status = api->SetSessionGraphOptimizationLevel(opts,
							       ORT_ENABLE_ALL);
	if (status) {
		err = ort_fail(api, status, errstr, errstr_size, model_path,
			       "cannot set the session options");
		goto out;
	}
	if ((status = api->CreateSession(env, model_path, opts,
					 &s->session))) {
		err = ort_fail(api, status, errstr, errstr_size, model_path,
			       "cannot load");
		goto out;
	}
	if ((status = api->GetAllocatorWithDefaultOptions(&alloc)) ||
	    (status = api->CreateCpuMemoryInfo(OrtDeviceAllocator,
					       OrtMemTypeDefault, &s->mem))) {
		err = ort_fail(api, status, errstr, errstr_size, model_path,
			       "cannot get the CPU allocator");
		goto out;
	}
	if (!(err = check_input(s, alloc, errstr, errstr_size)) &&
	    !(err = pick_output(s, alloc, errstr, errstr_size)))
		err = read_metadata(s, alloc, errstr, errstr_size);
out:
	if (opts)
		s->api->ReleaseSessionOptions(opts);
	if (err) {
		if (err == ST_ENOMEM)
			st_seterr(errstr, errstr_size, err, "model %s: out of "
				  "memory", model_path);
		st_scorer_destroy(s);
		return err;
	}
	*sp = s;
	return 0;
}

size_t st_scorer_nfeatures(const st_scorer_t *s)
{
	return s->nf;
}

const char *st_scorer_feature(const st_scorer_t *s, size_t i)
{
	return s->names && i < s->nf ? s->names[i] : NULL;
}

const char *st_scorer_input_name(const st_scorer_t *s)
{
	return s->input_name;
}

const char *st_scorer_output_name(const st_scorer_t *s)
{
	return s->output_name;
}

static void shape_release(st_scorer_t *s, shape_t *sh)
{
	if (sh->in)
		s->api->ReleaseValue(sh->in);
	if (sh->out)
		s->api->ReleaseValue(sh->out);
	memset(sh, 0, sizeof(*sh));
}

/* Makes room for n rows: every tensor points into the old buffers, so
 * they all go. */
static int grow(st_scorer_t *s, size_t n)
{
	size_t cap = s->cap * 2;

	if (cap < n)
		cap = n;
	if (cap > ST_SCORER_BATCH_MAX)
		cap = ST_SCORER_BATCH_MAX;
	for (size_t i = 0; i < ST_SCORER_SHAPES; i++)
		shape_release(s, &s->shapes[i]);
	free(s->in_buf);
	free(s->out_buf);
	s->in_buf = malloc(cap * s->nf * sizeof(float));
	s->out_buf = malloc(cap * s->out_cols * sizeof(float));
	if (!s->in_buf || !s->out_buf) {
		free(s->in_buf);
		free(s->out_buf);
		s->in_buf = s->out_buf = NULL;
		s->cap = 0;
		return ST_ENOMEM;
	}
	s->cap = cap;
	return 0;
}

/* The tensors for a batch of n rows, made on first use. */
static int shape_get(st_scorer_t *s, size_t n, shape_t **shp, char *errstr,
		     size_t errstr_size)
{
	const OrtApi *api = s->api;
	int64_t in_dims[2] = { (int64_t)n, (int64_t)s->nf };
	int64_t out_dims[2] = { (int64_t)n, (int64_t)s->out_cols };
	OrtStatus *status;
	shape_t *sh = &s->shapes[0];
	int err;

	for (size_t i = 0; i < ST_SCORER_SHAPES; i++) {
		if (s->shapes[i].rows == n) {
			sh = &s->shapes[i];
			goto out;
		}
		if (s->shapes[i].stamp < sh->stamp)
			sh = &s->shapes[i];
	}
	if (n > s->cap && (err = grow(s, n)))
		return st_seterr(errstr, errstr_size, err, "model %s: out of "
				 "memory for a batch of %zu rows", s->path, n);
	shape_release(s, sh);
	status = api->CreateTensorWithDataAsOrtValue(s->mem, s->in_buf,
		n * s->nf * sizeof(float), in_dims, 2,
		ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &sh->in);
	if (!status)
		status = api->CreateTensorWithDataAsOrtValue(s->mem,
			s->out_buf, n * s->out_cols * sizeof(float), out_dims,
			s->out_rank, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
			&sh->out);
	if (status) {
		shape_release(s, sh);
		return ort_fail(api, status, errstr, errstr_size, s->path,
				"cannot create a tensor");
	}
	sh->rows = n;
out:
	sh->stamp = ++s->clock;
	*shp = sh;
	return 0;
}

static int run(st_scorer_t *s, const float *rows, size_t n, float *scores,
	       char *errstr, size_t errstr_size)
{
	const OrtApi *api = s->api;
	const char *in_name = s->input_name, *out_name = s->output_name;
	OrtStatus *status;
	shape_t *sh = NULL;
	OrtValue *out;
	int err;

	if ((err = shape_get(s, n, &sh, errstr, errstr_size)))
		return err;
	memcpy(s->in_buf, rows, n * s->nf * sizeof(float));
	out = sh->out;
	status = api->Run(s->session, NULL, &in_name,
			  (const OrtValue *const *)&sh->in, 1, &out_name, 1,
			  &out);
	if (status) {
		char what[64];

		snprintf(what, sizeof(what), "run of %zu rows failed", n);
		return ort_fail(api, status, errstr, errstr_size, s->path,
				what);
	}
	/* A pre-allocated output is written in place. */
	if (out != sh->out) {
		api->ReleaseValue(out);
		return st_seterr(errstr, errstr_size, ST_EMODEL, "model %s: "
				 "output '%s' was not written in place",
				 s->path, s->output_name);
	}
	if (s->out_cols == 2)
		for (size_t i = 0; i < n; i++)
			scores[i] = s->out_buf[2 * i + 1];
	else
		memcpy(scores, s->out_buf, n * sizeof(float));
	return 0;
}

int st_scorer_score(st_scorer_t *s, const float *rows, size_t nrows,
		    float *scores, char *errstr, size_t errstr_size)
{
	int err;

	if (!s || !rows || !scores || !nrows)
		return st_seterr(errstr, errstr_size, ST_EINVAL, "scoring "
				 "needs rows, room for the scores and nrows "
				 ">= 1");
	while (nrows) {
		size_t n = nrows < ST_SCORER_BATCH_MAX ? nrows :
							 ST_SCORER_BATCH_MAX;

		if ((err = run(s, rows, n, scores, errstr, errstr_size)))
			return err;
		rows += n * s->nf;
		scores += n;
		nrows -= n;
	}
	return 0;
}

/* Exact powers of ten as doubles. */
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
	1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* Plain decimals ("-12.375") without strtod: digits as an integer m <=
 * 2^53 and k <= 22 decimals give m / 10^k, both exact doubles, so one
 * correctly rounded division is what strtod returns (Clinger's fast
 * path). Returns 0 for anything else, left to strtod. */
static int parse_plain(const char *p, double *d)
{
	int neg = 0, digits = 0, k = 0;
	uint64_t m = 0;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	for (; *p >= '0' && *p <= '9'; p++, digits++)
		m = m * 10 + (uint64_t)(*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, digits++, k++)
			m = m * 10 + (uint64_t)(*p - '0');
	if (*p || !digits || digits > 19 || k > 22 || m > (1ULL << 53))
		return 0;
	*d = (double)m / pow10_exact[k];
	if (neg)
		*d = -*d;
	return 1;
}

/* A field value as the model's float: NaN unless all of it is a number.
 * Rounds like a C cast, with overflow to infinity spelled out (the cast
 * of an out-of-range double is undefined behaviour in C). */
static float parse_value(const char *v)
{
	char *end;
	double d;

	if (!v || !*v)
		return NAN;
	if (!parse_plain(v, &d)) {
		d = strtod(v, &end);
		if (end == v || *end)
			return NAN;
	}
	if (fabs(d) >= 0x1.ffffffp127)   /* FLT_MAX + half an ulp */
		return d > 0 ? INFINITY : -INFINITY;
	return (float)d;
}

int st_scorer_row_from_fields(const st_scorer_t *s, size_t nfields,
			      const char *const *names,
			      const char *const *values, float *row)
{
	int count = 0;

	if (!s || !s->names || !row || (nfields && (!names || !values)))
		return ST_EINVAL;
	for (size_t j = 0; j < s->nf; j++)
		row[j] = NAN;
	for (size_t i = 0; i < nfields; i++) {
		long c;

		if (names[i] && (c = name_column(s, names[i])) >= 0)
			row[c] = parse_value(values[i]);
	}
	for (size_t j = 0; j < s->nf; j++)
		count += !isnan(row[j]);
	return count;
}

void st_scorer_destroy(st_scorer_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < ST_SCORER_SHAPES; i++)
		shape_release(s, &s->shapes[i]);
	if (s->session)
		s->api->ReleaseSession(s->session);
	if (s->mem)
		s->api->ReleaseMemoryInfo(s->mem);
	if (s->env_held)
		env_release(s->api);
	free(s->in_buf);
	free(s->out_buf);
	free(s->hmap);
	free(s->names);
	free(s->names_buf);
	free(s->input_name);
	free(s->output_name);
	free(s->path);
	free(s);
}

int64_t st_scorer_version(const st_scorer_t *s)
{
	return s->version;
}
