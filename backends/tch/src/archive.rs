//! What a `.pt` file is, read from its zip directory without libtorch: a TorchScript archive
//! (`torch.jit.save`), a `torch.save` checkpoint (a pickled module or `state_dict`), or
//! something else; and the nnlens metadata the export script records in it
//! (`extra/nnlens.json`, written with `torch.jit.save(..., _extra_files=...)`).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

/// The name (below the archive's top folder) of the metadata the export script records.
pub const METADATA_ENTRY: &str = "extra/nnlens.json";

/// The largest metadata entry read (it holds a shape and a few names).
const METADATA_LIMIT: u64 = 1 << 20;

/// What the export script records about a module (`tests/fixtures/torchscript/export.py`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// The shape of one input sample, channels first (`[3, 224, 224]`).
    #[serde(default)]
    pub input_shape: Option<Vec<usize>>,
    /// The torch version that saved the file.
    #[serde(default)]
    pub torch_version: Option<String>,
}

/// What a file given as a TorchScript model turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A TorchScript archive (it has TorchScript code or constants), with the metadata the
    /// export script recorded, if any.
    TorchScript(Metadata),
    /// A zip written by `torch.save` (pickled tensors, no TorchScript code).
    Checkpoint,
    /// Something else: why it is not a TorchScript file.
    Other(String),
}

/// Reads what `path` is from its first bytes and its zip directory.
///
/// # Errors
/// The file cannot be opened or read; a corrupt archive is [`FileKind::Other`], not an error.
pub fn inspect(path: &Path) -> std::io::Result<FileKind> {
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 8];
    let n = read_up_to(&mut file, &mut head)?;
    let head = &head[..n];
    if !head.starts_with(b"PK\x03\x04") {
        return Ok(FileKind::Other(not_zip(head)));
    }
    let entries = match directory(&mut file) {
        Ok(entries) => entries,
        Err(why) => return Ok(FileKind::Other(format!("a corrupt zip archive ({why})"))),
    };
    let below_top = |e: &Entry| e.name.split_once('/').map_or("", |(_, rest)| rest).to_string();
    let is_script = entries.iter().any(|e| {
        let rest = below_top(e);
        rest == "constants.pkl" || rest.starts_with("code/")
    });
    if !is_script {
        return Ok(if entries.iter().any(|e| below_top(e) == "data.pkl") {
            FileKind::Checkpoint
        } else {
            FileKind::Other("a zip archive that holds no TorchScript module".into())
        });
    }
    let metadata = match entries.iter().find(|e| below_top(e) == METADATA_ENTRY) {
        Some(entry) => read_metadata(&mut file, entry).map_err(|why| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("its {METADATA_ENTRY} is unreadable: {why}"),
            )
        })?,
        None => Metadata::default(),
    };
    Ok(FileKind::TorchScript(metadata))
}

