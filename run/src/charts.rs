//! Plots staged in a result directory, in PNG and SVG.

use anyhow::Result;
use nnlens_plots::Output;

use crate::atomic::OutDir;

/// Draws `name.png` and `name.svg` with `draw` (one of `nnlens_plots`' figures) and stages them
/// in `out`.
///
/// # Errors
/// What `draw` returns; a file that cannot be staged.
pub fn both(
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
