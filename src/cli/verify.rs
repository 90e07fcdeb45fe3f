//! `nii-atr verify --dataset <split>`: preprocessing and declared-cargo verification (no models)
//! over a generated split, scored against its `truth.jsonl`; optional report folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::{Limits, read_scan};
use nii_atr_core::truth::CaseTruth;
use nii_atr_core::truth::{TruthError, read_truth};
use nii_atr_core::verify::{
    CheckKind, CheckResult, CommodityReference, ReferenceError, VerificationResult, VerifyConfig, VerifyConfigError,
    verify,
};
use nii_atr_eval::verification::VerificationScores;

/// Arguments of `nii-atr verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A generated split folder holding `truth.jsonl` and the case folders (e.g. `.../cargo-bench/test`).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Folder for verification.json (scores), verification.md and cases.jsonl (per-case results).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Pipeline config whose `[preprocess]` and `[verify]` sections are used (models are not loaded).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only the first N cases.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Why `nii-atr verify` could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyCliError {
    /// The split's `truth.jsonl`.
    #[error(transparent)]
    Truth(#[from] TruthError),
    /// The commodity reference the config adds.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The pipeline config is not valid TOML or does not fit its sections.
    #[error("{}: {reason}", .path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A `[verify]` value out of range. Not a `source`: the message already says it.
    #[error("{}: {reason}", .path.display())]
    Check {
        /// The config file (or `[verify] defaults`).
        path: PathBuf,
        /// Which key and the rule it breaks.
        reason: VerifyConfigError,
    },
    /// A file could not be read or written.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The worker thread pool could not be built.
    #[error("thread pool: {0}")]
    Threads(String),
}

/// The sections of a pipeline config this command reads; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
struct Sections {
    #[serde(default)]
    preprocess: PreprocessOptions,
    #[serde(default)]
    verify: VerifyConfig,
}

/// One case's outcome as written to `cases.jsonl`.
#[derive(Debug, Serialize)]
struct CaseLine<'a> {
    case_id: &'a str,
    mismatch: nii_atr_core::truth::MismatchKind,
    true_load_kg: f64,
    concealed_kg: f64,
    declared_kg: f64,
    commodities: Vec<&'a str>,
    result: &'a VerificationResult,
}

