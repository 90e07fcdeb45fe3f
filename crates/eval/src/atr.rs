//! Customs operating points: per-scan Pd/Pfa, ROC and AUC, FROC, per-class detection rate
//! with a lenient hit rule, and splits by difficulty (CNR).
//!
//! A scan's score is the highest score of any of its detections (a scan alarms at threshold
//! `s` when one detection scores `>= s`); a scan without detections has score -inf and alarms
//! only at the "alarm on everything" end of the ROC. A scan is positive when it holds any
//! ground-truth threat (crowd regions included).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::coco::bbox_iou;
use super::dataset::{ByImage, CocoDetection, Dataset, GroundTruth, Predictions};

/// When a detection counts as finding a threat for Pd and FROC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HitRule {
    /// Minimum IoU with the truth box.
    pub min_iou: f64,
    /// Also a hit when the detection's centre lies inside the truth box.
    pub centre_inside: bool,
}

impl Default for HitRule {
    fn default() -> Self {
        Self { min_iou: 0.1, centre_inside: true }
    }
}

impl HitRule {
    /// Whether a detection box hits a truth box (both pixel `[x, y, w, h]`): IoU at least
    /// [`HitRule::min_iou`], or, with [`HitRule::centre_inside`], its centre inside the truth.
    pub fn hits(&self, det: &[f64; 4], truth: &[f64; 4]) -> bool {
        if bbox_iou(det, truth, false) >= self.min_iou {
            return true;
        }
        let (cx, cy) = (det[0] + det[2] / 2.0, det[1] + det[3] / 2.0);
        self.centre_inside && cx >= truth[0] && cx <= truth[0] + truth[2] && cy >= truth[1] && cy <= truth[1] + truth[3]
    }
}

/// Settings of the operating-point metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtrConfig {
    /// When a detection finds a threat (per-class Pd, FROC).
    pub hit_rule: HitRule,
    /// Detection score at which the system alarms, for per-class Pd and the CNR split.
    pub alarm_threshold: f64,
    /// CNR bin edges, ascending; a bin is `[edge_i, edge_i+1)`. JSON writes infinity as "inf".
    #[serde(with = "edges_serde")]
    pub cnr_bins: Vec<f64>,
    /// False positives per scan at which FROC sensitivity is read.
    pub froc_fp_per_scan: Vec<f64>,
    /// Pfa limits at which the scan-level Pd of each class (and of any threat) is read.
    #[serde(default = "default_pfa_limits")]
    pub pfa_limits: Vec<f64>,
}

fn default_pfa_limits() -> Vec<f64> {
    vec![0.005, 0.01, 0.02, 0.03, 0.05]
}

impl Default for AtrConfig {
    fn default() -> Self {
        Self {
            hit_rule: HitRule::default(),
            alarm_threshold: 0.5,
            // `nii-atr synth`'s difficulty labels: hard below 3 (the Rose criterion's visibility
            // limit is a CNR of 3-5), medium below 10, easy above.
            cnr_bins: vec![0.0, 3.0, 10.0, f64::INFINITY],
            froc_fp_per_scan: vec![0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
            pfa_limits: default_pfa_limits(),
        }
    }
}

/// Bin edges with an open end: JSON has no infinity, so it is written as the string "inf".
mod edges_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Edge {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(
                |&x| {
                    if x.is_finite() {
                        Edge::Number(x)
                    } else {
                        Edge::Text(if x > 0.0 { "inf" } else { "-inf" }.into())
                    }
                },
            )
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Edge>::deserialize(d)?
            .into_iter()
            .map(|e| match e {
                Edge::Number(x) => Ok(x),
                Edge::Text(t) => match t.as_str() {
                    "inf" => Ok(f64::INFINITY),
                    "-inf" => Ok(f64::NEG_INFINITY),
                    _ => Err(serde::de::Error::custom(format!("bad bin edge `{t}`"))),
                },
            })
            .collect()
    }
}

