//! `nii-atr demo`: the main job on generated data, so a newcomer sees real output.

use std::path::{Path, PathBuf};

use super::synth::SynthArgs;
use anyhow::Context;
use nii_atr_core::preprocess::render::{WindowLevel, render_grey, render_material, save_png};
use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::{Limits, PlaneFormat, read_scan};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Generated dataset to show; made from `datasets/recipes/tiny.toml` if missing.
    #[arg(long, default_value = "datasets/generated/tiny")]
    pub dataset: PathBuf,
    /// Recipe used when the dataset is missing.
    #[arg(long, default_value = "datasets/recipes/tiny.toml")]
    pub recipe: PathBuf,
    /// Pipeline config for the inspection step.
    #[arg(long, default_value = "models/pipeline.default.toml")]
    pub config: PathBuf,
    /// Folder for the demo's pictures and inspection outputs.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if !args.dataset.join("summary.json").is_file() {
        println!(
            "== generating the tiny dataset: nii-atr synth --recipe {} --out {}",
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
    for case in &cases {
        let descriptor = case.join("scan.json");
        println!("\n== nii-atr info {}", descriptor.display());
        let info = super::info::gather(&descriptor, None, &super::LimitArgs::default())?;
        print!("{}", info.to_text());

        let scan = read_scan(&descriptor, &Limits::default())?;
        let pre = preprocess(&scan, &PreprocessOptions::default())?;
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let material = args.out.join(format!("{name}-material.png"));
        save_png(&render_material(&pre.attenuation, &pre.materials, &Default::default()), &material)?;
        let high = args.out.join(format!("{name}-high.png"));
        save_png(&render_grey(&pre.attenuation.high, WindowLevel::auto(&pre.attenuation.high)), &high)?;
        println!("== nii-atr render: {}, {}", material.display(), high.display());
    }
    let inspect_out = args.out.join("inspect");
    println!(
        "\n== nii-atr inspect {} --config {} -o {}",
        args.dataset.join("test").display(),
        args.config.display(),
        inspect_out.display()
    );
    super::inspect::run(&super::inspect::InspectArgs {
        inputs: vec![args.dataset.join("test")],
        config: args.config.clone(),
        out: inspect_out.clone(),
        no_overlay: false,
    })?;
    println!(
        "\nsummary: {} test scans shown and inspected; labels in {}, case truth in {}",
        cases.len(),
        args.dataset.join("test/annotations.json").display(),
        args.dataset.join("test/truth.jsonl").display()
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
