//! Writing images out: as an image folder of PNG files, or as NPY arrays, so that a sample of
//! any source can be read back by nnlens, torchvision or numpy.

use std::io::Write;

use image::ImageEncoder as _;
use ndarray::{Array1, ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;

use crate::images::ImageDataSet;
use crate::store::Pixels;
use crate::{DatasetError, Result};

/// A class name as a folder name: path separators and other characters a file system refuses
/// become `_` (`T-shirt/top` -> `T-shirt_top`).
pub fn folder_name(class: &str) -> String {
    let name: String = class
        .chars()
        .map(|c| if c == '/' || c == '\\' || c == '\0' || c == ':' { '_' } else { c })
        .collect();
    if name.is_empty() || name == "." || name == ".." { format!("_{name}") } else { name }
}

/// The PNG bytes of image `row` of `data` (bytes after the geometric preprocessing).
///
/// # Errors
/// Float images (PNG holds bytes), an image that cannot be read.
pub fn png_of(data: &ImageDataSet, row: usize) -> Result<Vec<u8>> {
    let image = data.raw_image(row)?;
    let Pixels::U8(pixels) = image.pixels else {
        return Err(DatasetError::Inconsistent(format!(
            "{} holds floats; an image folder holds PNG bytes: write NPY instead",
            data.name()
        )));
    };
    let color = if image.channels == 3 {
        image::ExtendedColorType::Rgb8
    } else {
        image::ExtendedColorType::L8
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, image.width as u32, image.height as u32, color)
        .map_err(|e| DatasetError::Inconsistent(format!("encoding PNG: {e}")))?;
    Ok(out)
}

/// The folder name of each class: the class name made safe for a file system, prefixed with
/// the zero-padded label (`03_Dress`) when the names' sorted order is not the label order (or
/// two names would share a folder), so that torchvision's `ImageFolder`, which indexes classes
/// in sorted folder order, reads back the same labels.
pub fn class_folders(class_names: &[String]) -> Vec<String> {
    let plain: Vec<String> = class_names.iter().map(|c| folder_name(c)).collect();
    let mut sorted = plain.clone();
    sorted.sort();
    sorted.dedup();
    if sorted == plain {
        return plain;
    }
    let width = class_names.len().saturating_sub(1).to_string().len();
    plain.iter().enumerate().map(|(i, p)| format!("{i:0width$}_{p}")).collect()
}

/// The relative path of every image of `data` in an image folder: `<class folder>/<row>.png`
/// (see [`class_folders`]; images without labels go under `unlabelled/`).
pub fn folder_paths(data: &ImageDataSet) -> Vec<String> {
    let folders = class_folders(data.class_names());
    (0..data.len())
        .map(|row| {
            let class = data
                .labels()
                .get(row)
                .and_then(|&l| folders.get(l))
                .map_or("unlabelled", String::as_str);
            format!("{class}/{row:06}.png")
        })
        .collect()
}

/// The images of `data` as NPY bytes: `uint8 (N, H, W, C)` of the images after the geometric
/// preprocessing when `inputs` is false (and the source is bytes), else `float32 (N, H, W, C)`
/// of the model's inputs (every step of the preprocessing).
///
/// # Errors
/// An image that cannot be read.
pub fn write_images_npy(data: &ImageDataSet, inputs: bool, out: &mut impl Write) -> Result<()> {
    let [h, w, c] = data.image_shape();
    let npy =
        |e: ndarray_npy::WriteNpyError| DatasetError::Inconsistent(format!("writing NPY: {e}"));
    if inputs || !data.is_bytes() {
        let batch = data.batch(0..data.len())?;
        return batch.write_npy(out).map_err(npy);
    }
    let pixels = data.bytes()?;
    let array = ArrayD::from_shape_vec(IxDyn(&[data.len(), h, w, c]), pixels)
        .map_err(|e| DatasetError::Inconsistent(e.to_string()))?;
    array.write_npy(out).map_err(npy)
}

/// The labels of `data` as NPY bytes (`int64 (N,)`).
///
/// # Errors
/// No labels.
pub fn write_labels_npy(data: &ImageDataSet, out: &mut impl Write) -> Result<()> {
    let labels = data.require_labels("writing labels")?;
    Array1::from_iter(labels.iter().map(|&l| l as i64))
        .write_npy(out)
        .map_err(|e| DatasetError::Inconsistent(format!("writing NPY: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_folders_keep_label_order() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(class_folders(&names(&["cat", "dog"])), names(&["cat", "dog"]));
        assert_eq!(
            class_folders(&names(&["T-shirt/top", "Trouser", "Ankle boot"])),
            names(&["0_T-shirt_top", "1_Trouser", "2_Ankle boot"])
        );
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        // "10" sorts before "2": prefixed to two digits.
        assert_eq!(class_folders(&many)[2], "02_2");
    }
}
