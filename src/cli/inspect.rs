//! `nii-atr inspect`: scans or folders of scans through the pipeline, a report, an overlay
//! and COCO results per scan, and a closing table ranked by risk.

use indicatif::{ProgressBar, ProgressStyle};
use nii_atr_core::inspect::InspectError;
use nii_atr_core::inspect::findings::{Decision, Inspection};
use nii_atr_core::inspect::output::{CocoResult, coco_results, write_overlay, write_report};
use nii_atr_core::inspect::run::Pipeline;
use nii_atr_core::scan::Limits;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Scans (descriptor .json, multi-page 16-bit .tif/.tiff, or 8-bit .png/.jpg) or folders:
    /// a folder with `scan.json` is one scan, a dataset split contributes each case folder's
    /// `scan.json`, any other folder its descriptors, else its image files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Pipeline config: models, tiling, merge and the decision rule. By default the shipped
    /// models/pipeline.default.toml, looked for in the current folder, then beside the
    /// installation (`<prefix>/share/nii-atr/`, or beside the executable), then in the checkout
    /// the binary was built from.
    #[arg(short, long, env = "NII_ATR_PIPELINE", default_value_os_t = super::default_config())]
    pub config: PathBuf,
    /// Output folder: `<scan>.inspection.json`, `<scan>.overlay.png` per scan, plus
    /// `coco_results.json` and `summary.json` for the whole run.
    #[arg(short, long, default_value = "out/inspect")]
    pub out: PathBuf,
    /// Skip the overlay PNGs: faster for evaluation runs over many scans.
    #[arg(long)]
    pub no_overlay: bool,
    /// Score threshold (0..=1) of every spec-less model (one without a spec file), replacing
    /// the inferred 0.25 and the config's `score_threshold`: lower finds more, with more false
    /// alarms. Models with a spec keep their spec's thresholds.
    #[arg(long, value_name = "SCORE")]
    pub score_threshold: Option<f32>,
    /// NMS IoU threshold (0..=1) of every spec-less model, replacing the inferred one (0.7 for
    /// Ultralytics exports, else 0.45) and the config's `iou_threshold`: lower removes more
    /// overlapping boxes, and with them neighbouring objects.
    #[arg(long, value_name = "IOU")]
    pub iou_threshold: Option<f32>,
}

/// One row of the closing table / `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub scan: String,
    /// The COCO `image_id` of this scan's entries in `coco_results.json` (input order, from 1).
    pub image_id: u64,
    pub decision: Option<Decision>,
    pub risk_score: f32,
    pub findings: usize,
    pub top_finding: Option<String>,
    pub total_ms: f64,
    /// Why the scan could not be inspected.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InspectSummary {
    pub schema_version: u32,
    pub config: String,
    pub scans: Vec<ScanSummary>,
    pub failed: usize,
    pub wall_s: f64,
}

const IMAGE_EXTENSIONS: [&str; 5] = ["tif", "tiff", "png", "jpg", "jpeg"];

fn ext_of(p: &Path) -> String {
    p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Whether a `.json` file is a scan descriptor (and not, say, COCO annotations beside scans):
/// a regular file of at most `MAX_DESCRIPTOR_BYTES` (`read_scan` refuses larger ones) whose
/// top-level object has `schema_version` and `planes`. It is read as a stream, values skipped
/// unparsed, and only until both keys are seen: a large COCO file beside the scans costs a read
/// buffer, not its size, and a file over the cap is not read at all.
fn is_descriptor(p: &Path) -> bool {
    use std::io::Read as _;
    let cap = nii_atr_core::scan::MAX_DESCRIPTOR_BYTES;
    let Ok((file, _)) = nii_atr_core::io::open_capped(p, cap) else { return false };
    let mut seen = [false; 2];
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file.take(cap)));
    // The stream is left unfinished on purpose once both keys are seen: only `seen` counts.
    let _ = serde::de::DeserializeSeed::deserialize(TopKeys(&mut seen), &mut de);
    seen == [true, true]
}

/// Notes whether a JSON object has the keys `schema_version` and `planes`, skipping values.
struct TopKeys<'a>(&'a mut [bool; 2]);

