//! Bootstrap over scans: 95% intervals for the headline numbers, and the paired bootstrap that
//! says whether one model is really better than another on the same scans.
//!
//! A resample draws as many scans as the set holds, with replacement; every metric of that
//! resample is recomputed from per-scan results (COCO matching is per scan, so resampling
//! re-accumulates without re-matching). Intervals are percentile intervals (numpy's linear
//! quantile). Resample `b` uses ChaCha8 seeded from `seed` and `b`, so results do not depend on
//! thread scheduling.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use nii_atr_core::progress::Progress;

use super::atr::{ScanScores, roc};
use super::coco::{CocoEvaluation, ResampleIndex};

/// How the scans are resampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Resamples drawn (1 to [`MAX_RESAMPLES`]).
    pub resamples: usize,
    /// Seed of the resamples: the same seed gives the same intervals.
    pub seed: u64,
    /// Coverage of the percentile intervals, in (0, 1) (0.95: 95 % intervals).
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self { resamples: 1000, seed: 20_261_123, confidence: 0.95 }
    }
}

/// More resamples than this buy no precision and only hold memory (one record per resample).
pub const MAX_RESAMPLES: usize = 100_000;

impl BootstrapConfig {
    /// A [`crate::EvalError::Params`] unless the resamples and the confidence are in range.
    pub fn validate(&self) -> Result<(), super::EvalError> {
        if self.resamples == 0 || self.resamples > MAX_RESAMPLES {
            return Err(super::EvalError::Params(format!(
                "bootstrap resamples must be in 1..={MAX_RESAMPLES}, got {}",
                self.resamples
            )));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(super::EvalError::Params(format!(
                "bootstrap confidence must be in (0, 1), got {}",
                self.confidence
            )));
        }
        Ok(())
    }
}

/// A point estimate and its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The metric on the scans as they are.
    pub estimate: f64,
    /// Lower end of the percentile interval.
    pub low: f64,
    /// Upper end of the percentile interval.
    pub high: f64,
    /// Resamples where the metric was defined (e.g. AUC needs clean and threat scans).
    pub n_valid: usize,
}

/// The headline metrics of one model, recomputed on a resample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headline {
    /// Mean AP over IoU .50:.95 and categories, area "all", largest maxDets.
    pub ap: f64,
    /// Scan-level ROC AUC; `None` without both threat and clean scans.
    pub auc: Option<f64>,
    /// Pd at Pfa <= 1 %.
    pub pd_at_pfa_1: Option<f64>,
    /// Pd at Pfa <= 5 %.
    pub pd_at_pfa_5: Option<f64>,
}

/// Per-scan inputs of one model that the resampled headline numbers need.
pub struct ModelScans<'a> {
    /// The COCO matches, ordered for resampled AP.
    pub coco: ResampleIndex<'a>,
    /// Each scan's score and truth, for the resampled ROC.
    pub scans: &'a ScanScores,
}

impl<'a> ModelScans<'a> {
    /// Indexes one model's COCO evaluation and scan scores for resampling.
    pub fn new(coco: &'a CocoEvaluation, scans: &'a ScanScores) -> Self {
        Self { coco: ResampleIndex::new(coco), scans }
    }

    /// Headline numbers with scan `i` counted `counts[i]` times (all ones: the plain estimate).
    pub fn headline(&self, counts: &[usize]) -> Headline {
        let ap = self.coco.ap(counts);
        let mut scores = Vec::new();
        let mut positive = Vec::new();
        for (i, &c) in counts.iter().enumerate() {
            for _ in 0..c {
                scores.push(self.scans.scores[i]);
                positive.push(self.scans.positive[i]);
            }
        }
        let r = roc(&scores, &positive);
        Headline {
            ap,
            auc: r.as_ref().map(|r| r.auc),
            pd_at_pfa_1: r.as_ref().map(|r| r.pd_at_pfa(0.01).pd),
            pd_at_pfa_5: r.as_ref().map(|r| r.pd_at_pfa(0.05).pd),
        }
    }
}

/// Scan multiplicities of resample `b`.
pub fn resample_counts(n: usize, seed: u64, b: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (b as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut counts = vec![0usize; n];
    if n > 0 {
        for _ in 0..n {
            counts[rng.random_range(0..n)] += 1;
        }
    }
    counts
}

/// numpy's default (linear) quantile of sorted values (`q` in [0, 1], clamped): linear
/// interpolation between order statistics; NaN for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, frac) = (h.floor() as usize, h - h.floor());
            if lo + 1 >= n { sorted[n - 1] } else { sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]) }
        }
    }
}

fn interval(estimate: f64, mut values: Vec<f64>, confidence: f64) -> Interval {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    // No defined resample: a zero-width interval (n_valid says so); JSON has no NaN.
    let q = |p| if values.is_empty() { estimate } else { quantile(&values, p) };
    Interval { estimate, low: q(alpha), high: q(1.0 - alpha), n_valid: values.len() }
}

