#!/usr/bin/env python3
"""Peer benchmark: alibi 0.9.6 `linearity_measure`, per class, on the Fashion-MNIST CNN.

What it runs (the alibi linearity notebook's per-class cell, `linearity_measure_fashion_mnist.ipynb`):

    features_range = infer_feature_range(x_test)            # all 10000 test images
    for each class c:
        linearity_measure(predict_fn, x_c, feature_range=features_range,
                          agg='global', model_type='classifier', nb_samples=20)
    # method='grid', epsilon=0.04, res=100 (the defaults), alphas = 1/20 each

on the first N test images (`--images N`, default 10000 = the notebook's workload), grouped by
class in their test-set order (the notebook shuffles within a class with an unseeded
`np.random.permutation`; that changes only which random offsets an instance gets, so it is
left out to keep instance i comparable with nnlens's instances.csv). nnlens's counterpart:

    nnlens --seed 0 run linearity --model /work/shared/models/fashion_cnn.onnx \
        --dataset fashion-mnist --split test --data-dir /work/shared/data/fashion-mnist \
        --per-class --nb-samples 20 --out runs/lin
    (for --images N < 10000: the same rows are `--indices` 0..N-1)

`--predict keras`: the notebook's `cnn.predict` (Keras default batch 32) on a tf.keras model built
here with the architecture of /work/shared/models/fashion_cnn.onnx and its weights copied from
the ONNX initializers (Conv OIHW -> Keras HWIO; Dense [in, out] as is). `--predict
onnxruntime`: one ORT session on fashion_cnn.onnx (intra_op threads = all cores); alibi hands
predict_fn all n*nb_samples rows of a class at once (20,000 for a full class), which predict_fn
runs in chunks of `--ort-batch` rows (default 1024; one 20,000-row call would hold ~4 GB of
conv_1 activations), the setting of the notes' ORT floor measurement. Before
timing, Keras is checked against ORT on 100 test images (max |diff| < 1e-5, assert).

Output: one JSON line {"peer":"alibi","predict":...,"batch":rows per model call,"images":N,"wall_loop_s":...,"forwards":...,
"mean_linearity":...} (wall_loop_s = the per-class linearity loop only: no model building, data
loading or the check), then the first 5 per-instance values (test row, label, L) in the order of
nnlens's instances.csv (class 0's rows first), on stdout lines prefixed with '#'.

Venv (Python 3.11, PyPI only). The requested pins resolve, but two packages must then be fixed:
onnx resolves to 1.19, which needs an ml_dtypes newer than TF 2.14's pin (ml-dtypes 0.2.0):
"cannot import name 'float4_e2m1fn'", so onnx<1.18; and alibi imports spacy 3.7.5, whose CLI imports
click, which the resolved typer 0.29 no longer pulls in: "No module named 'click'".

    /usr/bin/python3.11 -m venv $HOME/.cache/nnlens/peers-venv
    $HOME/.cache/nnlens/peers-venv/bin/pip install alibi==0.9.6 tensorflow-cpu==2.14.1 \
        "numpy<2" onnx onnxruntime
    $HOME/.cache/nnlens/peers-venv/bin/pip install "onnx<1.18" click

pip freeze (key packages) of the venv this was verified with (`pip check`: no broken requirements):

    alibi==0.9.6  tensorflow-cpu==2.14.1  keras==2.14.0  numpy==1.26.4  ml-dtypes==0.2.0
    onnx==1.17.0  onnxruntime==1.32.0  protobuf==4.25.9  scikit-learn==1.9.1  scipy==1.17.1
    spacy==3.7.5  click==8.5.1

Run (full workload, 10000 images = 210,000 forwards):

    P=$HOME/.cache/nnlens/peers-venv/bin/python
    $P bench/peers/alibi_linearity.py --predict onnxruntime
    $P bench/peers/alibi_linearity.py --predict keras
    # small check: --images 50
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
MODELS = os.environ.get("NNLENS_MODELS", "/work/shared/models")
DATA = os.environ.get("NNLENS_FASHION", "/work/shared/data/fashion-mnist")


def read_idx(path):
    """An IDX (optionally gzipped) file as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an unsigned-byte IDX file"
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_test(data_dir):
    x = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    x = (x.astype("float32") / 255)[..., None]  # (N, 28, 28, 1), as the notebook
    return x, y.astype(np.int64)


