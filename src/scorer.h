/*
 * scorer.h -- the embedded ONNX model: feature rows in, scores out.
 *
 * An st_scorer_t holds one ONNX Runtime session (CPU, sequential
 * execution, every graph optimization, 1 intra-op thread unless asked for
 * more) of a model that reads one float32 tensor [N, F] -- a batch of N
 * rows of F features, N left open by the model (a symbolic or unknown
 * dimension) -- and yields one score per row from the first output that
 * fits, in this order:
 *
 *   1. a float tensor [N, 2] named "probabilities", else the first float
 *      [N, 2] output: the score is column 1, P(positive class). This is
 *      what skl2onnx exports for a binary classifier with
 *      options={id(clf): {"zipmap": False}} (examples/train_fraud_model.py),
 *      and what onnxmltools exports for XGBoost and LightGBM;
 *   2. the first float tensor [N] or [N, 1] (a regressor, or a PyTorch
 *      model's logit or probability): the score is that value as is.
 *
 * Other outputs (skl2onnx's int64 "label") are computed by the model and
 * ignored. Refused with ST_EMODEL: several inputs, an input that is not
 * float32 of rank 2 with a known F, a fixed batch dimension (export with
 * a dynamic batch axis, e.g. torch.onnx.export(dynamic_axes=...)), and a
 * model with no output of the shapes above -- ZipMap's sequence of maps
 * (skl2onnx's default for classifiers) and double outputs included.
 *
 * The order of the F input columns is the model's business. A model may
 * say it in its metadata: the custom property "strata.features" holds the
 * F feature names, comma-separated, in column order (as written by
 * examples/train_fraud_model.py). With it, st_scorer_row_from_fields()
 * builds rows from an entity's Redis hash, feature by name; without it
 * the caller lays the columns out itself.
 *
 * Missing features are NaN. The scorer passes NaN to the model unchanged;
 * what a NaN does is decided by the model. Observed with onnxruntime 1.21:
 *   - skl2onnx's tree ensembles trained without NaN send a NaN to the
 *     "greater" branch at every split (as if it were +infinity). The
 *     example model therefore has an Imputer node in front of its trees
 *     (examples/models/README.md); with it, rows with NaN score as
 *     scikit-learn scores them (within 3e-7), e.g. 0.0295 -> 0.0300
 *     without amount_over_avg_24h, and 0.034 for a row of NaN.
 *   - linear models (the example's --model logreg: a StandardScaler and
 *     a LogisticRegression; a MatMul) propagate it: the score is NaN.
 * So declare features that are never null, or put the imputation into
 * the model: a scikit-learn Pipeline that starts with a SimpleImputer
 * exports (skl2onnx) an Imputer node, and the ONNX model then scores NaN
 * rows as scikit-learn does (checked: equal within 1e-7). Whatever the
 * model, compare it with scikit-learn on rows with NaN before use.
 *
 * Memory: st_scorer_score() copies the rows into a buffer of the scorer's
 * and runs the model on tensors created over that buffer and over an
 * output buffer, both sized for the largest batch seen (at most
 * ST_SCORER_BATCH_MAX rows); the tensors of the last ST_SCORER_SHAPES
 * batch sizes are kept, so in steady state (batches of up to that many
 * distinct sizes) the scorer allocates nothing. ONNX Runtime's Run makes
 * its own (14 or 15 malloc calls per run of the example model, as many
 * as a bare Run on pre-made tensors).
 *
 * Errors: ST_EINVAL (bad argument), ST_ENOMEM, ST_EMODEL (the model could
 * not be loaded, is not of the form above, or failed to run; errstr names
 * the model file and says what is wrong, with ONNX Runtime's message when
 * it has one).
 *
 * Thread: one st_scorer_t per thread. A scorer is used by one thread at a
 * time (its buffers are reused by every call); give each scoring thread
 * its own (each holds its own session and copy of the model). The ONNX
 * Runtime environment (OrtEnv, its logging) is shared by all the scorers
 * of the process: created by the first st_scorer_new(), released when the
 * last scorer is destroyed, under a lock. ONNX Runtime's log lines go to
 * st_log() with facility "onnxruntime", warnings and errors only.
 */
