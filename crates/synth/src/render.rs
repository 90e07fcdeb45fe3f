//! Renders a scene into raw 16-bit dual-energy planes: fan-beam chords, polychromatic
//! transmission (binned physics), detector blur and noise, and what the labels need (boxes
//! from the rendered footprint, contrast-to-noise ratio of every threat).

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::SynthError;
use super::geometry::{FanBeam, Ray};
use super::scene::Scene;
use nii_atr_core::physics::{AttenuationTable, BinnedModel, MaterialId, Scintillator, SourcePair, SpectralModel};

/// Detector read-out and noise. Counts are `dark + gain_row * wobble_col * air * T_noisy +
/// electronic`, with `T_noisy` drawn from the compound-Poisson statistics of the dose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseModel {
    /// Photons per 5 mm x 5 mm pixel in open beam (dose), high beam; scaled by pixel area
    /// for other pitches.
    pub photons_high: f64,
    /// Same for the low beam (linacs give fewer photons at the lower energy).
    pub photons_low: f64,
    /// Mean open-beam counts above dark (ADC headroom below 65535).
    pub air_counts: f64,
    /// Mean dark offset, counts.
    pub dark_counts: f64,
    /// Spread of the dark offset between detector rows, counts (standard deviation).
    pub dark_spread: f64,
    /// Electronic noise, counts (standard deviation).
    pub electronic_sigma: f64,
    /// Relative spread of per-row gain left over after the detector's own flat-field.
    pub row_gain_sigma: f64,
    /// Gaussian point spread (focal spot, crystal cross-talk), standard deviation in pixels.
    pub psf_sigma_px: f64,
    /// Relative pulse-to-pulse beam intensity wobble along the scan (0 = off).
    pub beam_wobble: f64,
    /// Interlaced linac artefact: low-energy lines sit half a column after the high ones.
    pub interlace_offset: bool,
    /// Number of dead detector rows (they read dark only).
    pub dead_rows: usize,
    /// Rays per column, spread evenly across its width along the scan, their transmissions
    /// averaged: the detector integrates over its aperture and the travel during a pulse. 1 is
    /// a point sample at the column centre, where a gap between boxes narrower than a column
    /// reads as a full column of air or not at all (1..=16).
    pub aperture_samples: usize,
}

impl Default for NoiseModel {
    fn default() -> Self {
        Self {
            photons_high: 1.0e5,
            photons_low: 6.0e4,
            air_counts: 58_000.0,
            dark_counts: 600.0,
            dark_spread: 40.0,
            electronic_sigma: 2.5,
            row_gain_sigma: 0.004,
            psf_sigma_px: 0.7,
            beam_wobble: 0.01,
            interlace_offset: false,
            dead_rows: 0,
            aperture_samples: 1,
        }
    }
}

impl NoiseModel {
    /// Every parameter in its range: recipes are checked when they load, scenes when they render.
    pub fn validate(&self) -> Result<(), SynthError> {
        let finite_nonneg = |name: &'static str, v: f64, max: f64| {
            if v.is_finite() && (0.0..=max).contains(&v) {
                Ok(())
            } else {
                Err(SynthError::Parameter { name, reason: format!("{v} outside [0, {max}]") })
            }
        };
        finite_nonneg("noise.photons_high", self.photons_high, 1e12)?;
        finite_nonneg("noise.photons_low", self.photons_low, 1e12)?;
        finite_nonneg("noise.dark_counts", self.dark_counts, 20_000.0)?;
        finite_nonneg("noise.air_counts", self.air_counts, 65_535.0 - self.dark_counts)?;
        finite_nonneg("noise.dark_spread", self.dark_spread, 5_000.0)?;
        finite_nonneg("noise.electronic_sigma", self.electronic_sigma, 5_000.0)?;
        finite_nonneg("noise.row_gain_sigma", self.row_gain_sigma, 0.5)?;
        finite_nonneg("noise.psf_sigma_px", self.psf_sigma_px, 10.0)?;
        finite_nonneg("noise.beam_wobble", self.beam_wobble, 0.5)?;
        if !(1..=MAX_APERTURE_SAMPLES).contains(&self.aperture_samples) {
            return Err(SynthError::Parameter {
                name: "noise.aperture_samples",
                reason: format!("{} outside [1, {MAX_APERTURE_SAMPLES}]", self.aperture_samples),
            });
        }
        if self.photons_high < 1.0 || self.photons_low < 1.0 || self.air_counts < 100.0 {
            return Err(SynthError::Parameter {
                name: "noise",
                reason: "photons must be >= 1 and air_counts >= 100".into(),
            });
        }
        Ok(())
    }
}

/// The scanner's physics prepared once per run: spectra seen through the detector.
#[derive(Debug, Clone)]
pub struct ScannerPhysics {
    /// Attenuation coefficients of every material.
    pub table: &'static AttenuationTable,
    /// High-energy spectrum as the detector sees it.
    pub high: SpectralModel,
    /// Low-energy spectrum as the detector sees it; `None` for single energy.
    pub low: Option<SpectralModel>,
    /// Energy bins of the fast spectral path.
    pub bins: usize,
}

