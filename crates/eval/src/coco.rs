//! COCO box metrics, computed as pycocotools' `COCOeval` (iouType "bbox") computes them, in f64.
//!
//! The steps follow pycocotools 2.0.10 one to one, because its numbers are the reference:
//! - detections of one (image, category) are ordered by a stable sort on descending score (numpy
//!   mergesort on `-score`), so equal scores keep their order in the results file, and only the
//!   first `maxDets[-1]` are kept;
//! - ground truth is stably reordered with not-ignored boxes first; a crowd box is always
//!   ignored and may absorb any number of detections; crowd IoU is intersection over the
//!   detection's area;
//! - a detection matches the not-yet-matched box of highest IoU >= threshold
//!   (`min(t, 1 - 1e-10)`), stopping at the first ignored box once a regular one matched;
//! - unmatched detections outside the area range are ignored; ground-truth area ranges use the
//!   annotation's `area`, detections use `w * h`;
//! - images are concatenated in ascending id order and sorted stably by score again; precision
//!   gets the monotone envelope and is read at 101 recall points with `searchsorted(side="left")`;
//!   a category without ground truth in an area range is -1 (absent) and left out of means;
//!   categories with neither ground truth nor detections hold no table at all (every value of
//!   theirs reads -1, as pycocotools fills them), so a set listing 20,000 classes of which a
//!   few are used costs what the few cost;
//! - `summarize()` reads the 12 numbers with exact equality on IoU 0.5/0.75 and maxDets.
//!
//! [`CocoMode::Fixed`] corrects two pycocotools quirks (documented on the variants); the
//! default, [`CocoMode::Pycocotools`], reproduces them.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::EvalError;
use super::dataset::{CocoDetection, Dataset, GroundTruth, Predictions};

/// Whether to reproduce pycocotools' quirks (default) or correct them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CocoMode {
    /// Bit-for-bit pycocotools: (1) `stats[0]` (AP) is read at maxDets = 100 even when the
    /// maxDets list has no 100, so it is -1 for e.g. `[1, 10, 1000]`; (2) a detection matched
    /// to a ground-truth box whose id is 0 counts as a false positive (ids are stored as
    /// "matched with id", and 0 means "unmatched").
    #[default]
    Pycocotools,
    /// AP is read at the largest maxDets, and matches to ground-truth id 0 count.
    Fixed,
}

/// One named area range, in pixels², inclusive at both ends as pycocotools tests it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaRange {
    /// pycocotools' `areaRngLbl`: "all", "small", "medium" or "large".
    pub label: String,
    /// Smallest area, px².
    pub min: f64,
    /// Largest area, px².
    pub max: f64,
}

/// The parameters of `COCOeval.params` for boxes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoParams {
    /// IoU thresholds (`iouThrs`): 0.50:0.05:0.95.
    pub iou_thrs: Vec<f64>,
    /// Recall thresholds at which precision is read (`recThrs`): 0:0.01:1.
    pub rec_thrs: Vec<f64>,
    /// Detections kept per scan (`maxDets`), sorted ascending, as `evaluate()` sorts them.
    pub max_dets: Vec<usize>,
    /// Object size ranges (`areaRng` with `areaRngLbl`).
    pub area_ranges: Vec<AreaRange>,
    /// Reproduce pycocotools' quirks or correct them.
    pub mode: CocoMode,
}

/// `np.linspace(start, stop, num)`: `i * step + start`, last value exactly `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num as f64 - 1.0);
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

impl Default for CocoParams {
    fn default() -> Self {
        let area = |label: &str, min: f64, max: f64| AreaRange { label: label.into(), min, max };
        Self {
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_ranges: vec![
                area("all", 0.0, 1e10),
                area("small", 0.0, 1024.0),
                area("medium", 1024.0, 9216.0),
                area("large", 9216.0, 1e10),
            ],
            mode: CocoMode::Pycocotools,
        }
    }
}

impl CocoParams {
    /// Default parameters with another maxDets list (sorted here, as pycocotools does).
    pub fn with_max_dets(max_dets: &[usize]) -> Result<Self, EvalError> {
        let mut p = Self { max_dets: max_dets.to_vec(), ..Self::default() };
        p.validate()?;
        Ok(p)
    }

