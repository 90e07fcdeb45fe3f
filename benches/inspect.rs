//! Catches regressions in everything around the model: reading, calibration, materials,
//! rendering, tiling, tensor copies, decoding, merging, writing the report and overlay. Runs a
//! 40 ft-long scan through the
//! pipeline with a model of YOLOv8n's cost (`bench_yolov8_640.onnx`, random weights) and
//! prints the time inside ONNX Runtime's `run` against everything else (target: < 10%).

use criterion::{Criterion, criterion_group, criterion_main};
use nii_atr_core::inspect::output::{write_overlay, write_report};
use nii_atr_core::inspect::{Inspection, Pipeline, PipelineConfig};
use nii_atr_core::scan::{Limits, PlaneFormat, write_scan};
use std::hint::black_box;
use std::path::Path;

fn pipeline() -> Pipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Pipeline::load(PipelineConfig::load(&root.join("benches/pipeline.bench.toml")).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let scan = nii_atr_core::example::forty_foot_scan();
    let path = write_scan(&scan, dir.path(), PlaneFormat::Tiff).unwrap();
    let p = pipeline();
    let limits = Limits::default();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let run = || -> (Inspection, f64, f64) {
        let t = std::time::Instant::now();
        let (ins, views) = p.inspect_path(&path, &limits).unwrap();
        let t_out = std::time::Instant::now();
        write_report(&ins, &out.join("scan.inspection.json")).unwrap();
        write_overlay(&views.pseudo_colour, &ins, &out.join("scan.overlay.png")).unwrap();
        (ins, t.elapsed().as_secs_f64() * 1e3, t_out.elapsed().as_secs_f64() * 1e3)
    };
    let mut g = c.benchmark_group("inspect_40ft");
    g.sample_size(10);
    g.bench_function("read + inspect + outputs, bench_yolov8_640", |b| b.iter(|| black_box(run())));
    g.finish();

    // `cargo test --all-targets` runs benches once as a smoke test: skip the timing report.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut runs: Vec<(Inspection, f64, f64)> = (0..5).map(|_| run()).collect();
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (ins, wall, outputs_ms) = &runs[2];
    let t = &ins.timings;
    let m = &ins.models[0];
    let rest = wall - t.ort_run_ms;
    println!(
        "\nend to end, median of 5 ({} x {} px, {} tiles, {} skipped as air, {} runs):",
        ins.rows, ins.columns, m.tiles_total, m.tiles_skipped_air, m.runs
    );
    println!("  wall (read, inspect, outputs) {wall:>9.1} ms");
    println!("  ONNX Runtime run              {:>9.1} ms", t.ort_run_ms);
    println!("  everything else               {rest:>9.1} ms = {:.1}% of model time", 100.0 * rest / t.ort_run_ms);
    println!(
        "    read {:.1}, calibrate+materials {:.1}, render {:.1}, tensors (not hidden) {:.1}, decode {:.1}, merge {:.1}, report+overlay {outputs_ms:.1} ms",
        wall - t.total_ms - outputs_ms,
        t.calibrate_ms,
        t.render_ms,
        t.preprocess_ms,
        t.decode_ms,
        t.merge_ms
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