impl ScannerPhysics {
    /// Prepares the spectra of `sources` (the low one only with `dual_energy`) seen through
    /// `detector`, for `bins` energy bins.
    pub fn new(
        sources: &SourcePair,
        detector: &Scintillator,
        dual_energy: bool,
        bins: usize,
    ) -> Result<Self, SynthError> {
        let table = AttenuationTable::embedded()?;
        Ok(Self {
            table,
            high: SpectralModel::new(table, &sources.high, detector)?,
            low: if dual_energy { Some(SpectralModel::new(table, &sources.low, detector)?) } else { None },
            bins,
        })
    }
}

/// Where a threat landed in the image and how visible it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatImage {
    /// Pixel box `[column_min, row_min, column_max, row_max]`, inclusive.
    pub bbox: [usize; 4],
    /// Pixels its own material crosses.
    pub pixels: usize,
    /// Contrast-to-noise ratio: over its footprint, the mean of (high-energy attenuation it
    /// adds) / (noise of the high-energy attenuation at that pixel). Pixels behind
    /// impenetrable cargo add nothing, so hidden objects score low.
    pub cnr: f64,
    /// Mean high-energy attenuation it adds.
    pub contrast: f64,
    /// Mean areal density of everything else on its rays (container, cargo), g/cm^2.
    pub occlusion_g_cm2: f64,
}

/// Raw planes and what was needed to make them.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// High-energy counts, rows x columns.
    pub high: Array2<u16>,
    /// Low-energy counts; `None` for single energy.
    pub low: Option<Array2<u16>>,
    /// Per-row dark counts of the high plane (what a dark frame would measure).
    pub dark_high: Vec<f32>,
    /// Per-row dark counts of the low plane.
    pub dark_low: Option<Vec<f32>>,
    /// Rows above the vehicle that see open beam in every column, `[start, end)`.
    pub air_rows: [usize; 2],
    /// Columns before the vehicle that see open beam in every row, `[start, end)`.
    pub air_columns: [usize; 2],
    /// One entry per [`Scene::threats`]; `None` if the threat is outside the image.
    pub threats: Vec<Option<ThreatImage>>,
}

/// Most rays per column (`NoiseModel::aperture_samples`): each one costs a full column render.
pub const MAX_APERTURE_SAMPLES: usize = 16;

/// Most pixels a rendered scan may have (a 40 ft container at 1 mm pitch is ~60 Mpx).
pub const MAX_PIXELS: usize = 80_000_000;

/// Per-threat sums gathered column by column.
#[derive(Debug, Clone, Copy, Default)]
struct ThreatAcc {
    col: [usize; 2],
    row: [usize; 2],
    pixels: usize,
    contrast: f64,
    /// Sum of per-pixel contrast-to-noise ratios.
    cnr: f64,
    occlusion: f64,
}

impl ThreatAcc {
    fn add(&mut self, col: usize, row: usize, contrast: f64, cnr: f64, occlusion: f64) {
        if self.pixels == 0 {
            self.col = [col, col];
            self.row = [row, row];
        } else {
            self.col = [self.col[0].min(col), self.col[1].max(col)];
            self.row = [self.row[0].min(row), self.row[1].max(row)];
        }
        self.pixels += 1;
        self.contrast += contrast;
        self.cnr += cnr;
        self.occlusion += occlusion;
    }

    fn merge(&mut self, other: &ThreatAcc) {
        if other.pixels == 0 {
            return;
        }
        if self.pixels == 0 {
            *self = *other;
            return;
        }
        self.col = [self.col[0].min(other.col[0]), self.col[1].max(other.col[1])];
        self.row = [self.row[0].min(other.row[0]), self.row[1].max(other.row[1])];
        self.pixels += other.pixels;
        self.contrast += other.contrast;
        self.cnr += other.cnr;
        self.occlusion += other.occlusion;
    }
}

/// The image grid of a scene.
struct Grid {
    rows: usize,
    cols: usize,
    pitch: f64,
    rays: Vec<Ray>,
    /// Objects reaching each column.
    by_column: Vec<Vec<u32>>,
}

fn grid(scene: &Scene, fan: &FanBeam, samples: usize) -> Result<Grid, SynthError> {
    let pitch = fan.pitch_m;
    let bad = |reason: String| SynthError::Parameter { name: "scene", reason };
    if !(5e-4..=0.05).contains(&pitch) {
        return Err(bad(format!("pixel pitch {pitch} m outside 0.5..50 mm")));
    }
    let width = (scene.x_max - scene.x_min) / pitch;
    let height = (scene.z_top - scene.z_bottom) / pitch;
    if !(width.is_finite() && height.is_finite() && width >= 1.0 && height >= 1.0) {
        return Err(bad("empty image window".into()));
    }
    let (cols, rows) = (width.ceil() as usize, height.ceil() as usize);
    if cols.saturating_mul(rows) > MAX_PIXELS {
        return Err(bad(format!("{cols} x {rows} pixels exceed the limit of {MAX_PIXELS}")));
    }
    let rays = (0..rows).map(|r| fan.ray(scene.z_top - (r as f64 + 0.5) * pitch)).collect();
    let mut by_column = vec![Vec::new(); cols];
    for (i, o) in scene.objects.iter().enumerate() {
        let (x0, x1) = o.shape.x_range();
        let (c0, c1) = if samples == 1 {
            // The columns whose centre the object covers.
            (((x0 - scene.x_min) / pitch - 0.5).ceil(), ((x1 - scene.x_min) / pitch - 0.5).floor())
        } else {
            // Every column the object touches: its rays, and the lagged low-energy rays of
            // the column before it, fall anywhere in its width.
            (((x0 - scene.x_min) / pitch).floor(), ((x1 - scene.x_min) / pitch).ceil() - 1.0)
        };
        let c0 = c0.max(0.0) as usize;
        if c1 < 0.0 {
            continue;
        }
        for list in by_column.iter_mut().take((c1 as usize + 1).min(cols)).skip(c0) {
            list.push(i as u32);
        }
    }
    Ok(Grid { rows, cols, pitch, rays, by_column })
}

