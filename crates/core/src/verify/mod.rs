//! Declared-cargo verification: measures the load from the calibrated dual-energy scan (mass,
//! material mix, fill, density profile, homogeneity) and checks it against the manifest in
//! the scan descriptor: `weight_mismatch`, `commodity_mismatch`, `undeclared_goods` and
//! `not_empty`. Physics only, no model. Every check ends passed, flagged or skipped with a
//! stated reason; a bad manifest never stops the rest of the inspection.

pub mod checks;
pub mod measure;
pub mod reference;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::preprocess::calibration::AttenuationImage;
use crate::preprocess::materials::MaterialMap;
use crate::scan::Scan;
pub use checks::{CheckKind, CheckResult, Outcome, RegionEvidence};
pub use measure::{CargoMeasures, CargoRegion, MeasureError, Slice};
pub use reference::{CommodityReference, ReferenceError, ReferenceLine};

/// Settings of the `[verify]` section of the pipeline config. Every key has a default, so
/// configs written before verification existed still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// Run verification in the inspection pipeline.
    pub enabled: bool,
    /// Extra commodity reference lines (TOML, same format as `datasets/hs_reference.toml`),
    /// relative to the config file; they add to and override the built-in lines.
    pub reference: Option<PathBuf>,
    /// Relative tolerance of the weight check: the estimate may differ from the declared gross
    /// mass by this share (set from the method's measured error, docs/verification.md).
    pub weight_tolerance: f64,
    /// Absolute slack of the weight check, kg (light loads: the estimate's absolute noise).
    pub weight_slack_kg: f64,
    /// A container declared empty is flagged when its estimated load exceeds this, kg.
    pub empty_max_kg: f64,
    /// Undeclared goods: least length of a differing part of the load, m.
    pub undeclared_min_length_m: f64,
    /// Undeclared goods: density ratio between two parts of the load that counts as different.
    pub undeclared_density_ratio: f64,
    /// Undeclared goods: difference in class mix (half the L1 distance, 0..1) that counts.
    pub undeclared_mix_distance: f64,
    /// Commodity check: apparent density may leave the reference range by this factor.
    pub density_margin: f64,
    /// Score given to a flagged check's finding (weighted as `contraband` by the decision).
    pub finding_score: f32,
    /// Representative material (attenuation table name) of organic, mixed, inorganic and metal
    /// pixels for the attenuation-to-mass curves.
    pub class_materials: [String; 4],
    /// Container structure left after the row baseline (cross members, floor details), per
    /// metre of interior length, kg; measured on empty containers (docs/verification.md).
    pub structure_kg_per_m: f64,
    /// Internal width of the container, m (ISO 668 dry vans: 2.35 m).
    pub internal_width_m: f64,
    /// Length of the ISO corner fittings from the container's outer end, m: the interior starts there.
    pub end_inset_m: f64,
    /// Thickness of the end wall structure from the outer end, m (load can start here).
    pub end_wall_m: f64,
    /// A vehicle shorter than this, m, holds no container to measure.
    pub min_container_length_m: f64,
    /// The cargo region's floor is looked for at least this far below its top, m.
    pub min_interior_height_m: f64,
    /// High-energy attenuation below which a pixel is air.
    pub air_attenuation: f32,
    /// The chassis band under the floor: its low-quantile attenuation exceeds this.
    pub chassis_band_attenuation: f32,
    /// Per row, the container-only baseline is the mean of columns within `baseline_margin` of
    /// this quantile of the row.
    pub baseline_quantile: f64,
    /// How far above that quantile (attenuation) a column may read and still count as the
    /// container alone, free of load.
    pub baseline_margin: f32,
    /// Areal density above which a pixel holds load, g/cm^2.
    pub occupied_areal_g_cm2: f64,
    /// Share of a column's height that must hold load for the column to count as loaded.
    pub occupied_column_share: f64,
    /// Slice length of the density profile, m.
    pub slice_m: f64,
    /// Share of a slice's area that must hold load for it to count in the profile checks.
    pub loaded_slice_occupancy: f64,
    /// Autocorrelation peak above which the load counts as repeated packing.
    pub repetition_threshold: f64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            reference: None,
            weight_tolerance: 0.15,
            weight_slack_kg: 300.0,
            empty_max_kg: 250.0,
            undeclared_min_length_m: 1.0,
            undeclared_density_ratio: 2.0,
            undeclared_mix_distance: 0.5,
            density_margin: 1.1,
            finding_score: 0.6,
            class_materials: ["cellulose", "bone", "glass", "steel"].map(String::from),
            structure_kg_per_m: 12.2,
            internal_width_m: 2.35,
            end_inset_m: 0.17,
            end_wall_m: 0.08,
            min_container_length_m: 2.5,
            min_interior_height_m: 1.5,
            air_attenuation: 0.05,
            chassis_band_attenuation: 2.0,
            baseline_quantile: 0.01,
            baseline_margin: 0.1,
            occupied_areal_g_cm2: 3.0,
            occupied_column_share: 0.1,
            slice_m: 0.5,
            loaded_slice_occupancy: 0.15,
            repetition_threshold: 0.5,
        }
    }
}

