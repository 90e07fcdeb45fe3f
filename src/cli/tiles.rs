//! `nii-atr tiles`: export the engine's model inputs and box labels from a labelled split, for
//! training (see `models/train/`).

use std::path::PathBuf;

use nii_atr_synth::tiles::{ExportOptions, export};

use super::LimitArgs;

/// Export model-input tiles and clipped box labels from a labelled split, for training.
#[derive(Debug, clap::Args)]
pub struct TilesArgs {
    /// Split folder written by `nii-atr synth` (holds truth.jsonl and one folder per case).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Model spec (TOML/JSON): the tiles are its input size and channel recipe.
    #[arg(long)]
    pub spec: PathBuf,
    /// Pipeline config: preprocessing, tile overlap, air-tile test and full-scan pass.
    #[arg(long, env = "NII_ATR_PIPELINE", default_value_os_t = super::default_config())]
    pub config: PathBuf,
    /// Output folder: `<case>.npy`, `index.jsonl`, `export.json`.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Share of tiles without any label that are kept (deterministic per case, tile and seed).
    #[arg(long, default_value_t = 0.25)]
    pub keep_background: f64,
    /// Seed of the background sampling: the same seed keeps the same label-free tiles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N cases of the split.
    #[arg(long)]
    pub cases: Option<usize>,
    /// Smallest side (input pixels) of a box label in a grid tile.
    #[arg(long, default_value_t = 4.0)]
    pub min_side: f32,
    /// Smallest side (input pixels) of a box label in the shrunk full-scan input.
    #[arg(long, default_value_t = 3.0)]
    pub min_side_full: f32,
    /// Size limits for reading the scans.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs the export and prints a closing summary to stdout.
pub fn run(a: &TilesArgs) -> anyhow::Result<()> {
    let opts = ExportOptions {
        split: a.dataset.clone(),
        spec: a.spec.clone(),
        config: a.config.clone(),
        out: a.out.clone(),
        keep_background: a.keep_background,
        seed: a.seed,
        cases: a.cases,
        min_side_tile: a.min_side,
        min_side_full: a.min_side_full,
        limits: a.limits.limits(),
    };
    let bar = super::progress::Bar::new("{spinner} tiles [{bar:40}] {pos}/{len} cases, {per_sec}, eta {eta}");
    let s = export(&opts, &bar)?;
    bar.finish();
    println!(
        "tiles: {} cases -> {}\n  inputs: {} grid tiles ({} with boxes, {} clean) + {} full-scan, {}x{}x{} f32, {:.1} MB\n  \
         skipped: {} air tiles, {} label-free tiles not sampled; {} slivers dropped\n  boxes: {} ({})\n  time: {:.1} s",
        s.cases,
        a.out.display(),
        s.tiles,
        s.tiles_with_boxes,
        s.clean_tiles,
        s.full_scan_inputs,
        s.input[0],
        s.input[1],
        s.input[2],
        s.bytes as f64 / 1e6,
        s.skipped_air,
        s.skipped_background,
        s.dropped_slivers,
        s.boxes,
        s.boxes_per_class.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        s.seconds
    );
    Ok(())
}