    /// Sorts maxDets and checks the parameters: a [`EvalError::Params`] for empty lists,
    /// a maxDets of 0, non-finite thresholds or recall thresholds out of order.
    pub fn validate(&mut self) -> Result<(), EvalError> {
        self.max_dets.sort_unstable();
        if self.max_dets.is_empty() || self.max_dets[0] == 0 {
            return Err(EvalError::Params("maxDets needs at least one value, all > 0".into()));
        }
        if self.iou_thrs.is_empty() || self.rec_thrs.is_empty() || self.area_ranges.is_empty() {
            return Err(EvalError::Params(
                "IoU thresholds, recall thresholds and area ranges must not be empty".into(),
            ));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&self.iou_thrs) || !finite(&self.rec_thrs) {
            return Err(EvalError::Params("thresholds must be finite".into()));
        }
        if self.rec_thrs.windows(2).any(|w| w[0] > w[1]) {
            return Err(EvalError::Params("recall thresholds must ascend".into()));
        }
        Ok(())
    }

    fn max_det(&self) -> usize {
        *self.max_dets.last().unwrap_or(&100)
    }
}

/// IoU of a detection with a ground-truth box, as pycocotools' `bbIou` (maskApi.c) computes it.
#[inline]
pub fn bbox_iou(dt: &[f64; 4], gt: &[f64; 4], crowd: bool) -> f64 {
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = dt[2] * dt[3];
    let u = if crowd { da } else { da + gt[2] * gt[3] - i };
    i / u
}

/// Outcome of one detection at one IoU threshold and area range.
pub(crate) const TP: u8 = 1;
pub(crate) const FP: u8 = 0;
pub(crate) const IGNORED: u8 = 2;

/// pycocotools' `evaluateImg` output for one (image, category), all area ranges at once.
#[derive(Debug, Clone)]
pub(crate) struct ImageEval {
    /// Kept detection scores, descending (stable).
    pub scores: Vec<f64>,
    /// Per area range: outcome `[t * D + d]` and the number of not-ignored ground truths.
    pub areas: Vec<(Vec<u8>, usize)>,
}

/// Everything `COCOeval.evaluate(); accumulate(); summarize()` produces.
#[derive(Debug, Clone)]
pub struct CocoEvaluation {
    /// The parameters, maxDets sorted.
    pub params: CocoParams,
    /// Image ids, ascending (`params.imgIds`).
    pub img_ids: Vec<i64>,
    /// Category ids, ascending (`params.catIds`).
    pub cat_ids: Vec<i64>,
    /// Per category index: its block in `precision` and `recall`, or [`NO_BLOCK`] when it has
    /// neither ground truth nor detections (every value -1).
    block_of: Vec<u32>,
    /// Category indices with a block, ascending (block `b` is category `active[b]`'s).
    active: Vec<usize>,
    /// Per block: `[a][m][t][r]` precision, -1 where absent (read through [`Self::precision`]).
    precision: Vec<f64>,
    /// Per block: `[a][m][t]` recall, -1 where absent (read through [`Self::recall`]).
    recall: Vec<f64>,
    /// The 12 numbers of `summarize()`.
    pub stats: [f64; 12],
    /// Per-image evaluations keyed by `k * I + i`, ascending (kept for the bootstrap).
    pub(crate) per_image: Vec<(usize, ImageEval)>,
}

/// AP and AR of one category, read as `summarize()` reads them for the whole set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryAp {
    /// COCO category id.
    pub category_id: i64,
    /// AP averaged over IoU .50:.95 (-1 without ground truth).
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// AR averaged over IoU .50:.95.
    pub ar: f64,
}

/// The names of the 12 summary numbers, in `stats` order.
pub const STAT_NAMES: [&str; 12] = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
];

/// [`CocoEvaluation::block_of`] of a category without ground truth or detections.
const NO_BLOCK: u32 = u32::MAX;

/// Group indices by (category index, image index) key, keeping file order inside a group.
fn group_by_key(keys: impl Iterator<Item = Option<usize>>) -> HashMap<usize, Vec<u32>> {
    let mut groups: HashMap<usize, Vec<u32>> = HashMap::new();
    for (idx, key) in keys.enumerate() {
        if let Some(key) = key {
            groups.entry(key).or_default().push(idx as u32);
        }
    }
    groups
}

