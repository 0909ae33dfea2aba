/* features.c -- feature file parser and expression evaluator. */
#include "features.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "error.h"

typedef enum {
	N_NUM, N_STR, N_FIELD, N_DIM, N_FEAT, N_WIN, N_BIN, N_NEG, N_CODE
} node_kind_t;

enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_EQ, OP_NE, OP_LT, OP_LE,
       OP_GT, OP_GE };

typedef struct node {
	node_kind_t kind;
	int op;
	double num;
	char *str;              /* N_STR text, N_DIM attribute */
	size_t len;
	int idx;                /* field, feature, window or dimension index */
	struct node *a, *b;
	struct node **args;     /* N_CODE: the listed strings */
	size_t nargs;
} node_t;

typedef struct {
	char *name;
	st_feat_type_t type;
	node_t *expr;
} feature_t;

typedef struct {
	char *name, *table;
	int key_field;
} dim_t;

/* A slot: an event field stored per window entry, as number or hash. */
typedef struct {
	int field;
	int hashed;
} slot_t;

struct st_features {
	char **fields;
	st_feat_type_t *field_types;
	size_t nfields;
	int entity, time;
	dim_t dims[ST_FEATURES_MAX_DIMS];
	size_t ndims;
	feature_t *feats;
	size_t nfeats;
	st_window_spec_t *wins;
	size_t nwins;
	slot_t *slots;
	unsigned nslots;
	int64_t max_window;
};

/* ---- parsing ---------------------------------------------------------- */

typedef struct {
	st_features_t *f;
	const char *p;          /* current position in the expression */
	const char *origin;
	int line;
	char *errstr;
	size_t errstr_size;
	int err;
} parser_t;

static int fail(parser_t *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(parser_t *ps, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (ps->err)
		return ps->err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ps->line)
		ps->err = st_seterr(ps->errstr, ps->errstr_size, ST_EINVAL,
				    "%s:%d: %s", ps->origin, ps->line, msg);
	else
		ps->err = st_seterr(ps->errstr, ps->errstr_size, ST_EINVAL,
				    "%s: %s", ps->origin, msg);
	return ps->err;
}

static void skip_ws(parser_t *ps)
{
	while (isspace((unsigned char)*ps->p))
		ps->p++;
}

static int accept(parser_t *ps, const char *tok)
{
	size_t n = strlen(tok);

	skip_ws(ps);
	if (strncmp(ps->p, tok, n))
		return 0;
	/* A word must not run on into an identifier. */
	if (isalpha((unsigned char)tok[0]) &&
	    (isalnum((unsigned char)ps->p[n]) || ps->p[n] == '_'))
		return 0;
	ps->p += n;
	return 1;
}

static int ident(parser_t *ps, char *buf, size_t size)
{
	size_t n = 0;

	skip_ws(ps);
	if (!isalpha((unsigned char)*ps->p) && *ps->p != '_')
		return 0;
	while (isalnum((unsigned char)ps->p[n]) || ps->p[n] == '_')
		n++;
	if (n >= size) {
		fail(ps, "name too long");
		return 0;
	}
	memcpy(buf, ps->p, n);
	buf[n] = '\0';
	ps->p += n;
	return 1;
}

static node_t *new_node(parser_t *ps, node_kind_t kind)
{
	node_t *n = calloc(1, sizeof(*n));

	if (!n && !ps->err)
		ps->err = ST_ENOMEM;
	if (n)
		n->kind = kind;
	return n;
}

static void free_node(node_t *n)
{
	if (!n)
		return;
	free_node(n->a);
	free_node(n->b);
	for (size_t i = 0; i < n->nargs; i++)
		free_node(n->args[i]);
	free(n->args);
	free(n->str);
	free(n);
}

static int find_field(const st_features_t *f, const char *name)
{
	for (size_t i = 0; i < f->nfields; i++)
		if (!strcmp(f->fields[i], name))
			return (int)i;
	return -1;
}

static int find_feature(const st_features_t *f, const char *name)
{
	for (size_t i = 0; i < f->nfeats; i++)
		if (!strcmp(f->feats[i].name, name))
			return (int)i;
	return -1;
}

static int find_dim(const st_features_t *f, const char *name)
{
	for (size_t i = 0; i < f->ndims; i++)
		if (!strcmp(f->dims[i].name, name))
			return (int)i;
	return -1;
}

static int add_slot(st_features_t *f, int field, int hashed)
{
	slot_t *s;

	for (unsigned i = 0; i < f->nslots; i++)
		if (f->slots[i].field == field && f->slots[i].hashed == hashed)
			return (int)i;
	s = realloc(f->slots, (f->nslots + 1) * sizeof(*s));
	if (!s)
		return -1;
	f->slots = s;
	s[f->nslots].field = field;
	s[f->nslots].hashed = hashed;
	return (int)f->nslots++;
}

