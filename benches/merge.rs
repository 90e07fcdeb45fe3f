//! Catches regressions in cross-tile merging (NMS, greedy NMM, NMM on 10,000 boxes) and in
//! decoding a YOLOv8 head (`[1, 84, 8400]`). Each is printed as a ratio to a baseline measured
//! in the same run: sorting the 10,000 scores (the part no NMS avoids), and one pass summing
//! the 705,600 head values (the part no decoder avoids).

use criterion::{Criterion, criterion_group, criterion_main};
use nii_atr_cli::cli::bench_figures::{merge_configs, tile_boxes, yolo_head};
use nii_atr_core::detect::decode::{BoxParams, DecodeStats, yolo_v8};
use nii_atr_core::detect::merge::merge;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median wall time of `f` over `n` runs.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}

fn report(name: &str, d: Duration, base: Duration) {
    println!(
        "{name:<28} {:>9.3} ms  = {:>7.1} x baseline ({:.3} ms)",
        d.as_secs_f64() * 1e3,
        d.as_secs_f64() / base.as_secs_f64(),
        base.as_secs_f64() * 1e3
    );
}

fn bench(c: &mut Criterion) {
    let dets = tile_boxes();
    let scores: Vec<f32> = dets.iter().map(|d| d.score).collect();
    let sort = || {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        black_box(idx);
    };
    let configs = merge_configs();
    let mut g = c.benchmark_group("merge_10k");
    g.sample_size(10);
    g.bench_function("baseline: sort scores", |b| b.iter(sort));
    for (name, cfg) in &configs {
        g.bench_function(*name, |b| b.iter(|| black_box(merge(&dets, cfg))));
    }
    g.finish();

    let head = yolo_head();
    let params = BoxParams { class_thresholds: vec![0.25; 80], iou_threshold: 0.45, max_detections: 300 };
    let decode = || {
        black_box(yolo_v8::decode(head.view().into_dyn(), "output0", 1, &params, &mut DecodeStats::default()).unwrap())
    };
    let sum = || black_box(head.iter().sum::<f32>());
    let mut g = c.benchmark_group("decode_yolov8_8400");
    g.bench_function("baseline: sum head", |b| b.iter(sum));
    g.bench_function("decode", |b| b.iter(decode));
    g.finish();

    // `cargo test --all-targets` runs benches once as a smoke test: skip the timing report.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("\nratios (median of 15 runs, same process):");
    let base = median(15, sort);
    for (name, cfg) in &configs {
        let kept = merge(&dets, cfg).len();
        report(&format!("{name} ({kept} kept)"), median(15, || drop(black_box(merge(&dets, cfg)))), base);
    }
    report(
        "decode yolov8 [1,84,8400]",
        median(15, || drop(decode())),
        median(15, || {
            sum();
        }),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
