//! A spec-less Ultralytics export gives Ultralytics' own boxes: `models/fixtures/ultralytics/`
//! holds a tiny YOLOv8 trained and exported by the real `ultralytics` package (no sidecar),
//! six PNGs, the letterboxed images Ultralytics fed the model and every box
//! `YOLO(...).predict` returned (its README gives each formula). Each image goes through the
//! real scan reader, the letterbox and the whole pipeline.
//!
//! Bounds: the letterbox matches byte for byte, and so does the input tensor; ONNX Runtime then
//! sees the very input Ultralytics gave it, so boxes agree to f32 rounding. 0.01 px and 1e-4
//! leave room for another ONNX Runtime build's kernels, nothing more.

use image::RgbImage;
use nii_atr_core::detect::SpecSource;
use nii_atr_core::detect::spec::{InferredFrom, ResizeMode};
use nii_atr_core::inspect::findings::FindingKind;
use nii_atr_core::inspect::{Inspection, Pipeline, PipelineConfig};
use nii_atr_core::preprocess::resample::letterbox_rgb;
use nii_atr_core::preprocess::tiles::{Channel, ChannelRecipe, InputSource, TileSource};
use nii_atr_core::preprocess::views::ScanViews;
use nii_atr_core::scan::{Limits, ScanKind, read_scan};
use serde_json::Value;
use std::path::{Path, PathBuf};

const BOX_PX: f64 = 0.01;
const SCORE: f64 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/ultralytics")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn images(e: &Value) -> &Vec<Value> {
    e["images"].as_array().unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// A pipeline config running only the fixture model, with no spec and every default.
fn config(extra: &str) -> PipelineConfig {
    let model = dir().join("tiny_yolov8.onnx");
    let mut cfg: PipelineConfig =
        toml::from_str(&format!("schema_version = 1\n[[models]]\npath = '{}'\n{extra}", model.display())).unwrap();
    cfg.base_dir = dir();
    cfg
}

fn inspect(p: &Pipeline, file: &str) -> Inspection {
    p.inspect_path(&dir().join(file), &Limits::default()).unwrap().0
}

/// Where a failing comparison leaves what it produced, for a look.
fn keep_for_inspection(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join("nii-atr-ultralytics-parity");
    std::fs::create_dir_all(&out).unwrap();
    out.join(name)
}

#[test]
fn the_letterbox_and_the_input_tensor_are_ultralytics_bytes() {
    let e = expected();
    let size = e["model"]["input"]["shape"][2].as_u64().unwrap() as usize;
    for im in images(&e) {
        let file = im["file"].as_str().unwrap();
        let scan = read_scan(&dir().join(file), &Limits::default()).unwrap();
        assert_eq!(scan.kind, ScanKind::Rendered);
        let rgb = scan.rgb.as_ref().unwrap_or_else(|| panic!("{file}: the reader kept no colour planes"));
        let (boxed, lb) = letterbox_rgb(rgb, size, size, 114);
        let want = &im["letterbox"];
        assert_eq!(lb.ratio, num(&want["ratio"]), "{file}");
        assert_eq!(
            [lb.new_width, lb.new_height],
            [want["new_unpad_wh"][0].as_u64().unwrap() as usize, want["new_unpad_wh"][1].as_u64().unwrap() as usize],
            "{file}"
        );
        let pads = [lb.top, lb.bottom(), lb.left, lb.right()];
        let want_pads = ["top", "bottom", "left", "right"].map(|k| want[k].as_u64().unwrap() as usize);
        assert_eq!(pads, want_pads, "{file}: padding top, bottom, left, right");
        assert_eq!(lb.resizes(), want["resized"].as_bool().unwrap(), "{file}");

        let stored = image::open(dir().join(want["image"].as_str().unwrap())).unwrap().into_rgb8();
        let differing = boxed.as_raw().iter().zip(stored.as_raw()).filter(|(a, b)| a != b).count();
        if differing > 0 {
            let keep = keep_for_inspection(&file.replace('/', "_"));
            boxed.save(&keep).unwrap();
            panic!("{file}: {differing} bytes differ from Ultralytics' letterbox; ours is in {}", keep.display());
        }

        // The tensor the pipeline builds is that image / 255, channel 0 red.
        let pre = nii_atr_core::preprocess::preprocess(&scan, &Default::default()).unwrap();
        let views = ScanViews::new(pre);
        let source = InputSource {
            planes: TileSource {
                attenuation: &views.attenuation,
                materials: Some(&views.materials),
                pseudo_colour: Some(&views.pseudo_colour),
                r_min_attenuation: 0.05,
            },
            rgb: scan.rgb.as_ref(),
        };
        let mut x = ndarray::Array3::<f32>::zeros((3, size, size));
        let planned = source.fill_letterbox(&ChannelRecipe::rgb(), 114, x.view_mut()).unwrap();
        assert_eq!(planned, lb);
        assert_tensor_is_image(file, &x, &stored, &im["input_tensor"]);
    }
}

