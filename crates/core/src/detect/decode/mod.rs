//! Output decoders: raw model tensors to per-image detections, anomaly maps or class scores.
//!
//! One file per output layout. Every decoder checks the tensor's shape before reading it
//! (a typed [`DecodeError`]) and counts, instead of passing on, values that are not finite.

pub mod anomaly;
pub mod classify;
pub mod end_to_end;
pub mod yolo_v5;
pub mod yolo_v8;

use super::geometry::{BoxXyxy, Detection};
use super::merge::nms_indices;
use ndarray::{ArrayViewD, CowArray, Ix3, IxDyn};
use serde::Serialize;

/// A model output: borrowed from ONNX Runtime's output buffer while a run's outputs are
/// decoded in place, owned when copied out (or converted from another element type).
#[derive(Debug, Clone)]
pub enum OutputTensor<'a> {
    /// A float output (other numeric types are converted to f32).
    F32(CowArray<'a, f32, IxDyn>),
    /// A boolean output (anomaly masks).
    Bool(CowArray<'a, bool, IxDyn>),
}

impl OutputTensor<'_> {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => a.shape(),
            Self::Bool(a) => a.shape(),
        }
    }

    /// A copy that no longer borrows from ONNX Runtime.
    pub fn into_owned(self) -> OutputTensor<'static> {
        match self {
            Self::F32(a) => OutputTensor::F32(a.into_owned().into()),
            Self::Bool(a) => OutputTensor::Bool(a.into_owned().into()),
        }
    }
}

/// All outputs of one run, by name, in the model's order.
#[derive(Debug, Clone, Default)]
pub struct ModelOutputs<'a> {
    /// Output name and tensor, in the model's order.
    pub tensors: Vec<(String, OutputTensor<'a>)>,
}

impl<'a> ModelOutputs<'a> {
    /// A copy that no longer borrows from ONNX Runtime.
    pub fn into_owned(self) -> ModelOutputs<'static> {
        ModelOutputs { tensors: self.tensors.into_iter().map(|(n, t)| (n, t.into_owned())).collect() }
    }

    /// The named output, if the run produced it.
    pub fn get(&self, name: &str) -> Option<&OutputTensor<'a>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The named output as f32, or a typed error.
    pub fn f32(&self, name: &str) -> Result<ArrayViewD<'_, f32>, DecodeError> {
        match self.get(name) {
            Some(OutputTensor::F32(a)) => Ok(a.view()),
            Some(OutputTensor::Bool(_)) => {
                Err(DecodeError::Type { output: name.to_string(), expected: "float32", found: "bool" })
            }
            None => Err(DecodeError::MissingOutput {
                output: name.to_string(),
                available: self.tensors.iter().map(|(n, _)| n.clone()).collect(),
            }),
        }
    }
}

/// Why a model's outputs cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An output the decoder reads is not among the run's outputs.
    #[error("model output `{output}` is missing (outputs: {available:?})")]
    MissingOutput {
        /// The output the decoder reads.
        output: String,
        /// The outputs the run gave.
        available: Vec<String>,
    },
    /// An output's shape does not fit the decoder.
    #[error("model output `{output}` has shape {found:?}; the {decoder} decoder expects {expected}")]
    Shape {
        /// The output.
        output: String,
        /// The decoder's name.
        decoder: &'static str,
        /// The layout the decoder reads, in words.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// An output's element type does not fit the decoder.
    #[error("model output `{output}` is {found}; expected {expected}")]
    Type {
        /// The output.
        output: String,
        /// The element type the decoder reads.
        expected: &'static str,
        /// The element type found.
        found: &'static str,
    },
    /// An output holds another number of images than the run was sent.
    #[error("model output `{output}` holds {found} images but {expected} were sent")]
    Batch {
        /// The output.
        output: String,
        /// Images sent.
        expected: usize,
        /// Images in the output.
        found: usize,
    },
}

/// What a decoder dropped, so a bad model is visible in the report instead of silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DecodeStats {
    /// Candidates or pixels with NaN/infinite values.
    pub non_finite: usize,
    /// Candidates with impossible values (score above 1, class index out of range, inverted box).
    pub malformed: usize,
    /// Candidates above their class threshold before NMS.
    pub candidates: usize,
}

impl DecodeStats {
    /// Adds another tally to this one.
    pub fn add(&mut self, other: &Self) {
        self.non_finite += other.non_finite;
        self.malformed += other.malformed;
        self.candidates += other.candidates;
    }
}