impl<'de> serde::de::DeserializeSeed<'de> for TopKeys<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TopKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "schema_version" => self.0[0] = true,
                "planes" => self.0[1] = true,
                _ => {}
            }
            if *self.0 == [true, true] {
                return Ok(());
            }
            map.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Expands folders: a folder holding `scan.json` is that scan; otherwise its subfolders that
/// hold one (a dataset split), else its descriptor `.json` files, else its image files. Plane
/// images beside a descriptor are never scans of their own; only regular files count (a FIFO
/// would block the run). A folder with no scan in it is an error naming it.
pub fn collect_scans(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, InspectError> {
    use nii_atr_core::io::is_regular_file;
    let mut out = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            // Files are taken as given; a missing one becomes that scan's error, not the run's.
            out.push(input.clone());
            continue;
        }
        if is_regular_file(&input.join("scan.json")) {
            out.push(input.join("scan.json"));
            continue;
        }
        let rd = std::fs::read_dir(input).map_err(|source| InspectError::Io { path: input.clone(), error: source })?;
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        let cases: Vec<PathBuf> = entries.iter().map(|p| p.join("scan.json")).filter(|p| is_regular_file(p)).collect();
        if !cases.is_empty() {
            out.extend(cases);
            continue;
        }
        let files: Vec<&PathBuf> = entries.iter().filter(|p| is_regular_file(p)).collect();
        let descriptors: Vec<PathBuf> =
            files.iter().filter(|p| ext_of(p) == "json" && is_descriptor(p)).map(|p| (*p).clone()).collect();
        let found: Vec<PathBuf> = if descriptors.is_empty() {
            files.into_iter().filter(|p| IMAGE_EXTENSIONS.contains(&ext_of(p).as_str())).cloned().collect()
        } else {
            descriptors
        };
        if found.is_empty() {
            let reason = if entries.is_empty() {
                "the folder is empty".to_string()
            } else {
                format!(
                    "no scan.json, no case folders holding one, no scan descriptors (.json) and no images (.{})",
                    IMAGE_EXTENSIONS.join(", .")
                )
            };
            return Err(nii_atr_core::ScanError::NoScans { path: input.clone(), reason }.into());
        }
        out.extend(found);
    }
    Ok(out)
}