/// Output of one column: noise-free transmission and second moment per row and plane.
struct ColumnOut {
    t_high: Vec<f32>,
    m2_high: Vec<f32>,
    t_low: Vec<f32>,
    m2_low: Vec<f32>,
    first_row: usize,
    threats: Vec<ThreatAcc>,
}

impl ColumnOut {
    /// Transmission and second moment of the high (`true`) or low plane.
    fn plane(&self, high: bool) -> (&Vec<f32>, &Vec<f32>) {
        if high { (&self.t_high, &self.m2_high) } else { (&self.t_low, &self.m2_low) }
    }
}

/// Per-thread buffers of the column pass, reused from column to column.
struct RayBuffers {
    /// Areal density (g/cm^2) per row and material slot, row-major.
    areal: Vec<f32>,
    /// Threat contributions `(row, threat, slot, g/cm^2)` of the last ray.
    hits: Vec<(u32, u32, u16, f32)>,
    /// One row's areal densities without a threat.
    without: Vec<f32>,
}

/// What every column of one scene needs, prepared once: the pixel grid, the binned physics
/// of the scene's materials and the noise constants of the contrast measure.
struct ColumnRenderer<'a> {
    scene: &'a Scene,
    fan: &'a FanBeam,
    grid: Grid,
    noise: &'a NoiseModel,
    high: BinnedModel,
    low: Option<BinnedModel>,
    /// Material slot of every table material (0 for those the scene does not use).
    slot_of: Vec<usize>,
    n_slots: usize,
    /// Electronic noise and 16-bit quantisation (1/sqrt(12) count), relative to open beam.
    sigma_e_rel: f64,
}

impl<'a> ColumnRenderer<'a> {
    /// Checks the image window, and bins the scanner's spectra over the scene's materials.
    fn new(
        scene: &'a Scene,
        fan: &'a FanBeam,
        physics: &ScannerPhysics,
        noise: &'a NoiseModel,
    ) -> Result<Self, SynthError> {
        let grid = grid(scene, fan, noise.aperture_samples)?;
        let materials: Vec<MaterialId> = scene.materials();
        let n_slots = materials.len().max(1);
        let mut slot_of = vec![0usize; physics.table.materials().count()];
        for (s, m) in materials.iter().enumerate() {
            slot_of[usize::from(m.0)] = s;
        }
        let high = physics.high.binned(physics.table, &materials, physics.bins)?;
        let low = match &physics.low {
            Some(m) => Some(m.binned(physics.table, &materials, physics.bins)?),
            None => None,
        };
        let sigma_e_rel = (noise.electronic_sigma.powi(2) + 1.0 / 12.0).sqrt() / noise.air_counts;
        Ok(Self { scene, fan, grid, noise, high, low, slot_of, n_slots, sigma_e_rel })
    }

    /// Every column, in parallel; each column's values depend on nothing but the column.
    fn columns(&self) -> Vec<ColumnOut> {
        let (rows, n_slots) = (self.grid.rows, self.n_slots);
        (0..self.grid.cols)
            .into_par_iter()
            .map_init(
                || RayBuffers { areal: vec![0.0f32; rows * n_slots], hits: Vec::new(), without: vec![0.0f32; n_slots] },
                |buf, c| self.column(c, buf),
            )
            .collect()
    }

