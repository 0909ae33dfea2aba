#!/usr/bin/env python3
"""Train a small, deterministic fraud classifier and export it to ONNX for strata.

The model reads a single float32 input named "features" of shape [None, N], where
N is the number of names given with --features (in that order). It is exported
with skl2onnx with zipmap disabled, so it has two plain-tensor outputs:

    label          int64   [None]      predicted class (0 = legit, 1 = fraud)
    probabilities  float32 [None, 2]   class probabilities, column 1 = P(fraud)

Missing features (NaN) are imputed inside the model: the exported graph is a
scikit-learn Pipeline whose first step fills in each feature's NaN (see IMPUTE),
so strata can hand a row with null features to the model as it is. The
synthetic training rows have nulls where strata has them (MISSING_PATTERNS):
a user's first transaction, an empty 24h window before it, a missing dimension
row. Without the imputer, the trees skl2onnx exports would send NaN to the
"greater than" branch of every split, i.e. read it as +infinity.

A reference JSON (--reference) holds a batch of complete input rows and the
outputs that onnxruntime (Python) computes for them, so C tests can check the
C API path against it, plus a summary of how the model scores those rows with
the features of each missing pattern set to NaN. The script checks that
onnxruntime and scikit-learn agree on all of them. Everything is seeded: the
same arguments give the same model bytes and the same reference file.

Usage:
    python examples/train_fraud_model.py --out model.onnx --reference ref.json
    python examples/train_fraud_model.py --features "txn_count_1h,amount" ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

DEFAULT_FEATURES = [
    "txn_count_1h",
    "txn_sum_1h",
    "txn_count_24h",
    "txn_sum_24h",
    "avg_amount_24h",
    "max_amount_24h",
    "distinct_merchants_24h",
    "amount_over_avg_24h",
    "secs_since_prev_txn",
    "user_segment_code",
    "user_risk_tier",
    "merchant_risk_score",
    "country_mismatch",
    "amount",
]

# ONNX opsets the export targets. onnxruntime supports these in every release we
# might pin; the newest opsets that the installed `onnx` knows may be too new for
# an older runtime, so they are pinned rather than left to skl2onnx's default.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def synth_column(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """A plausible distribution for a known feature name; N(0,1) otherwise."""
    if name == "txn_count_1h":
        return rng.poisson(1.0, n).astype(np.float64)
    if name == "txn_count_24h":
        return rng.poisson(6.0, n).astype(np.float64)
    if name in ("txn_sum_1h", "txn_sum_24h", "avg_amount_24h", "max_amount_24h", "amount"):
        scale = {"txn_sum_1h": 60.0, "txn_sum_24h": 300.0}.get(name, 50.0)
        return rng.lognormal(mean=np.log(scale), sigma=0.9, size=n)
    if name == "distinct_merchants_24h":
        return rng.poisson(3.0, n).astype(np.float64)
    if name == "amount_over_avg_24h":
        return rng.lognormal(mean=0.0, sigma=0.6, size=n)
    if name == "secs_since_prev_txn":
        return rng.exponential(3600.0, n)
    if name == "user_segment_code":
        return rng.integers(0, 8, n).astype(np.float64)
    if name == "user_risk_tier":
        return rng.integers(0, 4, n).astype(np.float64)
    if name == "merchant_risk_score":
        return rng.beta(2.0, 8.0, n)
    if name == "country_mismatch":
        return (rng.random(n) < 0.08).astype(np.float64)
    return rng.normal(0.0, 1.0, n)


# Known risk directions (sign of the effect on the fraud logit, on standardized values).
KNOWN_WEIGHTS = {
    "txn_count_1h": 0.9,
    "txn_sum_1h": 0.6,
    "txn_count_24h": 0.3,
    "txn_sum_24h": 0.2,
    "avg_amount_24h": -0.2,
    "max_amount_24h": 0.3,
    "distinct_merchants_24h": 0.5,
    "amount_over_avg_24h": 1.1,
    "secs_since_prev_txn": -0.7,
    "user_segment_code": 0.05,
    "user_risk_tier": 0.6,
    "merchant_risk_score": 0.9,
    "country_mismatch": 1.2,
    "amount": 0.4,
}

# How the model fills in a missing (NaN) feature, by name; any other feature gets
# the median of its training values. strata leaves a feature null when
#   - amount_over_avg_24h: the user has no transaction in the 24h before this one
#     (avg ... excluding current is null), or that average is 0;
#   - secs_since_prev_txn: this is the user's first transaction;
#   - user_* and country_mismatch: the user's (or the merchant's) dimension row is
#     missing, or code() does not list the segment;
#   - merchant_risk_score: the merchant's dimension row is missing.
# A median says "an ordinary value", which is wrong for the two "no history"
# features: the median gap (~40 min) would claim a recent transaction that did not
# happen. They get the value that means "no history" instead.
IMPUTE = {
    # No earlier amount to compare with: take this one as the user's usual amount
    # (ratio 1, the neutral point; also about the median of the synthetic data).
    "amount_over_avg_24h": ("constant", 1.0),
    # No previous transaction: a gap of a day, the horizon of every window, past
    # which the user's history looks the same as a first transaction's.
    "secs_since_prev_txn": ("constant", 86400.0),
    # Codes, not quantities: fill in an existing code (the commonest), not a
    # median that may fall between two.
    "user_segment_code": ("most_frequent", None),
    # Unknown user or merchant country: no evidence of a mismatch (the commonest
    # value, 0).
    "country_mismatch": ("most_frequent", None),
}
DEFAULT_IMPUTE = ("median", None)

# Where strata leaves features null, with a plausible share of transactions each
# (independently; the training rows get them, the reference rows do not).
MISSING_PATTERNS = [
    ("first_txn", 0.03, ["amount_over_avg_24h", "secs_since_prev_txn"]),
    ("no_txn_in_prior_24h", 0.04, ["amount_over_avg_24h"]),
    ("no_user_row", 0.01, ["user_segment_code", "user_risk_tier", "country_mismatch"]),
    ("unlisted_segment", 0.005, ["user_segment_code"]),
    ("no_merchant_row", 0.005, ["merchant_risk_score", "country_mismatch"]),
    ("null_amount", 0.002, ["amount", "amount_over_avg_24h"]),
]


def make_dataset(features: list[str], n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cols = [synth_column(f, rng, n) for f in features]
    X = np.column_stack(cols)
    Z = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    w = np.array([KNOWN_WEIGHTS.get(f, rng.normal(0.0, 0.5)) for f in features])
    logit = Z @ w - 3.2
    if len(features) >= 2:  # one interaction so trees have something to find
        logit += 0.6 * Z[:, 0] * Z[:, -1]
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    # float32 everywhere: the ONNX input is float32, so train on exactly those values.
    return X.astype(np.float32), y


def add_missing(X: np.ndarray, features: list[str], rng: np.random.Generator) -> np.ndarray:
    """X with NaN where MISSING_PATTERNS make features null, at their rates.

    Labels come from the complete values, so being null says nothing about fraud.
    (no_txn_in_prior_24h leaves secs_since_prev_txn as drawn, under a day.)"""
    X = X.copy()
    for _name, rate, names in MISSING_PATTERNS:
        hit = rng.random(len(X)) < rate
        cols = [features.index(f) for f in names if f in features]
        if cols:
            X[np.ix_(hit, cols)] = np.nan
    return X


def fit_imputer(X: np.ndarray, features: list[str]):
    """A fitted SimpleImputer that fills in each feature's NaN by its rule in IMPUTE.

    SimpleImputer has one strategy and one fill_value for all columns, but what it
    fills in is its per-column statistics_, which both transform() and skl2onnx's
    converter (an Imputer node with one value per column) read. So it is fitted
    with the median strategy and the other rules' columns get their value there.
    One Imputer node keeps the columns in input order and costs less per call
    than a ColumnTransformer (a node per group, plus a Concat)."""
    from sklearn.impute import SimpleImputer

    imputer = SimpleImputer(strategy="median").fit(X)
    for j, f in enumerate(features):
        strategy, value = IMPUTE.get(f, DEFAULT_IMPUTE)
        if strategy == "constant":
            imputer.statistics_[j] = value
        elif strategy != "median":
            imputer.statistics_[j] = SimpleImputer(strategy=strategy).fit(X[:, [j]]).statistics_[0]
    return imputer


def imputed_values(imputer, features: list[str]) -> list[dict]:
    """What the fitted imputer puts in place of each feature's NaN."""
    return [{"feature": f, "strategy": IMPUTE.get(f, DEFAULT_IMPUTE)[0],
             "value": float(imputer.statistics_[j])} for j, f in enumerate(features)]


