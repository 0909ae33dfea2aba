#!/usr/bin/env python3
"""Regenerate the test assets of tests/check_scorer.c in this directory.

Run with the stack's venv (onnxruntime 1.21, scikit-learn, skl2onnx, onnx):

    .stack/venv/bin/python tests/data/make_models.py

Everything is seeded and written with fixed IR/opset versions, so the same
package versions give byte-identical files. What it writes:

  fraud_model.onnx, fraud_model.json
        examples/train_fraud_model.py with its defaults (an imputer and
        GradientBoosting, 14 features, seed 42): the model and its 64
        (complete) reference rows with the outputs of onnxruntime (Python).
  fraud_nan.json
        rows of fraud_model.json with features set missing (JSON null = NaN)
        and the probabilities onnxruntime (Python) computes for them, checked
        against scikit-learn's (also written, as sklearn_probabilities).
  score_n1.onnx   features float [N,3] -> score float [N,1] =
                  sigmoid(x . (0.5, -1.25, 2) + 0.1); strata.features "a,b,c"
  score_n.onnx    features float [N,3] -> total float [N] = x . (1, 2, 3);
                  no metadata
  bad_input_int64.onnx  input int64 [N,3]
  bad_input_rank.onnx   input float [N] (rank 1)
  bad_output.onnx       output float [N,3] only
  bad_meta.onnx         score_n1 with strata.features naming 2 columns of 3
  recommend_lin.onnx    features float [N,10] -> total float [N] = x . w,
                        w = (1, 0.01, 10, -5, 3, 100, 1000, 0.5, 7, 20);
                        strata.features names a vector field, item,
                        merchant and user columns, one-hot ones on
                        string, boolean and integer columns included
                        (tests/check_server.c, RECOMMEND)
  zipmap.onnx           a LogisticRegression exported with skl2onnx's
                        default ZipMap output (a sequence of maps)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
IR_VERSION = 8          # onnxruntime 1.21 reads IR <= 10
OPSET = [helper.make_opsetid("", 17)]


def save(model: onnx.ModelProto, name: str) -> None:
    model.ir_version = IR_VERSION
    model.producer_name = "strata tests/data/make_models.py"
    onnx.checker.check_model(model)
    with open(os.path.join(HERE, name), "wb") as fh:
        fh.write(model.SerializeToString())


def meta(model: onnx.ModelProto, value: str) -> None:
    p = model.metadata_props.add()
    p.key = "strata.features"
    p.value = value


def linear_models() -> None:
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [0.5, -1.25, 2.0])
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [0.1])
    g = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["score"])],
        "score_n1", [x],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[w, b])
    m = helper.make_model(g, opset_imports=OPSET)
    meta(m, "a,b,c")
    save(m, "score_n1.onnx")
    del m.metadata_props[:]
    meta(m, "a,b")
    save(m, "bad_meta.onnx")

    w3 = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    g = helper.make_graph(
        [helper.make_node("Mul", ["features", "w"], ["xw"]),
         helper.make_node("ReduceSum", ["xw", "axes"], ["total"],
                          keepdims=0)],
        "score_n", [x],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])],
        initializer=[w3, axes])
    save(helper.make_model(g, opset_imports=OPSET), "score_n.onnx")


RECOMMEND_FEATURES = ("spend,items.price,items.category=book,merchants.risk_score,"
                      "merchants.category=travel,users.risk_tier,users.segment=gold,"
                      "items.flag,items.flag=true,merchants.mcc=5411")
RECOMMEND_WEIGHTS = [1.0, 0.01, 10.0, -5.0, 3.0, 100.0, 1000.0, 0.5, 7.0, 20.0]


def recommend_model() -> None:
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 10])
    w = helper.make_tensor("w", TensorProto.FLOAT, [10], RECOMMEND_WEIGHTS)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    g = helper.make_graph(
        [helper.make_node("Mul", ["features", "w"], ["xw"]),
         helper.make_node("ReduceSum", ["xw", "axes"], ["total"],
                          keepdims=0)],
        "recommend_lin", [x],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])],
        initializer=[w, axes])
    m = helper.make_model(g, opset_imports=OPSET)
    meta(m, RECOMMEND_FEATURES)
    save(m, "recommend_lin.onnx")


def bad_models() -> None:
    xi = helper.make_tensor_value_info("features", TensorProto.INT64, ["N", 3])
    g = helper.make_graph(
        [helper.make_node("Cast", ["features"], ["score"],
                          to=TensorProto.FLOAT)],
        "bad_input_int64", [xi],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 3])])
    save(helper.make_model(g, opset_imports=OPSET), "bad_input_int64.onnx")

    x1 = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N"])
    g = helper.make_graph(
        [helper.make_node("Sigmoid", ["features"], ["score"])],
        "bad_input_rank", [x1],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])])
    save(helper.make_model(g, opset_imports=OPSET), "bad_input_rank.onnx")

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])
    g = helper.make_graph(
        [helper.make_node("Sigmoid", ["features"], ["score"])],
        "bad_output", [x],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 3])])
    save(helper.make_model(g, opset_imports=OPSET), "bad_output.onnx")


def zipmap_model() -> None:
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    clf = LogisticRegression(random_state=7).fit(X, y)
    m = convert_sklearn(clf, name="zipmap",
                        initial_types=[("features", FloatTensorType([None, 3]))],
                        target_opset={"": 17, "ai.onnx.ml": 3})
    opsets = sorted((o.domain, o.version) for o in m.opset_import)
    del m.opset_import[:]
    for domain, version in opsets:
        m.opset_import.add(domain=domain, version=version)
    save(m, "zipmap.onnx")


def fraud_model():
    """Runs examples/train_fraud_model.py with its defaults in this process,
    writing fraud_model.onnx and fraud_model.json here; returns the fitted
    scikit-learn pipeline."""
    path = os.path.join(TOP, "examples", "train_fraud_model.py")
    spec = importlib.util.spec_from_file_location("train_fraud_model", path)
    tfm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tfm)
    cwd = os.getcwd()
    os.chdir(HERE)          # the reference names the model as given
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            out = tfm.run(tfm.parse_args(["--out", "fraud_model.onnx",
                                          "--reference", "fraud_model.json"]))
    finally:
        os.chdir(cwd)
    if out is None:
        sys.exit("examples/train_fraud_model.py failed")
    return out["model"]


def fraud_nan(model) -> None:
    import onnxruntime as ort

    with open(os.path.join(HERE, "fraud_model.json")) as fh:
        ref = json.load(fh)
    col = {f: j for j, f in enumerate(ref["features"])}
    # check_scorer.c relies on rows 0, 1 and 3.
    X = np.array(ref["rows"][:12], dtype=np.float32)
    nf = X.shape[1]
    X[0, 0] = np.nan                  # txn_count_1h
    X[1, nf - 1] = np.nan             # amount
    X[2, 7] = np.nan                  # amount_over_avg_24h
    X[3, :] = np.nan                  # an entity without any feature
    X[4, 1::2] = np.nan               # every other feature
    X[5, 10] = np.nan                 # user_risk_tier
    # rows 6, 7 complete
    first_txn = [col["amount_over_avg_24h"], col["secs_since_prev_txn"]]
    no_user = [col["user_segment_code"], col["user_risk_tier"],
               col["country_mismatch"]]
    X[8, first_txn] = np.nan          # a user's first transaction
    X[9, no_user] = np.nan            # no row in the users dimension
    X[10, first_txn + no_user] = np.nan   # a new user's first transaction
    X[11, col["secs_since_prev_txn"]] = np.nan
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(HERE, "fraud_model.onnx"),
                                sess_options=so,
                                providers=["CPUExecutionProvider"])
    proba = sess.run(["probabilities"], {"features": X})[0]
    skl = model.predict_proba(X)
    diff = float(np.max(np.abs(skl - proba)))
    if diff > 1e-6:
        sys.exit(f"fraud_nan.json: onnxruntime and scikit-learn differ by {diff:g}")
    out = {
        "model_file": "fraud_model.onnx",
        "onnxruntime_version": ort.__version__,
        "note": "null = NaN (a missing feature); rows are fraud_model.json's",
        "rows": [[None if np.isnan(v) else float(v) for v in row]
                 for row in X],
        "probabilities": [[float(v) for v in row] for row in proba],
        "sklearn_probabilities": [[float(v) for v in row] for row in skl],
        "max_abs_diff_sklearn_vs_ort": diff,
    }
    with open(os.path.join(HERE, "fraud_nan.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")


def main() -> int:
    fraud_nan(fraud_model())
    linear_models()
    recommend_model()
    bad_models()
    zipmap_model()
    return 0


if __name__ == "__main__":
    sys.exit(main())
