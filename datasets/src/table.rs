//! Tables of numbers: a CSV file with a header of column names, or an NPY array `[rows]` or
//! `[rows, columns]`, as an `f64` matrix.
//!
//! Every error is a [`DatasetError::Table`] naming what was read (a label such as
//! `--table data.csv`) and, for CSV, the record and line: one line of text.

use std::path::Path;

use ndarray::{Array2, Axis, Ix1, Ix2};

use crate::{DatasetError, Result};

/// A table: rows x columns of `f64` and the columns' names.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The values, rows x columns.
    pub values: Array2<f64>,
    /// The columns' names (`x0`, `x1`, ... for NPY, which has none).
    pub columns: Vec<String>,
}

fn table_error(label: &str, reason: impl Into<String>) -> DatasetError {
    DatasetError::Table { label: label.to_string(), reason: reason.into() }
}

/// The label of a file read for a command-line flag: `--table data.csv`.
pub fn flag_label(flag: &str, path: &Path) -> String {
    format!("{flag} {}", path.display())
}

fn read_bytes(path: &Path, label: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| table_error(label, format!("cannot read: {e}")))
}

/// Reads a table file given for `flag`: NPY when its extension is `npy`, else CSV with a header
/// (see [`parse_csv_table`] and [`parse_npy_matrix`]).
///
/// # Errors
/// [`DatasetError::Table`] naming the flag and the file, when it cannot be read or is not a
/// table.
pub fn read_table(path: &Path, flag: &str) -> Result<Table> {
    let label = flag_label(flag, path);
    let bytes = read_bytes(path, &label)?;
    if path.extension().is_some_and(|e| e == "npy") {
        let values = parse_npy_matrix(&bytes, &label)?;
        let columns = (0..values.ncols()).map(|c| format!("x{c}")).collect();
        Ok(Table { values, columns })
    } else {
        parse_csv_table(&bytes, &label)
    }
}

/// Reads an NPY file given for `flag` as a matrix (see [`parse_npy_matrix`]).
///
/// # Errors
/// [`DatasetError::Table`] naming the flag and the file.
pub fn read_matrix(path: &Path, flag: &str) -> Result<Array2<f64>> {
    let label = flag_label(flag, path);
    parse_npy_matrix(&read_bytes(path, &label)?, &label)
}

/// Parses an NPY array `[rows]` (one column) or `[rows, columns]` of any numeric type as `f64`;
/// `label` names it in errors.
///
/// # Errors
/// [`DatasetError::Table`] when the bytes are not a numeric NPY array or it has another number
/// of axes.
pub fn parse_npy_matrix(bytes: &[u8], label: &str) -> Result<Array2<f64>> {
    let a = crate::npy::parse_npy_f64(bytes, Path::new(label)).map_err(|e| match e {
        DatasetError::Format { reason, .. } => table_error(label, reason),
        other => table_error(label, other.to_string()),
    })?;
    let axes = |e: ndarray::ShapeError| table_error(label, e.to_string());
    match a.ndim() {
        1 => Ok(a.into_dimensionality::<Ix1>().map_err(axes)?.insert_axis(Axis(1))),
        2 => a.into_dimensionality::<Ix2>().map_err(axes),
        d => Err(table_error(label, format!("expected [rows] or [rows, columns], got {d} axes"))),
    }
}

/// A field or column name for a one-line message: escaped (a quoted CSV field may hold line
/// breaks) and cut after 60 characters.
fn shown(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    match escaped.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

/// Where a CSV error is: `header (line 1)` or `record R (line L)`, records counted from 1 after
/// the header.
fn place(pos: Option<&csv::Position>, fallback_record: u64) -> String {
    match pos {
        Some(p) if p.record() == 0 => format!("header (line {})", p.line()),
        Some(p) => format!("record {} (line {})", p.record(), p.line()),
        None if fallback_record == 0 => "header".to_string(),
        None => format!("record {fallback_record}"),
    }
}

/// One line saying what is wrong with a CSV error.
fn csv_reason(e: &csv::Error, record: u64) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, err } => {
            format!("{}: invalid UTF-8 in field {}", place(pos.as_ref(), record), err.field() + 1)
        }
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => {
            format!("{} has {len} values for {expected_len} columns", place(pos.as_ref(), record))
        }
        csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        _ => format!("{}: {}", place(e.position(), record), e.to_string().replace('\n', " ")),
    }
}

