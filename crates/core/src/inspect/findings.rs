//! The inspection result: findings with material evidence, the risk score and the decision.
//! Serialised as the versioned report JSON (see docs/inspection.md, "Inspection report").

use super::config::DecisionConfig;
use crate::detect::decode::DecodeStats;
use crate::detect::spec::{ResizeMode, ThreatCategory};
use crate::detect::{BoxXyxy, RunTimes, SpecSource};
use crate::preprocess::materials::{MaterialClass, MaterialMap};
use crate::preprocess::resample::Letterbox;
use crate::preprocess::tiles::Channel;
use ndarray::{Array2, s};
use serde::{Deserialize, Serialize};

/// The report schema version this build writes.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Where a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A box from a detector.
    Object,
    /// A connected region of a stitched anomaly map.
    AnomalyRegion,
    /// A tile (or merged tiles) a classifier flagged.
    TileClass,
    /// A declared-cargo check that flagged the load against the manifest (`verify`).
    ManifestCheck,
}

/// A box in millimetres: `x` along the vehicle (scan direction), `y` down the detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoxMm {
    /// Start along the scan, mm.
    pub x1: f32,
    /// Top, mm down the detector.
    pub y1: f32,
    /// End along the scan, mm.
    pub x2: f32,
    /// Bottom, mm down the detector.
    pub y2: f32,
}

impl BoxMm {
    /// A pixel box at `along_mm` x `vertical_mm` per pixel.
    pub fn from_px(b: &BoxXyxy, along_mm: f32, vertical_mm: f32) -> Self {
        Self { x1: b.x1 * along_mm, y1: b.y1 * vertical_mm, x2: b.x2 * along_mm, y2: b.y2 * vertical_mm }
    }
}

/// What the scan core says about the pixels inside a finding's box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaterialEvidence {
    /// Most frequent non-air class in the box (`air` when the box is empty of material).
    pub dominant_class: &'static str,
    /// Its share of the box's non-air pixels.
    pub dominant_fraction: f32,
    /// Mean effective Z over pixels where it was decided; `None` when none was.
    pub mean_z_eff: Option<f32>,
    /// Mean high-energy attenuation (`-ln` transmission) over the box.
    pub mean_attenuation: f32,
}

impl MaterialEvidence {
    /// Evidence within `bbox` (pixels, clipped to the scan).
    pub fn in_box(bbox: &BoxXyxy, attenuation: &Array2<f32>, materials: Option<&MaterialMap>) -> Self {
        let (rows, cols) = attenuation.dim();
        let b = bbox.clip(cols as f32, rows as f32);
        let (x0, y0) = (b.x1.floor() as usize, b.y1.floor() as usize);
        let (x1, y1) = ((b.x2.ceil() as usize).max(x0 + 1).min(cols), (b.y2.ceil() as usize).max(y0 + 1).min(rows));
        let (x0, y0) = (x0.min(x1.saturating_sub(1)), y0.min(y1.saturating_sub(1)));
        let att = attenuation.slice(s![y0..y1, x0..x1]);
        let mean_attenuation = if att.is_empty() { 0.0 } else { att.iter().sum::<f32>() / att.len() as f32 };
        let Some(m) = materials else {
            return Self { dominant_class: "unclassified", dominant_fraction: 1.0, mean_z_eff: None, mean_attenuation };
        };
        let mut counts = [0usize; 7];
        let (mut z_sum, mut z_n) = (0.0f64, 0usize);
        for (&c, &z) in m.class.slice(s![y0..y1, x0..x1]).iter().zip(m.z_eff.slice(s![y0..y1, x0..x1]).iter()) {
            counts[(c as usize).min(6)] += 1;
            if z > 0.0 {
                z_sum += z as f64;
                z_n += 1;
            }
        }
        let non_air: usize = counts[1..].iter().sum();
        let (best, n) =
            counts.iter().enumerate().skip(1).max_by_key(|(_, n)| **n).map(|(i, n)| (i, *n)).unwrap_or((0, 0));
        let (dominant_class, dominant_fraction) = if non_air == 0 {
            (MaterialClass::Air.name(), 1.0)
        } else {
            (
                MaterialClass::from_u8(best as u8).unwrap_or(MaterialClass::Unclassified).name(),
                n as f32 / non_air as f32,
            )
        };
        Self {
            dominant_class,
            dominant_fraction,
            mean_z_eff: (z_n > 0).then(|| (z_sum / z_n as f64) as f32),
            mean_attenuation,
        }
    }
}

