"""Compares the result of a run merged from shards with the unsharded run's.

    python3 compare_results.py KIND WHOLE_DIR MERGED_DIR

KIND `nvi`: every number of result.json's "result" equal to 1e-12 relative (the merge adds the
shards' sums in another order); `exact`: every number identical (per-instance linearity,
similarity scores, influence, evaluate). Both: the same keys, lists of the same lengths, the
same strings, and the same files beside result.json. Timings (keys named "seconds", as
similarity's fit report has) are not compared.
"""

import json
import math
import os
import sys


def compare(a, b, path, rel, errors):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            errors.append(f"{path}: keys {sorted(set(a) ^ set(b))} in one only")
        for k in sorted(set(a) & set(b) - {"seconds"}):
            compare(a[k], b[k], f"{path}.{k}", rel, errors)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            errors.append(f"{path}: {len(a)} values against {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", rel, errors)
    elif isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        if a != b:
            errors.append(f"{path}: {a!r} against {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return
        if rel == 0.0:
            if a != b:
                errors.append(f"{path}: {a!r} against {b!r}")
        elif abs(a - b) > rel * max(abs(a), abs(b)) and a != b:
            errors.append(f"{path}: {a!r} against {b!r} (relative {abs(a - b) / max(abs(a), abs(b)):.3g})")
    elif a != b:
        errors.append(f"{path}: {a!r} against {b!r}")


def main():
    kind, whole, merged = sys.argv[1:4]
    rel = {"nvi": 1e-12, "exact": 0.0}[kind]
    with open(os.path.join(whole, "result.json")) as f:
        a = json.load(f)
    with open(os.path.join(merged, "result.json")) as f:
        b = json.load(f)
    errors = []
    compare(a["result"], b["result"], "result", rel, errors)
    files = lambda d: sorted(n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n)))
    if files(whole) != files(merged):
        errors.append(f"files: {files(whole)} against {files(merged)}")
    if errors:
        print(f"error: {merged} differs from {whole}:", file=sys.stderr)
        for e in errors[:20]:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    print(f"{merged}: the same result as {whole} ({kind})")


if __name__ == "__main__":
    main()
