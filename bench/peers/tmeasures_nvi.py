#!/usr/bin/env python3
"""Peer benchmark: tmeasures 1.2.11 NormalizedVarianceInvariance of every layer of the Fashion CNN.

What it runs, with tmeasures' own PyTorch API:

    model = tm.pytorch.AutoActivationsModule(FashionCNN(), full_name=False)   # hooks on all 11 layers
    transformations = TranslationGenerator(TranslationUniform(1, 2/28))        # the 9 shifts {-2,0,2}^2 px
    measure = tm.pytorch.NormalizedVarianceInvariance()
    measure.eval(dataset, transformations, model, PyTorchMeasureOptions(batch_size=B, verbose=False))

on the first N Fashion-MNIST test images (`--images`, default 1000; pixels / 255). nnlens's counterpart:

    nnlens run nvi --model fashion_cnn.onnx --dataset fashion-mnist --split test \
        --data-dir /work/shared/data/fashion-mnist --samples 1000 \
        --transformations 'translation:dx=-2..2,dy=-2..2,step=2' --batch-size 256

The model: a torch nn.Module with the layers nnlens finds in fashion_cnn.onnx (conv_1, relu_1, maxp_1,
conv_2, relu_2, maxp_2, flat, dense_1, relu_3, dense_2, softmax; dropout is the identity at
inference and is not a node of the ONNX graph), NCHW, weights copied from the ONNX initializers
(Conv weights are OIHW in both; Keras 'same' for k=2 = pad 0 before, 1 after = torch
padding='same'; `flat` permutes to NHWC before flattening, as the ONNX graph's Transpose does;
Dense = x @ W with W [in, out] from the MatMul initializer). Checked against onnxruntime on 100 test
images (max |diff| < 1e-5, assert).

The transformations: tmeasures' TranslationTransformation (F.affine_grid + F.grid_sample, bilinear,
align_corners=False, padding_mode='border') with t = 2/28 of the image size: an integer shift by 2
pixels whose border is filled with the edge pixels (= nnlens's default `--fill edge`, bilinear). The
script checks that each of the 9 is that shift (max |diff| < 1e-5 against a numpy edge-padded shift);
tmeasures has no zero-filled translation (`--fill 0` in nnlens would be a different workload).

How tmeasures batches: the transformation variance pass iterates samples x transformations, one
DataLoader per sample, so it always runs batches of 9 (the row length), whatever --batch-size; the
sample variance pass iterates transformations x samples in batches of --batch-size. Forwards:
2 x N x 9.

Output: one JSON line {"peer":"tmeasures","batch":B,"images":N,"wall_loop_s":...,"layers":k}
(wall_loop_s = `measure.eval` only), then '#' lines with tmeasures' per-layer averages
(`per_layer_average()`: mean of the finite values), for comparison with nnlens's layers.csv.

Venv (Python 3.11, PyPI only; torch from PyPI = the CUDA build, it runs on CPU here):

    /usr/bin/python3.11 -m venv $HOME/.cache/nnlens/tmeasures-venv
    $HOME/.cache/nnlens/tmeasures-venv/bin/pip install tmeasures==1.2.11 statsmodels torch onnx onnxruntime

pip freeze (key packages) of the venv this was verified with:

    tmeasures==1.2.11  torch==2.15.0  numpy==2.4.6  statsmodels==0.15.0  scipy==1.17.1
    onnx==1.23.2  onnxruntime==1.32.0  scikit-image==0.26.0  opencv-python==5.1.0.95

Run (full workload, 1000 images x 9 translations):

    P=$HOME/.cache/nnlens/tmeasures-venv/bin/python
    $P bench/peers/tmeasures_nvi.py --batch-size 32
    $P bench/peers/tmeasures_nvi.py --batch-size 256
    # small check: --images 20
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time
import warnings

import numpy as np

# torch's notes on padding='same' with k=2 and on pin_memory without a GPU: expected, not errors.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true")

MODELS = os.environ.get("NNLENS_MODELS", "/work/shared/models")
DATA = os.environ.get("NNLENS_FASHION", "/work/shared/data/fashion-mnist")
SHIFT = 2  # pixels
SIZE = 28


def read_idx(path):
    """An IDX (optionally gzipped) file as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an unsigned-byte IDX file"
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def onnx_weights(path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    g = lambda layer, kind: w[f"model/{layer}/{kind}/ReadVariableOp:0"].copy()
    return {
        "conv_1": (g("conv_1", "Conv2D"), g("conv_1", "BiasAdd")),
        "conv_2": (g("conv_2", "Conv2D"), g("conv_2", "BiasAdd")),
        "dense_1": (g("dense_1", "MatMul"), g("dense_1", "BiasAdd")),
        "dense_2": (g("dense_2", "MatMul"), g("dense_2", "BiasAdd")),
    }


def build_model(weights):
    import torch
    from torch import nn

    class FlattenNHWC(nn.Module):
        """Keras Flatten of channels-last maps: NCHW -> NHWC -> (N, H*W*C)."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    class FashionCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_1 = nn.Conv2d(1, 64, 2, padding="same")
            self.relu_1 = nn.ReLU()
            self.maxp_1 = nn.MaxPool2d(2)
            self.conv_2 = nn.Conv2d(64, 64, 2, padding="same")
            self.relu_2 = nn.ReLU()
            self.maxp_2 = nn.MaxPool2d(2)
            self.flat = FlattenNHWC()
            self.dense_1 = nn.Linear(3136, 256)
            self.relu_3 = nn.ReLU()
            self.dense_2 = nn.Linear(256, 10)
            self.softmax = nn.Softmax(dim=1)

        def forward(self, x):
            for m in self.children():  # registration order = the layer order
                x = m(x)
            return x

    net = FashionCNN()
    with torch.no_grad():
        for name in ("conv_1", "conv_2"):
            k, b = weights[name]
            getattr(net, name).weight.copy_(torch.from_numpy(k))  # OIHW in ONNX and torch
            getattr(net, name).bias.copy_(torch.from_numpy(b))
        for name in ("dense_1", "dense_2"):
            k, b = weights[name]
            getattr(net, name).weight.copy_(torch.from_numpy(k.T))  # [in,out] -> [out,in]
            getattr(net, name).bias.copy_(torch.from_numpy(b))
    return net.eval()


class ImageDataset:
    """Map-style dataset of (1, 28, 28) float tensors, as tmeasures' STDataset wants."""

    def __init__(self, x):
        import torch

        self.x = torch.from_numpy(x)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def check_translations(transformations, x):
    """Each tmeasures translation is an integer shift by 0 or +-2 px with edge fill."""
    import torch

    img = torch.from_numpy(x[0])
    expected = set()
    for dx in (-SHIFT, 0, SHIFT):
        for dy in (-SHIFT, 0, SHIFT):
            p = np.pad(x[0, 0], SHIFT, mode="edge")
            expected.add(((dx, dy), p[SHIFT - dy:SHIFT - dy + SIZE, SHIFT - dx:SHIFT - dx + SIZE].tobytes()))
    worst = 0.0
    found = []
    for t in transformations:
        out = t(img)[0].numpy()
        best = min(expected, key=lambda e: np.abs(out - np.frombuffer(e[1], np.float32).reshape(SIZE, SIZE)).max())
        d = float(np.abs(out - np.frombuffer(best[1], np.float32).reshape(SIZE, SIZE)).max())
        worst = max(worst, d)
        found.append(best[0])
    assert len(set(found)) == 9 and worst < 1e-5, f"translations: {found}, max |diff| {worst:.3g}"
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="first N test images (default 1000)")
    ap.add_argument("--batch-size", type=int, default=32, help="PyTorchMeasureOptions.batch_size")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--data-dir", default=DATA)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch
    import tmeasures as tm
    from tmeasures.pytorch.transformations.affine import TranslationGenerator
    from tmeasures.transformations.parameters import TranslationUniform

    if args.threads:
        torch.set_num_threads(args.threads)
    onnx_path = os.path.join(args.models, "fashion_cnn.onnx")
    x = read_idx(os.path.join(args.data_dir, "t10k-images-idx3-ubyte.gz"))
    x = (x.astype("float32") / 255)[:, None]  # NCHW (N, 1, 28, 28)

    net = build_model(onnx_weights(onnx_path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    probe = x[:100]
    ref = sess.run(None, {sess.get_inputs()[0].name: probe.transpose(0, 2, 3, 1).copy()})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(probe)).numpy()
    diff = float(np.abs(got - ref).max())
    assert diff < 1e-5, f"torch vs onnxruntime: max |diff| {diff:.3g} >= 1e-5"
    print(f"# torch vs onnxruntime on 100 test images: max |diff| {diff:.3g}", flush=True)

    transformations = TranslationGenerator(TranslationUniform(1, SHIFT / SIZE))
    assert len(transformations) == 9
    tdiff = check_translations(transformations, x)
    print(f"# tmeasures translations = edge-filled integer shifts dx,dy in {{-2,0,2}}: "
          f"max |diff| {tdiff:.3g}", flush=True)

    n = min(args.images, len(x))
    dataset = ImageDataset(np.ascontiguousarray(x[:n]))
    model = tm.pytorch.AutoActivationsModule(net, full_name=False)
    names = list(model.activation_names())
    options = tm.pytorch.PyTorchMeasureOptions(batch_size=args.batch_size, num_workers=0,
                                               verbose=False)
    measure = tm.pytorch.NormalizedVarianceInvariance()

    t0 = time.perf_counter()
    result = measure.eval(dataset, transformations, model, options)
    wall = time.perf_counter() - t0

    result = result.numpy()
    print(json.dumps({
        "peer": "tmeasures",
        "batch": args.batch_size,
        "images": int(n),
        "wall_loop_s": round(wall, 4),
        "layers": len(result.layers),
    }), flush=True)
    print(f"# torch threads {torch.get_num_threads()}; forwards {2 * n * len(transformations)}")
    print("# per-layer average (layer, value):")
    for name, v in zip(names, result.per_layer_average()):
        print(f"# {name} {v:.6f}")


if __name__ == "__main__":
    sys.exit(main())
