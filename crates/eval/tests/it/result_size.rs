//! Result sizes follow what is used, not what is listed: a ground truth listing 20,000
//! categories of which a handful are labelled is scored in a few tens of MB (it took 2 GB when
//! every category had its precision table), and the peak memory is measured in a child process.

use nii_atr_eval::dataset::{Category, CocoDetection, GroundTruth, ImageInfo};
use nii_atr_eval::{Dataset, EvalConfig, Predictions, evaluate};

/// Set in the child process that does the work and reports its peak memory.
const CHILD: &str = "NII_ATR_EVAL_MEMORY_CHILD";

/// `n_categories` categories (ids 1..=n) over 10 scans; the first 5 categories have one truth
/// each and a matching and a stray detection, the rest nothing.
pub fn sparse_categories(n_categories: usize) -> (Dataset, Predictions) {
    let images: Vec<ImageInfo> =
        (1..=10).map(|id| ImageInfo { id, file_name: None, width: Some(100.0), height: Some(100.0) }).collect();
    let categories: Vec<Category> =
        (1..=n_categories as i64).map(|id| Category { id, name: format!("class{id}") }).collect();
    let truth = |id: i64| GroundTruth {
        id,
        image_id: id,
        category_id: id,
        bbox: [10.0, 10.0, 20.0, 20.0],
        area: 400.0,
        iscrowd: false,
        cnr: Some(id as f64),
    };
    let annotations: Vec<GroundTruth> = (1..=5).map(truth).collect();
    let dataset = Dataset::new("sparse.json".into(), images, categories, annotations).unwrap();
    let detections = (1..=5)
        .flat_map(|id| {
            [
                CocoDetection { image_id: id, category_id: id, bbox: [11.0, 10.0, 20.0, 20.0], score: 0.9 },
                CocoDetection { image_id: id + 5, category_id: id, bbox: [50.0, 50.0, 10.0, 10.0], score: 0.4 },
            ]
        })
        .collect();
    let predictions = Predictions::new("sparse.results.json".into(), detections, &dataset).unwrap();
    (dataset, predictions)
}

/// Peak resident memory of this process (`VmHWM`), kB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn twenty_thousand_categories_with_a_few_boxes_cost_little_memory() {
    if std::env::var_os(CHILD).is_some() {
        let (dataset, predictions) = sparse_categories(20_000);
        let config = EvalConfig {
            bootstrap: Some(nii_atr_eval::bootstrap::BootstrapConfig { resamples: 50, ..Default::default() }),
            ..EvalConfig::default()
        };
        let ev = evaluate(&dataset, &predictions, &config, "sparse").unwrap();
        let out = tempfile::tempdir().unwrap();
        nii_atr_eval::report::write_report(&ev, out.path()).unwrap();
        let per_class = &ev.report.coco.per_category;
        assert_eq!(per_class.len(), 20_000);
        // The labelled classes are scored; the others are -1 throughout, as pycocotools has them.
        assert!(per_class[..5].iter().all(|c| c.ap50 > 0.99), "{:?}", &per_class[..5]);
        assert!(per_class[5..].iter().all(|c| c.ap == -1.0 && c.pr_curve_iou50.iter().all(|&p| p == -1.0)));
        assert!(ev.report.coco.stats.ap50 > 0.99);
        println!("peak_rss_kb={}", peak_rss_kb());
        return;
    }
    let name = "result_size::twenty_thousand_categories_with_a_few_boxes_cost_little_memory";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let kb: u64 = stdout
        .lines()
        .find_map(|l| l.split("peak_rss_kb=").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stdout}"));
    eprintln!("20,000 categories, 5 labelled: peak resident memory {} MB", kb / 1024);
    // The dense tables alone were 1.94 GB (20,000 x 4 x 3 x 10 x 101 f64).
    assert!(kb < 300 * 1024, "peak {} MB", kb / 1024);
}
