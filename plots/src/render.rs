//! Output formats, the embedded font and the shared rendering driver.

use std::error::Error;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::PlotError;
use crate::raster::Raster;

/// Family name under which the embedded DejaVu Sans is registered.
pub(crate) const FONT: &str = "sans-serif";

/// DejaVu Sans, embedded so that PNG rendering needs no system font.
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Largest width or height of a figure, in pixels.
pub(crate) const MAX_SIDE: u32 = 16_384;

/// What drawing code returns: any backend error, boxed.
pub(crate) type DrawResult = Result<(), Box<dyn Error>>;

/// A figure that can be drawn on any plotters backend.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// Draws the whole figure on `root`, which covers the full canvas.
    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static;
}

/// Output format, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format, PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(PlotError::UnknownFormat { path: path.to_path_buf() }),
    }
}

/// Registers the embedded font with plotters, once per process.
fn font_ready() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok())
}

/// Where a figure goes: a file, written atomically, or a buffer the caller writes where it
/// wants. Every chart function takes `impl Into<Output>`, so a `&Path` still means a file.
#[derive(Debug)]
pub enum Output<'a> {
    /// The file at this path, whose extension picks the format. The figure is written to a
    /// temporary file beside it (`.nnlens-tmp-<pid>-<name>`), flushed to disk and renamed
    /// into place, so the path never holds a partly written figure.
    File(&'a Path),
    /// The encoded figure appended to `buffer`, in the format picked by the extension of
    /// `name` (which also names the figure in errors); nothing is written to disk.
    Bytes {
        /// Picks the format (`.png` or `.svg`) and names the figure in errors.
        name: &'a Path,
        /// Receives the PNG or SVG bytes.
        buffer: &'a mut Vec<u8>,
    },
}

impl<'a> Output<'a> {
    /// The figure's bytes appended to `buffer`, in the format of `name`'s extension.
    pub fn bytes(name: &'a Path, buffer: &'a mut Vec<u8>) -> Self {
        Output::Bytes { name, buffer }
    }

    /// The path that picks the format and names the figure in errors.
    fn path(&self) -> &Path {
        match self {
            Output::File(path) | Output::Bytes { name: path, .. } => path,
        }
    }
}

impl<'a> From<&'a Path> for Output<'a> {
    fn from(path: &'a Path) -> Self {
        Output::File(path)
    }
}

impl<'a> From<&'a PathBuf> for Output<'a> {
    fn from(path: &'a PathBuf) -> Self {
        Output::File(path)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed and
/// synced, then renamed over `path` (removed again if anything fails).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let mut temp_name = std::ffi::OsString::from(format!(".nnlens-tmp-{}-", std::process::id()));
    temp_name.push(name);
    let temp = path.with_file_name(temp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Checks the extension, then validates the input with `check` (whose message becomes
/// [`PlotError::InvalidInput`]), then draws `figure` and sends it to `output`.
pub(crate) fn render<'a>(
    output: impl Into<Output<'a>>,
    check: Result<(), String>,
    figure: &impl Figure,
) -> Result<(), PlotError> {
    let output = output.into();
    let path = output.path();
    let format = format_of(path)?;
    let invalid = |message: String| PlotError::InvalidInput { path: path.to_path_buf(), message };
    check.map_err(invalid)?;
    let (w, h) = figure.size();
    if !(1..=MAX_SIDE).contains(&w) || !(1..=MAX_SIDE).contains(&h) {
        return Err(invalid(format!(
            "the figure would be {w}x{h} pixels; each side must be between 1 and {MAX_SIDE}"
        )));
    }
    let draw_error = |message: String| PlotError::Draw { path: path.to_path_buf(), message };
    if !font_ready() {
        return Err(draw_error("cannot load the embedded DejaVu Sans font".to_owned()));
    }
    let bytes = match format {
        Format::Png => {
            let mut pixels = vec![0u8; w as usize * h as usize * 3];
            {
                let font = FontRef::try_from_slice(FONT_BYTES)
                    .map_err(|e| draw_error(format!("cannot load the embedded font: {e}")))?;
                let root = Raster::new(&mut pixels, (w, h), font).into_drawing_area();
                draw_and_present(figure, &root).map_err(|e| draw_error(e.to_string()))?;
            }
            let image = image::RgbImage::from_raw(w, h, pixels)
                .ok_or_else(|| draw_error("the pixel buffer has the wrong size".to_owned()))?;
            let mut png = Cursor::new(Vec::new());
            image
                .write_to(&mut png, image::ImageFormat::Png)
                .map_err(|e| draw_error(format!("cannot encode PNG: {e}")))?;
            png.into_inner()
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                draw_and_present(figure, &root).map_err(|e| draw_error(e.to_string()))?;
            }
            svg.into_bytes()
        }
    };
    match output {
        Output::File(path) => write_atomically(path, &bytes)
            .map_err(|source| PlotError::Io { path: path.to_path_buf(), source }),
        Output::Bytes { buffer, .. } => {
            buffer.extend_from_slice(&bytes);
            Ok(())
        }
    }
}

fn draw_and_present<DB>(figure: &impl Figure, root: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    figure.draw(root)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension_case_insensitively() {
        assert_eq!(format_of(Path::new("a/b.png")).unwrap(), Format::Png);
        assert_eq!(format_of(Path::new("a/b.SVG")).unwrap(), Format::Svg);
        assert!(format_of(Path::new("a/b.pdf")).is_err());
        assert!(format_of(Path::new("a/png")).is_err());
    }

    #[test]
    fn embedded_font_registers() {
        assert!(font_ready());
        assert!(font_ready());
    }
}