/// One ROC operating point. `threshold` is `None` at the two ends: (0, 0) alarms on nothing,
/// (1, 1) on every scan, those without detections included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Scan score at which the system alarms (a scan alarms when its score is `>=` it).
    pub threshold: Option<f64>,
    /// Probability of detection: the share of threat scans that alarm.
    pub pd: f64,
    /// Probability of false alarm: the share of clean scans that alarm.
    pub pfa: f64,
}

/// Scan-level receiver operating characteristic: Pd against Pfa as the alarm threshold falls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// Threat scans (holding any ground truth).
    pub n_positive: usize,
    /// Clean scans (holding none).
    pub n_negative: usize,
    /// From (0, 0) (alarm on nothing) to (1, 1), one point per distinct scan score.
    pub points: Vec<RocPoint>,
    /// Trapezoid area; tied scores form one step, so it equals the Mann-Whitney statistic.
    pub auc: f64,
}

/// Pd reached at a Pfa limit, or Pfa needed for a Pd target, with the threshold that does it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The limit asked for: the Pfa ceiling (Pd at Pfa) or the Pd floor (Pfa at Pd), a fraction.
    pub target: f64,
    /// Pd reached at this point.
    pub pd: f64,
    /// Pfa paid at this point.
    pub pfa: f64,
    /// Scan score threshold that gives it (`None` at the two ends of the ROC).
    pub threshold: Option<f64>,
}

/// Per-scan scores and labels in ascending image id order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanScores {
    /// Image ids, ascending.
    pub image_ids: Vec<i64>,
    /// Each scan's highest detection score (-inf without detections).
    pub scores: Vec<f64>,
    /// Whether each scan holds any ground truth (a threat scan).
    pub positive: Vec<bool>,
}

/// Each scan's score (its highest detection) and whether it holds a threat.
pub fn scan_scores(dataset: &Dataset, predictions: &Predictions) -> ScanScores {
    let image_ids = dataset.sorted_image_ids();
    let index: HashMap<i64, usize> = image_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut scores = vec![f64::NEG_INFINITY; image_ids.len()];
    let mut positive = vec![false; image_ids.len()];
    for d in &predictions.detections {
        let s = &mut scores[index[&d.image_id]];
        *s = s.max(d.score);
    }
    for g in &dataset.annotations {
        positive[index[&g.image_id]] = true;
    }
    ScanScores { image_ids, scores, positive }
}

/// ROC over scans; `None` without both positive and negative scans.
pub fn roc(scores: &[f64], positive: &[bool]) -> Option<Roc> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint { threshold: None, pd: 0.0, pfa: 0.0 }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: s.is_finite().then_some(s),
            pd: tp as f64 / n_pos as f64,
            pfa: fp as f64 / n_neg as f64,
        });
    }
    if points.last().is_some_and(|p| p.threshold.is_some()) {
        points.push(RocPoint { threshold: None, pd: 1.0, pfa: 1.0 });
    }
    let auc = points.windows(2).map(|w| (w[1].pfa - w[0].pfa) * (w[1].pd + w[0].pd) / 2.0).sum();
    Some(Roc { n_positive: n_pos, n_negative: n_neg, points, auc })
}

impl Roc {
    /// Highest Pd among thresholds whose Pfa is at most `max_pfa`.
    pub fn pd_at_pfa(&self, max_pfa: f64) -> OperatingPoint {
        let best = self
            .points
            .iter()
            .filter(|p| p.pfa <= max_pfa)
            .max_by(|a, b| a.pd.total_cmp(&b.pd).then(b.pfa.total_cmp(&a.pfa)))
            .unwrap_or(&self.points[0]);
        OperatingPoint { target: max_pfa, pd: best.pd, pfa: best.pfa, threshold: best.threshold }
    }