static int add_window(st_features_t *f, const st_window_spec_t *spec)
{
	st_window_spec_t *w;

	for (size_t i = 0; i < f->nwins; i++)
		if (!memcmp(&f->wins[i], spec, sizeof(*spec)))
			return (int)i;
	w = realloc(f->wins, (f->nwins + 1) * sizeof(*w));
	if (!w)
		return -1;
	f->wins = w;
	w[f->nwins] = *spec;
	if (spec->length_ms > f->max_window)
		f->max_window = spec->length_ms;
	return (int)f->nwins++;
}

static node_t *parse_expr(parser_t *ps);

/* count() | sum(F) ... over DURATION [excluding current] */
static node_t *parse_window(parser_t *ps, st_agg_t agg, const char *fname)
{
	st_window_spec_t spec;
	char field[128], dur[32];
	node_t *n;
	size_t len = 0;
	int fi = -1, idx;

	memset(&spec, 0, sizeof(spec));
	spec.agg = agg;
	spec.slot = -1;
	if (agg != ST_AGG_COUNT && agg != ST_AGG_SINCE_PREV) {
		if (!ident(ps, field, sizeof(field))) {
			fail(ps, "%s() needs an event field", fname);
			return NULL;
		}
		fi = find_field(ps->f, field);
		if (fi < 0) {
			fail(ps, "%s(%s): no event field '%s'", fname, field,
			     field);
			return NULL;
		}
		if (agg != ST_AGG_DISTINCT &&
		    ps->f->field_types[fi] != ST_FEAT_NUMBER) {
			fail(ps, "%s(%s): '%s' is not a number", fname, field,
			     field);
			return NULL;
		}
	}
	if (!accept(ps, ")")) {
		fail(ps, "expected ')' after %s(", fname);
		return NULL;
	}
	if (agg != ST_AGG_SINCE_PREV) {
		if (!accept(ps, "over")) {
			fail(ps, "%s(): expected 'over DURATION'", fname);
			return NULL;
		}
		skip_ws(ps);
		while (isalnum((unsigned char)ps->p[len]) && len < sizeof(dur) - 1)
			len++;
		memcpy(dur, ps->p, len);
		dur[len] = '\0';
		ps->p += len;
		if (strspn(dur, "0123456789") == len ||
		    st_parse_duration_ms(dur, &spec.length_ms) ||
		    spec.length_ms <= 0) {
			fail(ps, "%s(): invalid window length '%s' (expected "
			     "e.g. 30m, 1h, 24h, 7d)", fname, dur);
			return NULL;
		}
		if (accept(ps, "excluding")) {
			if (!accept(ps, "current")) {
				fail(ps, "expected 'excluding current'");
				return NULL;
			}
			spec.exclude_current = 1;
		}
	}
	if (fi >= 0) {
		spec.slot = add_slot(ps->f, fi, agg == ST_AGG_DISTINCT);
		if (spec.slot < 0) {
			ps->err = ST_ENOMEM;
			return NULL;
		}
	}
	idx = add_window(ps->f, &spec);
	if (idx < 0) {
		ps->err = ST_ENOMEM;
		return NULL;
	}
	n = new_node(ps, N_WIN);
	if (n)
		n->idx = idx;
	return n;
}

static node_t *parse_code(parser_t *ps)
{
	node_t *n = new_node(ps, N_CODE), **args;

	if (!n)
		return NULL;
	n->a = parse_expr(ps);
	while (!ps->err && accept(ps, ",")) {
		const char *start;

		skip_ws(ps);
		if (*ps->p != '\'') {
			fail(ps, "code(): expected a 'quoted' value");
			break;
		}
		start = ++ps->p;
		while (*ps->p && *ps->p != '\'')
			ps->p++;
		if (*ps->p != '\'') {
			fail(ps, "unterminated string");
			break;
		}
		args = realloc(n->args, (n->nargs + 1) * sizeof(*args));
		if (!args) {
			ps->err = ST_ENOMEM;
			break;
		}
		n->args = args;
		args[n->nargs] = new_node(ps, N_STR);
		if (!args[n->nargs])
			break;
		args[n->nargs]->len = (size_t)(ps->p - start);
		args[n->nargs]->str = strndup(start, args[n->nargs]->len);
		n->nargs++;
		ps->p++;
	}
	if (!ps->err && (!n->nargs || !accept(ps, ")")))
		fail(ps, "code(EXPR, 'a', 'b', ...): expected values and ')'");
	if (ps->err) {
		free_node(n);
		return NULL;
	}
	return n;
}

