//! `nii-atr info`.

use std::path::PathBuf;

use super::scan_info::ScanInfo;
use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::read_scan;

use super::LimitArgs;

/// Arguments of `nii-atr info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Scan descriptor (.json), a folder holding scan.json, a 16-bit TIFF/PNG, or an 8-bit image.
    pub scan: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Material profile (JSON) overriding the one the scan names.
    #[arg(long, value_name = "PROFILE.json")]
    pub profile: Option<PathBuf>,
    /// Size limits the scan must fit.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Reads and preprocesses the scan and prints what [`ScanInfo`] holds, as text or JSON.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let info = gather(&args.scan, args.profile.clone(), &args.limits)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", info.to_text());
    }
    Ok(())
}

/// Reads the scan at `path` within `limits`, preprocesses it (with `profile`, when given,
/// instead of the one it names) and gathers what `info` reports.
pub fn gather(path: &std::path::Path, profile: Option<PathBuf>, limits: &LimitArgs) -> anyhow::Result<ScanInfo> {
    let scan = read_scan(path, &limits.limits())?;
    let pre = preprocess(&scan, &PreprocessOptions { profile, ..Default::default() })?;
    Ok(ScanInfo::gather(&scan, &pre))
}
