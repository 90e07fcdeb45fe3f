//! The evaluation report: one versioned JSON document (`report.json`), a Markdown summary
//! (`summary.md`) and an offline HTML page with SVG plots (`report.html`).
//!
//! Schema version 1, top-level fields: `schema_version`, `generator`, `model`, `inputs`
//! (files, FNV-1a hashes, counts, counted skips), `coco` (mode, maxDets, the 12 summary
//! numbers by name, per-category AP/AR and PR curve at IoU 0.5), `atr` (ROC, operating points,
//! per-class Pd, FROC, CNR split), `tide` (counts and dAP per error type), `bootstrap`
//! (intervals of AP, ROC AUC, Pd at Pfa 1%/5%; absent when disabled). All rates are fractions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nii_atr_core::progress::Progress;
use serde::{Deserialize, Serialize};

use super::EvalError;
use super::atr::{
    AtrConfig, AtrMetrics, Froc, OperatingPoint, ScanScores, atr_metrics, bin_label, in_bin, scan_scores,
};
use super::bootstrap::{BootstrapConfig, HeadlineIntervals, ModelScans, headline_intervals};
use super::coco::{self, CocoEvaluation, CocoMode, CocoParams};
use super::dataset::{Dataset, Predictions};
use super::plots;
use super::tide::{ERROR_TYPES, TideBreakdown, tide};

/// Version of the `report.json` schema this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// FROC curves keep at most this many points in the report (ends always kept).
pub const MAX_FROC_POINTS: usize = 1000;

/// Everything that decides the numbers of an evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// pycocotools' parameters (`COCOeval.params`) and mode.
    pub coco: CocoParams,
    /// The operating-point metrics' settings.
    pub atr: AtrConfig,
    /// `None` skips the bootstrap.
    pub bootstrap: Option<BootstrapConfig>,
}

/// One input file of an evaluation, named so that two reports can tell whether they saw the
/// same file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// Canonical path (as given when it cannot be resolved).
    pub path: String,
    /// FNV-1a 64 of the file bytes (hex), to tell whether two reports saw the same file.
    pub fnv1a64: Option<String>,
}

/// What was scored against what, with the counts the metrics saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// The ground-truth file (COCO instances or YOLO image list).
    pub ground_truth: InputFile,
    /// The predictions file or folder.
    pub predictions: InputFile,
    /// Scans (COCO images).
    pub n_scans: usize,
    /// Classes (COCO categories).
    pub n_categories: usize,
    /// Annotations of known categories.
    pub n_annotations: usize,
    /// Predictions of known categories.
    pub n_predictions: usize,
    /// Annotations of a category the ground truth does not list (dropped, as pycocotools does).
    pub skipped_annotations_unknown_category: usize,
    /// Predictions of a category the ground truth does not list (dropped, as pycocotools does).
    pub skipped_predictions_unknown_category: usize,
}

/// `COCOeval.stats` by name: fractions, -1 where pycocotools has no value. AR columns are
/// read at maxDets `[0]`, `[1]` and `[2]` of the list (1, 10, 100 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CocoStats {
    /// AP averaged over IoU .50:.95 (`stats[0]`; read at maxDets 100 in pycocotools mode).
    pub ap: f64,
    /// AP at IoU 0.5 (`stats[1]`).
    pub ap50: f64,
    /// AP at IoU 0.75 (`stats[2]`).
    pub ap75: f64,
    /// AP of small objects, area < 32² px (`stats[3]`).
    pub ap_small: f64,
    /// AP of medium objects, 32² to 96² px (`stats[4]`).
    pub ap_medium: f64,
    /// AP of large objects, area > 96² px (`stats[5]`).
    pub ap_large: f64,
    /// AR at the first maxDets (`stats[6]`).
    pub ar_1: f64,
    /// AR at the second maxDets (`stats[7]`).
    pub ar_10: f64,
    /// AR at the third maxDets (`stats[8]`).
    pub ar_100: f64,
    /// AR of small objects (`stats[9]`).
    pub ar_small: f64,
    /// AR of medium objects (`stats[10]`).
    pub ar_medium: f64,
    /// AR of large objects (`stats[11]`).
    pub ar_large: f64,
}

impl From<[f64; 12]> for CocoStats {
    fn from(s: [f64; 12]) -> Self {
        Self {
            ap: s[0],
            ap50: s[1],
            ap75: s[2],
            ap_small: s[3],
            ap_medium: s[4],
            ap_large: s[5],
            ar_1: s[6],
            ar_10: s[7],
            ar_100: s[8],
            ar_small: s[9],
            ar_medium: s[10],
            ar_large: s[11],
        }
    }
}

