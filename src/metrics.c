/*
 * metrics.c -- the Prometheus registry: families in registration order,
 * each with its children (series) in the order they were added. One
 * mutex guards the shape (lists, names); the values are atomics updated
 * without it.
 */
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "metrics.h"

const double st_metrics_latency_buckets[ST_METRICS_LATENCY_BUCKETS_COUNT] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

const double st_metrics_size_buckets[ST_METRICS_SIZE_BUCKETS_COUNT] = {
	64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216
};

const double st_metrics_count_buckets[ST_METRICS_COUNT_BUCKETS_COUNT] = {
	1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

struct st_metrics_histogram {
	const double *bounds;     /* the family's */
	size_t nbounds;
	_Atomic uint64_t sum_bits;  /* double */
	_Atomic uint64_t counts[];  /* nbounds + 1, not cumulative */
};

typedef struct child {
	struct child *next;
	char *values[ST_METRICS_LABELS_MAX];
	st_metrics_fn_t fn;         /* non-NULL: computed at scrape time */
	void *opaque;
	st_metrics_counter_t counter;
	st_metrics_gauge_t gauge;
	st_metrics_histogram_t *hist;
} child_t;

struct st_metrics_family {
	st_metrics_family_t *next;
	st_metrics_t *m;
	st_metrics_type_t type;
	char *name;
	char *help;
	char *labels[ST_METRICS_LABELS_MAX];
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	child_t *children;
	child_t **tail;
};

struct st_metrics {
	pthread_mutex_t lock;
	st_metrics_family_t *families;
	st_metrics_family_t **tail;
};

/* A growing string with a sticky out-of-memory flag. */
typedef struct {
	char *p;
	size_t len;
	size_t cap;
	int oom;
} buf_t;

static void buf_grow(buf_t *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + n + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (!(p = realloc(b->p, cap))) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void buf_put(buf_t *b, const char *s, size_t n)
{
	buf_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(buf_t *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void buf_putc(buf_t *b, char c)
{
	buf_put(b, &c, 1);
}

/* Escapes backslash and newline, and double quote when quote is set. */
static void buf_escaped(buf_t *b, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quote)
			esc = "\\\"";
		if (!esc)
			continue;
		buf_put(b, run, (size_t)(s - run));
		buf_puts(b, esc);
		run = s + 1;
	}
	buf_put(b, run, (size_t)(s - run));
}

/* The shortest of %.15g, %.16g, %.17g that reads back exactly. */
static void buf_double(buf_t *b, double v)
{
	char s[40];
	int prec;

	if (isnan(v)) {
		buf_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	if (prec == 17)
		snprintf(s, sizeof(s), "%.17g", v);
	buf_puts(b, s);
}

static void buf_u64(buf_t *b, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRIu64, v);
	buf_puts(b, s);
}

static void buf_i64(buf_t *b, int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	buf_puts(b, s);
}

static double bits_double(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t double_bits(double d)
{
	uint64_t bits;

	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

static int valid_name(const char *s, int colon)
{
	const char *p;

	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' ||
		      (colon && *p == ':')))
			return 0;
	return 1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Well-formed UTF-8: no overlong forms, surrogates or code points above
 * U+10FFFF. */
static int valid_utf8(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned c = *s, min;
		int n, i;

		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, c &= 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, c &= 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, c &= 0x07, min = 0x10000;
		} else {
			return 0;
		}
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Whether family f exposes a series named s. */
static int exposes(const st_metrics_family_t *f, const char *s)
{
	size_t n = strlen(f->name);

	if (f->type != ST_METRICS_HISTOGRAM)
		return strcmp(f->name, s) == 0;
	return strncmp(f->name, s, n) == 0 &&
	       (strcmp(s + n, "_bucket") == 0 || strcmp(s + n, "_sum") == 0 ||
		strcmp(s + n, "_count") == 0);
}

/* Whether a new family (type, name) would expose a series that f does, or
 * has f's name. Two histograms collide only by name: "_bucket", "_sum"
 * and "_count" endings cannot match one another. Call with the lock. */
static int collides(const st_metrics_family_t *f, st_metrics_type_t type,
		    const char *name)
{
	st_metrics_family_t probe;

	if (strcmp(f->name, name) == 0 || exposes(f, name))
		return 1;
	probe.type = type;
	probe.name = (char *)name;
	return exposes(&probe, f->name);
}

int st_metrics_new(st_metrics_t **mp)
{
	st_metrics_t *m;

	*mp = NULL;
	if (!(m = calloc(1, sizeof(*m))))
		return ST_ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return ST_ENOMEM;
	}
	m->tail = &m->families;
	*mp = m;
	return 0;
}

static void child_free(child_t *c)
{
	size_t i;

	for (i = 0; i < ST_METRICS_LABELS_MAX; i++)
		free(c->values[i]);
	free(c->hist);
	free(c);
}

static void family_free(st_metrics_family_t *f)
{
	child_t *c, *next;
	size_t i;

	for (c = f->children; c; c = next) {
		next = c->next;
		child_free(c);
	}
	for (i = 0; i < ST_METRICS_LABELS_MAX; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f->bounds);
	free(f);
}

void st_metrics_destroy(st_metrics_t *m)
{
	st_metrics_family_t *f, *next;

	if (!m)
		return;
	for (f = m->families; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int check_family(st_metrics_type_t type, const char *name,
			const char *help, const char *label0,
			const char *label1, const double *bounds,
			size_t nbounds)
{
	const char *labels[ST_METRICS_LABELS_MAX] = { label0, label1 };
	size_t i;

	if ((int)type < (int)ST_METRICS_COUNTER ||
	    (int)type > (int)ST_METRICS_HISTOGRAM ||
	    !valid_name(name, 1) || !help || !*help || !valid_utf8(help))
		return ST_EINVAL;
	if ((type == ST_METRICS_COUNTER) != ends_with(name, "_total"))
		return ST_EINVAL;
	if (!label0 && label1)
		return ST_EINVAL;
	for (i = 0; i < ST_METRICS_LABELS_MAX && labels[i]; i++)
		if (!valid_name(labels[i], 0) ||
		    strncmp(labels[i], "__", 2) == 0 ||
		    (type == ST_METRICS_HISTOGRAM &&
		     strcmp(labels[i], "le") == 0))
			return ST_EINVAL;
	if (label0 && label1 && strcmp(label0, label1) == 0)
		return ST_EINVAL;
	if (type != ST_METRICS_HISTOGRAM)
		return bounds || nbounds ? ST_EINVAL : 0;
	if (!bounds || nbounds < 1 || nbounds > ST_METRICS_BUCKETS_MAX)
		return ST_EINVAL;
	for (i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) ||
		    (i > 0 && bounds[i] <= bounds[i - 1]))
			return ST_EINVAL;
	return 0;
}

int st_metrics_family(st_metrics_t *m, st_metrics_type_t type,
		      const char *name, const char *help, const char *label0,
		      const char *label1, const double *bounds, size_t nbounds,
		      st_metrics_family_t **fp)
{
	const char *labels[ST_METRICS_LABELS_MAX] = { label0, label1 };
	st_metrics_family_t *f = NULL, *g;
	int rc;
	size_t i;

	*fp = NULL;
	if ((rc = check_family(type, name, help, label0, label1, bounds,
			       nbounds)) < 0)
		return rc;
	if (!(f = calloc(1, sizeof(*f))))
		return ST_ENOMEM;
	f->m = m;
	f->type = type;
	f->tail = &f->children;
	rc = ST_ENOMEM;
	if (!(f->name = strdup(name)) || !(f->help = strdup(help)))
		goto out;
	for (i = 0; i < ST_METRICS_LABELS_MAX && labels[i]; i++)
		if (!(f->labels[f->nlabels++] = strdup(labels[i])))
			goto out;
	if (type == ST_METRICS_HISTOGRAM) {
		if (!(f->bounds = malloc(nbounds * sizeof(*bounds))))
			goto out;
		memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
		f->nbounds = nbounds;
	}
	pthread_mutex_lock(&m->lock);
	for (g = m->families; g; g = g->next)
		if (collides(g, type, name))
			break;
	if (!g) {
		*m->tail = f;
		m->tail = &f->next;
	}
	pthread_mutex_unlock(&m->lock);
	if (g) {
		rc = ST_EINVAL;
		goto out;
	}
	*fp = f;
	f = NULL;
	rc = 0;
out:
	if (f)
		family_free(f);
	return rc;
}

static int check_values(const st_metrics_family_t *f,
			const char *const *values)
{
	size_t i;

	for (i = 0; i < ST_METRICS_LABELS_MAX; i++) {
		if ((i < f->nlabels) != (values[i] != NULL))
			return ST_EINVAL;
		if (values[i] && !valid_utf8(values[i]))
			return ST_EINVAL;
	}
	return 0;
}

static child_t *find_child(const st_metrics_family_t *f,
			   const char *const *values)
{
	child_t *c;
	size_t i;

	for (c = f->children; c; c = c->next) {
		for (i = 0; i < f->nlabels; i++)
			if (strcmp(c->values[i], values[i]) != 0)
				break;
		if (i == f->nlabels)
			return c;
	}
	return NULL;
}

static child_t *child_new(const st_metrics_family_t *f,
			  const char *const *values)
{
	child_t *c;
	size_t i;

	if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	for (i = 0; i < f->nlabels; i++)
		if (!(c->values[i] = strdup(values[i])))
			goto fail;
	atomic_init(&c->counter.value, 0);
	atomic_init(&c->gauge.bits, f->type == ST_METRICS_GAUGE_DOUBLE ?
				    double_bits(0.0) : 0);
	c->gauge.is_double = f->type == ST_METRICS_GAUGE_DOUBLE;
	if (f->type == ST_METRICS_HISTOGRAM) {
		c->hist = malloc(sizeof(*c->hist) +
				 (f->nbounds + 1) * sizeof(c->hist->counts[0]));
		if (!c->hist)
			goto fail;
		c->hist->bounds = f->bounds;
		c->hist->nbounds = f->nbounds;
		atomic_init(&c->hist->sum_bits, double_bits(0.0));
		for (i = 0; i <= f->nbounds; i++)
			atomic_init(&c->hist->counts[i], 0);
	}
	return c;
fail:
	child_free(c);
	return NULL;
}

/*
 * Finds or adds the child with these values. fn non-NULL: a callback
 * child, which must be new. Returns 0 and *cp, ST_EINVAL or ST_ENOMEM.
 */
static int child_get(st_metrics_family_t *f, const char *value0,
		     const char *value1, st_metrics_fn_t fn, void *opaque,
		     child_t **cp)
{
	const char *values[ST_METRICS_LABELS_MAX] = { value0, value1 };
	st_metrics_t *m = f->m;
	child_t *c, *fresh = NULL;
	int rc = 0;

	*cp = NULL;
	if ((rc = check_values(f, values)) < 0)
		return rc;
	pthread_mutex_lock(&m->lock);
	if ((c = find_child(f, values))) {
		if (fn || c->fn)
			rc = ST_EINVAL;
		goto out;
	}
	/* Children are added rarely: allocating under the lock keeps the
	 * find-or-add atomic without a second lookup. */
	if (!(fresh = child_new(f, values))) {
		rc = ST_ENOMEM;
		goto out;
	}
	fresh->fn = fn;
	fresh->opaque = opaque;
	*f->tail = fresh;
	f->tail = &fresh->next;
	c = fresh;
out:
	pthread_mutex_unlock(&m->lock);
	if (rc == 0)
		*cp = c;
	return rc;
}

int st_metrics_counter_child(st_metrics_family_t *f, const char *value0,
			     const char *value1, st_metrics_counter_t **cp)
{
	child_t *c;
	int rc;

	*cp = NULL;
	if (f->type != ST_METRICS_COUNTER)
		return ST_EINVAL;
	if ((rc = child_get(f, value0, value1, NULL, NULL, &c)) < 0)
		return rc;
	*cp = &c->counter;
	return 0;
}

int st_metrics_gauge_child(st_metrics_family_t *f, const char *value0,
			   const char *value1, st_metrics_gauge_t **gp)
{
	child_t *c;
	int rc;

	*gp = NULL;
	if (f->type != ST_METRICS_GAUGE && f->type != ST_METRICS_GAUGE_DOUBLE)
		return ST_EINVAL;
	if ((rc = child_get(f, value0, value1, NULL, NULL, &c)) < 0)
		return rc;
	*gp = &c->gauge;
	return 0;
}

int st_metrics_histogram_child(st_metrics_family_t *f, const char *value0,
			       const char *value1,
			       st_metrics_histogram_t **hp)
{
	child_t *c;
	int rc;

	*hp = NULL;
	if (f->type != ST_METRICS_HISTOGRAM)
		return ST_EINVAL;
	if ((rc = child_get(f, value0, value1, NULL, NULL, &c)) < 0)
		return rc;
	*hp = c->hist;
	return 0;
}

int st_metrics_child_fn(st_metrics_family_t *f, const char *value0,
			const char *value1, st_metrics_fn_t fn, void *opaque)
{
	child_t *c;

	if (!fn || f->type == ST_METRICS_HISTOGRAM)
		return ST_EINVAL;
	return child_get(f, value0, value1, fn, opaque, &c);
}

int st_metrics_counter(st_metrics_t *m, const char *name, const char *help,
		       st_metrics_counter_t **cp)
{
	st_metrics_family_t *f;
	int rc;

	*cp = NULL;
	if ((rc = st_metrics_family(m, ST_METRICS_COUNTER, name, help, NULL,
				    NULL, NULL, 0, &f)) < 0)
		return rc;
	return st_metrics_counter_child(f, NULL, NULL, cp);
}

int st_metrics_gauge(st_metrics_t *m, const char *name, const char *help,
		     st_metrics_gauge_t **gp)
{
	st_metrics_family_t *f;
	int rc;

	*gp = NULL;
	if ((rc = st_metrics_family(m, ST_METRICS_GAUGE, name, help, NULL,
				    NULL, NULL, 0, &f)) < 0)
		return rc;
	return st_metrics_gauge_child(f, NULL, NULL, gp);
}

int st_metrics_gauge_double(st_metrics_t *m, const char *name,
			    const char *help, st_metrics_gauge_t **gp)
{
	st_metrics_family_t *f;
	int rc;

	*gp = NULL;
	if ((rc = st_metrics_family(m, ST_METRICS_GAUGE_DOUBLE, name, help,
				    NULL, NULL, NULL, 0, &f)) < 0)
		return rc;
	return st_metrics_gauge_child(f, NULL, NULL, gp);
}

int st_metrics_histogram(st_metrics_t *m, const char *name, const char *help,
			 const double *bounds, size_t nbounds,
			 st_metrics_histogram_t **hp)
{
	st_metrics_family_t *f;
	int rc;

	*hp = NULL;
	if ((rc = st_metrics_family(m, ST_METRICS_HISTOGRAM, name, help, NULL,
				    NULL, bounds, nbounds, &f)) < 0)
		return rc;
	return st_metrics_histogram_child(f, NULL, NULL, hp);
}

int st_metrics_counter_fn(st_metrics_t *m, const char *name,
			  const char *help, st_metrics_fn_t fn, void *opaque)
{
	st_metrics_family_t *f;
	int rc;

	if (!fn)
		return ST_EINVAL;
	if ((rc = st_metrics_family(m, ST_METRICS_COUNTER, name, help, NULL,
				    NULL, NULL, 0, &f)) < 0)
		return rc;
	return st_metrics_child_fn(f, NULL, NULL, fn, opaque);
}

int st_metrics_gauge_fn(st_metrics_t *m, const char *name, const char *help,
			st_metrics_fn_t fn, void *opaque)
{
	st_metrics_family_t *f;
	int rc;

	if (!fn)
		return ST_EINVAL;
	if ((rc = st_metrics_family(m, ST_METRICS_GAUGE_DOUBLE, name, help,
				    NULL, NULL, NULL, 0, &f)) < 0)
		return rc;
	return st_metrics_child_fn(f, NULL, NULL, fn, opaque);
}

/* ---- the process's own series -------------------------------------- */

static int proc_cpu(void *opaque, double *v)
{
	struct rusage ru;

	(void)opaque;
	if (getrusage(RUSAGE_SELF, &ru))
		return ST_EIO;
	*v = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return 0;
}

/* Field `which` of /proc/self/statm (0 size, 1 resident), in bytes. */
static int proc_statm(double *v, int which)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages[2];
	long page = sysconf(_SC_PAGESIZE);
	int n;

	if (!f)
		return ST_EIO;
	n = fscanf(f, "%lu %lu", &pages[0], &pages[1]);
	fclose(f);
	if (n != 2 || page <= 0)
		return ST_EIO;
	*v = (double)pages[which] * (double)page;
	return 0;
}

static int proc_rss(void *opaque, double *v)
{
	(void)opaque;
	return proc_statm(v, 1);
}

static int proc_vsize(void *opaque, double *v)
{
	(void)opaque;
	return proc_statm(v, 0);
}

static int proc_open_fds(void *opaque, double *v)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	(void)opaque;
	if (!d)
		return ST_EIO;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	*v = (double)(n - 1);   /* not the directory's own */
	return 0;
}

static int proc_max_fds(void *opaque, double *v)
{
	struct rlimit rl;

	(void)opaque;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return ST_EIO;
	*v = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
	return 0;
}

/* Field 22 of /proc/self/stat (clock ticks after boot) and the boot
 * time of /proc/stat. */
static int proc_start(void *opaque, double *v)
{
	char buf[1024], *p;
	unsigned long long ticks, btime = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/self/stat", "r");
	size_t len;
	int field;

	(void)opaque;
	if (!f)
		return ST_EIO;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* The command name may hold spaces and parentheses: fields are
	 * counted after its last ')', which ends field 2. */
	if (!(p = strrchr(buf, ')')))
		return ST_EIO;
	for (field = 2; field < 22 && (p = strchr(p + 1, ' ')); field++)
		;
	if (!p || sscanf(p + 1, "%llu", &ticks) != 1 || hz <= 0)
		return ST_EIO;
	if (!(f = fopen("/proc/stat", "r")))
		return ST_EIO;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	if (!btime)
		return ST_EIO;
	*v = (double)btime + (double)ticks / (double)hz;
	return 0;
}

int st_metrics_process(st_metrics_t *m)
{
	int rc;

	if ((rc = st_metrics_counter_fn(m, "process_cpu_seconds_total",
					"User and system CPU time spent.",
					proc_cpu, NULL)) ||
	    (rc = st_metrics_gauge_fn(m, "process_resident_memory_bytes",
				      "Resident memory size.", proc_rss,
				      NULL)) ||
	    (rc = st_metrics_gauge_fn(m, "process_virtual_memory_bytes",
				      "Virtual memory size.", proc_vsize,
				      NULL)) ||
	    (rc = st_metrics_gauge_fn(m, "process_open_fds",
				      "Open file descriptors.", proc_open_fds,
				      NULL)) ||
	    (rc = st_metrics_gauge_fn(m, "process_max_fds",
				      "The most file descriptors the process "
				      "may open.", proc_max_fds, NULL)))
		return rc;
	return st_metrics_gauge_fn(m, "process_start_time_seconds",
				   "Start time of the process, seconds since "
				   "the Unix epoch.", proc_start, NULL);
}

/* An integer gauge's bits for v: rounded to nearest, saturated, NaN 0. */
static uint64_t int_bits(double v)
{
	if (isnan(v))
		return 0;
	if (v >= 9223372036854775807.0)
		return (uint64_t)INT64_MAX;
	if (v <= -9223372036854775808.0)
		return (uint64_t)INT64_MIN;
	return (uint64_t)(int64_t)llround(v);
}

void st_metrics_gauge_set_double(st_metrics_gauge_t *g, double v)
{
	atomic_store_explicit(&g->bits, g->is_double ? double_bits(v) :
				       int_bits(v), memory_order_relaxed);
}

/* Adds delta to the double (is_double) or int64_t held in *p. */
static void add_double(_Atomic uint64_t *p, int is_double, double delta)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed), new;

	do {
		new = is_double ? double_bits(bits_double(old) + delta) :
				  int_bits((double)(int64_t)old + delta);
	} while (!atomic_compare_exchange_weak_explicit(
			 p, &old, new, memory_order_relaxed,
			 memory_order_relaxed));
}

