//! The plots of each result, in PNG and SVG.

use std::path::Path;

use anyhow::Result;
use nnlens_invariance::{AnalyzerRow, Convention, MeasureResult};
use nnlens_plots::{BarChart, ColourScale, Heatmap, Scatter, bar_chart, heatmap, scatter};

/// Draws `name.png` and `name.svg` with `draw`.
fn both(
    out: &Path,
    name: &str,
    draw: impl Fn(&Path) -> Result<(), nnlens_plots::PlotError>,
) -> Result<()> {
    for ext in ["png", "svg"] {
        draw(&out.join(format!("{name}.{ext}")))?;
    }
    Ok(())
}

/// A measure's plots: the value of every layer (bar chart), and for feature layers the value
/// of every feature map (heatmap, one row per layer).
pub fn measure_charts(out: &Path, result: &MeasureResult) -> Result<()> {
    let rule = match result.convention {
        Convention::Tmeasures => "mean of finite values",
        Convention::Seed => "mean",
    };
    let bars = BarChart {
        title: format!(
            "{} per layer ({} samples x {} transformations; total {:.4})",
            result.measure, result.samples, result.transformations, result.total
        ),
        y_label: format!("{} ({rule})", result.measure),
        labels: result.layers.iter().map(|l| l.name.clone()).collect(),
        values: result.layers.iter().map(|l| l.value).collect(),
        highlight: None,
    };
    both(out, "layers", |p| bar_chart(p, &bars))?;
    let rows: Vec<(String, Vec<f64>)> = result
        .layers
        .iter()
        .filter_map(|l| l.features.as_ref().map(|f| (l.name.clone(), f.clone())))
        .collect();
    if !rows.is_empty() {
        let map = Heatmap {
            title: format!("{} per feature map", result.measure),
            x_label: "feature map".into(),
            rows,
            scale: ColourScale::Sequential,
        };
        both(out, "features", |p| heatmap(p, &map))?;
    }
    Ok(())
}

/// The Analyzer's scatter plot: the measure against the accuracy, one point per group.
pub fn analysis_chart(out: &Path, measure: &str, rows: &[AnalyzerRow]) -> Result<()> {
    let plot = Scatter {
        title: format!("{measure} vs accuracy per transformation group"),
        x_label: measure.to_string(),
        y_label: "accuracy on the transformed samples".into(),
        points: rows
            .iter()
            .map(|r| (r.measure, r.accuracy, format!("group {}", r.group)))
            .collect(),
    };
    both(out, "analysis", |p| scatter(p, &plot))
}
