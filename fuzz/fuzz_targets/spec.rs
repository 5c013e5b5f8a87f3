//! The transformation-set spec parser of nnlens-transforms on arbitrary text.
//!
//! The parser counts a spec's transformations before it makes them and refuses more than
//! `MAX_TRANSFORMATIONS`, so no input here can materialise a huge set; inputs are capped at
//! 512 bytes by `-max_len` in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnlens_transforms::{MAX_TRANSFORMATIONS, TransformationSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(set) = TransformationSet::parse(text) {
        assert!(set.len() <= MAX_TRANSFORMATIONS, "{} transformations", set.len());
        assert!(!set.is_empty(), "a parsed set is empty");
        for i in 0..set.len().min(4) {
            assert!(set.get(i).is_some());
        }
        assert!(set.get(set.len()).is_none());
        assert_eq!(set.spec, text);
    }
});
