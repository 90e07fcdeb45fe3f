//! Measures of the load from the calibrated scan: the cargo region, areal density per pixel
//! from the high-energy attenuation and the material class, the load mass, material mix, fill,
//! density profile along the container and homogeneity.
//!
//! Areal density: the scanner's high-energy beam (bremsstrahlung spectrum through the
//! detector, [`crate::physics`]) gives, for one representative material per class, the
//! attenuation `A(x)` of `x` g/cm^2; the inverse of that curve turns a pixel's attenuation into
//! g/cm^2. Beam hardening is in the curve, so thick loads are not underestimated.
//! The container's own structure is removed row by row: in each detector row the columns that
//! see only the container (free of load) give its attenuation, which is subtracted.

use std::sync::{Arc, Mutex};

use ndarray::ArrayView1;
use serde::Serialize;

use super::VerifyConfig;
use crate::physics::{AttenuationTable, DEFAULT_BINS, Scintillator, Source, SpectralModel};
use crate::preprocess::calibration::{AttenuationImage, flags};
use crate::preprocess::materials::{MaterialClass, MaterialMap};
use crate::scan::{PixelPitch, SourceKind, SourceSpec};

/// Classes the load mix is reported in, in this order.
pub const MIX_CLASSES: [MaterialClass; 4] =
    [MaterialClass::Organic, MaterialClass::Mixed, MaterialClass::Inorganic, MaterialClass::Metal];

/// Where the load can be in the image: inside the end walls, from the top of the container
/// down to the trailer's chassis. Half-open pixel ranges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CargoRegion {
    /// Columns of the container's outer ends, `[front, back)`.
    pub container_columns: [usize; 2],
    /// Columns inside the corner fittings and end walls.
    pub columns: [usize; 2],
    /// Rows from the container's top to its floor (the chassis band), `[top, bottom)`.
    pub rows: [usize; 2],
    /// Whether the lower edge was found at the chassis band (else: the last row with material).
    pub floor_found: bool,
}

/// Attenuation-to-areal-density curves of the high-energy beam, one per material class.
#[derive(Debug)]
pub struct ArealDensityModel {
    key: String,
    /// Per class in [`MIX_CLASSES`] order: attenuations (increasing) and areal densities, g/cm^2.
    curves: [(Vec<f32>, Vec<f32>); 4],
    /// Per class and grid segment `i - 1 .. i`: `ln x0`, `1 / ln(x1 / x0)`, `ln y0`,
    /// `ln(y1 / y0)`, so a pixel costs one logarithm and one exponential (the loads of a
    /// 40 ft container are ~1.5 million pixels).
    segments: [Vec<[f32; 4]>; 4],
}

/// Areal densities of the curves, g/cm^2: 0.05 .. 3000, log-spaced.
fn areal_grid() -> Vec<f64> {
    let n = 160;
    (0..n).map(|i| 0.05 * (3000.0f64 / 0.05).powf(i as f64 / (n - 1) as f64)).collect()
}

impl ArealDensityModel {
    /// The model for a scan's source, from a small cache (building one costs a few ms per
    /// class and a stream of scans comes from one scanner).
    pub fn for_source(source: &SourceSpec, cfg: &VerifyConfig) -> Result<Arc<Self>, MeasureError> {
        let pair = high_beam(source)?;
        let key = format!("{pair:?}|{:?}", cfg.class_materials);
        static CACHE: Mutex<Vec<Arc<ArealDensityModel>>> = Mutex::new(Vec::new());
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.iter().find(|m| m.key == key) {
            return Ok(m.clone());
        }
        let built = Arc::new(Self::build(key, &pair, &cfg.class_materials).map_err(MeasureError::Model)?);
        if cache.len() >= 4 {
            cache.remove(0);
        }
        cache.push(built.clone());
        Ok(built)
    }

