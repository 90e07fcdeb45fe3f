//! What an evaluation will allocate, computed from the counts before anything is allocated.
//!
//! Inputs are capped by size ([`crate::dataset::MAX_INPUT_BYTES`]), but a small input can ask
//! for large results: pycocotools' precision table has one cell per category x area range x
//! maxDets x IoU threshold x recall point, so a 1.5 MB ground truth listing 100,000 categories
//! asked for 9.7 GB and the process aborted. Here every table whose size does not follow the
//! input's (precision and recall, the per-scan match tables, the largest IoU matrix, the
//! bootstrap index, TIDE's matrices, the report rows) is sized from the counts first, and an
//! evaluation over [`MAX_RESULT_BYTES`] or [`MAX_CATEGORIES`] is refused with a typed error.
//!
//! Categories with neither ground truth nor detections get no table at all (their numbers
//! are -1, as pycocotools fills them), so they cost only their report row.

use std::collections::{HashMap, HashSet};
use std::mem::size_of;

use crate::EvalError;
use crate::coco::CocoParams;
use crate::dataset::{Dataset, GroundTruth, Predictions};
use crate::report::EvalConfig;

/// Most categories an evaluation takes. Each one costs a report row and a 101-point
/// precision-recall curve (about 2.5 KB over `report.json`, `summary.md` and `report.html`,
/// and as much again in memory while they are written),
/// whether or not anything is labelled with it; the largest public detection taxonomy
/// (V3Det) has 13,204 classes, a threat taxonomy tens.
pub const MAX_CATEGORIES: usize = 50_000;

/// Most bytes the result tables of one evaluation may take, as computed by
/// [`evaluation_size`]. 1 million detections over 10,000 scans and 80 classes come to about
/// 0.35 GiB (the whole run peaks at 0.42 GB), so the cap leaves room for ten times that.
pub const MAX_RESULT_BYTES: u64 = 4 << 30;

/// Most entries of each list of an [`EvalConfig`] (IoU and recall thresholds, maxDets, area
/// ranges, CNR bins, Pfa limits, FROC rates): each multiplies the work, and a `report.json`
/// read by `eval compare` may carry any list.
pub const MAX_CONFIG_LIST: usize = 1000;

/// One table the evaluation allocates.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table, in words ("the precision table").
    pub what: &'static str,
    /// The counts its size comes from, in words.
    pub from: String,
    /// Its size, bytes.
    pub bytes: u64,
}

/// The tables of one evaluation, and the counts behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSize {
    /// Categories of the ground truth.
    pub categories: usize,
    /// Categories with ground truth or detections: only they get precision and recall tables.
    pub active_categories: usize,
    /// Scans (images) of the ground truth.
    pub images: usize,
    /// Every table counted.
    pub tables: Vec<Table>,
}

impl ResultSize {
    /// All tables together, bytes (saturating).
    pub fn total(&self) -> u64 {
        self.tables.iter().fold(0u64, |a, t| a.saturating_add(t.bytes))
    }

    /// The largest table.
    pub fn largest(&self) -> Option<&Table> {
        self.tables.iter().max_by_key(|t| t.bytes)
    }

    fn add(&mut self, what: &'static str, from: String, bytes: u64) {
        self.tables.push(Table { what, from, bytes });
    }

    /// A [`EvalError::ResultTooLarge`] naming `dataset` when the total is over `limit`.
    pub fn check(&self, dataset: &Dataset, limit: u64) -> Result<(), EvalError> {
        let bytes = self.total();
        if bytes <= limit {
            return Ok(());
        }
        let largest =
            self.largest().map_or_else(String::new, |t| format!("{}, {}: {}", t.what, human_bytes(t.bytes), t.from));
        Err(EvalError::ResultTooLarge {
            path: dataset.source.clone(),
            categories: self.categories,
            images: self.images,
            bytes,
            limit,
            largest,
        })
    }
}

/// `n` bytes in binary units, as the caps are given: "9.12 GiB".
pub fn human_bytes(n: u64) -> String {
    let (value, unit) = match n {
        0..0x10_0000 => (n as f64 / 1024.0, "KiB"),
        0x10_0000..0x4000_0000 => (n as f64 / f64::from(1u32 << 20), "MiB"),
        _ => (n as f64 / f64::from(1u32 << 30), "GiB"),
    };
    format!("{value:.2} {unit}")
}

/// The product of `factors`, saturating at `u64::MAX`.
fn product(factors: &[usize]) -> u64 {
    factors.iter().fold(1u64, |a, &f| a.saturating_mul(f as u64))
}

