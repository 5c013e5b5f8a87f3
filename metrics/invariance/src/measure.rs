//! The measures, their parameters and their registration.

use nnlens_core::{Metric, MetricFamily};
use serde::{Deserialize, Serialize};

use crate::{InvarianceError, Result};

/// Which computation a measure is: the seed package's six (mean ddof=1 *variances*, IEEE
/// division) and tmeasures' (mean ddof=1 *standard deviations*, `safe_divide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Seed `Variance`: per activation the mean over samples of the variance over
    /// transformations; per layer the mean; total the mean over layers.
    Variance,
    /// Seed `NormalizedVariance`: transformation variance / sample variance (ratios of means
    /// per layer and in total).
    NormalizedVariance,
    /// Seed `FeaturesVariance`: feature layers only, per feature map the spatial mean of the
    /// per-activation variance.
    FeaturesVariance,
    /// Seed `NormalizedFeaturesVariance`: per feature the ratio; per layer the mean of ratios;
    /// total the ratio of totals.
    NormalizedFeaturesVariance,
    /// Seed `SameEquivariance`: `FeaturesVariance` of inverse-transformed feature maps.
    SameEquivariance,
    /// Seed `NormalizedSameEquivariance`.
    NormalizedSameEquivariance,
    /// tmeasures TVI: mean over samples of the std over transformations.
    Tvi,
    /// tmeasures SVI: mean over transformations of the std over samples.
    Svi,
    /// tmeasures NVI: `safe_divide(TVI, SVI)`.
    Nvi,
    /// TVI of inverse-transformed activations.
    Tvse,
    /// SVI of inverse-transformed activations.
    Svse,
    /// NVI of inverse-transformed activations.
    Nvse,
    /// One-way ANOVA F statistic (groups: transformations).
    AnovaF,
    /// ANOVA invariance test: 1 where the transformation effect is significant.
    Anova,
    /// Mean pairwise distance between the transformations of a sample, averaged over samples.
    Tdi,
    /// Mean pairwise distance between the samples of a transformation, averaged over them.
    Sdi,
    /// `safe_divide(TDI, SDI)`.
    Ndi,
    /// TDI of inverse-transformed activations.
    Tdse,
    /// SDI of inverse-transformed activations.
    Sdse,
    /// NDI of inverse-transformed activations.
    Ndse,
    /// Simple distance same-equivariance: RMS of `f(t x) - t(f(x))` per feature map.
    Dses,
    /// tmeasures' numpy `GoodfellowNormalInvariance`.
    GoodfellowNormal,
    /// tmeasures' PyTorch `GoodfellowInvariance` (thresholds from the untransformed samples).
    Goodfellow,
}

/// The statistics a measure needs from the streaming passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Per-row (per-sample) moments along the transformations.
    pub row_moments: bool,
    /// Per-column (per-transformation) moments along the samples.
    pub column_moments: bool,
    /// Pairwise distances within each sample's row.
    pub transformation_distance: bool,
    /// Pairwise distances within each transformation's column.
    pub sample_distance: bool,
    /// DSES sums.
    pub dses: bool,
    /// A second pass counting threshold crossings.
    pub firing: bool,
    /// Thresholds from the identity columns only.
    pub goodfellow_global_identity: bool,
}

/// Which package's conventions a measure follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// transformational-measures-tf: variances, IEEE division, plain means.
    Seed,
    /// tmeasures: standard deviations, `safe_divide`, means of finite values per layer.
    Tmeasures,
}

