"""Models from the real exporters, for the interop suite (TestExporters).

Trains small models on seeded synthetic data and exports them as their users do: skl2onnx for
scikit-learn, onnxmltools for LightGBM and XGBoost. For each model it writes DIR/<name>.onnx
and computes, with ONNX Runtime's Python API, the outputs for a fixed batch of inputs: the
reference tritonlite's answers must equal. Prints one JSON object (the manifest) on stdout:

  {"models": [{"name": N, "file": F, "exporter": "skl2onnx 1.20.0", "what": "...",
               "inputs":  [{"name", "datatype", "shape", "data"}],
               "outputs": [{"name", "datatype", "shape", "data"}],
               "tolerance": float, "servable": bool, "refusal": "..."}]}

datatype is the protocol's ("FP32", "INT64", "BYTES"); BYTES data are strings. A model that
Triton's ONNX Runtime backend cannot serve (servable false: ZipMap's sequence of maps) carries
the refusal modelctl must give instead, and no outputs.

  --out DIR   where to write the models
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort

SEED = 7
ROWS = 4  # the batch the reference outputs are computed for


def protocol_type(a):
    if a.dtype == np.float32:
        return "FP32"
    if a.dtype == np.float64:
        return "FP64"
    if a.dtype == np.int64:
        return "INT64"
    if a.dtype == np.int32:
        return "INT32"
    if a.dtype == np.bool_:
        return "BOOL"
    if a.dtype.kind in ("O", "U", "S"):
        return "BYTES"
    raise ValueError("no protocol datatype for %s" % a.dtype)


def tensor(name, a):
    data = [str(x) for x in a.flatten()] if protocol_type(a) == "BYTES" else a.flatten().tolist()
    if protocol_type(a) == "BOOL":
        data = [bool(x) for x in data]
    return {"name": name, "datatype": protocol_type(a), "shape": list(a.shape), "data": data}


def reference(path, feeds):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    return [tensor(n, np.asarray(o)) for n, o in zip(names, outs)]


def save(out, name, onx):
    path = "%s/%s.onnx" % (out, name)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import lightgbm
    import onnxmltools
    import skl2onnx
    import sklearn
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

    rng = np.random.default_rng(SEED)
    models = []
    skl = "skl2onnx %s (scikit-learn %s)" % (skl2onnx.__version__, sklearn.__version__)
    mlt = "onnxmltools %s" % onnxmltools.__version__

    def add(name, exporter, what, onx, feeds, tolerance=1e-5, servable=True, refusal=""):
        path = save(a.out, name, onx)
        m = {"name": name, "file": path, "exporter": exporter, "what": what,
             "inputs": [tensor(k, v) for k, v in feeds.items()], "tolerance": tolerance,
             "servable": servable, "refusal": refusal, "outputs": []}
        if servable:
            m["outputs"] = reference(path, feeds)
        models.append(m)

    # A classifier with string class labels: ZipMap (the default) gives a sequence of maps,
    # which Triton cannot serve; zipmap=False gives a label tensor and a probability tensor.
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.array(["cat", "dog", "fish"])[(x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)]
    lr = LogisticRegression(max_iter=500).fit(x, y)
    feeds = {"X": x[:ROWS]}
    add("sklearn_logreg_zipmap", skl, "LogisticRegression, string class labels, ZipMap (the default)",
        to_onnx(lr, initial_types=[("X", FloatTensorType([None, 4]))], target_opset={"": 17, "ai.onnx.ml": 3}),
        feeds, servable=False,
        refusal="Unsupported ONNX Type 'ONNX_TYPE_SEQUENCE' for I/O 'output_probability', expected 'ONNX_TYPE_TENSOR'.")
    add("sklearn_logreg", skl, "LogisticRegression, string class labels, zipmap=False",
        to_onnx(lr, initial_types=[("X", FloatTensorType([None, 4]))], options={id(lr): {"zipmap": False}},
                target_opset={"": 17, "ai.onnx.ml": 3}),
        feeds)

    # A pipeline over a string column and two numbers: OneHotEncoder and StandardScaler in a
    # ColumnTransformer, then a classifier with integer labels.
    cats = rng.choice(["red", "green", "blue"], size=(60, 1))
    nums = rng.normal(size=(60, 2)).astype(np.float32)
    labels = ((cats[:, 0] == "red") ^ (nums[:, 0] > 0)).astype(np.int64)
    import pandas as pd
    frame = pd.DataFrame({"color": cats[:, 0], "a": nums[:, 0], "b": nums[:, 1]})
    pipe = Pipeline([
        ("prep", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                                    ("scale", StandardScaler(), ["a", "b"])])),
        ("clf", LogisticRegression(max_iter=500)),
    ]).fit(frame, labels)
    onx = to_onnx(pipe, initial_types=[("color", StringTensorType([None, 1])), ("a", FloatTensorType([None, 1])),
                                       ("b", FloatTensorType([None, 1]))],
                  options={id(pipe): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    add("sklearn_pipeline", skl, "ColumnTransformer(OneHotEncoder on a string column, StandardScaler) + LogisticRegression",
        onx, {"color": cats[:ROWS], "a": nums[:ROWS, :1], "b": nums[:ROWS, 1:]})

    # A LabelEncoder: strings in, their class indices out (string keys in the ONNX attributes).
    le = LabelEncoder().fit(["low", "medium", "high", "unknown"])
    words = np.array(["high", "low", "medium", "high"])
    add("sklearn_label_encoder", skl, "LabelEncoder, string keys",
        to_onnx(le, initial_types=[("words", StringTensorType([None]))], target_opset={"": 17, "ai.onnx.ml": 2}),
        {"words": words})

    # A text pipeline: TfidfVectorizer (Tokenizer, TfIdfVectorizer; no lower-casing, which
    # needs the en_US.UTF-8 locale in ONNX Runtime's StringNormalizer) + a classifier.
    docs = np.array(["the cat sat", "a dog ran", "the fish swam", "cat and dog", "dog ran far",
                     "fish and cat", "the dog sat", "a cat ran"] * 4)
    dlab = np.array([0, 1, 0, 1, 1, 0, 1, 0] * 4)
    text = Pipeline([("tfidf", TfidfVectorizer(lowercase=False)), ("clf", LogisticRegression(max_iter=500))]).fit(docs, dlab)
    onx = to_onnx(text, initial_types=[("text", StringTensorType([None, 1]))],
                  options={id(text): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    add("sklearn_tfidf", skl, "TfidfVectorizer + LogisticRegression", onx, {"text": docs[:ROWS].reshape(-1, 1)})

    # Gradient-boosted trees.
    xb = rng.normal(size=(200, 6)).astype(np.float32)
    yb = (xb[:, 0] * xb[:, 1] + xb[:, 2] > 0).astype(int)
    lgb = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, random_state=SEED, verbose=-1).fit(xb, yb)
    add("lightgbm_classifier", "%s (lightgbm %s)" % (mlt, lightgbm.__version__), "LGBMClassifier, 20 trees, zipmap=False",
        onnxmltools.convert_lightgbm(lgb, initial_types=[("input", MLFloat([None, 6]))], zipmap=False, target_opset=15),
        {"input": xb[:ROWS]}, tolerance=1e-4)
    xgb = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=SEED).fit(xb, yb)
    add("xgboost_classifier", "%s (xgboost %s)" % (mlt, xgboost.__version__), "XGBClassifier, 20 trees",
        onnxmltools.convert_xgboost(xgb, initial_types=[("input", MLFloat([None, 6]))], target_opset=15),
        {"input": xb[:ROWS]}, tolerance=1e-4)

    json.dump({"models": models}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
