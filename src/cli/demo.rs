//! `nii-atr demo`: the main job on generated data, so a newcomer sees real output.

use std::path::{Path, PathBuf};

use super::synth::SynthArgs;
use anyhow::Context;
use nii_atr_core::preprocess::render::{WindowLevel, render_grey, render_material, save_png};
use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::{Limits, PlaneFormat, read_scan};
use nii_atr_core::truth::{MismatchKind, read_truth};

/// `nii-atr demo` arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Generated dataset to show; made from `--recipe` if missing.
    #[arg(long, default_value = "datasets/generated/demo")]
    pub dataset: PathBuf,
    /// Recipe used when the dataset is missing: by default scans of the scanner the shipped
    /// models were trained for (5 mm pitch, 6/4 MV linac).
    #[arg(long, default_value = "datasets/recipes/demo.toml")]
    pub recipe: PathBuf,
    /// Pipeline config for the inspection step.
    #[arg(long, env = "NII_ATR_PIPELINE", default_value_os_t = super::default_config())]
    pub config: PathBuf,
    /// Folder for the demo's pictures and inspection outputs.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
}

/// Generates the demo dataset if missing, shows one scan's `info`, writes every scan's views,
/// inspects them and sets the decisions beside what the generator hid.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if !args.dataset.join("summary.json").is_file() {
        println!(
            "== generating the demo dataset: nii-atr synth --recipe {} --out {}",
            args.recipe.display(),
            args.dataset.display()
        );
        super::synth::run(&SynthArgs {
            recipe: args.recipe.clone(),
            out: args.dataset.clone(),
            cases: None,
            seed: None,
            split: Vec::new(),
            catalogue: None,
            plane_format: PlaneFormat::Png,
            no_preview: false,
            threads: None,
        })?;
    } else {
        println!("== using the generated dataset in {}", args.dataset.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let cases = case_folders(&args.dataset.join("test"))?;
    anyhow::ensure!(!cases.is_empty(), "{}: no cases in the test split", args.dataset.display());
    // One scan's `info` in full; the views of every scan as files.
    let first = cases[0].join("scan.json");
    println!("\n== nii-atr info {}", first.display());
    print!("{}", super::info::gather(&first, None, &super::LimitArgs::default())?.to_text());
    println!("\n== nii-atr render: material pseudo-colour and high-energy grey views");
    for case in &cases {
        let scan = read_scan(&case.join("scan.json"), &Limits::default())?;
        let pre = preprocess(&scan, &PreprocessOptions::default())?;
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let material = args.out.join(format!("{name}-material.png"));
        save_png(&render_material(&pre.attenuation, &pre.materials, &Default::default()), &material)?;
        let high = args.out.join(format!("{name}-high.png"));
        save_png(&render_grey(&pre.attenuation.high, WindowLevel::auto(&pre.attenuation.high)), &high)?;
        println!("{}, {}", material.display(), high.display());
    }
    let inspect_out = args.out.join("inspect");
    println!(
        "\n== nii-atr inspect {} --config {} -o {}",
        args.dataset.join("test").display(),
        args.config.display(),
        inspect_out.display()
    );
    let summary = super::inspect::run(&super::inspect::InspectArgs {
        inputs: vec![args.dataset.join("test")],
        config: args.config.clone(),
        out: inspect_out.clone(),
        no_overlay: false,
        score_threshold: None,
        iou_threshold: None,
    })?;
    print!("{}", truth_table(&args.dataset.join("test"), &summary)?);
    println!(
        "\nsummary: {} generated test scans shown and inspected; views in {}, reports and overlays in {}",
        cases.len(),
        args.out.display(),
        inspect_out.display()
    );
    Ok(())
}

fn case_folders(split: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(split)
        .with_context(|| format!("{}: cannot list", split.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("scan.json").is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// What the generator really put in each scan beside the decision, so the decisions can be
/// read against the truth (these scans are generated, so it is known).
fn truth_table(split: &Path, summary: &super::inspect::InspectSummary) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let truth = read_truth(split)?;
    let mut out = String::from("\nwhat the generator hid in each scan (truth.jsonl), by the decision above:\n");
    for row in &summary.scans {
        let Some(t) = truth.iter().find(|t| Path::new(&row.scan).ends_with(&t.scan)) else { continue };
        let mut threats: Vec<&str> = t.threats.iter().map(|x| x.category.as_str()).collect();
        threats.sort_unstable();
        threats.dedup();
        let hidden = if threats.is_empty() { "no threat".to_string() } else { threats.join(", ") };
        let manifest = match t.mismatch.kind {
            MismatchKind::None => "manifest true".to_string(),
            kind => format!("manifest: {}", serde_json::to_value(kind)?.as_str().unwrap_or("mismatch")),
        };
        let decision = row.decision.map_or_else(|| "failed".to_string(), |d| d.to_string());
        let _ = writeln!(out, "  {:<7} {:<18} {hidden}; {manifest}", decision, t.case_id);
    }
    Ok(out)
}
