#!/usr/bin/env python3
"""Train a small, deterministic purchase model for strata's RECOMMEND and export it to ONNX.

`RECOMMEND key [COUNT n]` scores every item of the catalogue (the items table)
for one user with this model, one row per (user, item) pair, and returns the
items highest score first. The model reads a single float32 input named
"features" of shape [None, F], where F is the number of names given with
--features (in that order). It is exported with skl2onnx with zipmap
disabled, so it has two plain-tensor outputs:

    label          int64   [None]      predicted class (0 = no purchase, 1 = purchase)
    probabilities  float32 [None, 2]   class probabilities, column 1 = P(purchase)

strata reads the score from "probabilities", column 1. The names, written into
the model's metadata property "strata.features", say where strata takes each
column from:

    items.COLUMN             the candidate item's column, as a number
    items.COLUMN=TEXT        1 when the item's column is TEXT, else 0 (one-hot)
    merchants.COLUMN[=TEXT]  the same for the item's merchant (items.merchant_id)
    users.COLUMN[=TEXT]      the same for the user's row of the users table
    any other name           a field of the user's feature hash in Redis
                             (examples/fraud.features)

The training rows are synthetic (user, item) pairs drawn like the seeded
tables (sql/seed.sql), with a purchase label whose probability depends on the
pair (PURCHASE): an item priced near what the user usually spends, a category
the user's segment likes, an active user, a low-risk merchant and a phone or
game sold by an electronics merchant make a purchase likelier. The label is
drawn from the complete pair; the feature rows have nulls where strata has
them (MISSING_PATTERNS), and the model imputes them itself: it is a
scikit-learn Pipeline of a SimpleImputer (IMPUTE) and a
GradientBoostingClassifier. After the export the script checks that
onnxruntime and scikit-learn agree within 1e-5 on held-out rows, with and
without NaN, and exits with status 1 when they do not. Everything is seeded:
the same arguments and package versions give the same model bytes.

Usage:
    python examples/train_recommend_model.py --out recommend.onnx
    python examples/train_recommend_model.py --features "avg_amount_24h,items.price" ...
"""

from __future__ import annotations

import argparse
import hashlib
import sys

import numpy as np

# The ONNX export and session, shared with the fraud model's script beside this one.
from train_fraud_model import export_onnx, ort_session

DEFAULT_FEATURES = [
    "avg_amount_24h",
    "txn_count_24h",
    "user_segment_code",
    "users.risk_tier",
    "items.price",
    "items.category=book",
    "items.category=phone",
    "items.category=ticket",
    "items.category=shirt",
    "items.category=game",
    "items.category=coffee",
    "merchants.risk_score",
    "merchants.category=electronics",
]

# The seeded tables' values (sql/seed.sql); code() order of examples/fraud.features.
SEGMENTS = ["standard", "silver", "gold", "platinum"]
SEGMENT_SHARE = [0.4, 0.2, 0.2, 0.2]
ITEM_CATEGORIES = ["book", "phone", "ticket", "shirt", "game", "coffee"]
MERCHANT_CATEGORIES = ["grocery", "electronics", "travel", "fashion",
                       "gaming", "fuel", "restaurants", "crypto"]
MCC = [5411, 5732, 4722, 5651, 5816, 5541, 5812, 6051]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "BR", "IN", "NG"]

# Text columns of the tables and text fields of the feature hash: strata reads
# them as NaN when asked for a number, so only NAME=TEXT makes sense for them.
TEXT_COLUMNS = {
    "items.title", "items.category", "items.description",
    "merchants.name", "merchants.category", "merchants.country",
    "users.name", "users.email", "users.country", "users.segment", "users.bio",
    "user_segment",
}

# What a user usually spends per transaction, by segment (median, dollars), and
# how many transactions a day (mean).
SPEND_BY_SEGMENT = [25.0, 45.0, 80.0, 150.0]
TXN_PER_DAY_BY_SEGMENT = [2.0, 3.0, 4.0, 5.0]