static node_t *parse_primary(parser_t *ps)
{
	static const struct { const char *name; st_agg_t agg; } funcs[] = {
		{"count", ST_AGG_COUNT}, {"sum", ST_AGG_SUM},
		{"avg", ST_AGG_AVG}, {"min", ST_AGG_MIN}, {"max", ST_AGG_MAX},
		{"distinct", ST_AGG_DISTINCT},
		{"seconds_since_previous", ST_AGG_SINCE_PREV},
	};
	char name[128], attr[128];
	node_t *n;
	int i;

	skip_ws(ps);
	if (accept(ps, "(")) {
		n = parse_expr(ps);
		if (n && !accept(ps, ")")) {
			fail(ps, "expected ')'");
			free_node(n);
			return NULL;
		}
		return n;
	}
	if (isdigit((unsigned char)*ps->p) || *ps->p == '.') {
		char *end;

		n = new_node(ps, N_NUM);
		if (!n)
			return NULL;
		errno = 0;
		n->num = strtod(ps->p, &end);
		if (end == ps->p || errno) {
			fail(ps, "invalid number");
			free_node(n);
			return NULL;
		}
		ps->p = end;
		return n;
	}
	if (*ps->p == '\'') {
		const char *start = ++ps->p;

		while (*ps->p && *ps->p != '\'')
			ps->p++;
		if (*ps->p != '\'') {
			fail(ps, "unterminated string");
			return NULL;
		}
		n = new_node(ps, N_STR);
		if (!n)
			return NULL;
		n->len = (size_t)(ps->p - start);
		n->str = strndup(start, n->len);
		ps->p++;
		return n;
	}
	if (!ident(ps, name, sizeof(name))) {
		fail(ps, "expected a value at '%.20s'", ps->p);
		return NULL;
	}
	if (accept(ps, "(")) {
		if (!strcmp(name, "code"))
			return parse_code(ps);
		for (size_t k = 0; k < sizeof(funcs) / sizeof(funcs[0]); k++)
			if (!strcmp(name, funcs[k].name))
				return parse_window(ps, funcs[k].agg, name);
		fail(ps, "unknown function %s()", name);
		return NULL;
	}
	if (accept(ps, ".")) {
		int d = find_dim(ps->f, name);

		if (d < 0) {
			fail(ps, "unknown dimension '%s' (declare it with "
			     "'dimension %s = TABLE(FIELD)')", name, name);
			return NULL;
		}
		if (!ident(ps, attr, sizeof(attr))) {
			fail(ps, "expected an attribute after '%s.'", name);
			return NULL;
		}
		n = new_node(ps, N_DIM);
		if (!n)
			return NULL;
		n->idx = d;
		n->str = strdup(attr);
		return n;
	}
	if ((i = find_feature(ps->f, name)) >= 0) {
		n = new_node(ps, N_FEAT);
		if (n)
			n->idx = i;
		return n;
	}
	if ((i = find_field(ps->f, name)) >= 0) {
		n = new_node(ps, N_FIELD);
		if (n)
			n->idx = i;
		return n;
	}
	fail(ps, "unknown name '%s' (not an event field or an earlier "
	     "feature)", name);
	return NULL;
}

static node_t *parse_unary(parser_t *ps)
{
	node_t *n;

	if (!accept(ps, "-"))
		return parse_primary(ps);
	n = new_node(ps, N_NEG);
	if (n && !(n->a = parse_unary(ps))) {
		free_node(n);
		return NULL;
	}
	return n;
}

static node_t *binary(parser_t *ps, int op, node_t *a, node_t *(*sub)(parser_t *))
{
	node_t *n = new_node(ps, N_BIN);

	if (!n) {
		free_node(a);
		return NULL;
	}
	n->op = op;
	n->a = a;
	n->b = sub(ps);
	if (!n->b) {
		free_node(n);
		return NULL;
	}
	return n;
}

static node_t *parse_mul(parser_t *ps)
{
	node_t *n = parse_unary(ps);

	while (n) {
		if (accept(ps, "*"))
			n = binary(ps, OP_MUL, n, parse_unary);
		else if (accept(ps, "/"))
			n = binary(ps, OP_DIV, n, parse_unary);
		else
			break;
	}
	return n;
}

static node_t *parse_add(parser_t *ps)
{
	node_t *n = parse_mul(ps);

	while (n) {
		if (accept(ps, "+"))
			n = binary(ps, OP_ADD, n, parse_mul);
		else if (accept(ps, "-"))
			n = binary(ps, OP_SUB, n, parse_mul);
		else
			break;
	}
	return n;
}

static node_t *parse_expr(parser_t *ps)
{
	static const struct { const char *tok; int op; } cmps[] = {
		{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE},
		{"<", OP_LT}, {">", OP_GT},
	};
	node_t *n = parse_add(ps);

	if (!n)
		return NULL;
	for (size_t i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++)
		if (accept(ps, cmps[i].tok))
			return binary(ps, cmps[i].op, n, parse_add);
	return n;
}

/* The static type of an expression. */
static st_feat_type_t type_of(const st_features_t *f, const node_t *n)
{
	switch (n->kind) {
	case N_STR:
		return ST_FEAT_STRING;
	case N_FIELD:
		return f->field_types[n->idx];
	case N_FEAT:
		return f->feats[n->idx].type;
	default:
		return ST_FEAT_NUMBER;
	}
}

