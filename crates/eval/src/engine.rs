//! Runs the inspection pipeline over every case of a labelled split and scores it in process
//! (`nii-atr eval --dataset <split> --config <pipeline.toml>`; [`Split`] and
//! [`evaluate_split`] for an integrator). Besides the COCO and operating-point metrics of the
//! boxes, the report holds what only a pipeline run has: its own scan-level decisions and risk
//! score, each model's scan-level AUROC (the anomaly model's included) and the latency per
//! scan and per stage.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use nii_atr_core::progress::Progress;
use serde::{Deserialize, Serialize};

use super::EvalError;
use super::atr::{OperatingPoint, roc};
use super::bootstrap::{BootstrapConfig, Interval, auc_interval, quantile};
use super::dataset::{Dataset, ImageDetections, Predictions, ScoredBox};
use super::report::{self, EvalConfig, Evaluation};
use super::verification::VerificationScores;
use nii_atr_core::inspect::findings::{Decision, Finding, FindingKind, Inspection};
use nii_atr_core::inspect::{InspectError, Pipeline};
use nii_atr_core::scan::Limits;

/// One case of a split: its COCO image id and its scan descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitCase {
    /// The case's COCO image id in `annotations.json`.
    pub image_id: i64,
    /// Path of its scan descriptor (`scan.json`).
    pub scan: PathBuf,
}

#[derive(Deserialize)]
struct RawImages {
    images: Vec<RawImage>,
}

#[derive(Deserialize)]
struct RawImage {
    id: i64,
    file_name: Option<String>,
    /// The generator writes the scan descriptor's path, relative to the split.
    scan: Option<String>,
}

/// The scans of a split's COCO file: each image's `scan` entry, else `scan.json` beside its
/// `file_name` (`<case>/preview.png` -> `<case>/scan.json`), both relative to the split.
pub fn split_cases(split: &Path, annotations: &Path) -> Result<Vec<SplitCase>, EvalError> {
    let bytes = crate::dataset::read_input(annotations)?;
    let raw: RawImages =
        serde_json::from_slice(&bytes).map_err(|source| EvalError::Json { path: annotations.to_path_buf(), source })?;
    raw.images
        .into_iter()
        .map(|img| {
            let rel = match (img.scan, img.file_name) {
                (Some(scan), _) => PathBuf::from(scan),
                (None, Some(name)) => Path::new(&name).parent().unwrap_or(Path::new("")).join("scan.json"),
                (None, None) => {
                    return Err(EvalError::Report {
                        path: annotations.to_path_buf(),
                        reason: format!(
                            "image {} has neither `scan` nor `file_name`: its scan cannot be found",
                            img.id
                        ),
                    });
                }
            };
            if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(EvalError::Report {
                    path: annotations.to_path_buf(),
                    reason: format!("image {}: scan path {} leaves the split folder", img.id, rel.display()),
                });
            }
            Ok(SplitCase { image_id: img.id, scan: split.join(rel) })
        })
        .collect()
}

/// A labelled split ready to run: its ground truth and the scans of the cases to score.
#[derive(Debug, Clone)]
pub struct Split {
    /// The split folder (`annotations.json` plus case folders, as `nii-atr synth` writes).
    pub root: PathBuf,
    /// Ground truth of the selected cases.
    pub dataset: Dataset,
    /// The selected cases, in split order.
    pub cases: Vec<SplitCase>,
    /// Cases the split holds before any selection.
    pub total: usize,
}

impl Split {
    /// Reads `<root>/annotations.json` and finds each case's scan; every case is selected.
    /// A root that is not a folder, a folder without `annotations.json` or one listing no case
    /// is an [`EvalError::EmptyInput`] naming the folder: there would be nothing to run.
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        let not_a_split = |what: &str| EvalError::EmptyInput {
            path: root.to_path_buf(),
            reason: format!(
                "{what}: a split is a folder holding annotations.json and the case folders, as `nii-atr synth` \
                 writes (e.g. <out>/test)"
            ),
        };
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_split("not a folder")),
            Err(source) => return Err(EvalError::Read { path: root.to_path_buf(), source }),
        }
        let annotations = root.join("annotations.json");
        if !annotations.exists() {
            return Err(not_a_split("no annotations.json"));
        }
        let dataset = Dataset::from_coco_json(&annotations)?;
        let cases = split_cases(root, &annotations)?;
        if cases.is_empty() {
            return Err(EvalError::EmptyInput {
                path: annotations,
                reason: "lists no cases (its `images` is empty): nothing to run".into(),
            });
        }
        Ok(Self { root: root.to_path_buf(), total: cases.len(), dataset, cases })
    }

    /// Leaves out the first `skip` cases (e.g. those a model was selected on), then keeps at
    /// most `limit`; the ground truth follows. An error when no case is left.
    pub fn select(&mut self, skip: usize, limit: Option<usize>) -> Result<(), EvalError> {
        let skip = skip.min(self.cases.len());
        self.cases.drain(..skip);
        self.cases.truncate(limit.unwrap_or(usize::MAX));
        if self.cases.is_empty() {
            return Err(EvalError::Report {
                path: self.root.clone(),
                reason: format!("--skip {skip} leaves none of the split's {} cases", self.total),
            });
        }
        let keep: HashSet<i64> = self.cases.iter().map(|c| c.image_id).collect();
        self.dataset.images.retain(|i| keep.contains(&i.id));
        self.dataset.annotations.retain(|a| keep.contains(&a.image_id));
        Ok(())
    }
}