# How much each segment likes each item category (logit), rows SEGMENTS,
# columns ITEM_CATEGORIES.
AFFINITY = np.array([
    # book phone ticket shirt game coffee
    [0.6, -1.2, -0.8, 0.4, 1.0, 1.2],     # standard
    [0.4, -0.2, 0.0, 1.0, 0.6, 0.6],      # silver
    [0.2, 0.8, 1.0, 0.6, -0.2, 0.0],      # gold
    [0.0, 1.4, 1.6, 0.4, -0.8, -0.4],     # platinum
])

# The logit of P(purchase) of a (user, item) pair, term by term (see purchase_logit()).
PURCHASE = {
    "intercept": -0.6,
    "price_fit": -0.9,       # per unit of |ln(price / (1.5 * usual spend))|
    "activity": 0.35,        # per unit of ln(1 + transactions in 24h)
    "risk_tier": -0.2,       # per risk tier above 1 (more payments declined)
    "merchant_risk": -3.0,   # per unit of the merchant's risk_score
    "electronics_fit": 0.8,  # a phone or a game sold by an electronics merchant
}

# How the model fills in a missing (NaN) feature, by name; a one-hot NAME=TEXT
# gets its most frequent value (0, "not TEXT") and any other feature the median
# of its training values. strata leaves a feature null when
#   - any feature hash field: the user has no hash (no transaction yet, or
#     the hash expired, redis.ttl). A hash holds the features as of the user's
#     last transaction, whose windows include it: its counts are at least 1
#     and its averages are never null;
#   - users.*, user_segment_code, user_risk_tier: the user has no users row
#     (or code() does not list the segment);
#   - merchants.*: the item's merchant has no merchants row.
# So a count or sum is NaN only for a user without transactions: 0.
IMPUTE = {
    "txn_count_1h": ("constant", 0.0),
    "txn_sum_1h": ("constant", 0.0),
    "txn_count_24h": ("constant", 0.0),
    "txn_sum_24h": ("constant", 0.0),
    "distinct_merchants_24h": ("constant", 0.0),
    # A code, not a quantity: an existing code, not a value between two.
    "user_segment_code": ("most_frequent", None),
}
DEFAULT_IMPUTE = ("median", None)


def source(name: str) -> str:
    """Where strata takes a feature from: items, merchants, users or online
    (a field of the user's feature hash in Redis)."""
    table, dot, _column = name.partition("=")[0].partition(".")
    return table if dot and table in ("items", "merchants", "users") else "online"


def impute_rule(name: str) -> tuple[str, float | None]:
    """(strategy, constant) for the NaN of feature `name`."""
    if name in IMPUTE:
        return IMPUTE[name]
    if "=" in name:
        return ("most_frequent", None)
    return DEFAULT_IMPUTE


# Where strata leaves features null, with a plausible share of pairs each
# (independently).
MISSING_PATTERNS = [
    ("no_feature_hash", 0.05, lambda f: source(f) == "online"),
    ("no_user_row", 0.01,
     lambda f: source(f) == "users" or f in ("user_segment_code", "user_risk_tier")),
    ("unlisted_segment", 0.005, lambda f: f == "user_segment_code"),
    ("no_merchant_row", 0.005, lambda f: source(f) == "merchants"),
]