/// Verifies every case of the split (in parallel, with a progress bar), prints the summary,
/// writes the report folder when asked, and returns the scores.
pub fn run(args: &VerifyArgs) -> Result<VerificationScores, VerifyCliError> {
    let start = Instant::now();
    let sections = match &args.config {
        Some(p) => {
            let text = nii_atr_core::io::read_text_capped(p, nii_atr_core::inspect::config::MAX_CONFIG_BYTES)
                .map_err(|e| VerifyCliError::Config { path: p.clone(), reason: e.reason() })?;
            nii_atr_core::io::parse_toml::<Sections>(&text)
                .map_err(|e| VerifyCliError::Config { path: p.clone(), reason: e.to_string() })?
        }
        None => Sections::default(),
    };
    let cfg = sections.verify;
    let config_path = args.config.clone().unwrap_or_else(|| PathBuf::from("[verify] defaults"));
    cfg.check().map_err(|reason| VerifyCliError::Check { path: config_path.clone(), reason })?;
    let base = args.config.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
    let reference = CommodityReference::with_extra(cfg.reference.as_ref().map(|p| base.join(p)).as_deref())?;
    let mut truth = read_truth(&args.dataset)?;
    if let Some(n) = args.limit {
        truth.truncate(n);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .map_err(|e| VerifyCliError::Threads(e.to_string()))?;
    let bar = ProgressBar::new(truth.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} verify [{bar:40}] {pos}/{len} scans, {per_sec}, eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let limits = Limits::default();
    let results: Vec<VerificationResult> = pool.install(|| {
        truth
            .par_iter()
            .map(|t| {
                let r = verify_case(&args.dataset, t, &limits, &sections.preprocess, &reference, &cfg);
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let scores = VerificationScores::from_cases(truth.iter().zip(&results));
    print_summary(&scores, &results, start.elapsed().as_secs_f64());
    if let Some(dir) = &args.report {
        write_report(dir, &truth, &results, &scores)?;
        println!("report: {}", dir.display());
    }
    Ok(scores)
}

/// Reads, preprocesses and verifies one case; an unreadable scan gives a result whose checks
/// are all skipped with the reason.
fn verify_case(
    split: &Path,
    t: &CaseTruth,
    limits: &Limits,
    pre: &PreprocessOptions,
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> VerificationResult {
    let path = split.join(&t.scan);
    let done = read_scan(&path, limits)
        .map_err(|e| e.to_string())
        .and_then(|scan| preprocess(&scan, pre).map(|p| (scan, p)).map_err(|e| e.to_string()));
    match done {
        Ok((scan, p)) => verify(&scan, &p.attenuation, &p.materials, reference, cfg),
        Err(e) => VerificationResult {
            measures: None,
            measure_error: Some(e.clone()),
            checks: CheckKind::ALL
                .map(|k| CheckResult::skipped(k, format!("the scan could not be read: {e}")))
                .to_vec(),
        },
    }
}

fn print_summary(s: &VerificationScores, results: &[VerificationResult], seconds: f64) {
    let pct = |v: Option<f64>| v.map_or("    -".to_string(), |v| format!("{:5.1}", 100.0 * v));
    println!("verified {} scans in {seconds:.1} s ({} not measurable)", s.cases, s.unmeasured);
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>7} {:>7}",
        "check", "ran", "skip", "pos", "TP", "FP", "prec %", "rec %"
    );
    for (name, c) in &s.checks {
        println!(
            "{name:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>7} {:>7}",
            c.evaluated,
            c.skipped,
            c.positives,
            c.true_positives,
            c.false_positives,
            pct(c.precision),
            pct(c.recall)
        );
    }
    let e = &s.mass_error_contents;
    let n = &s.mass_error_no_concealment;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} %"));
    println!(
        "mass error vs contents: median {} p95 {} ({} cases); load only, nothing concealed: median {} p95 {} ({} cases)",
        f(e.median_abs_pct),
        f(e.p95_abs_pct),
        e.cases,
        f(n.median_abs_pct),
        f(n.p95_abs_pct),
        n.cases
    );
    let r = |x: &nii_atr_eval::verification::Rate| format!("{} ({}/{})", f(x.rate.map(|v| 100.0 * v)), x.hits, x.cases);
    println!(
        "under-declared >= 25 % caught: {} (penetrable loads: {})",
        r(&s.underdeclared_large_recall),
        r(&s.underdeclared_large_recall_penetrable)
    );
    let p = &s.mass_error_penetrable;
    println!(
        "mass error, penetrable loads: median {} p95 {} ({} cases)",
        f(p.median_abs_pct),
        f(p.p95_abs_pct),
        p.cases
    );
    println!(
        "false flags on correct declarations: {} (nothing concealed: {})",
        r(&s.false_flags_correct),
        r(&s.false_flags_correct_no_concealment)
    );
    println!(
        "declared empty but loaded caught: {}; truly empty flagged: {}",
        r(&s.empty_recall),
        r(&s.empty_false_flags)
    );
    let skipped_reasons: usize = results.iter().filter(|v| v.measure_error.is_some()).count();
    if skipped_reasons > 0
        && let Some(why) = results.iter().find_map(|v| v.measure_error.as_deref())
    {
        println!("{skipped_reasons} scans not measured, e.g.: {why}");
    }
}

fn write_report(
    dir: &Path,
    truth: &[CaseTruth],
    results: &[VerificationResult],
    scores: &VerificationScores,
) -> Result<(), VerifyCliError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyCliError::Io { path: path.clone(), error: source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json =
        serde_json::to_string_pretty(scores).map_err(|e| std::io::Error::other(e.to_string())).map_err(io(dir))?;
    std::fs::write(dir.join("verification.json"), json).map_err(io(&dir.join("verification.json")))?;
    std::fs::write(dir.join("verification.md"), scores.markdown()).map_err(io(&dir.join("verification.md")))?;
    let mut lines = String::new();
    for (t, r) in truth.iter().zip(results) {
        let line = CaseLine {
            case_id: &t.case_id,
            mismatch: t.mismatch.kind,
            true_load_kg: t.load.iter().map(|l| l.mass_kg).sum(),
            concealed_kg: t.threats.iter().map(|x| x.mass_kg).sum(),
            declared_kg: t.declared.goods.iter().map(|g| g.gross_mass_kg).sum(),
            commodities: t.load.iter().map(|l| l.commodity.as_str()).collect(),
            result: r,
        };
        let text = serde_json::to_string(&line).map_err(|e| std::io::Error::other(e.to_string())).map_err(io(dir))?;
        lines.push_str(&text);
        lines.push('\n');
    }
    std::fs::write(dir.join("cases.jsonl"), lines).map_err(io(&dir.join("cases.jsonl")))?;
    Ok(())
}
