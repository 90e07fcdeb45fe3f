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
    /// Organic (orange by convention).
    pub organic: [u8; 3],
    /// Mixed (green).
    pub mixed: [u8; 3],
    /// Inorganic (green, bluer than mixed).
    pub inorganic: [u8; 3],
    /// Metal (blue).
    pub metal: [u8; 3],
    /// Impenetrable (dark).
    pub impenetrable: [u8; 3],
    /// Attenuating without dual-energy information (grey).
    pub unclassified: [u8; 3],
    /// Attenuation at which colours reach full saturation.
    pub saturation_attenuation: f32,
    /// Attenuation drawn darkest (brightness floor); beyond it pixels stay at `min_brightness`.
    pub dark_attenuation: f32,
    /// Brightness (0..1) of pixels at `dark_attenuation` and beyond.
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
    let high = att.high.as_standard_layout();
    let high = high.as_slice().expect("standard layout");
    let class = materials.class.as_standard_layout();
    let class = class.as_slice().expect("standard layout");
    let lut = colour_table_for(palette);
    // Bands of rows: one task per band, and slices zipped so the pixel loop has no bounds checks.
    const BAND: usize = 16;
    buf.par_chunks_mut(BAND * cols * 3).zip(high.par_chunks(BAND * cols)).zip(class.par_chunks(BAND * cols)).for_each(
        |((out, high), class)| {
            for ((px, &a), &k) in out.chunks_exact_mut(3).zip(high).zip(class) {
                px.copy_from_slice(&lut.colour(k, a));
            }
        },
    );
    RgbImage::from_raw(cols as u32, rows as u32, buf).expect("buffer sized to image")
}

/// The colour table of `palette`, from a small process-wide cache: building one costs 32,768
/// exact shades (~1 ms), every scan is drawn with the same palette or two.
fn colour_table_for(palette: &Palette) -> std::sync::Arc<ColourTable> {
    use std::sync::{Arc, Mutex};
    const CAPACITY: usize = 4;
    static CACHE: Mutex<Vec<(Palette, Arc<ColourTable>)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, t)) = cache.iter().find(|(p, _)| p == palette) {
        return t.clone();
    }
    let table = Arc::new(ColourTable::new(palette));
    if cache.len() >= CAPACITY {
        cache.remove(0);
    }
    cache.push((palette.clone(), table.clone()));
    table
}

/// The colour of one pixel, computed exactly: the reference [`ColourTable`] tabulates.
fn shade(palette: &Palette, class: u8, a: f32) -> [u8; 3] {
    match MaterialClass::from_u8(class).and_then(|k| palette.colour(k)) {
        None => [255, 255, 255],
        Some(rgb) => {
            let a = a.max(0.0);
            let sat = (a / palette.saturation_attenuation).clamp(0.0, 1.0).sqrt();
            let dark = (a / palette.dark_attenuation).clamp(0.0, 1.0).powf(0.8);
            let v = 1.0 - (1.0 - palette.min_brightness) * dark;
            rgb.map(|ch| ((255.0 * (1.0 - sat) + ch as f32 * sat) * v).round().clamp(0.0, 255.0) as u8)
        }
    }
}

/// [`shade`] tabulated per class over `u = sqrt(a / a_max)`: a square root per pixel instead
/// of a `powf`, and in `u` both the saturation (`~u`) and the darkening (`~u^1.6`) are smooth,
/// so 4,096 steps keep every channel within one grey level of the exact colour.
struct ColourTable {
    inv_a_max: f32,
    /// `CLASSES x STEPS` colours.
    table: Vec<[u8; 3]>,
}

impl ColourTable {
    const STEPS: usize = 4096;
    const CLASSES: usize = 8;

    fn new(palette: &Palette) -> Self {
        let a_max = palette.saturation_attenuation.max(palette.dark_attenuation).max(f32::MIN_POSITIVE);
        let mut table = Vec::with_capacity(Self::CLASSES * Self::STEPS);
        for class in 0..Self::CLASSES as u8 {
            for k in 0..Self::STEPS {
                let u = k as f32 / (Self::STEPS - 1) as f32;
                table.push(shade(palette, class, a_max * u * u));
            }
        }
        Self { inv_a_max: 1.0 / a_max, table }
    }

    #[inline]
    fn colour(&self, class: u8, a: f32) -> [u8; 3] {
        // NaN attenuation maps to step 0 (`as` saturates NaN to 0), like air-thin material.
        let u = (a * self.inv_a_max).clamp(0.0, 1.0).sqrt();
        let k = (u * (Self::STEPS - 1) as f32 + 0.5) as usize;
        self.table[(class as usize).min(Self::CLASSES - 1) * Self::STEPS + k.min(Self::STEPS - 1)]
    }
}

/// Window and level on attenuation: `level - window/2` is drawn white, `level + window/2` black.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowLevel {
    /// Width of the attenuation range drawn from white to black.
    pub window: f32,
    /// Attenuation at the middle of that range (mid grey).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    fn tabulated_colours_stay_within_one_level_of_the_exact_shade() {
        let palette = Palette::default();
        let lut = ColourTable::new(&palette);
        for class in 0..7u8 {
            for i in 0..20_000 {
                let a = i as f32 * 0.0007; // 0 to 14: past both palette limits
                let (got, want) = (lut.colour(class, a), shade(&palette, class, a));
                for ch in 0..3 {
                    assert!(got[ch].abs_diff(want[ch]) <= 1, "class {class} a {a}: {got:?} vs {want:?}");
                }
            }
        }
        assert_eq!(lut.colour(MaterialClass::Air as u8, 3.0), [255, 255, 255]);
    }

    #[test]
    fn colour_tables_are_shared_per_palette() {
        let a = colour_table_for(&Palette::default());
        assert!(std::sync::Arc::ptr_eq(&a, &colour_table_for(&Palette::default())));
        let other = Palette { organic: [200, 100, 0], ..Palette::default() };
        let b = colour_table_for(&other);
        assert!(!std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(b.colour(MaterialClass::Organic as u8, 0.0), [255, 255, 255]);
        assert_ne!(a.colour(MaterialClass::Organic as u8, 3.0), b.colour(MaterialClass::Organic as u8, 3.0));
    }

    #[test]
    fn grey_view_maps_the_window_to_white_through_black() {
        let plane = ndarray::array![[0.0f32, 1.0, 2.0, 5.0]];
        let img = render_grey(&plane, WindowLevel { window: 2.0, level: 1.0 });
        let g: Vec<u8> = (0..4).map(|c| img.get_pixel(c, 0).0[0]).collect();
        assert_eq!(g, vec![255, 128, 0, 0]);
    }
}
