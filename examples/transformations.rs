//! Writes a PNG grid of one Fashion-MNIST image under each transformation of a set, so a person
//! can see what a set does.
//!
//! ```sh
//! cargo run -p nnlens-transforms --example transformations -- \
//!     [SPEC] [IMAGE_INDEX] [OUT.png]
//! ```
//!
//! Defaults: the set `rotation:n=8+translation:dx=-6..6,step=6*translation:dy=-6..6,step=6+scale:0.6..1.4,n=5+hflip+vflip`,
//! image 0 of the 1000-image sample embedded in the CLI (`run/assets/fashion-mnist-sample`),
//! and `transformations.png`. Each cell is the image under one transformation, 4x enlarged,
//! in set order, row by row, with a grey frame.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ndarray::Axis;
use nnlens_core::DataSet;
use nnlens_datasets::{PixelScale, dataset_spec};
use nnlens_transforms::{ImageTransformationsDataSet, Resample, TransformationSet};

const DEFAULT_SET: &str = "rotation:n=8+translation:dx=-6..6,step=6*translation:dy=-6..6,step=6+scale:0.6..1.4,n=5+hflip+vflip";
const ZOOM: u32 = 4;
const FRAME: u32 = 2;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args.first().map(String::as_str).unwrap_or(DEFAULT_SET);
    let index: usize =
        args.get(1).map(|s| s.parse()).transpose().context("IMAGE_INDEX")?.unwrap_or(0);
    let out = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("transformations.png"));

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../run/assets/fashion-mnist-sample");
    let spec_fm = dataset_spec("fashion-mnist")?;
    let (data, _) = nnlens_datasets::load_split(
        spec_fm,
        nnlens_datasets::Split::Test,
        &nnlens_datasets::catalog::Source::Dir(dir),
        PixelScale::Unit,
    )?;
    if index >= data.len() {
        bail!("image index {index} is past the {} images of the sample", data.len());
    }
    let label = spec_fm.classes[data.labels()[index]];
    let one = data.subset(&[index])?;
    let set = TransformationSet::parse(spec)?;
    let n = set.len();
    let names: Vec<String> = set.transformations.iter().map(|t| t.name.clone()).collect();
    let dataset = ImageTransformationsDataSet::new(one, set, Resample::default())?;
    let images = dataset.get_matrix(&[0], &(0..n).collect::<Vec<_>>())?; // [1, n, 28, 28, 1]

    let cols = (n as f64).sqrt().ceil() as u32;
    let rows = (n as u32).div_ceil(cols);
    let cell = 28 * ZOOM + 2 * FRAME;
    let mut canvas = image::GrayImage::from_pixel(cols * cell, rows * cell, image::Luma([128]));
    for (k, img) in images.index_axis(Axis(0), 0).axis_iter(Axis(0)).enumerate() {
        let (cx, cy) = ((k as u32 % cols) * cell + FRAME, (k as u32 / cols) * cell + FRAME);
        for y in 0..28 * ZOOM {
            for x in 0..28 * ZOOM {
                let v = img[[(y / ZOOM) as usize, (x / ZOOM) as usize, 0]];
                canvas.put_pixel(
                    cx + x,
                    cy + y,
                    image::Luma([(v.clamp(0.0, 1.0) * 255.0).round() as u8]),
                );
            }
        }
    }
    canvas.save(&out).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "image {index} ({label}) under {n} transformations -> {} ({cols} x {rows} grid)",
        out.display()
    );
    for (k, name) in names.iter().enumerate() {
        println!("  {k:>2}: {name}");
    }
    Ok(())
}
