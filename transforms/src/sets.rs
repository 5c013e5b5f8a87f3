//! Named transformation sets and the seed's numbered groups.

use serde::{Deserialize, Serialize};

use crate::{Result, TransformError, Transformation};

/// An ordered list of transformations, with the spec it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformationSet {
    /// The spec (or group) it was made from.
    pub spec: String,
    /// The transformations, in column order.
    pub transformations: Vec<Transformation>,
}

/// The most transformations a set may have: a spec that makes more (`rotation:n=100000000`)
/// is refused before its transformations are made, instead of filling the memory. Every
/// transformation is a column of the samples x transformations matrix: 100,000 columns of
/// even 10 samples are a million model runs.
pub const MAX_TRANSFORMATIONS: usize = 100_000;

/// The number of the seed package's transformation groups ([`seed_group`]).
pub const SEED_GROUPS: usize = 7;

fn spec_error(spec: &str, reason: impl Into<String>) -> TransformError {
    TransformError::Spec { spec: spec.to_string(), reason: reason.into() }
}

fn number(spec: &str, text: &str) -> Result<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| spec_error(spec, format!("'{text}' is not a number")))
}

/// `a..b` or a single `a`.
fn range(spec: &str, text: &str) -> Result<(f64, f64)> {
    match text.split_once("..") {
        Some((a, b)) => Ok((number(spec, a)?, number(spec, b)?)),
        None => {
            let v = number(spec, text)?;
            Ok((v, v))
        }
    }
}

fn too_many(spec: &str, what: &str, n: impl std::fmt::Display) -> TransformError {
    spec_error(
        spec,
        format!(
            "{what} make {n} transformations, more than the {MAX_TRANSFORMATIONS} a set may have"
        ),
    )
}

fn count(spec: &str, text: &str) -> Result<usize> {
    let n = text.parse::<u128>().ok().filter(|&n| n > 0).ok_or_else(|| {
        spec_error(spec, format!("n = '{text}' must be a whole number of at least 1"))
    })?;
    if n > MAX_TRANSFORMATIONS as u128 {
        return Err(too_many(spec, &format!("n = {n} would"), n));
    }
    Ok(n as usize)
}

/// `n` values from `a` to `b` inclusive.
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

/// Steps `a, a + step, ...` up to `b` inclusive.
fn steps(spec: &str, (a, b): (f64, f64), step: f64) -> Result<Vec<f64>> {
    if step <= 0.0 || b < a {
        return Err(spec_error(spec, format!("range {a}..{b} with step {step} is empty")));
    }
    let k = ((b - a) / step + 1e-9).floor();
    // (Compared as f64: the count of a range of 1e300 pixels is no integer type's.)
    if k + 1.0 > MAX_TRANSFORMATIONS as f64 {
        return Err(too_many(spec, &format!("the range {a}..{b} with step {step} would"), k + 1.0));
    }
    Ok((0..=k as usize).map(|i| a + step * i as f64).collect())
}

impl TransformationSet {
    /// A set of `transformations` described by `spec`.
    pub fn new(spec: impl Into<String>, transformations: Vec<Transformation>) -> Self {
        Self { spec: spec.into(), transformations }
    }

    /// Parses a spec: unions (`A+B`: A's transformations, then B's) of products (`A*B`: every
    /// a then every b, a major) of atoms:
    ///
    /// | atom | transformations |
    /// | --- | --- |
    /// | `identity` or `identity:n=K` | K identities (default 1) |
    /// | `rotation:n=K` | `i * 360 / K` degrees, i = 0..K-1 |
    /// | `rotation:A..B,n=K` | K angles from A to B inclusive |
    /// | `rotation:A;B;C` | the angles listed |
    /// | `translation:dx=A..B,dy=C..D[,step=S]` | the grid of shifts in pixels, step 1 by default (dy major); a missing axis is 0 |
    /// | `scale:A..B,n=K` / `scale:A;B` | isotropic scales |
    /// | `hflip`, `vflip` | mirror left-right, top-bottom |
    ///
    /// A spec that would make more than [`MAX_TRANSFORMATIONS`] is refused before more are
    /// made: every atom, product and union is counted before it is built.
    ///
    /// # Errors
    /// [`TransformError::Spec`] saying what is wrong.
    pub fn parse(spec: &str) -> Result<Self> {
        let text: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        if text.is_empty() {
            return Err(spec_error(spec, "empty; try rotation:n=16 or translation:dx=-2..2"));
        }
        let mut all = Vec::new();
        for term in text.split('+') {
            let mut product: Option<Vec<Transformation>> = None;
            for atom in term.split('*') {
                let set = Self::atom(spec, atom)?;
                product = Some(match product {
                    None => set,
                    Some(left) => {
                        let n = left.len() as u128 * set.len() as u128;
                        if n > MAX_TRANSFORMATIONS as u128 {
                            return Err(too_many(spec, &format!("the product '{term}' would"), n));
                        }
                        left.iter().flat_map(|a| set.iter().map(move |b| a.then(b))).collect()
                    }
                });
            }
            let product = product.unwrap_or_default();
            if all.len() + product.len() > MAX_TRANSFORMATIONS {
                return Err(too_many(spec, "the union would", all.len() + product.len()));
            }
            all.extend(product);
        }
        Ok(Self::new(spec, all))
    }