    /// Lowest Pfa among thresholds whose Pd is at least `min_pd`.
    pub fn pfa_at_pd(&self, min_pd: f64) -> OperatingPoint {
        let last = self.points.last().unwrap_or(&self.points[0]);
        let best = self
            .points
            .iter()
            .filter(|p| p.pd >= min_pd)
            .min_by(|a, b| a.pfa.total_cmp(&b.pfa).then(b.pd.total_cmp(&a.pd)))
            .unwrap_or(last);
        OperatingPoint { target: min_pd, pd: best.pd, pfa: best.pfa, threshold: best.threshold }
    }
}

/// Detection rate and false alarms of one class at the alarm threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassPd {
    /// The class ([`crate::dataset::Category::id`]).
    pub category_id: i64,
    /// Class name.
    pub name: String,
    /// Non-crowd truths of the class.
    pub n_truth: usize,
    /// Of those, the ones hit by a same-class detection at the alarm threshold.
    pub n_hit: usize,
    /// Pd: `n_hit / n_truth`; `None` when the class has no (non-crowd) ground truth.
    pub pd: Option<f64>,
    /// Detections of the class at the alarm threshold that hit no truth of it.
    pub false_alarms: usize,
    /// `false_alarms` per scan of the set.
    pub false_alarms_per_scan: f64,
}

/// The metrics of one difficulty: the threats whose CNR falls in `[cnr_min, cnr_max)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifficultyBin {
    /// Lowest CNR of the bin (inclusive).
    pub cnr_min: f64,
    /// Highest CNR of the bin (exclusive); `None` for an open upper end.
    pub cnr_max: Option<f64>,
    /// Truths in the bin and those hit at the alarm threshold (as the per-class Pd).
    pub n_truth: usize,
    /// Truths of the bin hit at the alarm threshold.
    pub n_hit: usize,
    /// Pd of the bin's truths: `n_hit / n_truth`; `None` without truths.
    pub pd: Option<f64>,
    /// Threat scans whose hardest threat (lowest CNR) lies in the bin; the scan-level ROC
    /// reads them against every scan without a threat, scored as the "any threat" row.
    #[serde(default)]
    pub n_scans: usize,
    /// Scan-level ROC AUC of those scans against the clean ones; `None` without both.
    #[serde(default)]
    pub scan_auc: Option<f64>,
    /// Pd at each of [`AtrConfig::pfa_limits`].
    #[serde(default)]
    pub scan_pd_at_pfa: Vec<OperatingPoint>,
    /// COCO AP .50:.95 and AP50 (as the report's `coco.stats`) with the other bins' truths
    /// turned into crowd regions: a detection on them counts neither way. Set by the report.
    #[serde(default)]
    pub ap: Option<f64>,
    /// COCO AP at IoU 0.5 of the bin, read as `ap`.
    #[serde(default)]
    pub ap50: Option<f64>,
}

/// A bin's edges hold `cnr`.
pub fn in_bin(cnr: f64, lo: f64, hi: f64) -> bool {
    cnr >= lo && cnr < hi
}

/// A bin in words: `nii-atr synth`'s label when the edges are its (the default bins), then
/// the edges, e.g. "hard [0, 3)".
pub fn bin_label(lo: f64, hi: Option<f64>) -> String {
    let name = match (lo, hi) {
        (0.0, Some(3.0)) => "hard ",
        (3.0, Some(10.0)) => "medium ",
        (10.0, None) => "easy ",
        _ => "",
    };
    format!("{name}[{lo}, {})", hi.map_or_else(|| "inf".to_string(), |v| v.to_string()))
}

/// Per scan of `image_ids`, the CNR of its hardest threat: the lowest among its non-crowd
/// truths that carry one (`None`: no such truth).
pub fn hardest_cnr(dataset: &Dataset, image_ids: &[i64]) -> Vec<Option<f64>> {
    let index: HashMap<i64, usize> = image_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut hardest: Vec<Option<f64>> = vec![None; image_ids.len()];
    for g in dataset.annotations.iter().filter(|g| !g.iscrowd) {
        if let (Some(c), Some(&i)) = (g.cnr, index.get(&g.image_id)) {
            hardest[i] = Some(hardest[i].map_or(c, |h: f64| h.min(c)));
        }
    }
    hardest
}