    fn build(key: String, source: &Source, materials: &[String; 4]) -> Result<Self, String> {
        let table = AttenuationTable::embedded().map_err(|e| e.to_string())?;
        let model = SpectralModel::new(table, source, &Scintillator::default()).map_err(|e| e.to_string())?;
        let grid = areal_grid();
        let mut curves: [(Vec<f32>, Vec<f32>); 4] = Default::default();
        for (curve, name) in curves.iter_mut().zip(materials) {
            let id = table.id(name).map_err(|e| format!("class material: {e}"))?;
            let binned = model.binned(table, &[id], DEFAULT_BINS).map_err(|e| e.to_string())?;
            let mut a_prev = 0.0f32;
            for &x in &grid {
                let a = -binned.transmit(&[x as f32]).0.max(1e-30).ln();
                // Keep the curve strictly increasing (it is, up to f32 rounding at the top).
                if a > a_prev {
                    curve.0.push(a);
                    curve.1.push(x as f32);
                    a_prev = a;
                }
            }
            if curve.0.len() < 2 {
                return Err(format!("attenuation curve of {name} is degenerate"));
            }
        }
        let segments = curves.each_ref().map(|(xs, ys)| {
            let ln = |v: f32| f64::from(v).ln();
            let mut seg = vec![[0.0f32; 4]];
            seg.extend(xs.windows(2).zip(ys.windows(2)).map(|(x, y)| {
                [ln(x[0]) as f32, (1.0 / (ln(x[1]) - ln(x[0]))) as f32, ln(y[0]) as f32, (ln(y[1]) - ln(y[0])) as f32]
            }));
            seg
        });
        Ok(Self { key, curves, segments })
    }

    /// Areal density (g/cm^2) that gives high-energy attenuation `a` in material class `class`.
    /// Negative `a` (noise below the subtracted container) maps to a negative density of the
    /// same size, so sums over empty areas stay unbiased.
    pub fn areal_density(&self, class: MaterialClass, a: f32) -> f32 {
        let slot = match class {
            MaterialClass::Organic | MaterialClass::Air => 0,
            MaterialClass::Mixed | MaterialClass::Unclassified => 1,
            MaterialClass::Inorganic => 2,
            MaterialClass::Metal | MaterialClass::Impenetrable => 3,
        };
        let (xs, ys) = (&self.curves[slot].0, &self.curves[slot].1);
        let sign = a.signum();
        let a = a.abs();
        if a <= xs[0] {
            return sign * ys[0] * a / xs[0];
        }
        let i = xs.partition_point(|&v| v < a);
        if i >= xs.len() {
            return sign * ys[ys.len() - 1];
        }
        // Log-log interpolation: A(x) is close to a power law between grid points,
        // y = y0 (y1 / y0)^t with t = ln(a / x0) / ln(x1 / x0).
        let [ln_x0, inv_span, ln_y0, ln_rise] = self.segments[slot][i];
        let t = (a.ln() - ln_x0) * inv_span;
        sign * (ln_y0 + t * ln_rise).exp()
    }
}

/// The high-energy source a scan's descriptor names.
/// Why a load could not be measured; the verification then skips its checks with this reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeasureError {
    /// The scan's source is unknown: attenuation cannot be turned into mass.
    #[error("the scan's source is unknown, so attenuation cannot be turned into mass")]
    UnknownSource,
    /// The source energy lies outside the physics model's range.
    #[error("source energy {energy} {unit} outside the physics model's range")]
    SourceEnergy {
        /// The source's high energy.
        energy: f64,
        /// Its unit, MV or kV.
        unit: &'static str,
    },
    /// The areal-density model could not be built (physics tables, class materials).
    #[error("{0}")]
    Model(String),
    /// The pixel pitch is outside 0.1..100 mm.
    #[error("pixel pitch {along} x {vertical} mm outside 0.1..100 mm")]
    Pitch {
        /// Along the scan, mm.
        along: f32,
        /// Vertical, mm.
        vertical: f32,
    },
    /// No column of the image holds material.
    #[error("no container in the image (no column holds material)")]
    NoContainer,
    /// The vehicle is shorter than a container.
    #[error("the vehicle is {length_m:.1} m long, shorter than a container ({min_m} m)")]
    TooShort {
        /// Its length, m.
        length_m: f64,
        /// The least container length, m.
        min_m: f64,
    },
    /// The end walls leave no interior.
    #[error("no interior between the container's end walls")]
    NoInterior,
    /// No row between the end walls holds material.
    #[error("no row of the interior holds material")]
    EmptyInterior,
    /// Roof and floor found too close together.
    #[error("the container's interior is too low to measure")]
    LowInterior,
}

fn high_beam(source: &SourceSpec) -> Result<Source, MeasureError> {
    let e = f64::from(source.high_energy);
    match source.kind {
        SourceKind::Linac if (0.5..=20.0).contains(&e) => Ok(Source::linac(e)),
        SourceKind::Tube if (20.0..=600.0).contains(&e) => {
            // The 140/80 kVp pair filters its high beam with 0.5 mm copper (physics::SourcePair).
            let pair = crate::physics::SourcePair::tube_140_80();
            let is_pair = (e - 140.0).abs() < 1e-3 && source.low_energy.is_some_and(|l| (l - 80.0).abs() < 1e-3);
            Ok(if is_pair { pair.high } else { Source::tube(e, &[]) })
        }
        SourceKind::Unknown => Err(MeasureError::UnknownSource),
        _ => Err(MeasureError::SourceEnergy { energy: e, unit: source.unit() }),
    }
}

