//! Error breakdown in the manner of TIDE (Bolya et al., ECCV 2020; `tidecv`): why a model
//! loses AP50.
//!
//! Followed from tidecv 1.0.1's `quantify.py` (checked against it on the fixtures) with foreground IoU 0.5 and background IoU 0.1: per
//! image, predictions of all classes sorted by score (stable) and cut at maxDets; each takes
//! the unused same-class truth of highest IoU if >= 0.5; unmatched ones overlapping a
//! same-class crowd region by more than 0.5 (intersection over prediction) are left out of AP.
//! Every unmatched prediction, ignored ones included (as the released tidecv 1.0.1 does),
//! gets the first type that fits:
//! - no truth in the image: **bkg**;
//! - best same-class IoU in [0.1, 0.5]: **loc**;
//! - IoU >= 0.5 with a truth of another class: **cls**;
//! - IoU >= 0.5 with an already matched same-class truth: **dupe**;
//! - best IoU with any truth <= 0.1: **bkg**;
//! - otherwise: **both** (wrong class and badly placed).
//!
//! A truth nobody matched and no cls/loc error points at is **missed**. dAP of a type is the
//! AP50 gained by fixing only that type (cls: relabel, loc: snap to the truth; only the best
//! scoring fix per truth becomes a true positive, others are dropped; dupe/bkg/both: drop the
//! prediction; missed: drop the truth), clamped at 0. AP is TIDE's: 101-point, recall points
//! `x / 100`, averaged over classes that have predictions or truth (a class with predictions
//! but no truth counts as AP 0). Numbers are fractions in [0, 1], not TIDE's percent.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::coco::bbox_iou;
use super::dataset::{ByImage, CocoDetection, Dataset, GroundTruth, Predictions};

/// Foreground IoU: a prediction matches a truth at IoU >= 0.5 (tidecv's `pos_threshold`).
pub const POS_THRESH: f64 = 0.5;
/// Background IoU: a prediction overlapping every truth by at most 0.1 is background
/// (tidecv's `background_threshold`).
pub const BG_THRESH: f64 = 0.1;

/// Why a prediction (or a truth) costs AP50, in TIDE's six types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// Classification: right place (IoU >= 0.5), wrong class.
    Cls,
    /// Localisation: right class, IoU in [0.1, 0.5].
    Loc,
    /// Both: wrong class and badly placed.
    Both,
    /// Duplicate: right class and place, but the truth was already matched.
    Dupe,
    /// Background: on nothing (IoU <= 0.1 with every truth, or no truth in the scan).
    Bkg,
    /// Missed: a truth no prediction found.
    Missed,
}

/// The error types in TIDE's reporting order.
pub const ERROR_TYPES: [ErrorType; 6] =
    [ErrorType::Cls, ErrorType::Loc, ErrorType::Both, ErrorType::Dupe, ErrorType::Bkg, ErrorType::Missed];

/// Where a model's AP50 goes: TIDE's count and dAP50 of each error type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TideBreakdown {
    /// TIDE's mAP at IoU 0.5 before any fix.
    pub ap50: f64,
    /// Errors of each type.
    pub counts: BTreeMap<ErrorType, usize>,
    /// dAP50 of each type: the AP50 gained by fixing only that type (clamped at 0).
    pub delta_ap: BTreeMap<ErrorType, f64>,
}

/// One data point of TIDE's per-class AP: (score, true positive).
type Point = (f64, bool);

#[derive(Default, Clone)]
struct ApData {
    /// Per class, in push order (ties keep it, as Python's stable sort does).
    points: BTreeMap<i64, Vec<Point>>,
    n_gt: BTreeMap<i64, i64>,
}

impl ApData {
    fn push(&mut self, class: i64, p: Point) {
        self.points.entry(class).or_default().push(p);
        self.n_gt.entry(class).or_default();
    }

    fn add_gt(&mut self, class: i64, n: i64) {
        *self.n_gt.entry(class).or_default() += n;
        self.points.entry(class).or_default();
    }

    fn ap(points: &[Point], n_gt: i64) -> f64 {
        if n_gt == 0 {
            return 0.0;
        }
        let mut pts = points.to_vec();
        pts.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut precision = Vec::with_capacity(pts.len());
        let mut recall = Vec::with_capacity(pts.len());
        for &(_, correct) in &pts {
            if correct {
                tp += 1;
            } else {
                fp += 1;
            }
            precision.push(tp as f64 / (tp + fp) as f64);
            recall.push(tp as f64 / n_gt as f64);
        }
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        let mut sum = 0.0;
        for x in 0..=100 {
            let thr = f64::from(x) / 100.0;
            let idx = recall.partition_point(|&r| r < thr);
            if idx < precision.len() {
                sum += precision[idx];
            }
        }
        sum / 101.0
    }

