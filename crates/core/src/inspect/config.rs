//! The pipeline config (TOML, schema version 1): which models run, how tiles are cut and
//! merged, and the decision rule. `models/pipeline.default.toml` is the documented default.

use crate::detect::spec::ThreatCategory;
use crate::detect::{MergeConfig, SessionConfig};
use crate::preprocess::PreprocessOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The pipeline config schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One model to run over every scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The `.onnx` file, relative to the config file.
    pub path: PathBuf,
    /// Its spec; absent: a sidecar beside the model, else inferred from the model.
    #[serde(default)]
    pub spec: Option<PathBuf>,
    /// Tiles per run when the model's batch dimension is dynamic.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Whether the model runs; a disabled entry is kept in the file but not loaded.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Findings of this model scoring below this are left out of the inspection. Evaluation
    /// configs keep every box (ROC and mAP need the low scores); officer-facing configs show
    /// the ones that can move the decision. Absent: the spec's thresholds alone decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// Only these classes of the model become findings; its other outputs are dropped after
    /// decoding, before the merge. A detector that is better at some classes runs beside one
    /// that is better at the rest. Absent: every class. A name the model's spec lacks is an
    /// error at load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Score threshold (0..=1) of every class of a spec-less model, replacing the inferred
    /// one (0.25). A model with a spec file sets it in its spec: giving it here is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// NMS IoU threshold (0..=1) of a spec-less model, replacing the inferred one (0.7 for
    /// Ultralytics exports, else 0.45). As `score_threshold`, for spec-less models only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iou_threshold: Option<f32>,
}

fn default_batch() -> usize {
    8
}
fn yes() -> bool {
    true
}

/// How tiles are cut (the tile size is the model's input size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TilingConfig {
    /// Share of a tile's width (0..0.95) that neighbouring tiles overlap along the scan.
    pub overlap_width_ratio: f32,
    /// Share of a tile's height (0..0.95) that neighbouring tiles overlap down the detector.
    pub overlap_height_ratio: f32,
    /// Skip tiles whose pixels are (nearly) all air: SAHI runs every slice, most of a
    /// container scan's margins are empty.
    pub skip_air_tiles: bool,
    /// High-energy attenuation below which a pixel counts as air.
    pub air_attenuation: f32,
    /// Fraction of non-air pixels below which a tile is skipped.
    pub min_content_fraction: f32,
    /// Also run each detector once on the whole scan shrunk to its input size, for objects
    /// larger than a tile.
    pub full_scan_pass: bool,
    /// Pixels from an interior tile edge within which a box counts as cut by it.
    pub edge_margin_px: f32,
}

impl Default for TilingConfig {
    fn default() -> Self {
        Self {
            overlap_width_ratio: 0.2,
            overlap_height_ratio: 0.2,
            skip_air_tiles: true,
            air_attenuation: 0.05,
            min_content_fraction: 0.002,
            full_scan_pass: false,
            edge_margin_px: 2.0,
        }
    }
}

/// Turning stitched anomaly maps into region findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Regions smaller than this many pixels are noise.
    pub min_region_px: usize,
    /// 8-connectivity joins diagonal neighbours; 4-connectivity does not.
    pub eight_connected: bool,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self { min_region_px: 16, eight_connected: true }
    }
}