/// One slice of the container along its length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slice {
    /// Distance of the slice's start from the front of the cargo region, m.
    pub start_m: f64,
    /// Image columns of the slice, `[start, end)`.
    pub columns: [usize; 2],
    /// Estimated load mass in the slice, kg.
    pub mass_kg: f64,
    /// Share of the slice's projected area covered by load.
    pub occupied: f64,
    /// Apparent density of the load in the slice (mean areal density over its occupied pixels
    /// divided by the container's internal width), g/cm^3; 0 when empty.
    pub density_g_cm3: f64,
    /// Load mass share per class in [`MIX_CLASSES`] order (impenetrable pixels left out).
    pub mix: [f64; 4],
}

impl Slice {
    /// The class with the largest mass share.
    pub fn dominant(&self) -> MaterialClass {
        let i = (0..4).max_by(|&a, &b| self.mix[a].total_cmp(&self.mix[b])).unwrap_or(0);
        MIX_CLASSES[i]
    }
}

/// Everything measured about the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CargoMeasures {
    /// Where the load was measured.
    pub region: CargoRegion,
    /// Estimated load mass, kg (after the container-structure correction).
    pub mass_kg: f64,
    /// Mass integrated before the container-structure correction, kg.
    pub raw_mass_kg: f64,
    /// Correction for container structure the row baseline leaves (cross members), kg.
    pub structure_correction_kg: f64,
    /// Share of the load's pixels that are impenetrable: there the mass is a lower bound.
    pub impenetrable_fraction: f64,
    /// Mass share per class (organic, mixed, inorganic, metal), by mass, over the pixels
    /// whose class was decided (impenetrable ones are left out).
    pub mix_by_mass: [f64; 4],
    /// Share of the cargo region's projected area covered by load.
    pub fill_ratio: f64,
    /// Share of the interior length with load in it.
    pub length_fill: f64,
    /// Apparent density of the load: mass over (occupied projected area x internal width), g/cm^3.
    pub density_g_cm3: f64,
    /// Slices along the container (front to back): the density profile.
    pub slices: Vec<Slice>,
    /// Homogeneity: 1 - coefficient of variation of the occupied slices' apparent density (0..1).
    pub homogeneity: f64,
    /// Strongest repeat of the along-length mass profile (autocorrelation peak, 0..1) and its
    /// period, m: high for repeated packing (cartons, pallets, coils), low for clutter.
    pub repetition: f64,
    /// The period of that repeat, m; `None` when nothing repeats.
    pub repetition_period_m: Option<f64>,
    /// `repeated_packing` or `clutter` from `repetition`.
    pub pattern: &'static str,
    /// Container rows where the load-free baseline had few free columns to go by.
    pub rows_without_free_columns: usize,
}

/// `q`-quantile of `v` (reorders `v`).
fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

