//! # nnlens-transforms
//!
//! Transformations of images and activation maps, and the samples x transformations dataset.
//!
//! - [`Transformation`]: an affine map of the plane about the image centre (rotation, translation,
//!   scale, flips and any composition of them), applied as **one** resampling, with the true
//!   matrix [`inverse`](Transformation::inverse). Works on `f32` maps of any channel count, in
//!   channels-last (`[h, w, c]`) or channels-first (`[c, h, w]`) layout, with bilinear or
//!   nearest interpolation and a constant or edge-replicating fill.
//! - [`TransformationSet`]: an ordered list of transformations, parsed from a spec such as
//!   `rotation:n=16`, `translation:dx=-2..2,dy=-2..2`, `scale:0.8..1.2,n=5`, products (`*`) and
//!   unions (`+`), or made as one of the seed's numbered groups ([`seed_group`]).
//! - [`ImageTransformationsDataSet`]: any dataset of samples x a transformation set, an
//!   [`nnlens_core::TransformationsDataSet`].
//!
//! ## Conventions
//! - Coordinates are pixels, x to the right (columns) and y down (rows), about the centre
//!   `((w - 1) / 2, (h - 1) / 2)`. A positive rotation turns the image counter-clockwise as
//!   displayed (as `numpy.rot90` and PIL do); `rotation(90)` is exactly `numpy.rot90`.
//! - A transformation moves content: translation `(dx, dy)` moves it `dx` pixels right and `dy`
//!   down; the output pixel `q` takes the input at `T⁻¹(q)`.
//! - **Maps of another size.** A transformation's translation is in pixels of the images it was
//!   made for. Applied to a map of another size (a pooled feature map, say) the translation is
//!   scaled by the ratio of the sizes, per axis (`dx * w_map / w_image`), and the linear part
//!   (rotation, scale, flips) is kept: a 2-pixel shift of a 28 x 28 image is a 1-pixel shift of
//!   its 14 x 14 feature maps. See [`Transformation::rescaled`].
#![warn(missing_docs)]

mod affine;
mod dataset;
mod error;
mod sets;

pub use affine::{Fill, Interpolation, Layout, Resample, Transformation};
pub use dataset::ImageTransformationsDataSet;
pub use error::TransformError;
pub use sets::{MAX_TRANSFORMATIONS, SEED_GROUPS, TransformationSet, seed_group};

/// `Result` with the transforms error type.
pub type Result<T, E = TransformError> = std::result::Result<T, E>;