/// Runs `pipeline` (read from `config`, the path the report names) over the split's cases and
/// scores its detections with `scoring`: the report of `model` with its pipeline section, and
/// declared-cargo verification scored against the split's `truth.jsonl` when it has one.
///
/// With `report_dir`, the engine's detections are first written there as `predictions.json`
/// (COCO results), so that the report names and hashes the file it scored and
/// [`crate::compare::compare`] can re-score it. `progress` counts the scans, then the
/// scoring stages (see [`report::evaluate_with_progress`]). Scans that fail are scored as
/// scans without detections and listed in [`PipelineRun::failed`].
pub fn evaluate_split(
    split: &Split,
    pipeline: &Pipeline,
    config: &Path,
    scoring: &EvalConfig,
    model: &str,
    report_dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Evaluation, EvalError> {
    progress.set_length(split.cases.len() as u64);
    let run = run_split(pipeline, config, &split.cases, &split.dataset, &Limits::default(), scoring, progress);
    let mut predictions = Predictions::from_engine(&run.detections, &split.dataset)?;
    if let Some(dir) = report_dir {
        // Written before scoring so the report names (and hashes) the predictions it scored.
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Write { path: dir.to_path_buf(), source })?;
        let path = dir.join("predictions.json");
        predictions.write_coco_json(&path)?;
        predictions.source = path;
    }
    let mut ev = report::evaluate_with_progress(&split.dataset, &predictions, scoring, model, progress)?;
    ev.report.pipeline = Some(run.pipeline);
    ev.report.verification = VerificationScores::from_split(&split.root, &run.verification)?;
    Ok(ev)
}

/// Median, 95th percentile and maximum of one stage over the scans, in milliseconds.
/// Percentiles interpolate linearly between order statistics (numpy's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    /// The stage: `read`, a pipeline stage, `inspect` (all of them) or `scan` (read + inspect).
    pub stage: String,
    /// Median over the inspected scans, ms.
    pub median_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Slowest scan, ms.
    pub max_ms: f64,
}

fn stage_latency(stage: &str, mut values: Vec<f64>) -> StageLatency {
    values.sort_by(f64::total_cmp);
    StageLatency {
        stage: stage.to_string(),
        median_ms: quantile(&values, 0.5),
        p95_ms: quantile(&values, 0.95),
        max_ms: values.last().copied().unwrap_or(f64::NAN),
    }
}

/// How often the pipeline decided clear / review / alarm on threat and on clean scans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionCounts {
    /// Scans cleared.
    pub clear: usize,
    /// Scans sent to an image analyst for review.
    pub review: usize,
    /// Scans that alarmed.
    pub alarm: usize,
}

impl DecisionCounts {
    fn add(&mut self, d: Decision) {
        match d {
            Decision::Clear => self.clear += 1,
            Decision::Review => self.review += 1,
            Decision::Alarm => self.alarm += 1,
        }
    }
}

/// Scan-level AUROC of one score (the pipeline's risk, or one model's highest finding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanScoreRoc {
    /// The score in words, e.g. "pipeline risk" or "`<model>` (highest finding)".
    pub score: String,
    /// ROC AUC of threat scans against clean ones; `None` without both.
    pub auc: Option<f64>,
    /// Pd at each Pfa limit (0.5, 1, 2, 3, 5 %); empty without a ROC.
    pub pd_at_pfa: Vec<OperatingPoint>,
    /// Bootstrap interval of `auc` over resampled scans (when the evaluation bootstraps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc_interval: Option<Interval>,
    /// AUC of the scans holding each class against the scans holding no threat: which
    /// kinds of concealment this score finds (an anomaly model was never told them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auc_by_class: BTreeMap<String, Option<f64>>,
    /// AUC of the scans whose hardest threat (lowest CNR) lies in each difficulty bin against
    /// the scans holding no threat, in bin order (empty when no truth carries a CNR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auc_by_difficulty: Vec<DifficultyAuc>,
}