/// Finds the cargo region: the container's outer ends are the first and last columns where a
/// good part of the column holds material; the interior lies inside the ISO corner fittings
/// (`end_inset_m`). Its top is the first row with material across the interior; its bottom the
/// first thin band, below the load space, that is dense in every column: the trailer
/// chassis' flange just under the container floor.
pub fn find_cargo_region(
    att: &AttenuationImage,
    pitch: &PixelPitch,
    cfg: &VerifyConfig,
) -> Result<CargoRegion, MeasureError> {
    let a = &att.high;
    let (rows, cols) = a.dim();
    let air = cfg.air_attenuation;
    let ok = |v: f32| v.is_finite() && (0.1..=100.0).contains(&v);
    if !(ok(pitch.along) && ok(pitch.vertical)) {
        return Err(MeasureError::Pitch { along: pitch.along, vertical: pitch.vertical });
    }
    // Counted row by row: the planes are row-major, and a column walk strides a whole row per pixel.
    let mut col_count = vec![0usize; cols];
    for row in a.rows() {
        col_count.iter_mut().zip(row).for_each(|(n, &v)| *n += usize::from(v > 2.0 * air));
    }
    let col_frac: Vec<f64> = col_count.iter().map(|&n| n as f64 / rows.max(1) as f64).collect();
    let front = col_frac.iter().position(|&f| f > 0.3).ok_or(MeasureError::NoContainer)?;
    let back = col_frac.iter().rposition(|&f| f > 0.3).unwrap_or(front) + 1;
    let along_m = f64::from(pitch.along) / 1000.0;
    let vertical_m = f64::from(pitch.vertical) / 1000.0;
    let length_m = (back - front) as f64 * along_m;
    if length_m < cfg.min_container_length_m {
        return Err(MeasureError::TooShort { length_m, min_m: cfg.min_container_length_m });
    }
    let inset = (cfg.end_inset_m / along_m).ceil() as usize;
    let (c0, c1) = (front + inset, back.saturating_sub(inset));
    if c1 <= c0 + 4 {
        return Err(MeasureError::NoInterior);
    }
    // Dead detector rows read as impenetrable across the scan: never a band or a top.
    let dead: Vec<bool> = (0..rows)
        .map(|r| {
            att.flags.row(r).iter().skip(c0).take(c1 - c0).filter(|&&f| f & flags::DEAD != 0).count() * 2 > c1 - c0
        })
        .collect();
    // Median and low quantile of each row's interior (rows in parallel: two selections of
    // ~2,700 values per row).
    let (median, low): (Vec<f32>, Vec<f32>) = {
        use rayon::prelude::*;
        (0..rows)
            .into_par_iter()
            .map_init(
                || Vec::with_capacity(c1 - c0),
                |buf, r| {
                    if dead[r] {
                        return (0.0, 0.0);
                    }
                    buf.clear();
                    buf.extend(a.row(r).iter().skip(c0).take(c1 - c0));
                    (quantile(buf, 0.5), quantile(buf, cfg.baseline_quantile))
                },
            )
            .unzip()
    };
    let top = (0..rows).find(|&r| !dead[r] && median[r] > air).ok_or(MeasureError::EmptyInterior)?;
    let min_height = (cfg.min_interior_height_m / vertical_m).round() as usize;
    let k = ((0.03 / vertical_m).round() as usize).max(2);
    // Neighbours `k` rows away, stepping over dead rows.
    let near = |r: usize, up: bool| {
        let mut i = if up { r.saturating_sub(k) } else { (r + k).min(rows - 1) };
        while dead[i] && i > 0 && i < rows - 1 {
            i = if up { i - 1 } else { i + 1 };
        }
        low[i]
    };
    let band = (top.saturating_add(min_height)..rows.saturating_sub(k)).find(|&r| {
        !dead[r] && low[r] > cfg.chassis_band_attenuation && low[r] - near(r, true).max(near(r, false)) > 1.0
    });
    let (bottom, floor_found) = match band {
        Some(r) => (r, true),
        None => ((0..rows).rposition(|r| !dead[r] && median[r] > air).map_or(rows, |r| r + 1), false),
    };
    if bottom <= top + 4 {
        return Err(MeasureError::LowInterior);
    }
    Ok(CargoRegion { container_columns: [front, back], columns: [c0, c1], rows: [top, bottom], floor_found })
}

/// Measures the load inside `region`.
pub fn measure(
    att: &AttenuationImage,
    materials: &MaterialMap,
    pitch: &PixelPitch,
    region: CargoRegion,
    model: &ArealDensityModel,
    cfg: &VerifyConfig,
) -> CargoMeasures {
    let [c0, c1] = region.columns;
    let [r0, r1] = region.rows;
    let ncols = c1 - c0;
    let (along_cm, vertical_cm) = (f64::from(pitch.along) / 10.0, f64::from(pitch.vertical) / 10.0);
    let pixel_cm2 = along_cm * vertical_cm;
    let width_cm = cfg.internal_width_m * 100.0;
    let along_m = along_cm / 100.0;

    let sums = sum_region(att, materials, &region, pixel_cm2, model, cfg);
    let dead_fill = dead_row_fill(&sums.row_masses);
    let hidden = hidden_end_mass(&sums.col_mass, along_m, cfg);

    let mut class_mass = [0.0f64; 5];
    for m in &sums.col_mass {
        add_into(&mut class_mass, m);
    }
    let raw_g: f64 = class_mass.iter().sum::<f64>() + dead_fill + hidden;
    let class_mass = [class_mass[0], class_mass[1], class_mass[2], class_mass[3]];
    let raw_mass_kg = raw_g / 1000.0;
    let interior_m = ncols as f64 * along_m;
    let structure_correction_kg = cfg.structure_kg_per_m * interior_m;
    let mass_kg = raw_mass_kg - structure_correction_kg;

    let region_px = ((r1 - r0) * ncols).max(1);
    let occupied_total = sums.occupied_total;
    let occ_areal_total: f64 = sums.col_occ_areal.iter().sum();
    let density_g_cm3 = if occupied_total > 0 { occ_areal_total / occupied_total as f64 / width_cm } else { 0.0 };
    let height_px = (r1 - r0).max(1) as f64;
    let col_has_load: Vec<bool> =
        sums.col_occupied.iter().map(|&n| n as f64 / height_px >= cfg.occupied_column_share).collect();
    let length_fill = col_has_load.iter().filter(|&&b| b).count() as f64 / ncols.max(1) as f64;

    let slices = slices_along(&sums, c0, along_m, height_px, width_cm, cfg);
    let homogeneity = homogeneity(&slices, cfg);
    let profile: Vec<f64> = sums.col_mass.iter().map(|m| m.iter().sum::<f64>()).collect();
    let (repetition, period) = repetition(&profile, &col_has_load, along_m);
    CargoMeasures {
        region,
        mass_kg,
        raw_mass_kg,
        structure_correction_kg,
        impenetrable_fraction: if occupied_total > 0 { sums.impenetrable as f64 / occupied_total as f64 } else { 0.0 },
        mix_by_mass: positive_shares(class_mass),
        fill_ratio: occupied_total as f64 / region_px as f64,
        length_fill,
        density_g_cm3,
        slices,
        homogeneity,
        repetition,
        repetition_period_m: period,
        pattern: if repetition >= cfg.repetition_threshold { "repeated_packing" } else { "clutter" },
        rows_without_free_columns: sums.rows_without_free,
    }
}

