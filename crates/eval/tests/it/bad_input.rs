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

/// A FIFO at `path`: opening it for reading blocks until a writer comes, so any reader that
/// opens it hangs the test instead of failing it.
#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// An error that says `path` is not a regular file.
#[track_caller]
fn assert_not_regular(e: &EvalError, path: &Path, kind: &str) {
    match e {
        EvalError::NotRegular { path: p, kind: k } => assert_eq!((p.as_path(), *k), (path, kind), "{e}"),
        other => panic!("{}: expected `not a regular file`, got {other:?}", path.display()),
    }
    let text = nii_atr_core::error_chain(e);
    assert!(text.contains("not a regular file") && text.contains(&path.display().to_string()), "{text}");
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_at_once_wherever_a_file_is_read() {
    use nii_atr_eval::dataset::{yolo_dataset, yolo_predictions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let gt_path = write(dir, "gt.json", GT);
    let gt = Dataset::from_coco_json(&gt_path).unwrap();
    let started = std::time::Instant::now();

    // COCO ground truth and results, and report.json for compare.
    assert_not_regular(&Dataset::from_coco_json(&fifo).unwrap_err(), &fifo, "a FIFO");
    assert_not_regular(&Predictions::from_coco_json(&fifo, &gt).unwrap_err(), &fifo, "a FIFO");
    assert_not_regular(&nii_atr_eval::report::read_report(&fifo).unwrap_err(), &fifo, "a FIFO");
    let null = Path::new("/dev/null");
    assert_not_regular(&Dataset::from_coco_json(null).unwrap_err(), null, "a device");
    assert_not_regular(&Dataset::from_coco_json(dir).unwrap_err(), dir, "a folder");

    // YOLO: the image list, a label file, a prediction file, the names file.
    let labels = dir.join("labels");
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    let list = write(dir, "images.txt", "a.png 100 100\nb.png 100 100\n");
    assert_not_regular(&yolo_dataset(&fifo, &labels, None).unwrap_err(), &fifo, "a FIFO");
    assert_not_regular(&yolo_dataset(&list, &labels, Some(&fifo)).unwrap_err(), &fifo, "a FIFO");
    mkfifo(&labels.join("b.txt"));
    assert_not_regular(&yolo_dataset(&list, &labels, None).unwrap_err(), &labels.join("b.txt"), "a FIFO");
    std::fs::remove_file(labels.join("b.txt")).unwrap();
    let yolo = yolo_dataset(&list, &labels, None).unwrap();
    let preds = dir.join("preds");
    std::fs::create_dir(&preds).unwrap();
    mkfifo(&preds.join("a.txt"));
    assert_not_regular(&yolo_predictions(&preds, &yolo).unwrap_err(), &preds.join("a.txt"), "a FIFO");

    // A split's truth.jsonl, read through nii-atr-core.
    mkfifo(&dir.join("truth.jsonl"));
    let result = nii_atr_core::verify::VerificationResult { measures: None, measure_error: None, checks: vec![] };
    let e = nii_atr_eval::verification::VerificationScores::from_split(dir, &[("case".into(), result)]).unwrap_err();
    assert_not_regular(&e, &dir.join("truth.jsonl"), "a FIFO");
    assert!(started.elapsed().as_secs() < 5, "a reader waited on a FIFO");
}

#[cfg(unix)]
#[test]
fn oversized_files_are_refused_before_they_are_read() {
    use nii_atr_eval::dataset::{MAX_INPUT_BYTES, MAX_LABEL_BYTES, yolo_dataset};
    // Sparse files: their size is set, no block of them is written, and nothing reads them.
    let tmp = tempfile::tempdir().unwrap();
    let sparse = |name: &str, len: u64| {
        let p = tmp.path().join(name);
        std::fs::File::create(&p).unwrap().set_len(len).unwrap();
        p
    };
    let big = sparse("gt.json", MAX_INPUT_BYTES + 1);
    match Dataset::from_coco_json(&big).unwrap_err() {
        EvalError::TooLarge { path, size, limit } => {
            assert_eq!((path, size, limit), (big.clone(), MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES));
        }
        other => panic!("{other:?}"),
    }
    let labels = tmp.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    let list = write(tmp.path(), "images.txt", "a.png 100 100\n");
    std::fs::File::create(labels.join("a.txt")).unwrap().set_len(MAX_LABEL_BYTES + 1).unwrap();
    match yolo_dataset(&list, &labels, None).unwrap_err() {
        e @ EvalError::TooLarge { .. } => assert!(e.to_string().contains("a.txt"), "{e}"),
        other => panic!("{other:?}"),
    }
    let names = sparse("names.txt", MAX_LABEL_BYTES + 1);
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    assert!(matches!(yolo_dataset(&list, &labels, Some(&names)), Err(EvalError::TooLarge { .. })));
}

#[test]
fn yolo_nan_infinite_and_absurd_values_are_errors_with_line_numbers() {
    use nii_atr_eval::dataset::{yolo_dataset, yolo_predictions};
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    for bad in ["a.png NaN 100", "a.png 0 100", "a.png -5 100", "a.png 1e9 100", "a.png 99999999999 100"] {
        let list = write(tmp.path(), "images.txt", &format!("# list\n{bad}\n"));
        match yolo_dataset(&list, &labels, None) {
            Err(EvalError::Yolo { line: 2, .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    let list = write(tmp.path(), "images.txt", "a.png 100 100\n");
    let gt = yolo_dataset(&list, &labels, None).unwrap();
    let preds = tmp.path().join("preds");
    std::fs::create_dir(&preds).unwrap();
    for bad in ["0 0.5 0.5 0.1 0.1 nan", "0 0.5 0.5 0.1 0.1 inf", "0 0.5 inf 0.1 0.1 0.5", "0 0.5 0.5 0.1 0.1"] {
        std::fs::write(preds.join("a.txt"), format!("0 0.5 0.5 0.1 0.1 0.9\n{bad}\n")).unwrap();
        match yolo_predictions(&preds, &gt) {
            Err(e @ EvalError::Yolo { line: 2, .. }) => assert!(e.to_string().contains("a.txt"), "{e}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    // A score beyond f64 is not JSON that serde reads: a JSON error, not an infinite score.
    assert!(matches!(
        pred_err(r#"[{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":1e400}]"#),
        EvalError::Json { .. }
    ));
}

#[test]
fn empty_or_mistyped_yolo_folders_are_errors_naming_the_folder() {
    use nii_atr_eval::dataset::{yolo_dataset, yolo_predictions};
    let tmp = tempfile::tempdir().unwrap();
    let list = write(tmp.path(), "images.txt", "a.png 100 100\n");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = tmp.path().join("missing");
    for (labels, want) in [(&empty, "no YOLO labels file"), (&missing, "No such file"), (&list, "not a folder")] {
        let e = yolo_dataset(&list, labels, None).unwrap_err();
        let text = nii_atr_core::error_chain(&e);
        assert!(text.contains(&labels.display().to_string()) && text.contains(want), "{text}");
    }
    let e = yolo_dataset(&write(tmp.path(), "none.txt", "# nothing\n"), &empty, None).unwrap_err();
    assert!(matches!(e, EvalError::EmptyInput { .. }) && e.to_string().contains("lists no images"), "{e}");
    let labels = tmp.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    let gt = yolo_dataset(&list, &labels, None).unwrap();
    let e = yolo_predictions(&empty, &gt).unwrap_err();
    assert!(matches!(e, EvalError::EmptyInput { .. }), "{e}");
    assert!(e.to_string().contains(&empty.display().to_string()) && e.to_string().contains("`[]`"), "{e}");
}

/// A ground truth listing `n` categories (ids 1..=n), one image and one box of category 1.
fn many_categories_gt(n: usize) -> String {
    let cats: Vec<String> = (1..=n).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
    format!(
        r#"{{"images":[{{"id":1}}],"categories":[{}],
            "annotations":[{{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,10,10]}}]}}"#,
        cats.join(",")
    )
}

#[test]
fn a_hundred_thousand_categories_are_refused_with_the_count_and_the_limit() {
    use nii_atr_eval::budget::MAX_CATEGORIES;
    use nii_atr_eval::dataset::Category;
    let started = std::time::Instant::now();
    // 1.5 MB of ground truth: the dense tables would have been 9.7 GB and the process aborted.
    let (e, path) = gt_err(&many_categories_gt(100_000));
    match &e {
        EvalError::TooManyCategories { categories: 100_000, limit, .. } => assert_eq!(*limit, MAX_CATEGORIES),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("100000 categories") && e.to_string().contains("50000"), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    // A dataset built in process, past Dataset::new, is refused when it is scored.
    let tmp = tempfile::tempdir().unwrap();
    let mut ds = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    ds.categories = (1..=100_000).map(|id| Category { id, name: id.to_string() }).collect();
    let preds = Predictions::new("p".into(), Vec::new(), &ds).unwrap();
    let r = nii_atr_eval::evaluate(&ds, &preds, &nii_atr_eval::EvalConfig::default(), "m");
    assert!(matches!(r, Err(EvalError::TooManyCategories { categories: 100_000, .. })), "{:?}", r.err());
    let r = nii_atr_eval::coco::evaluate(&ds, &preds, &nii_atr_eval::coco::CocoParams::default());
    assert!(matches!(r, Err(EvalError::TooManyCategories { .. })));
    assert!(started.elapsed().as_secs() < 20, "refusing took {:?}", started.elapsed());
}

#[test]
fn result_tables_over_the_limit_are_refused_before_allocating() {
    use nii_atr_eval::budget::{MAX_CONFIG_LIST, MAX_RESULT_BYTES, coco_size};
    use nii_atr_eval::coco::CocoParams;
    use nii_atr_eval::dataset::{Category, CocoDetection, GroundTruth, ImageInfo};
    // 300 labelled categories x 1000 maxDets: 300 x 4 x 1000 x 10 x 102 x 8 bytes = 9.8 GB.
    let n = 300;
    let images = vec![ImageInfo { id: 1, file_name: None, width: None, height: None }];
    let categories = (1..=n).map(|id| Category { id, name: id.to_string() }).collect();
    let truth = (1..=n)
        .map(|id| GroundTruth {
            id,
            image_id: 1,
            category_id: id,
            bbox: [0.0, 0.0, 10.0, 10.0],
            area: 100.0,
            iscrowd: false,
            cnr: None,
        })
        .collect();
    let ds = Dataset::new("big.json".into(), images, categories, truth).unwrap();
    let dets = vec![CocoDetection { image_id: 1, category_id: 1, bbox: [0.0, 0.0, 10.0, 10.0], score: 0.5 }];
    let preds = Predictions::new("p".into(), dets, &ds).unwrap();
    let params = CocoParams::with_max_dets(&(1..=MAX_CONFIG_LIST).collect::<Vec<_>>()).unwrap();
    let size = coco_size(&ds, &preds, &params);
    assert_eq!(size.active_categories, 300);
    assert!(size.total() > MAX_RESULT_BYTES, "{size:?}");
    let e = nii_atr_eval::coco::evaluate(&ds, &preds, &params).unwrap_err();
    match &e {
        EvalError::ResultTooLarge { categories: 300, images: 1, limit, bytes, .. } => {
            assert_eq!(*limit, MAX_RESULT_BYTES);
            assert!(*bytes > *limit);
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("big.json") && text.contains("300 categories") && text.contains("precision and recall tables"),
        "{text}"
    );
    let config = nii_atr_eval::EvalConfig { coco: params, bootstrap: None, ..Default::default() };
    assert!(matches!(nii_atr_eval::evaluate(&ds, &preds, &config, "m"), Err(EvalError::ResultTooLarge { .. })));
    // The default parameters on the same set are a few MB.
    assert!(coco_size(&ds, &preds, &CocoParams::default()).total() < 50 << 20);
}

#[test]
fn configuration_lists_beyond_the_limit_are_refused() {
    use nii_atr_eval::budget::MAX_CONFIG_LIST;
    let tmp = tempfile::tempdir().unwrap();
    let gt = Dataset::from_coco_json(&write(tmp.path(), "gt.json", GT)).unwrap();
    let preds = Predictions::new("p".into(), Vec::new(), &gt).unwrap();
    let long: Vec<f64> = (0..=MAX_CONFIG_LIST).map(|i| i as f64).collect();
    let mut config = nii_atr_eval::EvalConfig { bootstrap: None, ..Default::default() };
    config.atr.cnr_bins = long.clone();
    let Err(e) = nii_atr_eval::evaluate(&gt, &preds, &config, "m") else { panic!("1001 CNR bin edges taken") };
    assert!(matches!(e, EvalError::Params(_)) && e.to_string().contains("CNR bin edges"), "{e}");
    let mut config = nii_atr_eval::EvalConfig { bootstrap: None, ..Default::default() };
    config.atr.pfa_limits = long.iter().map(|v| v / 1e4).collect();
    assert!(matches!(nii_atr_eval::evaluate(&gt, &preds, &config, "m"), Err(EvalError::Params(_))));
}
