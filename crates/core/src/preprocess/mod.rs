//! Preprocessing: calibration to attenuation, material discrimination, officer views,
//! resampling to a model's pixel pitch, tiles.

pub mod calibration;
pub mod materials;
pub mod registration;
pub mod render;
pub mod resample;
pub mod tiles;
pub mod views;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scan::{Scan, ScannerRef};
use calibration::{AttenuationImage, CalibrationOptions};
use materials::{MaterialMap, MaterialProfile, ProfileError};

/// Why a scan could not be preprocessed: its planes, its material profile, or its tiles.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The scan's planes or calibration.
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    /// The material profile the scan names or the options give.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The tiling or channel recipe.
    #[error(transparent)]
    Tile(#[from] tiles::TileError),
}

/// Settings for [`preprocess`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessOptions {
    /// Counts to attenuation: transmission floor, air estimate, dead-row repair.
    pub calibration: CalibrationOptions,
    /// A profile file that overrides the one the scan names.
    pub profile: Option<PathBuf>,
    /// Half-width of the window R-values are averaged over before classification (see
    /// [`materials::classify`]).
    pub material_smoothing_radius: usize,
    /// Low-energy plane registration (interlaced linacs); see [`registration`].
    pub registration: registration::RegistrationOptions,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            calibration: CalibrationOptions::default(),
            profile: None,
            material_smoothing_radius: 2,
            registration: registration::RegistrationOptions::default(),
        }
    }
}

/// A calibrated scan with its material map.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// The calibrated attenuation planes and pixel flags.
    pub attenuation: AttenuationImage,
    /// Material class and effective Z per pixel.
    pub materials: MaterialMap,
    /// The profile the materials were classified with.
    pub profile: MaterialProfile,
    /// The low plane's measured lag and whether it was corrected; `None` for single-energy
    /// scans, scans without edges to measure on, and registration turned off.
    pub registration: Option<registration::EnergyRegistration>,
}

/// Calibrates and classifies a scan.
pub fn preprocess(scan: &Scan, opts: &PreprocessOptions) -> Result<Preprocessed, crate::preprocess::PreprocessError> {
    let profile = match &opts.profile {
        Some(p) => MaterialProfile::load(p)?,
        None => resolve_profile(scan)?,
    };
    let mut attenuation = calibration::calibrate(scan, &opts.calibration)?;
    let registration = registration::register_energies(&mut attenuation, &opts.registration);
    let materials = classifier_for(&profile).classify(&attenuation, opts.material_smoothing_radius);
    Ok(Preprocessed { attenuation, materials, profile, registration })
}

/// The prepared classifier for `profile`, from a small process-wide cache: building its
/// decision table costs a few milliseconds, and a stream of scans from one scanner shares
/// one profile.
fn classifier_for(profile: &MaterialProfile) -> std::sync::Arc<materials::MaterialClassifier> {
    use std::sync::{Arc, Mutex};
    const CAPACITY: usize = 8;
    static CACHE: Mutex<Vec<Arc<materials::MaterialClassifier>>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = cache.iter().position(|c| c.profile() == profile) {
        let hit = cache.remove(i);
        cache.push(hit.clone());
        return hit;
    }
    let built = Arc::new(materials::MaterialClassifier::new(profile.clone()));
    if cache.len() >= CAPACITY {
        cache.remove(0);
    }
    cache.push(built.clone());
    built
}

/// The profile a scan names: inline, a built-in name, or `<name>.json` beside the scan
/// descriptor, in its parent folder, or in a `profiles/` folder of either. No name: the
/// fallback for the scan's source kind.
pub fn resolve_profile(scan: &Scan) -> Result<MaterialProfile, ProfileError> {
    let kind = scan.descriptor.source.kind;
    match &scan.descriptor.scanner {
        None => Ok(materials::fallback_profile(kind)),
        Some(ScannerRef::Inline(v)) => MaterialProfile::from_value(v, &scan.display_name()),
        Some(ScannerRef::Named(name)) => {
            for builtin in [materials::SourceKind::Linac, materials::SourceKind::Tube] {
                let p = materials::fallback_profile(builtin);
                if p.name == *name {
                    return Ok(p);
                }
            }
            let origin = scan.origin.clone().unwrap_or_default();
            let dir = origin.parent().unwrap_or(Path::new("."));
            let file = if name.ends_with(".json") { name.clone() } else { format!("{name}.json") };
            let mut searched = Vec::new();
            for base in [Some(dir), dir.parent()].into_iter().flatten() {
                for candidate in [base.join(&file), base.join("profiles").join(&file)] {
                    if candidate.is_file() {
                        return MaterialProfile::load(&candidate);
                    }
                    searched.push(candidate);
                }
            }
            Err(ProfileError::Invalid {
                reason: format!(
                    "{}: scanner profile `{name}` not found; looked in {}",
                    origin.display(),
                    searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifiers_are_shared_per_profile_and_the_cache_stays_bounded() {
        let linac = materials::fallback_profile(materials::SourceKind::Linac);
        let a = classifier_for(&linac);
        let b = classifier_for(&linac.clone());
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        for i in 0..20 {
            let mut p = linac.clone();
            p.name = format!("variant-{i}");
            let c = classifier_for(&p);
            assert_eq!(c.profile().name, p.name);
        }
        let tube = classifier_for(&materials::fallback_profile(materials::SourceKind::Tube));
        assert!(tube.profile().r_increases_with_z);
    }
}
