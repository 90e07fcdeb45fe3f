//! `nii-atr synth`: the command-line face of the generator.

use std::path::PathBuf;

use nii_atr_core::physics::AttenuationTable;
use nii_atr_core::scan::PlaneFormat;
use nii_atr_synth::SynthError;
use nii_atr_synth::catalogue::Catalogue;
use nii_atr_synth::dataset::{GenerateOptions, Summary, generate};
use nii_atr_synth::recipe::{Recipe, Split};

/// Generate labelled dual-energy cargo scans from a recipe.
#[derive(Debug, Clone, clap::Args)]
pub struct SynthArgs {
    /// Recipe TOML (see datasets/recipes/): scanner, noise, case mix and split sizes.
    #[arg(long)]
    pub recipe: PathBuf,
    /// Output folder; created if missing. Existing case folders are overwritten.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Cases per split instead of the recipe's counts (quick looks, smoke tests).
    #[arg(long)]
    pub cases: Option<usize>,
    /// Seed instead of the recipe's; the same recipe and seed give byte-identical output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write only this split (repeatable); default: every split of the recipe.
    #[arg(long, value_parser = super::serde_enum::<Split>(&["train", "val", "test"]))]
    pub split: Vec<Split>,
    /// Commodity catalogue instead of the built-in datasets/commodities.toml.
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// Plane image format: PNG is lossless and about half the size of TIFF.
    #[arg(long, value_parser = super::serde_enum::<PlaneFormat>(&["tiff", "png"]), default_value = "png")]
    pub plane_format: PlaneFormat,
    /// Skip the pseudo-colour preview PNG of each case (faster).
    #[arg(long)]
    pub no_preview: bool,
    /// Worker threads (default: all cores). Output does not depend on it.
    #[arg(long, env = "NII_ATR_THREADS")]
    pub threads: Option<usize>,
}

/// Runs the generator and prints a closing summary to stdout.
pub fn run(args: &SynthArgs) -> Result<Summary, SynthError> {
    let recipe = Recipe::load(&args.recipe)?;
    let table = AttenuationTable::embedded()?;
    let catalogue = match &args.catalogue {
        Some(p) => Catalogue::load(p, table)?,
        None => Catalogue::embedded(table)?,
    };
    let opts = GenerateOptions {
        out: args.out.clone(),
        splits: args.split.clone(),
        cases: args.cases,
        seed: args.seed,
        plane_format: args.plane_format,
        previews: !args.no_preview,
    };
    let bar = super::progress::Bar::new("{spinner} {msg:>6} [{bar:40}] {pos}/{len} cases, {per_sec}, eta {eta}");
    let summary = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| SynthError::Parameter { name: "threads", reason: e.to_string() })?
            .install(|| generate(&recipe, &catalogue, &opts, &bar))?,
        None => generate(&recipe, &catalogue, &opts, &bar)?,
    };
    bar.finish();
    print!("{}", format_summary(&recipe, &args.out, &summary));
    Ok(summary)
}

/// The closing summary in words.
pub fn format_summary(recipe: &Recipe, out: &std::path::Path, s: &Summary) -> String {
    let total: usize = s.cases.values().sum();
    let mut text = format!(
        "synth: recipe `{}` -> {}\n  cases: {total} ({}) in {:.1} s, {:.2} cases/s, {:.1} Mpx\n",
        recipe.name,
        out.display(),
        s.cases.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        s.seconds,
        s.cases_per_second,
        s.pixels as f64 / 1e6,
    );
    let threats: usize = s.threats.values().sum();
    text += &format!(
        "  threats: {threats} ({}); by difficulty: {}; median CNR {:.1}\n",
        s.threats.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        s.threats_by_difficulty.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        s.median_cnr
    );
    let mismatches: usize = s.mismatches.values().sum();
    text += &format!(
        "  manifests: {mismatches} mismatched ({}); empty containers: {}\n",
        s.mismatches.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        s.empty_cases
    );
    text
}
