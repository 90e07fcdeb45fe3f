//! `nii-atr render`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nii_atr_core::preprocess::render::{Palette, View, WindowLevel, render_grey, render_material, save_png};
use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::read_scan;

use super::LimitArgs;

/// Arguments of `nii-atr render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Scan descriptor (.json), a folder holding scan.json, a 16-bit TIFF/PNG, or an 8-bit image.
    pub scan: PathBuf,
    /// Output PNG file.
    #[arg(short, long, value_name = "OUT.png")]
    pub output: PathBuf,
    /// What to draw: material pseudo-colour (dual-energy; grey for single-energy scans), or
    /// the attenuation of the high or low plane in grey.
    #[arg(long, value_parser = super::serde_enum::<View>(&["material", "high", "low"]), default_value = "material")]
    pub view: View,
    /// Grey views: attenuation range drawn from white to black (default: from the data).
    #[arg(long, requires = "level")]
    pub window: Option<f32>,
    /// Grey views: attenuation at the middle of the window.
    #[arg(long, requires = "window")]
    pub level: Option<f32>,
    /// Palette JSON (class colours and shading) for the material view.
    #[arg(long, value_name = "PALETTE.json")]
    pub palette: Option<PathBuf>,
    /// Material profile (JSON) overriding the one the scan names.
    #[arg(long, value_name = "PROFILE.json")]
    pub profile: Option<PathBuf>,
    /// Size limits the scan must fit.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Reads and preprocesses the scan, draws the asked-for view and writes it as PNG.
pub fn run(args: &RenderArgs) -> anyhow::Result<()> {
    let scan = read_scan(&args.scan, &args.limits.limits())?;
    let pre = preprocess(&scan, &PreprocessOptions { profile: args.profile.clone(), ..Default::default() })?;
    let palette = match &args.palette {
        Some(p) => load_palette(p)?,
        None => Palette::default(),
    };
    let wl = |plane: &ndarray::Array2<f32>| match (args.window, args.level) {
        (Some(window), Some(level)) => WindowLevel { window, level },
        _ => WindowLevel::auto(plane),
    };
    let att = &pre.attenuation;
    let img = match args.view {
        View::Material if scan.is_dual_energy() => render_material(att, &pre.materials, &palette),
        View::Material | View::High => render_grey(&att.high, wl(&att.high)),
        View::Low => {
            let low = att
                .low
                .as_ref()
                .with_context(|| format!("{}: single-energy scan has no low plane", args.scan.display()))?;
            render_grey(low, wl(low))
        }
    };
    save_png(&img, &args.output)?;
    println!("wrote {} ({} x {}, {:?} view)", args.output.display(), img.width(), img.height(), args.view);
    Ok(())
}

/// Most bytes a palette file may have: real ones are under 1 kB.
const MAX_PALETTE_BYTES: u64 = 64 << 10;

/// A palette file: a regular file of at most [`MAX_PALETTE_BYTES`], errors naming the field.
fn load_palette(path: &Path) -> anyhow::Result<Palette> {
    let bytes = nii_atr_core::io::read_capped(path, MAX_PALETTE_BYTES)?;
    nii_atr_core::io::parse_json(&bytes).map_err(|e| anyhow::anyhow!("{}: invalid palette: {e}", path.display()))
}