#ifndef ST_SCORER_H
#define ST_SCORER_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_scorer st_scorer_t;

/* Rows per model run, at most: st_scorer_score() scores larger batches
 * in runs of this many rows, which bounds the scorer's buffers. */
#define ST_SCORER_BATCH_MAX 1024

/* Batch sizes whose tensors a scorer keeps (least recently used out). */
#define ST_SCORER_SHAPES 4

/* The model metadata property listing the input's feature names. */
#define ST_SCORER_META_FEATURES "strata.features"

/*
 * Loads the ONNX model at model_path (copied) and checks its input and
 * outputs as described above, and its "strata.features" metadata when
 * present: F names, none empty, no duplicates. intra_threads is ONNX
 * Runtime's intra-op thread count; 0 or less means 1 (the calling thread
 * alone, no thread pool), the right choice for small tree models and
 * batches of tens of rows. Returns 0 and *sp (release with
 * st_scorer_destroy()), ST_EINVAL, ST_ENOMEM, or ST_EMODEL with errstr
 * ("model PATH: ...": the file is missing or unreadable, is not a model
 * ONNX Runtime can load, or has an unsupported input or output).
 */
int st_scorer_new(st_scorer_t **sp, const char *model_path,
		  int intra_threads, char *errstr, size_t errstr_size);

/* F, the number of features (input columns) of a row. */
size_t st_scorer_nfeatures(const st_scorer_t *s);

/* The name of feature i < F from the model's metadata, borrowed until
 * st_scorer_destroy(); NULL when the model has no "strata.features" (or
 * i >= F). */
const char *st_scorer_feature(const st_scorer_t *s, size_t i);

/* The names of the model's input and of the output read, borrowed until
 * st_scorer_destroy() (for logs and metrics). */
const char *st_scorer_input_name(const st_scorer_t *s);
const char *st_scorer_output_name(const st_scorer_t *s);

/*
 * Scores nrows >= 1 rows: rows holds nrows * F floats, row-major (row i
 * is rows[i * F .. i * F + F)), NaN for a missing feature; scores gets
 * nrows floats, score i for row i. Any nrows: batches larger than
 * ST_SCORER_BATCH_MAX run in several model runs. rows and scores are
 * borrowed for the call only and may not overlap. Allocates only for a
 * batch larger than any before, or of a size not among the last
 * ST_SCORER_SHAPES. Returns 0, ST_EINVAL (nrows 0, NULL pointer),
 * ST_ENOMEM, or ST_EMODEL with errstr when the model fails to run; after
 * an error the content of scores is undefined.
 */
int st_scorer_score(st_scorer_t *s, const float *rows, size_t nrows,
		    float *scores, char *errstr, size_t errstr_size);

/*
 * Fills row (F floats) from nfields name/value pairs, such as the fields
 * and values of an HGETALL reply of the online store: the column of each
 * of the model's features gets the value of the field of that name, read
 * as a number as strtod reads it in the C locale, leading blanks
 * allowed and nothing after the number ("12.5", "1e3", "-0", "inf"),
 * then rounded to float as numpy's astype(float32) does.
 * A feature with no field, a NULL or empty value, or text that is not a
 * number is NaN (missing). Fields that are no feature of the model
 * (_event_time, _seq, _stale_join, features the model does not use) are
 * ignored; when a name comes twice, the last one counts. Names and values
 * are NUL-terminated and borrowed for the call. No allocation, no I/O.
 * Returns the number of columns that are not NaN (0 to F: 0 for an
 * empty hash, an unknown entity), or ST_EINVAL when the model has no
 * feature names (no "strata.features" metadata) or an argument is NULL.
 */
int st_scorer_row_from_fields(const st_scorer_t *s, size_t nfields,
			      const char *const *names,
			      const char *const *values, float *row);

/* Releases the session and the scorer's buffers, and the shared ONNX
 * Runtime environment with the last scorer. NULL is allowed. */
void st_scorer_destroy(st_scorer_t *s);

/* The model's model_version (ONNX metadata; 0 when unset). */
int64_t st_scorer_version(const st_scorer_t *s);

#endif