/// One FROC point: what the detections scoring at least `threshold` find and cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrocPoint {
    /// Detection score threshold (`f64::MAX` for the first point, which keeps no detection).
    pub threshold: f64,
    /// False positives per scan.
    pub fp_per_scan: f64,
    /// Share of the non-crowd truths found.
    pub sensitivity: f64,
}

/// Free-response ROC: lesion-level sensitivity against false positives per scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Froc {
    /// Non-crowd truths of the set.
    pub n_truth: usize,
    /// Scans of the set.
    pub n_scans: usize,
    /// One point per distinct detection score, descending, after a first point at (0, 0).
    pub points: Vec<FrocPoint>,
    /// Sensitivity at each configured FP-per-scan rate (best point not exceeding it).
    pub sensitivity_at: Vec<(f64, f64)>,
    /// Mean of `sensitivity_at`: the competition performance metric of LUNA16-style FROC.
    pub mean_sensitivity: f64,
}

/// All operating-point metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtrMetrics {
    /// Scans of the set.
    pub n_scans: usize,
    /// Scan-level ROC of any threat; `None` without both threat and clean scans.
    pub roc: Option<Roc>,
    /// Pd at Pfa <= 1 % and <= 5 % (empty without a ROC).
    pub pd_at_pfa: Vec<OperatingPoint>,
    /// Pfa at Pd >= 90 % and >= 95 % (empty without a ROC).
    pub pfa_at_pd: Vec<OperatingPoint>,
    /// Pd and false alarms of each class at the alarm threshold, in category id order.
    pub per_class: Vec<ClassPd>,
    /// FROC over all detections.
    pub froc: Froc,
    /// The metrics of each CNR bin; empty when no annotation carries a CNR.
    pub by_cnr: Vec<DifficultyBin>,
    /// Non-crowd truths without a CNR (in no bin).
    pub n_truth_without_cnr: usize,
    /// Scan-level operating points of any threat (first row) and of each class.
    #[serde(default)]
    pub per_class_scan: Vec<ClassScanRoc>,
}

/// Scan-level ROC of one class, as customs targets are set ("vehicles: Pd >= 99% at Pfa <=
/// 0.5%"): positives are the scans holding that class, negatives the scans without any threat
/// (a scan with another threat is neither), and a scan's score is its highest detection of
/// that class. The "any threat" row uses every class, as [`AtrMetrics::roc`] does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScanRoc {
    /// `None` for the "any threat" row.
    pub category_id: Option<i64>,
    /// Class name ("any threat" for the first row).
    pub name: String,
    /// Scans holding the class.
    pub n_positive: usize,
    /// Scans holding no threat.
    pub n_negative: usize,
    /// `None` without both positive and negative scans.
    pub auc: Option<f64>,
    /// Pd at each of [`AtrConfig::pfa_limits`].
    pub pd_at_pfa: Vec<OperatingPoint>,
}