/// COCO metrics of one class (area "all", largest maxDets; -1 without ground truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryReport {
    /// COCO category id.
    pub category_id: i64,
    /// Class name.
    pub name: String,
    /// AP averaged over IoU .50:.95.
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// AR averaged over IoU .50:.95.
    pub ar: f64,
    /// Precision at the 101 recall thresholds, IoU 0.5, area all, largest maxDets.
    pub pr_curve_iou50: Vec<f64>,
}

/// The COCO box metrics section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoReport {
    /// Whether pycocotools' quirks were reproduced.
    pub mode: CocoMode,
    /// The maxDets list (detections kept per scan), ascending.
    pub max_dets: Vec<usize>,
    /// Summary numbers; in pycocotools mode `ap` is read at maxDets 100 (see `CocoMode`).
    pub stats: CocoStats,
    /// Mean AP .50:.95 at the largest maxDets, whatever the mode (the bootstrap's AP).
    pub ap_at_max_dets: f64,
    /// The recall thresholds at which precision is read (pycocotools' `recThrs`).
    pub rec_thrs: Vec<f64>,
    /// Each class, in category id order.
    pub per_category: Vec<CategoryReport>,
}

/// The evaluation report (`report.json`, schema [`SCHEMA_VERSION`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `nii-atr <version>` that wrote it.
    pub generator: String,
    /// The model's name as the report shows it.
    pub model: String,
    /// Everything that decides the numbers.
    pub config: EvalConfig,
    /// What was scored against what.
    pub inputs: Inputs,
    /// COCO box metrics, as pycocotools computes them.
    pub coco: CocoReport,
    /// Customs operating points: ROC, Pd at Pfa, per-class Pd, FROC, the CNR split.
    pub atr: AtrMetrics,
    /// TIDE's breakdown of the AP50 lost, by error type.
    pub tide: TideBreakdown,
    /// Bootstrap intervals of the headline numbers; `None` when disabled.
    pub bootstrap: Option<HeadlineIntervals>,
    /// Present when the report comes from running a pipeline over a split (`--dataset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<super::engine::PipelineRun>,
    /// Declared-cargo checks against the split's truth (`--dataset` on a generated split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::verification::VerificationScores>,
}

/// The report plus the per-scan state that comparisons and plots need.
pub struct Evaluation {
    /// The report.
    pub report: Report,
    /// pycocotools' evaluation state, per-scan matches included.
    pub coco: CocoEvaluation,
    /// Each scan's score and truth.
    pub scans: ScanScores,
}

impl Evaluation {
    /// The per-scan inputs the bootstrap resamples.
    pub fn model_scans(&self) -> ModelScans<'_> {
        ModelScans::new(&self.coco, &self.scans)
    }
}

