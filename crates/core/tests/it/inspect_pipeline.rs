//! Whole scans through the pipeline with the toy fixture models: tiling, air-tile skipping,
//! cut-object stitching, anomaly stitching, decision and the bad-input paths.
//!
//! The toy detector scores each 16x16 cell of a 64x64 tile by its mean channel-0 value, and
//! `yolov8_toy_scan.toml` feeds it A_high / 4: a block of A_high = 3.6 filling a cell scores
//! 0.9 with a 32x32 box centred on the cell, so every expected box below is worked out by hand.

use nii_atr_core::detect::BoxXyxy;
use nii_atr_core::inspect::config::ModelEntry;
use nii_atr_core::inspect::findings::FindingKind;
use nii_atr_core::inspect::{Decision, InspectError, Inspection, Pipeline, PipelineConfig};
use nii_atr_core::scan::Scan;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("models/fixtures")
}

/// A dual-energy scan of air with blocks `(x0, y0, x1, y1, a_high)`; A_low = 1.3 A_high.
fn scan(rows: usize, cols: usize, blocks: &[(usize, usize, usize, usize, f32)]) -> Scan {
    nii_atr_core::example::block_scan(rows, cols, blocks)
}

fn config(model: &str, spec: &str, batch_size: usize) -> PipelineConfig {
    let mut cfg =
        PipelineConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("models/pipeline.default.toml"))
            .unwrap();
    cfg.models = vec![ModelEntry {
        path: fixtures().join(model),
        spec: Some(fixtures().join(spec)),
        batch_size,
        enabled: true,
        min_score: None,
        classes: None,
        score_threshold: None,
        iou_threshold: None,
    }];
    cfg.tiling.overlap_width_ratio = 0.25;
    cfg.tiling.overlap_height_ratio = 0.25;
    // The shipped default runs a full-scan pass for its detector; these tests count tile runs.
    cfg.tiling.full_scan_pass = false;
    cfg
}

fn inspect(cfg: PipelineConfig, s: &Scan) -> Inspection {
    Pipeline::load(cfg).unwrap().inspect(s).unwrap().0
}

fn boxes(i: &Inspection) -> Vec<(BoxXyxy, String)> {
    i.findings.iter().map(|f| (f.bbox_px, f.class_name.clone())).collect()
}

/// Tiles at x = 0, 48, ..., 336 (step 64 - 16) over a 64 x 400 scan. Block A (x 40..72) is
/// cut by the edge of tile 0 and seen again by tile 48; block B (x 256..272) lies in tile 240.
fn two_objects() -> Scan {
    scan(64, 400, &[(40, 16, 72, 32, 3.6), (256, 32, 272, 48, 3.6)])
}

#[test]
fn objects_are_found_once_in_scan_coordinates() {
    let s = two_objects();
    let r = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    let m = &r.models[0];
    assert_eq!(m.tiles_total, 8);
    assert_eq!(m.tiles_skipped_air, 5, "only tiles 0, 48 and 240 hold material");
    assert_eq!(m.runs, 2, "the first run takes one tile so the model starts early; two more fit a batch of 8");
    assert_eq!(m.dropped.non_finite, 0);

    // A: tile 0 sees cell x 48..64 (box 40..72 clipped to the tile: 40..64, cut on the right),
    // tile 48 sees cell 48..64 (box 40..72 clipped to 48..72, cut on the left): one union.
    // B: tile 240, cell (row 2, col 1): box centre (240 + 24, 40), 32 x 32.
    assert_eq!(
        boxes(&r),
        vec![
            (BoxXyxy::new(40.0, 8.0, 72.0, 40.0), "knife".into()),
            (BoxXyxy::new(248.0, 24.0, 280.0, 56.0), "knife".into())
        ]
    );
    let f = &r.findings[0];
    assert!((f.score - 0.9).abs() < 1e-3, "{}", f.score);
    assert_eq!(f.kind, FindingKind::Object);
    assert_eq!(f.model, "toy-yolov8-scan");
    // 5 mm pitch (the minimal descriptor's): millimetres along the container.
    assert_eq!((f.bbox_mm.x1, f.bbox_mm.x2, f.bbox_mm.y2), (200.0, 360.0, 200.0));
    // Half the box is the block (A = 3.6), half air.
    assert!((f.evidence.mean_attenuation - 1.8).abs() < 0.05, "{:?}", f.evidence);
    assert!(f.evidence.mean_z_eff.is_some());
    assert_ne!(f.evidence.dominant_class, "air");

    assert_eq!(r.decision, Decision::Alarm, "a weapon at 0.9");
    assert!((r.risk_score - 0.9).abs() < 1e-3);
    assert!(r.timings.ort_run_ms > 0.0 && r.timings.total_ms >= r.timings.ort_run_ms);
}