static int parse_feature(parser_t *ps, char *rest)
{
	st_features_t *f = ps->f;
	char name[128], type[32];
	feature_t *feat;
	node_t *expr;
	int explicit_type = -1;

	ps->p = rest;
	if (!ident(ps, name, sizeof(name)))
		return fail(ps, "expected 'feature NAME = EXPRESSION'");
	if (find_feature(f, name) >= 0)
		return fail(ps, "feature '%s' declared twice", name);
	if (name[0] == '_')
		return fail(ps, "%s: names starting with '_' are strata's own "
			    "(_event_time, _seq, _stale_join)", name);
	if (accept(ps, ":")) {
		if (!ident(ps, type, sizeof(type)) ||
		    (strcmp(type, "string") && strcmp(type, "number")))
			return fail(ps, "%s: type must be 'string' or 'number'",
				    name);
		explicit_type = !strcmp(type, "string") ? ST_FEAT_STRING :
				ST_FEAT_NUMBER;
	}
	if (!accept(ps, "="))
		return fail(ps, "%s: expected '=' after the name", name);
	expr = parse_expr(ps);
	if (!expr)
		return ps->err ? ps->err : fail(ps, "%s: bad expression", name);
	skip_ws(ps);
	if (*ps->p) {
		free_node(expr);
		return fail(ps, "%s: unexpected '%s'", name, ps->p);
	}
	feat = realloc(f->feats, (f->nfeats + 1) * sizeof(*feat));
	if (!feat) {
		free_node(expr);
		return ps->err = ST_ENOMEM;
	}
	f->feats = feat;
	feat[f->nfeats].name = strdup(name);
	feat[f->nfeats].expr = expr;
	feat[f->nfeats].type = explicit_type >= 0 ?
		(st_feat_type_t)explicit_type : type_of(f, expr);
	f->nfeats++;
	return 0;
}

static int parse_dimension(parser_t *ps, char *rest)
{
	st_features_t *f = ps->f;
	char name[128], table[128], field[128];
	int fi;

	ps->p = rest;
	if (!ident(ps, name, sizeof(name)) || !accept(ps, "=") ||
	    !ident(ps, table, sizeof(table)) || !accept(ps, "(") ||
	    !ident(ps, field, sizeof(field)) || !accept(ps, ")"))
		return fail(ps, "expected 'dimension NAME = TABLE(FIELD)'");
	skip_ws(ps);
	if (*ps->p)
		return fail(ps, "unexpected '%s'", ps->p);
	if (find_dim(f, name) >= 0)
		return fail(ps, "dimension '%s' declared twice", name);
	if (f->ndims == ST_FEATURES_MAX_DIMS)
		return fail(ps, "more than %d dimensions",
			    ST_FEATURES_MAX_DIMS);
	if ((fi = find_field(f, field)) < 0)
		return fail(ps, "dimension %s: no event field '%s'", name,
			    field);
	f->dims[f->ndims].name = strdup(name);
	f->dims[f->ndims].table = strdup(table);
	f->dims[f->ndims].key_field = fi;
	f->ndims++;
	return 0;
}

static int parse_field_ref(parser_t *ps, char *rest, const char *what,
			   int *out)
{
	char field[128];

	ps->p = rest;
	if (!accept(ps, "=") || !ident(ps, field, sizeof(field)))
		return fail(ps, "expected '%s = FIELD'", what);
	skip_ws(ps);
	if (*ps->p)
		return fail(ps, "unexpected '%s'", ps->p);
	if ((*out = find_field(ps->f, field)) < 0)
		return fail(ps, "%s: no event field '%s'", what, field);
	return 0;
}