    /// Column `c`: the mean of its aperture rays' transmissions, and its threats' contrast.
    fn column(&self, c: usize, buf: &mut RayBuffers) -> ColumnOut {
        let rows = self.grid.rows;
        let samples = self.noise.aperture_samples;
        let mut out = ColumnOut {
            t_high: vec![1.0; rows],
            m2_high: vec![0.0; rows],
            t_low: Vec::new(),
            m2_low: Vec::new(),
            first_row: rows,
            threats: vec![ThreatAcc::default(); self.scene.threats.len()],
        };
        if self.low.is_some() {
            out.t_low = vec![1.0; rows];
            out.m2_low = vec![0.0; rows];
        }
        // One ray per aperture sample; the one nearest the column centre (the centre
        // itself for odd `samples`, the only one for 1) goes last, so that `areal` and
        // `hits` are its own for the threat statistics.
        let centre = samples / 2;
        let mut sums =
            (samples > 1).then(|| [vec![0.0f32; rows], vec![0.0f32; rows], vec![0.0f32; rows], vec![0.0f32; rows]]);
        let (mut t_centre, mut m2_centre) = (Vec::new(), Vec::new());
        for k in (0..samples).filter(|&k| k != centre).chain([centre]) {
            let x = self.scene.x_min + (c as f64 + (k as f64 + 0.5) / samples as f64) * self.grid.pitch;
            let (first_row, [t_h, m2_h, t_l, m2_l]) = self.ray(c, x, buf);
            out.first_row = out.first_row.min(first_row);
            match &mut sums {
                // A point sample: the ray's values are the column's.
                None => (out.t_high, out.m2_high, out.t_low, out.m2_low) = (t_h, m2_h, t_l, m2_l),
                Some(sums) => {
                    for (acc, v) in sums.iter_mut().zip([&t_h, &m2_h, &t_l, &m2_l]) {
                        acc.iter_mut().zip(v.iter()).for_each(|(a, b)| *a += b);
                    }
                    if k == centre {
                        (t_centre, m2_centre) = (t_h, m2_h);
                    }
                }
            }
        }
        if let Some([t_h, m2_h, t_l, m2_l]) = sums {
            // The detector sees the mean transmission over its aperture; the second
            // moment of the photon statistics averages the same way (photons are added).
            let mean = |v: Vec<f32>| v.into_iter().map(|x| x / samples as f32).collect::<Vec<f32>>();
            (out.t_high, out.m2_high) = (mean(t_h), mean(m2_h));
            if self.low.is_some() {
                (out.t_low, out.m2_low) = (mean(t_l), mean(m2_l));
            }
        }
        // Contrast of each threat on the ray nearest the centre (the one whose `areal` and
        // `hits` are at hand).
        let (t_ray, m2_ray) = if samples == 1 { (&out.t_high, &out.m2_high) } else { (&t_centre, &m2_centre) };
        self.threat_contrast(c, buf, t_ray, m2_ray, &mut out.threats);
        out
    }

    /// One ray at `x` (m along the vehicle) in column `c`; leaves its areal densities and
    /// threat hits in `buf`. Returns the first row it meets an object in, and per row its
    /// `[t_high, m2_high, t_low, m2_low]` (the low ones empty for single energy).
    fn ray(&self, c: usize, x: f64, buf: &mut RayBuffers) -> (usize, [Vec<f32>; 4]) {
        let rows = self.grid.rows;
        let first_row = self.areal(&self.grid.by_column[c], x, &mut buf.areal, &mut buf.hits);
        let (mut t_h, mut m2_h) = (vec![1.0; rows], vec![0.0; rows]);
        transmit_column(&self.high, &buf.areal, self.n_slots, &mut t_h, &mut m2_h);
        let (mut t_l, mut m2_l) = (Vec::new(), Vec::new());
        if let Some(low) = &self.low {
            (t_l, m2_l) = (vec![1.0; rows], vec![0.0; rows]);
            if self.noise.interlace_offset {
                let areal_low = self.lagged_areal(c, x);
                transmit_column(low, &areal_low, self.n_slots, &mut t_l, &mut m2_l);
            } else {
                transmit_column(low, &buf.areal, self.n_slots, &mut t_l, &mut m2_l);
            }
        }
        (first_row, [t_h, m2_h, t_l, m2_l])
    }

    /// Areal densities of the interlaced low-energy ray, recorded half a column after the
    /// high one at `x`: it may reach objects of the next column too.
    fn lagged_areal(&self, c: usize, x: f64) -> Vec<f32> {
        let (scene, grid) = (self.scene, &self.grid);
        let x_low = x + 0.5 * grid.pitch;
        let mut h2 = Vec::new();
        let c_low = ((x_low - scene.x_min) / grid.pitch) as usize;
        let objs = &grid.by_column[c_low.min(grid.cols - 1)];
        let mut merged: Vec<u32> = grid.by_column[c].iter().chain(objs).copied().collect();
        merged.sort_unstable();
        merged.dedup();
        let mut areal_low = vec![0.0f32; grid.rows * self.n_slots];
        self.areal(&merged, x_low, &mut areal_low, &mut h2);
        areal_low
    }

    /// Areal densities (g/cm^2) per row and material slot at scan position `x`, plus the threat
    /// contributions `(row, threat, slot, g/cm^2)`. Returns the first row any object touches.
    fn areal(&self, objects: &[u32], x: f64, areal: &mut [f32], hits: &mut Vec<(u32, u32, u16, f32)>) -> usize {
        let (scene, fan, grid, n_slots) = (self.scene, self.fan, &self.grid, self.n_slots);
        areal.iter_mut().for_each(|a| *a = 0.0);
        hits.clear();
        let mut first_row = grid.rows;
        for &i in objects {
            let o = &scene.objects[i as usize];
            let Some(section) = o.shape.section(x) else {
                continue;
            };
            let (y0, y1, z0, z1) = section.bounds();
            let corners = [fan.project(y0, z0), fan.project(y0, z1), fan.project(y1, z0), fan.project(y1, z1)];
            let zc_max = corners.iter().copied().fold(f64::MIN, f64::max);
            let zc_min = corners.iter().copied().fold(f64::MAX, f64::min);
            let r0 = ((scene.z_top - zc_max) / grid.pitch - 0.5).floor().max(0.0) as usize;
            let r1 = (((scene.z_top - zc_min) / grid.pitch - 0.5).ceil().max(-1.0) + 1.0) as usize;
            let slot = self.slot_of[usize::from(o.material.0)];
            // density g/cm^3 x chord m x 100 cm/m.
            let scale = o.density_g_cm3 * 100.0;
            for r in r0..r1.min(grid.rows) {
                let chord = section.chord(&grid.rays[r]);
                if chord > 0.0 {
                    let x_g = (scale * chord) as f32;
                    areal[r * n_slots + slot] += x_g;
                    if o.density_g_cm3 > 0.0 {
                        first_row = first_row.min(r);
                    }
                    if let Some(t) = o.threat {
                        hits.push((r as u32, t as u32, slot as u16, x_g));
                    }
                }
            }
        }
        // Cavities may leave tiny negative residues from rounding.
        areal.iter_mut().for_each(|a| *a = a.max(0.0));
        first_row
    }