#[test]
fn channels_last_models_see_the_same_tiles() {
    let s = two_objects();
    let nchw = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    let nhwc = inspect(config("yolov8_nhwc_toy.onnx", "yolov8_nhwc_toy_scan.toml", 8), &s);
    assert_eq!(nhwc.findings.len(), 2);
    for (a, b) in nchw.findings.iter().zip(&nhwc.findings) {
        assert_eq!((a.bbox_px, &a.class_name, a.score), (b.bbox_px, &b.class_name, b.score));
    }
    // The spec's layout must match the model: NCHW spec on the NHWC model fails at load.
    let wrong = config("yolov8_nhwc_toy.onnx", "yolov8_toy_scan.toml", 8);
    let e = Pipeline::load(wrong).err().expect("layout mismatch is refused").to_string();
    assert!(e.contains("yolov8_nhwc_toy.onnx"), "{e}");
}

#[test]
fn min_score_leaves_out_weak_findings() {
    // Block A scores 0.9, a fainter block 0.7 (A = 2.8 over a whole cell).
    let s = scan(64, 400, &[(40, 16, 72, 32, 3.6), (256, 32, 272, 48, 2.8)]);
    let all = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.models[0].min_score = Some(0.8);
    let strong = inspect(cfg, &s);
    assert!(all.findings.iter().any(|f| f.score < 0.8), "{:?}", all.findings);
    assert!(!strong.findings.is_empty() && strong.findings.iter().all(|f| f.score >= 0.8));
    assert_eq!(strong.findings.len() + 1, all.findings.len());
    let mut bad = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    bad.models[0].min_score = Some(1.5);
    assert!(Pipeline::load(bad).is_err());
}

#[test]
fn batch_size_does_not_change_findings() {
    let s = two_objects();
    let one = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 1), &s);
    let eight = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    assert_eq!(one.findings, eight.findings);
    assert_eq!(one.models[0].runs, 3);
}

#[test]
fn without_stitching_the_cut_object_splits() {
    let s = two_objects();
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.merge.stitch_cut_boxes = false;
    cfg.merge.metric = nii_atr_core::detect::MatchMetric::Iou;
    // The two pieces of A (40..64 and 48..72) have IoU 16/32 = 0.5: not above 0.5.
    assert_eq!(inspect(cfg, &s).findings.len(), 3);
}

#[test]
fn side_by_side_pieces_join_for_the_listed_classes_only() {
    // A block over cells (col 1, row 1) and (col 2, row 1) of tile 0: two knife boxes, x 8..40
    // and 24..56, y 8..40. IoU 1/3 passes the decoder's NMS, IoS 0.5 is not above the merge's
    // threshold, and no tile edge cuts them, so only the side-by-side join makes them one.
    let s = scan(64, 400, &[(16, 16, 48, 32, 3.6)]);
    let plain = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    assert_eq!(
        boxes(&plain),
        vec![
            (BoxXyxy::new(8.0, 8.0, 40.0, 40.0), "knife".into()),
            (BoxXyxy::new(24.0, 8.0, 56.0, 40.0), "knife".into())
        ]
    );
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.merge.join_side_by_side = vec!["knife".into()];
    let joined = inspect(cfg, &s);
    assert_eq!(boxes(&joined), vec![(BoxXyxy::new(8.0, 8.0, 56.0, 40.0), "knife".into())]);
    assert_eq!(joined.risk_score, plain.risk_score, "a group keeps its best score");
    // Another class listed: the knives stay apart.
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.merge.join_side_by_side = vec!["gun".into()];
    assert_eq!(inspect(cfg, &s).findings.len(), 2);
    // A class no model has (the default config's hidden_compartment with this toy model) joins
    // nothing and is only warned about, so the default config runs any model.
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.merge.join_side_by_side = vec!["hidden_compartment".into()];
    assert_eq!(inspect(cfg, &s).findings.len(), 2);
}

