//! `nii-atr eval`: score predictions made anywhere against COCO or YOLO ground truth and write
//! a report, or run a pipeline over a labelled split and score it in process (`--dataset`);
//! `nii-atr eval compare` puts reports side by side with a paired bootstrap.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nii_atr_core::progress::Progress as _;

use super::progress::Bar;

use nii_atr_eval::EvalError;
use nii_atr_eval::atr::{AtrConfig, HitRule};
use nii_atr_eval::bootstrap::BootstrapConfig;
use nii_atr_eval::coco::{CocoMode, CocoParams};
use nii_atr_eval::compare::Comparison;
use nii_atr_eval::dataset::{self, Dataset, Predictions};
use nii_atr_eval::engine::{Split, evaluate_split};
use nii_atr_eval::report::{self, EvalConfig, Evaluation};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub score: ScoreArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Put several reports side by side; paired bootstrap of each against the first.
    Compare(CompareArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// A labelled split (`annotations.json` plus case folders, as `nii-atr synth` writes):
    /// run the pipeline of `--config` over every case and score it in process.
    #[arg(long, conflicts_with_all = ["gt", "yolo_images", "predictions"])]
    pub dataset: Option<PathBuf>,
    /// Pipeline config for `--dataset` (default: models/pipeline.default.toml of this checkout
    /// or installation; see `nii-atr inspect --help`).
    #[arg(long, requires = "dataset")]
    pub config: Option<PathBuf>,
    /// With `--dataset`: only the first N cases of the split (quick looks; say so when quoting).
    #[arg(long, requires = "dataset")]
    pub limit: Option<usize>,
    /// With `--dataset`: leave out the first N cases (before `--limit`), e.g. the cases a model
    /// was selected on, so that it is scored only on cases no choice has seen.
    #[arg(long, requires = "dataset")]
    pub skip: Option<usize>,
    /// COCO instances JSON holding the ground truth.
    #[arg(long, required_unless_present_any = ["yolo_images", "dataset"])]
    pub gt: Option<PathBuf>,
    /// YOLO ground truth: list of `file_name width height` lines (image id = line number).
    #[arg(long, conflicts_with = "gt", requires = "yolo_labels")]
    pub yolo_images: Option<PathBuf>,
    /// YOLO ground truth: folder of `<image stem>.txt` label files.
    #[arg(long)]
    pub yolo_labels: Option<PathBuf>,
    /// YOLO class names, one per line (line i = class i).
    #[arg(long)]
    pub yolo_names: Option<PathBuf>,
    /// COCO results JSON, or a folder of YOLO `class cx cy w h score` files.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Folder for report.json, summary.md and report.html.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Model name shown in the report (default: the predictions file name).
    #[arg(long)]
    pub name: Option<String>,
    /// maxDets list; a tiled container scan can hold far more than 100 detections.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub max_dets: Vec<usize>,
    /// `pycocotools` reproduces its numbers exactly; `fixed` corrects two known quirks.
    #[arg(long, value_parser = super::serde_enum::<CocoMode>(&["pycocotools", "fixed"]), default_value = "pycocotools")]
    pub coco_mode: CocoMode,
    /// Detection score at which the system alarms (per-class Pd, CNR split).
    #[arg(long, default_value_t = 0.5)]
    pub alarm_threshold: f64,
    /// Lenient hit rule: minimum IoU with the truth box.
    #[arg(long, default_value_t = 0.1)]
    pub hit_iou: f64,
    /// Do not count a detection whose centre lies inside the truth box as a hit.
    #[arg(long)]
    pub no_centre_hit: bool,
    /// CNR bin edges, ascending (`inf` allowed).
    #[arg(long, value_delimiter = ',')]
    pub cnr_bins: Option<Vec<f64>>,
    /// Bootstrap resamples over scans for the intervals (0: no intervals).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 20_261_123)]
    pub seed: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Report folders (or report.json files); the first is the baseline.
    #[arg(required = true, num_args = 2..)]
    pub reports: Vec<PathBuf>,
    /// Folder for comparison.json and comparison.md (default: print only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Paired bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 20_261_123)]
    pub seed: u64,
}

pub fn run(args: &EvalArgs) -> Result<(), EvalError> {
    match &args.command {
        Some(EvalCommand::Compare(c)) => compare(c).map(|_| ()),
        None => score(&args.score).map(|_| ()),
    }
}

fn config_from(args: &ScoreArgs) -> Result<EvalConfig, EvalError> {
    let mut coco = CocoParams::with_max_dets(&args.max_dets)?;
    coco.mode = args.coco_mode;
    let mut atr = AtrConfig {
        hit_rule: HitRule { min_iou: args.hit_iou, centre_inside: !args.no_centre_hit },
        alarm_threshold: args.alarm_threshold,
        ..AtrConfig::default()
    };
    if let Some(bins) = &args.cnr_bins {
        if bins.len() < 2 || bins.iter().any(|b| b.is_nan()) || bins.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EvalError::Params(format!("--cnr-bins needs at least two ascending edges, got {bins:?}")));
        }
        atr.cnr_bins = bins.clone();
    }
    if !(0.0..=1.0).contains(&args.hit_iou) {
        return Err(EvalError::Params(format!("--hit-iou must be in [0, 1], got {}", args.hit_iou)));
    }
    Ok(EvalConfig {
        coco,
        atr,
        bootstrap: (args.bootstrap > 0).then(|| BootstrapConfig {
            resamples: args.bootstrap,
            seed: args.seed,
            ..BootstrapConfig::default()
        }),
    })
}