/// [`ClassScanRoc`] rows: any threat first, then each class in id order.
pub fn per_class_scan_roc(dataset: &Dataset, predictions: &Predictions, pfa_limits: &[f64]) -> Vec<ClassScanRoc> {
    let image_ids = dataset.sorted_image_ids();
    let index: HashMap<i64, usize> = image_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let n = image_ids.len();
    let mut threat = vec![false; n];
    for g in &dataset.annotations {
        threat[index[&g.image_id]] = true;
    }
    // Each class's detections and truths, found once rather than by a pass per class.
    let mut dets_of: HashMap<i64, Vec<&CocoDetection>> = HashMap::new();
    for d in &predictions.detections {
        dets_of.entry(d.category_id).or_default().push(d);
    }
    let mut truth_of: HashMap<i64, Vec<&GroundTruth>> = HashMap::new();
    for g in &dataset.annotations {
        truth_of.entry(g.category_id).or_default().push(g);
    }
    let all_dets: Vec<&CocoDetection> = predictions.detections.iter().collect();
    let all_truth: Vec<&GroundTruth> = dataset.annotations.iter().collect();
    let row = |category_id: Option<i64>, name: String| {
        let (dets, truths) = match category_id {
            None => (all_dets.as_slice(), all_truth.as_slice()),
            Some(c) => {
                (dets_of.get(&c).map_or(&[][..], Vec::as_slice), truth_of.get(&c).map_or(&[][..], Vec::as_slice))
            }
        };
        let mut scores = vec![f64::NEG_INFINITY; n];
        let mut holds = vec![false; n];
        for d in dets {
            let s = &mut scores[index[&d.image_id]];
            *s = s.max(d.score);
        }
        for g in truths {
            holds[index[&g.image_id]] = true;
        }
        // Scans holding only other threats take no part in this class's ROC.
        let keep: Vec<usize> = (0..n).filter(|&i| holds[i] || !threat[i]).collect();
        let s: Vec<f64> = keep.iter().map(|&i| scores[i]).collect();
        let p: Vec<bool> = keep.iter().map(|&i| holds[i]).collect();
        let n_positive = p.iter().filter(|&&x| x).count();
        let r = roc(&s, &p);
        ClassScanRoc {
            category_id,
            name,
            n_positive,
            n_negative: p.len() - n_positive,
            auc: r.as_ref().map(|r| r.auc),
            pd_at_pfa: r.as_ref().map(|r| pfa_limits.iter().map(|&l| r.pd_at_pfa(l)).collect()).unwrap_or_default(),
        }
    };
    let mut categories = dataset.categories.clone();
    categories.sort_by_key(|c| c.id);
    // A class with neither truth nor detections has the same row as any other such class
    // (no positives, every clean scan a negative): computed once, not once per class.
    let mut unused: Option<ClassScanRoc> = None;
    std::iter::once(row(None, "any threat".into()))
        .chain(categories.iter().map(|c| {
            if dets_of.contains_key(&c.id) || truth_of.contains_key(&c.id) {
                return row(Some(c.id), c.name.clone());
            }
            let template = unused.get_or_insert_with(|| row(Some(c.id), String::new()));
            ClassScanRoc { category_id: Some(c.id), name: c.name.clone(), ..template.clone() }
        }))
        .collect()
}

/// Which non-crowd truths are hit by a same-class detection scoring `>= threshold`, and
/// which such detections hit no truth of their class (false alarms).
fn hits_at(groups: &ByImage, rule: &HitRule, threshold: f64) -> (HashMap<i64, bool>, HashMap<i64, usize>) {
    let mut hit = HashMap::new();
    let mut false_alarms: HashMap<i64, usize> = HashMap::new();
    for (image_id, truths) in groups.truth_by_image() {
        let dets = groups.detections(image_id);
        for g in truths.iter().filter(|g| !g.iscrowd) {
            let found = dets
                .iter()
                .any(|d| d.score >= threshold && d.category_id == g.category_id && rule.hits(&d.bbox, &g.bbox));
            hit.insert(g.id, found);
        }
    }
    for (image_id, dets) in groups.detections_by_image() {
        let truths = groups.truth(image_id);
        for d in dets.iter().filter(|d| d.score >= threshold) {
            let on_truth = truths.iter().any(|g| g.category_id == d.category_id && rule.hits(&d.bbox, &g.bbox));
            if !on_truth {
                *false_alarms.entry(d.category_id).or_default() += 1;
            }
        }
    }
    (hit, false_alarms)
}