    fn atom(spec: &str, atom: &str) -> Result<Vec<Transformation>> {
        let (name, params) = atom.split_once(':').unwrap_or((atom, ""));
        let mut keyed: Vec<(&str, &str)> = Vec::new();
        let mut positional: Vec<&str> = Vec::new();
        for item in params.split(',').filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some((k, v)) => keyed.push((k, v)),
                None => positional.push(item),
            }
        }
        let get = |key: &str| keyed.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let allow = |keys: &[&str], positional_ok: bool| -> Result<()> {
            if let Some((k, _)) = keyed.iter().find(|(k, _)| !keys.contains(k)) {
                return Err(spec_error(
                    spec,
                    format!("{name} takes no parameter '{k}' (takes {keys:?})"),
                ));
            }
            if !positional_ok && !positional.is_empty() {
                return Err(spec_error(
                    spec,
                    format!("{name} takes only named parameters {keys:?}"),
                ));
            }
            Ok(())
        };
        let values =
            |list: &str| -> Result<Vec<f64>> { list.split(';').map(|v| number(spec, v)).collect() };
        match name {
            "identity" => {
                allow(&["n"], false)?;
                let n = get("n").map(|n| count(spec, n)).transpose()?.unwrap_or(1);
                Ok(vec![Transformation::identity(); n])
            }
            "rotation" => {
                allow(&["n"], true)?;
                let n = get("n").map(|n| count(spec, n)).transpose()?;
                let angles = match (positional.as_slice(), n) {
                    ([], Some(n)) => (0..n).map(|i| i as f64 * 360.0 / n as f64).collect(),
                    ([r], Some(n)) if r.contains("..") => {
                        let (a, b) = range(spec, r)?;
                        linspace(a, b, n)
                    }
                    ([r], None) if r.contains("..") => {
                        return Err(spec_error(
                            spec,
                            format!(
                                "the range {r} needs n=K, the number of angles (rotation:{r},n=8)"
                            ),
                        ));
                    }
                    ([list], None) => values(list)?,
                    _ => {
                        return Err(spec_error(
                            spec,
                            "rotation takes n=K, A..B,n=K or A;B;C (degrees)",
                        ));
                    }
                };
                angles.into_iter().map(Transformation::rotation).collect()
            }
            "translation" => {
                allow(&["dx", "dy", "step"], false)?;
                let step = get("step").map(|s| number(spec, s)).transpose()?.unwrap_or(1.0);
                let dx = get("dx").map(|r| range(spec, r)).transpose()?.unwrap_or((0.0, 0.0));
                let dy = get("dy").map(|r| range(spec, r)).transpose()?.unwrap_or((0.0, 0.0));
                if get("dx").is_none() && get("dy").is_none() {
                    return Err(spec_error(
                        spec,
                        "translation needs dx=A..B and/or dy=C..D (pixels)",
                    ));
                }
                let (xs, ys) = (steps(spec, dx, step)?, steps(spec, dy, step)?);
                // Each axis is within the bound; their grid must be too, before it is built.
                let grid = xs.len() as u128 * ys.len() as u128;
                if grid > MAX_TRANSFORMATIONS as u128 {
                    return Err(too_many(spec, "the grid of dx and dy would", grid));
                }
                ys.iter()
                    .flat_map(|&y| xs.iter().map(move |&x| Transformation::translation(x, y)))
                    .collect()
            }
            "scale" => {
                allow(&["n"], true)?;
                let n = get("n").map(|n| count(spec, n)).transpose()?;
                let scales = match (positional.as_slice(), n) {
                    ([r], Some(n)) if r.contains("..") => {
                        let (a, b) = range(spec, r)?;
                        linspace(a, b, n)
                    }
                    ([r], None) if r.contains("..") => {
                        return Err(spec_error(
                            spec,
                            format!(
                                "the range {r} needs n=K, the number of scales (scale:{r},n=5)"
                            ),
                        ));
                    }
                    ([list], None) => values(list)?,
                    _ => return Err(spec_error(spec, "scale takes A..B,n=K or A;B;C")),
                };
                scales.into_iter().map(|s| Transformation::scale(s, s)).collect()
            }
            "hflip" => {
                allow(&[], false)?;
                Ok(vec![Transformation::flip_horizontal()])
            }
            "vflip" => {
                allow(&[], false)?;
                Ok(vec![Transformation::flip_vertical()])
            }
            other => Err(spec_error(
                spec,
                format!(
                    "unknown transformation '{other}' (identity, rotation, translation, scale, hflip, vflip)"
                ),
            )),
        }
    }

    /// The number of transformations.
    pub fn len(&self) -> usize {
        self.transformations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.transformations.is_empty()
    }

    /// Transformation `i`.
    pub fn get(&self, i: usize) -> Option<&Transformation> {
        self.transformations.get(i)
    }
}