    /// Adds to `threats` what each threat adds to the high-energy attenuation at each row of
    /// column `c`, on the ray whose areal densities and hits are in `buf` (its transmission
    /// and second moment `t_ray`, `m2_ray`), and that over the noise of the pixel.
    fn threat_contrast(
        &self,
        c: usize,
        buf: &mut RayBuffers,
        t_ray: &[f32],
        m2_ray: &[f32],
        threats: &mut [ThreatAcc],
    ) {
        let RayBuffers { areal, hits, without } = buf;
        let n_slots = self.n_slots;
        // Stable sort: equal keys keep object order, so the sums are reproducible.
        hits.sort_by_key(|h| (h.0, h.1));
        let mut i = 0;
        while i < hits.len() {
            let (r, t) = (hits[i].0 as usize, hits[i].1 as usize);
            without.copy_from_slice(&areal[r * n_slots..(r + 1) * n_slots]);
            // Net contribution first (solids minus their cavities), then clamp.
            while i < hits.len() && hits[i].0 as usize == r && hits[i].1 as usize == t {
                without[usize::from(hits[i].2)] -= hits[i].3;
                i += 1;
            }
            without.iter_mut().for_each(|v| *v = v.max(0.0));
            let t_with = f64::from(t_ray[r]).max(1e-12);
            let t_without = f64::from(self.high.transmit(without).0).max(1e-12);
            let sigma =
                (f64::from(m2_ray[r]) / self.noise.photons_high + self.sigma_e_rel * self.sigma_e_rel).sqrt() / t_with;
            let contrast = (t_without / t_with).ln();
            let occlusion: f64 = without.iter().map(|&v| f64::from(v)).sum();
            threats[t].add(c, r, contrast, contrast / sigma, occlusion);
        }
    }
}

/// Per-row detector state of one scan, drawn once from its seed: each plane's dark offsets
/// (counts) and gains, and the dead rows.
struct DetectorRows {
    dark_high: Vec<f32>,
    gain_high: Vec<f32>,
    dark_low: Vec<f32>,
    gain_low: Vec<f32>,
    dead: Vec<usize>,
}

impl DetectorRows {
    /// Draws both planes' rows (the low ones even for single energy, so the stream is the
    /// same), then the dead rows.
    fn draw(seed: u64, rows: usize, noise: &NoiseModel) -> Self {
        let mut rng_rows = ChaCha8Rng::seed_from_u64(mix(seed, 0xD0, 0));
        let dark_high = row_values(&mut rng_rows, rows, noise.dark_counts, noise.dark_spread);
        let gain_high = row_values(&mut rng_rows, rows, 1.0, noise.row_gain_sigma);
        let dark_low = row_values(&mut rng_rows, rows, noise.dark_counts, noise.dark_spread);
        let gain_low = row_values(&mut rng_rows, rows, 1.0, noise.row_gain_sigma);
        let mut dead = Vec::new();
        for _ in 0..noise.dead_rows.min(rows) {
            dead.push((rand::RngExt::random::<u64>(&mut rng_rows) % rows as u64) as usize);
        }
        Self { dark_high, gain_high, dark_low, gain_low, dead }
    }

    /// Reads out the high (`true`) or low plane: transmission blurred by the point spread
    /// `psf`, then `photons` per pixel of quantum noise, per-column beam wobble, row gain and
    /// dark, electronic noise and 16-bit quantisation. Each column draws from its own stream.
    fn read_plane(
        &self,
        columns: &[ColumnOut],
        high: bool,
        psf: &[f32],
        photons: f64,
        noise: &NoiseModel,
        seed: u64,
    ) -> Array2<u16> {
        let (dark, gain, tag) =
            if high { (&self.dark_high, &self.gain_high, 1u64) } else { (&self.dark_low, &self.gain_low, 2u64) };
        let (rows, cols) = (dark.len(), columns.len());
        let t: Vec<&[f32]> = columns.iter().map(|c| c.plane(high).0.as_slice()).collect();
        let blurred = blur(&t, rows, psf);
        let counts: Vec<Vec<u16>> = blurred
            .par_iter()
            .enumerate()
            .map(|(c, tcol)| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, tag, c as u64));
                let m2 = columns[c].plane(high).1;
                let z: f64 = StandardNormal.sample(&mut rng);
                let wobble = 1.0 + noise.beam_wobble * z;
                (0..rows)
                    .map(|r| {
                        let n1: f64 = StandardNormal.sample(&mut rng);
                        let n2: f64 = StandardNormal.sample(&mut rng);
                        if self.dead.contains(&r) {
                            return dark[r].round().clamp(0.0, 65535.0) as u16;
                        }
                        let tr = f64::from(tcol[r]);
                        let quantum = (f64::from(m2[r]).max(0.0) / photons).sqrt();
                        let signal = (tr + quantum * n1).max(0.0);
                        let v = f64::from(dark[r])
                            + f64::from(gain[r]) * wobble * noise.air_counts * signal
                            + noise.electronic_sigma * n2;
                        v.round().clamp(0.0, 65535.0) as u16
                    })
                    .collect()
            })
            .collect();
        let mut plane = Array2::<u16>::zeros((rows, cols));
        for (c, col) in counts.iter().enumerate() {
            for (r, &v) in col.iter().enumerate() {
                plane[(r, c)] = v;
            }
        }
        plane
    }
}

