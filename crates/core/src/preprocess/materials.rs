//! Material discrimination for dual-energy scans.
//!
//! A scanner profile holds, as curves of the R-value `R = A_low / A_high` against the
//! high-energy attenuation `A_high`, the boundaries between material classes and the
//! response of reference materials of known effective Z. Both depend on the scanner
//! (spectra, filtration, detector), so profiles are built from reference measurements:
//! known materials at known thicknesses, measured or simulated on that scanner.
//!
//! For MV linacs R falls with Z (pair production grows with energy for heavy elements);
//! for kV tubes it rises with Z (photoelectric absorption). The profile records which.

use ndarray::{Array2, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibration::{AttenuationImage, flags};
pub use crate::scan::SourceKind;

/// The profile format this build reads and writes.
pub const PROFILE_SCHEMA_VERSION: u32 = 1;

/// Material class of a pixel. The discriminants are stable (they are written to files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum MaterialClass {
    /// Beam passes through (almost) nothing.
    Air = 0,
    /// Low Z: plastics, paper, textiles, food, drugs, explosives (Z_eff below ~9).
    Organic = 1,
    /// Organic-inorganic mixtures and light inorganics.
    Mixed = 2,
    /// Light metals and minerals: aluminium, glass, ceramics, salts.
    Inorganic = 3,
    /// Iron and heavier.
    Metal = 4,
    /// Too little signal in either plane to decide.
    Impenetrable = 5,
    /// Attenuating, but no dual-energy information (single-energy or rendered scans).
    Unclassified = 6,
}

impl MaterialClass {
    /// Every class, in discriminant order.
    pub const ALL: [MaterialClass; 7] =
        [Self::Air, Self::Organic, Self::Mixed, Self::Inorganic, Self::Metal, Self::Impenetrable, Self::Unclassified];

    /// The class stored as `v` in a [`MaterialMap`]; `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// The snake_case name used in files and reports (`organic`, `metal`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Air => "air",
            Self::Organic => "organic",
            Self::Mixed => "mixed",
            Self::Inorganic => "inorganic",
            Self::Metal => "metal",
            Self::Impenetrable => "impenetrable",
            Self::Unclassified => "unclassified",
        }
    }
}

/// A curve `R(A_high)`, piecewise linear, held flat outside its points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RCurve {
    /// Increasing high-energy attenuations.
    pub a_high: Vec<f32>,
    /// R-value at each of them.
    pub r_value: Vec<f32>,
}

impl RCurve {
    /// The R-value at high-energy attenuation `a`.
    pub fn eval(&self, a: f32) -> f32 {
        let (xs, ys) = (&self.a_high, &self.r_value);
        if a <= xs[0] {
            return ys[0];
        }
        let i = xs.partition_point(|&x| x < a);
        if i >= xs.len() {
            return ys[ys.len() - 1];
        }
        let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
        if x1 > x0 { y0 + (y1 - y0) * (a - x0) / (x1 - x0) } else { y1 }
    }

    fn validate(&self, what: &str) -> Result<(), ProfileError> {
        let bad = |reason: String| ProfileError::Invalid { reason: format!("{what}: {reason}") };
        if self.a_high.len() != self.r_value.len() || self.a_high.is_empty() {
            return Err(bad(format!("{} a_high values and {} r_value values", self.a_high.len(), self.r_value.len())));
        }
        if self.a_high.iter().chain(&self.r_value).any(|v| !v.is_finite()) {
            return Err(bad("non-finite value".into()));
        }
        if self.a_high.windows(2).any(|w| w[1] <= w[0]) {
            return Err(bad("a_high must increase strictly".into()));
        }
        Ok(())
    }
}

/// Boundary between two adjacent classes: pixels on the low-Z side of the curve are `below`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBoundary {
    /// The class on the low-Z side.
    pub below: MaterialClass,
    /// The class on the high-Z side.
    pub above: MaterialClass,
    /// Effective Z the boundary stands for.
    pub z_eff: f32,
    /// The boundary's R-value against high-energy attenuation.
    #[serde(flatten)]
    pub curve: RCurve,
}

/// Response of a reference material of known effective Z.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCurve {
    /// The reference material's name.
    pub material: String,
    /// Its effective atomic number.
    pub z_eff: f32,
    /// Its R-value against high-energy attenuation.
    #[serde(flatten)]
    pub curve: RCurve,
}

/// A scanner profile for material discrimination (format in `docs/preprocessing.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterialProfile {
    /// Profile format version; this build reads [`PROFILE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The name a scan descriptor's `scanner` refers to it by.
    pub name: String,
    /// Where the profile comes from (scanner, measurements).
    #[serde(default)]
    pub description: String,
    /// Below this high-energy attenuation a pixel is air.
    pub air_max_attenuation: f32,
    /// Above this high-energy attenuation (or low-energy one) a pixel is impenetrable.
    pub impenetrable_min_attenuation: f32,
    /// Whether R grows with Z (tubes) or falls with Z (linacs).
    pub r_increases_with_z: bool,
    /// Class boundaries, ordered from low Z to high Z: organic|mixed, mixed|inorganic, inorganic|metal.
    pub boundaries: Vec<ClassBoundary>,
    /// Reference materials, ordered by increasing Z, for the effective-Z estimate.
    pub references: Vec<ReferenceCurve>,
}

/// Most bytes a profile file may have: real ones are a few kB (three boundaries and a few
/// reference curves of tens of points). Curves are parsed through a buffer of JSON values, about
/// 40 bytes of memory per 2 bytes of file at worst, so the cap bounds that too.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Why a material profile could not be loaded, found or built.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile breaks a rule of the format, or the one a scan names is not found.
    #[error("invalid material profile: {reason}")]
    Invalid {
        /// Which rule, or where it was looked for.
        reason: String,
    },
    /// The reference measurements cannot make a profile.
    #[error("cannot build a material profile: {reason}")]
    Build {
        /// What the measurements lack.
        reason: String,
    },
    /// The profile file cannot be read: missing, not a regular file, or over
    /// [`MAX_PROFILE_BYTES`].
    #[error(transparent)]
    File(crate::io::FileError),
    /// The profile is not valid JSON or does not fit the schema.
    #[error("{}: invalid material profile: {error}", .path.display())]
    Schema {
        /// The profile file, or the scan holding it inline.
        path: std::path::PathBuf,
        /// The field and what it should be, or where the JSON breaks (boxed: errors stay small).
        error: Box<crate::io::SchemaError>,
    },
}