/// Runs the full pycocotools pipeline on a dataset and its predictions.
pub fn evaluate(
    dataset: &Dataset,
    predictions: &Predictions,
    params: &CocoParams,
) -> Result<CocoEvaluation, EvalError> {
    let mut params = params.clone();
    params.validate()?;
    crate::budget::check_coco(dataset, predictions, &params)?;
    let img_ids = dataset.sorted_image_ids();
    let cat_ids = dataset.sorted_category_ids();
    let n_img = img_ids.len();
    let img_index: HashMap<i64, usize> = img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let cat_index: HashMap<i64, usize> = cat_ids.iter().enumerate().map(|(k, &id)| (id, k)).collect();
    let key = |image_id: i64, category_id: i64| Some(cat_index.get(&category_id)? * n_img + img_index.get(&image_id)?);
    let gt_groups = group_by_key(dataset.annotations.iter().map(|g| key(g.image_id, g.category_id)));
    let dt_groups = group_by_key(predictions.detections.iter().map(|d| key(d.image_id, d.category_id)));
    let mut keys: Vec<usize> = gt_groups.keys().chain(dt_groups.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let empty = Vec::new();
    let per_image: Vec<(usize, ImageEval)> = keys
        .par_iter()
        .map(|&key| {
            let gts: Vec<&GroundTruth> =
                gt_groups.get(&key).unwrap_or(&empty).iter().map(|&i| &dataset.annotations[i as usize]).collect();
            let dts: Vec<&CocoDetection> =
                dt_groups.get(&key).unwrap_or(&empty).iter().map(|&i| &predictions.detections[i as usize]).collect();
            (key, evaluate_image(&gts, dts, &params))
        })
        .collect();
    // Keys are `k * n_img + i`, sorted: the categories with entries, ascending.
    let mut active: Vec<usize> = per_image.iter().map(|(key, _)| key / n_img.max(1)).collect();
    active.dedup();
    let mut block_of = vec![NO_BLOCK; cat_ids.len()];
    for (b, &k) in active.iter().enumerate() {
        block_of[k] = b as u32;
    }
    let (precision, recall) = accumulate(&per_image, &active, n_img, &params);
    let mut ev =
        CocoEvaluation { params, img_ids, cat_ids, block_of, active, precision, recall, stats: [0.0; 12], per_image };
    ev.stats = ev.summarize();
    Ok(ev)
}

/// `evaluateImg` for every area range of one (image, category).
pub(crate) fn evaluate_image(gts: &[&GroundTruth], mut dts: Vec<&CocoDetection>, p: &CocoParams) -> ImageEval {
    // Stable descending sort: `np.argsort(-score, kind="mergesort")`.
    dts.sort_by(|a, b| b.score.total_cmp(&a.score));
    dts.truncate(p.max_det());
    let (n_d, n_g, n_t) = (dts.len(), gts.len(), p.iou_thrs.len());
    let mut ious = vec![0.0; n_d * n_g];
    for (d, dt) in dts.iter().enumerate() {
        for (g, gt) in gts.iter().enumerate() {
            ious[d * n_g + g] = bbox_iou(&dt.bbox, &gt.bbox, gt.iscrowd);
        }
    }
    let mut areas = Vec::with_capacity(p.area_ranges.len());
    let mut order: Vec<usize> = (0..n_g).collect();
    let mut gt_matched = vec![false; n_g];
    for rng in &p.area_ranges {
        let ignore = |g: &GroundTruth| g.iscrowd || g.area < rng.min || g.area > rng.max;
        // Stable: not-ignored ground truth first, file order otherwise.
        order.sort_by_key(|&g| (ignore(gts[g]), g));
        let gt_ig: Vec<bool> = order.iter().map(|&g| ignore(gts[g])).collect();
        let n_pos = gt_ig.iter().filter(|&&ig| !ig).count();
        let mut outcome = vec![FP; n_t * n_d];
        for (t, &thr) in p.iou_thrs.iter().enumerate() {
            gt_matched.iter_mut().for_each(|m| *m = false);
            for (d, dt) in dts.iter().enumerate() {
                let mut iou = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (gi, &g) in order.iter().enumerate() {
                    if gt_matched[gi] && !gts[g].iscrowd {
                        continue;
                    }
                    if let Some(mm) = m
                        && !gt_ig[mm]
                        && gt_ig[gi]
                    {
                        break;
                    }
                    let v = ious[d * n_g + g];
                    if v < iou {
                        continue;
                    }
                    iou = v;
                    m = Some(gi);
                }
                let det_out_of_range = dt.area() < rng.min || dt.area() > rng.max;
                let o = match m {
                    Some(gi) => {
                        gt_matched[gi] = true;
                        // pycocotools stores the matched gt id; id 0 reads as "unmatched".
                        let counted = p.mode == CocoMode::Fixed || gts[order[gi]].id != 0;
                        if gt_ig[gi] {
                            IGNORED
                        } else if counted {
                            TP
                        } else if det_out_of_range {
                            IGNORED
                        } else {
                            FP
                        }
                    }
                    None if det_out_of_range => IGNORED,
                    None => FP,
                };
                outcome[t * n_d + d] = o;
            }
        }
        areas.push((outcome, n_pos));
    }
    ImageEval { scores: dts.iter().map(|d| d.score).collect(), areas }
}

/// Precision at each recall threshold and final recall for every IoU threshold, from
/// detection outcomes already in accumulation order; `None` when no ground truth counts.
fn precision_recall(outcomes: &[u8], n: usize, npig: usize, p: &CocoParams) -> Option<(Vec<f64>, Vec<f64>)> {
    if npig == 0 {
        return None;
    }
    let (n_t, n_r) = (p.iou_thrs.len(), p.rec_thrs.len());
    let mut precision = vec![0.0; n_t * n_r];
    let mut recall = vec![0.0; n_t];
    let mut rc = Vec::with_capacity(n);
    let mut pr = Vec::with_capacity(n);
    let eps = f64::EPSILON; // np.spacing(1)
    for t in 0..n_t {
        rc.clear();
        pr.clear();
        let (mut tp, mut fp) = (0u64, 0u64);
        for &o in &outcomes[t * n..(t + 1) * n] {
            match o {
                TP => tp += 1,
                FP => fp += 1,
                _ => {}
            }
            let (tpf, fpf) = (tp as f64, fp as f64);
            rc.push(tpf / npig as f64);
            pr.push(tpf / (fpf + tpf + eps));
        }
        recall[t] = rc.last().copied().unwrap_or(0.0);
        for i in (1..n).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        for (r, &thr) in p.rec_thrs.iter().enumerate() {
            let pi = rc.partition_point(|&x| x < thr);
            if pi >= n {
                break;
            }
            precision[t * n_r + r] = pr[pi];
        }
    }
    Some((precision, recall))
}

/// `accumulate()` for one category, every (area range, maxDets) cell, written into the
/// category's blocks: `precision` `[a][m][t][r]` and `recall` `[a][m][t]`, both filled with -1
/// beforehand (a cell without ground truth keeps it).
///
/// pycocotools concatenates each scan's first `maxDet` detections in scan order and sorts them
/// stably by score. The sorted list for a smaller maxDet is the subsequence (detections with
/// index < maxDet) of the list for the largest one, so one sort serves every cell.
fn accumulate_category(entries: &[(usize, ImageEval)], p: &CocoParams, precision: &mut [f64], recall: &mut [f64]) {
    let n_t = p.iou_thrs.len();
    let max_det = p.max_det();
    let mut list: Vec<(f64, u32, u32)> = Vec::new();
    for (ei, (_, e)) in entries.iter().enumerate() {
        let nd = e.scores.len().min(max_det);
        list.extend(e.scores[..nd].iter().enumerate().map(|(d, &s)| (s, ei as u32, d as u32)));
    }
    list.sort_by(|x, y| y.0.total_cmp(&x.0));
    let n_r = p.rec_thrs.len();
    let mut cell = 0;
    let mut outcomes = Vec::new();
    for a in 0..p.area_ranges.len() {
        let npig: usize = entries.iter().map(|(_, e)| e.areas[a].1).sum();
        for &md in &p.max_dets {
            let kept: Vec<&(f64, u32, u32)> = list.iter().filter(|x| (x.2 as usize) < md).collect();
            let n = kept.len();
            outcomes.clear();
            outcomes.resize(n_t * n, FP);
            // Detection-major walk: one lookup of the scan's outcome table per detection.
            for (j, &&(_, ei, d)) in kept.iter().enumerate() {
                let e = &entries[ei as usize].1;
                let (table, nd) = (&e.areas[a].0, e.scores.len());
                for t in 0..n_t {
                    outcomes[t * n + j] = table[t * nd + d as usize];
                }
            }
            if let Some((pr, rc)) = precision_recall(&outcomes, n, npig, p) {
                precision[cell * n_t * n_r..(cell + 1) * n_t * n_r].copy_from_slice(&pr);
                recall[cell * n_t..(cell + 1) * n_t].copy_from_slice(&rc);
            }
            cell += 1;
        }
    }
}

/// Precision and recall blocks of the `active` categories (ascending indices), each filled
/// in place by its own task.
fn accumulate(
    per_image: &[(usize, ImageEval)],
    active: &[usize],
    n_img: usize,
    p: &CocoParams,
) -> (Vec<f64>, Vec<f64>) {
    let (n_t, n_r, n_a, n_m) = (p.iou_thrs.len(), p.rec_thrs.len(), p.area_ranges.len(), p.max_dets.len());
    // Validated parameters have no empty list, so neither block is empty.
    let (block_p, block_r) = (n_a * n_m * n_t * n_r, n_a * n_m * n_t);
    let mut precision = vec![-1.0; active.len() * block_p];
    let mut recall = vec![-1.0; active.len() * block_r];
    precision.par_chunks_mut(block_p).zip(recall.par_chunks_mut(block_r)).zip(active.par_iter()).for_each(
        |((pr, rc), &k)| {
            let lo = per_image.partition_point(|(key, _)| *key < k * n_img);
            let hi = per_image.partition_point(|(key, _)| *key < (k + 1) * n_img);
            accumulate_category(&per_image[lo..hi], p, pr, rc);
        },
    );
    (precision, recall)
}

/// Mean of the values > -1, or -1 when there are none (`summarize()`'s rule).
pub fn mean_valid(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.filter(|&v| v > -1.0) {
        sum += v;
        n += 1;
    }
    if n == 0 { -1.0 } else { sum / n as f64 }
}

impl CocoEvaluation {
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        let p = &self.params;
        (p.iou_thrs.len(), p.rec_thrs.len(), self.cat_ids.len(), p.area_ranges.len(), p.max_dets.len())
    }

    /// `eval["precision"][t, r, k, a, m]`.
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let (n_t, n_r, _, n_a, n_m) = self.dims();
        match self.block_of[k] {
            NO_BLOCK => -1.0,
            b => self.precision[(((b as usize * n_a + a) * n_m + m) * n_t + t) * n_r + r],
        }
    }

    /// `eval["recall"][t, k, a, m]`.
    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let (n_t, _, _, n_a, n_m) = self.dims();
        match self.block_of[k] {
            NO_BLOCK => -1.0,
            b => self.recall[((b as usize * n_a + a) * n_m + m) * n_t + t],
        }
    }

    /// Category indices with ground truth or detections, ascending: the others' values are all
    /// -1, which every mean leaves out.
    pub fn active_categories(&self) -> &[usize] {
        &self.active
    }

    /// One `_summarize(ap, iouThr, areaRng, maxDets)` call.
    pub fn summarize_one(&self, ap: bool, iou_thr: Option<f64>, area: &str, max_dets: usize) -> f64 {
        let p = &self.params;
        let (n_t, n_r, _, _, _) = self.dims();
        let ts: Vec<usize> = match iou_thr {
            // Exact equality, as `np.where(iouThr == p.iouThrs)`.
            Some(thr) => (0..n_t).filter(|&t| p.iou_thrs[t] == thr).collect(),
            None => (0..n_t).collect(),
        };
        let aind: Vec<usize> = (0..p.area_ranges.len()).filter(|&a| p.area_ranges[a].label == area).collect();
        let mind: Vec<usize> = (0..p.max_dets.len()).filter(|&m| p.max_dets[m] == max_dets).collect();
        // pycocotools' order (t, k, a, m, then r), over the categories with a block only: the
        // others hold -1 alone, which the mean leaves out, so the sum is the same to the bit.
        let (ts, aind, mind) = (&ts, &aind, &mind);
        let cells = ts.iter().flat_map(move |&t| {
            self.active
                .iter()
                .flat_map(move |&k| aind.iter().flat_map(move |&a| mind.iter().map(move |&m| (t, k, a, m))))
        });
        if ap {
            mean_valid(cells.flat_map(|(t, k, a, m)| (0..n_r).map(move |r| self.precision(t, r, k, a, m))))
        } else {
            mean_valid(cells.map(|(t, k, a, m)| self.recall(t, k, a, m)))
        }
    }

    /// `summarize()` for boxes: the 12 standard numbers.
    pub fn summarize(&self) -> [f64; 12] {
        let md = &self.params.max_dets;
        // pycocotools indexes maxDets[0..3]; a shorter list would raise there, here it clamps.
        let at = |i: usize| md[i.min(md.len() - 1)];
        let ap_max = match self.params.mode {
            CocoMode::Pycocotools => 100,
            CocoMode::Fixed => at(2),
        };
        [
            self.summarize_one(true, None, "all", ap_max),
            self.summarize_one(true, Some(0.5), "all", at(2)),
            self.summarize_one(true, Some(0.75), "all", at(2)),
            self.summarize_one(true, None, "small", at(2)),
            self.summarize_one(true, None, "medium", at(2)),
            self.summarize_one(true, None, "large", at(2)),
            self.summarize_one(false, None, "all", at(0)),
            self.summarize_one(false, None, "all", at(1)),
            self.summarize_one(false, None, "all", at(2)),
            self.summarize_one(false, None, "small", at(2)),
            self.summarize_one(false, None, "medium", at(2)),
            self.summarize_one(false, None, "large", at(2)),
        ]
    }

    fn all_area(&self) -> usize {
        self.params.area_ranges.iter().position(|a| a.label == "all").unwrap_or(0)
    }

    /// Precision at each recall threshold for category index `k` (area "all", largest maxDets)
    /// at IoU threshold index `t`: the PR curve pycocotools integrates.
    pub fn pr_curve(&self, t: usize, k: usize) -> Vec<f64> {
        let (_, n_r, _, _, n_m) = self.dims();
        let a = self.all_area();
        (0..n_r).map(|r| self.precision(t, r, k, a, n_m - 1)).collect()
    }

    /// AP/AR per category, area "all", largest maxDets (categories without ground truth: -1).
    pub fn per_category(&self) -> Vec<CategoryAp> {
        let (n_t, n_r, _, _, n_m) = self.dims();
        let a = self.all_area();
        let m = n_m - 1;
        let t_of = |thr: f64| self.params.iou_thrs.iter().position(|&x| x == thr);
        self.cat_ids
            .iter()
            .enumerate()
            .map(|(k, &category_id)| {
                if self.block_of[k] == NO_BLOCK {
                    return CategoryAp { category_id, ap: -1.0, ap50: -1.0, ap75: -1.0, ar: -1.0 };
                }
                let ap_at = |ts: Vec<usize>| {
                    mean_valid(
                        ts.into_iter()
                            .flat_map(|t| (0..n_r).map(move |r| (t, r)))
                            .map(|(t, r)| self.precision(t, r, k, a, m)),
                    )
                };
                CategoryAp {
                    category_id,
                    ap: ap_at((0..n_t).collect()),
                    ap50: ap_at(t_of(0.5).into_iter().collect()),
                    ap75: ap_at(t_of(0.75).into_iter().collect()),
                    ar: mean_valid((0..n_t).map(|t| self.recall(t, k, a, m))),
                }
            })
            .collect()
    }
}

