//! NMS-free end-to-end heads (YOLOv10, YOLO26, RT-DETR exports): `[N, K, 6]` rows
//! `x1, y1, x2, y2, score, class`. The model already suppressed duplicates.

use super::{BoxHead, BoxParams, DecodeError, DecodeStats, MAX_SCORE};
use crate::detect::geometry::{BoxXyxy, Detection};
use ndarray::ArrayViewD;

/// Decoder name, as specs and errors spell it.
pub const NAME: &str = "end_to_end";

/// Decodes a `[N, K, 6]` head of `batch` images into detections per image (box in input
/// pixels, score in 0..=1), best first, at most `max_detections` each; no NMS.
pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    let expected = "[N, K, 6] (x1, y1, x2, y2, score, class)";
    let head = BoxHead { decoder: NAME, expected, values_axis: 2, values: Some(6) };
    let out = head.view(out, output, batch)?;
    let n = out.shape()[0];
    let nc = params.num_classes();
    let mut images = Vec::with_capacity(n);
    for img in out.outer_iter() {
        let mut dets = Vec::new();
        for row in img.outer_iter() {
            if row.iter().any(|v| !v.is_finite()) {
                stats.non_finite += 1;
                continue;
            }
            let (score, class) = (row[4], row[5]);
            // Padding rows of fixed-K exports carry score 0: they are not candidates.
            if score <= 0.0 {
                continue;
            }
            if score > MAX_SCORE
                || class < 0.0
                || class.fract() != 0.0
                || class as usize >= nc
                || row[2] < row[0]
                || row[3] < row[1]
            {
                stats.malformed += 1;
                continue;
            }
            let c = class as usize;
            if score < params.class_thresholds[c] {
                continue;
            }
            stats.candidates += 1;
            dets.push(Detection { bbox: BoxXyxy::new(row[0], row[1], row[2], row[3]), score, class_id: c as u32 });
        }
        // Exports usually sort by score already; do not rely on it for the cap.
        dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        dets.truncate(params.max_detections);
        images.push(dets);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_close, one_image, params};
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn keeps_rows_above_threshold_without_nms() {
        let out = one_image(
            &[
                [0.0, 0.0, 10.0, 10.0, 0.6, 1.0],
                [1.0, 0.0, 11.0, 10.0, 0.9, 1.0], // overlapping but the model said keep
                [0.0, 0.0, 10.0, 10.0, 0.1, 0.0],
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], // padding
            ],
            false,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert_close(&got[0], &[(1.0, 0.0, 11.0, 10.0, 0.9, 1), (0.0, 0.0, 10.0, 10.0, 0.6, 1)]);
        assert_eq!(stats, DecodeStats { non_finite: 0, malformed: 0, candidates: 2 });
    }

    #[test]
    fn bad_rows_are_counted() {
        let out = one_image(
            &[
                [0.0, 0.0, 10.0, 10.0, f32::NAN, 1.0],
                [0.0, 0.0, 10.0, 10.0, 0.9, 7.0], // class out of range
                [0.0, 0.0, 10.0, 10.0, 0.9, 0.5], // fractional class
                [10.0, 0.0, 0.0, 10.0, 0.9, 0.0], // inverted box
                [0.0, 0.0, 10.0, 10.0, 4.5, 0.0], // score above 1
            ],
            false,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(stats.non_finite, 1);
        assert_eq!(stats.malformed, 4);
    }

    #[test]
    fn malformed_shapes() {
        let mut stats = DecodeStats::default();
        let five = ArrayD::<f32>::zeros(IxDyn(&[1, 10, 5]));
        assert!(matches!(decode(five.view(), "o", 1, &params(2, 0.25), &mut stats), Err(DecodeError::Shape { .. })));
        let empty = ArrayD::<f32>::zeros(IxDyn(&[1, 0, 6]));
        assert_eq!(decode(empty.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap(), vec![vec![]]);
    }
}