/// One difficulty bin's AUC of a scan score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifficultyAuc {
    /// The bin in words, e.g. "hard [0, 3)".
    pub bin: String,
    /// Threat scans whose hardest threat lies in the bin.
    pub n_scans: usize,
    /// ROC AUC of those scans against the clean ones; `None` without both.
    pub auc: Option<f64>,
}

/// Per scan, the index of the `cnr_bins` window holding its hardest threat's CNR.
pub fn difficulty_bins(hardest: &[Option<f64>], cnr_bins: &[f64]) -> Vec<Option<usize>> {
    hardest
        .iter()
        .map(|h| h.and_then(|h| cnr_bins.windows(2).position(|w| crate::atr::in_bin(h, w[0], w[1]))))
        .collect()
}

/// ROC of one per-scan score: AUC (with its bootstrap interval when `bootstrap` is set), Pd at
/// each Pfa limit, and the AUC per class. `classes[i]` lists the class names scan `i` holds;
/// a scan is a threat scan when it holds any.
pub fn scan_score_roc(
    name: String,
    scores: &[f64],
    classes: &[Vec<String>],
    limits_pfa: &[f64],
    bootstrap: Option<&BootstrapConfig>,
    difficulty: (&[Option<usize>], &[String]),
) -> ScanScoreRoc {
    let labels: Vec<bool> = classes.iter().map(|c| !c.is_empty()).collect();
    let r = roc(scores, &labels);
    let names: BTreeSet<&String> = classes.iter().flatten().collect();
    let auc_by_class = names
        .into_iter()
        .map(|name| {
            // Positives: scans holding this class; negatives: scans holding nothing.
            let (s, l): (Vec<f64>, Vec<bool>) = scores
                .iter()
                .zip(classes)
                .filter(|(_, c)| c.is_empty() || c.contains(name))
                .map(|(&s, c)| (s, !c.is_empty()))
                .unzip();
            (name.clone(), roc(&s, &l).map(|r| r.auc))
        })
        .collect();
    let (bins, bin_labels) = difficulty;
    let auc_by_difficulty = if bins.iter().all(Option::is_none) {
        Vec::new()
    } else {
        bin_labels
            .iter()
            .enumerate()
            .map(|(k, label)| {
                // Positives: scans whose hardest threat is in bin k; negatives: scans holding nothing.
                let (s, l): (Vec<f64>, Vec<bool>) = (0..scores.len())
                    .filter(|&i| classes[i].is_empty() || bins[i] == Some(k))
                    .map(|i| (scores[i], !classes[i].is_empty()))
                    .unzip();
                DifficultyAuc {
                    bin: label.clone(),
                    n_scans: l.iter().filter(|&&p| p).count(),
                    auc: roc(&s, &l).map(|r| r.auc),
                }
            })
            .collect()
    };
    ScanScoreRoc {
        score: name,
        auc: r.as_ref().map(|r| r.auc),
        pd_at_pfa: r.map(|r| limits_pfa.iter().map(|&l| r.pd_at_pfa(l)).collect()).unwrap_or_default(),
        auc_interval: bootstrap.and_then(|cfg| auc_interval(scores, &labels, cfg)),
        auc_by_class,
        auc_by_difficulty,
    }
}

/// A scan the pipeline could not inspect; it is scored as a scan without detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedScan {
    /// The scan descriptor, as the split names it.
    pub scan: String,
    /// Why it failed, with its causes.
    pub error: String,
}

/// One source's strongest finding on a scan: a model by its spec name, or `verify` for the
/// manifest checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceScore {
    /// Highest finding score.
    pub score: f64,
    /// Highest `score x threat weight` of the config's decision rule: the source's share of
    /// the risk.
    pub risk: f64,
}

/// One scan's outcome, so that a reader can draw their own curves or fuse scores without
/// running the pipeline again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// The case's COCO image id.
    pub image_id: i64,
    /// The scan descriptor, as the split names it.
    pub scan: String,
    /// Ground-truth classes the scan holds (empty: a clean scan).
    pub classes: Vec<String>,
    /// The pipeline's decision; absent when the scan failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The pipeline's risk score in [0, 1]; absent when the scan failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<f64>,
    /// Each source with at least one finding on this scan.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, SourceScore>,
}