/// One measurement of a reference block: a known material at a known thickness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMeasurement {
    /// The block's material.
    pub material: String,
    /// Its effective atomic number.
    pub z_eff: f32,
    /// Its thickness along the beam, mm.
    pub thickness_mm: f32,
    /// Its high-energy attenuation, `-ln T_high`.
    pub a_high: f32,
    /// Its low-energy attenuation, `-ln T_low`.
    pub a_low: f32,
}

/// Choices made when building a profile from measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileBuildOptions {
    /// Effective Z of the boundaries organic|mixed, mixed|inorganic, inorganic|metal.
    pub class_z_bounds: [f32; 3],
    /// The profile's air threshold (see [`MaterialProfile::air_max_attenuation`]);
    /// measurements below it are left out.
    pub air_max_attenuation: f32,
    /// The profile's impenetrable threshold (see
    /// [`MaterialProfile::impenetrable_min_attenuation`]); measurements above it are left out.
    pub impenetrable_min_attenuation: f32,
}

impl Default for ProfileBuildOptions {
    fn default() -> Self {
        // Water (7.4), plastics and paper (6-7) are organic; aluminium (13) and glass inorganic;
        // iron (26) and up metal. Bone/ivory (~12) lands in mixed.
        Self { class_z_bounds: [9.0, 12.0, 20.0], air_max_attenuation: 0.05, impenetrable_min_attenuation: 7.0 }
    }
}

impl MaterialProfile {
    /// Builds a profile from measurements of reference blocks (at least two thicknesses of at
    /// least two materials whose Z range spans every class boundary).
    pub fn from_references(
        name: &str,
        measurements: &[ReferenceMeasurement],
        opts: &ProfileBuildOptions,
    ) -> Result<Self, ProfileError> {
        let references = reference_curves(measurements, opts)?;
        // Orientation from the extreme materials, at a common attenuation.
        let (lo, hi) = (&references[0], &references[references.len() - 1]);
        let a_mid = 0.5 * (lo.curve.a_high[0] + lo.curve.a_high[lo.curve.a_high.len() - 1]);
        let r_increases_with_z = hi.curve.eval(a_mid) > lo.curve.eval(a_mid);
        let boundaries = class_boundaries(&references, &opts.class_z_bounds)?;
        let profile = Self {
            schema_version: PROFILE_SCHEMA_VERSION,
            name: name.to_string(),
            description: format!(
                "built from {} measurements of {} reference materials",
                measurements.len(),
                references.len()
            ),
            air_max_attenuation: opts.air_max_attenuation,
            impenetrable_min_attenuation: opts.impenetrable_min_attenuation,
            r_increases_with_z,
            boundaries,
            references,
        };
        profile.validate()?;
        Ok(profile)
    }

    /// Checks the schema version, thresholds, curves and the order of the references.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let bad = |reason: String| ProfileError::Invalid { reason };
        if self.schema_version != PROFILE_SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} (this build reads {PROFILE_SCHEMA_VERSION})",
                self.schema_version
            )));
        }
        if !(self.air_max_attenuation >= 0.0 && self.impenetrable_min_attenuation > self.air_max_attenuation) {
            return Err(bad("need 0 <= air_max_attenuation < impenetrable_min_attenuation".into()));
        }
        if self.boundaries.len() != 3 {
            return Err(bad(format!(
                "{} class boundaries; expected 3 (organic|mixed|inorganic|metal)",
                self.boundaries.len()
            )));
        }
        for b in &self.boundaries {
            b.curve.validate(&format!("boundary {}|{}", b.below.name(), b.above.name()))?;
        }
        if self.references.len() < 2 || self.references.len() > MAX_REFS {
            return Err(bad(format!(
                "{} reference curves; effective Z needs between 2 and {MAX_REFS}",
                self.references.len()
            )));
        }
        for r in &self.references {
            r.curve.validate(&format!("reference {}", r.material))?;
        }
        if self.references.windows(2).any(|w| w[1].z_eff <= w[0].z_eff) {
            return Err(bad("reference curves must be ordered by strictly increasing z_eff".into()));
        }
        Ok(())
    }

    /// Parses and validates a profile; `path` names it in errors.
    pub fn from_json(text: &str, path: &std::path::Path) -> Result<Self, ProfileError> {
        let p: Self = crate::io::parse_json(text.as_bytes())
            .map_err(|e| ProfileError::Schema { path: path.to_path_buf(), error: Box::new(e) })?;
        p.validated(path)
    }

    /// Converts and validates a profile given inline as JSON (a descriptor's `scanner`);
    /// `origin` names it in errors.
    pub fn from_value(value: &serde_json::Value, origin: &std::path::Path) -> Result<Self, ProfileError> {
        let p: Self = crate::io::parse_json_value(value)
            .map_err(|e| ProfileError::Schema { path: origin.to_path_buf(), error: Box::new(e) })?;
        p.validated(origin)
    }

    /// Reads, parses and validates a profile file: a regular file of at most
    /// [`MAX_PROFILE_BYTES`].
    pub fn load(path: &std::path::Path) -> Result<Self, ProfileError> {
        let text = crate::io::read_text_capped(path, MAX_PROFILE_BYTES).map_err(ProfileError::File)?;
        Self::from_json(&text, path)
    }

    /// [`Self::validate`], with the file named in the message.
    fn validated(self, path: &std::path::Path) -> Result<Self, ProfileError> {
        match self.validate() {
            Ok(()) => Ok(self),
            Err(ProfileError::Invalid { reason }) => {
                Err(ProfileError::Invalid { reason: format!("{}: {reason}", path.display()) })
            }
            Err(e) => Err(e),
        }
    }

    /// Signed distance into Z order: positive when `r` lies on the high-Z side of `r_ref`.
    #[inline]
    fn towards_high_z(&self, r: f32, r_ref: f32) -> f32 {
        if self.r_increases_with_z { r - r_ref } else { r_ref - r }
    }

    /// Class and effective Z of one pixel.
    pub fn classify(&self, a_high: f32, a_low: f32) -> (MaterialClass, f32) {
        if a_high < self.air_max_attenuation {
            return (MaterialClass::Air, 0.0);
        }
        if a_high > self.impenetrable_min_attenuation || a_low > self.impenetrable_min_attenuation * 1.5 {
            return (MaterialClass::Impenetrable, 0.0);
        }
        let r = a_low / a_high;
        let mut class = MaterialClass::Organic;
        for b in &self.boundaries {
            if self.towards_high_z(r, b.curve.eval(a_high)) >= 0.0 {
                class = b.above;
            }
        }
        (class, self.z_eff(a_high, r))
    }

    /// Effective Z by linear interpolation in R between the bracketing reference curves,
    /// clamped to the references' Z range.
    pub fn z_eff(&self, a_high: f32, r: f32) -> f32 {
        let refs = &self.references;
        let first = refs[0].curve.eval(a_high);
        if self.towards_high_z(r, first) <= 0.0 {
            return refs[0].z_eff;
        }
        let mut prev = (first, refs[0].z_eff);
        for rc in &refs[1..] {
            let cur = rc.curve.eval(a_high);
            if self.towards_high_z(r, cur) <= 0.0 {
                let span = cur - prev.0;
                let w = if span.abs() > 1e-9 { ((r - prev.0) / span).clamp(0.0, 1.0) } else { 0.5 };
                return prev.1 + w * (rc.z_eff - prev.1);
            }
            prev = (cur, rc.z_eff);
        }
        prev.1
    }
}