/// FROC: detections in descending score order; one hitting a not-yet-found truth of its class
/// is a true positive (the truth of highest IoU is taken), one hitting only found truths or a
/// crowd region of its class is not counted (a duplicate), anything else is a false positive.
pub fn froc(dataset: &Dataset, predictions: &Predictions, cfg: &AtrConfig) -> Froc {
    let groups = ByImage::new(dataset, predictions);
    let n_truth = dataset.annotations.iter().filter(|g| !g.iscrowd).count();
    let n_scans = dataset.images.len();
    let mut order: Vec<&CocoDetection> = predictions.detections.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut found: HashMap<i64, bool> = HashMap::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = vec![FrocPoint { threshold: f64::MAX, fp_per_scan: 0.0, sensitivity: 0.0 }];
    for (i, d) in order.iter().enumerate() {
        let truths = groups.truth(d.image_id);
        let candidates =
            truths.iter().filter(|g| g.category_id == d.category_id && cfg.hit_rule.hits(&d.bbox, &g.bbox));
        let mut best: Option<(&GroundTruth, f64)> = None;
        let mut touched = false;
        for g in candidates {
            touched = true;
            if g.iscrowd || found.get(&g.id).copied().unwrap_or(false) {
                continue;
            }
            let iou = bbox_iou(&d.bbox, &g.bbox, false);
            if best.is_none_or(|(_, b)| iou > b) {
                best = Some((g, iou));
            }
        }
        match best {
            Some((g, _)) => {
                found.insert(g.id, true);
                tp += 1;
            }
            None if touched => {}
            None => fp += 1,
        }
        let last_of_score = order.get(i + 1).is_none_or(|n| n.score != d.score);
        if last_of_score {
            points.push(FrocPoint {
                threshold: d.score,
                fp_per_scan: fp as f64 / n_scans.max(1) as f64,
                sensitivity: tp as f64 / n_truth.max(1) as f64,
            });
        }
    }
    let sensitivity_at: Vec<(f64, f64)> = cfg
        .froc_fp_per_scan
        .iter()
        .map(|&rate| {
            let s = points.iter().filter(|p| p.fp_per_scan <= rate).map(|p| p.sensitivity).fold(0.0, f64::max);
            (rate, s)
        })
        .collect();
    let mean_sensitivity = if sensitivity_at.is_empty() {
        0.0
    } else {
        sensitivity_at.iter().map(|p| p.1).sum::<f64>() / sensitivity_at.len() as f64
    };
    Froc { n_truth, n_scans, points, sensitivity_at, mean_sensitivity }
}