/// A [`EvalError::TooManyCategories`] when `dataset` lists more than [`MAX_CATEGORIES`].
pub fn check_categories(dataset: &Dataset) -> Result<(), EvalError> {
    check_category_count(&dataset.source, dataset.categories.len())
}

pub(crate) fn check_category_count(path: &std::path::Path, categories: usize) -> Result<(), EvalError> {
    if categories > MAX_CATEGORIES {
        return Err(EvalError::TooManyCategories { path: path.to_path_buf(), categories, limit: MAX_CATEGORIES });
    }
    Ok(())
}

/// A [`EvalError::Params`] when a list of `config` is longer than [`MAX_CONFIG_LIST`].
pub fn check_config(config: &EvalConfig) -> Result<(), EvalError> {
    let c = &config.coco;
    let a = &config.atr;
    for (name, len) in [
        ("IoU thresholds", c.iou_thrs.len()),
        ("recall thresholds", c.rec_thrs.len()),
        ("maxDets", c.max_dets.len()),
        ("area ranges", c.area_ranges.len()),
        ("CNR bin edges", a.cnr_bins.len()),
        ("Pfa limits", a.pfa_limits.len()),
        ("FROC false-positive rates", a.froc_fp_per_scan.len()),
    ] {
        if len > MAX_CONFIG_LIST {
            return Err(EvalError::Params(format!(
                "{len} {name}, more than the {MAX_CONFIG_LIST} an evaluation takes"
            )));
        }
    }
    Ok(())
}

/// Counts per (image, category) and per image that the table sizes come from.
struct Counts {
    /// Per (image, category) with truth or detections: (truths, crowd included; detections).
    groups: HashMap<(i64, i64), (usize, usize)>,
    /// Per image with truth or detections: (non-crowd truths, detections).
    images: HashMap<i64, (usize, usize)>,
    /// Categories with truth or detections.
    active: usize,
}

impl Counts {
    fn new(dataset: &Dataset, predictions: &Predictions) -> Self {
        let mut groups: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
        let mut images: HashMap<i64, (usize, usize)> = HashMap::new();
        let mut active = HashSet::new();
        for g in &dataset.annotations {
            groups.entry((g.image_id, g.category_id)).or_default().0 += 1;
            images.entry(g.image_id).or_default().0 += usize::from(!g.iscrowd);
            active.insert(g.category_id);
        }
        for d in &predictions.detections {
            groups.entry((d.image_id, d.category_id)).or_default().1 += 1;
            images.entry(d.image_id).or_default().1 += 1;
            active.insert(d.category_id);
        }
        Self { groups, images, active: active.len() }
    }
}

/// The tables of [`crate::coco::evaluate`]: precision and recall of the categories with
/// truth or detections, the per-(scan, category) match tables it keeps, and the largest IoU
/// matrix (one per worker thread at a time).
pub fn coco_size(dataset: &Dataset, predictions: &Predictions, params: &CocoParams) -> ResultSize {
    let counts = Counts::new(dataset, predictions);
    let mut size = ResultSize {
        categories: dataset.categories.len(),
        active_categories: counts.active,
        images: dataset.images.len(),
        tables: Vec::new(),
    };
    add_coco(&mut size, &counts, params, "");
    size
}

fn add_coco(size: &mut ResultSize, counts: &Counts, p: &CocoParams, suffix: &str) {
    let (n_t, n_r, n_a, n_m) = (p.iou_thrs.len(), p.rec_thrs.len(), p.area_ranges.len(), p.max_dets.len());
    let max_det = p.max_dets.iter().copied().max().unwrap_or(100);
    let active = counts.active;
    size.add(
        "the precision and recall tables",
        format!(
            "{active} categories with truth or detections x {n_a} area ranges x {n_m} maxDets x {n_t} IoU \
             thresholds x {n_r} recall points{suffix}"
        ),
        product(&[active, n_a, n_m, n_t, n_r + 1, size_of::<f64>()]),
    );
    // Per (scan, category): kept scores, one outcome byte per IoU threshold and detection for
    // each area range, and the vectors' own headers.
    let (mut tables, mut largest_iou, mut kept_total) = (0u64, 0u64, 0u64);
    let per_group = product(&[n_a, 2 * size_of::<Vec<u8>>()]).saturating_add(128);
    for &(n_g, n_d) in counts.groups.values() {
        let kept = n_d.min(max_det);
        kept_total = kept_total.saturating_add(kept as u64);
        tables = tables
            .saturating_add(product(&[kept, size_of::<f64>()]))
            .saturating_add(product(&[n_a, n_t, kept]))
            .saturating_add(per_group);
        largest_iou = largest_iou.max(product(&[kept, n_g, size_of::<f64>()]));
    }
    size.add(
        "the match tables",
        format!(
            "{} (scan, category) pairs, {kept_total} detections kept x {n_t} IoU thresholds x {n_a} area \
             ranges{suffix}",
            counts.groups.len()
        ),
        tables,
    );
    size.add(
        "the IoU matrices",
        format!("the largest (scan, category) pair's detections x truths, once per worker thread{suffix}"),
        largest_iou.saturating_mul(rayon::current_num_threads() as u64),
    );
}