/// One reference curve per material from the measurements inside the classification range,
/// ordered by Z, each curve's points by attenuation; at least two materials.
fn reference_curves(
    measurements: &[ReferenceMeasurement],
    opts: &ProfileBuildOptions,
) -> Result<Vec<ReferenceCurve>, ProfileError> {
    let build = |reason: String| ProfileError::Build { reason };
    // (material, Z, [(A_high, R)])
    type Points = Vec<(f32, f32)>;
    let mut by_material: Vec<(String, f32, Points)> = Vec::new();
    for m in measurements {
        if !(m.a_high.is_finite() && m.a_low.is_finite() && m.z_eff.is_finite()) || m.a_high <= 0.0 || m.a_low <= 0.0 {
            return Err(build(format!(
                "measurement of {} at {} mm is not positive and finite",
                m.material, m.thickness_mm
            )));
        }
        if m.a_high < opts.air_max_attenuation || m.a_high > opts.impenetrable_min_attenuation {
            continue; // outside the range where classes are decided
        }
        match by_material.iter_mut().find(|(n, _, _)| *n == m.material) {
            Some((_, z, pts)) => {
                if (*z - m.z_eff).abs() > 1e-6 {
                    return Err(build(format!("{} is given with two Z values", m.material)));
                }
                pts.push((m.a_high, m.a_low / m.a_high));
            }
            None => by_material.push((m.material.clone(), m.z_eff, vec![(m.a_high, m.a_low / m.a_high)])),
        }
    }
    by_material.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut references = Vec::new();
    for (material, z_eff, mut pts) in by_material {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-6);
        if pts.len() < 2 {
            return Err(build(format!("{material}: needs at least two thicknesses inside the classification range")));
        }
        let curve = RCurve { a_high: pts.iter().map(|p| p.0).collect(), r_value: pts.iter().map(|p| p.1).collect() };
        references.push(ReferenceCurve { material, z_eff, curve });
    }
    if references.len() < 2 {
        return Err(build("needs at least two reference materials".into()));
    }
    Ok(references)
}

/// The class boundaries at effective Z `z_bounds`, on a common attenuation grid, each
/// interpolated linearly in Z between the two references that bracket it.
fn class_boundaries(references: &[ReferenceCurve], z_bounds: &[f32; 3]) -> Result<Vec<ClassBoundary>, ProfileError> {
    let build = |reason: String| ProfileError::Build { reason };
    let a_min = references.iter().map(|r| r.curve.a_high[0]).fold(f32::INFINITY, f32::min);
    let a_max = references.iter().map(|r| *r.curve.a_high.last().unwrap()).fold(0.0, f32::max);
    let grid: Vec<f32> = (0..64).map(|i| a_min + (a_max - a_min) * i as f32 / 63.0).collect();
    let classes = [MaterialClass::Organic, MaterialClass::Mixed, MaterialClass::Inorganic, MaterialClass::Metal];
    let mut boundaries = Vec::new();
    for (k, &zb) in z_bounds.iter().enumerate() {
        let upper = references.iter().position(|r| r.z_eff >= zb).ok_or_else(|| {
            build(format!("no reference material at or above Z = {zb} (the {} boundary)", classes[k + 1].name()))
        })?;
        if upper == 0 {
            return Err(build(format!("no reference material below Z = {zb} (the {} boundary)", classes[k].name())));
        }
        let (r0, r1) = (&references[upper - 1], &references[upper]);
        let w = (zb - r0.z_eff) / (r1.z_eff - r0.z_eff);
        let r_value = grid.iter().map(|&a| r0.curve.eval(a) * (1.0 - w) + r1.curve.eval(a) * w).collect();
        boundaries.push(ClassBoundary {
            below: classes[k],
            above: classes[k + 1],
            z_eff: zb,
            curve: RCurve { a_high: grid.clone(), r_value },
        });
    }
    Ok(boundaries)
}