/// FNV-1a 64 of a file, `None` when it cannot be read (e.g. engine input) or is not a regular
/// file (a FIFO is never opened). Read in blocks: hashing allocates nothing per byte.
pub fn fnv1a64_file(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let (file, _) = nii_atr_core::io::open_regular(path).ok()?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut block = [0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        for &b in &block[..n] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(format!("{h:016x}"))
}

fn input_file(path: &Path) -> InputFile {
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    InputFile { path: shown.display().to_string(), fnv1a64: fnv1a64_file(path) }
}

fn thin_froc(mut froc: Froc) -> Froc {
    let n = froc.points.len();
    if n > MAX_FROC_POINTS {
        let step = n.div_ceil(MAX_FROC_POINTS - 1);
        let last = froc.points[n - 1];
        froc.points = froc.points.into_iter().step_by(step).collect();
        froc.points.push(last);
    }
    froc
}

/// Scores a dataset: the in-process entry point (the engine calls it with
/// [`Predictions::from_engine`]; the CLI with files).
pub fn evaluate(
    dataset: &Dataset,
    predictions: &Predictions,
    config: &EvalConfig,
    model: &str,
) -> Result<Evaluation, EvalError> {
    evaluate_with_progress(dataset, predictions, config, model, &nii_atr_core::progress::Silent)
}

/// [`evaluate`], reporting stages as messages on `progress` and bootstrap resamples as its
/// position (its length is set to the number of resamples).
pub fn evaluate_with_progress(
    dataset: &Dataset,
    predictions: &Predictions,
    config: &EvalConfig,
    model: &str,
    progress: &dyn Progress,
) -> Result<Evaluation, EvalError> {
    if let Some(b) = &config.bootstrap {
        b.validate()?;
    }
    // Every table below is sized from the counts first: refused here, never an abort later.
    crate::budget::check_evaluation(dataset, predictions, config)?;
    progress.set_message("COCO matching and accumulation");
    let ev = coco::evaluate(dataset, predictions, &config.coco)?;
    progress.set_message("operating points, FROC, TIDE");
    let scans = scan_scores(dataset, predictions);
    let mut atr = atr_metrics(dataset, predictions, &config.atr);
    atr.froc = thin_froc(atr.froc);
    progress.set_message("COCO AP by difficulty");
    for bin in atr.by_cnr.iter_mut().filter(|b| b.n_truth > 0) {
        // The other bins' truths (and those without a CNR) become crowd regions, which
        // pycocotools ignores along with the detections they absorb.
        let hi = bin.cnr_max.unwrap_or(f64::INFINITY);
        let mut only = dataset.clone();
        for g in &mut only.annotations {
            g.iscrowd |= !g.cnr.is_some_and(|c| in_bin(c, bin.cnr_min, hi));
        }
        let e = coco::evaluate(&only, predictions, &config.coco)?;
        (bin.ap, bin.ap50) = (Some(e.stats[0]), Some(e.stats[1]));
    }
    let tide = tide(dataset, predictions, *ev.params.max_dets.last().unwrap_or(&100));
    let bootstrap = config.bootstrap.as_ref().map(|b| {
        progress.set_length(b.resamples as u64);
        progress.set_message("bootstrap resamples");
        headline_intervals(&ModelScans::new(&ev, &scans), b, progress)
    });
    let names: std::collections::HashMap<i64, &str> =
        dataset.categories.iter().map(|c| (c.id, c.name.as_str())).collect();
    let per_category = ev
        .per_category()
        .into_iter()
        .enumerate()
        .map(|(k, c)| CategoryReport {
            name: names.get(&c.category_id).map_or_else(|| c.category_id.to_string(), |n| (*n).to_string()),
            category_id: c.category_id,
            ap: c.ap,
            ap50: c.ap50,
            ap75: c.ap75,
            ar: c.ar,
            pr_curve_iou50: ev.pr_curve(0, k),
        })
        .collect();
    let report = Report {
        schema_version: SCHEMA_VERSION,
        generator: format!("nii-atr {}", env!("CARGO_PKG_VERSION")),
        model: model.to_string(),
        config: config.clone(),
        inputs: Inputs {
            ground_truth: input_file(&dataset.source),
            predictions: input_file(&predictions.source),
            n_scans: dataset.images.len(),
            n_categories: dataset.categories.len(),
            n_annotations: dataset.annotations.len(),
            n_predictions: predictions.detections.len(),
            skipped_annotations_unknown_category: dataset.skipped_unknown_category,
            skipped_predictions_unknown_category: predictions.skipped_unknown_category,
        },
        coco: CocoReport {
            mode: ev.params.mode,
            max_dets: ev.params.max_dets.clone(),
            stats: ev.stats.into(),
            ap_at_max_dets: ev.summarize_one(true, None, "all", *ev.params.max_dets.last().unwrap_or(&100)),
            rec_thrs: ev.params.rec_thrs.clone(),
            per_category,
        },
        atr,
        tide,
        bootstrap,
        pipeline: None,
        verification: None,
    };
    Ok(Evaluation { report, coco: ev, scans })
}

impl Report {
    /// The one-line summary the command line prints: AP, AP50, AP75, AR and AP at the largest
    /// maxDets, ROC AUC, Pd at each Pfa limit, and the boxes of unknown classes skipped.
    pub fn summary_line(&self) -> String {
        let s = &self.coco.stats;
        let mut line = format!(
            "{}: AP {:.4} AP50 {:.4} AP75 {:.4} AR@{} {:.4} (AP at maxDets {}: {:.4})",
            self.model,
            s.ap,
            s.ap50,
            s.ap75,
            self.coco.max_dets.last().unwrap_or(&0),
            s.ar_100,
            self.coco.max_dets.last().unwrap_or(&0),
            self.coco.ap_at_max_dets
        );
        if let Some(roc) = &self.atr.roc {
            let _ = write!(line, ", ROC AUC {:.4}", roc.auc);
        }
        for p in &self.atr.pd_at_pfa {
            let _ = write!(line, ", Pd@Pfa{:.0}% {:.3}", p.target * 100.0, p.pd);
        }
        let skipped =
            self.inputs.skipped_predictions_unknown_category + self.inputs.skipped_annotations_unknown_category;
        if skipped > 0 {
            let _ = write!(line, " ({skipped} boxes of unknown classes skipped)");
        }
        line
    }
}

fn write(path: &Path, text: &str) -> Result<(), EvalError> {
    std::fs::write(path, text).map_err(|source| EvalError::Write { path: path.to_path_buf(), source })
}

/// Reads a `report.json` (or the one inside a report folder), checking the schema version.
pub fn read_report(path: &Path) -> Result<Report, EvalError> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let bytes = crate::dataset::read_input(&file)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| EvalError::Json { path: file.clone(), source })?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(SCHEMA_VERSION)) {
        return Err(EvalError::Report {
            path: file,
            reason: format!("schema_version {version:?}, this nii-atr reads {SCHEMA_VERSION}"),
        });
    }
    serde_json::from_value(value).map_err(|source| EvalError::Json { path: file, source })
}