/// Area, peak and mean of an anomaly region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionStats {
    /// Pixels in the region, in the scan's pixels.
    pub area_px: usize,
    /// Highest map value in the region.
    pub peak: f32,
    /// Mean map value over the region.
    pub mean: f32,
}

/// One thing an officer should look at: where, what, how sure, and the material inside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Where the finding comes from.
    pub kind: FindingKind,
    /// Index into the model's class list (0 for anomaly regions and manifest checks).
    pub class_id: u32,
    /// The class's name (`anomaly` for anomaly regions).
    pub class_name: String,
    /// What the class means for the officer.
    pub threat: ThreatCategory,
    /// Confidence, 0..=1.
    pub score: f32,
    /// The box in the scan's pixels.
    pub bbox_px: BoxXyxy,
    /// The box in millimetres.
    pub bbox_mm: BoxMm,
    /// Name of the model that found it.
    pub model: String,
    /// What the scan core says about the pixels inside the box.
    pub evidence: MaterialEvidence,
    /// Area, peak and mean of an anomaly region; absent for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionStats>,
    /// The manifest check behind a [`FindingKind::ManifestCheck`] finding, with its evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cargo_check: Option<crate::verify::CheckResult>,
}

/// What happens to the vehicle, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Risk below the review threshold: release.
    Clear,
    /// An officer looks at the images.
    Review,
    /// Physical examination.
    Alarm,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Clear => "clear",
            Self::Review => "review",
            Self::Alarm => "alarm",
        })
    }
}

/// What each model did on this scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRun {
    /// The spec's model name.
    pub name: String,
    /// The spec's model version.
    pub version: String,
    /// The model file.
    pub path: String,
    /// Execution provider it ran on (`cpu`, `cuda`, `tensorrt`).
    pub provider: &'static str,
    /// Where its spec came from: a file given or beside the model, or inferred from the model
    /// (`kind = "inferred"`, with what it was inferred from).
    pub spec_source: SpecSource,
    /// How this scan was fed: `tiles` (SAHI grid) or `letterbox` (whole scan in one input).
    pub input_mode: ResizeMode,
    /// The channels this scan was fed, in model order.
    pub channels: Vec<Channel>,
    /// The spec's default score threshold (after any pipeline-config or command-line override).
    pub score_threshold: f32,
    /// The NMS IoU threshold; absent for decoders without NMS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iou_threshold: Option<f32>,
    /// The letterbox of a letterboxed scan: scale, resized size and padding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letterbox: Option<Letterbox>,
    /// Tiles in the grid (1 for a letterboxed scan).
    pub tiles_total: usize,
    /// Tiles skipped by the air test (never sent to the model).
    pub tiles_skipped_air: usize,
    /// Model runs (batches, and the full-scan pass).
    pub runs: usize,
    /// Whether the whole scan was also run shrunk into one input.
    pub full_scan_pass: bool,
    /// `[rows, columns]` the scan was resampled to for this model, which was trained at
    /// another pixel pitch (the spec's `input.pixel_pitch_mm`); absent: the scan's own size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resampled_px: Option<[usize; 2]>,
    /// Candidates and pixels dropped for NaN or impossible values.
    pub dropped: DecodeStats,
    /// Findings it contributed.
    pub findings: usize,
}

