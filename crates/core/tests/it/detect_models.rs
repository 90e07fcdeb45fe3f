//! The toy fixture models run through the real ONNX Runtime: raw outputs and decoded
//! detections must match what `models/fixtures/make_test_models.py` recorded with
//! onnxruntime + numpy, and every bad-model path must be a typed error.

use ndarray::{Array4, s};
use nii_atr_core::detect::decode::DecodeStats;
use nii_atr_core::detect::spec::{BatchDim, InferredFrom, Task};
use nii_atr_core::detect::{
    Decoded, DetectError, Detection, Detector, Provider, RunTimes, SessionConfig, SpecError, SpecSource,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("models/fixtures")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

/// Rebuilds a test input from its painted patches, as the script did.
fn paint(model: &Value, batch: usize) -> Array4<f32> {
    let size = model["size"].as_u64().unwrap() as usize;
    let mut x = Array4::<f32>::zeros((batch, 3, size, size));
    for p in model["patches"].as_array().unwrap() {
        let g = |k: &str| p[k].as_u64().unwrap() as usize;
        let n = g("n");
        // Images beyond the recorded batch repeat it, for the batch-size tests.
        for rep in (n..batch).step_by(model["batch"].as_u64().unwrap() as usize) {
            x.slice_mut(s![rep, g("c"), g("y")..g("y") + g("h"), g("x")..g("x") + g("w")])
                .fill(p["value"].as_f64().unwrap() as f32);
        }
    }
    x
}

fn load(name: &str) -> Detector {
    Detector::load(&fixtures().join(name), None, &SessionConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs())
}

fn assert_detections(got: &[Vec<Detection>], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g_img, w_img) in got.iter().zip(want) {
        let w_img = w_img.as_array().unwrap();
        assert_eq!(g_img.len(), w_img.len(), "got {g_img:?}, want {w_img:?}");
        for (g, w) in g_img.iter().zip(w_img) {
            let b: Vec<f64> = w["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let gb = [g.bbox.x1, g.bbox.y1, g.bbox.x2, g.bbox.y2];
            assert!(gb.iter().zip(&b).all(|(x, y)| close(*x, *y)), "box {gb:?} vs {b:?}");
            assert!(close(g.score, w["score"].as_f64().unwrap()), "{g:?} vs {w}");
            assert_eq!(g.class_id as u64, w["class"].as_u64().unwrap());
        }
    }
}

fn infer(det: &Detector, x: &Array4<f32>, batch: usize) -> (Decoded, DecodeStats) {
    let mut stats = DecodeStats::default();
    let out = det.infer(x.view(), batch, &mut stats, &mut RunTimes::default()).unwrap();
    (out, stats)
}

#[test]
fn yolov8_without_sidecar_reads_ultralytics_metadata() {
    let det = load("yolov8_toy.onnx");
    // The toy carries Ultralytics' metadata keys (names, imgsz, stride): its spec says so.
    assert_eq!(det.spec_source(), &SpecSource::Inferred { from: InferredFrom::Ultralytics });
    let spec = det.spec();
    assert_eq!(spec.decoder.kind(), "yolov8");
    assert_eq!(spec.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["knife", "gun"]);
    assert_eq!((spec.input.width, spec.input.height), (64, 64));
    assert_eq!(det.batch_dim(), BatchDim::Dynamic);

    let e = &expected()["models"]["yolov8_toy"];
    let x = paint(e, 2);
    let mut times = RunTimes::default();
    let raw = det.run(x.view(), &mut times).unwrap();
    let out = raw.f32("output0").unwrap();
    let want: Vec<f64> = e["output0"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(out.shape(), [2, 6, 16]);
    assert!(out.iter().zip(&want).all(|(a, b)| close(*a, *b)), "raw output differs from onnxruntime's");
    assert_eq!(times.runs, 1);

    let (Decoded::Boxes(got), stats) = infer(&det, &x, 8) else { panic!("boxes expected") };
    assert_detections(&got, &e["detections"]);
    assert_eq!(stats.non_finite, 0);
}

#[test]
fn yolov5_with_sidecar() {
    let det = load("yolov5_toy.onnx");
    assert!(matches!(det.spec_source(), SpecSource::Sidecar { path } if path.ends_with("yolov5_toy.toml")));
    let e = &expected()["models"]["yolov5_toy"];
    let (Decoded::Boxes(got), _) = infer(&det, &paint(e, 2), 2) else { panic!() };
    assert_detections(&got, &e["detections"]);
}

#[test]
fn end_to_end_with_static_batch_one_runs_tile_by_tile() {
    let det = load("e2e_toy.onnx");
    assert_eq!(det.batch_dim(), BatchDim::Static(1));
    assert_eq!(det.run_batch(8), 1);
    let e = &expected()["models"]["e2e_toy"];
    let x = paint(e, 2);
    let mut times = RunTimes::default();
    let mut stats = DecodeStats::default();
    let Decoded::Boxes(got) = det.infer(x.view(), 8, &mut stats, &mut times).unwrap() else { panic!() };
    assert_eq!(times.runs, 2, "static batch 1 means one run per tile");
    assert_detections(&got, &e["detections"]);
    // Handing the static-batch model two tiles at once is a typed error, not a crash.
    let err = det.run(x.view(), &mut times).unwrap_err();
    assert!(matches!(err, DetectError::Input { .. }), "{err}");
}

#[test]
fn batch_one_and_batch_eight_agree() {
    for name in ["yolov8_toy", "yolov5_toy"] {
        let det = load(&format!("{name}.onnx"));
        let e = &expected()["models"][name];
        let x = paint(e, 8);
        let (one, _) = infer(&det, &x, 1);
        let (eight, _) = infer(&det, &x, 8);
        let (three, _) = infer(&det, &x, 3);
        assert_eq!(one, eight, "{name}");
        assert_eq!(one, three, "{name}: a ragged last batch changes nothing");
        let Decoded::Boxes(b) = &one else { panic!() };
        assert_eq!(b.len(), 8);
        assert_eq!(b[0], b[2]);
        assert_eq!(b[1], b[7]);
    }
}

#[test]
fn nan_outputs_are_counted_drops() {
    let det = load("yolov8_nan.onnx");
    let e = &expected()["models"]["yolov8_nan"];
    let (Decoded::Boxes(got), stats) = infer(&det, &paint(e, 2), 2) else { panic!() };
    assert_detections(&got, &e["detections"]);
    // Anchors 0 and 5 (NaN scores) and 10 (NaN box) in each of the two images.
    assert_eq!(stats.non_finite, 6);
}

#[test]
fn anomaly_models_both_score_shapes() {
    let ex = expected();
    for name in ["anomaly_toy", "anomaly_score2d"] {
        let det = load(&format!("{name}.onnx"));
        assert_eq!(det.spec().task, Task::AnomalyMap);
        let e = &ex["models"][name];
        let (Decoded::Anomaly(tiles), stats) = infer(&det, &paint(e, 2), 4) else { panic!() };
        assert_eq!(stats.non_finite, 0);
        for (i, t) in tiles.iter().enumerate() {
            assert_eq!(t.map.dim(), (32, 32));
            assert!(close(t.score.unwrap(), e["pred_score"][i].as_f64().unwrap()), "{name}");
            assert!(close(t.map.sum(), e["map_sum"][i].as_f64().unwrap()), "{name}");
            match &e["mask_pixels"] {
                Value::Null => assert!(t.mask.is_none()),
                m => assert_eq!(t.mask.as_ref().unwrap().iter().filter(|&&b| b).count() as u64, m[i].as_u64().unwrap()),
            }
        }
    }
}

#[test]
fn classifier_softmax_matches_numpy() {
    let det = load("classify_toy.onnx");
    let e = &expected()["models"]["classify_toy"];
    let (Decoded::Classes(got), _) = infer(&det, &paint(e, 2), 2) else { panic!() };
    let want: Vec<f64> = e["softmax"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (i, g) in got.iter().enumerate() {
        let g = g.as_ref().expect("both tiles clear 0.5");
        assert!(g.probabilities.iter().zip(&want[i * 3..i * 3 + 3]).all(|(a, b)| close(*a, *b)));
        assert_eq!(g.class_id, if i == 0 { 1 } else { 2 });
    }
}

#[test]
fn sessions_are_shared_across_threads() {
    let cfg = SessionConfig { sessions: 2, intra_threads: 1, ..Default::default() };
    let det = Detector::load(&fixtures().join("yolov8_toy.onnx"), None, &cfg).unwrap();
    let e = &expected()["models"]["yolov8_toy"];
    let x = paint(e, 2);
    let (reference, _) = infer(&det, &x, 2);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..4).map(|_| s.spawn(|| (0..5).map(|_| infer(&det, &x, 2).0).collect::<Vec<_>>())).collect();
        for h in handles {
            assert!(h.join().unwrap().iter().all(|d| *d == reference));
        }
    });
}

