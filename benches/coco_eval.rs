//! COCO scoring speed against pycocotools on the same files in the same run (5,000 scans x 50
//! detections): catches regressions in matching/accumulation cost; target ratio >= 20x.
//!
//! Both sides are timed from reading the JSON files to the 12 summary numbers (pycocotools:
//! `COCO()`, `loadRes`, `evaluate`, `accumulate`, `summarize`, timed inside Python so the
//! interpreter start is not counted). The two sets of numbers are also compared to 1e-9.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nii_atr_eval::coco::{self, CocoParams};
use nii_atr_eval::{Dataset, Predictions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const N_IMAGES: usize = 5000;
const DETS_PER_IMAGE: usize = 50;
const N_CATEGORIES: i64 = 20;
const RUNS: usize = 5;

const PYCOCOTOOLS: &str = r#"
import contextlib, io, json, sys, time
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    e = COCOeval(gt, dt, "bbox"); e.evaluate(); e.accumulate(); e.summarize()
print(json.dumps({"seconds": time.perf_counter() - t, "stats": [float(s) for s in e.stats]}))
"#;

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn write_inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(5000);
    let (mut images, mut annotations, mut results) = (vec![], vec![], vec![]);
    for img in 1..=N_IMAGES as i64 {
        images.push(json!({"id": img, "width": 640, "height": 480}));
        let mut truths = vec![];
        for _ in 0..rng.random_range(0..12) {
            let (w, h) = (rng.random_range(4.0..200.0f64), rng.random_range(4.0..200.0f64));
            let b = [r1(rng.random_range(0.0..640.0 - w)), r1(rng.random_range(0.0..480.0 - h)), r1(w), r1(h)];
            let cat = rng.random_range(1..=N_CATEGORIES);
            annotations.push(json!({"id": annotations.len() + 1, "image_id": img, "category_id": cat,
                "bbox": b, "area": r1(b[2] * b[3]), "iscrowd": i32::from(rng.random_range(0..50) == 0)}));
            truths.push((b, cat));
        }
        for _ in 0..DETS_PER_IMAGE {
            let (b, cat) =
                if !truths.is_empty() && rng.random_range(0..2) == 0 {
                    let (t, c) = truths[rng.random_range(0..truths.len())];
                    let jitter: [f64; 4] = std::array::from_fn(|i| {
                        if i < 2 { rng.random_range(-0.2..0.2) } else { rng.random_range(0.8..1.25) }
                    });
                    let b = [
                        r1(t[0] + t[2] * jitter[0]),
                        r1(t[1] + t[3] * jitter[1]),
                        r1(t[2] * jitter[2]),
                        r1(t[3] * jitter[3]),
                    ];
                    (b, if rng.random_range(0..10) == 0 { rng.random_range(1..=N_CATEGORIES) } else { c })
                } else {
                    let (w, h) = (rng.random_range(4.0..200.0f64), rng.random_range(4.0..200.0f64));
                    (
                        [r1(rng.random_range(0.0..440.0)), r1(rng.random_range(0.0..280.0)), r1(w), r1(h)],
                        rng.random_range(1..=N_CATEGORIES),
                    )
                };
            let score = (rng.random_range(0.0..1.0f64) * 1000.0).round() / 1000.0;
            results.push(json!({"image_id": img, "category_id": cat, "bbox": b, "score": score}));
        }
    }
    let categories: Vec<_> = (1..=N_CATEGORIES).map(|c| json!({"id": c, "name": format!("c{c}")})).collect();
    let gt = dir.join("bench.gt.json");
    let res = dir.join("bench.results.json");
    let doc = json!({"info": {}, "images": images, "annotations": annotations, "categories": categories});
    std::fs::write(&gt, serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::write(&res, serde_json::to_vec(&results).unwrap()).unwrap();
    (gt, res)
}

/// Total seconds, seconds spent reading JSON, and the 12 numbers.
fn ours(gt: &Path, res: &Path) -> (f64, f64, [f64; 12]) {
    let t = Instant::now();
    let dataset = Dataset::from_coco_json(gt).unwrap();
    let preds = Predictions::from_coco_json(res, &dataset).unwrap();
    let read = t.elapsed().as_secs_f64();
    let ev = coco::evaluate(&dataset, &preds, &CocoParams::default()).unwrap();
    (t.elapsed().as_secs_f64(), read, ev.stats)
}

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("coco_eval_bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (gt, res) = write_inputs(&dir);
    println!(
        "coco_eval: {N_IMAGES} scans x {DETS_PER_IMAGE} detections, {N_CATEGORIES} classes, rayon threads {}",
        rayon::current_num_threads()
    );
    let mut times: Vec<f64> = Vec::new();
    let mut reads: Vec<f64> = Vec::new();
    let mut stats = [0.0; 12];
    for _ in 0..RUNS {
        let (t, r, s) = ours(&gt, &res);
        times.push(t);
        reads.push(r);
        stats = s;
    }
    reads.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let median = times[RUNS / 2];
    println!(
        "nii-atr     : median {:.3} s over {RUNS} runs (min {:.3}, max {:.3}; reading JSON {:.3} s), AP {:.4}",
        median,
        times[0],
        times[RUNS - 1],
        reads[RUNS / 2],
        stats[0]
    );
    let python = Command::new("python3").args(["-c", PYCOCOTOOLS]).arg(&gt).arg(&res).output();
    match python {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pycocotools output");
            let secs = v["seconds"].as_f64().unwrap();
            let theirs: Vec<f64> = v["stats"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let max_diff = stats.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            println!(
                "pycocotools : {secs:.3} s, AP {:.4}; largest difference of the 12 numbers {max_diff:.1e}",
                theirs[0]
            );
            let ratio = secs / median;
            println!(
                "ratio       : nii-atr is {ratio:.1}x faster than pycocotools (target >= 20x: {})",
                if ratio >= 20.0 { "met" } else { "NOT met" }
            );
            assert!(max_diff < 1e-9, "numbers differ from pycocotools by {max_diff}");
        }
        Ok(out) => println!(
            "pycocotools : skipped, `python3 -c 'import pycocotools'` failed: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("pycocotools : skipped, python3 could not start: {e}"),
    }
}