#[test]
fn a_model_keeps_only_the_classes_listed_for_it() {
    // "gun" scores (1.3 A_high - 1.77) / 3 (channel 1 is the low-energy attenuation): a full
    // cell of A_high = 3.6 is a gun (0.97 against the knife's 0.90), one of 2.4 a knife (0.60
    // against 0.45, under the 0.5 threshold).
    let dir = tempfile::tempdir().unwrap();
    let both = |dir: &Path| {
        config_with_spec("yolov8_toy.onnx", "yolov8_toy_scan.toml", dir, |s| {
            s.replacen(
                "{ channel = \"grey\", mean = 1.0, std = 1.0 }",
                "{ channel = \"attenuation_low\", mean = 1.77, std = 3.0 }",
                1,
            )
        })
    };
    let s = scan(64, 400, &[(40, 16, 72, 32, 3.6), (256, 32, 272, 48, 2.4), (72, 16, 104, 32, 2.4)]);
    let all = inspect(both(dir.path()), &s);
    let only = |i: &Inspection, c: &str| i.findings.iter().filter(|f| f.class_name == c).cloned().collect::<Vec<_>>();
    let knife = |x: f32| (BoxXyxy::new(x, 8.0, x + 32.0, 40.0), "knife".to_string());
    // The gun block, the mixed cell where it meets the knife block, the knife blocks.
    assert_eq!(
        boxes(&all),
        vec![
            (BoxXyxy::new(40.0, 8.0, 72.0, 40.0), "gun".into()),
            knife(56.0),
            knife(72.0),
            (BoxXyxy::new(248.0, 24.0, 280.0, 56.0), "knife".into())
        ]
    );
    for class in ["gun", "knife"] {
        let mut cfg = both(dir.path());
        cfg.models[0].classes = Some(vec![class.into()]);
        assert_eq!(inspect(cfg, &s).findings, only(&all, class), "{class}");
    }
    // A class-agnostic merge at IoS > 0.4 lets the gun absorb the mixed cell's knife.
    let agnostic = |dir: &Path, classes: Option<Vec<String>>| {
        let mut cfg = both(dir);
        cfg.merge.class_agnostic = true;
        cfg.merge.threshold = 0.4;
        cfg.models[0].classes = classes;
        inspect(cfg, &s)
    };
    assert!(!boxes(&agnostic(dir.path(), None)).contains(&knife(56.0)));
    // Dropped classes go before the merge: keeping knives only, no gun absorbs one, so the
    // mixed cell's knife survives and absorbs its neighbour as a class-aware merge would.
    let knives = agnostic(dir.path(), Some(vec!["knife".into()]));
    assert_eq!(boxes(&knives)[0], knife(56.0));
    let mut aware = both(dir.path());
    aware.merge.threshold = 0.4;
    assert_eq!(knives.findings, only(&inspect(aware, &s), "knife"));
    // A name the spec lacks fails at load, naming it and what the model has.
    let mut cfg = both(dir.path());
    cfg.models[0].classes = Some(vec!["gun".into(), "firearm".into()]);
    let err = Pipeline::load(cfg).err().unwrap().to_string();
    assert!(err.contains("`firearm`") && err.contains("knife, gun"), "{err}");
    // An empty list keeps nothing: refused by the config check.
    let mut cfg = both(dir.path());
    cfg.models[0].classes = Some(vec![]);
    let err = Pipeline::load(cfg).err().unwrap().to_string();
    assert!(err.contains("classes = []"), "{err}");
}