/// Reference blocks by Beer-Lambert at one effective energy per beam, with NIST XCOM mass
/// attenuation coefficients (cm^2/g, total with coherent scattering, read from the XCOM
/// tables in `../shared/data/nist-xcom`). This is the fallback when a scan names no profile:
/// mono-energetic, so it ignores beam hardening; a profile simulated or measured for the
/// scanner is better.
///
/// Linac 6/4 MV: effective energies 2.0 and 1.5 MeV. Tube 140/80 kVp: 80 and 40 keV; lead is
/// left out there because its K edge (88 keV) makes its R-value fall below iron's.
pub fn effective_energy_references(kind: SourceKind) -> Vec<ReferenceMeasurement> {
    // (name, Z_eff, density g/cm3, mu/rho high, mu/rho low, thicknesses cm)
    type Row = (&'static str, f32, f32, f32, f32);
    const LINAC: [Row; 5] = [
        ("carbon", 6.0, 1.0, 0.044426, 0.051790),
        ("water", 7.42, 1.0, 0.049418, 0.057540),
        ("aluminium", 13.0, 2.699, 0.043237, 0.050064),
        ("iron", 26.0, 7.874, 0.042648, 0.048831),
        ("lead", 82.0, 11.35, 0.046065, 0.052223),
    ];
    const TUBE: [Row; 5] = [
        ("carbon", 6.0, 1.0, 0.16100, 0.20764),
        ("water", 7.42, 1.0, 0.18365, 0.26828),
        ("aluminium", 13.0, 2.699, 0.20177, 0.56843),
        ("iron", 26.0, 7.874, 0.59520, 3.6292),
        ("copper", 29.0, 8.96, 0.76297, 4.8617),
    ];
    let (rows, thicknesses): (&[Row], &[f32]) = match kind {
        SourceKind::Tube => (&TUBE, &[0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]),
        _ => (&LINAC, &[1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0]),
    };
    let mut out = Vec::new();
    for &(name, z, rho, mu_h, mu_l) in rows {
        for &t_cm in thicknesses {
            let (a_high, a_low) = (mu_h * rho * t_cm, mu_l * rho * t_cm);
            if a_high > 0.05 && a_high < 7.0 {
                out.push(ReferenceMeasurement {
                    material: name.into(),
                    z_eff: z,
                    thickness_mm: t_cm * 10.0,
                    a_high,
                    a_low,
                });
            }
        }
    }
    out
}

/// The fallback profile for a source kind (see [`effective_energy_references`]).
pub fn fallback_profile(kind: SourceKind) -> MaterialProfile {
    let (name, refs) = match kind {
        SourceKind::Tube => ("fallback-tube-effective-energy", effective_energy_references(SourceKind::Tube)),
        _ => ("fallback-linac-effective-energy", effective_energy_references(SourceKind::Linac)),
    };
    MaterialProfile::from_references(name, &refs, &ProfileBuildOptions::default())
        .expect("the built-in reference table spans every class boundary")
}

/// Per-pixel material classes (`MaterialClass as u8`) and effective Z (0 where undecided).
#[derive(Debug, Clone)]
pub struct MaterialMap {
    /// [`MaterialClass`] of each pixel, as `u8`.
    pub class: Array2<u8>,
    /// Effective atomic number of each pixel; 0 where undecided.
    pub z_eff: Array2<f32>,
}

impl MaterialMap {
    /// Fraction of pixels in each class, in [`MaterialClass::ALL`] order.
    pub fn class_fractions(&self) -> [f64; 7] {
        let mut counts = [0u64; 7];
        for &c in self.class.iter() {
            counts[c as usize] += 1;
        }
        let n = self.class.len().max(1) as f64;
        counts.map(|c| c as f64 / n)
    }
}

/// Lookup table of the profile's curves over `A_high`, so each pixel costs a few compares
/// instead of curve searches. 1024 bins over the classification range: bin width ~0.007 in
/// attenuation, well below the noise of R at any useful signal level.
struct ProfileLut {
    scale: f32,
    boundaries: Vec<[f32; 3]>,
    /// Reference curves' R per bin, padded to [`MAX_REFS`] with values no R can pass, so the
    /// per-pixel count runs over a fixed-size array and vectorises.
    references: Vec<[f32; MAX_REFS]>,
    n_refs: usize,
}

/// Most reference curves a profile may hold (checked by [`MaterialProfile::validate`]).
const MAX_REFS: usize = 8;

const LUT_BINS: usize = 1024;

/// Sums over a window of `2 radius + 1` samples centred on each sample, shrunk at the ends.
/// Shifted-slice adds: exact (no running-sum drift along 6,000-column rows) and vectorised.
fn window_sum(src: &[f32], out: &mut [f32], radius: usize) {
    let n = src.len();
    let naive = |c: usize| src[c.saturating_sub(radius)..(c + radius + 1).min(n)].iter().sum::<f32>();
    if n <= 2 * radius {
        for (c, o) in out.iter_mut().enumerate() {
            *o = naive(c);
        }
        return;
    }
    let inner = n - 2 * radius;
    let body = &mut out[radius..radius + inner];
    body.copy_from_slice(&src[..inner]);
    for k in 1..=2 * radius {
        body.iter_mut().zip(&src[k..k + inner]).for_each(|(o, v)| *o += v);
    }
    for c in (0..radius).chain(n - radius..n) {
        out[c] = naive(c);
    }
}

impl ProfileLut {
    /// Class (as u8) and effective Z for R-value `r` in LUT bin `bin`. Branch-free counts
    /// of curves crossed towards high Z, so noisy R does not cost branch mispredictions.
    #[inline]
    fn decide(&self, bin: usize, r: f32, sign: f32, z_refs: &[f32]) -> (u8, f32) {
        let b = &self.boundaries[bin];
        let crossed =
            (sign * (r - b[0]) >= 0.0) as u8 + (sign * (r - b[1]) >= 0.0) as u8 + (sign * (r - b[2]) >= 0.0) as u8;
        let padded = &self.references[bin];
        // k = number of reference curves on the low-Z side of r: r lies between refs k-1 and k.
        let k: usize = padded.iter().map(|&x| (sign * (r - x) > 0.0) as usize).sum();
        let refs = &padded[..self.n_refs];
        let z = if k == 0 {
            z_refs[0]
        } else if k == refs.len() {
            z_refs[refs.len() - 1]
        } else {
            let span = refs[k] - refs[k - 1];
            let w = if span.abs() > 1e-9 { ((r - refs[k - 1]) / span).clamp(0.0, 1.0) } else { 0.5 };
            z_refs[k - 1] + w * (z_refs[k] - z_refs[k - 1])
        };
        (MaterialClass::Organic as u8 + crossed, z)
    }

    fn new(p: &MaterialProfile) -> Self {
        let span = p.impenetrable_min_attenuation;
        let scale = (LUT_BINS - 1) as f32 / span;
        let a_at = |i: usize| i as f32 / scale;
        let boundaries = (0..LUT_BINS)
            .map(|i| {
                let a = a_at(i);
                [p.boundaries[0].curve.eval(a), p.boundaries[1].curve.eval(a), p.boundaries[2].curve.eval(a)]
            })
            .collect();
        // Padding sits on the high-Z side of every R, so it is never counted as crossed.
        let pad = if p.r_increases_with_z { f32::INFINITY } else { f32::NEG_INFINITY };
        let references = (0..LUT_BINS)
            .map(|i| {
                let mut row = [pad; MAX_REFS];
                for (slot, r) in row.iter_mut().zip(&p.references) {
                    *slot = r.curve.eval(a_at(i));
                }
                row
            })
            .collect();
        Self { scale, boundaries, references, n_refs: p.references.len() }
    }
}

/// Class and effective Z tabulated over (mean A_high, R): 512 attenuation bins by 256 R
/// levels spanning the profile's curves plus a margin, 256 KiB, so each pixel costs one
/// table load. Entries pack the class in the top 4 bits and Z in 1/32 steps below.
struct DecisionTable {
    entries: Vec<u16>,
    a_scale: f32,
    r_lo: f32,
    r_scale: f32,
}

const TABLE_A_BINS: usize = 512;
const TABLE_R_LEVELS: usize = 256;
const Z_STEP: f32 = 32.0;

impl DecisionTable {
    fn new(p: &MaterialProfile) -> Self {
        let lut = ProfileLut::new(p);
        let sign = if p.r_increases_with_z { 1.0f32 } else { -1.0 };
        let z_refs: Vec<f32> = p.references.iter().map(|r| r.z_eff).collect();
        let curves = p.boundaries.iter().map(|b| &b.curve).chain(p.references.iter().map(|r| &r.curve));
        let (lo, hi) = curves
            .flat_map(|c| c.r_value.iter())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &r| (a.min(r), b.max(r)));
        let margin = 0.25 * (hi - lo).max(1e-3);
        let (r_lo, r_hi) = (lo - margin, hi + margin);
        let r_scale = TABLE_R_LEVELS as f32 / (r_hi - r_lo);
        let a_scale = TABLE_A_BINS as f32 / p.impenetrable_min_attenuation;
        // Two entries past the grid, air and impenetrable (z 0): the vector kernel picks them per
        // pixel instead of branching.
        let mut entries = vec![0u16; TABLE_A_BINS * TABLE_R_LEVELS + 2];
        entries[AIR_ENTRY as usize] = (MaterialClass::Air as u16) << 12;
        entries[IMPENETRABLE_ENTRY as usize] = (MaterialClass::Impenetrable as u16) << 12;
        for ab in 0..TABLE_A_BINS {
            let a = (ab as f32 + 0.5) / a_scale;
            let bin = (a * lut.scale).clamp(0.0, (LUT_BINS - 1) as f32) as usize;
            for rq in 0..TABLE_R_LEVELS {
                let r = r_lo + (rq as f32 + 0.5) / r_scale;
                let (cls, z) = lut.decide(bin, r, sign, &z_refs);
                entries[ab * TABLE_R_LEVELS + rq] = ((cls as u16) << 12) | ((z * Z_STEP).round() as u16).min(0xfff);
            }
        }
        Self { entries, a_scale, r_lo, r_scale }
    }

    #[inline(always)]
    fn lookup(&self, mean_a_high: f32, r: f32) -> (u8, f32) {
        let ab = (mean_a_high * self.a_scale).clamp(0.0, (TABLE_A_BINS - 1) as f32) as usize;
        let rq = ((r - self.r_lo) * self.r_scale).clamp(0.0, (TABLE_R_LEVELS - 1) as f32) as usize;
        Self::decode(self.entries[ab * TABLE_R_LEVELS + rq])
    }

    #[inline(always)]
    fn decode(e: u16) -> (u8, f32) {
        ((e >> 12) as u8, (e & 0xfff) as f32 * (1.0 / Z_STEP))
    }
}