/// The decision rule: `risk = max over findings of score x weight(threat)`;
/// `alarm` at or above `alarm_threshold`, `review` at or above `review_threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionConfig {
    /// Risk (0..=1) at or above which the scan goes to `review`.
    pub review_threshold: f32,
    /// Risk (0..=1) at or above which the scan raises an `alarm`; at least `review_threshold`.
    pub alarm_threshold: f32,
    /// Weight per threat category; missing categories weigh `default_weight`.
    pub threat_weights: BTreeMap<ThreatCategory, f32>,
    /// Weight of a threat category `threat_weights` does not list.
    pub default_weight: f32,
    /// A model that produced NaN or malformed outputs on this scan forces at least `review`:
    /// its silence cannot be trusted.
    pub review_on_dropped_outputs: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        use ThreatCategory::*;
        let threat_weights = [
            (Weapon, 1.0),
            (Explosive, 1.0),
            (Narcotics, 0.9),
            (Currency, 0.8),
            (Shielding, 0.8),
            (Tobacco, 0.7),
            (Alcohol, 0.6),
            (Contraband, 0.7),
            (Anomaly, 0.7),
            (Benign, 0.0),
            (Unknown, 0.5),
        ]
        .into_iter()
        .collect();
        Self {
            review_threshold: 0.3,
            alarm_threshold: 0.6,
            threat_weights,
            default_weight: 0.5,
            review_on_dropped_outputs: true,
        }
    }
}

impl DecisionConfig {
    /// The weight a finding's score is multiplied by for its threat category.
    pub fn weight(&self, threat: ThreatCategory) -> f32 {
        self.threat_weights.get(&threat).copied().unwrap_or(self.default_weight)
    }
}

/// The whole pipeline config: models, tiling, merging, anomaly regions, decision rule,
/// sessions, preprocessing and declared-cargo verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The models to run, in order (`[[models]]`).
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// How tiles are cut.
    #[serde(default)]
    pub tiling: TilingConfig,
    /// How boxes from overlapping tiles are merged.
    #[serde(default)]
    pub merge: MergeConfig,
    /// How anomaly maps become regions.
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    /// The clear / review / alarm rule.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// ONNX Runtime sessions: provider, threads, sessions per model.
    #[serde(default)]
    pub session: SessionConfig,
    /// Calibration, scanner profile override and material smoothing (the scan core's options).
    #[serde(default)]
    pub preprocess: PreprocessOptions,
    /// Declared-cargo verification against the manifest (all keys default).
    #[serde(default)]
    pub verify: crate::verify::VerifyConfig,
    /// ONNX Runtime library, relative to this file; used unless the runtime is already loaded
    /// (the `--ort-library` flag loads it first and so wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ort_library: Option<PathBuf>,
    /// Folder the model paths are relative to (the config's folder; not serialised).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Most bytes a pipeline config file may have: the shipped one is about 5 KiB, and TOML
/// costs many times its size in memory while it parses.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a pipeline config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read: missing, not a regular file, over
    /// [`MAX_CONFIG_BYTES`], not UTF-8. The message names the file.
    #[error("cannot read pipeline config {0}")]
    File(crate::io::FileError),
    /// The TOML does not parse, has unknown keys or a value of the wrong type.
    #[error("{}: invalid pipeline config: {reason}", .path.display())]
    Toml {
        /// The config file.
        path: PathBuf,
        /// Where and why, in words (`field merge.threshold: expected a number, ...`).
        reason: crate::io::SchemaError,
    },
    /// The config parses but a value is out of range ([`PipelineConfig::check`]).
    #[error("{}: invalid pipeline config: {error}", .path.display())]
    Invalid {
        /// The config file (`<pipeline config>` in its folder for a config built in code).
        path: PathBuf,
        /// The value at fault.
        error: ConfigCheckError,
    },
    /// A model's `classes` names a class its spec lacks.
    #[error("{}: invalid pipeline config: model {}: {error}", .path.display(), .model.display())]
    UnknownClass {
        /// The config file (`<pipeline config>` in its folder).
        path: PathBuf,
        /// The model file.
        model: PathBuf,
        /// The class and the names the spec has.
        error: UnknownClass,
    },
    /// Two input batches of a model would take more memory than allowed.
    #[error(
        "{}: invalid pipeline config: batches of {} x {} x {} x {} f32 need {} MiB, over the {} MiB limit; lower batch_size",
        .model.display(), .shape[0], .shape[1], .shape[2], .shape[3], .need_mib, .limit_mib
    )]
    BatchMemory {
        /// The model file.
        model: PathBuf,
        /// One batch's input shape, in the model's layout.
        shape: [usize; 4],
        /// Memory the two batches need, MiB.
        need_mib: u64,
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// The commodity reference of the manifest checks cannot be read.
    #[error("{}: invalid pipeline config: {error}", .path.display())]
    Reference {
        /// The config's folder.
        path: PathBuf,
        /// Why the reference failed.
        error: crate::verify::ReferenceError,
    },
}

