//! JPEG decoding with libjpeg-turbo, loaded at run time when the system has it: Pillow decodes
//! JPEGs with libjpeg-turbo (accurate integer IDCT, fancy upsampling), and so does TurboJPEG
//! with its default flags, to the same bytes. image-rs's pure-Rust decoder differs from it by
//! up to 4 levels in a pixel, which is 0.07 after ImageNet normalisation: with libjpeg-turbo
//! the inputs are torchvision's to the bit.
//!
//! The library is `$NNLENS_LIBTURBOJPEG` if set, else `libturbojpeg.so.0` (Debian and Ubuntu's
//! `libturbojpeg0`, Fedora's `turbojpeg`), else `libturbojpeg.dylib` (Homebrew's `jpeg-turbo`).
//! Without it JPEGs are decoded by image-rs, and the manifest says which decoder ran.

use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::path::Path;
use std::sync::OnceLock;

use crate::store::{Pixels, RawImage};
use crate::{DatasetError, Result};

type Handle = *mut c_void;

/// The TurboJPEG functions used (API of libjpeg-turbo 1.4 and later, including 3.x).
struct TurboJpeg {
    _library: libloading::Library,
    path: String,
    init: unsafe extern "C" fn() -> Handle,
    header: unsafe extern "C" fn(
        Handle,
        *const u8,
        c_ulong,
        *mut c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
    ) -> c_int,
    decompress: unsafe extern "C" fn(
        Handle,
        *const u8,
        c_ulong,
        *mut u8,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
    ) -> c_int,
    error: unsafe extern "C" fn(Handle) -> *mut c_char,
    destroy: unsafe extern "C" fn(Handle) -> c_int,
}

// SAFETY: the function pointers are plain C functions of a library that stays loaded; each
// call makes and destroys its own handle, so nothing is shared between threads.
unsafe impl Send for TurboJpeg {}
unsafe impl Sync for TurboJpeg {}

const TJPF_RGB: c_int = 0;
const TJPF_GRAY: c_int = 6;

fn candidates() -> Vec<String> {
    match std::env::var("NNLENS_LIBTURBOJPEG") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => ["libturbojpeg.so.0", "libturbojpeg.so", "libturbojpeg.0.dylib", "libturbojpeg.dylib"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

fn load() -> Option<TurboJpeg> {
    for path in candidates() {
        // SAFETY: loading libjpeg-turbo runs no initialisers beyond the C library's own.
        let Ok(library) = (unsafe { libloading::Library::new(&path) }) else { continue };
        // SAFETY: the symbols have these C signatures in every TurboJPEG 1.4+ release.
        let functions = unsafe {
            (|| -> std::result::Result<_, libloading::Error> {
                Ok((
                    *library.get(b"tjInitDecompress\0")?,
                    *library.get(b"tjDecompressHeader3\0")?,
                    *library.get(b"tjDecompress2\0")?,
                    *library.get(b"tjGetErrorStr2\0")?,
                    *library.get(b"tjDestroy\0")?,
                ))
            })()
        };
        if let Ok((init, header, decompress, error, destroy)) = functions {
            tracing::debug!(%path, "decoding JPEGs with libjpeg-turbo");
            return Some(TurboJpeg {
                _library: library,
                path,
                init,
                header,
                decompress,
                error,
                destroy,
            });
        }
    }
    None
}

fn library() -> Option<&'static TurboJpeg> {
    static LIB: OnceLock<Option<TurboJpeg>> = OnceLock::new();
    LIB.get_or_init(load).as_ref()
}

/// The JPEG decoder in use: `libjpeg-turbo (PATH)` or `image-rs`.
pub fn jpeg_decoder() -> String {
    match library() {
        Some(l) => format!("libjpeg-turbo ({})", l.path),
        None => "image-rs (zune-jpeg)".to_string(),
    }
}

/// Decodes JPEG `bytes` with libjpeg-turbo as grey (`channels` 1) or RGB (3), or `None` when
/// the library is not there.
///
/// # Errors
/// [`DatasetError::Format`] naming `path` for bytes libjpeg-turbo cannot decode.
pub(crate) fn decode(bytes: &[u8], path: &Path, channels: usize) -> Option<Result<RawImage>> {
    let lib = library()?;
    Some(decode_with(lib, bytes, path, channels))
}

fn decode_with(lib: &TurboJpeg, bytes: &[u8], path: &Path, channels: usize) -> Result<RawImage> {
    // SAFETY: the handle is made, used on this thread only and destroyed below; buffers are
    // sized from the header (width * height * channels bytes, pitch 0 = tightly packed).
    unsafe {
        let handle = (lib.init)();
        if handle.is_null() {
            return Err(DatasetError::Format {
                path: path.into(),
                reason: "libjpeg-turbo could not start a decoder".into(),
            });
        }
        let fail = |handle: Handle| {
            let message = CStr::from_ptr((lib.error)(handle)).to_string_lossy().into_owned();
            (lib.destroy)(handle);
            Err(DatasetError::Format {
                path: path.into(),
                reason: format!("not a readable JPEG: {message}"),
            })
        };
        let (mut w, mut h, mut sub, mut space) = (0, 0, 0, 0);
        if (lib.header)(
            handle,
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            &mut w,
            &mut h,
            &mut sub,
            &mut space,
        ) != 0
        {
            return fail(handle);
        }
        let (width, height) = (w.max(0) as usize, h.max(0) as usize);
        let mut pixels = vec![0u8; width * height * channels];
        let format = if channels == 3 { TJPF_RGB } else { TJPF_GRAY };
        if (lib.decompress)(
            handle,
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            pixels.as_mut_ptr(),
            w,
            0,
            h,
            format,
            0,
        ) != 0
        {
            return fail(handle);
        }
        (lib.destroy)(handle);
        Ok(RawImage { height, width, channels, pixels: Pixels::U8(pixels) })
    }
}
