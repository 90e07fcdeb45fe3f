//! Hostile and broken evaluation inputs: each gives a typed error naming the file and the
//! reason, or a counted skip where pycocotools skips; never a panic.

use std::path::{Path, PathBuf};

use nii_atr_eval::{Dataset, EvalError, ImageDetections, Predictions, ScoredBox};

const GT: &str = r#"{"images":[{"id":1,"width":100,"height":100},{"id":2}],
 "categories":[{"id":1,"name":"knife"}],
 "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,10,10],"area":100,"iscrowd":0}]}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn gt_err(text: &str) -> (EvalError, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "gt.json", text);
    let e = Dataset::from_coco_json(&p).expect_err(text);
    let msg = e.to_string();
    assert!(msg.contains("gt.json"), "error does not name the file: {msg}");
    (e, p)
}

fn pred_err(text: &str) -> EvalError {
    let tmp = tempfile::tempdir().unwrap();
    let gt = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    let p = write(tmp.path(), "res.json", text);
    let e = Predictions::from_coco_json(&p, &gt).expect_err(text);
    assert!(e.to_string().contains("res.json"), "{e}");
    e
}

#[test]
fn malformed_or_truncated_json_is_a_json_error() {
    assert!(matches!(gt_err(&GT[..GT.len() / 2]).0, EvalError::Json { .. }));
    assert!(matches!(gt_err("[1, 2]").0, EvalError::Json { .. }));
    // Python's json.dump writes NaN, which is not JSON.
    assert!(matches!(
        pred_err(r#"[{"image_id":1,"category_id":1,"bbox":[0,0,NaN,1],"score":0.5}]"#),
        EvalError::Json { .. }
    ));
    assert!(matches!(
        pred_err(r#"[{"image_id":1.5,"category_id":1,"bbox":[0,0,1,1],"score":0.5}]"#),
        EvalError::Json { .. }
    ));
}

#[test]
fn invalid_boxes_are_rejected_with_index_and_reason() {
    for (bbox, reason) in [("[0,0,-1,5]", "negative"), ("[0,0,5]", "4 numbers"), ("[0,0,1e200,1e200]", "too large")] {
        let e = pred_err(&format!(
            r#"[{{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":0.5}},
                {{"image_id":1,"category_id":1,"bbox":{bbox},"score":0.5}}]"#
        ));
        match &e {
            EvalError::InvalidBox { index: 1, .. } => assert!(e.to_string().contains(reason), "{e}"),
            other => panic!("{bbox}: {other:?}"),
        }
    }
    let text = GT.replace("[0,0,10,10]", "[0,0,10,-10]");
    assert!(matches!(gt_err(&text).0, EvalError::InvalidBox { index: 0, .. }));
    let text = GT.replace(r#""area":100"#, r#""area":-3"#);
    assert!(matches!(gt_err(&text).0, EvalError::InvalidValue { field: "area", .. }));
}

#[test]
fn duplicate_ids_and_dangling_annotations_are_errors() {
    let dup_image = GT.replace(r#"{"id":2}"#, r#"{"id":1}"#);
    assert!(matches!(gt_err(&dup_image).0, EvalError::DuplicateId { what: "image", id: 1, .. }));
    let dup_cat = GT.replace(r#"{"id":1,"name":"knife"}"#, r#"{"id":1,"name":"knife"},{"id":1}"#);
    assert!(matches!(gt_err(&dup_cat).0, EvalError::DuplicateId { what: "category", .. }));
    let ann = r#"{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,10,10],"area":100,"iscrowd":0}"#;
    let dup_ann = GT.replace(ann, &format!("{ann},{ann}"));
    assert!(matches!(gt_err(&dup_ann).0, EvalError::DuplicateId { what: "annotation", .. }));
    let dangling = GT.replace(r#""image_id":1,"#, r#""image_id":7,"#);
    assert!(matches!(gt_err(&dangling).0, EvalError::AnnotationWithoutImage { image_id: 7, .. }));
}

#[test]
fn unknown_image_is_an_error_and_unknown_category_a_counted_skip() {
    match pred_err(r#"[{"image_id":3,"category_id":1,"bbox":[0,0,1,1],"score":0.5}]"#) {
        EvalError::UnknownImage { image_id: 3, index: 0, .. } => {}
        other => panic!("{other:?}"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let gt = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    let p = write(
        tmp.path(),
        "res.json",
        r#"[{"image_id":1,"category_id":5,"bbox":[0,0,1,1],"score":0.5},
            {"image_id":1,"category_id":1,"bbox":[0,0,10,10],"score":0.5}]"#,
    );
    let preds = Predictions::from_coco_json(&p, &gt).unwrap();
    assert_eq!(preds.skipped_unknown_category, 1);
    assert_eq!(preds.detections.len(), 1);
}

#[test]
fn missing_file_and_engine_nan_are_typed_errors() {
    let e = Dataset::from_coco_json(Path::new("/nonexistent/gt.json")).unwrap_err();
    assert!(matches!(e, EvalError::Read { .. }) && e.to_string().contains("/nonexistent/gt.json"));
    let tmp = tempfile::tempdir().unwrap();
    let gt = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    let per_image = [ImageDetections {
        image_id: 1,
        detections: vec![ScoredBox { category_id: 1, bbox: [0.0, 0.0, 1.0, 1.0], score: f64::NAN }],
    }];
    assert!(matches!(Predictions::from_engine(&per_image, &gt), Err(EvalError::InvalidValue { field: "score", .. })));
}

#[test]
fn compare_refuses_foreign_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "report.json", r#"{"schema_version": 99}"#);
    let bootstrap = nii_atr_eval::bootstrap::BootstrapConfig { resamples: 10, seed: 1, ..Default::default() };
    match nii_atr_eval::compare::compare(&[bad.clone(), bad], &bootstrap, &nii_atr_core::progress::Silent) {
        Err(e @ EvalError::Report { .. }) => assert!(e.to_string().contains("schema_version")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_bootstrap_settings_are_refused_before_allocating() {
    use nii_atr_eval::bootstrap::BootstrapConfig;
    use nii_atr_eval::{EvalConfig, evaluate};
    let tmp = tempfile::tempdir().unwrap();
    let gt = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    let preds = Predictions::new("p".into(), Vec::new(), &gt).unwrap();
    for (resamples, confidence) in [(usize::MAX, 0.95), (0, 0.95), (100, 1.5)] {
        let config =
            EvalConfig { bootstrap: Some(BootstrapConfig { resamples, confidence, seed: 1 }), ..EvalConfig::default() };
        assert!(matches!(evaluate(&gt, &preds, &config, "m"), Err(EvalError::Params(_))));
    }
}