/// A value of the pipeline config out of its range: what [`PipelineConfig::check`] finds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigCheckError {
    /// A schema version this build does not read.
    #[error("schema_version {found} (this build reads {SCHEMA_VERSION})")]
    SchemaVersion {
        /// The config's `schema_version`.
        found: u32,
    },
    /// Every model is disabled, or none is listed.
    #[error("no enabled [[models]]")]
    NoEnabledModel,
    /// A model's `min_score` outside 0..=1.
    #[error("model {}: min_score {min_score:?} outside 0..=1", .model.display())]
    MinScore {
        /// The model entry's path.
        model: PathBuf,
        /// Its `min_score`.
        min_score: Option<f32>,
    },
    /// A model's `score_threshold` or `iou_threshold` outside 0..=1.
    #[error("model {}: {key} {value} outside 0..=1", .model.display())]
    Threshold {
        /// The model entry's path.
        model: PathBuf,
        /// `score_threshold` or `iou_threshold`.
        key: &'static str,
        /// The value.
        value: f32,
    },
    /// A model's `classes` is empty.
    #[error("model {}: classes = [] keeps nothing; leave it out or set enabled = false", .model.display())]
    NoClasses {
        /// The model entry's path.
        model: PathBuf,
    },
    /// A model's `batch_size` outside 1..=1024 tiles.
    #[error("model {}: batch_size {batch_size} outside 1..=1024", .model.display())]
    BatchSize {
        /// The model entry's path.
        model: PathBuf,
        /// Its `batch_size`, tiles.
        batch_size: usize,
    },
    /// A tile overlap ratio outside [0, 0.95).
    #[error("tiling overlap ratio {ratio} outside [0, 0.95)")]
    Overlap {
        /// The ratio at fault.
        ratio: f32,
    },
    /// `min_content_fraction`, `air_attenuation` or `edge_margin_px` out of range.
    #[error("tiling: min_content_fraction in [0, 1], finite air_attenuation, edge_margin_px >= 0")]
    Tiling,
    /// `merge.threshold` outside [0, 1].
    #[error("merge.threshold {threshold} outside [0, 1]")]
    MergeThreshold {
        /// The configured threshold.
        threshold: f32,
    },
    /// Decision thresholds out of order or not finite.
    #[error("decision: need 0 <= review_threshold <= alarm_threshold")]
    DecisionThresholds,
    /// A threat weight negative or not finite.
    #[error("decision: threat weights must be finite and >= 0")]
    ThreatWeights,
    /// The `[verify]` table is out of range (its check's words).
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyConfigError),
}

/// A model entry's `classes` names a class the model's spec lacks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("classes names `{name}`, which its spec lacks (it has: {})", .have.join(", "))]
pub struct UnknownClass {
    /// The name in `classes`.
    pub name: String,
    /// The spec's class names, in class order.
    pub have: Vec<String>,
}

