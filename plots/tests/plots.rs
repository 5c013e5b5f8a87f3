//! Writes every kind of figure as PNG and SVG and checks the files.

use std::path::{Path, PathBuf};

use nnlens_plots::{
    BarChart, ColourScale, Heatmap, Output, PlotError, Scatter, bar_chart, heatmap, histograms,
    image_heatmaps, scatter,
};

/// Checks that `path` is a PNG of `size` pixels holding more than one colour.
fn assert_png(path: &Path, size: (u32, u32)) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(image.dimensions(), size, "{}", path.display());
    let first = image.get_pixel(0, 0);
    assert!(image.pixels().any(|p| p != first), "{} is a single colour", path.display());
}

/// Checks that `path` is an SVG mentioning every one of `texts`.
fn assert_svg(path: &Path, texts: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.starts_with("<svg"), "{}", path.display());
    for text in texts {
        assert!(svg.contains(text), "{} lacks {text:?}", path.display());
    }
}

/// Calls `write` for a PNG and an SVG in a fresh directory and checks both files.
fn check_both(
    name: &str,
    size: (u32, u32),
    texts: &[&str],
    write: impl Fn(&Path) -> Result<(), PlotError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join(format!("{name}.png"));
    let svg = dir.path().join(format!("{name}.svg"));
    write(&png).unwrap();
    write(&svg).unwrap();
    assert_png(&png, size);
    assert_svg(&svg, texts);
}

/// Writes a PNG and an SVG, only checking that both succeed and decode.
fn writes(write: impl Fn(&Path) -> Result<(), PlotError>) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["plot.png", "plot.svg"] {
        let path = dir.path().join(name);
        write(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(path.is_file());
    }
    image::open(dir.path().join("plot.png")).unwrap();
}

fn bars(values: Vec<f64>) -> BarChart {
    BarChart {
        title: "Accuracy per class".into(),
        y_label: "accuracy".into(),
        labels: (0..values.len()).map(|i| format!("class {i}")).collect(),
        values,
        highlight: None,
    }
}

fn grid(n: usize, len: usize, f: impl Fn(usize, usize) -> f64) -> Vec<(String, Vec<f64>)> {
    (0..n).map(|p| (format!("digit {p}"), (0..len).map(|i| f(p, i)).collect())).collect()
}

fn unwritable(name: &str) -> PathBuf {
    std::env::temp_dir().join("nnlens-plots-no-such-dir").join("deeper").join(name)
}

#[test]
fn bar_chart_png_and_svg() {
    let mut chart = bars(vec![0.91, 0.85, 0.42, 0.77, 0.99]);
    chart.highlight = Some(2);
    check_both("bars", (1000, 600), &["Accuracy per class", "class 2", "accuracy"], |p| {
        bar_chart(p, &chart)
    });
}

#[test]
fn bar_chart_with_thirty_long_labels_and_negative_values() {
    let mut chart = bars((0..30).map(|i| (i as f64 - 10.0) / 7.0).collect());
    chart.labels = (0..30).map(|i| format!("features.{i}.conv.weight")).collect();
    chart.highlight = Some(29);
    check_both("many", (1000, 600), &["features.17.conv.weight"], |p| bar_chart(p, &chart));
}