int st_features_parse(st_features_t **fp, const char *text,
		      const char *origin, const char *const *fields,
		      const st_feat_type_t *field_types, size_t nfields,
		      char *errstr, size_t errstr_size)
{
	st_features_t *f = calloc(1, sizeof(*f));
	parser_t ps = {0};
	char *copy = NULL, *line, *next;
	int err = 0;

	if (!f || !(copy = strdup(text)))
		goto nomem;
	f->entity = f->time = -1;
	f->nfields = nfields;
	f->fields = calloc(nfields + 1, sizeof(*f->fields));
	f->field_types = calloc(nfields + 1, sizeof(*f->field_types));
	if (!f->fields || !f->field_types)
		goto nomem;
	for (size_t i = 0; i < nfields; i++) {
		if (!(f->fields[i] = strdup(fields[i])))
			goto nomem;
		f->field_types[i] = field_types[i];
	}
	ps.f = f;
	ps.origin = origin;
	ps.errstr = errstr;
	ps.errstr_size = errstr_size;
	/* Split by hand: strtok_r would skip empty lines, losing count. */
	for (line = copy; line && !ps.err; line = next) {
		char *hash, *word;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		ps.line++;
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		ps.p = line;
		skip_ws(&ps);
		if (!*ps.p)
			continue;
		word = (char *)ps.p;
		if (accept(&ps, "feature"))
			parse_feature(&ps, (char *)ps.p);
		else if (accept(&ps, "dimension"))
			parse_dimension(&ps, (char *)ps.p);
		else if (accept(&ps, "entity"))
			parse_field_ref(&ps, (char *)ps.p, "entity", &f->entity);
		else if (accept(&ps, "time"))
			parse_field_ref(&ps, (char *)ps.p, "time", &f->time);
		else
			fail(&ps, "expected 'feature', 'dimension', 'entity' or "
			     "'time', got '%.30s'", word);
	}
	ps.line = 0;  /* what follows concerns the whole file */
	if (!ps.err && f->entity < 0)
		fail(&ps, "no 'entity = FIELD' line");
	if (!ps.err && f->time < 0) {
		f->time = find_field(f, "event_time");
		if (f->time < 0)
			fail(&ps, "no 'time = FIELD' line and no event_time "
			     "field");
	}
	if (!ps.err && !f->nfeats)
		fail(&ps, "no features declared");
	err = ps.err;
	free(copy);
	if (err) {
		st_features_free(f);
		return err;
	}
	*fp = f;
	return 0;
nomem:
	free(copy);
	st_features_free(f);
	return ST_ENOMEM;
}

int st_features_load(st_features_t **fp, const char *path,
		     const char *const *fields,
		     const st_feat_type_t *field_types, size_t nfields,
		     char *errstr, size_t errstr_size)
{
	FILE *fp_in = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0, len;
	int err;

	if (!fp_in)
		return st_seterr(errstr, errstr_size,
				 errno == ENOENT ? ST_ENOENT : ST_EIO,
				 "%s: cannot open feature file: %s", path,
				 strerror(errno));
	len = (size_t)getdelim(&text, &cap, '\0', fp_in);
	fclose(fp_in);
	if (!text || len == (size_t)-1) {
		free(text);
		return st_seterr(errstr, errstr_size, ST_EIO,
				 "%s: cannot read", path);
	}
	err = st_features_parse(fp, text, path, fields, field_types, nfields,
				errstr, errstr_size);
	free(text);
	return err;
}

void st_features_free(st_features_t *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nfields && f->fields; i++)
		free(f->fields[i]);
	free(f->fields);
	free(f->field_types);
	for (size_t i = 0; i < f->ndims; i++) {
		free(f->dims[i].name);
		free(f->dims[i].table);
	}
	for (size_t i = 0; i < f->nfeats; i++) {
		free(f->feats[i].name);
		free_node(f->feats[i].expr);
	}
	free(f->feats);
	free(f->wins);
	free(f->slots);
	free(f);
}

size_t st_features_count(const st_features_t *f) { return f->nfeats; }
const char *st_features_name(const st_features_t *f, size_t i)
{
	return f->feats[i].name;
}
st_feat_type_t st_features_type(const st_features_t *f, size_t i)
{
	return f->feats[i].type;
}
int st_features_entity_field(const st_features_t *f) { return f->entity; }
int st_features_time_field(const st_features_t *f) { return f->time; }
size_t st_features_ndims(const st_features_t *f) { return f->ndims; }
const char *st_features_dim_name(const st_features_t *f, size_t i)
{
	return f->dims[i].name;
}
const char *st_features_dim_table(const st_features_t *f, size_t i)
{
	return f->dims[i].table;
}
int st_features_dim_key_field(const st_features_t *f, size_t i)
{
	return f->dims[i].key_field;
}
const st_window_spec_t *st_features_windows(const st_features_t *f,
					    size_t *n)
{
	*n = f->nwins;
	return f->wins;
}
unsigned st_features_nslots(const st_features_t *f) { return f->nslots; }
int64_t st_features_max_window(const st_features_t *f)
{
	return f->max_window;
}

static uint64_t hash_value(const st_value_t *v)
{
	switch (v->type) {
	case ST_VAL_STRING:
		return st_window_hash(v->s, v->len);
	case ST_VAL_INT:
	case ST_VAL_BOOL:
		return st_window_hash(&v->i, sizeof(v->i));
	case ST_VAL_DOUBLE:
		return st_window_hash(&v->d, sizeof(v->d));
	default:
		return 0;
	}
}

/* A value as a number: numbers, booleans, and text that reads as one. */
static int as_number(const st_value_t *v, double *out)
{
	char buf[64], *end;

	switch (v->type) {
	case ST_VAL_INT:
	case ST_VAL_BOOL:
		*out = (double)v->i;
		return 1;
	case ST_VAL_DOUBLE:
		*out = v->d;
		return !isnan(v->d);
	case ST_VAL_STRING:
		if (!v->len || v->len >= sizeof(buf))
			return 0;
		memcpy(buf, v->s, v->len);
		buf[v->len] = '\0';
		*out = strtod(buf, &end);
		return *end == '\0' && isfinite(*out);
	default:
		return 0;   /* null: not counted by distinct */
	}
}