const AIR_ENTRY: u32 = (TABLE_A_BINS * TABLE_R_LEVELS) as u32;
const IMPENETRABLE_ENTRY: u32 = AIR_ENTRY + 1;
const _: () = assert!(TABLE_R_LEVELS == 256, "the vector kernel shifts A bins by 8 bits");

/// One row of pixels with the window sums around each (see [`classify_with`]).
struct Row<'a> {
    high: &'a [f32],
    low: &'a [f32],
    flags: &'a [u8],
    sum_high: &'a [f32],
    sum_low: &'a [f32],
    inv_width: &'a [f32],
    inv_height: f32,
}

/// Per-pixel air and impenetrable limits.
#[derive(Clone, Copy)]
struct Limits {
    air_max: f32,
    imp_min: f32,
    low_imp_min: f32,
}

/// Class and effective Z of pixels `from..` of a row, one at a time. Air and impenetrable are
/// decided per pixel (z 0); the rest by the window means: the ratio of window sums is the
/// ratio of window means.
fn classify_row_scalar(table: &DecisionTable, row: &Row, lim: Limits, from: usize, cl: &mut [u8], z: &mut [f32]) {
    for c in from..row.high.len() {
        let (ah, al, f) = (row.high[c], row.low[c], row.flags[c]);
        (cl[c], z[c]) = if f & flags::SATURATED != 0 || ah < lim.air_max {
            (MaterialClass::Air as u8, 0.0)
        } else if f & (flags::DEAD | flags::FLOOR) != 0 || ah > lim.imp_min || al > lim.low_imp_min {
            (MaterialClass::Impenetrable as u8, 0.0)
        } else {
            let (hs, ls) = (row.sum_high[c], row.sum_low[c]);
            let mean_h = hs * row.inv_width[c] * row.inv_height;
            let r_val = if hs > 0.0 { ls / hs } else { al / ah };
            table.lookup(mean_h, r_val)
        };
    }
}