#[test]
fn bar_chart_marks_non_finite_values() {
    let chart = bars(vec![1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    check_both("nan", (1000, 600), &["class 1 (nan)", "class 2 (inf)", "class 3 (-inf)"], |p| {
        bar_chart(p, &chart)
    });
}

#[test]
fn bar_chart_degenerate_inputs() {
    for values in [
        vec![],
        vec![0.0],
        vec![3.5],
        vec![2.0, 2.0, 2.0],
        vec![f64::NAN, f64::NAN],
        vec![f64::MAX, -f64::MAX, f64::MIN_POSITIVE],
        vec![1e-320, 2e-320],
        vec![1.0, 1.0 + 1e-15],
    ] {
        let mut chart = bars(values);
        chart.highlight = Some(7);
        writes(|p| bar_chart(p, &chart));
    }
    writes(|p| bar_chart(p, &BarChart::default()));
}

#[test]
fn bar_chart_rejects_mismatched_labels() {
    let mut chart = bars(vec![1.0, 2.0]);
    chart.labels.pop();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.png");
    let err = bar_chart(&path, &chart).unwrap_err();
    assert!(matches!(err, PlotError::InvalidInput { .. }));
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(!path.exists());
}

#[test]
fn heatmap_png_and_svg() {
    let rows: Vec<(String, Vec<f64>)> = (0..6)
        .map(|r| (format!("layer{r}"), (0..64).map(|c| ((r * 64 + c) as f64).sin()).collect()))
        .collect();
    for scale in [ColourScale::Sequential, ColourScale::Diverging] {
        let map = Heatmap {
            title: "Saliency per layer".into(),
            x_label: "channel".into(),
            rows: rows.clone(),
            scale,
        };
        check_both("heat", (1000, 600), &["Saliency per layer", "layer5", "channel"], |p| {
            heatmap(p, &map)
        });
    }
}

#[test]
fn heatmap_of_784_columns_with_ragged_rows_and_non_finite_cells() {
    let mut rows = grid(10, 784, |p, i| (p as f64 - 4.5) * ((i % 28) as f64 - 13.5));
    rows[3].1.truncate(100);
    rows[4].1[5] = f64::NAN;
    rows[5].1[6] = f64::NEG_INFINITY;
    let map = Heatmap {
        title: "Mean attribution".into(),
        x_label: "pixel".into(),
        rows,
        scale: ColourScale::Diverging,
    };
    check_both("wide", (1000, 600), &["Mean attribution", "digit 9", "nan/inf"], |p| {
        heatmap(p, &map)
    });
}

#[test]
fn heatmap_degenerate_inputs() {
    let cases: Vec<Vec<(String, Vec<f64>)>> = vec![
        vec![],
        vec![("empty".into(), vec![])],
        vec![("one".into(), vec![7.0])],
        vec![("flat".into(), vec![0.0; 5]), ("flat too".into(), vec![0.0; 3])],
        vec![("nan".into(), vec![f64::NAN, f64::INFINITY])],
        vec![("huge".into(), vec![f64::MAX, -f64::MAX, 0.0])],
        (0..300).map(|r| (format!("row {r}"), vec![r as f64; 4])).collect(),
    ];
    for rows in cases {
        for scale in [ColourScale::Sequential, ColourScale::Diverging] {
            let map =
                Heatmap { title: "t".into(), x_label: String::new(), rows: rows.clone(), scale };
            writes(|p| heatmap(p, &map));
        }
    }
}

#[test]
fn image_heatmaps_png_and_svg() {
    let panels = grid(10, 784, |p, i| ((i / 28) as f64 - p as f64) * ((i % 28) as f64 - 14.0));
    for scale in [ColourScale::Sequential, ColourScale::Diverging] {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("images.png");
        let svg = dir.path().join("images.svg");
        image_heatmaps(&png, "Attribution per class", &panels, 28, 28, scale).unwrap();
        image_heatmaps(&svg, "Attribution per class", &panels, 28, 28, scale).unwrap();
        let size = image::image_dimensions(&png).unwrap();
        assert!(size.0 >= 1000 && size.1 >= 400, "{size:?}");
        assert_png(&png, size);
        assert_svg(&svg, &["Attribution per class", "digit 0", "digit 9"]);
    }
}

#[test]
fn image_heatmaps_degenerate_inputs() {
    let cases = [
        (vec![], 28, 28),
        (grid(1, 1, |_, _| 1.0), 1, 1),
        (grid(3, 6, |_, _| 0.0), 2, 3),
        (grid(2, 4, |_, _| f64::NAN), 2, 2),
        (grid(7, 50, |p, i| if i == 3 { f64::INFINITY } else { (p * i) as f64 }), 1, 50),
    ];
    for (panels, h, w) in cases {
        for scale in [ColourScale::Sequential, ColourScale::Diverging] {
            writes(|p| image_heatmaps(p, "images", &panels, h, w, scale));
        }
    }
}

#[test]
fn image_heatmaps_reject_wrong_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images.png");
    let panels = grid(2, 10, |_, _| 1.0);
    for (h, w) in [(3, 3), (0, 10), (10, 0), (usize::MAX, 2)] {
        let err = image_heatmaps(&path, "t", &panels, h, w, ColourScale::Sequential).unwrap_err();
        assert!(matches!(err, PlotError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
    assert!(!path.exists());
}

#[test]
fn scatter_png_and_svg() {
    let plot = Scatter {
        title: "Robustness vs accuracy".into(),
        x_label: "accuracy".into(),
        y_label: "robustness".into(),
        points: vec![
            (0.9, 0.3, "resnet".into()),
            (0.8, 0.5, "vgg".into()),
            (f64::NAN, 0.1, "skipped".into()),
            (0.7, f64::INFINITY, "skipped too".into()),
            (0.95, 0.2, "vit".into()),
        ],
    };
    check_both("scatter", (1000, 600), &["Robustness vs accuracy", "resnet", "robustness"], |p| {
        scatter(p, &plot)
    });
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("s.svg");
    scatter(&svg, &plot).unwrap();
    assert!(!std::fs::read_to_string(&svg).unwrap().contains("skipped"));
}

#[test]
fn scatter_degenerate_inputs() {
    for points in [
        vec![],
        vec![(1.0, 2.0, "only".to_owned())],
        vec![(3.0, 3.0, "a".to_owned()), (3.0, 3.0, "b".to_owned())],
        vec![(0.0, 0.0, String::new())],
        vec![(f64::NAN, 1.0, "x".to_owned()), (1.0, f64::NEG_INFINITY, "y".to_owned())],
        vec![(f64::MAX, -f64::MAX, "big".to_owned()), (-f64::MAX, f64::MAX, "big".to_owned())],
    ] {
        let plot = Scatter { title: "s".into(), points, ..Scatter::default() };
        writes(|p| scatter(p, &plot));
    }
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("empty.svg");
    let plot = Scatter { points: vec![(f64::NAN, 0.0, "p".into())], ..Scatter::default() };
    scatter(&svg, &plot).unwrap();
    assert_svg(&svg, &["no finite points"]);
}

#[test]
fn histograms_png_and_svg() {
    let panels = grid(10, 500, |p, i| ((i * 7919 + p * 31) % 1000) as f64 / 100.0 + p as f64);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("hist.png");
    let svg = dir.path().join("hist.svg");
    histograms(&png, "Confidence per class", &panels, 20).unwrap();
    histograms(&svg, "Confidence per class", &panels, 20).unwrap();
    assert_png(&png, (1500, 600));
    assert_svg(&svg, &["Confidence per class", "digit 0", "digit 9"]);
}

#[test]
fn histograms_degenerate_inputs() {
    let panels = vec![
        ("empty".to_owned(), vec![]),
        ("nan".to_owned(), vec![f64::NAN, f64::INFINITY]),
        ("one".to_owned(), vec![4.0]),
        ("flat".to_owned(), vec![0.0; 10]),
        ("huge".to_owned(), vec![f64::MAX, -f64::MAX]),
        ("tiny".to_owned(), vec![1e-320, 3e-320]),
    ];
    writes(|p| histograms(p, "h", &panels, 10));
    writes(|p| histograms(p, "h", &panels, 1));
    writes(|p| histograms(p, "nothing", &[], 10));
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("h.svg");
    histograms(&svg, "h", &panels, 5).unwrap();
    assert_svg(&svg, &["no finite values", "empty", "tiny"]);
}

#[test]
fn histograms_reject_zero_bins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.svg");
    let err = histograms(&path, "h", &grid(1, 3, |_, i| i as f64), 0).unwrap_err();
    assert!(matches!(err, PlotError::InvalidInput { .. }));
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn unknown_extension_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["plot.pdf", "plot", "plot.png.txt"] {
        let path = dir.path().join(name);
        let err = bar_chart(&path, &bars(vec![1.0])).unwrap_err();
        assert!(matches!(err, PlotError::UnknownFormat { .. }), "{err}");
        let message = err.to_string();
        assert!(message.starts_with("cannot write plot "), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!path.exists());
    }
}

#[test]
fn unwritable_path_is_an_error_naming_the_path() {
    for name in ["plot.png", "plot.svg"] {
        let path = unwritable(name);
        let results = [
            bar_chart(&path, &bars(vec![1.0])),
            heatmap(&path, &Heatmap::default()),
            image_heatmaps(&path, "t", &[], 2, 2, ColourScale::Diverging),
            scatter(&path, &Scatter::default()),
            histograms(&path, "t", &[], 3),
        ];
        for result in results {
            let err = result.unwrap_err();
            assert!(matches!(err, PlotError::Io { .. }), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        }
    }
}

#[test]
fn bytes_are_what_the_file_holds_and_a_file_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let chart = bars(vec![1.0, 2.0]);
    for name in ["b.png", "b.svg"] {
        let path = dir.path().join(name);
        let mut bytes = Vec::new();
        bar_chart(Output::bytes(&path, &mut bytes), &chart).unwrap();
        assert!(!path.exists(), "bytes only: nothing written");
        std::fs::write(&path, "an old figure").unwrap();
        bar_chart(&path, &chart).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b.png", "b.svg"], "no temporary file left");
    let mut bytes = Vec::new();
    let err = bar_chart(Output::bytes(Path::new("b.pdf"), &mut bytes), &chart).unwrap_err();
    assert!(matches!(err, PlotError::UnknownFormat { .. }), "{err}");
    assert!(bytes.is_empty());
}