def missing_cases(X_ref: np.ndarray, features: list[str]) -> list[tuple[str, list[str], np.ndarray]]:
    """The reference rows with the features of each missing pattern set to NaN,
    and one row with every feature missing (an entity strata has no hash for)."""
    cases = []
    for name, _rate, names in MISSING_PATTERNS:
        cols = [features.index(f) for f in names if f in features]
        if cols:
            Xc = X_ref.copy()
            Xc[:, cols] = np.nan
            cases.append((name, [features[j] for j in cols], Xc))
    cases.append(("all_missing", list(features),
                  np.full((1, len(features)), np.nan, dtype=np.float32)))
    return cases


def export_onnx(model, clf, name: str, features: list[str]) -> bytes:
    """The fitted scikit-learn Pipeline `model` (its classifier `clf`) as
    ONNX: one float input "features" [None, F], ZipMap off (outputs "label"
    and "probabilities"), TARGET_OPSET, and the feature names in the
    metadata strata reads (strata.features). The same model gives the same
    bytes. Shared with examples/train_recommend_model.py."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        name=name,
        initial_types=[("features", FloatTensorType([None, len(features)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # skl2onnx emits opset_import in set order, which varies with PYTHONHASHSEED;
    # sort it so the same arguments always give byte-identical model files.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in opsets:
        op = onx.opset_import.add()
        op.domain = domain
        op.version = version
    # Record the feature order in the model itself so a loader can check it.
    meta = onx.metadata_props.add()
    meta.key = "strata.features"
    meta.value = ",".join(features)
    return onx.SerializeToString()


def ort_session(data: bytes):
    """An onnxruntime session on one thread, as strata runs models."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default=",".join(DEFAULT_FEATURES),
                    help="comma-separated feature names, in model input order")
    ap.add_argument("--out", default="model.onnx", help="path of the ONNX model to write")
    ap.add_argument("--reference", default=None,
                    help="path of the reference JSON to write (inputs + onnxruntime outputs)")
    ap.add_argument("--reference-rows", type=int, default=64, help="rows in the reference batch")
    ap.add_argument("--model", choices=["gbt", "logreg"], default="gbt",
                    help="gbt = GradientBoostingClassifier, logreg = LogisticRegression")
    ap.add_argument("--samples", type=int, default=20000, help="synthetic training rows")
    ap.add_argument("--seed", type=int, default=42)
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict | None:
    """Trains, exports and checks; returns the fitted pipeline and what was
    written (None after an argument error, reported on stderr)."""
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    if not features:
        print("error: --features is empty", file=sys.stderr)
        return None
    if len(set(features)) != len(features):
        print("error: --features has duplicate names", file=sys.stderr)
        return None
    n_feat = len(features)

    import onnxruntime as ort
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(args.seed)
    X, y = make_dataset(features, args.samples + args.reference_rows, rng)
    # Nulls in the training rows only: the reference rows stay complete (C tests
    # write them to Redis fields and read them back); missing_cases() covers NaN.
    X_train, y_train = add_missing(X[: args.samples], features, rng), y[: args.samples]
    X_ref = X[args.samples:]

    imputer = fit_imputer(X_train, features)
    if args.model == "gbt":
        clf = GradientBoostingClassifier(n_estimators=60, max_depth=3, learning_rate=0.1,
                                         random_state=args.seed)
        model = Pipeline([("impute", imputer), ("clf", clf)])
    else:
        clf = LogisticRegression(max_iter=1000, random_state=args.seed)
        model = Pipeline([("impute", imputer), ("scale", StandardScaler()), ("clf", clf)])
    # The imputer is fitted already (Pipeline.fit would refit it and undo the
    # per-feature values); fit the steps after it on its output.
    model[1:].fit(imputer.transform(X_train), y_train)

    data = export_onnx(model, clf, "strata_fraud_model", features)
    with open(args.out, "wb") as fh:
        fh.write(data)

    sess = ort_session(data)
    out_names = [o.name for o in sess.get_outputs()]

    def p_fraud(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        label, proba = sess.run(["label", "probabilities"], {"features": rows})
        return label, proba, model.predict_proba(rows)

    label, proba, skl_proba = p_fraud(X_ref)
    max_diff = float(np.max(np.abs(skl_proba - proba))) if len(X_ref) else 0.0

    cases = []
    max_diff_nan = 0.0
    for name, names, Xc in missing_cases(X_ref, features):
        if not len(Xc):
            continue
        _, pc, sc = p_fraud(Xc)
        d = float(np.max(np.abs(sc - pc)))
        max_diff_nan = max(max_diff_nan, d)
        complete = None if name == "all_missing" else proba[:, 1]
        cases.append({
            "name": name,
            "missing": names,
            "rows": len(Xc),
            "mean_p1_complete": float(np.mean(complete)) if complete is not None else None,
            "mean_p1_missing": float(np.mean(pc[:, 1])),
            "max_p1_increase": float(np.max(pc[:, 1] - complete)) if complete is not None else None,
            "max_abs_diff_sklearn_vs_ort": d,
        })

    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"model={args.model} features={n_feat} train_rows={args.samples} "
          f"fraud_rate={y_train.mean():.4f} train_acc={model.score(X_train, y_train):.4f} "
          f"train_rows_with_nan={int(np.isnan(X_train).any(axis=1).sum())}")
    print(f"inputs: {[(i.name, i.type, i.shape) for i in sess.get_inputs()]}")
    print(f"outputs: {[(o.name, o.type, o.shape) for o in sess.get_outputs()]}")
    imputation = imputed_values(model.named_steps["impute"], features)
    print("NaN imputed as: " + ", ".join(
        f"{i['feature']}={i['value']:g} ({i['strategy']})" for i in imputation))
    print(f"max |sklearn - onnxruntime| on reference rows: {max_diff:.3g}")
    for c in cases:
        if c["mean_p1_complete"] is None:
            print(f"  {c['name']}: P(fraud) {c['mean_p1_missing']:.4f}")
        else:
            print(f"  {c['name']}: mean P(fraud) {c['mean_p1_complete']:.4f} complete, "
                  f"{c['mean_p1_missing']:.4f} with {','.join(c['missing'])} NaN "
                  f"(largest rise {c['max_p1_increase']:+.4f})")
    print(f"max |sklearn - onnxruntime| on reference rows with NaN: {max_diff_nan:.3g}")
    if max(max_diff, max_diff_nan) > 1e-5:
        print("error: onnxruntime and scikit-learn disagree by more than 1e-5", file=sys.stderr)
        raise SystemExit(1)

    if args.reference:
        ref = {
            "model_file": args.out,
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "model_kind": args.model,
            "seed": args.seed,
            "onnxruntime_version": ort.__version__,
            "target_opset": TARGET_OPSET,
            "input_name": "features",
            "features": features,
            "outputs": [
                {"name": o.name, "type": o.type, "shape": o.shape} for o in sess.get_outputs()
            ],
            "output_names": out_names,
            # Complete rows (no NaN); float32 values, written as the exact decimal
            # of each float32.
            "rows": [[float(v) for v in row] for row in X_ref],
            "label": [int(v) for v in label],
            "probabilities": [[float(v) for v in row] for row in proba],
            "sklearn_probabilities": [[float(v) for v in row] for row in skl_proba],
            "max_abs_diff_sklearn_vs_ort": max_diff,
            "suggested_tolerance": 1e-5,
            # What the model puts in place of a NaN feature, and how it scores
            # the rows above with the features of each missing pattern NaN.
            "imputation": imputation,
            "missing_cases": cases,
            "max_abs_diff_sklearn_vs_ort_missing": max_diff_nan,
        }
        with open(args.reference, "w") as fh:
            json.dump(ref, fh, indent=1)
            fh.write("\n")
        print(f"wrote {args.reference}: {len(X_ref)} rows")
    return {"model": model, "features": features, "onnx": data, "X_ref": X_ref}


def main(argv: list[str]) -> int:
    return 0 if run(parse_args(argv)) is not None else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
