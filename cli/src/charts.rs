//! The plots of each result, in PNG and SVG.

use anyhow::Result;
use nnlens_invariance::{AnalyzerRow, Convention, MeasureResult};
use nnlens_linearity::LinearityResult;
use nnlens_plots::{
    BarChart, ColourScale, Heatmap, Output, Scatter, bar_chart, heatmap, histograms, scatter,
};

use crate::atomic::OutDir;

/// Draws `name.png` and `name.svg` with `draw` and stages them in `out`.
pub(crate) fn both(
    out: &mut OutDir,
    name: &str,
    draw: impl Fn(Output<'_>) -> Result<(), nnlens_plots::PlotError>,
) -> Result<()> {
    for ext in ["png", "svg"] {
        let file = format!("{name}.{ext}");
        let mut bytes = Vec::new();
        draw(Output::bytes(&out.dir().join(&file), &mut bytes))?;
        out.bytes(&file, &bytes)?;
    }
    Ok(())
}

/// A measure's plots: the value of every layer (bar chart), and for feature layers the value
/// of every feature map (heatmap, one row per layer).
pub fn measure_charts(out: &mut OutDir, result: &MeasureResult) -> Result<()> {
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
pub fn analysis_chart(out: &mut OutDir, measure: &str, rows: &[AnalyzerRow]) -> Result<()> {
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

/// The plots of a linearity result: the mean L of every layer (the model's output
/// highlighted, as the seed's figure), and at the output layer (else the last one measured)
/// the mean L of every class and each class's histogram.
pub fn linearity_charts(
    out: &mut OutDir,
    summary: &LinearityResult,
    output: &str,
    classes: &[String],
) -> Result<()> {
    let bars = BarChart {
        title: format!("linearity per layer ({} instances; 0 = linear)", summary.instances),
        y_label: "mean linearity L".into(),
        labels: summary.layers.iter().map(|l| l.name.clone()).collect(),
        values: summary.layers.iter().map(|l| l.summary.mean).collect(),
        highlight: summary.layers.iter().position(|l| l.name == output),
    };
    both(out, "layers", |p| bar_chart(p, &bars))?;
    let Some(focus) = crate::linearity::focus_layer(summary, output) else { return Ok(()) };
    let label = |c: usize| match classes.get(c) {
        Some(name) => crate::inputs::class_label(c, name),
        None => c.to_string(),
    };
    if focus.classes.len() > 1 {
        let bars = BarChart {
            title: format!("linearity per class at {}", focus.name),
            y_label: "mean linearity L".into(),
            labels: focus.classes.iter().map(|c| label(c.class)).collect(),
            values: focus.classes.iter().map(|c| c.summary.mean).collect(),
            highlight: None,
        };
        both(out, "classes", |p| bar_chart(p, &bars))?;
    }
    let bins = focus.summary.histogram.counts.len().max(1);
    let panels: Vec<(String, Vec<f64>)> = if focus.classes.len() > 1 {
        focus.classes.iter().map(|c| (label(c.class), expand(&c.summary.histogram))).collect()
    } else {
        vec![(focus.name.clone(), expand(&focus.summary.histogram))]
    };
    let title = format!("distribution of linearity at {}", focus.name);
    both(out, "histograms", |p| histograms(p, &title, &panels, bins))
}

/// Values that reproduce a stored histogram (each bin's count at its centre), so that saved
/// results can be redrawn without the per-instance values.
fn expand(h: &nnlens_linearity::Histogram) -> Vec<f64> {
    h.counts
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| std::iter::repeat_n(0.5 * (h.edges[i] + h.edges[i + 1]), n))
        .collect()
}