/// Detections of every category in one descending-score order, so that a bootstrap resample
/// is scored by walking that order with per-scan multiplicities instead of sorting again.
/// Equal scores keep the order of the plain evaluation, so all-ones multiplicities give
/// exactly [`CocoEvaluation`]'s AP.
pub struct ResampleIndex<'a> {
    params: &'a CocoParams,
    /// Per category with ground truth or detections, ascending: scan index of each detection,
    /// descending score.
    scans: Vec<Vec<u32>>,
    /// Per such category: outcome `[t * n + j]` of the j-th detection in that order (area "all").
    outcomes: Vec<Vec<u8>>,
    /// Per such category: (scan index, not-ignored truths in area "all").
    positives: Vec<Vec<(u32, u32)>>,
}

impl<'a> ResampleIndex<'a> {
    /// Orders the detections of `ev` once, for any number of resamples.
    pub fn new(ev: &'a CocoEvaluation) -> Self {
        let n_img = ev.img_ids.len();
        let n_t = ev.params.iou_thrs.len();
        let area = ev.all_area();
        let max_det = ev.params.max_det();
        // Categories without entries have no truth (AP -1, left out of the mean): only the
        // active ones, in ascending order, get lists.
        let mut order: Vec<Vec<(u32, &ImageEval, u32)>> = vec![Vec::new(); ev.active.len()];
        let mut positives = vec![Vec::new(); ev.active.len()];
        for (key, e) in &ev.per_image {
            let (b, i) = (ev.block_of[key / n_img] as usize, (key % n_img) as u32);
            positives[b].push((i, e.areas[area].1 as u32));
            let n = e.scores.len().min(max_det);
            order[b].extend((0..n as u32).map(|d| (i, e, d)));
        }
        let mut scans = Vec::with_capacity(order.len());
        let mut outcomes = Vec::with_capacity(order.len());
        for mut list in order {
            // Stable: equal scores keep scan order, as the plain accumulation has them.
            list.sort_by(|x, y| y.1.scores[y.2 as usize].total_cmp(&x.1.scores[x.2 as usize]));
            let n = list.len();
            let mut out = vec![FP; n_t * n];
            for t in 0..n_t {
                for (j, &(_, e, d)) in list.iter().enumerate() {
                    out[t * n + j] = e.areas[area].0[t * e.scores.len() + d as usize];
                }
            }
            scans.push(list.iter().map(|x| x.0).collect());
            outcomes.push(out);
        }
        Self { params: &ev.params, scans, outcomes, positives }
    }