    fn map(&self) -> f64 {
        let aps: Vec<f64> = self
            .points
            .iter()
            .filter(|(c, p)| !p.is_empty() || self.n_gt[c] != 0)
            .map(|(c, p)| Self::ap(p, self.n_gt[c]))
            .collect();
        if aps.is_empty() { 0.0 } else { aps.iter().sum::<f64>() / aps.len() as f64 }
    }
}

/// A recorded error: its type, the data point as it was, and the fix.
struct ErrorRecord {
    kind: ErrorType,
    original: Option<(i64, Point)>,
    fix: Fix,
}

enum Fix {
    Drop,
    /// Becomes a true positive of `class` if it is the best-scoring fix of truth `gt`.
    Match {
        class: i64,
        gt: i64,
        pred: usize,
        score: f64,
    },
    RemoveTruth {
        class: i64,
    },
}

/// TIDE's error breakdown of `predictions` at IoU 0.5, keeping each scan's `max_dets`
/// highest-scoring predictions (tidecv's `TIDE.evaluate(..., mode=TIDE.BOX)`).
pub fn tide(dataset: &Dataset, predictions: &Predictions, max_dets: usize) -> TideBreakdown {
    let groups = ByImage::new(dataset, predictions);
    let mut run = TideRun::default();
    // tidecv walks images in the order the ground truth lists them; ties in AP follow it.
    for image_id in dataset.images.iter().map(|i| i.id) {
        run.add_image(groups.truth(image_id), groups.detections(image_id).to_vec(), max_dets);
    }
    run.breakdown()
}

/// The state TIDE builds image by image: AP data points, recorded errors and the best fix of
/// each truth.
#[derive(Default)]
struct TideRun {
    ap_data: ApData,
    errors: Vec<ErrorRecord>,
    /// Best (score, prediction number) per truth among its cls/loc fixes.
    best_fix: HashMap<i64, (f64, usize)>,
    /// Predictions seen so far, over all images: the next prediction's number.
    pred_counter: usize,
}

/// One image's predictions (sorted, cut at maxDets) matched to its non-crowd truth.
struct ImageMatch<'a> {
    preds: &'a [&'a CocoDetection],
    gt: &'a [&'a GroundTruth],
    /// IoU `[p * n_g + g]` of prediction `p` with truth `g`, whatever their classes.
    iou: Vec<f64>,
    /// Per prediction: Some(true) matched, Some(false) unmatched, None ignored (crowd).
    used: Vec<Option<bool>>,
    /// Per truth: matched by a prediction.
    gt_used: Vec<bool>,
}

impl<'a> ImageMatch<'a> {
    /// Greedy matching in score order to the unused same-class truth of highest IoU >= 0.5;
    /// unmatched predictions on a same-class crowd region become ignored.
    fn new(preds: &'a [&'a CocoDetection], gt: &'a [&'a GroundTruth], ignore: &[&GroundTruth]) -> Self {
        let (n_p, n_g) = (preds.len(), gt.len());
        let iou: Vec<f64> = preds.iter().flat_map(|p| gt.iter().map(|g| bbox_iou(&p.bbox, &g.bbox, false))).collect();
        let mut m = Self { preds, gt, iou, used: vec![Some(false); n_p], gt_used: vec![false; n_g] };
        let mut buffer: Vec<f64> = (0..n_p * n_g).map(|i| m.cls_iou(i / n_g, i % n_g)).collect();
        for p in 0..n_p {
            if let Some((g, v)) = argmax((0..n_g).map(|g| buffer[p * n_g + g]))
                && v >= POS_THRESH
            {
                m.used[p] = Some(true);
                m.gt_used[g] = true;
                for q in 0..n_p {
                    buffer[q * n_g + g] = 0.0;
                }
            }
        }
        for region in ignore {
            for (p, pred) in preds.iter().enumerate() {
                if m.used[p] == Some(false)
                    && bbox_iou(&pred.bbox, &region.bbox, true) > POS_THRESH
                    && region.category_id == pred.category_id
                {
                    m.used[p] = None;
                }
            }
        }
        m
    }

    /// Prediction `p` and truth `g` are of the same class.
    fn same(&self, p: usize, g: usize) -> bool {
        self.preds[p].category_id == self.gt[g].category_id
    }

    /// IoU of prediction `p` with truth `g` when they are of the same class, else 0.
    fn cls_iou(&self, p: usize, g: usize) -> f64 {
        if self.same(p, g) { self.iou[p * self.gt.len() + g] } else { 0.0 }
    }
}