fn f(v: f64) -> String {
    if v <= -1.0 { "n/a".into() } else { format!("{v:.3}") }
}

fn fo(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), f)
}

fn ci(i: Option<&super::bootstrap::Interval>) -> String {
    match i {
        Some(i) if i.n_valid > 0 => format!(" [{:.3}, {:.3}]", i.low, i.high),
        _ => String::new(),
    }
}

/// The Markdown summary.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    write_inputs(&mut s, r);
    write_coco(&mut s, r);
    write_operating_points(&mut s, r);
    write_class_scan_pd(&mut s, r);
    write_froc_and_classes(&mut s, r);
    write_by_difficulty(&mut s, r);
    if let Some(p) = &r.pipeline {
        s.push('\n');
        s.push_str(&super::engine::markdown(p));
    }
    if let Some(v) = &r.verification {
        s.push('\n');
        s.push_str(&v.markdown());
    }
    write_tide(&mut s, r);
    s
}

/// Table cells of Pd (with its Pfa) at each Pfa limit, or "n/a" in each of `n` cells when
/// there is no ROC.
fn pd_cells(points: &[OperatingPoint], n: usize) -> String {
    if points.is_empty() {
        vec!["n/a"; n].join(" | ")
    } else {
        points.iter().map(|p| format!("{} (Pfa {})", f(p.pd), f(p.pfa))).collect::<Vec<_>>().join(" | ")
    }
}

/// Table header cells "Pd at Pfa <= x%" of each limit.
pub(crate) fn pfa_limit_headers(limits: &[f64]) -> String {
    limits.iter().map(|l| format!("Pd at Pfa <= {}%", l * 100.0)).collect::<Vec<_>>().join(" | ")
}

/// Title, and what was scored against what.
fn write_inputs(s: &mut String, r: &Report) {
    let _ = writeln!(s, "# Evaluation: {}\n", r.model);
    let _ = writeln!(
        s,
        "Ground truth `{}`: {} scans, {} classes, {} annotations. Predictions `{}`: {} boxes \
         ({} of unknown classes skipped, {} annotations of unknown classes skipped).\n",
        r.inputs.ground_truth.path,
        r.inputs.n_scans,
        r.inputs.n_categories,
        r.inputs.n_annotations,
        r.inputs.predictions.path,
        r.inputs.n_predictions,
        r.inputs.skipped_predictions_unknown_category,
        r.inputs.skipped_annotations_unknown_category,
    );
}

