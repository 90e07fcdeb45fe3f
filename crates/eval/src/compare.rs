//! `compare`: several reports of the same scans side by side, with a paired bootstrap of each
//! candidate against the baseline (the first report).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nii_atr_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::atr::bin_label;
use crate::bootstrap::{BootstrapConfig, PairedDifference, paired};
use crate::dataset::{self, Dataset, Predictions};
use crate::report::{self, EvalConfig, Evaluation, Report};

/// `eval compare` output (schema version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Schema version of `comparison.json` (1).
    pub schema_version: u32,
    /// The baseline's model name (the first report).
    pub baseline: String,
    /// Every compared model, baseline first.
    pub models: Vec<ComparedModel>,
    /// How the scans were resampled for the paired bootstrap.
    pub bootstrap: BootstrapConfig,
    /// Each candidate against the baseline.
    pub paired: Vec<PairedResult>,
}

/// One model's headline numbers, as its report holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComparedModel {
    /// The model's name in its report.
    pub model: String,
    /// The report's path.
    pub report: String,
    /// COCO AP .50:.95 (`stats[0]`).
    pub ap: f64,
    /// COCO AP at IoU 0.5.
    pub ap50: f64,
    /// AP .50:.95 at the largest maxDets.
    pub ap_at_max_dets: f64,
    /// Scan-level ROC AUC.
    pub roc_auc: Option<f64>,
    /// Scan-level Pd at Pfa <= 5 %.
    pub pd_at_pfa_5: Option<f64>,
    /// FROC mean sensitivity over the configured FP-per-scan rates.
    pub froc_mean_sensitivity: f64,
    /// Per difficulty bin of the report's `--cnr-bins` (re-scored, so reports written before
    /// the bins carried AP get it too); empty without CNRs in the ground truth.
    #[serde(default)]
    pub by_difficulty: Vec<ComparedBin>,
}

/// One difficulty bin of a compared model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComparedBin {
    /// The bin in words, e.g. "hard [0, 3)".
    pub bin: String,
    /// COCO AP at IoU 0.5 of the bin's truths.
    pub ap50: Option<f64>,
    /// Scan-level ROC AUC of the threat scans whose hardest threat is in the bin.
    pub scan_auc: Option<f64>,
}

/// One candidate's paired differences against the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairedResult {
    /// The candidate's model name.
    pub candidate: String,
    /// Each headline metric's difference, candidate minus baseline.
    pub differences: Vec<PairedDifference>,
}

/// Re-scores a report's inputs (same config, no bootstrap) for the paired bootstrap.
fn rescore(report: &Report, path: &Path) -> Result<Evaluation, EvalError> {
    let gt = PathBuf::from(&report.inputs.ground_truth.path);
    let preds = PathBuf::from(&report.inputs.predictions.path);
    let dataset = Dataset::from_coco_json(&gt).map_err(|e| EvalError::Report {
        path: path.to_path_buf(),
        reason: format!("cannot re-read its ground truth for the paired bootstrap: {}", nii_atr_core::error_chain(&e)),
    })?;
    let predictions = if preds.is_dir() {
        dataset::yolo_predictions(&preds, &dataset)
    } else {
        Predictions::from_coco_json(&preds, &dataset)
    }
    .map_err(|e| EvalError::Report {
        path: path.to_path_buf(),
        reason: format!("cannot re-read its predictions for the paired bootstrap: {}", nii_atr_core::error_chain(&e)),
    })?;
    if report::fnv1a64_file(&preds) != report.inputs.predictions.fnv1a64 && !preds.is_dir() {
        return Err(EvalError::Report {
            path: path.to_path_buf(),
            reason: format!("{} changed since the report was written", preds.display()),
        });
    }
    let config = EvalConfig { bootstrap: None, ..report.config.clone() };
    report::evaluate(&dataset, &predictions, &config, &report.model)
}

