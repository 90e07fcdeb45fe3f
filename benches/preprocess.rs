//! Catches regressions in scan preprocessing: calibration, attenuation, energy registration,
//! material classes and tiling of a 2000 x 6000 dual-energy scan, against a plain copy of the
//! same bytes.
//!
//! Target (issue 2): the whole preprocessing within 8x the copy on 2 cores. The closing line
//! prints the ratio from criterion's own estimates of both, measured in this run.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group};
use ndarray::{Array2, Array4};
use nii_atr_core::preprocess::calibration::{CalibrationOptions, calibrate};
use nii_atr_core::preprocess::materials::{MaterialClassifier, fallback_profile};
use nii_atr_core::preprocess::registration::{RegistrationOptions, measure_offset, register_energies};
use nii_atr_core::preprocess::tiles::{ChannelRecipe, TileGrid, TileSource};
use nii_atr_core::scan::{Counts, PlaneCounts, PlaneFiles, Scan, ScanDescriptor, SourceKind, SourceSpec};

const ROWS: usize = 2000;
const COLS: usize = 6000;
const BATCH: usize = 8;

fn scan() -> Scan {
    // A smooth load pattern with per-row gain: realistic value ranges, cheap to build.
    let high = Array2::from_shape_fn((ROWS, COLS), |(r, c)| {
        let a = 0.5 + 3.0 * (((r / 40) * 7 + (c / 90) * 3) % 11) as f32 / 11.0;
        (200.0 + 50_000.0 * (-a).exp() + (r % 13) as f32) as u16
    });
    let low = high.mapv(|v| ((v as f32 - 200.0) * 0.8 + 200.0) as u16);
    let source =
        SourceSpec { kind: SourceKind::Linac, high_energy: 6.0, low_energy: Some(4.0), extra: Default::default() };
    let mut d = ScanDescriptor::minimal("bench", source, PlaneFiles { high: "h".into(), low: Some("l".into()) });
    d.calibration.dark = Some(PlaneCounts { high: Counts::Scalar(200.0), low: Some(Counts::Scalar(200.0)) });
    d.calibration.air = Some(PlaneCounts {
        high: Counts::PerRow(vec![50_200.0; ROWS]),
        low: Some(Counts::PerRow(vec![40_200.0; ROWS])),
    });
    Scan::new(d, high, Some(low)).unwrap()
}

/// Per scan: everything but the prepared classifier, which an engine builds once per profile.
fn preprocess_all(scan: &Scan, classifier: &MaterialClassifier, buffer: &mut Array4<f32>) -> usize {
    let mut att = calibrate(scan, &CalibrationOptions::default()).unwrap();
    black_box(register_energies(&mut att, &RegistrationOptions::default()));
    let materials = classifier.classify(&att, 2);
    let grid = TileGrid::default();
    let tiles = grid.tiles(ROWS, COLS).unwrap();
    let mut source = TileSource::new(&att);
    source.materials = Some(&materials);
    let recipe = ChannelRecipe::dual_energy();
    // Batch by batch into one reused buffer, as the inference engine feeds a model.
    for chunk in tiles.chunks(BATCH) {
        let mut view = buffer.slice_mut(ndarray::s![..chunk.len(), .., .., ..]);
        source.fill_batch(chunk, &recipe, view.view_mut()).unwrap();
        black_box(&view);
    }
    tiles.len()
}

fn bench(c: &mut Criterion) {
    let scan = scan();
    let mut group = c.benchmark_group("preprocess_2000x6000");
    group.sample_size(10);
    group.bench_function("copy_planes", |b| b.iter(|| black_box((scan.high.clone(), scan.low.clone()))));
    let grid = TileGrid::default();
    let mut buffer = Array4::<f32>::zeros((BATCH, 3, grid.tile_height, grid.tile_width));
    let classifier = MaterialClassifier::new(fallback_profile(SourceKind::Linac));
    group.bench_function("calibrate_classify_tile", |b| {
        b.iter(|| black_box(preprocess_all(&scan, &classifier, &mut buffer)))
    });
    group.bench_function("calibrate", |b| {
        b.iter(|| black_box(calibrate(&scan, &CalibrationOptions::default()).unwrap()))
    });
    let att = calibrate(&scan, &CalibrationOptions::default()).unwrap();
    // Every scan: the lag is measured (registration off, the default, or an aligned scanner).
    group.bench_function("register_measure", |b| b.iter(|| black_box(measure_offset(&att))));
    // Interlaced: measured, then the low plane resampled (forced here by a zero threshold).
    let resample = RegistrationOptions { enabled: true, min_offset_columns: 0.0, ..Default::default() };
    group.bench_function("register_resample", |b| {
        b.iter_batched(|| att.clone(), |mut a| black_box(register_energies(&mut a, &resample)), BatchSize::LargeInput)
    });
    group.bench_function("classify", |b| b.iter(|| black_box(classifier.classify(&att, 2))));
    let tiles = TileGrid::default().tiles(ROWS, COLS).unwrap();
    let source = TileSource::new(&att);
    group.bench_function("tile_tensors", |b| {
        b.iter(|| {
            for chunk in tiles.chunks(BATCH) {
                let mut view = buffer.slice_mut(ndarray::s![..chunk.len(), .., .., ..]);
                source.fill_batch(chunk, &ChannelRecipe::dual_energy(), view.view_mut()).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn estimate_ns(id: &str) -> Option<f64> {
    let dir =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = format!("{dir}/criterion/preprocess_2000x6000/{id}/new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let (Some(copy), Some(all)) = (estimate_ns("copy_planes"), estimate_ns("calibrate_classify_tile")) {
        println!(
            "\nsummary: preprocessing {:.1} ms, plain copy {:.1} ms, ratio {:.1}x (target <= 8x) on {} threads",
            all / 1e6,
            copy / 1e6,
            all / copy,
            rayon::current_num_threads()
        );
    }
}
