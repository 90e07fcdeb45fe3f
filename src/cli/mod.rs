//! Subcommands of the `nii-atr` binary.

pub mod bench;
pub mod bench_figures;
pub mod demo;
pub mod eval;
pub mod info;
pub mod inspect;
pub mod model;
pub mod progress;
pub mod render;
pub mod scan_info;
pub mod synth;
pub mod tiles;
pub mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use nii_atr_core::scan::Limits;

/// Automated threat recognition for dual-energy X-ray scans of cargo containers and trucks.
#[derive(Debug, Parser)]
#[command(name = "nii-atr", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// ONNX Runtime shared library to load; by default ORT_DYLIB_PATH, a library next to the
    /// executable, the copy `make setup` fetched, then an installed Python onnxruntime.
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, one module each.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a scan's size, energies, calibration, per-plane statistics and material fractions.
    Info(info::InfoArgs),
    /// Render a scan as PNG: material pseudo-colour or a grey view of one plane.
    Render(render::RenderArgs),
    /// Generate the demo dataset if missing, show `info` and rendered views of its test scans,
    /// and inspect them with the shipped pipeline.
    Demo(demo::DemoArgs),
    /// Run the pipeline's detectors over scans: findings, decision, report, overlay, COCO results.
    Inspect(inspect::InspectArgs),
    /// Print the spec nii-atr would use for a model (as TOML to save as its sidecar), where it
    /// comes from, and the model's inputs, outputs and metadata.
    Model(model::ModelArgs),
    /// Score detections against labelled scans (COCO metrics, Pd/Pfa, FROC, TIDE) and report.
    Eval(Box<eval::EvalArgs>),
    /// Generate labelled dual-energy cargo scans from a recipe (physics-based simulator).
    Synth(synth::SynthArgs),
    /// Export model-input tiles and clipped box labels from a labelled split, for training.
    Tiles(tiles::TilesArgs),
    /// Speed figures as ratios to same-process baselines: pipeline overhead over model time,
    /// merge, decode, tile tensors.
    Bench(bench::BenchArgs),
    /// Declared-cargo verification over a generated split (preprocess + physics checks, no
    /// models), scored against its truth: mass error, per-check precision/recall, false flags.
    Verify(verify::VerifyArgs),
}

/// Size limits for reading scans; the defaults fit a 40 ft container at 1 mm pitch.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Refuse scans with more columns (scan lines) than this.
    #[arg(long, default_value_t = Limits::default().max_width, value_name = "COLUMNS")]
    pub max_width: u32,
    /// Refuse scans with more rows (detector elements) than this.
    #[arg(long, default_value_t = Limits::default().max_height, value_name = "ROWS")]
    pub max_height: u32,
    /// Refuse scans with more pixels per plane than this.
    #[arg(long, default_value_t = Limits::default().max_pixels, value_name = "PIXELS")]
    pub max_pixels: u64,
}

impl Default for LimitArgs {
    fn default() -> Self {
        let l = Limits::default();
        Self { max_width: l.max_width, max_height: l.max_height, max_pixels: l.max_pixels }
    }
}

impl LimitArgs {
    /// The limits the flags give.
    pub fn limits(&self) -> Limits {
        Limits { max_width: self.max_width, max_height: self.max_height, max_pixels: self.max_pixels }
    }
}

/// Logs to stderr: warnings by default, `-v` info, `-vv` debug; ONNX Runtime's own messages
/// stay at warnings unless `RUST_LOG` asks for them (e.g. `RUST_LOG=info,ort=info`), since at
/// info it writes several lines per session. Colour only when stderr is a terminal.
pub fn init_tracing(verbose: u8) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(verbose)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The log filter of `-v` count `verbose` when `RUST_LOG` is unset.
pub fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info,ort=warn",
        _ => "debug,ort=warn",
    }
}

/// An error as one line, `outer: cause: root cause`, each cause once: many errors name their
/// source in their own message as well as returning it, and printing the chain would repeat it.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// The shipped pipeline config's path relative to a checkout or an installation prefix.
const DEFAULT_CONFIG: &str = "models/pipeline.default.toml";