void st_metrics_gauge_add_double(st_metrics_gauge_t *g, double delta)
{
	add_double(&g->bits, g->is_double, delta);
}

double st_metrics_gauge_get(const st_metrics_gauge_t *g)
{
	uint64_t bits = atomic_load_explicit(&g->bits, memory_order_relaxed);

	return g->is_double ? bits_double(bits) : (double)(int64_t)bits;
}

void st_metrics_histogram_observe(st_metrics_histogram_t *h, double v)
{
	size_t lo = 0, hi = h->nbounds, mid;

	if (isnan(v))
		return;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
	add_double(&h->sum_bits, 1, v);
}

/* Writes name{labels...,extra_name="extra"} and a space before the value.
 * extra_name non-NULL: one more label, already escaped (le). */
static void put_series(buf_t *b, const st_metrics_family_t *f,
		       const char *suffix, const child_t *c,
		       const char *extra_name, const char *extra)
{
	size_t i;

	buf_puts(b, f->name);
	buf_puts(b, suffix);
	if (f->nlabels || extra_name) {
		buf_putc(b, '{');
		for (i = 0; i < f->nlabels; i++) {
			if (i)
				buf_putc(b, ',');
			buf_puts(b, f->labels[i]);
			buf_puts(b, "=\"");
			buf_escaped(b, c->values[i], 1);
			buf_putc(b, '"');
		}
		if (extra_name) {
			if (f->nlabels)
				buf_putc(b, ',');
			buf_puts(b, extra_name);
			buf_puts(b, "=\"");
			buf_puts(b, extra);
			buf_putc(b, '"');
		}
		buf_putc(b, '}');
	}
	buf_putc(b, ' ');
}

