//! Image folders in torchvision's `ImageFolder` layout: `ROOT/<class>/**/<image>`, classes
//! indexed in sorted name order, images in sorted path order within each class, as
//! `torchvision.datasets.ImageFolder` lists them.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::ImageDecoder;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::store::{ImageStore, Pixels, RawImage};
use crate::{DatasetError, Result};

/// The extensions read (case-insensitive), of those torchvision's `IMG_EXTENSIONS` lists.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "ppm", "pgm"];

/// Extensions torchvision reads that nnlens does not: a folder holding them is refused rather
/// than measured without them.
const UNREAD_EXTENSIONS: &[&str] = &["tif", "tiff", "webp"];

/// One image file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// The path below the folder's root, `/`-separated (`cat/001.png`).
    pub relative: String,
    /// The class index.
    pub label: usize,
    /// Height and width, from the file's header.
    pub size: (usize, usize),
    /// Whether the image has colour (else grey).
    pub color: bool,
}

/// What a scan of an image folder found.
#[derive(Debug, Clone)]
pub struct FolderScan {
    /// The folder.
    pub root: PathBuf,
    /// The class names (the sub-folder names), sorted.
    pub classes: Vec<String>,
    /// Every image, class by class, in torchvision's order.
    pub files: Vec<FolderFile>,
    /// SHA-256 over the lines `relative-path TAB sha256-of-file NEWLINE` of every image, in
    /// order: the folder's content, whatever its location.
    pub content_sha256: String,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io { path: path.into(), source }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

/// The files below `dir` with a readable extension, in `os.walk` order sorted as torchvision
/// sorts them: by directory, then by name.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        if path.is_dir() {
            dirs.push(path);
        } else if let Some(ext) = extension(&path) {
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                files.push(path);
            } else if UNREAD_EXTENSIONS.contains(&ext.as_str()) {
                return Err(DatasetError::Format {
                    path,
                    reason: format!(
                        "{} images are not read; convert the folder's images to PNG or JPEG",
                        ext.to_uppercase()
                    ),
                });
            }
        }
    }
    files.sort();
    dirs.sort();
    out.extend(files);
    for d in dirs {
        walk(&d, out)?;
    }
    Ok(())
}

