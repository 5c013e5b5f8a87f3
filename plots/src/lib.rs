//! PNG and SVG charts of nnlens results, drawn in pure Rust with [`plotters`].
//!
//! Each function writes one figure to an [`Output`]: a path whose extension picks the format,
//! `.png` (rasterised in memory, encoded with the `image` crate) or `.svg`, written atomically
//! (a temporary file beside it, renamed into place); or, with [`Output::bytes`], a buffer, so
//! that the caller decides where the bytes go. Text uses an embedded
//! DejaVu Sans, so no system font is needed. Inputs may hold NaN, infinities, a single value
//! or nothing at all: the figures then show what they can (with a note where nothing is
//! left to draw) instead of panicking.
//!
//! - [`bar_chart`]: one bar per category, one bar optionally highlighted.
//! - [`heatmap`]: labelled rows of cells with a colour bar.
//! - [`image_heatmaps`]: a grid of small images sharing one colour scale.
//! - [`scatter`]: annotated points.
//! - [`histograms`]: a grid of histograms.
//! - [`line_chart`]: curves with confidence bands.
//! - [`image_table`]: rows of captioned grey images under column titles.

#![warn(missing_docs)]

mod bar;
mod common;
mod heatmap;
mod histogram;
mod lines;
mod raster;
mod render;
mod scatter;
mod table;

use std::path::PathBuf;

pub use bar::{BarChart, bar_chart};
pub use heatmap::{Heatmap, heatmap, image_heatmaps};
pub use histogram::histograms;
pub use lines::{LineChart, Series, line_chart};
pub use render::Output;
pub use scatter::{Scatter, scatter};
pub use table::{ImageCell, ImageTable, image_table};

/// Why a plot could not be written. Every message names the output path.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The path's extension is neither `.png` nor `.svg`.
    #[error("cannot write plot {}: unknown format (expected a .png or .svg extension)", path.display())]
    UnknownFormat {
        /// The output path.
        path: PathBuf,
    },
    /// The input cannot be drawn (for instance an image panel of the wrong size).
    #[error("cannot write plot {}: {message}", path.display())]
    InvalidInput {
        /// The output path.
        path: PathBuf,
        /// What is wrong with the input.
        message: String,
    },
    /// Drawing or encoding the figure failed.
    #[error("cannot write plot {}: drawing failed: {message}", path.display())]
    Draw {
        /// The output path.
        path: PathBuf,
        /// The renderer's error.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write plot {}: {source}", path.display())]
    Io {
        /// The output path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How values are mapped to colours in heatmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColourScale {
    /// From the smallest to the largest finite value, on the viridis map (dark blue to yellow).
    #[default]
    Sequential,
    /// Symmetric around zero, from `-m` (blue) through 0 (white) to `m` (red), where `m` is the
    /// largest magnitude among the finite values.
    Diverging,
}