/// What the pipeline run adds to the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    /// The pipeline config's path.
    pub config: String,
    /// `name version` of every model the config ran.
    pub models: Vec<String>,
    /// Scans run, failed ones included.
    pub n_scans: usize,
    /// Scans the pipeline could not inspect.
    pub failed: Vec<FailedScan>,
    /// Findings whose class is not a ground-truth category (anomaly regions, manifest
    /// checks, classes the labels lack), by class name: they count for the decision and the
    /// scan-level scores below, not for the box metrics.
    pub unmapped_findings: BTreeMap<String, usize>,
    /// Decisions on scans holding a labelled threat.
    pub decisions_threat: DecisionCounts,
    /// Decisions on scans without one.
    pub decisions_clean: DecisionCounts,
    /// Scan-level ROC of the pipeline's risk score, of the risk from the models' findings alone
    /// (no manifest checks), then of each model's highest finding score.
    pub scan_scores: Vec<ScanScoreRoc>,
    /// Reading the scan, each pipeline stage, and the whole scan (read + inspect).
    pub latency: Vec<StageLatency>,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Every scan in split order (reports written before this field have none).
    #[serde(default)]
    pub scans: Vec<ScanRecord>,
}

/// The engine's detections plus the pipeline section of the report.
pub struct EngineRun {
    /// Detections of the ground truth's classes, one entry per scan in split order.
    pub detections: Vec<ImageDetections>,
    /// The pipeline section of the report.
    pub pipeline: PipelineRun,
    /// Declared-cargo verification of each inspected scan, by scan id.
    pub verification: Vec<(String, nii_atr_core::verify::VerificationResult)>,
}

struct ScanResult {
    image_id: i64,
    read_ms: f64,
    outcome: Result<Inspection, String>,
}

/// The stages of [`PipelineRun::latency`], in order.
const STAGES: [&str; 10] =
    ["read", "calibrate", "render", "preprocess", "ort_run", "decode", "merge", "verify", "inspect", "scan"];

/// The Pfa limits at which each scan score's Pd is read.
const SCAN_PFA_LIMITS: [f64; 5] = [0.005, 0.01, 0.02, 0.03, 0.05];

/// Runs `pipeline` over `cases` (next scan read on a second thread while one is inspected)
/// and maps findings to the dataset's categories by class name.
pub fn run_split(
    pipeline: &Pipeline,
    config: &Path,
    cases: &[SplitCase],
    dataset: &Dataset,
    limits: &Limits,
    scoring: &super::EvalConfig,
    progress: &dyn Progress,
) -> EngineRun {
    let started = Instant::now();
    let results = inspect_cases(pipeline, cases, limits, progress);
    let mut tally = Tally::new(pipeline, dataset, results.len());
    for r in &results {
        let scan = cases.iter().find(|c| c.image_id == r.image_id).map(|c| c.scan.display().to_string());
        tally.add(r, scan.unwrap_or_default());
    }
    let classes = classes_held(dataset, &results);
    for (record, c) in tally.records.iter_mut().zip(&classes) {
        record.classes = c.clone();
    }
    let image_ids: Vec<i64> = results.iter().map(|r| r.image_id).collect();
    let scan_scores = scan_score_rocs(&tally, &classes, dataset, &image_ids, scoring);
    let pipeline_run = PipelineRun {
        config: config.display().to_string(),
        models: pipeline.detectors().map(|d| format!("{} {}", d.spec().name, d.spec().version)).collect(),
        n_scans: results.len(),
        failed: tally.failed,
        unmapped_findings: tally.unmapped,
        decisions_threat: tally.decisions_threat,
        decisions_clean: tally.decisions_clean,
        scan_scores,
        latency: STAGES.iter().zip(tally.latency).map(|(s, v)| stage_latency(s, v)).collect(),
        wall_s: started.elapsed().as_secs_f64(),
        scans: tally.records,
    };
    EngineRun { detections: tally.detections, pipeline: pipeline_run, verification: tally.verification }
}

/// Reads and inspects every case in order, the next scan read on a second thread while one is
/// inspected; a scan that cannot be read or inspected keeps its error.
fn inspect_cases(
    pipeline: &Pipeline,
    cases: &[SplitCase],
    limits: &Limits,
    progress: &dyn Progress,
) -> Vec<ScanResult> {
    let mut results: Vec<ScanResult> = Vec::with_capacity(cases.len());
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(1);
        s.spawn(move || {
            for case in cases {
                let t = Instant::now();
                let scan = nii_atr_core::scan::read_scan(&case.scan, limits);
                if tx.send((case, scan, t.elapsed().as_secs_f64() * 1e3)).is_err() {
                    return;
                }
            }
        });
        for (case, scan, read_ms) in rx {
            progress.set_message(&case.scan.display().to_string());
            let outcome = scan
                .map_err(InspectError::from)
                .and_then(|scan| pipeline.inspect(&scan))
                .map(|(ins, _)| ins)
                .map_err(|e| nii_atr_core::error_chain(&e));
            if let Err(e) = &outcome {
                progress.println(&format!("warning: {}: {e}", case.scan.display()));
            }
            results.push(ScanResult { image_id: case.image_id, read_ms, outcome });
            progress.inc(1);
        }
    });
    results
}