/// `i * step` for i in 0..n, with `step = size / n` (integer division) when `n <= size`, else 1:
/// the seed's shifts.
fn seed_shifts(n: usize, size: usize) -> Vec<f64> {
    let step = if n <= size { size / n } else { 1 };
    (0..n).map(|i| (i * step) as f64).collect()
}

fn seed_angles(n: usize) -> Vec<f64> {
    (0..n).map(|i| (i * (360 / n)) as f64).collect()
}

/// Group `group` of the seed package (`MnistTransformationsDataSet.set_transformation_group`),
/// with `n` transformations, for images of `height` x `width`. Integer division throughout, as
/// the seed:
///
/// | group | transformations |
/// | --- | --- |
/// | 0 | n identities |
/// | 1 | rotations by `i * (360 / n)` degrees |
/// | 2 | x-translations (horizontal, columns) by `i * (W / n)` pixels (`i` when n > W) |
/// | 3 | y-translations (vertical, rows), likewise with H |
/// | 4 | x,y-translations: the first n shifts of the k x k grid (y major), k = ceil(sqrt n), steps `W / k` and `H / k` |
/// | 5 | rotation i and x-translation i at the same time (rotation, then translation) |
/// | 6 | rotation i and y-translation i at the same time |
///
/// Group 4 differs from the seed's, which is a union of n/2 y-shifts and n/2 x-shifts (no
/// shift in both directions at once); nnlens makes the x,y grid the name describes.
///
/// # Errors
/// [`TransformError::Invalid`] for a group past 6, `n = 0` or `n` past [`MAX_TRANSFORMATIONS`].
pub fn seed_group(
    group: usize,
    n: usize,
    height: usize,
    width: usize,
) -> Result<TransformationSet> {
    if n == 0 {
        return Err(TransformError::Invalid("a transformation group needs n >= 1".into()));
    }
    if n > MAX_TRANSFORMATIONS {
        return Err(TransformError::Invalid(format!(
            "transformation group {group} with n = {n}: more than the {MAX_TRANSFORMATIONS} \
             transformations a set may have"
        )));
    }
    let t = |dx: f64, dy: f64| Transformation::translation(dx, dy);
    let list: Vec<Transformation> = match group {
        0 => vec![Transformation::identity(); n],
        1 => seed_angles(n).into_iter().map(Transformation::rotation).collect::<Result<_>>()?,
        2 => seed_shifts(n, width).into_iter().map(|d| t(d, 0.0)).collect::<Result<_>>()?,
        3 => seed_shifts(n, height).into_iter().map(|d| t(0.0, d)).collect::<Result<_>>()?,
        4 => {
            let k = (n as f64).sqrt().ceil() as usize;
            let (xs, ys) = (seed_shifts(k, width), seed_shifts(k, height));
            ys.iter()
                .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
                .take(n)
                .map(|(x, y)| t(x, y))
                .collect::<Result<_>>()?
        }
        5 | 6 => {
            let shifts = seed_shifts(n, if group == 5 { width } else { height });
            seed_angles(n)
                .into_iter()
                .zip(shifts)
                .map(|(a, d)| {
                    let shift = if group == 5 { t(d, 0.0)? } else { t(0.0, d)? };
                    Ok(Transformation::rotation(a)?.then(&shift))
                })
                .collect::<Result<_>>()?
        }
        g => {
            return Err(TransformError::Invalid(format!(
                "transformation group {g} does not exist (0..{})",
                SEED_GROUPS - 1
            )));
        }
    };
    Ok(TransformationSet::new(format!("group {group}, n = {n}"), list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &TransformationSet) -> Vec<String> {
        s.transformations.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn atoms_products_and_unions() {
        assert_eq!(
            names(&TransformationSet::parse("rotation:n=4").unwrap()),
            ["rotation(0)", "rotation(90)", "rotation(180)", "rotation(270)"]
        );
        assert_eq!(
            TransformationSet::parse("rotation:-30..30,n=7").unwrap().get(1).unwrap().name,
            "rotation(-20)"
        );
        assert_eq!(
            names(&TransformationSet::parse("rotation:0;45").unwrap()),
            ["rotation(0)", "rotation(45)"]
        );
        let t = TransformationSet::parse("translation:dx=-2..2,dy=-2..2").unwrap();
        assert_eq!(t.len(), 25);
        assert_eq!(t.get(1).unwrap().translation, [-1.0, -2.0]);
        assert_eq!(TransformationSet::parse("translation:dx=0..4,step=2").unwrap().len(), 3);
        let s = TransformationSet::parse("scale:0.8..1.2,n=5").unwrap();
        assert!((s.get(3).unwrap().matrix[0][0] - 1.1).abs() < 1e-12);
        let p = TransformationSet::parse("rotation:n=2 * hflip + identity:n=2").unwrap();
        assert_eq!(names(&p), ["hflip", "rotation(180) > hflip", "identity", "identity"]);
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, needle) in [
            ("", "empty"),
            ("spin:n=3", "unknown transformation 'spin'"),
            ("rotation:n=0", "at least 1"),
            ("rotation:n=x", "n = 'x'"),
            ("translation:dz=1", "no parameter 'dz'"),
            ("translation:dx=2..-2", "empty"),
            ("scale:0..1,n=3", "not invertible"),
            ("rotation:a..b,n=2", "not a number"),
            ("scale:0..0", "needs n=K"),
            ("rotation:-10..10", "needs n=K"),
            ("scale:0;1", "not invertible"),
        ] {
            let e = TransformationSet::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn huge_specs_are_refused_before_they_are_made() {
        let max = MAX_TRANSFORMATIONS;
        assert_eq!(TransformationSet::parse(&format!("identity:n={max}")).unwrap().len(), max);
        for spec in [
            "rotation:n=100000000".to_string(),
            format!("identity:n={}", max + 1),
            "rotation:n=340282366920938463463374607431768211455".into(),
            "translation:dx=0..1e300".into(),
            "translation:dx=0..1,step=1e-300".into(),
            // Each atom is allowed, not their product or union.
            "rotation:n=1000*rotation:n=1000".into(),
            format!("identity:n={max}+hflip"),
            // Each axis is allowed, not their grid (113 x 80113 shifts: found by the fuzzer).
            "translation:dx=0..112,dy=0..80112".into(),
        ] {
            let e = TransformationSet::parse(&spec).unwrap_err().to_string();
            assert!(e.contains("more than the 100000"), "{spec}: {e}");
        }
    }

    #[test]
    fn seed_groups() {
        assert_eq!(seed_group(0, 3, 28, 28).unwrap().len(), 3);
        assert_eq!(names(&seed_group(1, 7, 28, 28).unwrap())[6], "rotation(306)");
        assert_eq!(seed_group(2, 5, 28, 28).unwrap().get(4).unwrap().translation, [20.0, 0.0]);
        assert_eq!(seed_group(3, 40, 28, 28).unwrap().get(39).unwrap().translation, [0.0, 39.0]);
        let g4 = seed_group(4, 5, 28, 28).unwrap();
        assert_eq!(g4.len(), 5);
        assert_eq!(g4.get(4).unwrap().translation, [9.0, 9.0], "k = 3, steps 28 / 3");
        let g5 = seed_group(5, 4, 28, 28).unwrap().get(1).unwrap().clone();
        assert_eq!(g5.matrix, Transformation::rotation(90.0).unwrap().matrix);
        assert_eq!(g5.translation, [7.0, 0.0]);
        assert_eq!(seed_group(6, 4, 28, 28).unwrap().get(2).unwrap().translation, [0.0, 14.0]);
        assert!(seed_group(7, 4, 28, 28).is_err());
        assert!(seed_group(1, 0, 28, 28).is_err());
        assert!(seed_group(1, 100_000_000, 28, 28).unwrap_err().to_string().contains("more than"));
    }
}