/// [`classify_row_scalar`] four pixels at a time with SSE2 (part of every x86-64 CPU): the
/// same float operations in the same order, so the same table entries, without a branch per
/// pixel (noisy air edges mispredict) and with four divisions in flight. Returns how many
/// pixels it did; the scalar kernel finishes the row.
#[cfg(target_arch = "x86_64")]
fn classify_row_sse2(table: &DecisionTable, row: &Row, lim: Limits, cl: &mut [u8], z: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let n = row.high.len();
    assert!(
        [row.low.len(), row.flags.len(), row.sum_high.len(), row.sum_low.len(), row.inv_width.len(), cl.len(), z.len()]
            .iter()
            .all(|&len| len >= n),
        "row slices shorter than the row"
    );
    let done = n / 4 * 4;
    let mut idx = [0u32; 4];
    // SAFETY: SSE2 is in the x86-64 baseline; every load reads 4 elements at c < done <= n
    // from slices at least n long (asserted above); loads and stores are unaligned variants.
    unsafe {
        let zero = _mm_setzero_ps();
        let zero_i = _mm_setzero_si128();
        let ones_i = _mm_set1_epi32(-1);
        let (air_max, imp_min, low_imp_min) =
            (_mm_set1_ps(lim.air_max), _mm_set1_ps(lim.imp_min), _mm_set1_ps(lim.low_imp_min));
        let inv_height = _mm_set1_ps(row.inv_height);
        let (a_scale, a_top) = (_mm_set1_ps(table.a_scale), _mm_set1_ps((TABLE_A_BINS - 1) as f32));
        let (r_lo, r_scale, r_top) =
            (_mm_set1_ps(table.r_lo), _mm_set1_ps(table.r_scale), _mm_set1_ps((TABLE_R_LEVELS - 1) as f32));
        let saturated = _mm_set1_epi32(flags::SATURATED as i32);
        let dead_or_floor = _mm_set1_epi32((flags::DEAD | flags::FLOOR) as i32);
        let (air_entry, imp_entry) = (_mm_set1_epi32(AIR_ENTRY as i32), _mm_set1_epi32(IMPENETRABLE_ENTRY as i32));
        let select_ps = |m: __m128, a: __m128, b: __m128| _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
        let select_i = |m: __m128i, a: __m128i, b: __m128i| _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
        let any_bit =
            |f: __m128i, bits: __m128i| _mm_xor_si128(_mm_cmpeq_epi32(_mm_and_si128(f, bits), zero_i), ones_i);
        for c in (0..done).step_by(4) {
            let h = _mm_loadu_ps(row.high.as_ptr().add(c));
            let l = _mm_loadu_ps(row.low.as_ptr().add(c));
            let hs = _mm_loadu_ps(row.sum_high.as_ptr().add(c));
            let ls = _mm_loadu_ps(row.sum_low.as_ptr().add(c));
            let inv_w = _mm_loadu_ps(row.inv_width.as_ptr().add(c));
            let f = row.flags.as_ptr().add(c).cast::<[u8; 4]>().read_unaligned();
            let f = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(i32::from_le_bytes(f)), zero_i), zero_i);
            let air = _mm_or_si128(any_bit(f, saturated), _mm_castps_si128(_mm_cmplt_ps(h, air_max)));
            let imp = _mm_or_si128(
                any_bit(f, dead_or_floor),
                _mm_castps_si128(_mm_or_ps(_mm_cmpgt_ps(h, imp_min), _mm_cmpgt_ps(l, low_imp_min))),
            );
            let windowed = _mm_cmpgt_ps(hs, zero);
            let r = _mm_div_ps(select_ps(windowed, ls, l), select_ps(windowed, hs, h));
            let mean_h = _mm_mul_ps(_mm_mul_ps(hs, inv_w), inv_height);
            // max(x, 0) returns 0 for NaN x, as the scalar clamp-then-cast does.
            let ab = _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(_mm_mul_ps(mean_h, a_scale), zero), a_top));
            let rq = _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_sub_ps(r, r_lo), r_scale), zero), r_top));
            let entry = _mm_add_epi32(_mm_slli_epi32::<8>(ab), rq);
            let entry = select_i(air, air_entry, select_i(imp, imp_entry, entry));
            _mm_storeu_si128(idx.as_mut_ptr().cast(), entry);
            for k in 0..4 {
                (cl[c + k], z[c + k]) = DecisionTable::decode(table.entries[idx[k] as usize]);
            }
        }
    }
    done
}

/// One row through the fastest kernel this CPU has.
fn classify_row(table: &DecisionTable, row: &Row, lim: Limits, cl: &mut [u8], z: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let from = classify_row_sse2(table, row, lim, cl, z);
    #[cfg(not(target_arch = "x86_64"))]
    let from = 0;
    classify_row_scalar(table, row, lim, from, cl, z);
}

/// A profile prepared for per-pixel classification; build once, use for many scans.
pub struct MaterialClassifier {
    profile: MaterialProfile,
    table: DecisionTable,
}

impl MaterialClassifier {
    /// Prepares `profile`'s decision table (a few milliseconds).
    pub fn new(profile: MaterialProfile) -> Self {
        let table = DecisionTable::new(&profile);
        Self { profile, table }
    }

    /// The profile it classifies with.
    pub fn profile(&self) -> &MaterialProfile {
        &self.profile
    }

    /// See [`classify`].
    pub fn classify(&self, att: &AttenuationImage, smoothing_radius: usize) -> MaterialMap {
        classify_with(att, &self.profile, &self.table, smoothing_radius)
    }
}

/// Classifies every pixel of a dual-energy attenuation image. Single-energy images get
/// air / unclassified / impenetrable only. Dead pixels are impenetrable (no signal); saturated
/// pixels are air.
///
/// At MV energies the classes differ by a few percent in R while a pixel's R carries about
/// 1% photon noise, so R is taken from attenuations averaged over a `(2r+1)^2` window
/// (`smoothing_radius` r; 2 is a 5x5 window). Air and impenetrable are decided per pixel.
pub fn classify(att: &AttenuationImage, profile: &MaterialProfile, smoothing_radius: usize) -> MaterialMap {
    classify_with(att, profile, &DecisionTable::new(profile), smoothing_radius)
}