/// What a split run adds up scan by scan, in split order.
struct Tally<'a> {
    pipeline: &'a Pipeline,
    /// Category id of each ground-truth class name.
    by_name: BTreeMap<&'a str, i64>,
    /// Scans holding a labelled threat.
    positive: HashSet<i64>,
    /// Each detector's spec name.
    model_names: Vec<String>,
    detections: Vec<ImageDetections>,
    verification: Vec<(String, nii_atr_core::verify::VerificationResult)>,
    unmapped: BTreeMap<String, usize>,
    failed: Vec<FailedScan>,
    decisions_threat: DecisionCounts,
    decisions_clean: DecisionCounts,
    /// Per scan: risk, risk from the image models alone, then each model's highest finding
    /// score (-inf without findings).
    scores: Vec<Vec<f64>>,
    /// Per stage of [`STAGES`], the inspected scans' times in ms.
    latency: Vec<Vec<f64>>,
    records: Vec<ScanRecord>,
}

impl<'a> Tally<'a> {
    /// Empty tallies for `n` scans of `dataset` run by `pipeline`.
    fn new(pipeline: &'a Pipeline, dataset: &'a Dataset, n: usize) -> Self {
        let model_names: Vec<String> = pipeline.detectors().map(|d| d.spec().name.clone()).collect();
        Self {
            pipeline,
            by_name: dataset.categories.iter().map(|c| (c.name.as_str(), c.id)).collect(),
            positive: dataset.annotations.iter().map(|g| g.image_id).collect(),
            detections: Vec::with_capacity(n),
            verification: Vec::new(),
            unmapped: BTreeMap::new(),
            failed: Vec::new(),
            decisions_threat: DecisionCounts::default(),
            decisions_clean: DecisionCounts::default(),
            scores: vec![Vec::with_capacity(n); 2 + model_names.len()],
            latency: vec![Vec::new(); STAGES.len()],
            records: Vec::with_capacity(n),
            model_names,
        }
    }

    /// Adds one scan's outcome; `scan` is its descriptor as the split names it.
    fn add(&mut self, r: &ScanResult, scan: String) {
        let mut record = ScanRecord {
            image_id: r.image_id,
            scan,
            classes: Vec::new(),
            decision: None,
            risk: None,
            sources: BTreeMap::new(),
        };
        let boxes = match &r.outcome {
            Ok(ins) => self.add_inspection(r, ins, &mut record),
            Err(e) => {
                self.failed.push(FailedScan { scan: record.scan.clone(), error: e.clone() });
                for s in &mut self.scores {
                    s.push(f64::NEG_INFINITY);
                }
                Vec::new()
            }
        };
        self.detections.push(ImageDetections { image_id: r.image_id, detections: boxes });
        self.records.push(record);
    }

    /// The decision, risk, sources, scan scores, verification and latency of an inspected
    /// scan; returns its boxes of ground-truth classes.
    fn add_inspection(&mut self, r: &ScanResult, ins: &Inspection, record: &mut ScanRecord) -> Vec<ScoredBox> {
        record.decision = Some(ins.decision);
        record.risk = Some(f64::from(ins.risk_score));
        for f in &ins.findings {
            let (score, risk) = (f64::from(f.score), self.risk_share(f));
            let e = record.sources.entry(f.model.clone()).or_insert(SourceScore { score, risk });
            e.score = e.score.max(score);
            e.risk = e.risk.max(risk);
        }
        if let Some(cargo) = &ins.cargo {
            self.verification.push((ins.scan_id.clone(), cargo.clone()));
        }
        if self.positive.contains(&r.image_id) {
            self.decisions_threat.add(ins.decision);
        } else {
            self.decisions_clean.add(ins.decision);
        }
        self.push_scan_scores(ins);
        let boxes = self.boxes(ins);
        let t = &ins.timings;
        let values = [
            r.read_ms,
            t.calibrate_ms,
            t.render_ms,
            t.preprocess_ms,
            t.ort_run_ms,
            t.decode_ms,
            t.merge_ms,
            t.verify_ms,
            t.total_ms,
            r.read_ms + t.total_ms,
        ];
        for (v, l) in values.iter().zip(self.latency.iter_mut()) {
            l.push(*v);
        }
        boxes
    }