/// Adds `v` into `acc` element by element.
fn add_into(acc: &mut [f64], v: &[f64]) {
    for (a, v) in acc.iter_mut().zip(v) {
        *a += v;
    }
}

/// Each class's share of the positive masses (negative masses, noise below the container, count
/// as 0); all 0 when nothing is positive.
fn positive_shares(mass: [f64; 4]) -> [f64; 4] {
    let positive: f64 = mass.iter().map(|m| m.max(0.0)).sum();
    mass.map(|m| if positive > 0.0 { m.max(0.0) / positive } else { 0.0 })
}

/// Per-column sums over rows of the cargo region (columns counted from its first).
#[derive(Default)]
struct ColumnSums {
    /// Mass per column, g, in slots organic, mixed, inorganic, metal and impenetrable (the last
    /// counts in the total but not in the mix).
    col_mass: Vec<[f64; 5]>,
    /// Pixels per column that hold load (areal density above `occupied_areal_g_cm2`).
    col_occupied: Vec<usize>,
    /// Sum of the areal density of those pixels per column, g/cm^2.
    col_occ_areal: Vec<f64>,
    /// Occupied pixels that are impenetrable or floor-clamped.
    impenetrable: usize,
    /// Occupied pixels in all.
    occupied_total: usize,
    /// Rows whose baseline had fewer than 3 load-free columns to go by.
    rows_without_free: usize,
    /// Mass of each row, g, in row order; `None` for a dead detector row.
    row_masses: Vec<Option<f64>>,
}

impl ColumnSums {
    /// Empty sums for `ncols` columns.
    fn zeros(ncols: usize) -> Self {
        Self {
            col_mass: vec![[0.0f64; 5]; ncols],
            col_occupied: vec![0usize; ncols],
            col_occ_areal: vec![0.0f64; ncols],
            ..Self::default()
        }
    }

    /// Adds the sums of the rows that follow these.
    fn add(&mut self, b: ColumnSums) {
        for (acc, m) in self.col_mass.iter_mut().zip(&b.col_mass) {
            add_into(acc, m);
        }
        self.col_occupied.iter_mut().zip(&b.col_occupied).for_each(|(a, v)| *a += v);
        self.col_occ_areal.iter_mut().zip(&b.col_occ_areal).for_each(|(a, v)| *a += v);
        self.impenetrable += b.impenetrable;
        self.occupied_total += b.occupied_total;
        self.rows_without_free += b.rows_without_free;
        self.row_masses.extend(b.row_masses);
    }
}

/// Sums the whole region. Bands of rows are summed in parallel and the bands added in order,
/// so the result does not depend on the thread count.
fn sum_region(
    att: &AttenuationImage,
    materials: &MaterialMap,
    region: &CargoRegion,
    pixel_cm2: f64,
    model: &ArealDensityModel,
    cfg: &VerifyConfig,
) -> ColumnSums {
    use rayon::prelude::*;
    const BAND_ROWS: usize = 16;
    let [r0, r1] = region.rows;
    let starts: Vec<usize> = (r0..r1).step_by(BAND_ROWS).collect();
    let bands: Vec<ColumnSums> = starts
        .into_par_iter()
        .map(|s| sum_band(att, materials, region, s..(s + BAND_ROWS).min(r1), pixel_cm2, model, cfg))
        .collect();
    let mut sums = ColumnSums::zeros(region.columns[1] - region.columns[0]);
    sums.row_masses.reserve(r1 - r0);
    for b in bands {
        sums.add(b);
    }
    sums
}