/// pycocotools' 12 summary numbers, and AP at the largest maxDets with its interval.
fn write_coco(s: &mut String, r: &Report) {
    let st = &r.coco.stats;
    let _ = writeln!(s, "## COCO box metrics ({:?} mode, maxDets {:?})\n", r.coco.mode, r.coco.max_dets);
    let _ = writeln!(
        s,
        "| AP | AP50 | AP75 | AP small | AP medium | AP large | AR@{} | AR@{} | AR@{} | AR small | AR medium | AR large |",
        r.coco.max_dets[0],
        r.coco.max_dets[1.min(r.coco.max_dets.len() - 1)],
        r.coco.max_dets[2.min(r.coco.max_dets.len() - 1)]
    );
    let _ = writeln!(s, "|{}", "---|".repeat(12));
    let vals = [
        st.ap,
        st.ap50,
        st.ap75,
        st.ap_small,
        st.ap_medium,
        st.ap_large,
        st.ar_1,
        st.ar_10,
        st.ar_100,
        st.ar_small,
        st.ar_medium,
        st.ar_large,
    ];
    let _ = writeln!(s, "| {} |\n", vals.iter().map(|&v| f(v)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(
        s,
        "AP .50:.95 at maxDets {}: {}{}\n",
        r.coco.max_dets.last().unwrap_or(&0),
        f(r.coco.ap_at_max_dets),
        ci(r.bootstrap.as_ref().map(|b| &b.ap))
    );
}

/// The scan-level ROC AUC, Pd at Pfa and Pfa at Pd, with intervals.
fn write_operating_points(s: &mut String, r: &Report) {
    let b = r.bootstrap.as_ref();
    let _ = writeln!(s, "## Operating points (per scan)\n");
    let Some(roc) = &r.atr.roc else {
        s.push_str("No ROC: the set needs both threat and clean scans.\n\n");
        return;
    };
    let _ = writeln!(
        s,
        "{} threat scans, {} clean scans. ROC AUC {}{}.\n",
        roc.n_positive,
        roc.n_negative,
        f(roc.auc),
        ci(b.and_then(|b| b.auc.as_ref()))
    );
    let _ = writeln!(s, "| operating point | Pd | Pfa | threshold |\n|---|---|---|---|");
    for (i, p) in r.atr.pd_at_pfa.iter().enumerate() {
        let iv = b.and_then(|b| if i == 0 { b.pd_at_pfa_1.as_ref() } else { b.pd_at_pfa_5.as_ref() });
        let _ = writeln!(
            s,
            "| Pd at Pfa <= {:.0}% | {}{} | {} | {} |",
            p.target * 100.0,
            f(p.pd),
            ci(iv),
            f(p.pfa),
            fo(p.threshold)
        );
    }
    for p in &r.atr.pfa_at_pd {
        let _ =
            writeln!(s, "| Pfa at Pd >= {:.0}% | {} | {} | {} |", p.target * 100.0, f(p.pd), f(p.pfa), fo(p.threshold));
    }
    s.push('\n');
}

/// Scan-level Pd of each class at each Pfa limit.
fn write_class_scan_pd(s: &mut String, r: &Report) {
    let rows = &r.atr.per_class_scan;
    let Some(first) = rows.first() else { return };
    let limits: Vec<f64> = first.pd_at_pfa.iter().map(|p| p.target).collect();
    let _ = writeln!(
        s,
        "Scan-level Pd per class (positives: scans holding the class; negatives: scans without any \
         threat; score: the scan's highest detection of the class):\n"
    );
    let _ = writeln!(
        s,
        "| class | threat scans | clean scans | ROC AUC | {} |\n|---|---|---|---|{}",
        pfa_limit_headers(&limits),
        "---|".repeat(limits.len())
    );
    for row in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            row.name,
            row.n_positive,
            row.n_negative,
            fo(row.auc),
            pd_cells(&row.pd_at_pfa, limits.len())
        );
    }
    s.push('\n');
}

/// FROC sensitivities, then AP, AR, Pd and false alarms of each class.
fn write_froc_and_classes(s: &mut String, r: &Report) {
    let fr = &r.atr.froc;
    let _ = writeln!(
        s,
        "FROC: mean sensitivity {} over {} FP/scan ({}).\n",
        f(fr.mean_sensitivity),
        fr.sensitivity_at.iter().map(|p| format!("{}", p.0)).collect::<Vec<_>>().join(", "),
        fr.sensitivity_at.iter().map(|p| f(p.1)).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        s,
        "## Per class (Pd at score >= {}, hit: IoU >= {}{})\n",
        r.config.atr.alarm_threshold,
        r.config.atr.hit_rule.min_iou,
        if r.config.atr.hit_rule.centre_inside { " or centre inside" } else { "" }
    );
    let _ =
        writeln!(s, "| class | AP | AP50 | AR | truths | Pd | false alarms / scan |\n|---|---|---|---|---|---|---|");
    for (c, p) in r.coco.per_category.iter().zip(&r.atr.per_class) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.3} |",
            c.name,
            f(c.ap),
            f(c.ap50),
            f(c.ar),
            p.n_truth,
            fo(p.pd),
            p.false_alarms_per_scan
        );
    }
}

