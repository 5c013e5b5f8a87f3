"""onnxruntime's time per operator type on an ONNX model, beside `nnlens bench --profile`
(tract's table): the same random inputs in [0, 1), in batches of --batch, on --threads intra-op
threads (1 by default, as tract's profile runs on one thread).

    pip install onnxruntime numpy
    python bench/peers/ort_profile.py MODEL.onnx [--batch 8] [--images 2048] [--threads 1]

Prints one row per operator type: nodes, microseconds per input, share of the total.
"""

import argparse
import collections
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    out_dir = tempfile.mkdtemp(prefix="ort-profile-")
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(out_dir, "ort")
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    shape = [a.batch] + [d if isinstance(d, int) else 1 for d in meta.shape[1:]]
    dtype = np.float64 if "double" in meta.type else np.float32
    x = np.random.default_rng(a.seed).random(shape).astype(dtype)
    session.run(None, {meta.name: x})  # warm-up (also profiled; removed below)
    batches = max(1, a.images // a.batch)
    for _ in range(batches):
        session.run(None, {meta.name: x})
    trace = json.load(open(session.end_profiling()))

    runs = [e for e in trace if e.get("cat") == "Session" and e["name"] == "model_run"]
    first_run_end = runs[0]["ts"] + runs[0]["dur"] if runs else 0
    per_op = collections.defaultdict(float)
    nodes = collections.defaultdict(set)
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        if e["ts"] < first_run_end:
            continue  # the warm-up run
        op = e.get("args", {}).get("op_name", "?")
        per_op[op] += e["dur"]
        nodes[op].add(e["name"])
    inputs = batches * a.batch
    total = sum(per_op.values())
    print(f"{'operator':<24} {'nodes':>5} {'us/input':>9} {'share':>7}")
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1]):
        print(f"{op:<24} {len(nodes[op]):>5} {us / inputs:>9.1f} {100 * us / total:>6.1f}%")
    print(f"total {total / inputs:.1f} us per input in kernels on {a.threads} thread(s), "
          f"batch {a.batch}, onnxruntime {ort.__version__}")


if __name__ == "__main__":
    main()
