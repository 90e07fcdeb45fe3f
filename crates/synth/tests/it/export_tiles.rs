//! `nii-atr tiles` on a generated split: the exported tensors are the engine's model inputs
//! (preprocess, SAHI grid, air test, channel recipe), boxes land where the truth says, and
//! the full-scan input is the engine's shrunk scan.

use std::path::{Path, PathBuf};

use nii_atr_core::inspect::config::PipelineConfig;
use nii_atr_core::preprocess::render::{Palette, render_material};
use nii_atr_core::preprocess::tiles::{TileGrid, TileRect, TileSource};
use nii_atr_core::preprocess::views::{ScanViews, shrink};
use nii_atr_core::scan::Limits;
use nii_atr_core::truth::read_truth;
use nii_atr_synth::recipe::Recipe;
use nii_atr_synth::tiles::{ExportOptions, TileKind, TileRecord, export};

use crate::common::{generate_dataset, read_jsonl};

const RECIPE: &str = r#"
schema_version = 1
name = "t"
seed = 5
[splits]
train = 2
[scanner]
pitch_mm = 20.0
energy_bins = 16
[mix]
container_types = { iso20 = 1.0 }
threat_share = 1.0
max_threats = 3
"#;

const SPEC: &str = r#"
schema_version = 1
name = "t"
task = "detect"
[input]
name = "images"
width = 64
height = 64
channels = [{ channel = "attenuation_high", mean = 2.0, std = 2.0 }, { channel = "attenuation_low", mean = 2.5, std = 2.5 }, { channel = "r_value", mean = 1.0, std = 0.5 }]
[decoder]
kind = "yolov8"
[[classes]]
name = "a"
"#;

