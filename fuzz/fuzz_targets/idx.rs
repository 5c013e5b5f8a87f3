//! The IDX reader of nnlens-datasets on arbitrary bytes, raw and gzip-compressed.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nnlens_datasets::idx::{IdxData, gzip, parse_idx};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    let parsed = parse_idx(data, path);
    // The same bytes gzip-compressed: the decompressing path reads what the raw one reads.
    let zipped = parse_idx(&gzip(data), path);
    if data.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    match (parsed, zipped) {
        (Ok(a), Ok(b)) => {
            let n = match &a.data {
                IdxData::U8(v) => v.len(),
                IdxData::I8(v) => v.len(),
                IdxData::I16(v) => v.len(),
                IdxData::I32(v) => v.len(),
                IdxData::F32(v) => v.len(),
                IdxData::F64(v) => v.len(),
            };
            assert_eq!(n, a.len(), "element count and dimensions disagree");
            assert_eq!(a.to_f32().len(), n);
            // Written back, the array is the bytes it was read from.
            assert_eq!(a.to_bytes(), data, "IDX does not round-trip");
            assert_eq!(b.to_bytes(), data, "gzip IDX differs from raw IDX");
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("raw and gzip disagree: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
});