static void put_histogram(buf_t *b, const st_metrics_family_t *f,
			  const child_t *c)
{
	const st_metrics_histogram_t *h = c->hist;
	uint64_t total = 0;
	buf_t le = { 0 };
	size_t i;

	for (i = 0; i <= h->nbounds; i++) {
		total += atomic_load_explicit(&h->counts[i],
					      memory_order_relaxed);
		le.len = 0;
		buf_double(&le, i < h->nbounds ? h->bounds[i] : INFINITY);
		if (le.oom) {
			b->oom = 1;
			break;
		}
		put_series(b, f, "_bucket", c, "le", le.p);
		buf_u64(b, total);
		buf_putc(b, '\n');
	}
	free(le.p);
	put_series(b, f, "_sum", c, NULL, NULL);
	buf_double(b, bits_double(atomic_load_explicit(&h->sum_bits,
						       memory_order_relaxed)));
	buf_putc(b, '\n');
	put_series(b, f, "_count", c, NULL, NULL);
	buf_u64(b, total);
	buf_putc(b, '\n');
}

static const char *type_name(st_metrics_type_t type)
{
	switch (type) {
	case ST_METRICS_COUNTER:
		return "counter";
	case ST_METRICS_HISTOGRAM:
		return "histogram";
	default:
		return "gauge";
	}
}