/// How an NMS head (YOLOv8, YOLOv5 layouts) keeps candidates and removes duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NmsRule {
    /// nii-atr's: a candidate is kept at or above its class threshold; NMS drops a box whose
    /// IoU with a better box of its class exceeds the IoU threshold.
    #[default]
    Standard,
    /// Ultralytics' `non_max_suppression` (8.4), as `YOLO(...).predict` runs it: a candidate is
    /// kept strictly above the threshold, only the 30000 best enter NMS, and classes are kept
    /// apart by offsetting each box by `class × 7680` px before one torchvision NMS (IoU
    /// computed on the offset boxes in f32, compared with the threshold in f64), so results
    /// match Ultralytics' to the last bit.
    Ultralytics,
}

impl NmsRule {
    /// Whether this is the default rule (specs leave it out).
    pub fn is_standard(&self) -> bool {
        *self == Self::Standard
    }

    /// Whether a best-class `score` passes `threshold` under this rule.
    pub fn passes(self, score: f32, threshold: f32) -> bool {
        match self {
            Self::Standard => score >= threshold,
            Self::Ultralytics => score > threshold,
        }
    }
}

/// Ultralytics' class offset for class-aware NMS (`max_wh`), pixels.
const ULTRALYTICS_MAX_WH: f32 = 7680.0;
/// Most candidates Ultralytics hands to NMS (`max_nms`), best first.
const ULTRALYTICS_MAX_NMS: usize = 30_000;

/// Thresholds and limits shared by the box decoders.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxParams {
    /// Minimum score per class; its length is the model's class count.
    pub class_thresholds: Vec<f32>,
    /// IoU above which NMS suppresses a same-class box (anchor-based heads only).
    pub iou_threshold: f32,
    /// Detections kept per image after NMS, best first.
    pub max_detections: usize,
}

impl BoxParams {
    /// The model's class count.
    pub fn num_classes(&self) -> usize {
        self.class_thresholds.len()
    }
}

pub(crate) fn view3<'a>(
    out: ArrayViewD<'a, f32>,
    name: &str,
    decoder: &'static str,
    expected: &str,
) -> Result<ndarray::ArrayView3<'a, f32>, DecodeError> {
    let shape = out.shape().to_vec();
    out.into_dimensionality::<Ix3>().map_err(|_| DecodeError::Shape {
        output: name.to_string(),
        decoder,
        expected: expected.to_string(),
        found: shape,
    })
}

pub(crate) fn check_batch(name: &str, found: usize, expected: usize) -> Result<(), DecodeError> {
    if found == expected { Ok(()) } else { Err(DecodeError::Batch { output: name.to_string(), expected, found }) }
}

/// The layout a box decoder reads: which axis of `[N, a, b]` holds each candidate's values
/// and how many there must be.
pub(crate) struct BoxHead<'e> {
    /// Decoder name, for errors.
    pub decoder: &'static str,
    /// The layout in words, for errors.
    pub expected: &'e str,
    /// 1 when values run down rows (`[N, values, anchors]`), 2 when along columns.
    pub values_axis: usize,
    /// Values per candidate; `None` when none fit (a head without classes).
    pub values: Option<usize>,
}

impl BoxHead<'_> {
    /// `out` as `[N, a, b]` with the head's values per candidate and `batch` images, or a
    /// typed error naming the output, the decoder and the shape found.
    pub(crate) fn view<'a>(
        &self,
        out: ArrayViewD<'a, f32>,
        output: &str,
        batch: usize,
    ) -> Result<ndarray::ArrayView3<'a, f32>, DecodeError> {
        let out = view3(out, output, self.decoder, self.expected)?;
        if self.values != Some(out.shape()[self.values_axis]) {
            return Err(DecodeError::Shape {
                output: output.into(),
                decoder: self.decoder,
                expected: self.expected.into(),
                found: out.shape().to_vec(),
            });
        }
        check_batch(output, out.shape()[0], batch)?;
        Ok(out)
    }
}

/// A centre-size candidate whose score already passed its class threshold: counted and kept
/// when its box is finite with non-negative sides, else counted as dropped.
pub(crate) fn push_cxcywh(
    [cx, cy, w, h]: [f32; 4],
    score: f32,
    class_id: u32,
    stats: &mut DecodeStats,
    cands: &mut Vec<Detection>,
) {
    let bbox = BoxXyxy::from_cxcywh(cx, cy, w, h);
    if !bbox.is_finite() {
        stats.non_finite += 1;
    } else if w < 0.0 || h < 0.0 {
        stats.malformed += 1;
    } else {
        stats.candidates += 1;
        cands.push(Detection { bbox, score, class_id });
    }
}

/// Largest score accepted as a probability; above it the head is not emitting confidences
/// (e.g. an export without its final sigmoid) and the candidate counts as malformed.
pub const MAX_SCORE: f32 = 1.0 + 1e-4;