    /// A finding's share of the risk: `score x threat weight` of the decision rule, in [0, 1].
    fn risk_share(&self, f: &Finding) -> f64 {
        f64::from((f.score * self.pipeline.config().decision.weight(f.threat)).clamp(0.0, 1.0))
    }

    /// The scan's risk, its risk from the image models alone, and each model's highest score.
    fn push_scan_scores(&mut self, ins: &Inspection) {
        self.scores[0].push(f64::from(ins.risk_score));
        // The manifest checks score the declaration, not the image: without them the
        // risk is the models' fused any-threat score.
        let image_risk = ins
            .findings
            .iter()
            .filter(|f| f.kind != FindingKind::ManifestCheck)
            .map(|f| self.risk_share(f))
            .fold(0.0, f64::max);
        self.scores[1].push(image_risk);
        for (k, name) in self.model_names.iter().enumerate() {
            let best = ins
                .findings
                .iter()
                .filter(|f| &f.model == name)
                .map(|f| f64::from(f.score))
                .fold(f64::NEG_INFINITY, f64::max);
            self.scores[k + 2].push(best);
        }
    }

    /// Object and tile findings of a ground-truth class as scored boxes; the others counted as
    /// unmapped by class name.
    fn boxes(&mut self, ins: &Inspection) -> Vec<ScoredBox> {
        let mut boxes = Vec::new();
        for f in &ins.findings {
            let id = matches!(f.kind, FindingKind::Object | FindingKind::TileClass)
                .then(|| self.by_name.get(f.class_name.as_str()))
                .flatten();
            match id {
                Some(&category_id) => boxes.push(ScoredBox {
                    category_id,
                    bbox: [
                        f64::from(f.bbox_px.x1),
                        f64::from(f.bbox_px.y1),
                        f64::from(f.bbox_px.width()),
                        f64::from(f.bbox_px.height()),
                    ],
                    score: f64::from(f.score),
                }),
                None => *self.unmapped.entry(f.class_name.clone()).or_default() += 1,
            }
        }
        boxes
    }
}