/// Why a `[verify]` section is refused: the key and the rule it breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyConfigError {
    /// A key that must be a finite number above 0 is not.
    #[error("verify.{0} must be finite and > 0")]
    NotPositive(&'static str),
    /// A key that must be a finite number of at least 0 is not.
    #[error("verify.{0} must be finite and >= 0")]
    Negative(&'static str),
    /// A key that is a share or a score (0..1) is outside [0, 1].
    #[error("verify.{0} must be in [0, 1]")]
    NotAShare(&'static str),
    /// `air_attenuation`, `chassis_band_attenuation` or `baseline_margin` is not finite (or the
    /// margin is negative).
    #[error("verify: attenuation thresholds must be finite")]
    AttenuationThresholds,
    /// The embedded attenuation table the class materials are looked up in does not load.
    #[error(transparent)]
    Table(crate::physics::PhysicsError),
    /// A `class_materials` entry is not in the attenuation table. The message already carries
    /// the physics error, so it is not a `source` (a chained report would say it twice).
    #[error("verify.class_materials: {0}")]
    ClassMaterial(crate::physics::PhysicsError),
}

/// `PipelineConfig::check` (inspect) still gathers its reasons as strings.
impl VerifyConfig {
    /// Checks every key's range and that the class materials are in the attenuation table.
    pub fn check(&self) -> Result<(), VerifyConfigError> {
        let pos = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(VerifyConfigError::NotPositive(name)) }
        };
        pos("weight_tolerance", self.weight_tolerance)?;
        pos("undeclared_min_length_m", self.undeclared_min_length_m)?;
        pos("undeclared_density_ratio", self.undeclared_density_ratio - 1.0)?;
        pos("density_margin", self.density_margin)?;
        pos("internal_width_m", self.internal_width_m)?;
        pos("slice_m", self.slice_m)?;
        pos("min_container_length_m", self.min_container_length_m)?;
        pos("min_interior_height_m", self.min_interior_height_m)?;
        for (name, v) in [
            ("weight_slack_kg", self.weight_slack_kg),
            ("empty_max_kg", self.empty_max_kg),
            ("structure_kg_per_m", self.structure_kg_per_m),
            ("end_inset_m", self.end_inset_m),
            ("end_wall_m", self.end_wall_m),
            ("occupied_areal_g_cm2", self.occupied_areal_g_cm2),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(VerifyConfigError::Negative(name));
            }
        }
        for (name, v) in [
            ("undeclared_mix_distance", self.undeclared_mix_distance),
            ("baseline_quantile", self.baseline_quantile),
            ("occupied_column_share", self.occupied_column_share),
            ("loaded_slice_occupancy", self.loaded_slice_occupancy),
            ("repetition_threshold", self.repetition_threshold),
            ("finding_score", f64::from(self.finding_score)),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(VerifyConfigError::NotAShare(name));
            }
        }
        let finite = self.air_attenuation.is_finite() && self.chassis_band_attenuation.is_finite();
        if !(finite && self.baseline_margin.is_finite() && self.baseline_margin >= 0.0) {
            return Err(VerifyConfigError::AttenuationThresholds);
        }
        let table = crate::physics::AttenuationTable::embedded().map_err(VerifyConfigError::Table)?;
        for m in &self.class_materials {
            table.id(m).map_err(VerifyConfigError::ClassMaterial)?;
        }
        Ok(())
    }
}

/// What verification found on one scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerificationResult {
    /// The load as measured; `None` when it could not be measured (see `measure_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measures: Option<CargoMeasures>,
    /// Why the load could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure_error: Option<String>,
    /// Every check, with its outcome.
    pub checks: Vec<CheckResult>,
}

impl VerificationResult {
    /// The result of check `kind`.
    pub fn check(&self, kind: CheckKind) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == kind)
    }

    /// The checks that flagged the scan.
    pub fn flagged(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Flagged)
    }
}

/// Measures the load and runs every check. Never fails: what cannot be done is a skipped
/// check with its reason.
pub fn verify(
    scan: &Scan,
    attenuation: &AttenuationImage,
    materials: &MaterialMap,
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> VerificationResult {
    let pitch = &scan.descriptor.pixel_pitch_mm;
    let measured = measure::ArealDensityModel::for_source(&scan.descriptor.source, cfg).and_then(|model| {
        let region = measure::find_cargo_region(attenuation, pitch, cfg)?;
        Ok(measure::measure(attenuation, materials, pitch, region, &model, cfg))
    });
    let (measures, measure_error) = match measured {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let checks =
        checks::run(scan.descriptor.manifest.as_ref(), measures.as_ref(), measure_error.as_deref(), reference, cfg);
    VerificationResult { measures, measure_error, checks }
}