/// AP, Pd and scan-level ROC of each CNR bin (nothing when no truth carries a CNR).
fn write_by_difficulty(s: &mut String, r: &Report) {
    if r.atr.by_cnr.is_empty() {
        return;
    }
    let limits = &r.config.atr.pfa_limits;
    let _ = writeln!(
        s,
        "\n## By difficulty (CNR)\n\nTruths by their CNR; threat scans by their hardest threat (lowest CNR), each bin \
         against all {} scans without a threat. AP: the other bins' truths count as crowd regions (ignored). \
         {} truths carry no CNR.\n",
        r.atr.per_class_scan.first().map_or(0, |row| row.n_negative),
        r.atr.n_truth_without_cnr
    );
    let _ = writeln!(
        s,
        "| difficulty (CNR) | truths | AP | AP50 | Pd at score >= {} | threat scans | scan ROC AUC | {} |\n|---|---|---|---|---|---|---|{}",
        r.config.atr.alarm_threshold,
        pfa_limit_headers(limits),
        "---|".repeat(limits.len())
    );
    for bin in &r.atr.by_cnr {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            bin_label(bin.cnr_min, bin.cnr_max),
            bin.n_truth,
            fo(bin.ap),
            fo(bin.ap50),
            fo(bin.pd),
            bin.n_scans,
            fo(bin.scan_auc),
            pd_cells(&bin.scan_pd_at_pfa, limits.len())
        );
    }
}

/// TIDE's AP50 and the dAP50 and count of each error type.
fn write_tide(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\n## Error breakdown (TIDE, AP50 {})\n\n| | cls | loc | both | dupe | bkg | missed |\n|---|---|---|---|---|---|---|",
        f(r.tide.ap50)
    );
    let _ = writeln!(
        s,
        "| dAP50 | {} |\n| count | {} |",
        ERROR_TYPES.iter().map(|t| format!("{:.3}", r.tide.delta_ap[t])).collect::<Vec<_>>().join(" | "),
        ERROR_TYPES.iter().map(|t| r.tide.counts[t].to_string()).collect::<Vec<_>>().join(" | ")
    );
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Markdown tables and headings to HTML (only the subset [`markdown`] writes).
fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let esc = html_escape(line);
        if line.starts_with('|') {
            if line.contains("---") {
                continue;
            }
            let cells: Vec<&str> = esc.trim_matches('|').split('|').map(str::trim).collect();
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                out.push_str("<table>\n");
                in_table = true;
            }
            out.push_str("<tr>");
            for c in cells {
                let _ = write!(out, "<{tag}>{c}</{tag}>");
            }
            out.push_str("</tr>\n");
            continue;
        }
        if in_table {
            out.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = esc.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{h}</h2>");
        } else if let Some(h) = esc.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{h}</h1>");
        } else if !line.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", esc.replace('`', ""));
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out
}

/// The HTML page: the summary plus PR, ROC, FROC and score-histogram plots, all inline.
pub fn html(ev: &Evaluation) -> Result<String, EvalError> {
    let r = &ev.report;
    let curves: Vec<(String, Vec<f64>)> =
        r.coco.per_category.iter().map(|c| (c.name.clone(), c.pr_curve_iou50.clone())).collect();
    let mut figures = vec![plots::pr_curves(&r.coco.rec_thrs, &curves)?];
    if let Some(roc) = &r.atr.roc {
        figures.push(plots::roc_plot(roc)?);
    }
    figures.push(plots::froc_plot(&r.atr.froc)?);
    figures.push(plots::score_histogram(&ev.scans)?);
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nii-atr evaluation</title>\n\
         <style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}\
         .plots{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>\n",
    );
    page.push_str(&markdown_to_html(&markdown(r)));
    page.push_str("<h2>Plots</h2>\n<div class=\"plots\">\n");
    for svg in figures {
        let _ = writeln!(page, "<div>{svg}</div>");
    }
    page.push_str("</div>\n</body></html>\n");
    Ok(page)
}

/// Writes `report.json`, `summary.md` and `report.html` into `dir` (created if missing).
pub fn write_report(ev: &Evaluation, dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Write { path: dir.to_path_buf(), source })?;
    let json = serde_json::to_string_pretty(&ev.report)
        .map_err(|source| EvalError::Json { path: dir.join("report.json"), source })?;
    let files = [
        (dir.join("report.json"), json + "\n"),
        (dir.join("summary.md"), markdown(&ev.report)),
        (dir.join("report.html"), html(ev)?),
    ];
    for (path, text) in &files {
        write(path, text)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