fn classify_with(
    att: &AttenuationImage,
    profile: &MaterialProfile,
    table: &DecisionTable,
    smoothing_radius: usize,
) -> MaterialMap {
    let dim = att.high.dim();
    let mut class = Array2::<u8>::zeros(dim);
    let mut z_eff = Array2::<f32>::zeros(dim);
    let air_max = profile.air_max_attenuation;
    let imp_min = profile.impenetrable_min_attenuation;
    let Some(low) = &att.low else {
        Zip::from(&mut class).and(&att.high).and(&att.flags).par_for_each(|c, &a, &f| {
            *c = if f & flags::SATURATED != 0 || a < air_max {
                MaterialClass::Air
            } else if f & flags::DEAD != 0 || a > imp_min {
                MaterialClass::Impenetrable
            } else {
                MaterialClass::Unclassified
            } as u8;
        });
        return MaterialMap { class, z_eff };
    };
    let (rows, cols) = dim;
    let radius = smoothing_radius;
    let high = att.high.as_slice().expect("standard layout");
    let low = low.as_slice().expect("standard layout");
    let fl = att.flags.as_slice().expect("standard layout");
    // Window widths per column (shrunk at the borders), for the mean A_high that picks the LUT bin.
    let inv_width: Vec<f32> =
        (0..cols).map(|c| 1.0 / ((c + radius + 1).min(cols) - c.saturating_sub(radius)) as f32).collect();
    const BAND: usize = 32;
    let limits = Limits { air_max, imp_min, low_imp_min: imp_min * 1.5 };
    let class_s = class.as_slice_mut().expect("standard layout");
    let z_s = z_eff.as_slice_mut().expect("standard layout");
    class_s.par_chunks_mut(BAND * cols).zip(z_s.par_chunks_mut(BAND * cols)).enumerate().for_each(
        |(band, (cl, zz))| {
            let r0 = band * BAND;
            let r1 = (r0 + BAND).min(rows);
            // Horizontal window sums of the band's rows plus a halo of `radius` rows.
            let (h0, h1) = (r0.saturating_sub(radius), (r1 + radius).min(rows));
            let mut hsum_h = vec![0f32; (h1 - h0) * cols];
            let mut hsum_l = vec![0f32; (h1 - h0) * cols];
            for r in h0..h1 {
                let o = (r - h0) * cols;
                window_sum(&high[r * cols..(r + 1) * cols], &mut hsum_h[o..o + cols], radius);
                window_sum(&low[r * cols..(r + 1) * cols], &mut hsum_l[o..o + cols], radius);
            }
            let mut sh = vec![0f32; cols];
            let mut sl = vec![0f32; cols];
            for r in r0..r1 {
                let (w0, w1) = (r.saturating_sub(radius), (r + radius + 1).min(rows));
                sh.fill(0.0);
                sl.fill(0.0);
                for k in w0..w1 {
                    let o = (k - h0) * cols;
                    sh.iter_mut().zip(&hsum_h[o..o + cols]).for_each(|(a, b)| *a += b);
                    sl.iter_mut().zip(&hsum_l[o..o + cols]).for_each(|(a, b)| *a += b);
                }
                let i0 = r * cols;
                let row = Row {
                    high: &high[i0..i0 + cols],
                    low: &low[i0..i0 + cols],
                    flags: &fl[i0..i0 + cols],
                    sum_high: &sh,
                    sum_low: &sl,
                    inv_width: &inv_width,
                    inv_height: 1.0 / (w1 - w0) as f32,
                };
                let out = (r - r0) * cols..(r - r0 + 1) * cols;
                classify_row(table, &row, limits, &mut cl[out.clone()], &mut zz[out]);
            }
        },
    );
    MaterialMap { class, z_eff }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn linac_references() -> Vec<ReferenceMeasurement> {
        effective_energy_references(SourceKind::Linac)
    }

    #[test]
    fn builds_a_profile_and_classifies_reference_blocks() {
        let refs = linac_references();
        let p = MaterialProfile::from_references("test-linac", &refs, &ProfileBuildOptions::default()).unwrap();
        // At MeV energies Compton scattering dominates and pair production (growing with
        // energy, as Z^2) lowers R for heavy elements: R falls with Z.
        assert!(!p.r_increases_with_z);
        let classify_one = |name: &str| {
            let m = refs.iter().find(|m| m.material == name && m.a_high > 0.3).unwrap();
            p.classify(m.a_high, m.a_low)
        };
        assert_eq!(classify_one("carbon").0, MaterialClass::Organic);
        assert_eq!(classify_one("water").0, MaterialClass::Organic);
        assert_eq!(classify_one("aluminium").0, MaterialClass::Inorganic);
        assert_eq!(classify_one("iron").0, MaterialClass::Metal);
        let (_, z_al) = classify_one("aluminium");
        assert!((z_al - 13.0).abs() < 0.5, "{z_al}");
        assert_eq!(p.classify(0.01, 0.012).0, MaterialClass::Air);
        assert_eq!(p.classify(8.0, 9.0).0, MaterialClass::Impenetrable);
    }

    #[test]
    fn lut_classification_agrees_with_the_exact_curves() {
        let p = MaterialProfile::from_references("t", &linac_references(), &ProfileBuildOptions::default()).unwrap();
        let (rows, cols) = (40, 60);
        let high = Array2::from_shape_fn((rows, cols), |(r, _)| 0.06 + r as f32 * 0.17);
        let low = Array2::from_shape_fn((rows, cols), |(r, c)| high[[r, c]] * (1.08 + 0.0025 * c as f32));
        let att = AttenuationImage {
            flags: Array2::zeros((rows, cols)),
            max_attenuation: 11.5,
            air_high: ndarray::Array1::zeros(rows),
            dark_high: ndarray::Array1::zeros(rows),
            high,
            low: Some(low),
        };
        let map = classify(&att, &p, 0);
        let mut disagree = 0;
        for ((r, c), &cls) in map.class.indexed_iter() {
            let (exact, z) = p.classify(att.high[[r, c]], att.low.as_ref().unwrap()[[r, c]]);
            if exact as u8 != cls {
                disagree += 1;
            }
            if exact != MaterialClass::Impenetrable {
                // Between iron and lead R barely moves with Z, so the table's R step shows more there.
                assert!((z - map.z_eff[[r, c]]).abs() < 0.3 + 0.02 * z, "z {z} vs {}", map.z_eff[[r, c]]);
            }
        }
        // Only pixels within one LUT bin of a boundary may differ.
        assert!(disagree * 100 < rows * cols, "{disagree} of {}", rows * cols);
    }

    /// Naive reference: mean over a `(2r+1)` square window, shrunk at the borders.
    fn box_mean(a: &Array2<f32>, radius: usize) -> Array2<f32> {
        let (rows, cols) = a.dim();
        Array2::from_shape_fn((rows, cols), |(r, c)| {
            let (r0, r1) = (r.saturating_sub(radius), (r + radius + 1).min(rows));
            let (c0, c1) = (c.saturating_sub(radius), (c + radius + 1).min(cols));
            let w = a.slice(ndarray::s![r0..r1, c0..c1]);
            w.sum() / w.len() as f32
        })
    }

    #[test]
    fn smoothed_classification_matches_exact_curves_on_window_means() {
        let p = MaterialProfile::from_references("t", &linac_references(), &ProfileBuildOptions::default()).unwrap();
        let (rows, cols) = (70, 90);
        // A checkerboard of organic-like and iron-like R with a noise-like ripple.
        let high = Array2::from_shape_fn((rows, cols), |(r, c)| {
            0.4 + 0.05 * ((r * 7 + c * 3) % 5) as f32 + 0.02 * (c / 9) as f32
        });
        let low = Array2::from_shape_fn((rows, cols), |(r, c)| {
            let base = if (r / 20 + c / 30) % 2 == 0 { 1.166 } else { 1.145 };
            high[[r, c]] * (base + 0.004 * (((r * 13 + c * 5) % 7) as f32 - 3.0))
        });
        let att = AttenuationImage {
            flags: Array2::zeros((rows, cols)),
            max_attenuation: 11.5,
            air_high: ndarray::Array1::zeros(rows),
            dark_high: ndarray::Array1::zeros(rows),
            high: high.clone(),
            low: Some(low.clone()),
        };
        for radius in [0usize, 1, 2, 4] {
            let map = classify(&att, &p, radius);
            let (mh, ml) = (box_mean(&high, radius), box_mean(&low, radius));
            let mut disagree = 0;
            for ((r, c), &cls) in map.class.indexed_iter() {
                let (exact, z) = p.classify(mh[[r, c]], ml[[r, c]]);
                disagree += (exact as u8 != cls) as usize;
                assert!((z - map.z_eff[[r, c]]).abs() < 0.5, "radius {radius} r{r} c{c}: {z} vs {}", map.z_eff[[r, c]]);
            }
            assert!(disagree * 50 < rows * cols, "radius {radius}: {disagree} disagree");
        }
    }

    #[test]
    fn vector_row_kernel_matches_the_scalar_one_pixel_for_pixel() {
        use rand::{RngExt, SeedableRng};
        let p = fallback_profile(SourceKind::Linac);
        let table = DecisionTable::new(&p);
        let lim = Limits {
            air_max: p.air_max_attenuation,
            imp_min: p.impenetrable_min_attenuation,
            low_imp_min: p.impenetrable_min_attenuation * 1.5,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // 1,003 pixels (not a multiple of 4): air, cargo, impenetrable, every flag, zero and
        // negative window sums, NaN and infinities.
        let n = 1003;
        let specials = [0.0f32, -0.0, 1e-9, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30];
        let mut pick = |lo: f32, hi: f32| -> f32 {
            if rng.random_range(0..10) == 0 {
                specials[rng.random_range(0..specials.len())]
            } else {
                rng.random_range(lo..hi)
            }
        };
        let high: Vec<f32> = (0..n).map(|_| pick(-0.1, 9.0)).collect();
        let low: Vec<f32> = high.iter().map(|&h| h * 1.0 + pick(-0.3, 0.3)).collect();
        let sum_high: Vec<f32> = high.iter().map(|&h| 25.0 * h + pick(-1.0, 1.0)).collect();
        let sum_low: Vec<f32> = low.iter().map(|&l| 25.0 * l + pick(-1.0, 1.0)).collect();
        let inv_width: Vec<f32> = (0..n).map(|c| if c < 2 || c > n - 3 { 1.0 / 4.0 } else { 1.0 / 5.0 }).collect();
        let flag_values = [0u8, flags::DEAD, flags::SATURATED, flags::FLOOR, flags::DEAD | flags::FLOOR, 7];
        let fl: Vec<u8> =
            (0..n).map(|_| if rng.random_range(0..8) == 0 { flag_values[rng.random_range(0..6)] } else { 0 }).collect();
        let row = Row {
            high: &high,
            low: &low,
            flags: &fl,
            sum_high: &sum_high,
            sum_low: &sum_low,
            inv_width: &inv_width,
            inv_height: 0.2,
        };
        let (mut cl_a, mut z_a) = (vec![0u8; n], vec![0f32; n]);
        let (mut cl_b, mut z_b) = (vec![9u8; n], vec![-1f32; n]);
        classify_row_scalar(&table, &row, lim, 0, &mut cl_a, &mut z_a);
        classify_row(&table, &row, lim, &mut cl_b, &mut z_b);
        assert_eq!(cl_a, cl_b);
        assert_eq!(
            z_a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            z_b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let kinds: std::collections::BTreeSet<u8> = cl_a.iter().copied().collect();
        assert!(kinds.len() >= 4, "the row exercises air, impenetrable and material classes: {kinds:?}");
    }

    #[test]
    fn window_sums_match_naive_sums() {
        let v: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32).collect();
        for radius in [0usize, 1, 3, 60] {
            let mut out = vec![0f32; v.len()];
            window_sum(&v, &mut out, radius);
            for c in 0..v.len() {
                let naive: f32 = v[c.saturating_sub(radius)..(c + radius + 1).min(v.len())].iter().sum();
                assert!((out[c] - naive).abs() < 1e-3, "radius {radius} c {c}");
            }
        }
    }

    #[test]
    fn tube_fallback_has_r_rising_with_z_and_sorts_blocks() {
        let p = fallback_profile(SourceKind::Tube);
        assert!(p.r_increases_with_z);
        let refs = effective_energy_references(SourceKind::Tube);
        for (name, want) in [
            ("carbon", MaterialClass::Organic),
            ("aluminium", MaterialClass::Inorganic),
            ("iron", MaterialClass::Metal),
        ] {
            let m = refs.iter().find(|m| m.material == name && m.a_high > 0.2).unwrap();
            assert_eq!(p.classify(m.a_high, m.a_low).0, want, "{name}");
        }
    }

    #[test]
    fn missing_boundary_materials_are_reported() {
        let refs: Vec<_> = linac_references().into_iter().filter(|m| m.z_eff < 20.0).collect();
        let err = MaterialProfile::from_references("t", &refs, &ProfileBuildOptions::default()).unwrap_err();
        assert!(err.to_string().contains("Z = 20"), "{err}");
        let bad = vec![ReferenceMeasurement {
            material: "x".into(),
            z_eff: 6.0,
            thickness_mm: 1.0,
            a_high: f32::NAN,
            a_low: 1.0,
        }];
        assert!(MaterialProfile::from_references("t", &bad, &ProfileBuildOptions::default()).is_err());
    }

    #[test]
    fn profile_json_round_trips_and_validates() {
        let p = MaterialProfile::from_references("t", &linac_references(), &ProfileBuildOptions::default()).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back = MaterialProfile::from_json(&json, std::path::Path::new("p.json")).unwrap();
        assert_eq!(back, p);
        let broken = json.replace("\"schema_version\":1", "\"schema_version\":7");
        assert!(MaterialProfile::from_json(&broken, std::path::Path::new("p.json")).is_err());
    }
}