/// Wall time per stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimings {
    /// Calibration and material classification.
    pub calibrate_ms: f64,
    /// Rendering the pseudo-colour view.
    pub render_ms: f64,
    /// Building input tensors (the part not hidden behind model runs).
    pub preprocess_ms: f64,
    /// Inside ONNX Runtime's `run`.
    pub ort_run_ms: f64,
    /// Copying outputs out of ONNX Runtime and decoding them.
    pub decode_ms: f64,
    /// Merging boxes into findings and gathering their evidence.
    pub merge_ms: f64,
    /// Declared-cargo verification (measures and manifest checks).
    pub verify_ms: f64,
    /// The whole inspection.
    pub total_ms: f64,
}

impl StageTimings {
    /// Adds a model's run and decode times.
    pub fn add_run(&mut self, t: &RunTimes) {
        self.ort_run_ms += t.ort_run.as_secs_f64() * 1e3;
        self.decode_ms += (t.extract + t.decode).as_secs_f64() * 1e3;
    }
}

/// The result of inspecting one scan: the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scan's id from its descriptor.
    pub scan_id: String,
    /// The scan file, when read from one.
    pub scan_path: Option<String>,
    /// Scan rows (pixels down the detector).
    pub rows: usize,
    /// Scan columns (pixels along the vehicle).
    pub columns: usize,
    /// Pixel pitch `[along, vertical]`, mm.
    pub pixel_pitch_mm: [f32; 2],
    /// Clear, review or alarm.
    pub decision: Decision,
    /// Highest weighted finding score, 0..=1.
    pub risk_score: f32,
    /// Why the decision is what it is, in words.
    pub reasons: Vec<String>,
    /// Every finding, best score first.
    pub findings: Vec<Finding>,
    /// What each model did, in config order.
    pub models: Vec<ModelRun>,
    /// Wall time per stage.
    pub timings: StageTimings,
    /// Declared-cargo verification: the load's measures and every manifest check with its
    /// outcome (passed, flagged, skipped with the reason); absent when `[verify]` is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cargo: Option<crate::verify::VerificationResult>,
    /// The low-energy plane's measured lag along the scan and whether preprocessing corrected
    /// it (interlaced linacs); absent for single-energy scans and with registration off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_registration: Option<crate::preprocess::registration::EnergyRegistration>,
}