impl PipelineConfig {
    /// Reads a TOML config and checks it; model paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::io::read_text_capped(path, MAX_CONFIG_BYTES).map_err(ConfigError::File)?;
        let mut cfg: Self =
            crate::io::parse_toml(&text).map_err(|reason| ConfigError::Toml { path: path.into(), reason })?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.check().map_err(|source| ConfigError::Invalid { path: path.into(), error: source })?;
        Ok(cfg)
    }

    /// Sets the score and IoU thresholds (`Some` ones only) of every enabled model that has no
    /// spec file, neither named by its entry nor beside it: what `nii-atr inspect
    /// --score-threshold / --iou-threshold` do. Returns how many models it set.
    pub fn set_spec_less_thresholds(&mut self, score: Option<f32>, iou: Option<f32>) -> usize {
        let base = self.base_dir.clone();
        let mut set = 0;
        for m in self.models.iter_mut().filter(|m| m.enabled && m.spec.is_none()) {
            let path = if m.path.is_absolute() { m.path.clone() } else { base.join(&m.path) };
            if crate::detect::ModelSpec::sidecar_of(&path).is_some() {
                continue;
            }
            m.score_threshold = score.or(m.score_threshold);
            m.iou_threshold = iou.or(m.iou_threshold);
            set += 1;
        }
        set
    }

    /// Path of a model entry's file, resolved against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// Every value in its range, independent of any model or scan file.
    pub fn check(&self) -> Result<(), ConfigCheckError> {
        use ConfigCheckError as E;
        if self.schema_version != SCHEMA_VERSION {
            return Err(E::SchemaVersion { found: self.schema_version });
        }
        if !self.models.iter().any(|m| m.enabled) {
            return Err(E::NoEnabledModel);
        }
        if let Some(m) = self.models.iter().find(|m| m.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s))) {
            return Err(E::MinScore { model: m.path.clone(), min_score: m.min_score });
        }
        for m in &self.models {
            for (key, value) in [("score_threshold", m.score_threshold), ("iou_threshold", m.iou_threshold)] {
                if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                    return Err(E::Threshold { model: m.path.clone(), key, value });
                }
            }
        }
        if let Some(m) = self.models.iter().find(|m| m.classes.as_ref().is_some_and(|c| c.is_empty())) {
            return Err(E::NoClasses { model: m.path.clone() });
        }
        if let Some(m) = self.models.iter().find(|m| m.batch_size == 0 || m.batch_size > 1024) {
            return Err(E::BatchSize { model: m.path.clone(), batch_size: m.batch_size });
        }
        let t = &self.tiling;
        for r in [t.overlap_width_ratio, t.overlap_height_ratio] {
            if !(0.0..0.95).contains(&r) {
                return Err(E::Overlap { ratio: r });
            }
        }
        if !(0.0..=1.0).contains(&t.min_content_fraction)
            || !t.air_attenuation.is_finite()
            || t.edge_margin_px.is_nan()
            || t.edge_margin_px < 0.0
        {
            return Err(E::Tiling);
        }
        if !(0.0..=1.0).contains(&self.merge.threshold) {
            return Err(E::MergeThreshold { threshold: self.merge.threshold });
        }
        let d = &self.decision;
        if !(0.0 <= d.review_threshold && d.review_threshold <= d.alarm_threshold && d.alarm_threshold.is_finite()) {
            return Err(E::DecisionThresholds);
        }
        if d.threat_weights.values().chain([&d.default_weight]).any(|w| !w.is_finite() || *w < 0.0) {
            return Err(E::ThreatWeights);
        }
        self.verify.check().map_err(E::Verify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/pipeline.default.toml");
        let cfg = PipelineConfig::load(&path).unwrap();
        assert!(cfg.models.iter().any(|m| m.enabled));
        assert!(cfg.resolve(&cfg.models[0].path).is_file(), "default model path must exist");
        assert_eq!(cfg.decision.weight(ThreatCategory::Weapon), 1.0);
    }

    #[test]
    fn configs_without_verify_still_load_and_bad_verify_keys_are_rejected() {
        // A config written before declared-cargo verification existed: defaults apply.
        let base = "schema_version = 1\n[[models]]\npath = 'm.onnx'\n";
        let old: PipelineConfig = toml::from_str(base).unwrap();
        old.check().unwrap();
        assert_eq!(old.verify, crate::verify::VerifyConfig::default());
        assert!(old.verify.enabled);
        let tuned: PipelineConfig = toml::from_str(&format!("{base}[verify]\nweight_tolerance = 0.1\n")).unwrap();
        tuned.check().unwrap();
        assert_eq!(tuned.verify.weight_tolerance, 0.1);
        for bad in [
            "[verify]\nweight_tolerance = -0.1\n",
            "[verify]\nfinding_score = 2.0\n",
            "[verify]\nclass_materials = ['cellulose', 'bone', 'glass', 'unobtainium']\n",
        ] {
            let cfg: PipelineConfig = toml::from_str(&format!("{base}{bad}")).unwrap();
            assert!(cfg.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<PipelineConfig>(&format!("{base}[verify]\nweight_tolerence = 0.1\n")).is_err());
    }

    #[test]
    fn check_messages_read_as_before() {
        // Users and tests match on these words: they stay as they were when they were strings.
        let base = "schema_version = 1\n[[models]]\npath = 'm.onnx'\n";
        for (extra, want) in [
            ("min_score = 1.5\n", "model m.onnx: min_score Some(1.5) outside 0..=1"),
            ("classes = []\n", "model m.onnx: classes = [] keeps nothing; leave it out or set enabled = false"),
            ("batch_size = 0\n", "model m.onnx: batch_size 0 outside 1..=1024"),
            ("enabled = false\n", "no enabled [[models]]"),
            ("[tiling]\noverlap_height_ratio = 0.95\n", "tiling overlap ratio 0.95 outside [0, 0.95)"),
            (
                "[tiling]\nedge_margin_px = -1.0\n",
                "tiling: min_content_fraction in [0, 1], finite air_attenuation, edge_margin_px >= 0",
            ),
            ("[merge]\nthreshold = 2.0\n", "merge.threshold 2 outside [0, 1]"),
            (
                "[decision]\nreview_threshold = 0.9\nalarm_threshold = 0.5\n",
                "decision: need 0 <= review_threshold <= alarm_threshold",
            ),
            ("[decision]\ndefault_weight = -1.0\n", "decision: threat weights must be finite and >= 0"),
        ] {
            let cfg: PipelineConfig = toml::from_str(&format!("{base}{extra}")).unwrap();
            assert_eq!(cfg.check().unwrap_err().to_string(), want, "{extra}");
        }
        let mut cfg: PipelineConfig = toml::from_str(base).unwrap();
        cfg.schema_version = 7;
        assert_eq!(cfg.check().unwrap_err().to_string(), "schema_version 7 (this build reads 1)");
        let err = ConfigError::Invalid { path: "p.toml".into(), error: ConfigCheckError::Tiling };
        assert!(err.to_string().starts_with("p.toml: invalid pipeline config: tiling: "), "{err}");
        let unknown = UnknownClass { name: "knif".into(), have: vec!["knife".into(), "gun".into()] };
        let err = ConfigError::UnknownClass { path: "p.toml".into(), model: "m.onnx".into(), error: unknown };
        assert_eq!(
            err.to_string(),
            "p.toml: invalid pipeline config: model m.onnx: classes names `knif`, which its spec lacks (it has: knife, gun)"
        );
    }

    #[test]
    fn bad_configs_are_rejected() {
        let base = "schema_version = 1\n[[models]]\npath = 'm.onnx'\n";
        let ok: PipelineConfig = toml::from_str(base).unwrap();
        ok.check().unwrap();
        for (extra, why) in [
            ("[decision]\nreview_threshold = 0.9\nalarm_threshold = 0.5\n", "review above alarm"),
            ("[tiling]\noverlap_width_ratio = 1.0\n", "overlap 1"),
            ("[merge]\nthreshold = 2.0\n", "merge threshold"),
            ("[decision.threat_weights]\nweapon = -1.0\n", "negative weight"),
        ] {
            let cfg: PipelineConfig = toml::from_str(&format!("{base}{extra}")).unwrap();
            assert!(cfg.check().is_err(), "{why}");
        }
        let mut cfg = ok.clone();
        cfg.schema_version = 7;
        assert!(cfg.check().is_err());
        cfg = ok;
        cfg.models[0].enabled = false;
        assert!(cfg.check().is_err());
        assert!(toml::from_str::<PipelineConfig>(&format!("{base}typo_key = 1\n")).is_err());
    }
}
