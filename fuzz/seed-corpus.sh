#!/usr/bin/env bash
# Regenerates the committed seed corpus fuzz/corpus/<target>/ (stable toolchain, no network
# once the crates are fetched): the first images and labels of the embedded Fashion-MNIST sample
# as IDX (raw and gzip) and NPY, small arrays of every element type, CSV tables, the fixture
# model and the embedded model's graph with its weights cut to 16 values, spec strings.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nnlens/target}/fuzz-seed"
rm -rf corpus
cargo run --locked --quiet -p nnlens-fuzz-seed -- .. corpus
du -sh corpus