/// Output name of a scan: its file stem, or its folder's name for `<case>/scan.json`.
fn file_stem(p: &Path, index: usize) -> String {
    let mut stem = p.file_stem().map_or_else(|| format!("scan{index}"), |s| s.to_string_lossy().into_owned());
    if stem == "scan"
        && let Some(dir) = p.parent().and_then(|d| d.file_name())
    {
        stem = dir.to_string_lossy().into_owned();
    }
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// Inspects every scan, writes the outputs and prints the ranked table. A scan that cannot
/// be read is reported in the table and `summary.json`; a bad config or model stops the run.
/// ONNX Runtime is loaded on first use unless the caller loaded it (`--ort-library`).
pub fn run(args: &InspectArgs) -> Result<InspectSummary, InspectError> {
    let started = Instant::now();
    // Inputs first: a mistyped or empty folder fails before seconds of model loading.
    let scans = collect_scans(&args.inputs)?;
    let mut cfg = nii_atr_core::inspect::PipelineConfig::load(&args.config)?;
    cfg.set_spec_less_thresholds(args.score_threshold, args.iou_threshold);
    let pipeline = Pipeline::load(cfg)?;
    std::fs::create_dir_all(&args.out).map_err(|source| InspectError::Io { path: args.out.clone(), error: source })?;

    let bar = ProgressBar::new(scans.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scans {msg}")
            .expect("static template"),
    );
    let limits = Limits::default();
    let mut rows = Vec::with_capacity(scans.len());
    let mut coco: Vec<CocoResult> = Vec::new();
    let mut used_names = std::collections::HashSet::new();
    for (i, path) in scans.iter().enumerate() {
        let image_id = i as u64 + 1;
        bar.set_message(path.display().to_string());
        let mut name = file_stem(path, i);
        if !used_names.insert(name.clone()) {
            name = format!("{name}-{image_id}");
            used_names.insert(name.clone());
        }
        let result = pipeline.inspect_path(path, &limits).and_then(|(inspection, views)| {
            write_report(&inspection, &args.out.join(format!("{name}.inspection.json")))?;
            if !args.no_overlay {
                write_overlay(&views.pseudo_colour, &inspection, &args.out.join(format!("{name}.overlay.png")))?;
            }
            Ok(inspection)
        });
        rows.push(match result {
            Ok(ins) => {
                coco.extend(coco_results(&ins, image_id));
                summary_row(path, image_id, &ins)
            }
            Err(e) => {
                tracing::warn!(scan = %path.display(), error = %e, "scan not inspected");
                ScanSummary {
                    scan: path.display().to_string(),
                    image_id,
                    decision: None,
                    risk_score: 0.0,
                    findings: 0,
                    top_finding: None,
                    total_ms: 0.0,
                    error: Some(e.to_string()),
                }
            }
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let coco_path = args.out.join("coco_results.json");
    std::fs::write(&coco_path, serde_json::to_string(&coco).expect("serialisable"))
        .map_err(|source| InspectError::Io { path: coco_path, error: source })?;
    rows.sort_by(|a, b| b.risk_score.total_cmp(&a.risk_score).then(a.image_id.cmp(&b.image_id)));
    let summary = InspectSummary {
        schema_version: 1,
        config: args.config.display().to_string(),
        failed: rows.iter().filter(|r| r.error.is_some()).count(),
        scans: rows,
        wall_s: started.elapsed().as_secs_f64(),
    };
    let summary_path = args.out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary).expect("serialisable") + "\n")
        .map_err(|source| InspectError::Io { path: summary_path, error: source })?;
    print!("{}", table(&summary));
    println!("outputs in {}", args.out.display());
    Ok(summary)
}

fn summary_row(path: &Path, image_id: u64, ins: &Inspection) -> ScanSummary {
    ScanSummary {
        scan: path.display().to_string(),
        image_id,
        decision: Some(ins.decision),
        risk_score: ins.risk_score,
        findings: ins.findings.len(),
        top_finding: ins.findings.first().map(|f| format!("{} {:.2}", f.class_name, f.score)),
        total_ms: ins.timings.total_ms,
        error: None,
    }
}

/// The closing table, highest risk first.
pub fn table(s: &InspectSummary) -> String {
    let mut out = format!(
        "{:>4}  {:<8} {:>5} {:>8}  {:<20} {:>9}  scan\n",
        "rank", "decision", "risk", "findings", "top finding", "time ms"
    );
    for (i, r) in s.scans.iter().enumerate() {
        let decision = r.decision.map_or_else(|| "error".to_string(), |d| d.to_string());
        let top = r.top_finding.clone().unwrap_or_else(|| "-".into());
        out += &format!(
            "{:>4}  {:<8} {:>5.2} {:>8}  {:<20} {:>9.1}  {}\n",
            i + 1,
            decision,
            r.risk_score,
            r.findings,
            top,
            r.total_ms,
            r.scan
        );
        if let Some(e) = &r.error {
            out += &format!("      {e}\n");
        }
    }
    let count = |d: Decision| s.scans.iter().filter(|r| r.decision == Some(d)).count();
    out += &format!(
        "{} scans: {} alarm, {} review, {} clear, {} failed in {:.1} s\n",
        s.scans.len(),
        count(Decision::Alarm),
        count(Decision::Review),
        count(Decision::Clear),
        s.failed,
        s.wall_s
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_expand_to_scans_not_to_their_planes_or_labels() {
        let descriptor = r#"{"schema_version": 1, "scan_id": "s", "source": {"kind": "linac", "high_energy": 6},
            "pixel_pitch_mm": {"along": 5, "vertical": 5}, "planes": {"high": "high.tiff"}}"#;
        // A dataset split: case folders with scan.json, plus COCO annotations at the top.
        let split = tempfile::tempdir().unwrap();
        for case in ["b", "a"] {
            std::fs::create_dir(split.path().join(case)).unwrap();
            std::fs::write(split.path().join(case).join("scan.json"), descriptor).unwrap();
            std::fs::write(split.path().join(case).join("high.tiff"), b"x").unwrap();
        }
        std::fs::write(split.path().join("annotations.json"), b"{\"images\": []}").unwrap();
        let got = collect_scans(&[split.path().to_path_buf()]).unwrap();
        assert_eq!(got, vec![split.path().join("a/scan.json"), split.path().join("b/scan.json")]);
        // One case folder is one scan.
        assert_eq!(collect_scans(&[split.path().join("a")]).unwrap(), vec![split.path().join("a/scan.json")]);
        // Loose descriptors: only those that parse as descriptors.
        let loose = tempfile::tempdir().unwrap();
        std::fs::write(loose.path().join("x.json"), descriptor).unwrap();
        std::fs::write(loose.path().join("labels.json"), b"[]").unwrap();
        std::fs::write(loose.path().join("x_high.tiff"), b"x").unwrap();
        assert_eq!(collect_scans(&[loose.path().to_path_buf()]).unwrap(), vec![loose.path().join("x.json")]);
        // Rendered images only.
        let images = tempfile::tempdir().unwrap();
        for f in ["x.png", "y.TIFF", "z.txt"] {
            std::fs::write(images.path().join(f), b"x").unwrap();
        }
        assert_eq!(collect_scans(&[images.path().to_path_buf()]).unwrap().len(), 2);
        // A descriptor's keys may come after large values; a JSON list or a large COCO object
        // is not one, and a file over the cap is not read.
        let sniff = tempfile::tempdir().unwrap();
        let late = format!(
            r#"{{"calibration": {{"dark": {{"high": [{}1]}}}}, "schema_version": 1, "planes": {{}}}}"#,
            "1,".repeat(50_000)
        );
        std::fs::write(sniff.path().join("late.json"), late).unwrap();
        std::fs::write(sniff.path().join("coco.json"), format!(r#"{{"images": [{}{{}}]}}"#, "{},".repeat(100_000)))
            .unwrap();
        std::fs::write(sniff.path().join("list.json"), b"[{\"schema_version\": 1, \"planes\": {}}]").unwrap();
        let big = std::fs::File::create(sniff.path().join("big.json")).unwrap();
        big.set_len(nii_atr_core::scan::MAX_DESCRIPTOR_BYTES + 1).unwrap();
        assert_eq!(collect_scans(&[sniff.path().to_path_buf()]).unwrap(), vec![sniff.path().join("late.json")]);
    }

    #[test]
    fn folders_without_scans_are_errors_naming_the_folder() {
        let empty = tempfile::tempdir().unwrap();
        let e = collect_scans(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains(&empty.path().display().to_string()) && e.contains("the folder is empty"), "{e}");
        std::fs::write(empty.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(empty.path().join("labels.json"), b"[]").unwrap();
        let e = collect_scans(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("no scans found") && e.contains(".tif"), "{e}");
        // A FIFO named like an image is not a scan (reading it would block).
        #[cfg(unix)]
        {
            let fifos = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mkfifo").arg(fifos.path().join("x.png")).status().unwrap();
            assert!(status.success());
            assert!(collect_scans(&[fifos.path().to_path_buf()]).is_err());
        }
    }

    #[test]
    fn table_ranks_and_counts() {
        let row = |scan: &str, d: Option<Decision>, risk: f32| ScanSummary {
            scan: scan.into(),
            image_id: 1,
            decision: d,
            risk_score: risk,
            findings: 0,
            top_finding: None,
            total_ms: 1.0,
            error: d.is_none().then(|| "bad file".into()),
        };
        let s = InspectSummary {
            schema_version: 1,
            config: "c".into(),
            scans: vec![
                row("a", Some(Decision::Alarm), 0.9),
                row("b", Some(Decision::Clear), 0.0),
                row("c", None, 0.0),
            ],
            failed: 1,
            wall_s: 0.5,
        };
        let t = table(&s);
        assert!(t.contains("3 scans: 1 alarm, 0 review, 1 clear, 1 failed"), "{t}");
        assert!(t.contains("bad file"));
        assert!(t.find("alarm").unwrap() < t.find("clear").unwrap());
    }
}
