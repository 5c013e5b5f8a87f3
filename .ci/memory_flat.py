"""Peak memory of `evaluate` and `run nvi` on image folders of 2,000 and 20,000 images: it must
not grow with the dataset (issue 16: less than 20% apart). Pure Python, no numpy.

    python3 .ci/memory_flat.py NNLENS_BINARY MODEL.onnx
"""
import os
import random
import resource
import subprocess
import sys
import tempfile

nnlens, model = sys.argv[1], sys.argv[2]


def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        f.write(data)


def peak_mib(args):
    """Peak RSS of nnlens, the median of three runs, each measured in a fresh Python child
    (ru_maxrss of its only child): one run's peak varies by a few MiB with the timing of its
    threads (measured 42-47 MiB for the same evaluate), as much as the listing of 18,000 more
    files adds."""
    return sorted(peak_once(args) for _ in range(3))[1]


def peak_once(args):
    code = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", code, nnlens, "-q", *args], stdout=subprocess.PIPE, check=True)
    return int(out.stdout.split()[-1]) / 1024


with tempfile.TemporaryDirectory() as tmp:
    rng = random.Random(16)
    n = 20000
    npy(f"{tmp}/x.npy", "|u1", (n, 32, 32, 3), rng.randbytes(n * 32 * 32 * 3))
    labels = b"".join(rng.randrange(4).to_bytes(8, "little") for _ in range(n))
    npy(f"{tmp}/y.npy", "<i8", (n,), labels)
    sizes = {}
    for count in (2000, 20000):
        folder = f"{tmp}/f{count}"
        subprocess.run(
            [nnlens, "-q", "sample", "--dataset", f"npy:{tmp}/x.npy", "--labels", f"{tmp}/y.npy",
             "--count", str(count), "--as", "folder", "--out", folder],
            check=True, stdout=subprocess.PIPE,
        )
        data = ["--model", model, "--dataset", f"folder:{folder}"]
        sizes[count] = (
            peak_mib(["evaluate", *data]),
            peak_mib(["run", "nvi", *data, "--samples", str(count), "--transformations", "rotation:n=2", "--out", f"{tmp}/nvi{count}"]),
        )
    failed = False
    for i, what in enumerate(["evaluate", "run nvi"]):
        small, large = sizes[2000][i], sizes[20000][i]
        ratio = large / small
        print(f"peak RSS of {what}: {small:.1f} MiB on 2,000 images, {large:.1f} MiB on 20,000 ({ratio:.3f}x)")
        failed |= not (0.8 < ratio < 1.2)
    if failed:
        sys.exit("error: peak memory grows with the dataset (more than 20% from 2,000 to 20,000 images)")