    /// Mean AP over IoU thresholds and categories (area "all", largest maxDets) when scan `i`
    /// counts `counts[i]` times.
    pub fn ap(&self, counts: &[usize]) -> f64 {
        let p = self.params;
        let (n_t, n_r) = (p.iou_thrs.len(), p.rec_thrs.len());
        let (mut sum, mut n_values) = (0.0, 0usize);
        let mut rc = Vec::new();
        let mut pr = Vec::new();
        for ((scans, outcomes), pos) in self.scans.iter().zip(&self.outcomes).zip(&self.positives) {
            let npig: usize = pos.iter().map(|&(i, g)| counts[i as usize] * g as usize).sum();
            if npig == 0 {
                continue;
            }
            let n = scans.len();
            for t in 0..n_t {
                rc.clear();
                pr.clear();
                let (mut tp, mut fp) = (0u64, 0u64);
                for (&i, &outcome) in scans.iter().zip(&outcomes[t * n..(t + 1) * n]) {
                    for _ in 0..counts[i as usize] {
                        match outcome {
                            TP => tp += 1,
                            FP => fp += 1,
                            _ => {}
                        }
                        rc.push(tp as f64 / npig as f64);
                        pr.push(tp as f64 / (fp as f64 + tp as f64 + f64::EPSILON));
                    }
                }
                for j in (1..pr.len()).rev() {
                    if pr[j] > pr[j - 1] {
                        pr[j - 1] = pr[j];
                    }
                }
                for &thr in &p.rec_thrs {
                    let pi = rc.partition_point(|&x| x < thr);
                    if pi >= pr.len() {
                        break;
                    }
                    sum += pr[pi];
                }
                n_values += n_r;
            }
        }
        if n_values == 0 { -1.0 } else { sum / n_values as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_numpy_linspace() {
        let t = linspace(0.5, 0.95, 10);
        // numpy gives 0.8999999999999999 at index 8, not 0.9: a naive 0.5 + 0.05 * i differs.
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[5], 0.75);
        assert_eq!(linspace(0.0, 1.0, 101)[7], 0.07);
    }

    /// Naive IoU from corners with the intersection clamped at zero.
    fn naive_iou(a: &[f64; 4], b: &[f64; 4], crowd: bool) -> f64 {
        let iw = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
        let ih = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
        let inter = iw * ih;
        if inter == 0.0 {
            return 0.0;
        }
        let union = if crowd { a[2] * a[3] } else { a[2] * a[3] + b[2] * b[3] - inter };
        inter / union
    }

    proptest::proptest! {
        #[test]
        fn iou_matches_naive_reference(
            a in proptest::array::uniform4(0.0f64..100.0),
            b in proptest::array::uniform4(0.0f64..100.0),
            crowd in proptest::bool::ANY,
        ) {
            let v = bbox_iou(&a, &b, crowd);
            proptest::prop_assert!((v - naive_iou(&a, &b, crowd)).abs() < 1e-12);
            proptest::prop_assert!((0.0..=1.0 + 1e-12).contains(&v));
            if !crowd {
                proptest::prop_assert!((v - bbox_iou(&b, &a, false)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn crowd_iou_divides_by_detection_area() {
        let gt = [0.0, 0.0, 100.0, 100.0];
        let dt = [10.0, 10.0, 10.0, 20.0];
        assert_eq!(bbox_iou(&dt, &gt, true), 1.0);
        assert_eq!(bbox_iou(&dt, &gt, false), 200.0 / 10000.0);
        assert_eq!(bbox_iou(&[200.0, 0.0, 5.0, 5.0], &gt, false), 0.0);
    }

    fn gt(id: i64, bbox: [f64; 4], iscrowd: bool) -> GroundTruth {
        GroundTruth { id, image_id: 1, category_id: 1, bbox, area: bbox[2] * bbox[3], iscrowd, cnr: None }
    }

    fn dt(bbox: [f64; 4], score: f64) -> CocoDetection {
        CocoDetection { image_id: 1, category_id: 1, bbox, score }
    }

    fn one_image_set(gt_id: i64) -> (Dataset, Predictions) {
        use crate::dataset::{Category, ImageInfo};
        let image = ImageInfo { id: 1, file_name: None, width: None, height: None };
        let cat = Category { id: 1, name: "knife".into() };
        let ds =
            Dataset::new("gt".into(), vec![image], vec![cat], vec![gt(gt_id, [0.0, 0.0, 50.0, 50.0], false)]).unwrap();
        let preds = Predictions::new("p".into(), vec![dt([0.0, 0.0, 50.0, 50.0], 0.9)], &ds).unwrap();
        (ds, preds)
    }

    /// AP of a dataset where scan `i` appears `counts[i]` times (copies get fresh ids).
    fn multiset_ap(ds: &Dataset, preds: &Predictions, img_ids: &[i64], counts: &[usize]) -> f64 {
        let mut images = Vec::new();
        let mut anns = Vec::new();
        let mut dets = Vec::new();
        for (i, &id) in img_ids.iter().enumerate() {
            for copy in 0..counts[i] {
                let new_id = id * 10 + copy as i64;
                let mut info = ds.images.iter().find(|im| im.id == id).unwrap().clone();
                info.id = new_id;
                images.push(info);
                for g in ds.annotations.iter().filter(|g| g.image_id == id) {
                    anns.push(GroundTruth { id: anns.len() as i64 + 1, image_id: new_id, ..g.clone() });
                }
                dets.extend(
                    preds
                        .detections
                        .iter()
                        .filter(|d| d.image_id == id)
                        .map(|d| CocoDetection { image_id: new_id, ..*d }),
                );
            }
        }
        let ds2 = Dataset::new("m".into(), images, ds.categories.clone(), anns).unwrap();
        let preds2 = Predictions::new("m".into(), dets, &ds2).unwrap();
        let ev = evaluate(&ds2, &preds2, &CocoParams::default()).unwrap();
        ev.summarize_one(true, None, "all", 100)
    }

    #[test]
    fn resample_index_with_unit_counts_gives_the_plain_ap() {
        let fix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/coco");
        let ds = Dataset::from_coco_json(&fix.join("mixed.gt.json")).unwrap();
        let preds = Predictions::from_coco_json(&fix.join("mixed.results.json"), &ds).unwrap();
        let ev = evaluate(&ds, &preds, &CocoParams::default()).unwrap();
        let ones = vec![1; ev.img_ids.len()];
        let index = ResampleIndex::new(&ev);
        assert!((index.ap(&ones) - ev.summarize_one(true, None, "all", 100)).abs() < 1e-12);
        // Scan 3 twice and scan 10 dropped: the same as scoring that multiset directly.
        let mut twice = ones.clone();
        twice[3] = 2;
        twice[10] = 0;
        let direct = multiset_ap(&ds, &preds, &ev.img_ids, &twice);
        assert!((index.ap(&twice) - direct).abs() < 1e-3, "{} vs {direct}", index.ap(&twice));
    }

    #[test]
    fn fixed_mode_corrects_the_two_quirks_and_default_keeps_them() {
        let (ds, preds) = one_image_set(0);
        let quirk = evaluate(&ds, &preds, &CocoParams::default()).unwrap();
        // Matched to ground-truth id 0: pycocotools reads it as unmatched.
        assert_eq!(quirk.stats[1], 0.0);
        let fixed_params = CocoParams { mode: CocoMode::Fixed, ..CocoParams::default() };
        let fixed = evaluate(&ds, &preds, &fixed_params).unwrap();
        assert!((fixed.stats[1] - 1.0).abs() < 1e-15);

        let (ds, preds) = one_image_set(7);
        let big = CocoParams::with_max_dets(&[1, 10, 1000]).unwrap();
        assert_eq!(evaluate(&ds, &preds, &big).unwrap().stats[0], -1.0);
        let big_fixed = CocoParams { mode: CocoMode::Fixed, ..big };
        assert!((evaluate(&ds, &preds, &big_fixed).unwrap().stats[0] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn equal_scores_keep_file_order_and_crowd_absorbs_many() {
        let p = CocoParams::default();
        let g = [gt(1, [0.0, 0.0, 10.0, 10.0], false), gt(2, [50.0, 50.0, 100.0, 100.0], true)];
        let d = [dt([60.0, 60.0, 10.0, 10.0], 0.5), dt([0.0, 0.0, 10.0, 10.0], 0.5), dt([70.0, 70.0, 10.0, 10.0], 0.9)];
        let e = evaluate_image(&[&g[0], &g[1]], d.iter().collect(), &p);
        assert_eq!(e.scores, vec![0.9, 0.5, 0.5]);
        let (out, n_pos) = &e.areas[0];
        assert_eq!(*n_pos, 1);
        assert_eq!(&out[..3], &[IGNORED, IGNORED, TP]);
    }
}