/// Every table of [`crate::report::evaluate`]: the COCO tables (twice when the CNR bins
/// re-score the set bin by bin), the bootstrap's index, TIDE's IoU matrices and the report's
/// per-category and per-scan rows.
pub fn evaluation_size(dataset: &Dataset, predictions: &Predictions, config: &EvalConfig) -> ResultSize {
    let counts = Counts::new(dataset, predictions);
    let (n_k, n_i) = (dataset.categories.len(), dataset.images.len());
    let mut size = ResultSize { categories: n_k, active_categories: counts.active, images: n_i, tables: Vec::new() };
    let p = &config.coco;
    add_coco(&mut size, &counts, p, "");
    if dataset.annotations.iter().any(|g| g.cnr.is_some()) {
        // Each CNR bin is scored on a copy of the set while the main evaluation is kept.
        add_coco(&mut size, &counts, p, ", again for a CNR bin");
        size.add(
            "the ground-truth copy of a CNR bin",
            format!("{} annotations", dataset.annotations.len()),
            product(&[dataset.annotations.len(), size_of::<GroundTruth>()]),
        );
    }
    let max_det = p.max_dets.iter().copied().max().unwrap_or(100);
    let kept: usize = counts.groups.values().map(|&(_, n_d)| n_d.min(max_det)).sum();
    if config.bootstrap.is_some() {
        let threads = rayon::current_num_threads();
        size.add(
            "the bootstrap index",
            format!("{kept} detections x {} IoU thresholds", p.iou_thrs.len()),
            product(&[kept, p.iou_thrs.len() + 32]),
        );
        size.add(
            "the bootstrap's per-resample tables",
            format!("{n_i} scans and {kept} detections, once per worker thread"),
            product(&[threads, n_i, 64]).saturating_add(product(&[threads, kept, 32])),
        );
    }
    // TIDE: an IoU matrix and a working copy per scan, of its kept detections x its truths.
    let tide_iou = counts
        .images
        .values()
        .map(|&(n_g, n_d)| product(&[n_d.min(max_det), n_g, 2 * size_of::<f64>()]))
        .max()
        .unwrap_or(0);
    size.add("TIDE's IoU matrices", "the largest scan's detections x truths".into(), tide_iou);
    size.add(
        "TIDE's and the FROC's records",
        format!("{} detections, {} annotations", predictions.detections.len(), dataset.annotations.len()),
        product(&[predictions.detections.len() + dataset.annotations.len(), 96]),
    );
    let lists = p.rec_thrs.len() + config.atr.pfa_limits.len() + config.atr.cnr_bins.len();
    size.add(
        "the report rows",
        format!("{n_k} categories with a {}-point curve each, {n_i} scans", p.rec_thrs.len()),
        product(&[n_k, 4096 + 32 * lists]).saturating_add(product(&[n_i, 128])),
    );
    size
}

/// Refuses `dataset` and `predictions` scored with `params` when the COCO tables would be over
/// [`MAX_RESULT_BYTES`] or the categories over [`MAX_CATEGORIES`].
pub(crate) fn check_coco(dataset: &Dataset, predictions: &Predictions, params: &CocoParams) -> Result<(), EvalError> {
    check_categories(dataset)?;
    coco_size(dataset, predictions, params).check(dataset, MAX_RESULT_BYTES)
}

/// Refuses an evaluation whose configuration lists, categories or result tables are over their
/// caps, before anything is allocated.
pub(crate) fn check_evaluation(
    dataset: &Dataset,
    predictions: &Predictions,
    config: &EvalConfig,
) -> Result<(), EvalError> {
    check_config(config)?;
    check_categories(dataset)?;
    evaluation_size(dataset, predictions, config).check(dataset, MAX_RESULT_BYTES)
}