fn assert_tensor_is_image(file: &str, x: &ndarray::Array3<f32>, stored: &RgbImage, stats: &Value) {
    for (p_x, p_y, px) in stored.enumerate_pixels() {
        for c in 0..3 {
            assert_eq!(
                x[[c, p_y as usize, p_x as usize]],
                px.0[c] as f32 / 255.0,
                "{file}: channel {c} at ({p_x}, {p_y})"
            );
        }
    }
    for (name, p) in stats["pixels"].as_object().unwrap() {
        let (py, px) = (p["y"].as_u64().unwrap() as usize, p["x"].as_u64().unwrap() as usize);
        let got: Vec<f64> = (0..3).map(|c| x[[c, py, px]] as f64).collect();
        let want: Vec<f64> = p["rgb"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(got, want, "{file}: pixel {name}");
    }
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    assert!(
        (sum - num(&stats["sum"])).abs() < 1e-9 * num(&stats["sum"]),
        "{file}: tensor sum {sum} vs {}",
        stats["sum"]
    );
}

#[test]
fn a_spec_less_ultralytics_export_gives_ultralytics_boxes() {
    let e = expected();
    let pipeline = Pipeline::load(config("")).unwrap();
    let (mut worst_box, mut worst_score, mut total) = (0f64, 0f64, 0);
    for im in images(&e) {
        let file = im["file"].as_str().unwrap();
        let r = inspect(&pipeline, file);
        let run = &r.models[0];
        assert_eq!(run.name, "tiny_yolov8", "the file stem, not torch's graph name");
        assert_eq!(run.spec_source, SpecSource::Inferred { from: InferredFrom::Ultralytics });
        assert_eq!(run.input_mode, ResizeMode::Letterbox);
        assert_eq!(run.channels, [Channel::Red, Channel::Green, Channel::Blue]);
        assert_eq!((run.runs, run.score_threshold, run.iou_threshold), (1, 0.25, Some(0.7)));
        let got: Vec<_> = r.findings.iter().filter(|f| f.kind == FindingKind::Object).collect();
        let want = im["boxes"].as_array().unwrap();
        let listing = || {
            let path = keep_for_inspection(&format!("{}.findings.json", file.replace('/', "_")));
            std::fs::write(&path, serde_json::to_string_pretty(&r.findings).unwrap()).unwrap();
            format!("ours in {}", path.display())
        };
        assert_eq!(got.len(), want.len(), "{file}: box count; {}", listing());
        // In Ultralytics' order (descending confidence): findings are sorted the same way.
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.class_id as u64, w["class_id"].as_u64().unwrap(), "{file}: {}", listing());
            assert_eq!(g.class_name, w["class_name"].as_str().unwrap());
            let b = [g.bbox_px.x1, g.bbox_px.y1, g.bbox_px.x2, g.bbox_px.y2];
            for (ours, theirs) in b.iter().zip(w["xyxy"].as_array().unwrap()) {
                worst_box = worst_box.max((*ours as f64 - num(theirs)).abs());
            }
            worst_score = worst_score.max((g.score as f64 - num(&w["confidence"])).abs());
            total += 1;
        }
        assert!(
            worst_box <= BOX_PX && worst_score <= SCORE,
            "{file}: box {worst_box} px, score {worst_score}; {}",
            listing()
        );
    }
    assert_eq!(total, 13);
    println!("13 boxes: largest difference {worst_box:e} px, score {worst_score:e}");
}

#[test]
fn thresholds_of_a_spec_less_model_come_from_the_config() {
    let e = expected();
    let file = "images/small_90x60.png";
    let want: Vec<f64> = images(&e).iter().find(|i| i["file"] == file).unwrap()["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| num(&b["confidence"]))
        .collect();
    assert!(want.iter().any(|&s| s < 0.5) && want.iter().any(|&s| s > 0.5), "the case needs boxes both sides of 0.5");
    let strict = Pipeline::load(config("score_threshold = 0.5\niou_threshold = 0.3\n")).unwrap();
    let r = inspect(&strict, file);
    let scores: Vec<f64> =
        r.findings.iter().filter(|f| f.kind == FindingKind::Object).map(|f| f.score as f64).collect();
    assert_eq!(scores.len(), want.iter().filter(|&&s| s > 0.5).count(), "{scores:?}");
    assert_eq!((r.models[0].score_threshold, r.models[0].iou_threshold), (0.5, Some(0.3)));
    // The command line's flags reach every spec-less model the same way.
    let mut cfg = config("");
    assert_eq!(cfg.set_spec_less_thresholds(Some(0.5), None), 1);
    assert_eq!(cfg.models[0].score_threshold, Some(0.5));
    // Out of range, or a model whose spec is a file: refused at load, naming the model.
    let err = Pipeline::load(config("score_threshold = 1.5\n")).err().unwrap().to_string();
    assert!(err.contains("score_threshold 1.5 outside 0..=1"), "{err}");
    let toy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/yolov5_toy.onnx");
    let mut cfg: PipelineConfig =
        toml::from_str(&format!("schema_version = 1\n[[models]]\npath = '{}'\niou_threshold = 0.5\n", toy.display()))
            .unwrap();
    assert_eq!(cfg.set_spec_less_thresholds(Some(0.3), None), 0, "a sidecar is a spec");
    let err = Pipeline::load(cfg).err().unwrap().to_string();
    assert!(err.contains("yolov5_toy.onnx") && err.contains("yolov5_toy.toml"), "{err}");
}

#[test]
fn raw_scans_still_reach_an_ultralytics_model_as_tiles_of_the_material_view() {
    let pipeline = Pipeline::load(config("")).unwrap();
    let scan = nii_atr_core::example::block_scan(100, 300, &[(40, 20, 80, 60, 2.0)]);
    let (r, _) = pipeline.inspect(&scan).unwrap();
    let run = &r.models[0];
    assert_eq!(run.input_mode, ResizeMode::Tiles);
    assert_eq!(run.channels, [Channel::PseudoRed, Channel::PseudoGreen, Channel::PseudoBlue]);
    assert!(run.letterbox.is_none());
}
