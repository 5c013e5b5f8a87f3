//! Quantiles of the normal and F distributions (statrs), with their arguments checked so that
//! they never panic.

use statrs::distribution::{ContinuousCDF, FisherSnedecor, Normal};

use crate::{InvarianceError, Result};

/// The standard normal quantile `Φ⁻¹(p)` for `p` in (0, 1).
///
/// # Errors
/// [`InvarianceError::Invalid`] for `p` outside (0, 1).
pub fn normal_quantile(p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(InvarianceError::Invalid(format!(
            "a probability in (0, 1) is needed, got {p}"
        )));
    }
    let n = Normal::new(0.0, 1.0).expect("standard normal");
    Ok(n.inverse_cdf(p))
}

/// The quantile of the F distribution with `d1` and `d2` degrees of freedom at `p` in (0, 1).
///
/// # Errors
/// [`InvarianceError::Invalid`] for `p` outside (0, 1) or degrees of freedom that are not
/// positive.
pub fn f_quantile(d1: f64, d2: f64, p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(InvarianceError::Invalid(format!(
            "a probability in (0, 1) is needed, got {p}"
        )));
    }
    let f = FisherSnedecor::new(d1, d2).map_err(|e| {
        InvarianceError::Invalid(format!(
            "F distribution with {d1} and {d2} degrees of freedom: {e}"
        ))
    })?;
    Ok(f.inverse_cdf(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_quantiles() {
        // scipy.stats.norm.ppf(0.975) and scipy.stats.f.ppf(0.95, 3, 16).
        assert!((normal_quantile(0.975).unwrap() - 1.959963984540054).abs() < 1e-12);
        assert!((f_quantile(3.0, 16.0, 0.95).unwrap() - 3.238871517453585).abs() < 1e-9);
        assert!(normal_quantile(1.0).is_err());
        assert!(f_quantile(0.0, 3.0, 0.5).is_err());
    }
}