void st_features_slots(const st_features_t *f, const st_value_t *event,
		       st_slot_t *slots)
{
	for (unsigned i = 0; i < f->nslots; i++) {
		const st_value_t *v = &event[f->slots[i].field];

		if (f->slots[i].hashed)
			slots[i].h = hash_value(v);
		else if (!as_number(v, &slots[i].d))
			slots[i].d = NAN;
	}
}

/* ---- evaluation ------------------------------------------------------- */

typedef struct {
	const st_features_t *f;
	const st_value_t *event;
	const uint8_t *const *rows;
	const size_t *lens;
	const st_window_result_t *win;
	const st_value_t *done;   /* features evaluated so far */
	int err;
} eval_t;

static st_value_t null_value(void)
{
	st_value_t v;

	memset(&v, 0, sizeof(v));
	v.type = ST_VAL_NULL;
	return v;
}

static st_value_t number(double d)
{
	st_value_t v = null_value();

	if (isfinite(d)) {
		v.type = ST_VAL_DOUBLE;
		v.d = d;
	}
	return v;
}

static int compare(const st_value_t *a, const st_value_t *b, int *cmp)
{
	double x, y;

	if (as_number(a, &x) && as_number(b, &y)) {
		*cmp = x < y ? -1 : x > y;
		return 1;
	}
	if (a->type == ST_VAL_STRING && b->type == ST_VAL_STRING) {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = memcmp(a->s, b->s, n);

		*cmp = c ? c : a->len < b->len ? -1 : a->len > b->len;
		return 1;
	}
	return 0;
}

static st_value_t eval_node(eval_t *ev, const node_t *n)
{
	st_value_t a, b, v = null_value();
	double x, y;
	int cmp;

	switch (n->kind) {
	case N_NUM:
		return number(n->num);
	case N_STR:
		v.type = ST_VAL_STRING;
		v.s = n->str;
		v.len = n->len;
		return v;
	case N_FIELD:
		v = ev->event[n->idx];
		if (v.type == ST_VAL_INT || v.type == ST_VAL_BOOL)
			return number((double)v.i);
		return v;
	case N_FEAT:
		return ev->done[n->idx];
	case N_DIM:
		if (!ev->rows[n->idx])
			return v;
		switch (st_row_get(ev->rows[n->idx], ev->lens[n->idx], n->str,
				   &v)) {
		case 0:
			break;
		case ST_ENOENT:
			return null_value();
		default:
			ev->err = ST_EPARSE;
			return null_value();
		}
		if (v.type == ST_VAL_INT || v.type == ST_VAL_BOOL)
			return number((double)v.i);
		return v.type == ST_VAL_UNAVAILABLE ? null_value() : v;
	case N_WIN:
		return ev->win[n->idx].null ? v : number(ev->win[n->idx].value);
	case N_NEG:
		a = eval_node(ev, n->a);
		return as_number(&a, &x) ? number(-x) : v;
	case N_CODE:
		a = eval_node(ev, n->a);
		for (size_t i = 0; i < n->nargs; i++) {
			b = eval_node(ev, n->args[i]);
			if (compare(&a, &b, &cmp) && !cmp)
				return number((double)i);
		}
		return v;
	case N_BIN:
		a = eval_node(ev, n->a);
		b = eval_node(ev, n->b);
		if (n->op >= OP_EQ) {
			if (!compare(&a, &b, &cmp))
				return v;
			switch (n->op) {
			case OP_EQ: return number(cmp == 0);
			case OP_NE: return number(cmp != 0);
			case OP_LT: return number(cmp < 0);
			case OP_LE: return number(cmp <= 0);
			case OP_GT: return number(cmp > 0);
			default: return number(cmp >= 0);
			}
		}
		if (!as_number(&a, &x) || !as_number(&b, &y))
			return v;
		switch (n->op) {
		case OP_ADD: return number(x + y);
		case OP_SUB: return number(x - y);
		case OP_MUL: return number(x * y);
		default: return y == 0 ? v : number(x / y);
		}
	}
	return v;
}

