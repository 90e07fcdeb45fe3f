//! YOLOv8 / YOLO11 heads: `[N, 4 + nc, A]`, rows `cx, cy, w, h` then one score per class,
//! no objectness. Needs NMS.

use super::{BoxHead, BoxParams, DecodeError, DecodeStats, MAX_SCORE, NmsRule, nms_per_image, push_cxcywh};
use crate::detect::geometry::Detection;
use ndarray::{ArrayView2, ArrayViewD, Axis};
use rayon::prelude::*;

/// Decoder name, as specs and errors spell it.
pub const NAME: &str = "yolov8";

/// Decodes a `[N, 4 + nc, anchors]` head of `batch` images into detections per image (box
/// in input pixels, score the best class's in 0..=1), after NMS ([`NmsRule::Standard`]).
pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    decode_with(out, output, batch, params, NmsRule::Standard, stats)
}

/// [`decode`] under `rule`: which candidates pass their threshold and how NMS runs.
pub fn decode_with(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    rule: NmsRule,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    let nc = params.num_classes();
    let expected = format!("[N, {}, anchors] (4 box rows + {nc} classes)", 4 + nc);
    let head = BoxHead { decoder: NAME, expected: &expected, values_axis: 1, values: (nc > 0).then_some(4 + nc) };
    let out = head.view(out, output, batch)?;
    let (n, anchors) = (out.shape()[0], out.shape()[2]);
    // Images of a batch decode in parallel: between two model runs the cores are otherwise idle.
    let per_image: Vec<(Vec<Detection>, DecodeStats)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut image_stats = DecodeStats::default();
            let dets = decode_image(out.index_axis(Axis(0), i), nc, anchors, params, rule, &mut image_stats);
            (dets, image_stats)
        })
        .collect();
    let mut images = Vec::with_capacity(n);
    for (dets, image_stats) in per_image {
        stats.add(&image_stats);
        images.push(dets);
    }
    Ok(images)
}

/// One image's `[4 + nc, anchors]` head: best class per anchor, thresholds, NMS.
fn decode_image(
    img: ArrayView2<'_, f32>,
    nc: usize,
    anchors: usize,
    params: &BoxParams,
    rule: NmsRule,
    stats: &mut DecodeStats,
) -> Vec<Detection> {
    let img = img.as_standard_layout();
    // Class rows are contiguous over anchors: take the best class row by row (a pass the
    // compiler vectorises) instead of striding down each anchor's column.
    let mut best = vec![f32::NEG_INFINITY; anchors];
    let mut best_class = vec![0u32; anchors];
    let mut bad = vec![0u32; anchors];
    for k in 0..nc {
        let row = img.row(4 + k);
        let row = row.as_slice().expect("standard layout");
        // Zipped slices and selects, not indexing and a branch, so the pass vectorises
        // (3x faster on 80 classes).
        for (((b, bc), bd), &v) in best.iter_mut().zip(best_class.iter_mut()).zip(bad.iter_mut()).zip(row) {
            // Every value is checked, not only those of confident anchors: a head that
            // emits NaN anywhere is broken and the count says so.
            *bd |= (!v.is_finite()) as u32;
            let better = v > *b;
            *b = if better { v } else { *b };
            *bc = if better { k as u32 } else { *bc };
        }
    }
    let rows: Vec<&[f32]> = (0..4).map(|r| img.row(r).to_slice().expect("standard layout")).collect();
    let mut cands = Vec::new();
    for a in 0..anchors {
        let (cx, cy, w, h) = (rows[0][a], rows[1][a], rows[2][a], rows[3][a]);
        if bad[a] != 0 || !(cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite()) {
            stats.non_finite += 1;
            continue;
        }
        let (c, score) = (best_class[a], best[a]);
        if !rule.passes(score, params.class_thresholds[c as usize]) {
            continue;
        }
        if score > MAX_SCORE {
            stats.malformed += 1;
            continue;
        }
        push_cxcywh([cx, cy, w, h], score, c, stats, &mut cands);
    }
    nms_per_image(cands, params, rule)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_close, one_image, params};
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn decodes_and_suppresses_duplicates() {
        let out = one_image(
            &[
                [50.0, 50.0, 20.0, 10.0, 0.9, 0.1],
                [51.0, 50.0, 20.0, 10.0, 0.8, 0.1], // duplicate of the first
                [50.0, 50.0, 20.0, 10.0, 0.1, 0.7], // same place, other class: kept
                [10.0, 10.0, 4.0, 4.0, 0.2, 0.1],   // below threshold
            ],
            true,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert_close(&got[0], &[(40.0, 45.0, 60.0, 55.0, 0.9, 0), (40.0, 45.0, 60.0, 55.0, 0.7, 1)]);
        assert_eq!(stats, DecodeStats { non_finite: 0, malformed: 0, candidates: 3 });
    }

    #[test]
    fn nan_scores_and_boxes_are_counted_not_kept() {
        let out = one_image(
            &[
                [50.0, 50.0, 20.0, 10.0, f32::NAN, 0.9],
                [50.0, f32::NAN, 20.0, 10.0, 0.9, 0.1],
                [50.0, 50.0, f32::INFINITY, 10.0, 0.9, 0.1],
                [50.0, 50.0, -3.0, 10.0, 0.9, 0.1],
                [50.0, 50.0, 3.0, 10.0, 1.7, 0.1], // not a confidence
            ],
            true,
        );
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(stats.non_finite, 3);
        assert_eq!(stats.malformed, 2);
    }

    #[test]
    fn empty_and_malformed_outputs() {
        let empty = ArrayD::<f32>::zeros(IxDyn(&[1, 6, 0]));
        let mut stats = DecodeStats::default();
        assert_eq!(decode(empty.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap(), vec![vec![]]);
        let wrong_rows = ArrayD::<f32>::zeros(IxDyn(&[1, 7, 5]));
        let err = decode(wrong_rows.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap_err();
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
        assert!(err.to_string().contains("[1, 7, 5]"), "{err}");
        let rank2 = ArrayD::<f32>::zeros(IxDyn(&[6, 5]));
        assert!(matches!(decode(rank2.view(), "o", 1, &params(2, 0.25), &mut stats), Err(DecodeError::Shape { .. })));
        let batch2 = ArrayD::<f32>::zeros(IxDyn(&[2, 6, 5]));
        assert!(matches!(decode(batch2.view(), "o", 1, &params(2, 0.25), &mut stats), Err(DecodeError::Batch { .. })));
    }

    #[test]
    fn max_detections_caps_best_first() {
        let out = one_image(
            &[[10.0, 10.0, 4.0, 4.0, 0.5, 0.0], [30.0, 10.0, 4.0, 4.0, 0.9, 0.0], [50.0, 10.0, 4.0, 4.0, 0.7, 0.0]],
            true,
        );
        let mut p = params(2, 0.25);
        p.max_detections = 2;
        let got = decode(out.view(), "o", 1, &p, &mut DecodeStats::default()).unwrap();
        assert_eq!(got[0].iter().map(|d| d.score).collect::<Vec<_>>(), vec![0.9, 0.7]);
    }
}