/// Reads a float32 `.npy` of shape [n, c, h, w] (header parsed independently of the writer).
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let raw = std::fs::read(path).unwrap();
    assert_eq!(&raw[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([raw[8], raw[9]]) as usize;
    let header = std::str::from_utf8(&raw[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_txt.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data = raw[10 + hlen..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    (shape, data)
}

/// Generates the RECIPE's train split under `dir/data`.
fn make_split(dir: &Path) -> PathBuf {
    let recipe = Recipe::parse(RECIPE, Path::new("t.toml")).unwrap();
    generate_dataset(&recipe, &dir.join("data"), false);
    dir.join("data/train")
}

/// Export options with the CLI's label rule (4-pixel boxes in tiles, 3 in the full scan).
fn export_options(split: PathBuf, spec: PathBuf, config: PathBuf, out: PathBuf, keep_background: f64) -> ExportOptions {
    ExportOptions {
        split,
        spec,
        config,
        out,
        keep_background,
        seed: 0,
        cases: None,
        min_side_tile: 4.0,
        min_side_full: 3.0,
        limits: Limits::default(),
    }
}

/// The label a truth box `[x, y, w, h]` must get in the 64-pixel tile `rect` when it lies
/// wholly inside it with both sides at least 4 pixels: the box in tile pixels.
fn whole_label(bbox: [usize; 4], rect: &TileRect) -> Option<[f32; 4]> {
    let [x, y, w, h] = bbox;
    let inside = x >= rect.x && y >= rect.y && x + w <= rect.x + 64 && y + h <= rect.y + 64;
    (inside && w >= 4 && h >= 4)
        .then(|| [(x - rect.x) as f32, (y - rect.y) as f32, (x + w - rect.x) as f32, (y + h - rect.y) as f32])
}

#[test]
fn exported_tiles_are_the_engines_inputs_with_their_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let split = make_split(dir.path());
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let config_path = dir.path().join("pipeline.toml");
    std::fs::write(&config_path, "schema_version = 1\n[[models]]\npath = 'm.onnx'\n[tiling]\nfull_scan_pass = true\n")
        .unwrap();
    let out = dir.path().join("tiles");
    let opts = export_options(split.clone(), spec.clone(), config_path.clone(), out.clone(), 1.0);
    let summary = export(&opts, &nii_atr_core::progress::Silent).unwrap();
    assert_eq!(summary.cases, 2);
    assert_eq!(summary.full_scan_inputs, 2);
    assert_eq!(summary.input, [3, 64, 64]);
    let records: Vec<TileRecord> = read_jsonl(&out.join("index.jsonl"));
    assert_eq!(records.len(), summary.tiles + summary.full_scan_inputs);

    let cfg = PipelineConfig::load(&config_path).unwrap();
    let truth = read_truth(&split).unwrap();
    let recipe_ch = nii_atr_core::detect::spec::ModelSpec::from_path(&spec).unwrap().input.recipe();
    let mut boxes_seen_whole = 0;
    for case in &truth {
        let scan = nii_atr_core::scan::read_scan(&split.join(&case.scan), &Limits::default()).unwrap();
        let pre = nii_atr_core::preprocess::preprocess(&scan, &cfg.preprocess).unwrap();
        let (rows, cols) = (pre.attenuation.rows(), pre.attenuation.columns());
        let (shape, data) = read_npy(&out.join(format!("{}.npy", case.case_id)));
        let mine: Vec<&TileRecord> = records.iter().filter(|r| r.case_id == case.case_id).collect();
        assert_eq!(shape, vec![mine.len(), 3, 64, 64]);
        // Every grid tile with content is exported (keep_background = 1), none without.
        let grid = TileGrid { tile_width: 64, tile_height: 64, overlap_width_ratio: 0.2, overlap_height_ratio: 0.2 };
        let with_content = grid
            .tiles(rows, cols)
            .unwrap()
            .into_iter()
            .filter(|t| {
                let n = (t.y..t.y + t.height)
                    .flat_map(|y| (t.x..t.x + t.width).map(move |x| (y, x)))
                    .filter(|&(y, x)| pre.attenuation.high[[y, x]] > 0.05)
                    .count();
                n as f32 >= 0.002 * (t.width * t.height) as f32
            })
            .collect::<Vec<_>>();
        let tiles: Vec<TileRect> = mine.iter().filter(|r| r.kind == TileKind::Tile).map(|r| r.rect).collect();
        assert_eq!(tiles, with_content);
        for r in &mine {
            let plane = |c: usize| &data[(r.index * 3 + c) * 64 * 64..(r.index * 3 + c + 1) * 64 * 64];
            match r.kind {
                TileKind::Tile => {
                    // Channel values straight from the calibrated planes, by the spec's normalisation.
                    for (ty, tx) in [(0, 0), (17, 40), (63, 63), (32, 5)] {
                        let (y, x) = (r.rect.y + ty, r.rect.x + tx);
                        let h = pre.attenuation.high[[y, x]];
                        let l = pre.attenuation.low.as_ref().unwrap()[[y, x]];
                        let rv = if h > 0.05 { l / h } else { 0.0 };
                        let k = ty * 64 + tx;
                        assert!((plane(0)[k] - (h - 2.0) / 2.0).abs() < 1e-6);
                        assert!((plane(1)[k] - (l - 2.5) / 2.5).abs() < 1e-6);
                        assert!((plane(2)[k] - (rv - 1.0) / 0.5).abs() < 1e-5);
                    }
                    // A truth box wholly inside the tile is a label, shifted into tile pixels.
                    for t in &case.threats {
                        if let Some(want) = whole_label(t.bbox, &r.rect) {
                            assert!(r.boxes.iter().any(|b| b.bbox == want && b.category == t.category), "{want:?}");
                            boxes_seen_whole += 1;
                        }
                        let [x, y, w, h] = t.bbox;
                        let touches = x < r.rect.x + 64 && x + w > r.rect.x && y < r.rect.y + 64 && y + h > r.rect.y;
                        assert!(!(touches && r.clean), "a tile a box touches is not clean");
                    }
                    assert!(r.boxes.iter().all(|b| b.bbox[0] >= 0.0 && b.bbox[2] <= 64.0 && b.bbox[3] <= 64.0));
                }
                TileKind::FullScan => {
                    // The engine's full-scan pass: the same shrink, placed at (0, 0), air-padded.
                    let pseudo = render_material(&pre.attenuation, &pre.materials, &Palette::default());
                    let views = ScanViews {
                        attenuation: pre.attenuation.clone(),
                        materials: pre.materials.clone(),
                        pseudo_colour: pseudo,
                    };
                    let scale = (64.0 / cols as f32).min(64.0 / rows as f32);
                    let small = shrink(&views, scale);
                    let rect =
                        TileRect { x: 0, y: 0, width: small.attenuation.columns(), height: small.attenuation.rows() };
                    let mut want = ndarray::Array4::<f32>::zeros((1, 3, 64, 64));
                    TileSource::new(&small.attenuation).fill_batch(&[rect], &recipe_ch, want.view_mut()).unwrap();
                    let got: Vec<f32> = (0..3).flat_map(|c| plane(c).to_vec()).collect();
                    assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
                    assert_eq!(r.scale, [rect.width as f32 / cols as f32, rect.height as f32 / rows as f32]);
                }
            }
        }
    }
    assert!(boxes_seen_whole > 0, "the test split should hold a threat wholly inside some tile");
}

#[test]
fn a_spec_at_another_pitch_gets_resampled_tiles_and_boxes() {
    // The split is at 20 mm; a model trained at 10 mm sees every scan enlarged 2x, as in
    // `inspect`, and its labels are the truth boxes in those pixels.
    let dir = tempfile::tempdir().unwrap();
    let split = make_split(dir.path());
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC.replace("height = 64\n", "height = 64\npixel_pitch_mm = 10.0\n")).unwrap();
    let config_path = dir.path().join("pipeline.toml");
    std::fs::write(&config_path, "schema_version = 1\n[[models]]\npath = 'm.onnx'\n").unwrap();
    let out = dir.path().join("tiles");
    let opts = export_options(split.clone(), spec.clone(), config_path.clone(), out.clone(), 1.0);
    export(&opts, &nii_atr_core::progress::Silent).unwrap();
    let records: Vec<TileRecord> = read_jsonl(&out.join("index.jsonl"));
    let cfg = PipelineConfig::load(&config_path).unwrap();
    let recipe_ch = nii_atr_core::detect::spec::ModelSpec::from_path(&spec).unwrap().input.recipe();
    let mut boxes_seen_whole = 0;
    for case in &read_truth(&split).unwrap() {
        let scan = nii_atr_core::scan::read_scan(&split.join(&case.scan), &Limits::default()).unwrap();
        let pre = nii_atr_core::preprocess::preprocess(&scan, &cfg.preprocess).unwrap();
        let (rows, cols) = (pre.attenuation.rows(), pre.attenuation.columns());
        let pseudo_colour = render_material(&pre.attenuation, &pre.materials, &Palette::default());
        let views = ScanViews { attenuation: pre.attenuation, materials: pre.materials, pseudo_colour };
        let big = nii_atr_core::preprocess::resample::resample(&views, 2 * rows, 2 * cols);
        let (_, data) = read_npy(&out.join(format!("{}.npy", case.case_id)));
        let mine: Vec<&TileRecord> = records.iter().filter(|r| r.case_id == case.case_id).collect();
        assert!(!mine.is_empty());
        for r in mine {
            assert_eq!(r.resampled, Some([2.0, 2.0]));
            assert!(r.rect.x + r.rect.width <= 2 * cols && r.rect.y + r.rect.height <= 2 * rows);
            let mut want = ndarray::Array4::<f32>::zeros((1, 3, 64, 64));
            TileSource::new(&big.attenuation).fill_batch(&[r.rect], &recipe_ch, want.view_mut()).unwrap();
            let got = &data[r.index * 3 * 64 * 64..(r.index + 1) * 3 * 64 * 64];
            assert_eq!(got, want.as_slice().unwrap());
            for t in &case.threats {
                if let Some(want) = whole_label(t.bbox.map(|v| 2 * v), &r.rect) {
                    assert!(r.boxes.iter().any(|b| b.bbox == want && b.category == t.category), "{want:?}");
                    boxes_seen_whole += 1;
                }
            }
        }
    }
    assert!(boxes_seen_whole > 0, "some threat should lie wholly inside a resampled tile");
}

#[test]
fn a_missing_split_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("models/pipeline.default.toml");
    let opts = export_options(dir.path().join("nope"), spec, config, dir.path().join("out"), 0.25);
    let err = export(&opts, &nii_atr_core::progress::Silent).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("truth.jsonl"), "{err}");
}
