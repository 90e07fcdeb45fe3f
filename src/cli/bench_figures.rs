//! `nii-atr bench`: the engine's speed targets measured in one process. Every figure is a
//! ratio to a baseline timed in the same run on the same data, so it carries over between
//! machines better than a bare time: merging 10,000 boxes against sorting their scores,
//! decoding a YOLOv8 head against one pass over it, filling tile tensors against copying the
//! same bytes, and the whole pipeline on a 40 ft scan against the model's own time.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use ndarray::{Array3, Array4};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use nii_atr_core::detect::decode::{BoxParams, DecodeStats, yolo_v8};
use nii_atr_core::detect::merge::{MergeConfig, MergeMethod, merge};
use nii_atr_core::detect::{BoxXyxy, Detection, MatchMetric};
use nii_atr_core::inspect::output::{write_overlay, write_report};
use nii_atr_core::inspect::{InspectError, Inspection, Pipeline};
use nii_atr_core::preprocess::calibration::{CalibrationOptions, calibrate};
use nii_atr_core::preprocess::tiles::{ChannelRecipe, TileGrid, TileSource};
use nii_atr_core::scan::Limits;

/// Median wall time of `f` over `runs` calls, in milliseconds.
pub fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// One measured figure against its same-process baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// What was measured.
    pub name: String,
    /// Its median time, milliseconds.
    pub ms: f64,
    /// What it is compared with, in words.
    pub baseline: String,
    /// The baseline's median time, milliseconds.
    pub baseline_ms: f64,
    /// `ms / baseline_ms`.
    pub ratio: f64,
    /// The target, in words, when the project sets one.
    pub target: Option<String>,
}

impl Ratio {
    fn new(name: impl Into<String>, ms: f64, baseline: impl Into<String>, baseline_ms: f64) -> Self {
        Self { name: name.into(), ms, baseline: baseline.into(), baseline_ms, ratio: ms / baseline_ms, target: None }
    }
}

/// 10,000 boxes as overlapping tiles report them: 2,500 objects over a 6,000 x 1,300 scan,
/// each seen 4 times with jitter, 5 classes.
pub fn tile_boxes() -> Vec<Detection> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::with_capacity(10_000);
    for _ in 0..2_500 {
        let (x, y) = (rng.random_range(0.0..6000.0f32), rng.random_range(0.0..1300.0f32));
        let (w, h) = (rng.random_range(10.0..120.0f32), rng.random_range(10.0..120.0f32));
        let class_id = rng.random_range(0..5u32);
        for _ in 0..4 {
            let j = |r: &mut ChaCha8Rng| r.random_range(-4.0..4.0f32);
            let bbox = BoxXyxy::new(x + j(&mut rng), y + j(&mut rng), x + w + j(&mut rng), y + h + j(&mut rng));
            out.push(Detection { bbox, score: rng.random_range(0.25..1.0), class_id });
        }
    }
    out
}

/// A YOLOv8 head `[1, 84, 8400]` like a real one: box rows in pixels, class scores mostly near
/// zero, a few confident.
pub fn yolo_head() -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    Array3::from_shape_fn((1, 84, 8400), |(_, r, _)| {
        if r < 4 {
            rng.random_range(0.0..640.0)
        } else if rng.random_range(0.0..1.0f32) < 0.001 {
            rng.random_range(0.3..1.0)
        } else {
            rng.random_range(0.0..0.05)
        }
    })
}