/// Risk and decision from findings, model health and the configured rule.
pub fn decide(findings: &[Finding], models: &[ModelRun], cfg: &DecisionConfig) -> (f32, Decision, Vec<String>) {
    let mut reasons = Vec::new();
    let mut risk = 0.0f32;
    let mut top: Option<&Finding> = None;
    for f in findings {
        let r = (f.score * cfg.weight(f.threat)).clamp(0.0, 1.0);
        if r > risk {
            risk = r;
            top = Some(f);
        }
    }
    let mut decision = if risk >= cfg.alarm_threshold {
        Decision::Alarm
    } else if risk >= cfg.review_threshold {
        Decision::Review
    } else {
        Decision::Clear
    };
    if let Some(f) = top {
        reasons.push(format!(
            "top finding: {} ({:?}) score {:.2} from {} -> risk {:.2}",
            f.class_name, f.threat, f.score, f.model, risk
        ));
    }
    for m in models {
        let d = m.dropped;
        if d.non_finite + d.malformed > 0 {
            reasons.push(format!(
                "model {} dropped {} non-finite and {} malformed outputs",
                m.name, d.non_finite, d.malformed
            ));
            if cfg.review_on_dropped_outputs && decision == Decision::Clear {
                decision = Decision::Review;
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no findings".into());
    }
    (risk, decision, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(score: f32, threat: ThreatCategory) -> Finding {
        Finding {
            kind: FindingKind::Object,
            class_id: 0,
            class_name: "x".into(),
            threat,
            score,
            bbox_px: BoxXyxy::new(0.0, 0.0, 1.0, 1.0),
            bbox_mm: BoxMm { x1: 0.0, y1: 0.0, x2: 1.0, y2: 1.0 },
            model: "m".into(),
            evidence: MaterialEvidence {
                dominant_class: "air",
                dominant_fraction: 1.0,
                mean_z_eff: None,
                mean_attenuation: 0.0,
            },
            region: None,
            cargo_check: None,
        }
    }

    fn run(dropped: DecodeStats) -> ModelRun {
        ModelRun {
            name: "m".into(),
            version: String::new(),
            path: String::new(),
            provider: "cpu",
            spec_source: SpecSource::Inferred { from: crate::detect::spec::InferredFrom::Shapes },
            input_mode: ResizeMode::Tiles,
            channels: vec![Channel::Grey],
            score_threshold: 0.25,
            iou_threshold: Some(0.45),
            letterbox: None,
            tiles_total: 1,
            tiles_skipped_air: 0,
            runs: 1,
            full_scan_pass: false,
            resampled_px: None,
            dropped,
            findings: 0,
        }
    }

    #[test]
    fn decision_follows_weighted_risk() {
        let cfg = DecisionConfig::default();
        let ok = [run(DecodeStats::default())];
        assert_eq!(decide(&[], &ok, &cfg).1, Decision::Clear);
        assert_eq!(decide(&[finding(0.9, ThreatCategory::Weapon)], &ok, &cfg).1, Decision::Alarm);
        assert_eq!(decide(&[finding(0.5, ThreatCategory::Weapon)], &ok, &cfg).1, Decision::Review);
        // A confident benign class weighs nothing.
        let (risk, d, _) = decide(&[finding(0.99, ThreatCategory::Benign)], &ok, &cfg);
        assert_eq!((risk, d), (0.0, Decision::Clear));
        // 0.8 x 0.7 (tobacco) = 0.56: review, not alarm.
        let (risk, d, _) = decide(&[finding(0.8, ThreatCategory::Tobacco)], &ok, &cfg);
        assert!((risk - 0.56).abs() < 1e-6);
        assert_eq!(d, Decision::Review);
    }

    #[test]
    fn dropped_outputs_force_review() {
        let cfg = DecisionConfig::default();
        let bad = [run(DecodeStats { non_finite: 3, malformed: 0, candidates: 0 })];
        let (_, d, reasons) = decide(&[], &bad, &cfg);
        assert_eq!(d, Decision::Review);
        assert!(reasons.iter().any(|r| r.contains("3 non-finite")));
        let lenient = DecisionConfig { review_on_dropped_outputs: false, ..cfg };
        assert_eq!(decide(&[], &bad, &lenient).1, Decision::Clear);
    }

    #[test]
    fn evidence_counts_classes_and_zeff_in_the_box() {
        let mut att = Array2::<f32>::zeros((4, 6));
        let mut class = Array2::<u8>::zeros((4, 6));
        let mut z = Array2::<f32>::zeros((4, 6));
        // Box x 1..4, y 0..2: 4 metal (z 26), 2 organic (z 6).
        for x in 1..4 {
            for y in 0..2 {
                att[[y, x]] = 2.0;
                let metal = x < 3;
                class[[y, x]] = if metal { MaterialClass::Metal as u8 } else { MaterialClass::Organic as u8 };
                z[[y, x]] = if metal { 26.0 } else { 6.0 };
            }
        }
        let m = MaterialMap { class, z_eff: z };
        let e = MaterialEvidence::in_box(&BoxXyxy::new(1.0, 0.0, 4.0, 2.0), &att, Some(&m));
        assert_eq!(e.dominant_class, "metal");
        assert!((e.dominant_fraction - 4.0 / 6.0).abs() < 1e-6);
        assert!((e.mean_z_eff.unwrap() - (4.0 * 26.0 + 2.0 * 6.0) / 6.0).abs() < 1e-4);
        assert!((e.mean_attenuation - 2.0).abs() < 1e-6);
        // A box outside the scan is clipped, never a panic.
        let e = MaterialEvidence::in_box(&BoxXyxy::new(50.0, 50.0, 60.0, 60.0), &att, Some(&m));
        assert_eq!(e.dominant_class, "air");
        let e = MaterialEvidence::in_box(&BoxXyxy::new(-5.0, -5.0, -1.0, -1.0), &att, None);
        assert_eq!(e.dominant_class, "unclassified");
    }
}