#[test]
fn skipping_air_tiles_loses_nothing() {
    let s = two_objects();
    let mut all = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    all.tiling.skip_air_tiles = false;
    let every = inspect(all, &s);
    assert_eq!(every.models[0].tiles_skipped_air, 0);
    assert_eq!(every.models[0].runs, 2, "8 tiles: one, then a batch of 7");
    let skipping = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    assert_eq!(every.findings, skipping.findings);
}

#[test]
fn empty_container_is_clear() {
    let r = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &scan(64, 200, &[(10, 10, 190, 50, 0.4)]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.decision, Decision::Clear);
}

#[test]
fn a_scan_smaller_than_a_tile_is_padded_with_air() {
    // 40 x 50 pixels; the block fills the tile cell (1, 1) = x 16..32, y 16..32.
    let r = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &scan(40, 50, &[(16, 16, 32, 32, 3.6)]));
    assert_eq!(r.models[0].tiles_total, 1);
    // Box 8..40 x 8..40 clipped to the 50 x 40 scan.
    assert_eq!(boxes(&r), vec![(BoxXyxy::new(8.0, 8.0, 40.0, 40.0), "knife".into())]);
}

#[test]
fn static_batch_model_runs_tile_by_tile() {
    let s = two_objects();
    let r = inspect(config("e2e_toy.onnx", "e2e_scan.toml", 8), &s);
    assert_eq!(r.models[0].runs, 3);
    let reference = inspect(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8), &s);
    assert_eq!(boxes(&r), boxes(&reference));
}

#[test]
fn nan_outputs_force_review_and_are_counted() {
    let r = inspect(config("yolov8_nan.onnx", "yolov8_toy_scan.toml", 8), &scan(64, 200, &[(100, 10, 120, 50, 0.3)]));
    assert!(r.models[0].dropped.non_finite > 0);
    assert_eq!(r.decision, Decision::Review);
    assert!(r.reasons.iter().any(|x| x.contains("non-finite")), "{:?}", r.reasons);
}

#[test]
fn anomaly_maps_are_stitched_into_one_region() {
    // Anomaly model: 32 x 32 tiles, map = A_high; the block spans several tiles.
    let s = scan(64, 160, &[(20, 10, 90, 30, 2.0)]);
    let r = inspect(config("anomaly_toy.onnx", "anomaly_toy.json", 8), &s);
    let regions: Vec<_> = r.findings.iter().filter(|f| f.kind == FindingKind::AnomalyRegion).collect();
    assert_eq!(regions.len(), 1, "{regions:?}");
    let f = regions[0];
    assert_eq!(f.bbox_px, BoxXyxy::new(20.0, 10.0, 90.0, 30.0));
    let stats = f.region.unwrap();
    assert_eq!(stats.area_px, 70 * 20);
    assert!((stats.peak - 2.0).abs() < 0.01 && (stats.mean - 2.0).abs() < 0.01, "{stats:?}");
    assert_eq!(f.score, 1.0, "peak clamped to a [0, 1] score");
}

#[test]
fn bad_models_fail_before_any_scan() {
    let cfg = config("broken.onnx", "yolov8_toy_scan.toml", 8);
    assert!(matches!(Pipeline::load(cfg), Err(InspectError::Detect(_))));
    let cfg = config("yolov8_toy.onnx", "mismatch_size.toml", 8);
    let err = Pipeline::load(cfg).err().unwrap();
    assert!(err.to_string().contains("disagree"), "{err}");
}

