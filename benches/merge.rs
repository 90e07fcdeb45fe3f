//! Catches regressions in cross-tile merging (NMS, greedy NMM, NMM on 10,000 boxes) and in
//! decoding a YOLOv8 head (`[1, 84, 8400]`). Each is printed as a ratio to a baseline measured
//! in the same run: sorting the 10,000 scores (the part no NMS avoids), and one pass summing
//! the 705,600 head values (the part no decoder avoids).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array3;
use nii_atr::detect::decode::{BoxParams, DecodeStats, yolo_v8};
use nii_atr::detect::merge::{MergeConfig, MergeMethod, merge};
use nii_atr::detect::{BoxXyxy, Detection, MatchMetric};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// 10,000 boxes as overlapping tiles report them: 2,500 objects over a 6,000 x 1,300 scan,
/// each seen 4 times with jitter, 5 classes.
fn tile_boxes() -> Vec<Detection> {
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

fn yolo_head() -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Like a real head: box rows in pixels, class scores mostly near zero, a few confident.
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
    let configs = [
        (
            "nms iou",
            MergeConfig { method: MergeMethod::Nms, metric: MatchMetric::Iou, threshold: 0.45, ..Default::default() },
        ),
        ("greedy_nmm ios", MergeConfig { method: MergeMethod::GreedyNmm, ..Default::default() }),
        ("nmm ios", MergeConfig { method: MergeMethod::Nmm, ..Default::default() }),
    ];
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