impl TideRun {
    /// One image: its AP data points, the type of each prediction it did not match and the
    /// truths it missed.
    fn add_image(&mut self, all_truth: &[&GroundTruth], mut preds: Vec<&CocoDetection>, max_dets: usize) {
        let gt: Vec<&GroundTruth> = all_truth.iter().filter(|g| !g.iscrowd).copied().collect();
        let ignore: Vec<&GroundTruth> = all_truth.iter().filter(|g| g.iscrowd).copied().collect();
        for g in &gt {
            self.ap_data.add_gt(g.category_id, 1);
        }
        if preds.is_empty() {
            for g in &gt {
                self.errors.push(missed(g));
            }
            return;
        }
        preds.sort_by(|a, b| b.score.total_cmp(&a.score));
        preds.truncate(max_dets);
        let m = ImageMatch::new(&preds, &gt, &ignore);
        let mut gt_usable = vec![false; gt.len()];
        for (p, pred) in preds.iter().enumerate() {
            let number = self.pred_counter;
            self.pred_counter += 1;
            if let Some(correct) = m.used[p] {
                self.ap_data.push(pred.category_id, (pred.score, correct));
            }
            // tidecv 1.0.1 also types predictions ignored by a crowd region; they have no AP
            // data point unless a cls/loc fix turns them into a true positive.
            if m.used[p] == Some(true) {
                continue;
            }
            let original = m.used[p].map(|_| (pred.category_id, (pred.score, false)));
            let (kind, fix) = self.classify(&m, p, number, &mut gt_usable);
            self.errors.push(ErrorRecord { kind, original, fix });
        }
        for (g, truth) in gt.iter().enumerate() {
            if !m.gt_used[g] && !gt_usable[g] {
                self.errors.push(missed(truth));
            }
        }
    }

    /// The error type of unmatched prediction `p` (the first that fits, in the module's order)
    /// and its fix.
    fn classify(&mut self, m: &ImageMatch, p: usize, number: usize, gt_usable: &mut [bool]) -> (ErrorType, Fix) {
        let n_g = m.gt.len();
        if n_g == 0 {
            return (ErrorType::Bkg, Fix::Drop);
        }
        let (g, v) = argmax((0..n_g).map(|g| m.cls_iou(p, g))).unwrap_or((0, 0.0));
        if (BG_THRESH..=POS_THRESH).contains(&v) {
            return (ErrorType::Loc, self.match_fix(m, p, g, m.preds[p].category_id, number, gt_usable));
        }
        let noncls = |g: usize| if m.same(p, g) { 0.0 } else { m.iou[p * n_g + g] };
        let (g, v) = argmax((0..n_g).map(noncls)).unwrap_or((0, 0.0));
        if v >= POS_THRESH {
            return (ErrorType::Cls, self.match_fix(m, p, g, m.gt[g].category_id, number, gt_usable));
        }
        let used_cls = |g: usize| if m.gt_used[g] { m.cls_iou(p, g) } else { 0.0 };
        let (_, v) = argmax((0..n_g).map(used_cls)).unwrap_or((0, 0.0));
        if v >= POS_THRESH {
            return (ErrorType::Dupe, Fix::Drop);
        }
        let (_, v) = argmax((0..n_g).map(|g| m.iou[p * n_g + g])).unwrap_or((0, 0.0));
        if v <= BG_THRESH { (ErrorType::Bkg, Fix::Drop) } else { (ErrorType::Both, Fix::Drop) }
    }

    /// The cls/loc fix of prediction `p` onto truth `g` as `class`: none when the truth is
    /// already matched, else a candidate true positive, remembered if it is the truth's best.
    fn match_fix(
        &mut self,
        m: &ImageMatch,
        p: usize,
        g: usize,
        class: i64,
        number: usize,
        gt_usable: &mut [bool],
    ) -> Fix {
        if m.gt_used[g] {
            return Fix::Drop;
        }
        gt_usable[g] = true;
        let score = m.preds[p].score;
        let entry = self.best_fix.entry(m.gt[g].id).or_insert((-1.0, usize::MAX));
        if entry.0 < score {
            *entry = (score, number);
        }
        Fix::Match { class, gt: m.gt[g].id, pred: number, score }
    }

    /// AP50 as it is, and the count and dAP50 of each error type.
    fn breakdown(&self) -> TideBreakdown {
        let ap50 = self.ap_data.map();
        let mut counts = BTreeMap::new();
        let mut delta_ap = BTreeMap::new();
        for kind in ERROR_TYPES {
            counts.insert(kind, self.errors.iter().filter(|e| e.kind == kind).count());
            let fixed = fix_errors(&self.ap_data, &self.errors, kind, &self.best_fix);
            delta_ap.insert(kind, (fixed.map() - ap50).max(0.0));
        }
        TideBreakdown { ap50, counts, delta_ap }
    }
}

/// A truth nobody found; fixing it removes it from AP's denominator.
fn missed(truth: &GroundTruth) -> ErrorRecord {
    ErrorRecord { kind: ErrorType::Missed, original: None, fix: Fix::RemoveTruth { class: truth.category_id } }
}

