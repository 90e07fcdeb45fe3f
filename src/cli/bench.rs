//! `nii-atr bench`: speed figures as ratios to same-process baselines (see `super::bench_figures`).

use std::path::PathBuf;

use super::bench_figures::{self as bench, Ratio};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nii_atr_core::inspect::Pipeline;
use nii_atr_core::scan::{PlaneFormat, write_scan};

/// `nii-atr bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Pipeline config for the end-to-end figure (default: a YOLOv8n-cost detector, the model
    /// the < 10% overhead target is set against; `models/pipeline.default.toml` times the
    /// shipped models).
    #[arg(short, long, default_value = "benches/pipeline.bench.toml")]
    pub config: PathBuf,
    /// Scan for the end-to-end figure (default: the built-in 40 ft example, 680 x 2760 px).
    #[arg(long)]
    pub scan: Option<PathBuf>,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Folder for the example scan, the report and overlay the runs write, and `bench.json`.
    #[arg(short, long, default_value = "out/bench")]
    pub out: PathBuf,
}

fn line(r: &Ratio) -> String {
    format!(
        "  {:<44} {:>9.2} ms = {:>7.2} x {} ({:.2} ms){}",
        r.name,
        r.ms,
        r.ratio,
        r.baseline,
        r.baseline_ms,
        r.target.as_ref().map_or_else(String::new, |t| format!("  [target {t}]"))
    )
}

/// Measures and prints every figure with its ratio to the same-run baseline.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let pipeline =
        Pipeline::from_path(&args.config).with_context(|| format!("loading pipeline {}", args.config.display()))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let scan_path = match &args.scan {
        Some(p) => p.clone(),
        None => write_scan(&nii_atr_core::example::forty_foot_scan(), &args.out, PlaneFormat::Tiff)
            .context("writing the 40 ft example scan")?,
    };
    let bar = ProgressBar::new((runs * 6 + 1) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("end to end");
    let e2e = bench::end_to_end(&pipeline, &scan_path, &args.out, runs, || bar.inc(1))
        .with_context(|| format!("inspecting {}", scan_path.display()))?;
    bar.set_message("merge and decode");
    let mut ratios = bench::merge_and_decode(runs * 3);
    bar.inc(runs as u64);
    bar.set_message("tile tensors");
    ratios.push(bench::tile_tensors(runs).context("tile tensors")?);
    bar.inc(runs as u64);
    bar.finish_and_clear();

    let models: Vec<String> = pipeline.detectors().map(|d| d.spec().name.clone()).collect();
    let mut overhead = Ratio {
        name: "everything but the model".into(),
        ms: e2e.non_model_ms,
        baseline: "ONNX Runtime run".into(),
        baseline_ms: e2e.ort_run_ms,
        ratio: e2e.overhead,
        target: Some("< 0.10".into()),
    };
    overhead.name = format!("{} (models: {})", overhead.name, models.join(", "));
    println!(
        "end to end on {} ({} x {} px, {} tiles, {} skipped as air, {} model runs), medians of {runs} runs:",
        args.scan.as_ref().map_or_else(|| "the 40 ft example".to_string(), |p| p.display().to_string()),
        e2e.rows,
        e2e.columns,
        e2e.tiles,
        e2e.tiles_skipped_air,
        e2e.model_runs
    );
    println!("  wall (read, inspect, report + overlay) {:>9.1} ms", e2e.wall_ms);
    println!("  ONNX Runtime run                       {:>9.1} ms", e2e.ort_run_ms);
    println!(
        "  read {:.1}, calibrate+materials {:.1}, render {:.1}, tensors not hidden {:.1}, decode {:.1}, \
         merge {:.1}, manifest checks {:.1}, report+overlay {:.1} ms",
        e2e.read_ms,
        e2e.calibrate_ms,
        e2e.render_ms,
        e2e.tensors_ms,
        e2e.decode_ms,
        e2e.merge_ms,
        e2e.verify_ms,
        e2e.outputs_ms
    );
    println!("{}", line(&overhead));
    println!(
        "  (everything but the model per run: quartiles {:.1} / {:.1} ms)",
        e2e.non_model_quartiles_ms[0], e2e.non_model_quartiles_ms[1]
    );
    println!("\ncomponents (median of {} runs, same process):", runs * 3);
    for r in &ratios {
        println!("{}", line(r));
    }
    {
        let path = &args.out.join("bench.json");
        let json = serde_json::json!({"end_to_end": e2e, "overhead": overhead, "components": ratios,
            "threads": rayon::current_num_threads()});
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "summary: non-model time is {:.1}% of model time (target < 10%) on {} threads",
        100.0 * e2e.overhead,
        rayon::current_num_threads()
    );
    Ok(())
}