/// Best class of a candidate, skipping none: `None` when any score is not finite.
pub(crate) fn best_class(scores: impl Iterator<Item = f32>) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (c, s) in scores.enumerate() {
        if !s.is_finite() {
            return None;
        }
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((c, s));
        }
    }
    best
}

/// Class-aware NMS under `rule` with the IoU threshold, then the per-image cap; best first.
pub(crate) fn nms_per_image(cands: Vec<Detection>, params: &BoxParams, rule: NmsRule) -> Vec<Detection> {
    match rule {
        NmsRule::Standard => {
            let boxes: Vec<BoxXyxy> = cands.iter().map(|d| d.bbox).collect();
            let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
            let keep = nms_indices(
                &boxes,
                &scores,
                params.iou_threshold,
                |i, j| cands[i].class_id == cands[j].class_id,
                |a, b| a.iou(b),
            );
            keep.into_iter().take(params.max_detections).map(|i| cands[i]).collect()
        }
        NmsRule::Ultralytics => ultralytics_nms(cands, params),
    }
}

/// Ultralytics' NMS: the 30000 best candidates, boxes offset by `class × 7680` (f32), one
/// class-blind NMS over them, the first `max_detections` kept.
fn ultralytics_nms(mut cands: Vec<Detection>, params: &BoxParams) -> Vec<Detection> {
    if cands.len() > ULTRALYTICS_MAX_NMS {
        // Stable: among equal scores the earlier anchor wins, as NMS's own order does.
        cands.sort_by(|a, b| b.score.total_cmp(&a.score));
        cands.truncate(ULTRALYTICS_MAX_NMS);
    }
    let offset: Vec<BoxXyxy> = cands
        .iter()
        .map(|d| {
            let o = d.class_id as f32 * ULTRALYTICS_MAX_WH;
            BoxXyxy::new(d.bbox.x1 + o, d.bbox.y1 + o, d.bbox.x2 + o, d.bbox.y2 + o)
        })
        .collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    let threshold = torchvision_threshold(params.iou_threshold);
    let keep = nms_indices(&offset, &scores, threshold, |_, _| true, |a, b| a.iou(b));
    keep.into_iter().take(params.max_detections).map(|i| cands[i]).collect()
}