def onnx_weights(path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    g = lambda layer, kind: w[f"model/{layer}/{kind}/ReadVariableOp:0"]
    return {
        "conv_1": (g("conv_1", "Conv2D"), g("conv_1", "BiasAdd")),
        "conv_2": (g("conv_2", "Conv2D"), g("conv_2", "BiasAdd")),
        "dense_1": (g("dense_1", "MatMul"), g("dense_1", "BiasAdd")),
        "dense_2": (g("dense_2", "MatMul"), g("dense_2", "BiasAdd")),
    }


def keras_model(weights):
    """The notebook's CNN (same layer names), weights from the ONNX file."""
    import tensorflow as tf
    from tensorflow.keras.layers import (Activation, Conv2D, Dense, Dropout, Flatten, Input,
                                         MaxPooling2D)
    from tensorflow.keras.models import Model

    x_in = Input(shape=(28, 28, 1), name="input")
    x = Conv2D(filters=64, kernel_size=2, padding="same", name="conv_1")(x_in)
    x = Activation("relu", name="relu_1")(x)
    x = MaxPooling2D(pool_size=2, name="maxp_1")(x)
    x = Dropout(0.3, name="drop_1")(x)
    x = Conv2D(filters=64, kernel_size=2, padding="same", name="conv_2")(x)
    x = Activation("relu", name="relu_2")(x)
    x = MaxPooling2D(pool_size=2, name="maxp_2")(x)
    x = Dropout(0.3, name="drop_2")(x)
    x = Flatten(name="flat")(x)  # NHWC order; the ONNX graph transposes to NHWC before flat too
    x = Dense(256, name="dense_1")(x)
    x = Activation("relu", name="relu_3")(x)
    x = Dropout(0.5, name="drop_3")(x)
    x = Dense(10, name="dense_2")(x)
    x_out = Activation("softmax", name="softmax")(x)
    cnn = Model(inputs=x_in, outputs=x_out)
    cnn.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    for name in ("conv_1", "conv_2"):
        k, b = weights[name]
        cnn.get_layer(name).set_weights([k.transpose(2, 3, 1, 0), b])  # OIHW -> HWIO
    for name in ("dense_1", "dense_2"):
        k, b = weights[name]
        cnn.get_layer(name).set_weights([k, b])  # ONNX MatMul B is [in, out], as Keras
    _ = tf  # imported for its side effects (Keras backend)
    return cnn


def ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000, help="first N test images (default 10000)")
    ap.add_argument("--predict", choices=["keras", "onnxruntime"], default="onnxruntime")
    ap.add_argument("--seed", type=int, default=0, help="np.random.seed before the loop")
    ap.add_argument("--ort-batch", type=int, default=1024,
                    help="rows per ORT run call inside predict_fn (default 1024)")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--data-dir", default=DATA)
    args = ap.parse_args()

    from alibi.confidence import linearity_measure
    from alibi.confidence.model_linearity import infer_feature_range

    onnx_path = os.path.join(args.models, "fashion_cnn.onnx")
    x_test, y_test = load_test(args.data_dir)
    sess = ort_session(onnx_path)
    in_name = sess.get_inputs()[0].name

    def predict_ort(x, chunk=None):
        x = np.ascontiguousarray(x, dtype=np.float32)
        chunk = chunk or len(x)
        return np.concatenate([sess.run(None, {in_name: x[i:i + chunk]})[0]
                               for i in range(0, len(x), chunk)])

    # Keras built from the ONNX weights, checked against ORT (always, whatever --predict).
    cnn = keras_model(onnx_weights(onnx_path))
    probe = x_test[:100]
    diff = float(np.abs(cnn.predict(probe, verbose=0) - predict_ort(probe)).max())
    assert diff < 1e-5, f"keras vs onnxruntime: max |diff| {diff:.3g} >= 1e-5"
    print(f"# keras vs onnxruntime on 100 test images: max |diff| {diff:.3g}", flush=True)

    forwards = 0
    if args.predict == "keras":
        def predict_fn(x):
            nonlocal forwards
            forwards += len(x)
            return cnn.predict(x, verbose=0)  # the notebook's cnn.predict (batch 32)
    else:
        def predict_fn(x):
            nonlocal forwards
            forwards += len(x)
            return predict_ort(x, args.ort_batch)

    features_range = infer_feature_range(x_test)  # the notebook: the whole test set
    n = min(args.images, len(x_test))
    rows = np.arange(n)
    classes = [rows[y_test[:n] == c] for c in range(10)]

    np.random.seed(args.seed)
    values = {}
    t0 = time.perf_counter()
    for c, idx in enumerate(classes):
        if len(idx) == 0:
            continue
        lin = linearity_measure(predict_fn, x_test[idx], feature_range=features_range,
                                agg="global", model_type="classifier", nb_samples=20)
        values.update(zip(idx.tolist(), lin.tolist()))
    wall = time.perf_counter() - t0

    allv = np.array([values[r] for r in sorted(values)])
    print(json.dumps({
        "peer": "alibi",
        "predict": args.predict,
        "batch": 32 if args.predict == "keras" else args.ort_batch,
        "images": int(n),
        "wall_loop_s": round(wall, 4),
        "forwards": int(forwards),
        "mean_linearity": float(allv.mean()),
    }), flush=True)
    # nnlens's instances.csv order with --per-class: class 0's rows first, in test-set order.
    print("# first 5 instances, instances.csv order (index, label, linearity):")
    for r in np.concatenate(classes)[:5].tolist():
        print(f"# {r} {int(y_test[r])} {values[r]:.6f}")


if __name__ == "__main__":
    sys.exit(main())