/// Sums one band of rows: per pixel, the attenuation above the row's container baseline as
/// areal density of the pixel's class, times the pixel's area.
fn sum_band(
    att: &AttenuationImage,
    materials: &MaterialMap,
    region: &CargoRegion,
    rows: std::ops::Range<usize>,
    pixel_cm2: f64,
    model: &ArealDensityModel,
    cfg: &VerifyConfig,
) -> ColumnSums {
    let [c0, c1] = region.columns;
    let ncols = c1 - c0;
    let mut b = ColumnSums::zeros(ncols);
    let mut buf = Vec::with_capacity(ncols);
    for r in rows {
        let row = att.high.row(r);
        let frow = att.flags.row(r);
        let dead = (c0..c1).filter(|&c| frow[c] & flags::DEAD != 0).count();
        if dead * 2 > ncols {
            b.row_masses.push(None);
            continue;
        }
        let (baseline, free) = row_baseline(row, c0, ncols, &mut buf, cfg);
        if free < 3 {
            b.rows_without_free += 1;
        }
        let mut row_mass = 0.0f64;
        for c in c0..c1 {
            let v = row[c];
            let class = MaterialClass::from_u8(materials.class[[r, c]]).unwrap_or(MaterialClass::Unclassified);
            if frow[c] & flags::DEAD != 0 {
                continue;
            }
            let x = f64::from(model.areal_density(class, v - baseline));
            let opaque = frow[c] & flags::FLOOR != 0 || class == MaterialClass::Impenetrable;
            // Impenetrable pixels have no material class: their mass goes to a fifth slot
            // that counts in the total but not in the mix.
            let slot = match class {
                _ if opaque => 4,
                MaterialClass::Mixed => 1,
                MaterialClass::Inorganic => 2,
                MaterialClass::Metal => 3,
                _ => 0,
            };
            let m = x * pixel_cm2;
            b.col_mass[c - c0][slot] += m;
            row_mass += m;
            if x > cfg.occupied_areal_g_cm2 {
                b.col_occupied[c - c0] += 1;
                b.col_occ_areal[c - c0] += x;
                b.occupied_total += 1;
                if opaque {
                    b.impenetrable += 1;
                }
            }
        }
        b.row_masses.push(Some(row_mass));
    }
    b
}

/// The container alone in one row: the mean of the columns within `baseline_margin` of the
/// row's low quantile (corrugated walls vary by a few hundredths along the length), and how
/// many columns that mean is over.
fn row_baseline(row: ArrayView1<f32>, c0: usize, ncols: usize, buf: &mut Vec<f32>, cfg: &VerifyConfig) -> (f32, usize) {
    buf.clear();
    buf.extend(row.iter().skip(c0).take(ncols));
    let low = quantile(buf, cfg.baseline_quantile);
    let (mut s, mut n) = (0.0f64, 0usize);
    for &v in row.iter().skip(c0).take(ncols) {
        if v < low + cfg.baseline_margin {
            s += f64::from(v);
            n += 1;
        }
    }
    let baseline = if n > 0 { (s / n as f64) as f32 } else { low };
    (baseline, n)
}

/// Load of the dead detector rows, g: each takes the mean of the nearest live rows on either
/// side (the one live neighbour at an edge).
fn dead_row_fill(row_masses: &[Option<f64>]) -> f64 {
    let mut dead_fill = 0.0f64;
    for (i, row) in row_masses.iter().enumerate() {
        if row.is_none() {
            let prev = row_masses[..i].iter().rev().find_map(|m| *m);
            let next = row_masses[i + 1..].iter().find_map(|m| *m);
            dead_fill += match (prev, next) {
                (Some(p), Some(n)) => 0.5 * (p + n),
                (Some(v), None) | (None, Some(v)) => v,
                (None, None) => 0.0,
            };
        }
    }
    dead_fill
}

