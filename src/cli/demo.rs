//! `nii-atr demo`: the main job on generated data, so a newcomer sees real output.

use std::path::PathBuf;

use nii_atr::preprocess::render::{WindowLevel, render_grey, render_material, save_png};
use nii_atr::preprocess::{PreprocessOptions, preprocess};
use nii_atr::scan::{Limits, PlaneFormat, read_scan, write_scan};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's scan and pictures.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let scan_dir = args.out.join("example-20ft");
    println!("== building a 20 ft container scan (6/4 MV, 10 mm pitch) in {}", scan_dir.display());
    let scan = nii_atr::example::container_scan(10.0, 7);
    let descriptor = write_scan(&scan, &scan_dir, PlaneFormat::Tiff)?;

    println!("\n== nii-atr info {}", descriptor.display());
    let info = super::info::gather(
        &descriptor,
        None,
        &super::LimitArgs {
            max_width: Limits::default().max_width,
            max_height: Limits::default().max_height,
            max_pixels: Limits::default().max_pixels,
        },
    )?;
    print!("{}", info.to_text());

    let scan = read_scan(&descriptor, &Limits::default())?;
    let pre = preprocess(&scan, &PreprocessOptions::default())?;
    let material = args.out.join("example-20ft-material.png");
    save_png(&render_material(&pre.attenuation, &pre.materials, &Default::default()), &material)?;
    let high = args.out.join("example-20ft-high.png");
    save_png(&render_grey(&pre.attenuation.high, WindowLevel::auto(&pre.attenuation.high)), &high)?;
    println!("\n== rendered views\n  {}\n  {}", material.display(), high.display());
    Ok(())
}