impl Kind {
    /// Every measure.
    pub const ALL: [Kind; 23] = [
        Kind::Variance,
        Kind::NormalizedVariance,
        Kind::FeaturesVariance,
        Kind::NormalizedFeaturesVariance,
        Kind::SameEquivariance,
        Kind::NormalizedSameEquivariance,
        Kind::Tvi,
        Kind::Svi,
        Kind::Nvi,
        Kind::Tvse,
        Kind::Svse,
        Kind::Nvse,
        Kind::AnovaF,
        Kind::Anova,
        Kind::Tdi,
        Kind::Sdi,
        Kind::Ndi,
        Kind::Tdse,
        Kind::Sdse,
        Kind::Ndse,
        Kind::Dses,
        Kind::GoodfellowNormal,
        Kind::Goodfellow,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Variance => "variance",
            Kind::NormalizedVariance => "normalized-variance",
            Kind::FeaturesVariance => "features-variance",
            Kind::NormalizedFeaturesVariance => "normalized-features-variance",
            Kind::SameEquivariance => "same-equivariance",
            Kind::NormalizedSameEquivariance => "normalized-same-equivariance",
            Kind::Tvi => "tvi",
            Kind::Svi => "svi",
            Kind::Nvi => "nvi",
            Kind::Tvse => "tvse",
            Kind::Svse => "svse",
            Kind::Nvse => "nvse",
            Kind::AnovaF => "anova-f",
            Kind::Anova => "anova",
            Kind::Tdi => "tdi",
            Kind::Sdi => "sdi",
            Kind::Ndi => "ndi",
            Kind::Tdse => "tdse",
            Kind::Sdse => "sdse",
            Kind::Ndse => "ndse",
            Kind::Dses => "dses",
            Kind::GoodfellowNormal => "goodfellow-normal",
            Kind::Goodfellow => "goodfellow",
        }
    }

    /// The measure of a registered name.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] listing the known names.
    pub fn from_name(name: &str) -> Result<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            InvarianceError::Invalid(format!(
                "unknown invariance measure '{name}' (known: {})",
                known.join(", ")
            ))
        })
    }

    /// One line for `nnlens metrics`.
    pub const fn description(self) -> &'static str {
        match self {
            Kind::Variance => {
                "seed: mean variance over transformations (per activation/layer/model)"
            }
            Kind::NormalizedVariance => "seed: transformation variance / sample variance",
            Kind::FeaturesVariance => "seed: transformation variance per feature map",
            Kind::NormalizedFeaturesVariance => "seed: normalized variance per feature map",
            Kind::SameEquivariance => "seed: variance of inverse-transformed feature maps",
            Kind::NormalizedSameEquivariance => "seed: normalized same-equivariance variance",
            Kind::Tvi => "tmeasures: mean std over transformations (TVI)",
            Kind::Svi => "tmeasures: mean std over samples (SVI)",
            Kind::Nvi => "tmeasures: normalized variance invariance TVI/SVI (NVI)",
            Kind::Tvse => "tmeasures: TVI of inverse-transformed activations (TVSE)",
            Kind::Svse => "tmeasures: SVI of inverse-transformed activations (SVSE)",
            Kind::Nvse => "tmeasures: normalized variance same-equivariance (NVSE)",
            Kind::AnovaF => "tmeasures: one-way ANOVA F statistic, groups = transformations",
            Kind::Anova => {
                "tmeasures: ANOVA invariance test (correct Bonferroni), 1 = not invariant"
            }
            Kind::Tdi => "tmeasures: mean pairwise distance over transformations (TD)",
            Kind::Sdi => "tmeasures: mean pairwise distance over samples (SD)",
            Kind::Ndi => "tmeasures: normalized distance invariance TD/SD (ND)",
            Kind::Tdse => "tmeasures: TD of inverse-transformed activations",
            Kind::Sdse => "tmeasures: SD of inverse-transformed activations",
            Kind::Ndse => "tmeasures: normalized distance same-equivariance (NDSE)",
            Kind::Dses => "tmeasures: RMS of f(t x) - t(f(x)) per feature map (DSES)",
            Kind::GoodfellowNormal => "tmeasures: Goodfellow invariance, normal threshold (numpy)",
            Kind::Goodfellow => "tmeasures: Goodfellow invariance, identity thresholds (PyTorch)",
        }
    }

    /// Whose conventions it follows.
    pub fn convention(self) -> Convention {
        match self {
            Kind::Variance
            | Kind::NormalizedVariance
            | Kind::FeaturesVariance
            | Kind::NormalizedFeaturesVariance
            | Kind::SameEquivariance
            | Kind::NormalizedSameEquivariance => Convention::Seed,
            _ => Convention::Tmeasures,
        }
    }

    /// Whether activations are inverse-transformed first.
    pub fn same_equivariance(self) -> bool {
        matches!(
            self,
            Kind::SameEquivariance
                | Kind::NormalizedSameEquivariance
                | Kind::Tvse
                | Kind::Svse
                | Kind::Nvse
                | Kind::Tdse
                | Kind::Sdse
                | Kind::Ndse
        )
    }

    /// Whether only feature layers have a value (the others are left out of the result).
    pub fn feature_layers_only(self) -> bool {
        matches!(
            self,
            Kind::FeaturesVariance
                | Kind::NormalizedFeaturesVariance
                | Kind::SameEquivariance
                | Kind::NormalizedSameEquivariance
                | Kind::Dses
        )
    }

    /// The statistics it needs.
    pub fn needs(self) -> Needs {
        let none = Needs::default();
        match self {
            Kind::Variance | Kind::Tvi | Kind::Tvse => Needs { row_moments: true, ..none },
            Kind::Svi | Kind::Svse | Kind::AnovaF | Kind::Anova => {
                Needs { column_moments: true, ..none }
            }
            Kind::NormalizedVariance
            | Kind::FeaturesVariance
            | Kind::NormalizedFeaturesVariance
            | Kind::SameEquivariance
            | Kind::NormalizedSameEquivariance
            | Kind::Nvi
            | Kind::Nvse => Needs { row_moments: true, column_moments: true, ..none },
            Kind::Tdi | Kind::Tdse => Needs { transformation_distance: true, ..none },
            Kind::Sdi | Kind::Sdse => Needs { sample_distance: true, ..none },
            Kind::Ndi | Kind::Ndse => {
                Needs { transformation_distance: true, sample_distance: true, ..none }
            }
            Kind::Dses => Needs { dses: true, ..none },
            Kind::GoodfellowNormal => Needs { column_moments: true, firing: true, ..none },
            Kind::Goodfellow => Needs {
                column_moments: true,
                firing: true,
                goodfellow_global_identity: true,
                ..none
            },
        }
    }

    /// How many times the measure streams the ST matrix.
    pub fn passes(self) -> usize {
        let n = self.needs();
        usize::from(n.row_moments || n.column_moments)
            + usize::from(n.transformation_distance)
            + usize::from(n.sample_distance)
            + usize::from(n.dses)
            + usize::from(n.firing)
    }
}

