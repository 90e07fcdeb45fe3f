//! Views for officers: the material pseudo-colour image and grey views with window/level.
//!
//! Conventions follow cargo and baggage screening consoles: air is white, organic orange,
//! mixed and inorganic green, metal blue, impenetrable dark; the more the beam is attenuated,
//! the more saturated and darker the colour.

use image::RgbImage;
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibration::AttenuationImage;
use super::materials::{MaterialClass, MaterialMap};

/// Colour of each material class at full saturation (sRGB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Palette {
    pub organic: [u8; 3],
    pub mixed: [u8; 3],
    pub inorganic: [u8; 3],
    pub metal: [u8; 3],
    pub impenetrable: [u8; 3],
    pub unclassified: [u8; 3],
    /// Attenuation at which colours reach full saturation.
    pub saturation_attenuation: f32,
    /// Attenuation drawn darkest (brightness floor); beyond it pixels stay at `min_brightness`.
    pub dark_attenuation: f32,
    pub min_brightness: f32,
}

impl Default for Palette {
    fn default() -> Self {
        Self {
            organic: [230, 140, 30],
            mixed: [110, 190, 60],
            inorganic: [40, 150, 110],
            metal: [40, 90, 220],
            impenetrable: [25, 15, 40],
            unclassified: [90, 90, 90],
            saturation_attenuation: 1.5,
            dark_attenuation: 7.0,
            min_brightness: 0.12,
        }
    }
}

impl Palette {
    fn colour(&self, class: MaterialClass) -> Option<[u8; 3]> {
        match class {
            MaterialClass::Air => None,
            MaterialClass::Organic => Some(self.organic),
            MaterialClass::Mixed => Some(self.mixed),
            MaterialClass::Inorganic => Some(self.inorganic),
            MaterialClass::Metal => Some(self.metal),
            MaterialClass::Impenetrable => Some(self.impenetrable),
            MaterialClass::Unclassified => Some(self.unclassified),
        }
    }
}

/// Pseudo-colour material view: hue from the class, saturation and brightness from the
/// high-energy attenuation.
pub fn render_material(att: &AttenuationImage, materials: &MaterialMap, palette: &Palette) -> RgbImage {
    let (rows, cols) = att.high.dim();
    let mut buf = vec![0u8; rows * cols * 3];
    let high = att.high.as_slice().expect("standard layout");
    let class = materials.class.as_slice().expect("standard layout");
    buf.par_chunks_mut(cols * 3).enumerate().for_each(|(r, out)| {
        for c in 0..cols {
            let i = r * cols + c;
            let a = high[i].max(0.0);
            let px = match MaterialClass::from_u8(class[i]).and_then(|k| palette.colour(k)) {
                None => [255, 255, 255],
                Some(rgb) => {
                    let sat = (a / palette.saturation_attenuation).clamp(0.0, 1.0).sqrt();
                    let dark = (a / palette.dark_attenuation).clamp(0.0, 1.0).powf(0.8);
                    let v = 1.0 - (1.0 - palette.min_brightness) * dark;
                    rgb.map(|ch| ((255.0 * (1.0 - sat) + ch as f32 * sat) * v).round().clamp(0.0, 255.0) as u8)
                }
            };
            out[c * 3..c * 3 + 3].copy_from_slice(&px);
        }
    });
    RgbImage::from_raw(cols as u32, rows as u32, buf).expect("buffer sized to image")
}

/// Window and level on attenuation: `level - window/2` is drawn white, `level + window/2` black.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowLevel {
    pub window: f32,
    pub level: f32,
}

impl WindowLevel {
    /// Spans the 0.5th to 99.5th percentile of the attenuation of non-air pixels, so one
    /// hot or dead pixel does not flatten the view.
    pub fn auto(plane: &Array2<f32>) -> Self {
        let mut v: Vec<f32> = plane.iter().copied().filter(|a| a.is_finite() && *a > 0.02).collect();
        if v.len() < 2 {
            return Self { window: 1.0, level: 0.5 };
        }
        let k_lo = v.len() / 200;
        let k_hi = (v.len() * 199 / 200).min(v.len() - 1);
        let lo = *v.select_nth_unstable_by(k_lo, f32::total_cmp).1;
        let hi = *v.select_nth_unstable_by(k_hi, f32::total_cmp).1;
        let lo = lo.min(0.0);
        let window = (hi - lo).max(0.1);
        Self { window, level: lo + window / 2.0 }
    }
}

/// Grey view of one attenuation plane with window/level (white = transparent).
pub fn render_grey(plane: &Array2<f32>, wl: WindowLevel) -> RgbImage {
    let (rows, cols) = plane.dim();
    let lo = wl.level - wl.window / 2.0;
    let inv = 1.0 / wl.window.max(1e-6);
    let mut buf = vec![0u8; rows * cols * 3];
    let src = plane.as_slice().expect("standard layout");
    buf.par_chunks_mut(3).zip(src.par_iter()).for_each(|(px, &a)| {
        let g = (255.0 * (1.0 - ((a - lo) * inv).clamp(0.0, 1.0))).round() as u8;
        px.copy_from_slice(&[g, g, g]);
    });
    RgbImage::from_raw(cols as u32, rows as u32, buf).expect("buffer sized to image")
}

/// Which view `render` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Material pseudo-colour (dual-energy), grey for single-energy scans.
    #[default]
    Material,
    /// High-energy attenuation, grey.
    High,
    /// Low-energy attenuation, grey.
    Low,
}

/// Writes an RGB image as PNG.
pub fn save_png(img: &RgbImage, path: &std::path::Path) -> Result<(), crate::scan::ScanError> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| crate::scan::ScanError::Encode { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att_of(high: Array2<f32>) -> AttenuationImage {
        let (rows, _) = high.dim();
        AttenuationImage {
            flags: Array2::zeros(high.dim()),
            low: None,
            max_attenuation: 11.5,
            air_high: ndarray::Array1::zeros(rows),
            dark_high: ndarray::Array1::zeros(rows),
            high,
        }
    }

    #[test]
    fn material_view_uses_class_hues_and_darkens_with_attenuation() {
        let high = ndarray::array![[0.0f32, 0.5, 3.0, 3.0, 6.0]];
        let class = ndarray::array![[
            MaterialClass::Air as u8,
            MaterialClass::Organic as u8,
            MaterialClass::Organic as u8,
            MaterialClass::Metal as u8,
            MaterialClass::Impenetrable as u8
        ]];
        let map = MaterialMap { z_eff: Array2::zeros(class.dim()), class };
        let img = render_material(&att_of(high), &map, &Palette::default());
        let px = |c: u32| img.get_pixel(c, 0).0;
        assert_eq!(px(0), [255, 255, 255]);
        let (light_org, dark_org, metal) = (px(1), px(2), px(3));
        assert!(light_org[0] > light_org[2] && dark_org[0] > dark_org[2], "organic is orange");
        assert!(dark_org.iter().map(|&v| v as u32).sum::<u32>() < light_org.iter().map(|&v| v as u32).sum::<u32>());
        assert!(metal[2] > metal[0], "metal is blue");
        assert!(px(4).iter().all(|&v| v < 60), "impenetrable is dark: {:?}", px(4));
    }

    #[test]
    fn grey_view_maps_the_window_to_white_through_black() {
        let plane = ndarray::array![[0.0f32, 1.0, 2.0, 5.0]];
        let img = render_grey(&plane, WindowLevel { window: 2.0, level: 1.0 });
        let g: Vec<u8> = (0..4).map(|c| img.get_pixel(c, 0).0[0]).collect();
        assert_eq!(g, vec![255, 128, 0, 0]);
    }
}