#[test]
fn a_recipe_the_scan_cannot_feed_is_a_typed_error() {
    // The classifier wants R-value: a single-energy scan has none.
    let mut s = scan(64, 128, &[(10, 10, 20, 20, 1.0)]);
    s.low = None;
    s.descriptor.source.low_energy = None;
    s.descriptor.planes.low = None;
    s.descriptor.calibration.dark.as_mut().unwrap().low = None;
    s.descriptor.calibration.air.as_mut().unwrap().low = None;
    let p = Pipeline::load(config("classify_toy.onnx", "classify_toy.toml", 8)).unwrap();
    let err = p.inspect(&s).err().unwrap();
    assert!(matches!(err, InspectError::Tiles { .. }), "{err}");
    assert!(err.to_string().contains("RValue"), "{err}");
}

#[test]
fn full_scan_pass_maps_boxes_back_to_scan_pixels() {
    // 128 x 128 scan, block x/y 32..64. Shrunk by 0.5 into the 64 x 64 input, the block fills
    // cell (1, 1): box 8..40 in the input, 16..80 in the scan. Tiles are all skipped (every
    // pixel counts as air at this threshold) so only the full pass can find it.
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.tiling.full_scan_pass = true;
    cfg.tiling.air_attenuation = 100.0;
    let r = inspect(cfg, &scan(128, 128, &[(32, 32, 64, 64, 3.6)]));
    assert!(r.models[0].full_scan_pass);
    assert_eq!(r.models[0].tiles_skipped_air, r.models[0].tiles_total);
    assert_eq!(r.models[0].runs, 1);
    assert_eq!(boxes(&r), vec![(BoxXyxy::new(16.0, 16.0, 80.0, 80.0), "knife".into())]);
    assert!((r.findings[0].score - 0.9).abs() < 1e-3);
    // A scan that already fits one tile gets no extra pass.
    let mut cfg = config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 8);
    cfg.tiling.full_scan_pass = true;
    assert!(!inspect(cfg, &scan(40, 50, &[])).models[0].full_scan_pass);
}

#[test]
fn batches_too_large_for_memory_are_refused_at_load() {
    // A model with symbolic height and width accepts any spec size: 8 tiles of 3 x 8192 x 8192,
    // twice over, would take 12 GiB.
    let err = Pipeline::load(config("classify_dynamic.onnx", "huge_tiles.toml", 8)).err().unwrap();
    assert!(err.to_string().contains("over the 4096 MiB limit"), "{err}");
    assert!(err.to_string().contains("classify_dynamic.onnx"), "{err}");
    // One such tile at a time fits (1.5 GiB for two batches).
    assert!(Pipeline::load(config("classify_dynamic.onnx", "huge_tiles.toml", 1)).is_ok());
    assert!(Pipeline::load(config("yolov8_toy.onnx", "yolov8_toy_scan.toml", 1024)).is_ok());
}

/// `config` with the fixture spec `spec` rewritten (`edit`) into `dir`.
fn config_with_spec(model: &str, spec: &str, dir: &Path, edit: impl Fn(String) -> String) -> PipelineConfig {
    let path = dir.join(spec);
    std::fs::write(&path, edit(std::fs::read_to_string(fixtures().join(spec)).unwrap())).unwrap();
    let mut cfg = config(model, spec, 8);
    cfg.models[0].spec = Some(path);
    cfg
}

