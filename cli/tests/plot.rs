//! `nnlens plot DIR` redraws the files of every kind of result nnlens writes (a measure, the
//! Analyzer, linearity, similarity, influence, performance), byte for byte the same as the run
//! drew them, with the runner its manifest's metric names.

mod common;
use common::{fails, nnlens, stdout};

use std::collections::BTreeMap;
use std::path::Path;

/// The figures (PNG, SVG) and tables (CSV) of a result directory, by name.
fn drawn(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "svg" || e == "csv"))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn plot_redraws_every_kind_of_result() {
    let dir = tempfile::tempdir().unwrap();
    let kinds: [(&str, &[&str]); 6] = [
        ("measure", &["run", "nvi", "--samples", "20", "--transformations", "rotation:n=2"]),
        ("analysis", &["analyze", "nvi", "--samples", "20", "--n", "2"]),
        ("linearity", &["run", "linearity", "--instances", "3", "--nb-samples", "3"]),
        (
            "similarity",
            &["run", "similarity", "--instances", "1", "--reference", "4", "--top-k", "2"],
        ),
        ("influence", &["run", "influence", "--samples", "60"]),
        ("performance", &["run", "performance", "--samples", "60"]),
    ];
    for (kind, args) in kinds {
        let out = dir.path().join(kind);
        let mut run = args.to_vec();
        run.extend(["--out", out.to_str().unwrap()]);
        stdout(&run);
        let written = drawn(&out);
        let figures = written.keys().filter(|f| f.ends_with(".png")).count();
        assert!(figures > 0, "{kind}: no figure written: {:?}", written.keys());

        // Redrawn elsewhere: the same figures, byte for byte.
        let again = dir.path().join(format!("{kind}-again"));
        stdout(&["plot", out.to_str().unwrap(), "--out", again.to_str().unwrap()]);
        let redrawn = drawn(&again);
        let pictures = |m: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
            m.keys().filter(|f| !f.ends_with(".csv")).cloned().collect()
        };
        assert_eq!(pictures(&redrawn), pictures(&written), "{kind}: other figures");
        for (name, bytes) in &redrawn {
            assert!(written.get(name) == Some(bytes), "{kind}: {name} differs when redrawn");
        }

        // Redrawn in place after the figures are deleted.
        for name in written.keys().filter(|f| !f.ends_with(".csv")) {
            std::fs::remove_file(out.join(name)).unwrap();
        }
        stdout(&["plot", out.to_str().unwrap()]);
        assert_eq!(pictures(&drawn(&out)), pictures(&written), "{kind}: not redrawn in place");
    }
}

#[test]
fn plot_of_a_result_of_an_unknown_metric_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("result.json"),
        r#"{"manifest": {"metric": "frobnicate"}, "result": {"x": 1}}"#,
    )
    .unwrap();
    let e = fails(&["plot", dir.path().to_str().unwrap()]);
    assert!(e.contains("frobnicate"), "{e}");
    // Nothing half-written is left behind.
    assert!(!nnlens().arg("plot").arg(dir.path()).output().unwrap().status.success());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
