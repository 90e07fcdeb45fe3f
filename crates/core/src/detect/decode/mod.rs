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
    F32(CowArray<'a, f32, IxDyn>),
    Bool(CowArray<'a, bool, IxDyn>),
}

impl OutputTensor<'_> {
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
    pub tensors: Vec<(String, OutputTensor<'a>)>,
}

impl<'a> ModelOutputs<'a> {
    /// A copy that no longer borrows from ONNX Runtime.
    pub fn into_owned(self) -> ModelOutputs<'static> {
        ModelOutputs { tensors: self.tensors.into_iter().map(|(n, t)| (n, t.into_owned())).collect() }
    }

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

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("model output `{output}` is missing (outputs: {available:?})")]
    MissingOutput { output: String, available: Vec<String> },
    #[error("model output `{output}` has shape {found:?}; the {decoder} decoder expects {expected}")]
    Shape { output: String, decoder: &'static str, expected: String, found: Vec<usize> },
    #[error("model output `{output}` is {found}; expected {expected}")]
    Type { output: String, expected: &'static str, found: &'static str },
    #[error("model output `{output}` holds {found} images but {expected} were sent")]
    Batch { output: String, expected: usize, found: usize },
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
    pub fn add(&mut self, other: &Self) {
        self.non_finite += other.non_finite;
        self.malformed += other.malformed;
        self.candidates += other.candidates;
    }
}

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

/// Class-aware NMS with the IoU threshold, then the per-image cap.
pub(crate) fn nms_per_image(cands: Vec<Detection>, params: &BoxParams) -> Vec<Detection> {
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
}