int st_features_eval(const st_features_t *f, const st_value_t *event,
		     const uint8_t *const *dim_rows, const size_t *dim_lens,
		     const st_window_result_t *win, st_value_t *out,
		     char *text)
{
	eval_t ev = {f, event, dim_rows, dim_lens, win, out, 0};

	for (size_t i = 0; i < f->nfeats; i++) {
		st_value_t v = eval_node(&ev, f->feats[i].expr);
		double d;

		/* Coerce to the declared type. */
		if (f->feats[i].type == ST_FEAT_NUMBER &&
		    v.type == ST_VAL_STRING) {
			v = as_number(&v, &d) ? number(d) : null_value();
		} else if (f->feats[i].type == ST_FEAT_STRING &&
			   v.type != ST_VAL_STRING && v.type != ST_VAL_NULL) {
			char *t = text + i * ST_FEATURES_TEXT;

			v.len = st_features_format(&v, t, ST_FEATURES_TEXT);
			v.s = t;
			v.type = ST_VAL_STRING;
		}
		out[i] = v;
	}
	return ev.err;
}

char *st_features_layout(const st_features_t *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	if (!fp)
		return NULL;
	fprintf(fp, "slots");
	for (unsigned i = 0; i < f->nslots; i++)
		fprintf(fp, " %s:%s", f->fields[f->slots[i].field],
			f->slots[i].hashed ? "hash" : "number");
	fprintf(fp, "; windows");
	for (size_t i = 0; i < f->nwins; i++)
		fprintf(fp, " %d/%lld/%d/%d", f->wins[i].agg,
			(long long)f->wins[i].length_ms,
			f->wins[i].exclude_current, f->wins[i].slot);
	if (fclose(fp)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Writes an unsigned integer with at least `width` digits; returns the
 * end. buf must hold 20 bytes. */
static char *put_digits(char *buf, uint64_t v, int width)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v || n < width);
	while (n)
		*buf++ = tmp[--n];
	return buf;
}

/*
 * A number with few decimals, fast: the smallest k <= 9 for which
 * m = round(d * 10^k) gives m / 10^k == d exactly. Both m (< 2^53) and
 * 10^k are exact doubles, so that division is correctly rounded, as
 * strtod() is: the text m * 10^-k reads back to d. Returns the length, or
 * 0 when d needs more digits.
 */
static size_t format_short(double d, char *buf, size_t size)
{
	static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
				     1e8, 1e9};
	char tmp[48], *p = tmp;
	double t = d * 1e9;

	if (!(fabs(d) < 1e6))
		return 0;
	/* Quick refusal: for a short d, d * 10^9 is an integer below 2^53 up
	 * to the rounding of d and of the product, 2^-53 relative each. */
	if (fabs(t - nearbyint(t)) > fabs(t) * 4.5e-16)
		return 0;
	for (int k = 0; k <= 9; k++) {
		double m = nearbyint(d * p10[k]);
		uint64_t um, scale;

		if (m / p10[k] != d)
			continue;
		um = (uint64_t)fabs(m);
		scale = (uint64_t)p10[k];
		if (d < 0)
			*p++ = '-';
		p = put_digits(p, um / scale, 1);
		if (k) {
			*p++ = '.';
			p = put_digits(p, um % scale, k);
		}
		if ((size_t)(p - tmp) >= size)
			return 0;
		memcpy(buf, tmp, (size_t)(p - tmp));
		buf[p - tmp] = '\0';
		return (size_t)(p - tmp);
	}
	return 0;
}

size_t st_features_format_int(int64_t v, char *buf, size_t size)
{
	char tmp[24], *p = tmp;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	if (v < 0)
		*p++ = '-';
	p = put_digits(p, u, 1);
	if ((size_t)(p - tmp) >= size)
		return (size_t)snprintf(buf, size, "%lld", (long long)v);
	memcpy(buf, tmp, (size_t)(p - tmp));
	buf[p - tmp] = '\0';
	return (size_t)(p - tmp);
}

/*
 * What printf("%.17g") writes, without printf, for the numbers features
 * hold (1e-4 <= |d| < 1e15, not integers): d = m * 2^e exactly, so
 * round(d * 10^k) for the k giving 17 digits is computed exactly in 128
 * bits (m < 2^53, 10^k < 2^70), ties to even like glibc. Returns the
 * length, or 0 outside that range.
 */