fn load_inputs(args: &ScoreArgs) -> Result<(Dataset, Predictions), EvalError> {
    let dataset = match (&args.gt, &args.yolo_images, &args.yolo_labels) {
        (Some(gt), _, _) => Dataset::from_coco_json(gt)?,
        (None, Some(images), Some(labels)) => dataset::yolo_dataset(images, labels, args.yolo_names.as_deref())?,
        _ => {
            return Err(EvalError::Params("give --gt <coco.json>, or --yolo-images with --yolo-labels".into()));
        }
    };
    if dataset.images.is_empty() {
        return Err(EvalError::EmptyInput {
            path: dataset.source.clone(),
            reason: "lists no images: there is nothing to score".into(),
        });
    }
    let Some(pred_path) = &args.predictions else {
        return Err(EvalError::Params("--predictions <results.json | yolo folder> is required".into()));
    };
    let predictions = if pred_path.is_dir() {
        dataset::yolo_predictions(pred_path, &dataset)?
    } else {
        Predictions::from_coco_json(pred_path, &dataset)?
    };
    Ok((dataset, predictions))
}

fn progress_bar() -> Bar {
    Bar::new("{spinner} [{elapsed_precise}] {msg} {bar:30} {pos}/{len}")
}

/// Runs the pipeline over a split and scores it; writes the report (and the COCO results
/// the engine made, so `eval compare` can re-score them) when `--report` is given.
fn score_dataset(args: &ScoreArgs, root: &Path) -> Result<Evaluation, EvalError> {
    let start = Instant::now();
    let config = config_from(args)?;
    let config_path = args.config.clone().unwrap_or_else(super::default_config);
    super::check_config(&config_path).map_err(|e| EvalError::Params(super::one_line(&e)))?;
    let mut split = Split::open(root)?;
    if args.skip.is_some() || args.limit.is_some() {
        split.select(args.skip.unwrap_or(0), args.limit)?;
    }
    // Which cases were scored, in words, when not all of them.
    let subset = match (args.skip.unwrap_or(0), args.limit) {
        (0, None) => String::new(),
        (0, Some(n)) => format!(" (first {n} only)"),
        (k, _) => format!(" (cases {k}..{} of {} only)", k + split.cases.len(), split.total),
    };
    let pipeline = nii_atr_core::inspect::Pipeline::from_path(&config_path)
        .map_err(|e| EvalError::Pipeline { path: config_path.clone(), source: Box::new(e) })?;
    println!("running {} on {} scans of {}{}", config_path.display(), split.cases.len(), root.display(), subset);
    let model = args.name.clone().unwrap_or_else(|| {
        config_path.file_stem().map_or_else(|| "pipeline".into(), |n| n.to_string_lossy().into_owned())
    });
    // One bar: the scans, then the scoring stages and bootstrap resamples.
    let pb = Bar::new("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}, eta {eta} {msg}");
    let ev = evaluate_split(&split, &pipeline, &config_path, &config, &model, args.report.as_deref(), &pb)?;
    finish(&ev, args.report.as_deref(), &pb, start)?;
    if let Some(p) = ev.report.pipeline.as_ref().filter(|p| !p.failed.is_empty()) {
        return Err(EvalError::ScansFailed { failed: p.failed.len(), total: p.n_scans });
    }
    Ok(ev)
}

/// Scores one prediction set; writes the report when `--report` is given.
pub fn score(args: &ScoreArgs) -> Result<Evaluation, EvalError> {
    if let Some(split) = &args.dataset {
        return score_dataset(args, split);
    }
    let start = Instant::now();
    let config = config_from(args)?;
    let pb = progress_bar();
    pb.set_message("reading ground truth and predictions");
    let (dataset, predictions) = load_inputs(args)?;
    let model = args.name.clone().unwrap_or_else(|| {
        args.predictions
            .as_deref()
            .and_then(Path::file_name)
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
    });
    let ev = report::evaluate_with_progress(&dataset, &predictions, &config, &model, &pb)?;
    finish(&ev, args.report.as_deref(), &pb, start)?;
    Ok(ev)
}

/// Writes the report into `report` when given, then prints the summary line, the sections only
/// a split run has, the files written and the time taken.
fn finish(ev: &Evaluation, report: Option<&Path>, pb: &Bar, start: Instant) -> Result<(), EvalError> {
    let mut written = Vec::new();
    if let Some(dir) = report {
        pb.set_message("writing report");
        written = report::write_report(ev, dir)?;
    }
    pb.finish();
    println!("{}", ev.report.summary_line());
    if let Some(p) = &ev.report.pipeline {
        print!("{}", nii_atr_eval::engine::markdown(p));
    }
    if let Some(v) = &ev.report.verification {
        print!("{}", v.markdown());
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    println!("done in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// `nii-atr eval compare`: the comparison printed, and written to `--out` when given.
pub fn compare(args: &CompareArgs) -> Result<Comparison, EvalError> {
    let start = Instant::now();
    let bootstrap = BootstrapConfig { resamples: args.bootstrap, seed: args.seed, ..BootstrapConfig::default() };
    let bar = super::progress::Bar::new("[{elapsed}] {bar:30} {pos}/{len} {msg}");
    let comparison = nii_atr_eval::compare::compare(&args.reports, &bootstrap, &bar)?;
    bar.finish();
    let md = comparison.markdown();
    print!("{md}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Write { path: dir.clone(), source })?;
        let json = serde_json::to_string_pretty(&comparison)
            .map_err(|source| EvalError::Json { path: dir.join("comparison.json"), source })?;
        for (name, text) in [("comparison.json", json + "\n"), ("comparison.md", md)] {
            std::fs::write(dir.join(name), text).map_err(|source| EvalError::Write { path: dir.join(name), source })?;
            println!("wrote {}", dir.join(name).display());
        }
    }
    println!("compared {} models in {:.2} s", comparison.models.len(), start.elapsed().as_secs_f64());
    Ok(comparison)
}