/// Puts reports side by side: each re-scored from its inputs (so reports written before a
/// metric existed get it too) and paired-bootstrapped against the first, the baseline.
pub fn compare(
    paths: &[PathBuf],
    bootstrap: &BootstrapConfig,
    progress: &dyn Progress,
) -> Result<Comparison, EvalError> {
    if paths.len() < 2 {
        return Err(EvalError::Params(format!("a comparison needs at least two reports, got {}", paths.len())));
    }
    let reports: Vec<Report> = paths.iter().map(|p| report::read_report(p)).collect::<Result<_, _>>()?;
    let base_gt = &reports[0].inputs.ground_truth;
    for (r, p) in reports.iter().zip(paths).skip(1) {
        if r.inputs.ground_truth.fnv1a64 != base_gt.fnv1a64 || base_gt.fnv1a64.is_none() {
            return Err(EvalError::Report {
                path: p.clone(),
                reason: format!(
                    "scored other ground truth ({}) than the baseline ({}); a comparison needs the same scans",
                    r.inputs.ground_truth.path, base_gt.path
                ),
            });
        }
    }
    let mut models: Vec<ComparedModel> = reports
        .iter()
        .zip(paths)
        .map(|(r, p)| ComparedModel {
            model: r.model.clone(),
            report: p.display().to_string(),
            ap: r.coco.stats.ap,
            ap50: r.coco.stats.ap50,
            ap_at_max_dets: r.coco.ap_at_max_dets,
            roc_auc: r.atr.roc.as_ref().map(|roc| roc.auc),
            pd_at_pfa_5: r.atr.pd_at_pfa.get(1).map(|p| p.pd),
            froc_mean_sensitivity: r.atr.froc.mean_sensitivity,
            by_difficulty: Vec::new(),
        })
        .collect();
    bootstrap.validate()?;
    let pb = progress;
    pb.set_length(reports.len() as u64);
    pb.set_message("re-scoring for the paired bootstrap");
    let mut evals = Vec::new();
    for ((r, p), m) in reports.iter().zip(paths).zip(&mut models) {
        let e = rescore(r, p)?;
        m.by_difficulty = (e.report.atr.by_cnr.iter())
            .map(|b| ComparedBin { bin: bin_label(b.cnr_min, b.cnr_max), ap50: b.ap50, scan_auc: b.scan_auc })
            .collect();
        evals.push(e);
        pb.inc(1);
    }
    pb.set_length((bootstrap.resamples * (evals.len() - 1)) as u64);
    pb.set_message("paired bootstrap resamples");
    let baseline = evals[0].model_scans();
    let paired_results: Vec<PairedResult> = evals
        .iter()
        .skip(1)
        .map(|e| PairedResult {
            candidate: e.report.model.clone(),
            differences: paired(&baseline, &e.model_scans(), bootstrap, pb),
        })
        .collect();
    Ok(Comparison {
        schema_version: 1,
        baseline: reports[0].model.clone(),
        models,
        bootstrap: bootstrap.clone(),
        paired: paired_results,
    })
}

impl Comparison {
    /// The comparison as Markdown: headline metrics, the difficulty split, paired differences.
    pub fn markdown(&self) -> String {
        let c = self;
        let o = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"));
        let mut s = String::from(
            "# Model comparison\n\n| model | AP | AP50 | AP@maxDets | ROC AUC | Pd@Pfa5% | FROC mean sens. |\n|---|---|---|---|---|---|---|\n",
        );
        for m in &c.models {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {:.3} | {} | {} | {:.3} |",
                m.model,
                m.ap,
                m.ap50,
                m.ap_at_max_dets,
                o(m.roc_auc),
                o(m.pd_at_pfa_5),
                m.froc_mean_sensitivity
            );
        }
        // By difficulty, when every report split its truths by the same bins.
        let bins: Vec<&str> = c.models[0].by_difficulty.iter().map(|b| b.bin.as_str()).collect();
        if !bins.is_empty()
            && c.models.iter().all(|m| m.by_difficulty.iter().map(|b| b.bin.as_str()).eq(bins.iter().copied()))
        {
            let _ = writeln!(
                s,
                "\nBy difficulty (AP50 / scan ROC AUC of the threat scans whose hardest threat is in the bin):\n\n| model | {} |\n|---|{}",
                bins.join(" | "),
                "---|".repeat(bins.len())
            );
            for m in &c.models {
                let cells: Vec<String> =
                    m.by_difficulty.iter().map(|b| format!("{} / {}", o(b.ap50), o(b.scan_auc))).collect();
                let _ = writeln!(s, "| {} | {} |", m.model, cells.join(" | "));
            }
        }
        let _ = writeln!(
            s,
            "\nPaired bootstrap against {} ({} resamples of the scans, {:.0}% intervals):\n",
            c.baseline,
            c.bootstrap.resamples,
            c.bootstrap.confidence * 100.0
        );
        s.push_str("| candidate | metric | baseline | candidate | difference | interval | P(candidate better) | significant |\n|---|---|---|---|---|---|---|---|\n");
        for p in &c.paired {
            for d in &p.differences {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.3} | {:.3} | {:+.3} | [{:+.3}, {:+.3}] | {:.3} | {} |",
                    p.candidate,
                    d.metric,
                    d.baseline,
                    d.candidate,
                    d.difference.estimate,
                    d.difference.low,
                    d.difference.high,
                    d.p_candidate_better,
                    if d.significant { "yes" } else { "no" }
                );
            }
        }
        s
    }
}