def make_world(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n (user, item) pairs, drawn independently: the columns strata can read
    (by feature name) and the user's latent usual spend."""
    w: dict[str, np.ndarray] = {}
    seg = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
    w["users.id"] = rng.integers(1, 1001, n).astype(np.float64)
    w["users.segment"] = np.array(SEGMENTS, dtype=object)[seg]
    w["users.risk_tier"] = rng.integers(1, 6, n).astype(np.float64)
    w["users.country"] = np.array(COUNTRIES, dtype=object)[rng.integers(0, 8, n)]
    w["_segment"] = seg
    w["_spend"] = np.array(SPEND_BY_SEGMENT)[seg] * rng.lognormal(0.0, 0.5, n)

    # The user's feature hash: the windows ending at the user's last
    # transaction, which they include.
    rate = np.array(TXN_PER_DAY_BY_SEGMENT)[seg] * rng.lognormal(0.0, 0.5, n)
    count = 1 + rng.poisson(rate)
    count_1h = 1 + rng.binomial(count - 1, 0.1)
    avg = w["_spend"] * np.exp(rng.normal(0.0, 0.6, n) / np.sqrt(count))
    w["txn_count_24h"] = count.astype(np.float64)
    w["txn_count_1h"] = count_1h.astype(np.float64)
    w["avg_amount_24h"] = avg
    w["max_amount_24h"] = avg * np.exp(np.abs(rng.normal(0.0, 0.4, n)) * np.log(count))
    w["txn_sum_24h"] = avg * count
    w["txn_sum_1h"] = avg * count_1h
    w["distinct_merchants_24h"] = (1 + rng.binomial(count - 1, 0.6)).astype(np.float64)
    w["user_segment_code"] = seg.astype(np.float64)
    w["user_risk_tier"] = w["users.risk_tier"]

    mcat = rng.integers(0, len(MERCHANT_CATEGORIES), n)
    w["merchants.id"] = rng.integers(1, 201, n).astype(np.float64)
    w["merchants.category"] = np.array(MERCHANT_CATEGORIES, dtype=object)[mcat]
    w["merchants.mcc"] = np.array(MCC, dtype=np.float64)[mcat]
    w["merchants.country"] = np.array(COUNTRIES, dtype=object)[rng.integers(0, 8, n)]
    w["merchants.risk_score"] = rng.integers(0, 100, n) / 100.0

    icat = rng.integers(0, len(ITEM_CATEGORIES), n)
    w["items.id"] = rng.integers(1, 501, n).astype(np.float64)
    w["items.merchant_id"] = w["merchants.id"]
    w["items.category"] = np.array(ITEM_CATEGORIES, dtype=object)[icat]
    w["items.price"] = np.round(rng.uniform(5.0, 505.0, n), 2)
    w["_category"] = icat
    return w


def purchase_logit(w: dict[str, np.ndarray]) -> np.ndarray:
    """The logit of P(purchase) of each pair, from its complete values."""
    p = PURCHASE
    price_fit = np.abs(np.log(w["items.price"] / (1.5 * w["_spend"])))
    electronics = (w["merchants.category"] == "electronics") & \
        np.isin(w["items.category"], ["phone", "game"])
    return (p["intercept"]
            + p["price_fit"] * price_fit
            + AFFINITY[w["_segment"], w["_category"]]
            + p["activity"] * np.log1p(w["txn_count_24h"])
            + p["risk_tier"] * (w["users.risk_tier"] - 1)
            + p["merchant_risk"] * w["merchants.risk_score"]
            + p["electronics_fit"] * electronics)


def feature_column(name: str, w: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The column strata would fill for feature `name`, as float64 (NaN = null).
    A name the synthetic pairs do not model gets random values the label
    ignores: N(0,1), or 0/1 for a NAME=TEXT."""
    n = len(w["_spend"])
    key, eq, text = name.partition("=")
    if key not in w:
        print(f"note: no synthetic values for {key}: {name} is random, the label ignores it",
              file=sys.stderr)
        return (rng.random(n) < 0.1).astype(np.float64) if eq else rng.normal(0.0, 1.0, n)
    col = w[key]
    if not eq:
        return col.astype(np.float64)
    if col.dtype == object:
        return (col == text).astype(np.float64)
    try:
        return (col == float(text)).astype(np.float64)
    except ValueError:
        return np.zeros(n)


def make_dataset(features: list[str], n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows (float32, with the nulls of MISSING_PATTERNS), labels, and
    the labels' true probabilities."""
    w = make_world(n, rng)
    p = 1.0 / (1.0 + np.exp(-purchase_logit(w)))
    y = (rng.random(n) < p).astype(np.int64)
    X = np.column_stack([feature_column(f, w, rng) for f in features])
    for _name, rate, hits in MISSING_PATTERNS:
        rows = rng.random(n) < rate
        cols = [j for j, f in enumerate(features) if hits(f)]
        if cols:
            X[np.ix_(rows, cols)] = np.nan
    # float32 everywhere: the ONNX input is float32, so train on exactly those values.
    return X.astype(np.float32), y, p


def fit_imputer(X: np.ndarray, features: list[str]):
    """A fitted SimpleImputer that fills in each feature's NaN by impute_rule()
    (median strategy, the other rules' values set in statistics_, which both
    transform() and skl2onnx read; see train_fraud_model.py)."""
    from sklearn.impute import SimpleImputer

    imputer = SimpleImputer(strategy="median").fit(X)
    for j, f in enumerate(features):
        strategy, value = impute_rule(f)
        if strategy == "constant":
            imputer.statistics_[j] = value
        elif strategy != "median":
            imputer.statistics_[j] = SimpleImputer(strategy=strategy).fit(X[:, [j]]).statistics_[0]
    return imputer


def missing_cases(X: np.ndarray, features: list[str]) -> list[np.ndarray]:
    """The rows X with the features of each missing pattern set to NaN, and a
    row with every feature missing."""
    cases = []
    for _name, _rate, hits in MISSING_PATTERNS:
        cols = [j for j, f in enumerate(features) if hits(f)]
        if cols:
            Xc = X.copy()
            Xc[:, cols] = np.nan
            cases.append(Xc)
    cases.append(np.full((1, len(features)), np.nan, dtype=np.float32))
    return cases


def effects(model, X: np.ndarray, features: list[str]) -> list[str]:
    """How the mean P(purchase) over the rows X moves as one feature (or one
    one-hot group, NAME=*) is set to each of a few values in every row; then
    price against usual spend, and category among the rows of a segment, when
    the model has those features."""
    def mean_p(setting: dict[int, float], rows: np.ndarray | None = None) -> float:
        Xv = X.copy() if rows is None else X[rows]
        for j, v in setting.items():
            Xv[:, j] = v
        return float(model.predict_proba(Xv)[:, 1].mean())

    def quantiles(j: int) -> list[float]:
        v = X[:, j][~np.isnan(X[:, j])]
        if not len(v):
            return []
        return sorted(set(float(q) for q in np.quantile(v, [0.1, 0.5, 0.9], method="nearest")))

    def onehot(cols: list[int], j: int) -> dict[int, float]:
        return {c: 1.0 if c == j else 0.0 for c in cols}

    lines = []
    groups: dict[str, list[int]] = {}
    for j, f in enumerate(features):
        if "=" in f:
            groups.setdefault(f.split("=", 1)[0], []).append(j)
        elif quantiles(j):
            lines.append(f"{f}: " + ", ".join(f"{q:.4g} {mean_p({j: q}):.3f}" for q in quantiles(j)))
    for key, cols in groups.items():
        parts = [f"{features[j].split('=', 1)[1]} {mean_p(onehot(cols, j)):.3f}" for j in cols]
        if len(cols) == 1:
            parts.insert(0, f"not {mean_p({cols[0]: 0.0}):.3f}")
        lines.append(f"{key}=: " + ", ".join(parts))

    if "avg_amount_24h" in features and "items.price" in features:
        a, pr = features.index("avg_amount_24h"), features.index("items.price")
        for q in quantiles(a)[::2]:
            lines.append(f"items.price at avg_amount_24h {q:.4g}: " + ", ".join(
                f"{price:g} {mean_p({a: q, pr: price}):.3f}" for price in (20.0, 100.0, 400.0)))
    cats = groups.get("items.category", [])
    if "user_segment_code" in features and cats:
        s = features.index("user_segment_code")
        for code in (0, 3):
            rows = X[:, s] == code
            if not rows.any():
                continue
            lines.append(f"items.category= for user_segment_code {code} ({SEGMENTS[code]}) rows: " + ", ".join(
                f"{features[j].split('=', 1)[1]} {mean_p(onehot(cats, j), rows):.3f}" for j in cats))
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default=",".join(DEFAULT_FEATURES),
                    help="comma-separated feature names, in model input order")
    ap.add_argument("--out", default="recommend.onnx", help="path of the ONNX model to write")
    ap.add_argument("--samples", type=int, default=25000,
                    help="synthetic (user, item) pairs; 80%% train the model, 20%% measure it")
    ap.add_argument("--seed", type=int, default=42)
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict | None:
    """Trains, exports and checks; returns the fitted pipeline and the model
    bytes (None after an argument error, reported on stderr)."""
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    if not features:
        print("error: --features is empty", file=sys.stderr)
        return None
    if len(set(features)) != len(features):
        print("error: --features has duplicate names", file=sys.stderr)
        return None
    text = [f for f in features if f in TEXT_COLUMNS]
    if text:
        print(f"error: --features: text columns, which strata reads as NaN: {', '.join(text)} "
              f"(use NAME=TEXT, a one-hot column)", file=sys.stderr)
        return None
    if args.samples < 100:
        print("error: --samples must be at least 100", file=sys.stderr)
        return None
    n_feat = len(features)

    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(args.seed)
    X, y, p_true = make_dataset(features, args.samples, rng)
    n_train = args.samples * 4 // 5
    X_train, y_train = X[:n_train], y[:n_train]
    X_test, y_test = X[n_train:], y[n_train:]

    imputer = fit_imputer(X_train, features)
    clf = GradientBoostingClassifier(n_estimators=60, max_depth=4, learning_rate=0.1,
                                     random_state=args.seed)
    model = Pipeline([("impute", imputer), ("clf", clf)])
    # The imputer is fitted already (Pipeline.fit would refit it and undo the
    # per-feature values); fit the classifier on its output.
    model[1:].fit(imputer.transform(X_train), y_train)

    data = export_onnx(model, clf, "strata_recommend_model", features)
    with open(args.out, "wb") as fh:
        fh.write(data)

    sess = ort_session(data)

    # A few held-out rows as they come (some with NaN), then the same rows with
    # each missing pattern's features NaN, and a row of NaN.
    X_few = X_test[:64]
    X_check = np.concatenate([X_few] + missing_cases(X_few, features))
    proba = sess.run(["probabilities"], {"features": X_check})[0]
    max_diff = float(np.max(np.abs(model.predict_proba(X_check) - proba)))
    n_nan = int(np.isnan(X_check).any(axis=1).sum())

    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    auc_true = roc_auc_score(y_test, p_true[n_train:])
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"features ({n_feat}): {','.join(features)}")
    print(f"train_rows={n_train} test_rows={len(X_test)} purchase_rate={y_train.mean():.4f} "
          f"train_rows_with_nan={int(np.isnan(X_train).any(axis=1).sum())}")
    print(f"held-out AUC {auc:.4f} (the labels' true probabilities: {auc_true:.4f})")
    print(f"inputs: {[(i.name, i.type, i.shape) for i in sess.get_inputs()]}")
    print(f"outputs: {[(o.name, o.type, o.shape) for o in sess.get_outputs()]} "
          f"(score: probabilities[:, 1])")
    print("NaN imputed as: " + ", ".join(
        f"{f}={imputer.statistics_[j]:g} ({impute_rule(f)[0]})" for j, f in enumerate(features)))
    print("mean P(purchase) over held-out rows with one feature set to:")
    for line in effects(model, X_test[:2000], features):
        print(f"  {line}")
    print(f"max |sklearn - onnxruntime| on {len(X_check)} rows ({n_nan} with NaN): {max_diff:.3g}")
    if max_diff > 1e-5:
        print("error: onnxruntime and scikit-learn disagree by more than 1e-5", file=sys.stderr)
        raise SystemExit(1)
    return {"model": model, "features": features, "onnx": data}


def main(argv: list[str]) -> int:
    return 0 if run(parse_args(argv)) is not None else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