/// Load behind the corner fittings (between the inner face of the end wall and the interior's
/// first column), g: taken as the mean of the first and last few columns.
fn hidden_end_mass(col_mass: &[[f64; 5]], along_m: f64, cfg: &VerifyConfig) -> f64 {
    let ncols = col_mass.len();
    let hidden_cols = ((cfg.end_inset_m - cfg.end_wall_m).max(0.0) / along_m).round();
    let edge = 4.min(ncols);
    let edge_mass = |cols: &[[f64; 5]]| cols.iter().map(|m| m.iter().sum::<f64>()).sum::<f64>() / edge.max(1) as f64;
    hidden_cols * (edge_mass(&col_mass[..edge]).max(0.0) + edge_mass(&col_mass[ncols - edge..]).max(0.0))
}

/// The density profile: slices of `slice_m` along the region, front to back.
fn slices_along(
    sums: &ColumnSums,
    c0: usize,
    along_m: f64,
    height_px: f64,
    width_cm: f64,
    cfg: &VerifyConfig,
) -> Vec<Slice> {
    let ncols = sums.col_mass.len();
    let per_slice = ((cfg.slice_m / along_m).round() as usize).max(1);
    let mut slices = Vec::new();
    let mut s0 = 0;
    while s0 < ncols {
        let s1 = (s0 + per_slice).min(ncols);
        let mut mix = [0.0f64; 4];
        let mut mass_g = 0.0;
        for m in &sums.col_mass[s0..s1] {
            add_into(&mut mix, m);
            mass_g += m.iter().sum::<f64>();
        }
        let occ: usize = sums.col_occupied[s0..s1].iter().sum();
        let occ_areal: f64 = sums.col_occ_areal[s0..s1].iter().sum();
        slices.push(Slice {
            start_m: s0 as f64 * along_m,
            columns: [c0 + s0, c0 + s1],
            mass_kg: mass_g / 1000.0,
            occupied: occ as f64 / ((s1 - s0) as f64 * height_px),
            density_g_cm3: if occ > 0 { occ_areal / occ as f64 / width_cm } else { 0.0 },
            mix: positive_shares(mix),
        });
        s0 = s1;
    }
    slices
}

/// 1 - coefficient of variation of the loaded slices' apparent density (0..1); 0 with fewer
/// than two loaded slices.
fn homogeneity(slices: &[Slice], cfg: &VerifyConfig) -> f64 {
    let loaded: Vec<&Slice> = slices.iter().filter(|s| s.occupied >= cfg.loaded_slice_occupancy).collect();
    if loaded.len() < 2 {
        return 0.0;
    }
    let d: Vec<f64> = loaded.iter().map(|s| s.density_g_cm3).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
    if mean > 0.0 { (1.0 - sd / mean).clamp(0.0, 1.0) } else { 0.0 }
}