/// Lists, hashes and reads the header of every image of the folder `root` (in parallel).
///
/// # Errors
/// [`DatasetError::Missing`] for a folder that is not there, [`DatasetError::Inconsistent`]
/// for a folder without class folders or a class folder without images,
/// [`DatasetError::Format`] for a file whose header is not an image's.
pub fn scan_folder(root: &Path) -> Result<FolderScan> {
    if !root.is_dir() {
        return Err(DatasetError::Missing {
            what: "image folder".into(),
            path: root.into(),
            hint: if root.is_file() {
                " as a folder (it is a file)".into()
            } else {
                " (give a folder of class folders: DIR/<class>/<image>)".into()
            },
        });
    }
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_error(root))? {
        let entry = entry.map_err(io_error(root))?;
        if entry.path().is_dir() {
            let name = entry.file_name().into_string().map_err(|n| DatasetError::Format {
                path: root.join(&n),
                reason: "a class folder's name is not UTF-8".into(),
            })?;
            classes.push(name);
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(DatasetError::Inconsistent(format!(
            "{}: no class folders (an image folder is DIR/<class>/<image>, as torchvision's ImageFolder reads it)",
            root.display()
        )));
    }
    let mut paths = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut found = Vec::new();
        walk(&dir, &mut found)?;
        if found.is_empty() {
            return Err(DatasetError::Inconsistent(format!(
                "{}: class folder '{class}' holds no images ({})",
                dir.display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        paths.extend(found.into_iter().map(|p| (p, label)));
    }
    // Per file, what the index keeps (its relative path, label and size) and its digest in
    // binary: memory per file stays small beside the decoder's (a listing of a large folder).
    let scanned: Vec<(FolderFile, [u8; 32])> = paths
        .par_iter()
        .map(|(path, label)| {
            let bytes = std::fs::read(path).map_err(io_error(path))?;
            let (size, color) = header(&bytes, path)?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            Ok((FolderFile { relative, label: *label, size, color }, digest))
        })
        .collect::<Result<_>>()?;
    drop(paths);
    let mut hasher = Sha256::new();
    for (file, digest) in &scanned {
        hasher.update(file.relative.as_bytes());
        hasher.update(b"\t");
        hasher.update(hex::encode(digest).as_bytes());
        hasher.update(b"\n");
    }
    Ok(FolderScan {
        root: root.into(),
        classes,
        files: scanned.into_iter().map(|(f, _)| f).collect(),
        content_sha256: hex::encode(hasher.finalize()),
    })
}

/// Size and colour of an image from its header.
fn header(bytes: &[u8], path: &Path) -> Result<((usize, usize), bool)> {
    let bad = |e: image::ImageError| DatasetError::Format {
        path: path.into(),
        reason: format!("not a readable image: {e}"),
    };
    let decoder = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DatasetError::Io { path: path.into(), source })?
        .into_decoder()
        .map_err(bad)?;
    let (w, h) = decoder.dimensions();
    let color = decoder.color_type().has_color();
    Ok(((h as usize, w as usize), color))
}

/// Decodes an image file as grey (one channel) or RGB (three), as Pillow's `convert`: grey
/// repeated for RGB, alpha dropped. JPEGs are decoded by libjpeg-turbo when the system has it
/// (as Pillow does; see [`crate::turbojpeg`]).
pub fn decode_file(path: &Path, channels: usize) -> Result<RawImage> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        && let Some(decoded) = crate::turbojpeg::decode(&bytes, path, channels)
    {
        return decoded;
    }
    let image = image::load_from_memory(&bytes).map_err(|e| DatasetError::Format {
        path: path.into(),
        reason: format!("not a readable image: {e}"),
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels =
        if channels == 3 { image.to_rgb8().into_raw() } else { image.to_luma8().into_raw() };
    Ok(RawImage { height, width, channels, pixels: Pixels::U8(pixels) })
}

/// The relative paths of a folder's images in one string (a listing of many files is two
/// allocations, not one per file, and leaves the allocator no small blocks to work around).
#[derive(Debug, Default)]
pub(crate) struct PathList {
    text: String,
    /// `ends[i]`: where path `i` ends in `text` (it starts where path `i - 1` ends).
    ends: Vec<usize>,
}

impl PathList {
    /// The list of `paths`, in order.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut list = PathList::default();
        for path in paths {
            list.text.push_str(path);
            list.ends.push(list.text.len());
        }
        list.text.shrink_to_fit();
        list.ends.shrink_to_fit();
        list
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Path `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }
}

/// The images of a scanned folder, decoded when read.
#[derive(Debug)]
pub(crate) struct FolderStore {
    pub root: PathBuf,
    pub files: PathList,
    pub channels: usize,
}

impl ImageStore for FolderStore {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let file = self.files.get(index).ok_or_else(|| nnlens_core::CoreError::OutOfRange {
            what: format!("images of {}", self.root.display()),
            index,
            len: self.files.len(),
        })?;
        decode_file(&self.root.join(file), self.channels)
    }

    fn describe(&self, index: usize) -> String {
        match self.files.get(index) {
            Some(f) => self.root.join(f).display().to_string(),
            None => format!("image {index} of {}", self.root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathList;

    #[test]
    fn a_path_list_gives_back_every_path_in_order() {
        let paths = ["cat/001.png", "", "dög/ünïcode.jpg", "a/b/c/d.bmp"];
        let list = PathList::new(paths);
        assert_eq!(list.len(), 4);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(list.get(i), Some(*p));
        }
        assert_eq!(list.get(4), None);
        assert_eq!(PathList::new([]).get(0), None);
    }
}