#[test]
fn a_scan_at_a_finer_pitch_is_resampled_to_the_models() {
    // The scan is at 5 mm, the model was trained at 10 mm: the scan is averaged down 2x to
    // 64 x 400, which is `two_objects` exactly, so the model finds the boxes of
    // `objects_are_found_once_in_scan_coordinates`, here doubled back into scan pixels.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_spec("yolov8_toy.onnx", "yolov8_toy_scan.toml", dir.path(), |s| {
        s.replace("height = 64\n", "height = 64\npixel_pitch_mm = 10.0\n")
    });
    let s = scan(128, 800, &[(80, 32, 144, 64, 3.6), (512, 64, 544, 96, 3.6)]);
    let r = inspect(cfg, &s);
    let m = &r.models[0];
    assert_eq!(m.resampled_px, Some([64, 400]));
    assert_eq!((m.tiles_total, m.tiles_skipped_air), (8, 5));
    assert_eq!(
        boxes(&r),
        vec![
            (BoxXyxy::new(80.0, 16.0, 144.0, 80.0), "knife".into()),
            (BoxXyxy::new(496.0, 48.0, 560.0, 112.0), "knife".into())
        ]
    );
    let f = &r.findings[0];
    assert!((f.score - 0.9).abs() < 1e-3, "{}", f.score);
    // Millimetres and evidence come from the scan itself: half the box is the block.
    assert_eq!((f.bbox_mm.x1, f.bbox_mm.x2, f.bbox_mm.y2), (400.0, 720.0, 400.0));
    assert!((f.evidence.mean_attenuation - 1.8).abs() < 0.05, "{:?}", f.evidence);
    // The same model at the scan's own pitch runs it as it is.
    let same = config_with_spec("yolov8_toy.onnx", "yolov8_toy_scan.toml", dir.path(), |s| {
        s.replace("height = 64\n", "height = 64\npixel_pitch_mm = 5.05\n")
    });
    let r = inspect(same, &two_objects());
    assert_eq!(r.models[0].resampled_px, None);
    assert_eq!(r.findings.len(), 2);
}

#[test]
fn anomaly_regions_come_back_from_a_coarser_pitch() {
    // Scan at 5 mm, model at 2.5 mm: enlarged 2x by linear interpolation to 128 x 320. The
    // block (x 20..90, y 10..30, A = 3) becomes x 40..180 plus one blended pixel each side
    // (0.75 there, above the 0.5 threshold; 0 beyond), so the region is x 39..181, y 19..61,
    // and half a scan pixel wider each side once mapped back.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_spec("anomaly_toy.onnx", "anomaly_toy.json", dir.path(), |s| {
        s.replace("\"height\": 32,", "\"height\": 32, \"pixel_pitch_mm\": 2.5,")
    });
    let r = inspect(cfg, &scan(64, 160, &[(20, 10, 90, 30, 3.0)]));
    assert_eq!(r.models[0].resampled_px, Some([128, 320]));
    let regions: Vec<_> = r.findings.iter().filter(|f| f.kind == FindingKind::AnomalyRegion).collect();
    assert_eq!(regions.len(), 1, "{regions:?}");
    assert_eq!(regions[0].bbox_px, BoxXyxy::new(19.5, 9.5, 90.5, 30.5));
    let stats = regions[0].region.unwrap();
    // 142 x 42 model pixels less the four corners (0.25 x 0.25 x 3 = 0.19), in scan pixels.
    assert_eq!(stats.area_px, (142 * 42 - 4) / 4, "{stats:?}");
    assert!((stats.peak - 3.0).abs() < 0.01, "{stats:?}");
}

#[test]
fn absurd_pitch_ratios_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // 5 mm scan for a 0.1 mm model: 64 x 1000 px would become 3200 x 50000.
    let cfg = config_with_spec("yolov8_toy.onnx", "yolov8_toy_scan.toml", dir.path(), |s| {
        s.replace("height = 64\n", "height = 64\npixel_pitch_mm = 0.1\n")
    });
    let err = Pipeline::load(cfg).unwrap().inspect(&scan(64, 1000, &[])).err().unwrap();
    assert!(matches!(err, InspectError::Pitch { .. }), "{err}");
    assert!(err.to_string().contains("toy-yolov8-scan") && err.to_string().contains("pixel limit"), "{err}");
    // A pitch no scanner has is a spec error at load.
    let cfg = config_with_spec("yolov8_toy.onnx", "yolov8_toy_scan.toml", dir.path(), |s| {
        s.replace("height = 64\n", "height = 64\npixel_pitch_mm = 0.0\n")
    });
    let err = Pipeline::load(cfg).err().unwrap();
    assert!(err.to_string().contains("pixel_pitch_mm"), "{err}");
}