/// tidecv's `fix_errors`: errors first (fixed or as they were), then the true positives.
fn fix_errors(
    ap_data: &ApData,
    errors: &[ErrorRecord],
    kind: ErrorType,
    best_fix: &HashMap<i64, (f64, usize)>,
) -> ApData {
    let mut gt_pos = ap_data.n_gt.clone();
    let mut out = ApData::default();
    for e in errors {
        let point = if e.kind == kind {
            match e.fix {
                Fix::Drop => None,
                Fix::RemoveTruth { class } => {
                    *gt_pos.entry(class).or_default() -= 1;
                    None
                }
                Fix::Match { class, gt, pred, score } => {
                    (best_fix.get(&gt).map(|b| b.1) == Some(pred)).then_some((class, (score, true)))
                }
            }
        } else {
            e.original
        };
        if let Some((class, p)) = point {
            out.push(class, p);
        }
    }
    for (class, points) in &ap_data.points {
        for &p in points.iter().filter(|p| p.1) {
            out.push(*class, p);
        }
    }
    for (class, n) in gt_pos {
        out.add_gt(class, n);
    }
    out
}

/// First index of the largest value, as `np.argmax`.
fn argmax(values: impl Iterator<Item = f64>) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Category, ImageInfo};

    fn dataset(truth: &[(i64, i64, [f64; 4])]) -> Dataset {
        let images = (1..=2).map(|id| ImageInfo { id, file_name: None, width: None, height: None }).collect();
        let cats = (1..=2).map(|id| Category { id, name: id.to_string() }).collect();
        let anns = truth
            .iter()
            .enumerate()
            .map(|(i, &(image_id, category_id, bbox))| GroundTruth {
                id: i as i64 + 1,
                image_id,
                category_id,
                bbox,
                area: bbox[2] * bbox[3],
                iscrowd: false,
                cnr: None,
            })
            .collect();
        Dataset::new("t".into(), images, cats, anns).unwrap()
    }

    fn preds(ds: &Dataset, dets: &[(i64, i64, [f64; 4], f64)]) -> Predictions {
        let d = dets
            .iter()
            .map(|&(image_id, category_id, bbox, score)| CocoDetection { image_id, category_id, bbox, score })
            .collect();
        Predictions::new("p".into(), d, ds).unwrap()
    }

    #[test]
    fn each_error_type_is_recognised_and_fixing_it_recovers_ap() {
        let b = [0.0, 0.0, 100.0, 100.0];
        let ds = dataset(&[(1, 1, b), (1, 2, [300.0, 300.0, 50.0, 50.0]), (2, 1, b)]);
        let p = preds(
            &ds,
            &[
                (1, 1, b, 0.9),                          // TP
                (1, 1, [5.0, 0.0, 100.0, 100.0], 0.8),   // dupe of the TP
                (1, 1, [300.0, 300.0, 50.0, 50.0], 0.7), // cls: right box, class 2 truth
                (1, 1, [600.0, 600.0, 10.0, 10.0], 0.6), // bkg
                (2, 1, [0.0, 0.0, 100.0, 30.0], 0.5),    // loc: IoU 0.3
                (2, 1, b, 0.4),                          // TP below every error
            ],
        );
        let t = tide(&ds, &p, 100);
        assert_eq!(t.counts[&ErrorType::Dupe], 1);
        assert_eq!(t.counts[&ErrorType::Cls], 1);
        assert_eq!(t.counts[&ErrorType::Bkg], 1);
        assert_eq!(t.counts[&ErrorType::Loc], 1);
        assert_eq!(t.counts[&ErrorType::Missed], 0);
        assert_eq!(t.counts[&ErrorType::Both], 0);
        assert!(t.ap50 < 1.0);
        for kind in [ErrorType::Cls, ErrorType::Loc, ErrorType::Dupe, ErrorType::Bkg] {
            assert!(t.delta_ap[&kind] > 0.0, "{kind:?}");
        }
    }

    #[test]
    fn unmatched_truth_without_fix_is_missed() {
        let ds = dataset(&[(1, 1, [0.0, 0.0, 10.0, 10.0]), (2, 1, [0.0, 0.0, 10.0, 10.0])]);
        let p = preds(&ds, &[(1, 1, [0.0, 0.0, 10.0, 10.0], 0.9)]);
        let t = tide(&ds, &p, 100);
        assert_eq!(t.counts[&ErrorType::Missed], 1);
        // One of two found at precision 1: AP 51/101; dropping the missed truth gives 1.
        assert!((t.ap50 - 51.0 / 101.0).abs() < 1e-12);
        assert!((t.delta_ap[&ErrorType::Missed] - (1.0 - 51.0 / 101.0)).abs() < 1e-12);
    }
}