/// Where the default pipeline config is looked for, in order: the current folder (a checkout),
/// an installation prefix (`<prefix>/bin/nii-atr` with `<prefix>/share/nii-atr/models/`), an
/// unpacked archive (`models/` beside the executable), and the checkout this binary was
/// built from.
pub fn config_candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(DEFAULT_CONFIG)];
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(std::path::Path::to_path_buf)) {
        out.push(dir.join("../share/nii-atr").join(DEFAULT_CONFIG));
        out.push(dir.join(DEFAULT_CONFIG));
    }
    out.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG));
    out
}

/// The default pipeline config: the first of [`config_candidates`] that is a file, else the
/// first candidate (so that [`check_config`] can say where it looked).
pub fn default_config() -> PathBuf {
    let candidates = config_candidates();
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| candidates[0].clone())
}

/// Fails with the places looked in when `config` is the default and none of them holds it.
pub fn check_config(config: &std::path::Path) -> anyhow::Result<()> {
    if config.is_file() || config != default_config() {
        return Ok(());
    }
    let looked: Vec<String> = config_candidates().iter().map(|p| format!("  - {}", p.display())).collect();
    anyhow::bail!(
        "no pipeline config given and the default {DEFAULT_CONFIG} was not found; looked in:\n{}\n\
         fix: pass --config PATH (or set NII_ATR_PIPELINE), or run from the nii-atr checkout",
        looked.join("\n")
    )
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(a) => info::run(&a),
        Command::Render(a) => render::run(&a),
        Command::Demo(a) => {
            if let Some(lib) = &cli.ort_library {
                nii_atr_core::runtime::init(Some(lib))?;
            }
            check_config(&a.config)?;
            demo::run(&a)
        }
        Command::Inspect(a) => {
            if let Some(lib) = &cli.ort_library {
                nii_atr_core::runtime::init(Some(lib))?;
            }
            check_config(&a.config)?;
            let summary = inspect::run(&a)?;
            anyhow::ensure!(
                summary.failed == 0,
                "{} of {} scans could not be inspected",
                summary.failed,
                summary.scans.len()
            );
            Ok(())
        }
        Command::Model(a) => {
            if let Some(lib) = &cli.ort_library {
                nii_atr_core::runtime::init(Some(lib))?;
            }
            model::run(&a)
        }
        Command::Eval(a) => {
            if let Some(lib) = &cli.ort_library {
                nii_atr_core::runtime::init(Some(lib))?;
            }
            Ok(eval::run(&a)?)
        }
        Command::Bench(a) => {
            if let Some(lib) = &cli.ort_library {
                nii_atr_core::runtime::init(Some(lib))?;
            }
            bench::run(&a)
        }
        Command::Synth(a) => synth::run(&a).map(|_| ()).map_err(Into::into),
        Command::Verify(a) => verify::run(&a).map(|_| ()).map_err(Into::into),
        Command::Tiles(a) => {
            check_config(&a.config)?;
            tiles::run(&a)
        }
    }
}

/// A clap value parser for a library enum, by its serde (snake_case) names: the libraries
/// know nothing of clap, and the names on the command line are those of the config files.
pub fn serde_enum<T>(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name: String| serde_json::from_value::<T>(serde_json::Value::String(name)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(io).context("/x/scan.tiff: No such file or directory (os error 2)");
        assert_eq!(super::one_line(&e), "/x/scan.tiff: No such file or directory (os error 2)");
        let e = e.context("reading scans");
        assert_eq!(super::one_line(&e), "reading scans: /x/scan.tiff: No such file or directory (os error 2)");
    }

    #[test]
    fn the_default_config_is_found_outside_the_checkout() {
        let candidates = super::config_candidates();
        assert_eq!(candidates[0], std::path::Path::new("models/pipeline.default.toml"));
        // The checkout this test binary was built from holds it, wherever the test runs.
        let built = candidates.last().unwrap();
        assert!(built.is_absolute() && built.is_file(), "{}", built.display());
        assert!(super::default_config().is_file());
        assert!(super::check_config(&super::default_config()).is_ok());
    }

    #[test]
    fn onnx_runtime_stays_at_warnings_unless_asked() {
        assert_eq!(super::log_filter(0), "warn");
        assert!(super::log_filter(1).ends_with("ort=warn") && super::log_filter(2).ends_with("ort=warn"));
    }
}