/// Per scan of `results`, the ground-truth class names it holds, in annotation order.
fn classes_held(dataset: &Dataset, results: &[ScanResult]) -> Vec<Vec<String>> {
    let by_id: std::collections::HashMap<i64, &str> =
        dataset.categories.iter().map(|c| (c.id, c.name.as_str())).collect();
    let mut held: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for a in &dataset.annotations {
        let names = held.entry(a.image_id).or_default();
        let name = by_id.get(&a.category_id).map_or_else(|| a.category_id.to_string(), |n| (*n).to_string());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    results.iter().map(|r| held.get(&r.image_id).cloned().unwrap_or_default()).collect()
}

/// The ROC of each tallied scan score, with the evaluation's bootstrap and difficulty bins.
fn scan_score_rocs(
    tally: &Tally,
    classes: &[Vec<String>],
    dataset: &Dataset,
    image_ids: &[i64],
    scoring: &EvalConfig,
) -> Vec<ScanScoreRoc> {
    let (bootstrap, cnr_bins) = (scoring.bootstrap.as_ref(), &scoring.atr.cnr_bins);
    let bins = difficulty_bins(&crate::atr::hardest_cnr(dataset, image_ids), cnr_bins);
    let bin_labels: Vec<String> =
        cnr_bins.windows(2).map(|w| crate::atr::bin_label(w[0], w[1].is_finite().then_some(w[1]))).collect();
    ["pipeline risk".to_string(), "risk without manifest checks".to_string()]
        .into_iter()
        .chain(tally.model_names.iter().map(|m| format!("{m} (highest finding)")))
        .zip(&tally.scores)
        .map(|(name, s)| scan_score_roc(name, s, classes, &SCAN_PFA_LIMITS, bootstrap, (&bins, &bin_labels)))
        .collect()
}

/// The Markdown section of a pipeline run.
pub fn markdown(p: &PipelineRun) -> String {
    let mut s = String::new();
    write_overview(&mut s, p);
    write_scan_scores(&mut s, p);
    write_auc_by_class(&mut s, p);
    write_auc_by_difficulty(&mut s, p);
    if !p.unmapped_findings.is_empty() {
        let _ = writeln!(
            s,
            "Findings outside the ground-truth classes (decision and scan scores only): {}.\n",
            p.unmapped_findings.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(s, "| latency (ms) | median | p95 | max |\n|---|---|---|---|");
    for l in &p.latency {
        let _ = writeln!(s, "| {} | {:.1} | {:.1} | {:.1} |", l.stage, l.median_ms, l.p95_ms, l.max_ms);
    }
    s.push('\n');
    s
}

/// An AUC to three decimals, or "n/a".
fn auc_text(auc: Option<f64>) -> String {
    auc.map_or_else(|| "n/a".into(), |a| format!("{a:.3}"))
}

/// Heading, config and models, the failed scans and the decision table.
fn write_overview(s: &mut String, p: &PipelineRun) {
    let _ = writeln!(
        s,
        "## Pipeline run\n\nConfig `{}`, models: {}. {} scans in {:.1} s, {} failed (scored as scans without \
         detections).\n",
        p.config,
        p.models.join(", "),
        p.n_scans,
        p.wall_s,
        p.failed.len()
    );
    for f in p.failed.iter().take(10) {
        let _ = writeln!(s, "- failed: `{}`: {}", f.scan, f.error);
    }
    if !p.failed.is_empty() {
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "| decision | threat scans | clean scans |\n|---|---|---|\n| clear | {} | {} |\n| review | {} | {} |\n| alarm | {} | {} |\n",
        p.decisions_threat.clear,
        p.decisions_clean.clear,
        p.decisions_threat.review,
        p.decisions_clean.review,
        p.decisions_threat.alarm,
        p.decisions_clean.alarm
    );
}

/// Each scan score's ROC AUC (with its interval) and Pd at each Pfa limit.
fn write_scan_scores(s: &mut String, p: &PipelineRun) {
    let Some(first) = p.scan_scores.iter().find(|r| !r.pd_at_pfa.is_empty()) else { return };
    let limits: Vec<f64> = first.pd_at_pfa.iter().map(|o| o.target).collect();
    let _ = writeln!(
        s,
        "| scan score | ROC AUC | {} |\n|---|---|{}",
        report::pfa_limit_headers(&limits),
        "---|".repeat(limits.len())
    );
    for r in &p.scan_scores {
        let cells = if r.pd_at_pfa.is_empty() {
            vec!["n/a".to_string(); limits.len()]
        } else {
            r.pd_at_pfa.iter().map(|o| format!("{:.3} (Pfa {:.3})", o.pd, o.pfa)).collect()
        };
        let auc = match (r.auc, &r.auc_interval) {
            (Some(a), Some(iv)) => format!("{a:.3} [{:.3}, {:.3}]", iv.low, iv.high),
            (Some(a), None) => format!("{a:.3}"),
            _ => "n/a".into(),
        };
        let _ = writeln!(s, "| {} | {} | {} |", r.score, auc, cells.join(" | "));
    }
    s.push('\n');
}

/// Each scan score's AUC per class.
fn write_auc_by_class(s: &mut String, p: &PipelineRun) {
    let class_names: BTreeSet<&String> = p.scan_scores.iter().flat_map(|r| r.auc_by_class.keys()).collect();
    if class_names.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "Scan-level ROC AUC by class (scans holding the class against scans holding no threat):\n\n\
         | scan score | {} |\n|---|{}",
        class_names.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" | "),
        "---|".repeat(class_names.len())
    );
    for r in &p.scan_scores {
        let cells: Vec<String> =
            class_names.iter().map(|c| auc_text(r.auc_by_class.get(*c).copied().flatten())).collect();
        let _ = writeln!(s, "| {} | {} |", r.score, cells.join(" | "));
    }
    s.push('\n');
}

/// Each scan score's AUC per difficulty bin.
fn write_auc_by_difficulty(s: &mut String, p: &PipelineRun) {
    let Some(first) = p.scan_scores.iter().find(|r| !r.auc_by_difficulty.is_empty()) else { return };
    let _ = writeln!(
        s,
        "Scan-level ROC AUC by difficulty (threat scans by their hardest threat, against scans holding no threat):\n\n\
         | scan score | {} |\n|---|{}",
        first
            .auc_by_difficulty
            .iter()
            .map(|d| format!("{} ({} scans)", d.bin, d.n_scans))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(first.auc_by_difficulty.len())
    );
    for r in &p.scan_scores {
        let cells: Vec<String> = r.auc_by_difficulty.iter().map(|d| auc_text(d.auc)).collect();
        let _ = writeln!(s, "| {} | {} |", r.score, cells.join(" | "));
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_score_roc_scores_each_class_against_clean_scans() {
        // Scans: clean 0.1, clean 0.4, firearm 0.9, vehicle 0.3, firearm + vehicle 0.5.
        let scores = [0.1, 0.4, 0.9, 0.3, 0.5];
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let classes = [c(&[]), c(&[]), c(&["firearm"]), c(&["vehicle"]), c(&["firearm", "vehicle"])];
        let r = scan_score_roc("m".into(), &scores, &classes, &[0.5], None, (&[], &[]));
        // All threats vs clean: pairs won (0.9: 2, 0.3: 1, 0.5: 2) of 6 = 5/6.
        assert!((r.auc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // Firearm scans {0.9, 0.5} beat both clean scans: 1. Vehicle scans {0.3, 0.5}: 3/4.
        assert_eq!(r.auc_by_class["firearm"], Some(1.0));
        assert!((r.auc_by_class["vehicle"].unwrap() - 0.75).abs() < 1e-12);
        assert!(r.auc_interval.is_none());
        let cfg = BootstrapConfig { resamples: 400, ..BootstrapConfig::default() };
        let iv = scan_score_roc("m".into(), &scores, &classes, &[0.5], Some(&cfg), (&[], &[])).auc_interval.unwrap();
        assert!(iv.low <= 5.0 / 6.0 && 5.0 / 6.0 <= iv.high && iv.low < iv.high, "{iv:?}");
        assert!(iv.n_valid > 300 && iv.n_valid <= 400, "{iv:?}");
        // Perfectly separated scores have no spread to resample.
        let sep = scan_score_roc("m".into(), &[0.1, 0.2, 0.8, 0.9], &classes[1..], &[0.5], Some(&cfg), (&[], &[]));
        let iv = sep.auc_interval.unwrap();
        assert_eq!((iv.low, iv.high), (1.0, 1.0));
    }

    #[test]
    fn auc_by_difficulty_reads_each_bins_scans_against_the_clean_ones() {
        assert_eq!(
            difficulty_bins(&[Some(1.0), Some(3.0), Some(25.0), None, Some(0.0)], &[0.0, 3.0, 10.0, f64::INFINITY]),
            vec![Some(0), Some(1), Some(2), None, Some(0)]
        );
        let scores = [0.9, 0.2, 0.8, 0.1, 0.5, 0.3];
        let a = |c: &str| vec![c.to_string()];
        let classes = [a("gun"), a("gun"), a("car"), vec![], vec![], vec![]];
        let bins = [Some(0), Some(1), Some(1), None, None, None];
        let labels = ["hard [0, 3)".to_string(), "medium [3, 10)".to_string(), "easy [10, inf)".to_string()];
        let r = scan_score_roc("m".into(), &scores, &classes, &[0.5], None, (&bins, &labels));
        let got: Vec<(String, usize, Option<f64>)> =
            r.auc_by_difficulty.iter().map(|d| (d.bin.clone(), d.n_scans, d.auc)).collect();
        // Hard: 0.9 above all three clean scans. Medium: 0.8 above all, 0.2 above 0.1 only: 4 / 6.
        assert_eq!(got[0], ("hard [0, 3)".into(), 1, Some(1.0)));
        assert_eq!((got[1].1, got[1].2.map(|a| (a * 6.0).round())), (2, Some(4.0)));
        assert_eq!(got[2], ("easy [10, inf)".into(), 0, None));
        // No truth with a CNR: no difficulty rows at all.
        let none = scan_score_roc("m".into(), &scores, &classes, &[0.5], None, (&[None; 6], &labels));
        assert!(none.auc_by_difficulty.is_empty());
    }

    #[test]
    fn split_cases_find_scans_and_refuse_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let ann = dir.path().join("annotations.json");
        std::fs::write(
            &ann,
            r#"{"images": [{"id": 1, "file_name": "c1/preview.png"}, {"id": 2, "scan": "c2/scan.json"}],
                "annotations": [], "categories": []}"#,
        )
        .unwrap();
        let cases = split_cases(dir.path(), &ann).unwrap();
        assert_eq!(cases[0], SplitCase { image_id: 1, scan: dir.path().join("c1/scan.json") });
        assert_eq!(cases[1].scan, dir.path().join("c2/scan.json"));
        std::fs::write(&ann, r#"{"images": [{"id": 1, "scan": "../../etc/scan.json"}]}"#).unwrap();
        let e = split_cases(dir.path(), &ann).unwrap_err().to_string();
        assert!(e.contains("leaves the split folder"), "{e}");
        std::fs::write(&ann, r#"{"images": [{"id": 3}]}"#).unwrap();
        assert!(split_cases(dir.path(), &ann).unwrap_err().to_string().contains("image 3"));
        std::fs::write(&ann, "{").unwrap();
        assert!(matches!(split_cases(dir.path(), &ann), Err(EvalError::Json { .. })));
    }
}