static size_t format_17(double d, char *buf, size_t size)
{
	static const uint64_t p10[] = {
		1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
		10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
		100000000000ULL, 1000000000000ULL, 10000000000000ULL,
		100000000000000ULL, 1000000000000000ULL,
		10000000000000000ULL, 100000000000000000ULL,
		1000000000000000000ULL, 10000000000000000000ULL
	};
	double a = fabs(d);
	unsigned __int128 n, q, rem, half, scale;
	char digits[20], tmp[40], *p = tmp;
	int x, e, E, k, shift;
	uint64_t m, q64;

	if (!(a >= 1e-4 && a < 1e15))
		return 0;
	/* a = m * 2^e with m of 53 bits (a is normal here), e < 0. */
	memcpy(&m, &a, sizeof(m));
	x = (int)(m >> 52) - 1022;           /* a = f * 2^x, f in [0.5, 1) */
	m = (m & ((1ULL << 52) - 1)) | 1ULL << 52;
	e = x - 53;
	if (e >= 0)
		return 0;
	/* The decimal exponent, from x: at most one too small, which the
	 * loop below corrects. */
	E = (int)floor((x - 1) * 0.30102999566398120);
	for (int tries = 0; tries < 3; tries++) {
		k = 16 - E;                  /* q has 17 digits */
		if (k < 0 || k > 38)
			return 0;
		scale = k <= 19 ? p10[k] :
			(unsigned __int128)p10[19] * p10[k - 19];
		shift = -e;
		if (shift > 120 || (k > 19 && p10[k - 19] > (1ULL << 50)))
			return 0;
		n = (unsigned __int128)m * scale;
		q = n >> shift;
		rem = n - (q << shift);
		half = (unsigned __int128)1 << (shift - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		if (q >= (unsigned __int128)p10[17])
			E++;
		else if (q < (unsigned __int128)p10[16])
			E--;
		else
			break;
		if (tries == 2)
			return 0;
	}
	if (E < -4 || E >= 17)
		return 0;                    /* %g would use an exponent */
	/* q < 10^17 < 2^64: 64-bit division, not the 128-bit library call. */
	q64 = (uint64_t)q;
	for (int i = 16; i >= 0; i--) {
		digits[i] = (char)('0' + (int)(q64 % 10));
		q64 /= 10;
	}
	if (d < 0)
		*p++ = '-';
	if (E >= 0) {
		memcpy(p, digits, (size_t)E + 1);
		p += E + 1;
		*p++ = '.';
		memcpy(p, digits + E + 1, (size_t)(16 - E));
		p += 16 - E;
	} else {
		*p++ = '0';
		*p++ = '.';
		for (int i = 0; i < -E - 1; i++)
			*p++ = '0';
		memcpy(p, digits, 17);
		p += 17;
	}
	while (p[-1] == '0')                 /* %g drops trailing zeros */
		p--;
	if (p[-1] == '.')
		p--;
	if ((size_t)(p - tmp) >= size)
		return 0;
	memcpy(buf, tmp, (size_t)(p - tmp));
	buf[p - tmp] = '\0';
	return (size_t)(p - tmp);
}

size_t st_features_format(const st_value_t *v, char *buf, size_t size)
{
	size_t n;

	switch (v->type) {
	case ST_VAL_DOUBLE:
		if (fabs(v->d) < 1e15 && v->d == (double)(int64_t)v->d)
			return st_features_format_int((int64_t)v->d, buf,
						      size);
		if ((n = format_short(v->d, buf, size)) ||
		    (n = format_17(v->d, buf, size)))
			return n;
		/* 17 significant digits always read back exactly. */
		return (size_t)snprintf(buf, size, "%.17g", v->d);
	case ST_VAL_STRING:
		if (size) {
			size_t n = v->len < size - 1 ? v->len : size - 1;

			memcpy(buf, v->s, n);
			buf[n] = '\0';
		}
		return v->len;
	case ST_VAL_INT:
	case ST_VAL_BOOL:
		return st_features_format_int(v->i, buf, size);
	default:
		if (size)
			buf[0] = '\0';
		return 0;
	}
}

char *st_features_avro_schema(const st_features_t *f)
{
	json_t *root = json_pack("{s:s, s:s, s:s, s:[]}", "type", "record",
				 "name", "Features", "namespace", "strata",
				 "fields"), *fields;
	char *text;

	if (!root)
		return NULL;
	fields = json_object_get(root, "fields");
	json_array_append_new(fields, json_pack("{s:s, s:s}", "name", "entity",
						"type", "string"));
	json_array_append_new(fields, json_pack("{s:s, s:{s:s, s:s}}", "name",
						"event_time", "type", "type",
						"long", "logicalType",
						"timestamp-millis"));
	json_array_append_new(fields, json_pack("{s:s, s:s}", "name",
						"source_partition", "type",
						"int"));
	json_array_append_new(fields, json_pack("{s:s, s:s}", "name",
						"source_offset", "type",
						"long"));
	json_array_append_new(fields, json_pack("{s:s, s:s}", "name",
						"stale_join", "type",
						"boolean"));
	for (size_t i = 0; i < st_features_count(f); i++)
		json_array_append_new(fields, json_pack(
			"{s:s, s:[s,s], s:n}", "name", st_features_name(f, i),
			"type", "null",
			st_features_type(f, i) == ST_FEAT_STRING ? "string" :
			"double", "default"));
	text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

size_t st_features_key_text(const st_value_t *v, char *buf, size_t size,
			    const char **out)
{
	if (v->type == ST_VAL_STRING) {
		*out = v->s;
		return v->len;
	}
	*out = buf;
	if (v->type == ST_VAL_INT || v->type == ST_VAL_BOOL)
		return st_features_format_int(v->i, buf, size);
	if (v->type == ST_VAL_DOUBLE)
		return (size_t)snprintf(buf, size, "%.17g", v->d);
	return 0;
}