/// The merge methods the pipeline config offers, as the criterion bench runs them.
pub fn merge_configs() -> [(&'static str, MergeConfig); 3] {
    [
        (
            "nms iou",
            MergeConfig { method: MergeMethod::Nms, metric: MatchMetric::Iou, threshold: 0.45, ..Default::default() },
        ),
        ("greedy_nmm ios", MergeConfig { method: MergeMethod::GreedyNmm, ..Default::default() }),
        ("nmm ios", MergeConfig { method: MergeMethod::Nmm, ..Default::default() }),
    ]
}

/// Merging 10,000 boxes and decoding a YOLOv8 head, against sorting and summing.
pub fn merge_and_decode(runs: usize) -> Vec<Ratio> {
    let dets = tile_boxes();
    let scores: Vec<f32> = dets.iter().map(|d| d.score).collect();
    let sort_ms = median_ms(runs, || {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        black_box(idx);
    });
    let mut out = Vec::new();
    for (name, cfg) in merge_configs() {
        let kept = merge(&dets, &cfg).len();
        let ms = median_ms(runs, || drop(black_box(merge(&dets, &cfg))));
        out.push(Ratio::new(format!("{name}, 10,000 boxes ({kept} kept)"), ms, "sort 10,000 scores", sort_ms));
    }
    let head = yolo_head();
    let params = BoxParams { class_thresholds: vec![0.25; 80], iou_threshold: 0.45, max_detections: 300 };
    let sum_ms = median_ms(runs, || {
        black_box(head.iter().sum::<f32>());
    });
    let decode_ms = median_ms(runs, || {
        drop(black_box(yolo_v8::decode(head.view().into_dyn(), "output0", 1, &params, &mut DecodeStats::default())))
    });
    out.push(Ratio::new("decode yolov8 [1, 84, 8400]", decode_ms, "sum the head once", sum_ms));
    out
}

/// Filling the 640 x 640 dual-energy tensors of every tile of a 40 ft scan, against copying
/// the same number of bytes.
pub fn tile_tensors(runs: usize) -> Result<Ratio, nii_atr_core::preprocess::PreprocessError> {
    let scan = nii_atr_core::example::forty_foot_scan();
    let att = calibrate(&scan, &CalibrationOptions::default())?;
    let tiles = TileGrid::default().tiles(att.rows(), att.columns())?;
    let recipe = ChannelRecipe::dual_energy();
    let source = TileSource::new(&att);
    let batch = 8;
    let mut buffer = Array4::<f32>::zeros((batch, recipe.len(), 640, 640));
    let mut fill_err = None;
    let fill_ms = median_ms(runs, || {
        for chunk in tiles.chunks(batch) {
            let view = buffer.slice_mut(ndarray::s![..chunk.len(), .., .., ..]);
            if let Err(e) = source.fill_batch(chunk, &recipe, view) {
                fill_err = Some(e);
            }
        }
    });
    if let Some(e) = fill_err {
        return Err(e.into());
    }
    let bytes = tiles.len() * recipe.len() * 640 * 640;
    let src = vec![1.0f32; bytes.min(buffer.len())];
    let copies = bytes.div_ceil(src.len());
    let copy_ms = median_ms(runs, || {
        for _ in 0..copies {
            buffer.as_slice_mut().expect("standard layout").copy_from_slice(black_box(&src));
        }
    });
    Ok(Ratio::new(
        format!("tile tensors, {} tiles of 3 x 640 x 640", tiles.len()),
        fill_ms,
        "copy the same floats",
        copy_ms,
    ))
}

/// Stage times of one end-to-end run (read, inspect, report and overlay), milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    /// Scan rows (detector elements).
    pub rows: usize,
    /// Scan columns (scan lines).
    pub columns: usize,
    /// Tiles of the grid, over every model.
    pub tiles: usize,
    /// Tiles skipped as all air.
    pub tiles_skipped_air: usize,
    /// ONNX Runtime `run` calls per inspection.
    pub model_runs: usize,
    /// Wall time of one whole run (median).
    pub wall_ms: f64,
    /// ONNX Runtime's `run` time (median).
    pub ort_run_ms: f64,
    /// Reading the scan files.
    pub read_ms: f64,
    /// Calibration and material classification.
    pub calibrate_ms: f64,
    /// The material pseudo-colour view.
    pub render_ms: f64,
    /// Filling input tensors (time the model waited for them).
    pub tensors_ms: f64,
    /// Decoding model outputs.
    pub decode_ms: f64,
    /// Cross-tile merge, findings and their evidence.
    pub merge_ms: f64,
    /// Declared-cargo verification, when the config runs it.
    pub verify_ms: f64,
    /// Writing the report JSON and the overlay PNG.
    pub outputs_ms: f64,
    /// Wall time minus ONNX Runtime's `run` time, per run: median and quartiles.
    pub non_model_ms: f64,
    /// Lower and upper quartile of the same.
    pub non_model_quartiles_ms: [f64; 2],
    /// Everything but the model (median) over the model's time (median).
    pub overhead: f64,
}

/// Runs `pipeline` `runs` times on the scan at `scan_path` (after one warm-up run), writing
/// the report and overlay to `out`; returns each stage's median over the runs.
pub fn end_to_end(
    pipeline: &Pipeline,
    scan_path: &Path,
    out: &Path,
    runs: usize,
    mut tick: impl FnMut(),
) -> Result<EndToEnd, InspectError> {
    let limits = Limits::default();
    // The inspection, wall, read and outputs milliseconds of one run.
    type Run = (Inspection, f64, f64, f64);
    let once = || -> Result<Run, InspectError> {
        let t = Instant::now();
        let scan = nii_atr_core::scan::read_scan(scan_path, &limits)?;
        let read_ms = t.elapsed().as_secs_f64() * 1e3;
        let (ins, views) = pipeline.inspect(&scan)?;
        let t_out = Instant::now();
        write_report(&ins, &out.join("bench.inspection.json"))?;
        write_overlay(&views.pseudo_colour, &ins, &out.join("bench.overlay.png"))?;
        Ok((ins, t.elapsed().as_secs_f64() * 1e3, read_ms, t_out.elapsed().as_secs_f64() * 1e3))
    };
    once()?;
    tick();
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        all.push(once()?);
        tick();
    }
    // Every figure is its own median over the runs: the model's time and the rest move
    // independently on a shared machine, so the run with the median wall time can hold an
    // unusually slow calibration or model run.
    let med = |f: &dyn Fn(&Run) -> f64| quantile(all.iter().map(f).collect(), 0.5);
    let non_model: Vec<f64> = all.iter().map(|r| r.1 - r.0.timings.ort_run_ms).collect();
    let ort_run_ms = med(&|r| r.0.timings.ort_run_ms);
    let non_model_ms = quantile(non_model.clone(), 0.5);
    let ins = &all[0].0;
    Ok(EndToEnd {
        rows: ins.rows,
        columns: ins.columns,
        tiles: ins.models.iter().map(|m| m.tiles_total).sum(),
        tiles_skipped_air: ins.models.iter().map(|m| m.tiles_skipped_air).sum(),
        model_runs: ins.models.iter().map(|m| m.runs).sum(),
        wall_ms: med(&|r| r.1),
        ort_run_ms,
        read_ms: med(&|r| r.2),
        calibrate_ms: med(&|r| r.0.timings.calibrate_ms),
        render_ms: med(&|r| r.0.timings.render_ms),
        tensors_ms: med(&|r| r.0.timings.preprocess_ms),
        decode_ms: med(&|r| r.0.timings.decode_ms),
        merge_ms: med(&|r| r.0.timings.merge_ms),
        verify_ms: med(&|r| r.0.timings.verify_ms),
        outputs_ms: med(&|r| r.3),
        non_model_ms,
        non_model_quartiles_ms: [quantile(non_model.clone(), 0.25), quantile(non_model, 0.75)],
        overhead: non_model_ms / ort_run_ms,
    })
}

/// The `q` quantile of `v` (nearest rank; NaN-safe ordering).
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