/// Renders `scene`; `seed` drives every random draw, per column, so the bytes do not depend
/// on the number of threads.
pub fn render(
    scene: &Scene,
    fan: &FanBeam,
    physics: &ScannerPhysics,
    noise: &NoiseModel,
    seed: u64,
) -> Result<Rendered, SynthError> {
    noise.validate()?;
    let renderer = ColumnRenderer::new(scene, fan, physics, noise)?;
    let columns = renderer.columns();
    let grid = &renderer.grid;

    // Column-major transmission planes, blurred, then read out with noise. Doses are per
    // 5 mm x 5 mm pixel, scaled by the pixel area.
    let area_scale = (grid.pitch / 0.005).powi(2);
    let psf = gaussian_kernel(noise.psf_sigma_px);
    let detector = DetectorRows::draw(seed, grid.rows, noise);
    let high = detector.read_plane(&columns, true, &psf, noise.photons_high * area_scale, noise, seed);
    let low = renderer
        .low
        .is_some()
        .then(|| detector.read_plane(&columns, false, &psf, noise.photons_low * area_scale, noise, seed));

    // Air region: rows above everything, columns before everything.
    let top_hit = columns.iter().map(|c| c.first_row).min().unwrap_or(grid.rows);
    let first_col = grid.by_column.iter().position(|l| !l.is_empty()).unwrap_or(grid.cols);
    Ok(Rendered {
        high,
        dark_low: low.as_ref().map(|_| detector.dark_low.clone()),
        low,
        dark_high: detector.dark_high,
        air_rows: [0, top_hit.saturating_sub(2)],
        air_columns: [0, first_col.saturating_sub(2)],
        threats: threat_images(&columns, scene.threats.len()),
    })
}

/// Each threat's footprint gathered over all columns, as its image label; `None` for a
/// threat no pixel shows.
fn threat_images(columns: &[ColumnOut], n_threats: usize) -> Vec<Option<ThreatImage>> {
    let mut accs = vec![ThreatAcc::default(); n_threats];
    for c in columns {
        for (acc, part) in accs.iter_mut().zip(&c.threats) {
            acc.merge(part);
        }
    }
    accs.iter()
        .map(|a| {
            (a.pixels > 0).then(|| ThreatImage {
                bbox: [a.col[0], a.row[0], a.col[1], a.row[1]],
                pixels: a.pixels,
                cnr: a.cnr / a.pixels as f64,
                contrast: a.contrast / a.pixels as f64,
                occlusion_g_cm2: a.occlusion / a.pixels as f64,
            })
        })
        .collect()
}

/// Transmission and second moment of every row of one ray through `model`, from its areal
/// densities (`n_slots` per row); rows that cross nothing get the open-beam values.
fn transmit_column(model: &BinnedModel, areal: &[f32], n_slots: usize, t: &mut [f32], m2: &mut [f32]) {
    let (_, m2_air) = model.transmit(&vec![0.0; n_slots]);
    for (r, (t, m2)) in t.iter_mut().zip(m2.iter_mut()).enumerate() {
        let a = &areal[r * n_slots..(r + 1) * n_slots];
        if a.iter().all(|&v| v == 0.0) {
            *t = 1.0;
            *m2 = m2_air;
        } else {
            (*t, *m2) = model.transmit(a);
        }
    }
}

/// SplitMix64 of the inputs: independent seeds for every (case, plane, column).
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn row_values(rng: &mut ChaCha8Rng, rows: usize, mean: f64, spread: f64) -> Vec<f32> {
    (0..rows)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            (mean + spread * z).max(0.0) as f32
        })
        .collect()
}

fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    if sigma < 0.05 {
        return vec![1.0];
    }
    let half = (3.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (-half..=half).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// Separable blur of column-major data, edges clamped.
fn blur(cols: &[&[f32]], rows: usize, kernel: &[f32]) -> Vec<Vec<f32>> {
    let half = (kernel.len() / 2) as isize;
    let n = cols.len() as isize;
    let along: Vec<Vec<f32>> = (0..cols.len())
        .into_par_iter()
        .map(|c| {
            let mut out = vec![0.0f32; rows];
            for (k, &w) in kernel.iter().enumerate() {
                let src = cols[(c as isize + k as isize - half).clamp(0, n - 1) as usize];
                for (o, &v) in out.iter_mut().zip(src) {
                    *o += w * v;
                }
            }
            out
        })
        .collect();
    along
        .into_par_iter()
        .map(|col| {
            (0..rows)
                .map(|r| {
                    kernel
                        .iter()
                        .enumerate()
                        .map(|(k, &w)| w * col[(r as isize + k as isize - half).clamp(0, rows as isize - 1) as usize])
                        .sum()
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Shape;
    use crate::scene::Object;

    fn physics() -> ScannerPhysics {
        ScannerPhysics::new(&SourcePair::linac_6_4(), &Scintillator::default(), true, 16).unwrap()
    }

    fn empty_scene() -> Scene {
        Scene { x_min: 0.0, x_max: 2.0, z_bottom: 1.0, z_top: 2.0, ..Scene::default() }
    }

    #[test]
    fn open_beam_noise_matches_compound_poisson_statistics() {
        let noise = NoiseModel {
            dark_spread: 0.0,
            row_gain_sigma: 0.0,
            beam_wobble: 0.0,
            psf_sigma_px: 0.0,
            electronic_sigma: 0.0,
            photons_high: 2e4,
            ..NoiseModel::default()
        };
        let p = physics();
        let r = render(&empty_scene(), &FanBeam { pitch_m: 0.01, ..FanBeam::default() }, &p, &noise, 3).unwrap();
        let v: Vec<f64> = r.high.iter().map(|&c| f64::from(c)).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - (noise.dark_counts + noise.air_counts)).abs() < 5.0, "mean {mean}");
        // Relative noise sqrt(m2 / N) with N scaled by the pixel area (10 mm: 4x).
        let m2 = p.high.binned(p.table, &[], 16).unwrap().transmit(&[]).1;
        let want = noise.air_counts * (f64::from(m2) / (4.0 * noise.photons_high)).sqrt();
        assert!((var.sqrt() / want - 1.0).abs() < 0.1, "std {} vs {want}", var.sqrt());
        // Nothing in the beam: every row is air (less the 2-row safety margin).
        assert_eq!(r.air_rows, [0, r.high.nrows() - 2]);
    }

    #[test]
    fn absorber_lowers_counts_and_is_labelled() {
        let t = AttenuationTable::embedded().unwrap();
        let mut scene = empty_scene();
        let threat = crate::scene::Threat {
            category: "high_z".into(),
            material: "lead".into(),
            mass_kg: 0.0,
            depth_m: 0.0,
            yaw_deg: 0.0,
            concealment: "test".into(),
        };
        let block = Shape::Cuboid { centre: [1.0, 0.0, 1.5], size: [0.2, 0.05, 0.2], yaw: 0.0 };
        scene.push_threat(threat, vec![Object::new(block, t.id("lead").unwrap(), 11.35)]);
        let fan = FanBeam { pitch_m: 0.01, source_distance_m: 20.0, source_height_m: 1.5 };
        let r = render(&scene, &fan, &physics(), &NoiseModel::default(), 3).unwrap();
        let img = r.threats[0].as_ref().unwrap();
        // 0.2 m block at 10 mm pitch: 20 columns and ~20 rows around x = 1 m, z = 1.5 m.
        let [c0, r0, c1, r1] = img.bbox;
        assert!((89..=91).contains(&c0) && (108..=110).contains(&c1), "{:?}", img.bbox);
        assert!((39..=41).contains(&r0) && (58..=60).contains(&r1), "{:?}", img.bbox);
        // 5 cm of lead at 6 MV: A about 11.35 * 5 * 0.045 ~ 2.5; noise ~1e-2: CNR in the hundreds.
        assert!(img.contrast > 2.0 && img.contrast < 3.2, "{}", img.contrast);
        assert!(img.cnr > 50.0, "{}", img.cnr);
        // Free-standing in air: nothing else on its rays.
        assert!(img.occlusion_g_cm2 < 1e-3, "{}", img.occlusion_g_cm2);
        assert!(r.high[[50, 100]] < r.high[[50, 10]] / 5);
    }

    /// Transmission of every pixel, read back from counts rendered without noise or blur.
    fn quiet_transmission(scene: &Scene, fan: &FanBeam, samples: usize, interlaced: bool) -> [Array2<f64>; 2] {
        let noise = NoiseModel {
            photons_high: 1e12,
            photons_low: 1e12,
            dark_spread: 0.0,
            electronic_sigma: 0.0,
            row_gain_sigma: 0.0,
            psf_sigma_px: 0.0,
            beam_wobble: 0.0,
            interlace_offset: interlaced,
            aperture_samples: samples,
            ..NoiseModel::default()
        };
        let r = render(scene, fan, &physics(), &noise, 5).unwrap();
        let t = |p: &Array2<u16>| p.mapv(|c| (f64::from(c) - noise.dark_counts) / noise.air_counts);
        [t(&r.high), t(r.low.as_ref().unwrap())]
    }

    #[test]
    fn aperture_samples_integrate_a_gap_narrower_than_a_column() {
        // Two steel blocks with a 3 mm gap; column 10 (10 mm pitch) spans x 100..110 mm and its
        // centre, 105 mm, lies in the gap (103.5..106.5 mm).
        let t = AttenuationTable::embedded().unwrap();
        let steel = t.id("iron").unwrap();
        let mut scene = Scene { x_min: 0.0, x_max: 0.3, z_bottom: 1.0, z_top: 1.3, ..Scene::default() };
        for (x0, x1) in [(0.02, 0.1035), (0.1065, 0.28)] {
            let shape = Shape::Cuboid { centre: [0.5 * (x0 + x1), 0.0, 1.15], size: [x1 - x0, 0.1, 0.2], yaw: 0.0 };
            scene.push(Object::new(shape, steel, 7.87));
        }
        let fan = FanBeam { pitch_m: 0.01, source_distance_m: 20.0, source_height_m: 1.15 };
        let row = 15;
        let [point, point_low] = quiet_transmission(&scene, &fan, 1, false);
        let [eight, eight_low] = quiet_transmission(&scene, &fan, 8, false);
        let block = point[[row, 5]];
        assert!(block < 0.2, "10 cm of steel: {block}");
        // A point sample reads the gap as open beam.
        assert!(point[[row, 10]] > 0.99, "{}", point[[row, 10]]);
        // Eight rays at 100.625 + 1.25 k mm: two of them (104.375, 105.625) fall in the gap.
        let want = 0.25 + 0.75 * block;
        assert!((eight[[row, 10]] - want).abs() < 2e-3, "{} against {want}", eight[[row, 10]]);
        // Columns inside a block and the open beam are the same however they are sampled.
        for c in [5, 20, 29] {
            assert!((eight[[row, c]] - point[[row, c]]).abs() < 1e-3, "column {c}");
        }
        // The low plane integrates the same rays.
        let low_block = point_low[[row, 5]];
        assert!(low_block < block);
        let want = 0.25 + 0.75 * low_block;
        assert!((eight_low[[row, 10]] - want).abs() < 2e-3, "{} against {want}", eight_low[[row, 10]]);
        // Interlaced: the low rays sit half a column later (105.625 + 1.25 k mm), so column 10's
        // low reading sees the gap through one ray in eight, and column 9 (95..105 mm) through one.
        let [_, lagged_low] = quiet_transmission(&scene, &fan, 8, true);
        for c in [9, 10] {
            let want = 0.125 + 0.875 * low_block;
            assert!((lagged_low[[row, c]] - want).abs() < 2e-3, "column {c}: {} against {want}", lagged_low[[row, c]]);
        }
    }

    #[test]
    fn a_thin_plate_seen_edge_on_shows_only_where_a_ray_hits_it() {
        // A hidden compartment's false front wall: a 3 mm steel plate crossing the whole
        // container width along the beam (x 103..106 mm). At 5 mm pitch column 20 spans
        // 100..105 mm and column 21 105..110 mm; neither centre (102.5, 107.5) lies in the
        // plate, so one ray per column misses it entirely (the cargo-bench case the detector
        // card describes) while four rays per column see it as a partial-volume line.
        let t = AttenuationTable::embedded().unwrap();
        let steel = t.id("iron").unwrap();
        let mut scene = Scene { x_min: 0.0, x_max: 0.3, z_bottom: 1.0, z_top: 1.3, ..Scene::default() };
        let plate = Shape::Cuboid { centre: [0.1045, 0.0, 1.15], size: [0.003, 2.35, 0.2], yaw: 0.0 };
        scene.push(Object::new(plate, steel, 7.87));
        let fan = FanBeam { pitch_m: 0.005, source_distance_m: 20.0, source_height_m: 1.15 };
        let row = 30;
        let [point, _] = quiet_transmission(&scene, &fan, 1, false);
        let [four, _] = quiet_transmission(&scene, &fan, 4, false);
        for c in [19, 20, 21, 22] {
            assert!(point[[row, c]] > 0.99, "one ray per column, column {c}: {}", point[[row, c]]);
        }
        // Rays at 100.625 + 1.25 k mm: 103.125 and 104.375 cross 2.35 m of steel (transmission
        // ~0), so column 20 reads 1/2; column 21's first ray, 105.625, crosses it: 3/4.
        assert!((four[[row, 20]] - 0.5).abs() < 2e-3, "{}", four[[row, 20]]);
        assert!((four[[row, 21]] - 0.75).abs() < 2e-3, "{}", four[[row, 21]]);
        for c in [19, 22] {
            assert!(four[[row, c]] > 0.99, "column {c}: {}", four[[row, c]]);
        }
    }

    #[test]
    fn hostile_sizes_and_parameters_are_refused() {
        let p = physics();
        let huge = Scene { x_min: 0.0, x_max: 1e4, z_bottom: 0.0, z_top: 10.0, ..Scene::default() };
        assert!(matches!(
            render(&huge, &FanBeam::default(), &p, &NoiseModel::default(), 1),
            Err(SynthError::Parameter { .. })
        ));
        let bad_pitch = FanBeam { pitch_m: f64::NAN, ..FanBeam::default() };
        assert!(render(&empty_scene(), &bad_pitch, &p, &NoiseModel::default(), 1).is_err());
        let inverted = Scene { z_bottom: 3.0, z_top: 1.0, ..empty_scene() };
        assert!(render(&inverted, &FanBeam::default(), &p, &NoiseModel::default(), 1).is_err());
        for noise in [
            NoiseModel { photons_high: f64::NAN, ..NoiseModel::default() },
            NoiseModel { air_counts: 70_000.0, ..NoiseModel::default() },
            NoiseModel { psf_sigma_px: -1.0, ..NoiseModel::default() },
            NoiseModel { aperture_samples: 0, ..NoiseModel::default() },
            NoiseModel { aperture_samples: MAX_APERTURE_SAMPLES + 1, ..NoiseModel::default() },
        ] {
            assert!(render(&empty_scene(), &FanBeam::default(), &p, &noise, 1).is_err());
        }
    }
}