/// ROC, operating points, per-class Pd, FROC and the CNR split.
pub fn atr_metrics(dataset: &Dataset, predictions: &Predictions, cfg: &AtrConfig) -> AtrMetrics {
    let scans = scan_scores(dataset, predictions);
    let roc = roc(&scans.scores, &scans.positive);
    let pd_at_pfa = roc.as_ref().map(|r| vec![r.pd_at_pfa(0.01), r.pd_at_pfa(0.05)]).unwrap_or_default();
    let pfa_at_pd = roc.as_ref().map(|r| vec![r.pfa_at_pd(0.90), r.pfa_at_pd(0.95)]).unwrap_or_default();
    let groups = ByImage::new(dataset, predictions);
    let (hit, false_alarms) = hits_at(&groups, &cfg.hit_rule, cfg.alarm_threshold);
    let n_scans = dataset.images.len();
    let mut categories = dataset.categories.clone();
    categories.sort_by_key(|c| c.id);
    let mut truth_of: HashMap<i64, Vec<&GroundTruth>> = HashMap::new();
    for g in dataset.annotations.iter().filter(|g| !g.iscrowd) {
        truth_of.entry(g.category_id).or_default().push(g);
    }
    let per_class = categories
        .iter()
        .map(|c| {
            let truths: &[&GroundTruth] = truth_of.get(&c.id).map_or(&[], Vec::as_slice);
            let n_hit = truths.iter().filter(|g| hit[&g.id]).count();
            let fa = false_alarms.get(&c.id).copied().unwrap_or(0);
            ClassPd {
                category_id: c.id,
                name: c.name.clone(),
                n_truth: truths.len(),
                n_hit,
                pd: (!truths.is_empty()).then(|| n_hit as f64 / truths.len() as f64),
                false_alarms: fa,
                false_alarms_per_scan: fa as f64 / n_scans.max(1) as f64,
            }
        })
        .collect();
    let with_cnr: Vec<&GroundTruth> = dataset.annotations.iter().filter(|g| !g.iscrowd && g.cnr.is_some()).collect();
    let n_truth_without_cnr = dataset.annotations.iter().filter(|g| !g.iscrowd && g.cnr.is_none()).count();
    // A scan is as hard as its hardest threat: the lowest CNR among its truths that carry one.
    let hardest = hardest_cnr(dataset, &scans.image_ids);
    let by_cnr = if with_cnr.is_empty() {
        Vec::new()
    } else {
        cfg.cnr_bins
            .windows(2)
            .map(|w| {
                let truths: Vec<&&GroundTruth> =
                    with_cnr.iter().filter(|g| g.cnr.is_some_and(|c| in_bin(c, w[0], w[1]))).collect();
                let n_hit = truths.iter().filter(|g| hit[&g.id]).count();
                let keep: Vec<usize> = (0..hardest.len())
                    .filter(|&i| !scans.positive[i] || hardest[i].is_some_and(|h| in_bin(h, w[0], w[1])))
                    .collect();
                let s: Vec<f64> = keep.iter().map(|&i| scans.scores[i]).collect();
                let p: Vec<bool> = keep.iter().map(|&i| scans.positive[i]).collect();
                let r = self::roc(&s, &p);
                DifficultyBin {
                    cnr_min: w[0],
                    cnr_max: w[1].is_finite().then_some(w[1]),
                    n_truth: truths.len(),
                    n_hit,
                    pd: (!truths.is_empty()).then(|| n_hit as f64 / truths.len() as f64),
                    n_scans: p.iter().filter(|&&x| x).count(),
                    scan_auc: r.as_ref().map(|r| r.auc),
                    scan_pd_at_pfa: r
                        .as_ref()
                        .map(|r| cfg.pfa_limits.iter().map(|&l| r.pd_at_pfa(l)).collect())
                        .unwrap_or_default(),
                    ap: None,
                    ap50: None,
                }
            })
            .collect()
    };
    AtrMetrics {
        n_scans,
        roc,
        pd_at_pfa,
        pfa_at_pd,
        per_class,
        froc: froc(dataset, predictions, cfg),
        by_cnr,
        n_truth_without_cnr,
        per_class_scan: per_class_scan_roc(dataset, predictions, &cfg.pfa_limits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Mann-Whitney: P(score_pos > score_neg) + 0.5 P(equal), by brute force.
    fn mann_whitney(scores: &[f64], positive: &[bool]) -> f64 {
        let (mut sum, mut n) = (0.0, 0.0);
        for i in 0..scores.len() {
            for j in 0..scores.len() {
                if positive[i] && !positive[j] {
                    n += 1.0;
                    if scores[i] > scores[j] {
                        sum += 1.0;
                    } else if scores[i] == scores[j] {
                        sum += 0.5;
                    }
                }
            }
        }
        sum / n
    }

    proptest! {
        #[test]
        fn auc_equals_mann_whitney(
            data in proptest::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 2..60)
        ) {
            // Few distinct scores force ties; `None` stands for a scan without detections.
            let scores: Vec<f64> = data
                .iter()
                .map(|&(s, none, _)| if none && s == 0 { f64::NEG_INFINITY } else { f64::from(s) / 5.0 })
                .collect();
            let positive: Vec<bool> = data.iter().map(|d| d.2).collect();
            if let Some(r) = roc(&scores, &positive) {
                prop_assert!((r.auc - mann_whitney(&scores, &positive)).abs() < 1e-12);
                prop_assert_eq!(r.points.first().map(|p| (p.pd, p.pfa)), Some((0.0, 0.0)));
                prop_assert_eq!(r.points.last().map(|p| (p.pd, p.pfa)), Some((1.0, 1.0)));
            }
        }
    }

    #[test]
    fn operating_points_read_the_roc() {
        // Positives 0.9 0.8 0.3, negatives 0.7 0.2 and a scan without detections.
        let scores = [0.9, 0.8, 0.3, 0.7, 0.2, f64::NEG_INFINITY];
        let positive = [true, true, true, false, false, false];
        let r = roc(&scores, &positive).unwrap();
        let p = r.pd_at_pfa(0.0);
        assert_eq!((p.pd, p.pfa, p.threshold), (2.0 / 3.0, 0.0, Some(0.8)));
        let p = r.pd_at_pfa(0.34);
        assert_eq!((p.pd, p.threshold), (1.0, Some(0.3)));
        let p = r.pfa_at_pd(0.9);
        assert_eq!((p.pfa, p.threshold), (1.0 / 3.0, Some(0.3)));
        assert!((r.auc - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn class_scan_roc_leaves_out_scans_of_other_threats() {
        use crate::dataset::{Category, ImageInfo};
        let image = |id| ImageInfo { id, file_name: None, width: None, height: None };
        let truth = |id, image_id, category_id| GroundTruth {
            id,
            image_id,
            category_id,
            bbox: [0.0, 0.0, 10.0, 10.0],
            area: 100.0,
            iscrowd: false,
            cnr: None,
        };
        let det =
            |image_id, category_id, score| CocoDetection { image_id, category_id, bbox: [0.0, 0.0, 10.0, 10.0], score };
        // Scans 1-2 hold a car, 3 a gun, 4-5 are clean.
        let dataset = Dataset {
            images: (1..=5).map(image).collect(),
            categories: vec![Category { id: 1, name: "car".into() }, Category { id: 2, name: "gun".into() }],
            annotations: vec![truth(1, 1, 1), truth(2, 2, 1), truth(3, 3, 2)],
            ..Dataset::default()
        };
        let predictions = Predictions {
            detections: vec![det(1, 1, 0.9), det(2, 2, 0.8), det(3, 1, 0.95), det(4, 1, 0.5), det(5, 2, 0.7)],
            ..Predictions::default()
        };
        let rows = per_class_scan_roc(&dataset, &predictions, &[0.0, 0.5]);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["any threat", "car", "gun"]);
        // Any threat: positives 1 (0.9), 2 (0.8), 3 (0.95); negatives 4 (0.5), 5 (0.7).
        assert_eq!((rows[0].n_positive, rows[0].n_negative), (3, 2));
        assert_eq!(rows[0].auc, Some(1.0));
        // Car: scan 3 (gun only) takes no part, though it holds the highest car score.
        // Positives 1 (0.9), 2 (none: -inf); negatives 4 (0.5), 5 (none).
        assert_eq!((rows[1].n_positive, rows[1].n_negative), (2, 2));
        assert_eq!(rows[1].auc, Some(0.625));
        assert_eq!((rows[1].pd_at_pfa[0].pd, rows[1].pd_at_pfa[0].threshold), (0.5, Some(0.9)));
        // Pfa <= 50 % allows threshold 0.5, which adds no Pd: the lower-Pfa point is kept.
        assert_eq!((rows[1].pd_at_pfa[1].pd, rows[1].pd_at_pfa[1].pfa), (0.5, 0.0));
        // Gun: positive 3 (gun score: none), negatives 4 (none), 5 (0.7): the positive ranks last.
        assert_eq!(rows[2].auc, Some(0.25));
    }

    #[test]
    fn lenient_hit_accepts_centre_inside_or_low_iou() {
        let rule = HitRule::default();
        let truth = [0.0, 0.0, 100.0, 100.0];
        // Small box inside: IoU 0.01, centre inside.
        assert!(rule.hits(&[40.0, 40.0, 10.0, 10.0], &truth));
        let strict = HitRule { min_iou: 0.1, centre_inside: false };
        assert!(!strict.hits(&[40.0, 40.0, 10.0, 10.0], &truth));
        assert!(!rule.hits(&[150.0, 0.0, 10.0, 10.0], &truth));
    }
}
