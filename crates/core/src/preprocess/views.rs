//! The calibrated planes and officer views of one scan, as inspection and the training-tile
//! export hand them to the tiler, and their area-averaged shrink for whole-scan inputs.

use image::RgbImage;
use ndarray::Array2;

use super::Preprocessed;
use super::calibration::AttenuationImage;
use super::materials::MaterialMap;
use super::render::{Palette, render_material};

/// The calibrated planes and views of a scan, kept for the outputs (overlay, evidence).
pub struct ScanViews {
    /// The calibrated planes and pixel flags.
    pub attenuation: AttenuationImage,
    /// Material class and effective Z per pixel.
    pub materials: MaterialMap,
    /// The material pseudo-colour view, one pixel per scan pixel.
    pub pseudo_colour: RgbImage,
}

impl ScanViews {
    /// The views of a preprocessed scan: the material pseudo-colour view in the default palette.
    pub fn new(pre: Preprocessed) -> Self {
        let pseudo_colour = render_material(&pre.attenuation, &pre.materials, &Palette::default());
        Self { attenuation: pre.attenuation, materials: pre.materials, pseudo_colour }
    }
}

/// The views shrunk by `scale` (< 1) with area averaging: each output pixel is the mean of
/// the source pixels it covers, so thin dense objects fade instead of vanishing or aliasing.
/// Inspection's full-scan pass and the training-tile export build their input with it.
pub fn shrink(v: &ScanViews, scale: f32) -> ScanViews {
    let (attenuation, materials, pseudo_colour) = shrink_parts(v, true, scale);
    ScanViews {
        attenuation,
        materials: materials.expect("views asked for"),
        pseudo_colour: pseudo_colour.expect("views asked for"),
    }
}

/// [`shrink`], with the material map and pseudo-colour view only when `with_views`: a recipe
/// of attenuation channels reads neither, and resizing the colour view is the costly part.
pub fn shrink_parts(
    v: &ScanViews,
    with_views: bool,
    scale: f32,
) -> (AttenuationImage, Option<MaterialMap>, Option<RgbImage>) {
    let (rows, cols) = (v.attenuation.rows(), v.attenuation.columns());
    let (h, w) = (((rows as f32 * scale).round() as usize).max(1), ((cols as f32 * scale).round() as usize).max(1));
    let span = |i: usize, n_out: usize, n_in: usize| {
        let a = i * n_in / n_out;
        (a, ((i + 1) * n_in / n_out).max(a + 1).min(n_in))
    };
    let area_mean = |src: &Array2<f32>| {
        Array2::from_shape_fn((h, w), |(r, c)| {
            let ((r0, r1), (c0, c1)) = (span(r, h, rows), span(c, w, cols));
            let block = src.slice(ndarray::s![r0..r1, c0..c1]);
            block.sum() / block.len() as f32
        })
    };
    let a = &v.attenuation;
    let attenuation = AttenuationImage {
        high: area_mean(&a.high),
        low: a.low.as_ref().map(area_mean),
        flags: Array2::zeros((h, w)),
        max_attenuation: a.max_attenuation,
        air_high: a.air_high.clone(),
        dark_high: a.dark_high.clone(),
    };
    if !with_views {
        return (attenuation, None, None);
    }
    let class = Array2::from_shape_fn((h, w), |(r, c)| v.materials.class[[span(r, h, rows).0, span(c, w, cols).0]]);
    let materials = MaterialMap { class, z_eff: area_mean(&v.materials.z_eff) };
    let pseudo_colour =
        image::imageops::resize(&v.pseudo_colour, w as u32, h as u32, image::imageops::FilterType::Triangle);
    (attenuation, Some(materials), Some(pseudo_colour))
}

#[cfg(test)]
mod tests {
    use super::{ScanViews, shrink, shrink_parts};

    #[test]
    fn shrinking_without_the_views_keeps_the_attenuation_of_the_full_shrink() {
        let scan = crate::example::container_scan(20.0, 3);
        let pre = crate::preprocess::preprocess(&scan, &Default::default()).unwrap();
        let views = ScanViews::new(pre);
        let full = shrink(&views, 0.3);
        let (att, materials, colour) = shrink_parts(&views, false, 0.3);
        assert!(materials.is_none() && colour.is_none());
        assert_eq!(att.high, full.attenuation.high);
        assert_eq!(att.low, full.attenuation.low);
        assert_eq!(att.high.dim(), full.materials.class.dim());
        assert_eq!((full.pseudo_colour.height() as usize, full.pseudo_colour.width() as usize), att.high.dim());
    }
}
