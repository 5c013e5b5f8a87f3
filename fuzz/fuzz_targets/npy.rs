//! The NPY reader of nnlens-datasets (as f32 and as f64) on arbitrary bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nnlens_datasets::npy::{parse_npy_f32, parse_npy_f64};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    let single = parse_npy_f32(data, path);
    let double = parse_npy_f64(data, path);
    if let Ok(a) = &single {
        assert_eq!(a.len(), a.shape().iter().product::<usize>());
    }
    match (single, double) {
        (Ok(a), Ok(b)) => assert_eq!(a.shape(), b.shape(), "f32 and f64 shapes disagree"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("f32 and f64 readers disagree: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
});