/// Why bytes that are not a zip archive are no TorchScript file, naming what they look like.
fn not_zip(head: &[u8]) -> String {
    if head.is_empty() {
        "an empty file".into()
    } else if head[0] == 0x80 && head.len() > 1 && head[1] <= 5 {
        "a legacy (pre-1.6) torch.save pickle, not TorchScript".into()
    } else if head.starts_with(b"\x89HDF") {
        "an HDF5 (Keras) file, not TorchScript".into()
    } else if head.first() == Some(&0x08) {
        "it looks like an ONNX model: run it with --backend tract, ort or candle".into()
    } else {
        "not a zip archive (TorchScript files are zip archives written by torch.jit.save)".into()
    }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// One entry of a zip's central directory.
#[derive(Debug)]
struct Entry {
    name: String,
    method: u16,
    size: u64,
    local_header: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The central directory of a zip archive (zip64 too, as torch writes for files over 4 GB).
fn directory(file: &mut std::fs::File) -> Result<Vec<Entry>, String> {
    let io = |e: std::io::Error| e.to_string();
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    // The end-of-central-directory record is in the last 22 + 65535 bytes.
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail).map_err(io)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no end of central directory")?;
    let short = "a truncated directory record";
    let mut count = u64::from(u16_at(&tail, eocd + 10).ok_or(short)?);
    let mut size = u64::from(u32_at(&tail, eocd + 12).ok_or(short)?);
    let mut offset = u64::from(u32_at(&tail, eocd + 16).ok_or(short)?);
    if (count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff) && eocd >= 20 {
        // The zip64 locator sits just before the record and points at the zip64 record.
        let locator = eocd - 20;
        if tail[locator..].starts_with(b"PK\x06\x07") {
            let at = u64_at(&tail, locator + 8).ok_or(short)?;
            file.seek(SeekFrom::Start(at)).map_err(io)?;
            let mut record = [0u8; 56];
            file.read_exact(&mut record).map_err(io)?;
            if !record.starts_with(b"PK\x06\x06") {
                return Err("a broken zip64 record".into());
            }
            count = u64_at(&record, 32).ok_or(short)?;
            size = u64_at(&record, 40).ok_or(short)?;
            offset = u64_at(&record, 48).ok_or(short)?;
        }
    }
    if offset.checked_add(size).is_none_or(|end| end > len) || size > 1 << 30 {
        return Err("a central directory outside the file".into());
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut cd = vec![0u8; size as usize];
    file.read_exact(&mut cd).map_err(io)?;
    let mut entries = Vec::new();
    let mut at = 0usize;
    for _ in 0..count {
        if !cd.get(at..).is_some_and(|b| b.starts_with(b"PK\x01\x02")) {
            return Err("a broken central directory entry".into());
        }
        let field = |o: usize| u16_at(&cd, at + o).map(usize::from).ok_or(short);
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let name = cd.get(at + 46..at + 46 + name_len).ok_or(short)?;
        let extra = cd.get(at + 46 + name_len..at + 46 + name_len + extra_len).ok_or(short)?;
        let mut size = u64::from(u32_at(&cd, at + 24).ok_or(short)?);
        let compressed = u64::from(u32_at(&cd, at + 20).ok_or(short)?);
        let mut local_header = u64::from(u32_at(&cd, at + 42).ok_or(short)?);
        // zip64 extra field (id 1): the 64-bit values of those stored as 0xffffffff, in order.
        let mut e = 0;
        while e + 4 <= extra.len() {
            let (id, n) =
                (u16_at(extra, e).unwrap_or(0), usize::from(u16_at(extra, e + 2).unwrap_or(0)));
            if id == 1 {
                let mut k = e + 4;
                let mut next = || {
                    let v = u64_at(extra, k);
                    k += 8;
                    v
                };
                if size == 0xffff_ffff {
                    size = next().ok_or(short)?;
                }
                if compressed == 0xffff_ffff {
                    next().ok_or(short)?;
                }
                if local_header == 0xffff_ffff {
                    local_header = next().ok_or(short)?;
                }
            }
            e += 4 + n;
        }
        entries.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method: u16_at(&cd, at + 10).ok_or(short)?,
            size,
            local_header,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// Reads and parses the metadata entry (stored uncompressed, as torch writes every entry).
fn read_metadata(file: &mut std::fs::File, entry: &Entry) -> Result<Metadata, String> {
    if entry.method != 0 {
        return Err(format!("compressed (method {}), torch stores entries", entry.method));
    }
    if entry.size > METADATA_LIMIT {
        return Err(format!("{} bytes", entry.size));
    }
    let io = |e: std::io::Error| e.to_string();
    file.seek(SeekFrom::Start(entry.local_header)).map_err(io)?;
    let mut header = [0u8; 30];
    file.read_exact(&mut header).map_err(io)?;
    if !header.starts_with(b"PK\x03\x04") {
        return Err("a broken local header".into());
    }
    let skip =
        u64::from(u16_at(&header, 26).unwrap_or(0)) + u64::from(u16_at(&header, 28).unwrap_or(0));
    file.seek(SeekFrom::Current(skip as i64)).map_err(io)?;
    let mut data = vec![0u8; entry.size as usize];
    file.read_exact(&mut data).map_err(io)?;
    let metadata: Metadata = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
    if let Some(shape) = &metadata.input_shape
        && (shape.is_empty() || shape.contains(&0))
    {
        return Err(format!("input_shape {shape:?} has an empty axis"));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A stored (uncompressed) zip with these entries, as torch writes them; `zip64` adds the
    /// zip64 end records (and marks the 32-bit fields as overflowed) as torch does for big files.
    pub(crate) fn zip(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&0u32.to_le_bytes()); // crc (not checked)
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&0u32.to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len();
        out.extend_from_slice(&central);
        if zip64 {
            let record = out.len() as u64;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            out.extend_from_slice(&(central.len() as u64).to_le_bytes());
            out.extend_from_slice(&(cd_offset as u64).to_le_bytes());
            out.extend_from_slice(b"PK\x06\x07");
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0, 0, 0, 0]);
        let n = if zip64 { 0xffff } else { entries.len() as u16 };
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        let o = if zip64 { 0xffff_ffff } else { cd_offset as u32 };
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn kind_of(bytes: &[u8]) -> FileKind {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        inspect(file.path()).unwrap()
    }

    #[test]
    fn a_torchscript_archive_and_its_metadata_are_recognised() {
        let meta = br#"{"input_shape": [3, 32, 32], "torch_version": "2.13.0"}"#;
        for zip64 in [false, true] {
            let bytes = zip(
                &[
                    ("m/data.pkl", b"x"),
                    ("m/code/__torch__/M.py", b"def forward"),
                    ("m/constants.pkl", b"c"),
                    ("m/extra/nnlens.json", meta),
                ],
                zip64,
            );
            assert_eq!(
                kind_of(&bytes),
                FileKind::TorchScript(Metadata {
                    input_shape: Some(vec![3, 32, 32]),
                    torch_version: Some("2.13.0".into())
                }),
                "zip64 {zip64}"
            );
        }
        let plain = zip(&[("m/data.pkl", b"x"), ("m/constants.pkl", b"c")], false);
        assert_eq!(kind_of(&plain), FileKind::TorchScript(Metadata::default()));
    }

    #[test]
    fn checkpoints_onnx_and_junk_are_told_apart() {
        let checkpoint = zip(&[("archive/data.pkl", b"x"), ("archive/data/0", b"w")], false);
        assert_eq!(kind_of(&checkpoint), FileKind::Checkpoint);
        let why = |bytes: &[u8]| match kind_of(bytes) {
            FileKind::Other(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(why(b"").contains("empty"));
        assert!(why(b"\x80\x02}q\x00").contains("legacy"));
        assert!(why(b"\x08\x07\x12\x07pytorch").contains("ONNX"));
        assert!(why(b"hello world").contains("not a zip"));
        assert!(why(&zip(&[("a/b.txt", b"x")], false)).contains("no TorchScript"));
        // A zip cut short loses its directory.
        let full = zip(&[("m/constants.pkl", b"c")], false);
        assert!(why(&full[..full.len() - 10]).contains("corrupt"));
    }

    #[test]
    fn bad_metadata_is_an_error_naming_the_entry() {
        let bytes = zip(
            &[("m/constants.pkl", b"c"), ("m/extra/nnlens.json", b"{\"input_shape\": [0]}")],
            false,
        );
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes).unwrap();
        let e = inspect(file.path()).unwrap_err().to_string();
        assert!(e.contains("extra/nnlens.json") && e.contains("empty axis"), "{e}");
    }

    proptest::proptest! {
        /// Any bytes are classified without a panic.
        #[test]
        fn any_bytes_are_classified(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), pk in proptest::bool::ANY) {
            let mut bytes = bytes;
            if pk { bytes.splice(0..0, b"PK\x03\x04".iter().copied()); }
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(&bytes).unwrap();
            let _ = inspect(file.path());
        }
    }
}