/// Every parameter of every measure (each measure reads the ones that concern it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Parameters {
    /// NVI/NVSE: average each feature map spatially before the ratio (tmeasures'
    /// `AverageFeatureMaps`): one value per feature map.
    pub average_feature_maps: bool,
    /// ANOVA: significance level (0.99 as tmeasures); Goodfellow: the threshold quantile.
    pub alpha: f64,
    /// ANOVA: Bonferroni correction over the activations of a layer, with the correct critical
    /// value `F.ppf(1 - (1 - alpha) / m)`.
    pub bonferroni: bool,
    /// Distances: one vector per feature map instead of one scalar per activation.
    pub keep_shape: bool,
    /// Distances and DSES: divide each feature map by its L2 norm first.
    pub normalize: bool,
    /// Goodfellow: +1 counts activations above the threshold, -1 below.
    pub sign: f64,
}

impl Default for Parameters {
    fn default() -> Self {
        Self {
            average_feature_maps: false,
            alpha: 0.99,
            bonferroni: true,
            keep_shape: false,
            normalize: false,
            sign: 1.0,
        }
    }
}

/// A measure with its parameters: what a run computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureSpec {
    /// The measure.
    pub kind: Kind,
    /// Its parameters.
    pub parameters: Parameters,
}

impl MeasureSpec {
    /// A measure with default parameters.
    pub fn new(kind: Kind) -> Self {
        Self { kind, parameters: Parameters::default() }
    }

    /// A measure from its name and parameters (a JSON object, or `null` for defaults).
    ///
    /// # Errors
    /// An unknown name, unknown or ill-typed parameters, or values out of range.
    pub fn from_json(name: &str, parameters: &serde_json::Value) -> Result<Self> {
        let kind = Kind::from_name(name)?;
        let parameters = if parameters.is_null() {
            Parameters::default()
        } else {
            serde_json::from_value(parameters.clone())
                .map_err(|e| InvarianceError::Invalid(format!("parameters of {name}: {e}")))?
        };
        let spec = Self { kind, parameters };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let p = &self.parameters;
        if !(p.alpha > 0.0 && p.alpha < 1.0) {
            return Err(InvarianceError::Invalid(format!(
                "alpha must be in (0, 1), got {}",
                p.alpha
            )));
        }
        if p.sign != 1.0 && p.sign != -1.0 {
            return Err(InvarianceError::Invalid(format!("sign must be 1 or -1, got {}", p.sign)));
        }
        Ok(())
    }

    /// The parameters that concern this measure, for the manifest.
    pub fn relevant_parameters(&self) -> serde_json::Value {
        let p = &self.parameters;
        let mut m = serde_json::Map::new();
        match self.kind {
            Kind::Nvi | Kind::Nvse => {
                m.insert("average_feature_maps".into(), p.average_feature_maps.into());
            }
            Kind::Anova => {
                m.insert("alpha".into(), p.alpha.into());
                m.insert("bonferroni".into(), p.bonferroni.into());
            }
            Kind::Tdi | Kind::Sdi | Kind::Ndi | Kind::Tdse | Kind::Sdse | Kind::Ndse => {
                m.insert("keep_shape".into(), p.keep_shape.into());
                m.insert("normalize".into(), p.normalize.into());
            }
            Kind::Dses => {
                m.insert("normalize".into(), p.normalize.into());
            }
            Kind::GoodfellowNormal | Kind::Goodfellow => {
                m.insert("alpha".into(), p.alpha.into());
                m.insert("sign".into(), p.sign.into());
            }
            _ => {}
        }
        serde_json::Value::Object(m)
    }
}

impl Metric for MeasureSpec {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn family(&self) -> MetricFamily {
        "invariance"
    }

    fn parameters(&self) -> serde_json::Value {
        self.relevant_parameters()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

macro_rules! register {
    ($($kind:ident),* $(,)?) => {
        $(
            nnlens_core::register_metric!(nnlens_core::MetricEntry {
                name: Kind::$kind.name(),
                description: Kind::$kind.description(),
                family: "invariance",
                build: |p| {
                    Ok(Box::new(MeasureSpec::from_json(Kind::$kind.name(), p)?)
                        as Box<dyn Metric>)
                },
            });
        )*
    };
}

register!(
    Variance,
    NormalizedVariance,
    FeaturesVariance,
    NormalizedFeaturesVariance,
    SameEquivariance,
    NormalizedSameEquivariance,
    Tvi,
    Svi,
    Nvi,
    Tvse,
    Svse,
    Nvse,
    AnovaF,
    Anova,
    Tdi,
    Sdi,
    Ndi,
    Tdse,
    Sdse,
    Ndse,
    Dses,
    GoodfellowNormal,
    Goodfellow,
);