/// The f32 threshold equivalent to torchvision's comparison of an f32 IoU with the threshold
/// as a Python float (f64): the largest f32 not above the decimal the user wrote. `0.6` as f32
/// is 0.6000000238, above 0.6, so an IoU of exactly that f32 is suppressed by torchvision and
/// must be here too.
fn torchvision_threshold(t: f32) -> f32 {
    // Display gives the shortest decimal that reads back as `t`: the number as written.
    let written: f64 = t.to_string().parse().unwrap_or(t as f64);
    if (t as f64) > written { t.next_down() } else { t }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Tolerance-aware detection comparison (model outputs pass through f32 arithmetic).
    pub fn assert_close(got: &[Detection], want: &[(f32, f32, f32, f32, f32, u32)]) {
        assert_eq!(got.len(), want.len(), "got {got:?}");
        for (g, w) in got.iter().zip(want) {
            let b = g.bbox;
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(
                close(b.x1, w.0) && close(b.y1, w.1) && close(b.x2, w.2) && close(b.y2, w.3) && close(g.score, w.4),
                "got {g:?}, want {w:?}"
            );
            assert_eq!(g.class_id, w.5);
        }
    }

    pub fn params(nc: usize, thr: f32) -> BoxParams {
        BoxParams { class_thresholds: vec![thr; nc], iou_threshold: 0.45, max_detections: 300 }
    }

    /// A one-image head `[1, candidates, W]` holding `rows`, or `[1, W, candidates]` (one
    /// column per candidate, YOLOv8's layout) when `transposed`.
    pub fn one_image<const W: usize>(rows: &[[f32; W]], transposed: bool) -> ndarray::ArrayD<f32> {
        let a = ndarray::Array3::from_shape_fn((1, rows.len(), W), |(_, i, c)| rows[i][c]);
        if transposed { a.permuted_axes([0, 2, 1]).as_standard_layout().into_owned().into_dyn() } else { a.into_dyn() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn box_head_checks_values_axis_and_batch() {
        let head = BoxHead { decoder: "toy", expected: "[N, 6, anchors]", values_axis: 1, values: Some(6) };
        let ok = ArrayD::<f32>::zeros(IxDyn(&[2, 6, 9]));
        assert_eq!(head.view(ok.view(), "out", 2).unwrap().dim(), (2, 6, 9));
        let err = head.view(ok.view(), "out", 3).unwrap_err();
        assert!(matches!(err, DecodeError::Batch { expected: 3, found: 2, .. }), "{err}");
        // The same tensor read with values along the last axis is the wrong layout.
        let cols = BoxHead { values_axis: 2, ..head };
        let err = cols.view(ok.view(), "out", 2).unwrap_err();
        assert_eq!(err.to_string(), "model output `out` has shape [2, 6, 9]; the toy decoder expects [N, 6, anchors]");
        let no_classes = BoxHead { values: None, ..cols };
        assert!(matches!(no_classes.view(ok.view(), "out", 2), Err(DecodeError::Shape { .. })));
        let rank2 = ArrayD::<f32>::zeros(IxDyn(&[6, 9]));
        assert!(matches!(head.view(rank2.view(), "out", 1), Err(DecodeError::Shape { .. })));
    }

    #[test]
    fn cxcywh_candidates_are_kept_or_counted() {
        let mut stats = DecodeStats::default();
        let mut cands = Vec::new();
        // Centre (50, 50), 20 wide, 10 high: corners (40, 45) and (60, 55).
        push_cxcywh([50.0, 50.0, 20.0, 10.0], 0.7, 3, &mut stats, &mut cands);
        assert_eq!(cands, vec![Detection { bbox: BoxXyxy::new(40.0, 45.0, 60.0, 55.0), score: 0.7, class_id: 3 }]);
        push_cxcywh([50.0, f32::NAN, 20.0, 10.0], 0.7, 3, &mut stats, &mut cands);
        push_cxcywh([50.0, 50.0, f32::INFINITY, 10.0], 0.7, 3, &mut stats, &mut cands);
        push_cxcywh([50.0, 50.0, 20.0, -1.0], 0.7, 3, &mut stats, &mut cands);
        assert_eq!(cands.len(), 1);
        assert_eq!(stats, DecodeStats { non_finite: 2, malformed: 1, candidates: 1 });
    }

    #[test]
    fn one_image_lays_out_both_ways() {
        let rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let a = test_support::one_image(&rows, false);
        let t = test_support::one_image(&rows, true);
        assert_eq!(a.shape(), [1, 2, 3]);
        assert_eq!(t.shape(), [1, 3, 2]);
        assert_eq!((a[[0, 1, 0]], t[[0, 0, 1]], t[[0, 2, 0]]), (4.0, 4.0, 3.0));
    }

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class_id: u32) -> Detection {
        Detection { bbox: BoxXyxy::new(x1, y1, x2, y2), score, class_id }
    }

    #[test]
    fn ultralytics_rule_keeps_strictly_above_and_compares_iou_as_torchvision() {
        assert!(NmsRule::Standard.passes(0.25, 0.25) && !NmsRule::Ultralytics.passes(0.25, 0.25));
        assert!(NmsRule::Ultralytics.passes(0.2500001, 0.25));
        // 0.6 as f32 lies above 0.6: torchvision's f64 comparison suppresses an IoU of exactly
        // that f32, so the f32 threshold is one step lower. 0.7 as f32 lies below 0.7: unchanged.
        assert_eq!(torchvision_threshold(0.6), 0.6f32.next_down());
        assert_eq!(torchvision_threshold(0.7), 0.7);
        assert_eq!(torchvision_threshold(0.5), 0.5);
    }

    #[test]
    fn ultralytics_nms_separates_classes_by_offset_and_caps_candidates() {
        let p = BoxParams { class_thresholds: vec![0.25; 2], iou_threshold: 0.7, max_detections: 300 };
        // Same place, other class: both kept; a near duplicate of its class: dropped; best first.
        let cands = vec![
            det(10.0, 10.0, 50.0, 50.0, 0.6, 0),
            det(10.0, 10.0, 50.0, 50.0, 0.9, 1),
            det(11.0, 10.0, 50.0, 50.0, 0.8, 1),
        ];
        let kept = nms_per_image(cands.clone(), &p, NmsRule::Ultralytics);
        assert_eq!(kept.iter().map(|d| (d.class_id, d.score)).collect::<Vec<_>>(), [(1, 0.9), (0, 0.6)]);
        assert_eq!(nms_per_image(cands, &p, NmsRule::Standard), kept, "the two rules agree away from the edges");
        // Only the 30000 best enter NMS: the 30001st, the weakest, is gone before it.
        let many: Vec<Detection> = (0..=ULTRALYTICS_MAX_NMS)
            .map(|i| {
                let (x, y) = ((i % 200) as f32 * 20.0, (i / 200) as f32 * 20.0);
                det(x, y, x + 10.0, y + 10.0, 0.9 - i as f32 * 1e-5, 0)
            })
            .collect();
        let p = BoxParams { max_detections: usize::MAX, ..p };
        let kept = nms_per_image(many, &p, NmsRule::Ultralytics);
        assert_eq!(kept.len(), ULTRALYTICS_MAX_NMS);
        assert!(kept.windows(2).all(|w| w[0].score >= w[1].score));
    }
}