/// Normalised autocorrelation peak of the loaded part of the along-length mass profile, over
/// lags of 0.2..3 m: packages repeated along the container make it periodic.
fn repetition(profile: &[f64], loaded: &[bool], along_m: f64) -> (f64, Option<f64>) {
    let (Some(first), Some(last)) = (loaded.iter().position(|&b| b), loaded.iter().rposition(|&b| b)) else {
        return (0.0, None);
    };
    let p = &profile[first..=last];
    let n = p.len();
    let mean = p.iter().sum::<f64>() / n as f64;
    let d: Vec<f64> = p.iter().map(|v| v - mean).collect();
    let var: f64 = d.iter().map(|v| v * v).sum();
    if var <= 0.0 {
        return (0.0, None);
    }
    let lag_min = ((0.2 / along_m).round() as usize).max(2);
    let lag_max = ((3.0 / along_m).round() as usize).min(n / 2);
    let mut best = (0.0, None);
    for lag in lag_min..=lag_max {
        let c: f64 =
            d[..n - lag].iter().zip(&d[lag..]).map(|(a, b)| a * b).sum::<f64>() / var * n as f64 / (n - lag) as f64;
        if c > best.0 {
            best = (c.min(1.0), Some(lag as f64 * along_m));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linac() -> SourceSpec {
        SourceSpec { kind: SourceKind::Linac, high_energy: 6.0, low_energy: Some(4.0), extra: Default::default() }
    }

    #[test]
    fn tabulated_log_log_interpolation_matches_the_direct_formula() {
        let model = ArealDensityModel::for_source(&linac(), &VerifyConfig::default()).unwrap();
        for (slot, class) in
            [MaterialClass::Organic, MaterialClass::Mixed, MaterialClass::Inorganic, MaterialClass::Metal]
                .into_iter()
                .enumerate()
        {
            let (xs, ys) = &model.curves[slot];
            let top = xs[xs.len() - 1];
            for k in 0..5000 {
                let a = xs[0] + (top - xs[0]) * k as f32 / 4999.0;
                let i = xs.partition_point(|&v| v < a).clamp(1, xs.len() - 1);
                let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
                let direct = f64::from(y0)
                    * (f64::from(y1) / f64::from(y0))
                        .powf((f64::from(a) / f64::from(x0)).ln() / (f64::from(x1) / f64::from(x0)).ln());
                let got = f64::from(model.areal_density(class, a));
                assert!((got / direct - 1.0).abs() < 2e-5, "{class:?} a {a}: {got} vs {direct}");
            }
        }
    }

    #[test]
    fn slabs_of_known_material_give_their_areal_density() {
        let cfg = VerifyConfig::default();
        let model = ArealDensityModel::for_source(&linac(), &cfg).unwrap();
        let t = AttenuationTable::embedded().unwrap();
        // Reference: the physics module's exact (fine-grid, unbinned) transmission of the 6 MV
        // beam through slabs of steel, cellulose and glass.
        let exact = SpectralModel::new(t, &Source::linac(6.0), &Scintillator::default()).unwrap();
        for (name, class, cms) in [
            ("steel", MaterialClass::Metal, [0.5, 5.0, 20.0]),
            ("cellulose", MaterialClass::Organic, [2.0, 30.0, 120.0]),
            ("glass", MaterialClass::Inorganic, [1.0, 10.0, 50.0]),
        ] {
            let id = t.id(name).unwrap();
            let rho = t.info(id).density_g_cm3;
            for cm in cms {
                let a_high = -exact.transmission(t, &[(id, rho * cm)]).unwrap().ln();
                let got = f64::from(model.areal_density(class, a_high as f32));
                let want = rho * cm;
                assert!((got / want - 1.0).abs() < 0.01, "{name} {cm} cm: {got} vs {want} g/cm2");
            }
        }
        // Mass attenuation at MeV energies is about 0.04-0.05 cm^2/g (XCOM, Compton): 10 g/cm^2
        // of organic attenuates by about 0.45.
        let x = model.areal_density(MaterialClass::Organic, 0.45);
        assert!((8.0..12.0).contains(&x), "{x}");
        // Noise below the container gives a negative density of the same size, not NaN.
        assert!((model.areal_density(MaterialClass::Organic, -0.45) + x).abs() < 1e-4);
    }

    #[test]
    fn regions_need_a_sane_pitch_and_a_container() {
        let (rows, cols) = (300, 900);
        // A box of wall-like attenuation filling the middle of the image, air around it.
        let high = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| {
            if (20..280).contains(&r) && (100..800).contains(&c) { 0.5f32 } else { 0.0 }
        });
        let att = AttenuationImage {
            low: Some(high.clone()),
            high,
            flags: ndarray::Array2::zeros((rows, cols)),
            max_attenuation: 11.5,
            air_high: ndarray::Array1::zeros(rows),
            dark_high: ndarray::Array1::zeros(rows),
        };
        let cfg = VerifyConfig::default();
        for bad in [0.0, -5.0, f32::NAN, 1e6] {
            let err = find_cargo_region(&att, &PixelPitch { along: bad, vertical: 10.0 }, &cfg).unwrap_err();
            assert!(err.to_string().contains("pixel pitch"), "{err}");
        }
        // 700 columns of 10 mm: a 7 m "container" whose ends are found at columns 100 and 800,
        // interior 17 cm (17 columns) inside them; no chassis band, so the bottom is the last
        // row with material.
        let r = find_cargo_region(&att, &PixelPitch { along: 10.0, vertical: 10.0 }, &cfg).unwrap();
        assert_eq!(r.container_columns, [100, 800]);
        assert_eq!(r.columns, [117, 783]);
        assert_eq!(r.rows, [20, 280]);
        assert!(!r.floor_found);
        // Too short to be a container at 1 mm pitch (0.7 m).
        assert!(find_cargo_region(&att, &PixelPitch { along: 1.0, vertical: 10.0 }, &cfg).is_err());
    }

    #[test]
    fn unknown_sources_are_refused_with_a_reason() {
        let s = SourceSpec { kind: SourceKind::Unknown, high_energy: 0.0, low_energy: None, extra: Default::default() };
        let err = ArealDensityModel::for_source(&s, &VerifyConfig::default()).unwrap_err();
        assert!(err.to_string().contains("unknown"), "{err}");
        let s = SourceSpec { high_energy: 900.0, ..linac() };
        assert!(ArealDensityModel::for_source(&s, &VerifyConfig::default()).is_err());
    }
}
