//! `nii-atr eval` end to end on the committed fixtures: report files, numbers equal to the
//! pycocotools reference, and `eval compare` with its paired bootstrap.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Parser;
use nii_atr_cli::cli::eval::{self as cli, EvalArgs, EvalCommand};
use nii_atr_eval::report::read_report;
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    eval: EvalArgs,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coco").join(name)
}

fn parse(args: &[&str]) -> EvalArgs {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).expect("arguments parse").eval
}

fn reference_stats(set: &str, max_dets: &[u64]) -> Vec<f64> {
    let r: Value = serde_json::from_slice(&std::fs::read(fixture("reference.json")).unwrap()).unwrap();
    let case = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["set"] == set && c["max_dets"] == serde_json::json!(max_dets))
        .unwrap();
    case["stats"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn eval_writes_report_with_reference_numbers_and_compare_pairs_models() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_a = tmp.path().join("a");
    let gt = fixture("mixed.gt.json");
    let preds = fixture("mixed.results.json");
    let args = parse(&[
        "--gt",
        gt.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--report",
        dir_a.to_str().unwrap(),
        "--bootstrap",
        "40",
        "--name",
        "full",
    ]);
    cli::run(&args).unwrap();
    for f in ["report.json", "summary.md", "report.html"] {
        assert!(dir_a.join(f).is_file(), "{f} missing");
    }
    let a = read_report(&dir_a).unwrap();
    assert_eq!(a.schema_version, 1);
    let want = reference_stats("mixed", &[1, 10, 100]);
    let s = &a.coco.stats;
    for (ours, theirs) in [s.ap, s.ap50, s.ap75, s.ar_1, s.ar_10, s.ar_100]
        .iter()
        .zip([want[0], want[1], want[2], want[6], want[7], want[8]])
    {
        assert!((ours - theirs).abs() < 1e-9, "{ours} vs pycocotools {theirs}");
    }
    // The mixed set has predictions of class 999, which it does not list.
    assert!(a.inputs.skipped_predictions_unknown_category > 0);
    let b = a.bootstrap.as_ref().unwrap();
    assert!(b.ap.low <= b.ap.estimate && b.ap.estimate <= b.ap.high);
    assert!(!a.atr.by_cnr.is_empty(), "mixed GT carries cnr");
    let html = std::fs::read_to_string(dir_a.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "PR, ROC, FROC, histogram");

    // A weaker model: drop every second prediction.
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    let half: Vec<&Value> = all.iter().step_by(2).collect();
    let half_path = tmp.path().join("half.json");
    std::fs::write(&half_path, serde_json::to_string(&half).unwrap()).unwrap();
    let dir_b = tmp.path().join("b");
    cli::run(&parse(&[
        "--gt",
        gt.to_str().unwrap(),
        "--predictions",
        half_path.to_str().unwrap(),
        "--report",
        dir_b.to_str().unwrap(),
        "--bootstrap",
        "0",
        "--name",
        "half",
    ]))
    .unwrap();
    let b = read_report(&dir_b).unwrap();
    assert!(b.bootstrap.is_none());

    let out = tmp.path().join("cmp");
    let args = parse(&[
        "compare",
        dir_a.to_str().unwrap(),
        dir_b.to_str().unwrap(),
        "--bootstrap",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    let Some(EvalCommand::Compare(c)) = &args.command else { panic!("compare not parsed") };
    let cmp = cli::compare(c).unwrap();
    assert!(out.join("comparison.json").is_file() && out.join("comparison.md").is_file());
    let ap = cmp.paired[0].differences.iter().find(|d| d.metric == "ap").unwrap();
    assert!((ap.difference.estimate - (b.coco.ap_at_max_dets - a.coco.ap_at_max_dets)).abs() < 1e-12);
    assert!(ap.difference.estimate < 0.0, "half the predictions must lose AP");
    assert!(ap.significant && ap.p_candidate_better < 0.05);
    // The difficulty rows come from the re-scored reports: the same numbers as each report's.
    for (m, r) in cmp.models.iter().zip([&a, &b]) {
        let want: Vec<(Option<f64>, Option<f64>)> = r.atr.by_cnr.iter().map(|x| (x.ap50, x.scan_auc)).collect();
        let got: Vec<(Option<f64>, Option<f64>)> = m.by_difficulty.iter().map(|x| (x.ap50, x.scan_auc)).collect();
        assert_eq!(got, want, "{}", m.model);
        assert_eq!(want.iter().filter(|w| w.0.is_some()).count(), 2, "mixed GT's CNRs (0.3-9) fill hard and medium");
    }
    let md = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(md.contains("By difficulty") && md.contains("| hard [0, 3) |"), "{md}");
}

#[test]
fn same_seed_gives_same_intervals() {
    let gt = fixture("ties.gt.json");
    let preds = fixture("ties.results.json");
    let run = || {
        cli::score(
            &parse(&[
                "--gt",
                gt.to_str().unwrap(),
                "--predictions",
                preds.to_str().unwrap(),
                "--bootstrap",
                "30",
                "--seed",
                "9",
            ])
            .score,
        )
        .unwrap()
        .report
        .bootstrap
        .unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn yolo_ground_truth_and_predictions_score_like_coco() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels");
    let predictions = tmp.path().join("pred");
    std::fs::create_dir_all(&labels).unwrap();
    std::fs::create_dir_all(&predictions).unwrap();
    std::fs::write(tmp.path().join("images.txt"), "a.png 200 100\nb.png 100 100\n").unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n").unwrap();
    std::fs::write(predictions.join("a.txt"), "0 0.5 0.5 0.2 0.4 0.9\n1 0.8 0.8 0.1 0.1 0.8\n").unwrap();
    std::fs::write(predictions.join("b.txt"), "1 0.5 0.5 0.2 0.2 0.3\n").unwrap();
    let ev = cli::score(
        &parse(&[
            "--yolo-images",
            tmp.path().join("images.txt").to_str().unwrap(),
            "--yolo-labels",
            labels.to_str().unwrap(),
            "--predictions",
            predictions.to_str().unwrap(),
            "--bootstrap",
            "0",
        ])
        .score,
    )
    .unwrap();
    let per_class = &ev.report.coco.per_category;
    // Class 0 found exactly; class 1's only truth missed (its detections lie elsewhere).
    // 1 / (1 + eps): pycocotools' precision carries np.spacing(1) in the denominator.
    assert!((per_class[0].ap - 1.0).abs() < 1e-15);
    assert_eq!(per_class[1].ap, 0.0);
    assert_eq!(ev.report.inputs.n_annotations, 2);
    assert_eq!(ev.report.inputs.n_predictions, 3);
}

#[test]
fn binary_scores_files_and_reports_bad_input_in_one_line() {
    let bin = env!("CARGO_BIN_EXE_nii-atr");
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args(["eval", "--bootstrap", "20", "--gt"])
        .arg(fixture("ties.gt.json"))
        .arg("--predictions")
        .arg(fixture("ties.results.json"))
        .arg("--report")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("AP50"));
    assert!(tmp.path().join("report.html").is_file());
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"[{"image_id":1,"category_id":1,"bbox":[0,0,-4,4],"score":0.5}]"#).unwrap();
    let out = std::process::Command::new(bin)
        .args(["eval", "--gt"])
        .arg(fixture("ties.gt.json"))
        .arg("--predictions")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("negative width or height"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn compare_refuses_reports_of_other_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for set in ["ties", "mixed"] {
        let dir = tmp.path().join(set);
        cli::run(&parse(&[
            "--gt",
            fixture(&format!("{set}.gt.json")).to_str().unwrap(),
            "--predictions",
            fixture(&format!("{set}.results.json")).to_str().unwrap(),
            "--report",
            dir.to_str().unwrap(),
            "--bootstrap",
            "0",
        ]))
        .unwrap();
        dirs.push(dir);
    }
    let args = parse(&["compare", dirs[0].to_str().unwrap(), dirs[1].to_str().unwrap()]);
    let Some(EvalCommand::Compare(c)) = &args.command else { panic!("compare not parsed") };
    match cli::compare(c) {
        Err(e) => assert!(e.to_string().contains("other ground truth"), "{e}"),
        Ok(_) => panic!("compared reports of different scans"),
    }
}

/// Runs the binary with `args`, its stdin an open pipe nobody writes to; fails the test if it
/// takes more than 30 s (a reader blocked on a FIFO or on stdin would never return).
fn run_bin<S: AsRef<OsStr>>(args: &[S]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_nii-atr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > 30 {
            child.kill().unwrap();
            panic!("nii-atr still running after 30 s: blocked on input?");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The binary fails with a message on stderr holding each of `want`, without a panic.
#[track_caller]
fn assert_fails<S: AsRef<OsStr>>(args: &[S], want: &[&str]) {
    let out = run_bin(args);
    let err = String::from_utf8_lossy(&out.stderr);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    assert!(!out.status.success(), "{shown:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!err.contains("panicked"), "{err}");
    for w in want {
        assert!(err.contains(w), "{shown:?}: `{w}` not in: {err}");
    }
}

/// An argument list from paths and words.
fn argv(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_stdin_are_refused_at_once_by_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    let (gt, res) = (fixture("ties.gt.json"), fixture("ties.results.json"));
    assert_fails(&argv(&[&"eval", &"--gt", &fifo, &"--predictions", &res]), &["not a regular file (a FIFO)", "fifo"]);
    assert_fails(&argv(&[&"eval", &"--gt", &gt, &"--predictions", &fifo]), &["not a regular file (a FIFO)"]);
    for dev in ["/dev/null", "/dev/stdin"] {
        assert_fails(&argv(&[&"eval", &"--gt", &dev, &"--predictions", &res]), &["not a regular file", dev]);
    }
    // YOLO: the image list, the names file, a label file.
    let labels = tmp.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.2 0.2\n").unwrap();
    let list = tmp.path().join("images.txt");
    std::fs::write(&list, "a.png 100 100\nb.png 100 100\n").unwrap();
    let yolo = |images: &Path| {
        argv(&[&"eval", &"--yolo-images", &images, &"--yolo-labels", &labels, &"--predictions", &labels])
    };
    assert_fails(&yolo(&fifo), &["not a regular file", "fifo"]);
    let mut with_names = yolo(&list);
    with_names.extend(argv(&[&"--yolo-names", &fifo]));
    assert_fails(&with_names, &["not a regular file", "fifo"]);
    mkfifo(&labels.join("b.txt"));
    assert_fails(&yolo(&list), &["not a regular file", "b.txt"]);
    // eval compare: a report given as a FIFO.
    assert_fails(&argv(&[&"eval", &"compare", &fifo, &fifo]), &["not a regular file", "fifo"]);
}

#[test]
fn empty_or_mistyped_folders_fail_naming_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (empty, missing, labels) = (tmp.path().join("empty"), tmp.path().join("missing"), tmp.path().join("labels"));
    std::fs::create_dir(&empty).unwrap();
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.5 0.5 0.2 0.2\n").unwrap();
    let list = tmp.path().join("images.txt");
    std::fs::write(&list, "a.png 100 100\n").unwrap();
    let (e, m) = (empty.display().to_string(), missing.display().to_string());
    let yolo = |images: &Path, labels: &Path, preds: &Path| {
        argv(&[&"eval", &"--yolo-images", &images, &"--yolo-labels", &labels, &"--predictions", &preds])
    };
    // A label folder without label files, or not there at all, or a file.
    assert_fails(&yolo(&list, &empty, &labels), &[&e, "no YOLO labels file for any of the 1 images"]);
    assert_fails(&yolo(&list, &missing, &labels), &[&m, "No such file"]);
    assert_fails(&yolo(&list, &list, &labels), &["images.txt", "not a folder"]);
    // A predictions folder without prediction files.
    assert_fails(&yolo(&list, &labels, &empty), &[&e, "no YOLO predictions file", "`[]`"]);
    // An image list or a COCO ground truth with nothing in it.
    let none = tmp.path().join("none.txt");
    std::fs::write(&none, "\n").unwrap();
    assert_fails(&yolo(&none, &labels, &labels), &["none.txt", "lists no images"]);
    let gt = tmp.path().join("gt.json");
    std::fs::write(&gt, r#"{"images": [], "categories": [{"id": 1}]}"#).unwrap();
    let res = tmp.path().join("res.json");
    std::fs::write(&res, "[]").unwrap();
    assert_fails(&argv(&[&"eval", &"--gt", &gt, &"--predictions", &res]), &["gt.json", "lists no images"]);
}

#[test]
fn huge_results_and_oversized_files_are_typed_errors_not_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    let (gt, res) = (tmp.path().join("gt.json"), tmp.path().join("res.json"));
    std::fs::write(&res, "[]").unwrap();
    // 100,000 categories in 1.5 MB: the dense tables would ask for 9.7 GB.
    let cats: Vec<String> = (1..=100_000).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
    std::fs::write(&gt, format!(r#"{{"images":[{{"id":1}}],"categories":[{}]}}"#, cats.join(","))).unwrap();
    let args = argv(&[&"eval", &"--gt", &gt, &"--predictions", &res]);
    assert_fails(&args, &["gt.json", "100000 categories", "50000"]);
    // 300 labelled categories scored at 1000 maxDets: a 9.8 GB precision table.
    let cats: Vec<String> = (1..=300).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
    let anns: Vec<String> =
        (1..=300).map(|i| format!(r#"{{"id":{i},"image_id":1,"category_id":{i},"bbox":[0,0,5,5]}}"#)).collect();
    let text =
        format!(r#"{{"images":[{{"id":1}}],"categories":[{}],"annotations":[{}]}}"#, cats.join(","), anns.join(","));
    std::fs::write(&gt, text).unwrap();
    let max_dets = (1..=1000).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let mut many = args.clone();
    many.extend(argv(&[&"--max-dets", &max_dets]));
    assert_fails(&many, &["gt.json", "300 categories over 1 scans", "precision and recall tables", "1000 maxDets"]);
    // A ground truth over 2 GiB, as a sparse file: refused by its size, never read.
    std::fs::File::create(&gt).unwrap().set_len(nii_atr_eval::dataset::MAX_INPUT_BYTES + 1).unwrap();
    assert_fails(&args, &["gt.json", "2147483649 bytes", "2147483648"]);
}