/* Renders one family; leaves nothing when it has no series this time. */
static void put_family(buf_t *b, const st_metrics_family_t *f)
{
	size_t start = b->len;
	int samples = 0;
	const child_t *c;
	double v;

	buf_puts(b, "# HELP ");
	buf_puts(b, f->name);
	buf_putc(b, ' ');
	buf_escaped(b, f->help, 0);
	buf_puts(b, "\n# TYPE ");
	buf_puts(b, f->name);
	buf_putc(b, ' ');
	buf_puts(b, type_name(f->type));
	buf_putc(b, '\n');
	for (c = f->children; c; c = c->next) {
		if (c->fn) {
			if (c->fn(c->opaque, &v) < 0)
				continue;
			put_series(b, f, "", c, NULL, NULL);
			buf_double(b, v);
		} else if (f->type == ST_METRICS_HISTOGRAM) {
			put_histogram(b, f, c);
			samples++;
			continue;
		} else if (f->type == ST_METRICS_COUNTER) {
			put_series(b, f, "", c, NULL, NULL);
			buf_u64(b, st_metrics_counter_get(&c->counter));
		} else if (f->type == ST_METRICS_GAUGE) {
			put_series(b, f, "", c, NULL, NULL);
			buf_i64(b, (int64_t)atomic_load_explicit(
					   &c->gauge.bits,
					   memory_order_relaxed));
		} else {
			put_series(b, f, "", c, NULL, NULL);
			buf_double(b, st_metrics_gauge_get(&c->gauge));
		}
		buf_putc(b, '\n');
		samples++;
	}
	if (!samples && !b->oom) {
		b->len = start;
		b->p[start] = '\0';
	}
}

int st_metrics_render(st_metrics_t *m, char **out, size_t *out_len)
{
	buf_t b = { 0 };
	const st_metrics_family_t *f;
	locale_t c_locale, old = (locale_t)0;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	/* Numbers in the C locale whatever the process's LC_NUMERIC. */
	if (!(c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0)))
		return ST_ENOMEM;
	old = uselocale(c_locale);
	buf_put(&b, "", 0);
	pthread_mutex_lock(&m->lock);
	for (f = m->families; f && !b.oom; f = f->next)
		put_family(&b, f);
	pthread_mutex_unlock(&m->lock);
	uselocale(old);
	freelocale(c_locale);
	if (b.oom) {
		free(b.p);
		return ST_ENOMEM;
	}
	*out = b.p;
	if (out_len)
		*out_len = b.len;
	return 0;
}