#[test]
fn spinning_between_runs_or_not_gives_the_same_detections() {
    let e = &expected()["models"]["yolov8_toy"];
    let x = paint(e, 2);
    let outputs: Vec<_> = [false, true]
        .into_iter()
        .map(|spin| {
            let cfg = SessionConfig { spin_between_runs: spin, intra_threads: 2, ..Default::default() };
            let det = Detector::load(&fixtures().join("yolov8_toy.onnx"), None, &cfg).unwrap();
            (0..3).map(|_| infer(&det, &x, 2).0).collect::<Vec<_>>()
        })
        .collect();
    assert!(outputs[0].iter().chain(&outputs[1]).all(|d| *d == outputs[0][0]));
}

#[test]
fn missing_corrupt_and_mismatched_models_are_typed_errors() {
    let cfg = SessionConfig::default();
    let err = Detector::load(&fixtures().join("no_such_model.onnx"), None, &cfg).unwrap_err();
    assert!(matches!(err, DetectError::ModelMissing { .. }), "{err}");

    let err = Detector::load(&fixtures().join("broken.onnx"), None, &cfg).unwrap_err();
    assert!(matches!(err, DetectError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("broken.onnx"), "{err}");

    let yolo = fixtures().join("yolov8_toy.onnx");
    let err = Detector::load(&yolo, Some(&fixtures().join("mismatch_input_name.toml")), &cfg).unwrap_err();
    assert!(matches!(err, DetectError::Spec(SpecError::Mismatch { .. })), "{err}");
    assert!(err.to_string().contains("`input` is not a model input"), "{err}");

    let err = Detector::load(&yolo, Some(&fixtures().join("mismatch_size.toml")), &cfg).unwrap_err();
    assert!(err.to_string().contains("is 64 in the model, 128 in the spec"), "{err}");

    // A spec meant for another decoder layout.
    let err = Detector::load(&yolo, Some(&fixtures().join("yolov5_toy.toml")), &cfg).unwrap_err();
    assert!(matches!(err, DetectError::Spec(SpecError::Mismatch { .. })), "{err}");

    let err = Detector::load(&yolo, Some(&fixtures().join("missing.toml")), &cfg).unwrap_err();
    assert!(matches!(err, DetectError::Spec(SpecError::File(_))), "{err}");
}

#[test]
fn wrong_input_dimensions_are_rejected_before_running() {
    let det = load("yolov8_toy.onnx");
    let mut times = RunTimes::default();
    for shape in [(1, 3, 32, 64), (1, 1, 64, 64), (0, 3, 64, 64)] {
        let x = Array4::<f32>::zeros(shape);
        let err = det.run(x.view(), &mut times).unwrap_err();
        assert!(matches!(err, DetectError::Input { .. }), "{shape:?}: {err}");
    }
    assert_eq!(times.runs, 0);
}

#[test]
fn require_gpu_refuses_to_fall_back() {
    let cfg = SessionConfig { provider: Provider::Cuda, require_gpu: true, ..Default::default() };
    let err = Detector::load(&fixtures().join("yolov8_toy.onnx"), None, &cfg).unwrap_err();
    assert!(matches!(err, DetectError::Provider { .. }), "{err}");
    // Without the requirement the same config runs on CPU.
    let cfg = SessionConfig { provider: Provider::Cuda, require_gpu: false, ..Default::default() };
    if !cfg!(feature = "cuda") {
        let det = Detector::load(&fixtures().join("yolov8_toy.onnx"), None, &cfg).unwrap();
        assert_eq!(det.provider(), "cpu");
    }
}

#[test]
fn a_panicking_caller_gives_its_session_back() {
    use nii_atr_core::detect::session::SessionPool;
    nii_atr_core::runtime::init(None).unwrap();
    let pool =
        std::sync::Arc::new(SessionPool::load(&fixtures().join("yolov8_toy.onnx"), &SessionConfig::default()).unwrap());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.with_session(|_| panic!("caller bug"))));
    assert!(r.is_err());
    // With one session, a session lost to the panic would block this call forever: a
    // detached thread lets the test fail on the timeout instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || tx.send(p.with_session(|session| session.inputs().len())));
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(20)), Ok(1), "session not returned");
}