/// Parses CSV bytes with a header of column names and one number per field (surrounding
/// spaces allowed); `label` names the table in errors.
///
/// # Errors
/// [`DatasetError::Table`] naming the label, and the record and line, for invalid UTF-8, a
/// record with another number of fields than the header, a field that is not a number, or a
/// table with no rows.
pub fn parse_csv_table(bytes: &[u8], label: &str) -> Result<Table> {
    let mut reader = csv::Reader::from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| table_error(label, csv_reason(&e, 0)))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut values = Vec::new();
    let mut rows = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        let number = rows as u64 + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(table_error(label, csv_reason(&e, number))),
        }
        let at = place(record.position(), number);
        if record.len() != columns.len() {
            return Err(table_error(
                label,
                format!("{at} has {} values for {} columns", record.len(), columns.len()),
            ));
        }
        for (c, v) in record.iter().enumerate() {
            let x = v.trim().parse::<f64>().map_err(|_| {
                let (column, v) = (shown(&columns[c]), shown(v));
                table_error(label, format!("{at}, column '{column}': '{v}' is not a number"))
            })?;
            values.push(x);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(table_error(label, "no rows"));
    }
    let values = Array2::from_shape_vec((rows, columns.len()), values)
        .map_err(|e| table_error(label, e.to_string()))?;
    Ok(Table { values, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use ndarray_npy::WriteNpyExt;

    const L: &str = "--table data.csv";

    fn err(bytes: &[u8]) -> String {
        parse_csv_table(bytes, L).unwrap_err().to_string()
    }

    #[test]
    fn csv_with_header_is_read() {
        let t = parse_csv_table(b"a, b\n1,2\n 3 ,-4.5\n", L).unwrap();
        assert_eq!(t.columns, ["a", " b"]);
        assert_eq!(t.values, array![[1.0, 2.0], [3.0, -4.5]]);
    }

    #[test]
    fn csv_errors_are_one_line_naming_the_file_and_the_record() {
        assert_eq!(
            err(b"a,b\n\xff,2\n"),
            "--table data.csv: record 1 (line 2): invalid UTF-8 in field 1"
        );
        assert_eq!(
            err(b"a,\xfe\n1,2\n"),
            "--table data.csv: header (line 1): invalid UTF-8 in field 2"
        );
        assert_eq!(
            err(b"a,b\n1,2\n3\n"),
            "--table data.csv: record 2 (line 3) has 1 values for 2 columns"
        );
        assert_eq!(
            err(b"a,b\n1,2\n3,x\n"),
            "--table data.csv: record 2 (line 3), column 'b': 'x' is not a number"
        );
        assert_eq!(err(b"a,b\n"), "--table data.csv: no rows");
        assert_eq!(err(b""), "--table data.csv: no rows");
        assert_eq!(
            err(b"a\n\"1\n2\""),
            "--table data.csv: record 1 (line 2), column 'a': '1\\n2' is not a number"
        );
        for e in [err(b"a\n\"1\n2"), err(b"a,b\n1,2\n\"3\n4\",x\n"), err(&[b'1'; 500])] {
            assert!(e.starts_with(L) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn npy_vectors_and_matrices_are_read() {
        let mut bytes = Vec::new();
        array![1.0f32, 2.0].write_npy(&mut bytes).unwrap();
        assert_eq!(parse_npy_matrix(&bytes, "--truth t.npy").unwrap(), array![[1.0], [2.0]]);
        let mut bytes = Vec::new();
        array![[[1u8]]].write_npy(&mut bytes).unwrap();
        let e = parse_npy_matrix(&bytes, "--truth t.npy").unwrap_err().to_string();
        assert_eq!(e, "--truth t.npy: expected [rows] or [rows, columns], got 3 axes");
        let e = parse_npy_matrix(b"garbage", "--truth t.npy").unwrap_err().to_string();
        assert!(e.starts_with("--truth t.npy: not a readable NPY array"), "{e}");
    }

    #[test]
    fn files_are_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.csv");
        let e = read_table(&missing, "--table").unwrap_err().to_string();
        assert!(e.starts_with(&format!("--table {}: cannot read", missing.display())), "{e}");
        let npy = dir.path().join("t.npy");
        let mut bytes = Vec::new();
        array![[1.0f64, 2.0]].write_npy(&mut bytes).unwrap();
        std::fs::write(&npy, bytes).unwrap();
        let t = read_table(&npy, "--table").unwrap();
        assert_eq!(t.columns, ["x0", "x1"]);
        assert_eq!(read_matrix(&npy, "--predictions").unwrap(), array![[1.0, 2.0]]);
    }
}