/// Interval of the scan-level ROC AUC of `scores` (one per scan, `positive` marks threat
/// scans) over resampled scans; `None` where the AUC itself is undefined (one kind of scan).
pub fn auc_interval(scores: &[f64], positive: &[bool], cfg: &BootstrapConfig) -> Option<Interval> {
    let estimate = roc(scores, positive)?.auc;
    let n = scores.len();
    let draws: Vec<f64> = (0..cfg.resamples)
        .into_par_iter()
        .filter_map(|b| {
            let counts = resample_counts(n, cfg.seed, b);
            let (mut s, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for (i, &c) in counts.iter().enumerate() {
                for _ in 0..c {
                    s.push(scores[i]);
                    p.push(positive[i]);
                }
            }
            roc(&s, &p).map(|r| r.auc)
        })
        .collect();
    Some(interval(estimate, draws, cfg.confidence))
}

/// Intervals for the headline numbers of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineIntervals {
    /// How the scans were resampled.
    pub config: BootstrapConfig,
    /// AP .50:.95 at the largest maxDets (estimate -1 when undefined).
    pub ap: Interval,
    /// Scan-level ROC AUC; `None` without both threat and clean scans.
    pub auc: Option<Interval>,
    /// Pd at Pfa <= 1 %.
    pub pd_at_pfa_1: Option<Interval>,
    /// Pd at Pfa <= 5 %.
    pub pd_at_pfa_5: Option<Interval>,
}

fn field(h: &Headline, i: usize) -> Option<f64> {
    match i {
        0 => (h.ap > -1.0).then_some(h.ap),
        1 => h.auc,
        2 => h.pd_at_pfa_1,
        _ => h.pd_at_pfa_5,
    }
}

/// Intervals of one model's headline numbers; `progress` advances once per resample.
pub fn headline_intervals(model: &ModelScans, cfg: &BootstrapConfig, progress: &dyn Progress) -> HeadlineIntervals {
    let n = model.scans.scores.len();
    let point = model.headline(&vec![1; n]);
    let draws: Vec<Headline> = (0..cfg.resamples)
        .into_par_iter()
        .map(|b| {
            let h = model.headline(&resample_counts(n, cfg.seed, b));
            progress.inc(1);
            h
        })
        .collect();
    let iv = |i: usize| {
        field(&point, i).map(|est| interval(est, draws.iter().filter_map(|h| field(h, i)).collect(), cfg.confidence))
    };
    HeadlineIntervals {
        config: cfg.clone(),
        ap: iv(0).unwrap_or(Interval { estimate: -1.0, low: -1.0, high: -1.0, n_valid: 0 }),
        auc: iv(1),
        pd_at_pfa_1: iv(2),
        pd_at_pfa_5: iv(3),
    }
}

/// Difference `candidate - baseline` of one metric over paired resamples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// `ap`, `roc_auc`, `pd_at_pfa_1pct` or `pd_at_pfa_5pct`.
    pub metric: String,
    /// The baseline's value on the scans as they are.
    pub baseline: f64,
    /// The candidate's value on the scans as they are.
    pub candidate: f64,
    /// `candidate - baseline` and its interval over the paired resamples.
    pub difference: Interval,
    /// Share of resamples in which the candidate scores higher.
    pub p_candidate_better: f64,
    /// The interval of the difference excludes 0.
    pub significant: bool,
}

/// Paired bootstrap: both models are scored on the same resampled scans; `progress` advances
/// once per resample.
pub fn paired(
    baseline: &ModelScans,
    candidate: &ModelScans,
    cfg: &BootstrapConfig,
    progress: &dyn Progress,
) -> Vec<PairedDifference> {
    let n = baseline.scans.scores.len();
    let ones = vec![1; n];
    let (pb, pc) = (baseline.headline(&ones), candidate.headline(&ones));
    let draws: Vec<(Headline, Headline)> = (0..cfg.resamples)
        .into_par_iter()
        .map(|b| {
            let counts = resample_counts(n, cfg.seed, b);
            let pair = (baseline.headline(&counts), candidate.headline(&counts));
            progress.inc(1);
            pair
        })
        .collect();
    let names = ["ap", "roc_auc", "pd_at_pfa_1pct", "pd_at_pfa_5pct"];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (Some(b), Some(c)) = (field(&pb, i), field(&pc, i)) else {
            continue;
        };
        let deltas: Vec<f64> = draws.iter().filter_map(|(x, y)| Some(field(y, i)? - field(x, i)?)).collect();
        let better = deltas.iter().filter(|&&d| d > 0.0).count();
        let n_d = deltas.len().max(1);
        let difference = interval(c - b, deltas, cfg.confidence);
        out.push(PairedDifference {
            metric: name.to_string(),
            baseline: b,
            candidate: c,
            p_candidate_better: better as f64 / n_d as f64,
            significant: difference.low > 0.0 || difference.high < 0.0,
            difference,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_numpy_linear() {
        // np.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile(&v, 0.025) - 1.075).abs() < 1e-12);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 95]) = [3.0, 8.8]
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert!((quantile(&v, 0.95) - 8.8).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn resamples_are_deterministic_and_keep_size() {
        let a = resample_counts(50, 7, 3);
        assert_eq!(a, resample_counts(50, 7, 3));
        assert_ne!(a, resample_counts(50, 7, 4));
        assert_eq!(a.iter().sum::<usize>(), 50);
    }
}
