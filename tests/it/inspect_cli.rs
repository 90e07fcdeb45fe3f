//! `nii-atr inspect`'s outputs on scans of the toy fixture models: reports, overlays, COCO
//! results and the ranked summary, with a failed scan among them.

use std::path::{Path, PathBuf};

use nii_atr_cli::cli::inspect::{InspectArgs, run};
use nii_atr_core::example::block_scan;
use nii_atr_core::inspect::Decision;
use nii_atr_core::scan::{PlaneFormat, write_scan};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures")
}

#[test]
fn cli_writes_reports_overlays_coco_and_a_ranked_summary() {
    let dir = tempfile::tempdir().unwrap();
    let threat = write_scan(
        &block_scan(64, 400, &[(40, 16, 72, 32, 3.6), (256, 32, 272, 48, 3.6)]),
        &dir.path().join("threat"),
        PlaneFormat::Tiff,
    )
    .unwrap();
    let empty =
        write_scan(&block_scan(64, 200, &[(10, 10, 190, 50, 0.4)]), &dir.path().join("empty"), PlaneFormat::Png)
            .unwrap();
    let cfg_path = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "schema_version = 1\n[[models]]\npath = '{}'\nspec = '{}'\n[tiling]\noverlap_width_ratio = 0.25\noverlap_height_ratio = 0.25\n",
            fixtures().join("yolov8_toy.onnx").display(),
            fixtures().join("yolov8_toy_scan.toml").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let args = InspectArgs {
        inputs: vec![empty.clone(), threat.clone(), dir.path().join("missing.json")],
        config: cfg_path,
        out: out.clone(),
        no_overlay: false,
        score_threshold: None,
        iou_threshold: None,
    };
    let summary = run(&args).unwrap();
    assert_eq!(summary.failed, 1);
    // Ranked by risk: the threat scan first, the failed one last.
    assert_eq!(summary.scans[0].scan, threat.display().to_string());
    assert_eq!(summary.scans[0].decision, Some(Decision::Alarm));
    assert_eq!(summary.scans[1].decision, Some(Decision::Clear));
    assert!(summary.scans[2].error.as_deref().unwrap().contains("missing.json"));

    // Descriptors named scan.json take their folder's name.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("threat.inspection.json")).unwrap()).unwrap();
    assert_eq!(report["decision"], "alarm");
    assert_eq!(report["findings"].as_array().unwrap().len(), 2);
    assert!(out.join("empty.overlay.png").is_file() && out.join("threat.overlay.png").is_file());
    let overlay = image::open(out.join("threat.overlay.png")).unwrap().to_rgb8();
    assert_eq!(overlay.dimensions(), (400, 64));
    let coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("coco_results.json")).unwrap()).unwrap();
    let coco = coco.as_array().unwrap();
    assert_eq!(coco.len(), 2);
    assert!(coco.iter().all(|c| c["image_id"] == 2));
    assert_eq!(coco[0]["bbox"], serde_json::json!([40.0, 8.0, 32.0, 32.0]));
    assert!(out.join("summary.json").is_file());
}
