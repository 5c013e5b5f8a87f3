//! The table reader of nnlens-datasets (CSV with a header, NPY matrices) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnlens_datasets::table::{parse_csv_table, parse_npy_matrix};

const LABEL: &str = "--table fuzz.csv";

fuzz_target!(|data: &[u8]| {
    match parse_csv_table(data, LABEL) {
        Ok(t) => {
            assert!(t.values.nrows() > 0);
            assert_eq!(t.values.ncols(), t.columns.len());
        }
        Err(e) => {
            // Errors are one line that names the table.
            let e = e.to_string();
            assert!(e.starts_with(LABEL) && !e.contains('\n') && !e.contains('\r'), "{e:?}");
        }
    }
    match parse_npy_matrix(data, "--truth fuzz.npy") {
        Ok(m) => assert_eq!(m.len(), m.nrows() * m.ncols()),
        Err(e) => assert!(e.to_string().starts_with("--truth fuzz.npy: ")),
    }
});
