//! YOLOv5 / YOLOv7 heads: `[N, A, 5 + nc]`, columns `cx, cy, w, h, objectness` then class
//! scores; a candidate's score is objectness x class score. Needs NMS.

use super::{BoxHead, BoxParams, DecodeError, DecodeStats, MAX_SCORE, NmsRule, best_class, nms_per_image, push_cxcywh};
use crate::detect::geometry::Detection;
use ndarray::ArrayViewD;

/// Decoder name, as specs and errors spell it.
pub const NAME: &str = "yolov5";

/// Decodes a `[N, anchors, 5 + nc]` head of `batch` images into detections per image (box
/// in input pixels, score objectness x class score in 0..=1), after NMS ([`NmsRule::Standard`]).
pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    decode_with(out, output, batch, params, NmsRule::Standard, stats)
}

/// [`decode`] under `rule`: which candidates pass their threshold (objectness first, then
/// objectness x class, as ultralytics/yolov5 filters) and how NMS runs.
pub fn decode_with(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    rule: NmsRule,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    let nc = params.num_classes();
    let expected = format!("[N, anchors, {}] (4 box + objectness + {nc} classes)", 5 + nc);
    let head = BoxHead { decoder: NAME, expected: &expected, values_axis: 2, values: (nc > 0).then_some(5 + nc) };
    let out = head.view(out, output, batch)?;
    let n = out.shape()[0];
    // The cheapest test first: a real head's objectness rejects nearly every anchor.
    let min_thr = params.class_thresholds.iter().copied().fold(f32::INFINITY, f32::min);
    let mut images = Vec::with_capacity(n);
    for img in out.outer_iter() {
        let mut cands = Vec::new();
        for row in img.outer_iter() {
            let obj = row[4];
            if !obj.is_finite() {
                stats.non_finite += 1;
                continue;
            }
            if !rule.passes(obj, min_thr) {
                continue;
            }
            let Some((c, cls)) = best_class((0..nc).map(|k| row[5 + k])) else {
                stats.non_finite += 1;
                continue;
            };
            let score = obj * cls;
            if !rule.passes(score, params.class_thresholds[c]) {
                continue;
            }
            if obj > MAX_SCORE || cls > MAX_SCORE {
                stats.malformed += 1;
                continue;
            }
            push_cxcywh([row[0], row[1], row[2], row[3]], score, c as u32, stats, &mut cands);
        }
        images.push(nms_per_image(cands, params, rule));
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_close, one_image, params};
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn score_is_objectness_times_class() {
        let out = one_image(
            &[
                [50.0, 50.0, 20.0, 10.0, 0.8, 0.5, 0.9], // 0.72 class 1
                [50.0, 50.0, 20.0, 10.0, 0.2, 0.9, 0.1], // 0.18 below 0.25
            ],
            false,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert_close(&got[0], &[(40.0, 45.0, 60.0, 55.0, 0.72, 1)]);
        assert_eq!(stats.candidates, 1);
    }

    #[test]
    fn nan_objectness_or_class_is_counted() {
        let out = one_image(
            &[
                [50.0, 50.0, 20.0, 10.0, f32::NAN, 0.5, 0.9],
                [50.0, 50.0, 20.0, 10.0, 0.9, f32::NAN, 0.9],
                [f32::NAN, 50.0, 20.0, 10.0, 0.9, 0.9, 0.9],
                [50.0, 50.0, 20.0, 10.0, 3.0, 0.9, 0.9], // objectness logit, not a probability
            ],
            false,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(stats.non_finite, 3);
        assert_eq!(stats.malformed, 1);
    }

    #[test]
    fn empty_and_malformed_outputs() {
        let mut stats = DecodeStats::default();
        let empty = ArrayD::<f32>::zeros(IxDyn(&[2, 0, 7]));
        assert_eq!(decode(empty.view(), "o", 2, &params(2, 0.25), &mut stats).unwrap(), vec![vec![], vec![]]);
        // A YOLOv8-shaped tensor fed to this decoder is named in the error.
        let v8 = ArrayD::<f32>::zeros(IxDyn(&[1, 6, 16]));
        let err = decode(v8.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap_err();
        assert!(err.to_string().contains("yolov5") && err.to_string().contains("output0"), "{err}");
    }
}
