//! Scan writer: a folder with `scan.json` and one 16-bit image per plane.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{PlaneFiles, Scan, ScanError};

/// Image format of written planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneFormat {
    /// 16-bit grey TIFF, uncompressed: what scanner exports usually are.
    #[default]
    Tiff,
    /// 16-bit grey PNG: lossless and smaller.
    Png,
}

/// Writes `scan` into `dir` (created if needed) as `scan.json` plus `high.*`/`low.*`; returns the
/// descriptor's path. Plane file names in the descriptor are updated, all other fields kept.
pub fn write_scan(scan: &Scan, dir: &Path, format: PlaneFormat) -> Result<PathBuf, ScanError> {
    std::fs::create_dir_all(dir).map_err(|e| ScanError::io(dir, e))?;
    let ext = match format {
        PlaneFormat::Tiff => "tiff",
        PlaneFormat::Png => "png",
    };
    let high_name = PathBuf::from(format!("high.{ext}"));
    write_plane(&scan.high, &dir.join(&high_name), format)?;
    let low_name = match &scan.low {
        Some(low) => {
            let name = PathBuf::from(format!("low.{ext}"));
            write_plane(low, &dir.join(&name), format)?;
            Some(name)
        }
        None => None,
    };
    let mut d = scan.descriptor.clone();
    d.planes = PlaneFiles { high: high_name, low: low_name };
    let path = dir.join("scan.json");
    let json =
        serde_json::to_vec_pretty(&d).map_err(|e| ScanError::Encode { path: path.clone(), reason: e.to_string() })?;
    std::fs::write(&path, json).map_err(|e| ScanError::io(&path, e))?;
    Ok(path)
}

/// Writes one plane as a 16-bit grey image.
pub fn write_plane(plane: &Array2<u16>, path: &Path, format: PlaneFormat) -> Result<(), ScanError> {
    let (rows, cols) = plane.dim();
    let data: Vec<u16> = plane.iter().copied().collect();
    let encode = |e: &dyn std::fmt::Display| ScanError::Encode { path: path.to_path_buf(), reason: e.to_string() };
    match format {
        PlaneFormat::Tiff => {
            let file = File::create(path).map_err(|e| ScanError::io(path, e))?;
            let mut enc = tiff::encoder::TiffEncoder::new(BufWriter::new(file)).map_err(|e| encode(&e))?;
            enc.write_image::<tiff::encoder::colortype::Gray16>(cols as u32, rows as u32, &data)
                .map_err(|e| encode(&e))?;
        }
        PlaneFormat::Png => {
            let img = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(cols as u32, rows as u32, data)
                .ok_or_else(|| encode(&"plane size overflows"))?;
            img.save_with_format(path, image::ImageFormat::Png).map_err(|e| encode(&e))?;
        }
    }
    Ok(())
}

/// Writes a bare two-page 16-bit TIFF (page 0 high, page 1 low), the format other tools exchange.
pub fn write_multipage_tiff(path: &Path, planes: &[&Array2<u16>]) -> Result<(), ScanError> {
    let encode = |e: &dyn std::fmt::Display| ScanError::Encode { path: path.to_path_buf(), reason: e.to_string() };
    let file = File::create(path).map_err(|e| ScanError::io(path, e))?;
    let mut enc = tiff::encoder::TiffEncoder::new(BufWriter::new(file)).map_err(|e| encode(&e))?;
    for plane in planes {
        let (rows, cols) = plane.dim();
        let data: Vec<u16> = plane.iter().copied().collect();
        enc.write_image::<tiff::encoder::colortype::Gray16>(cols as u32, rows as u32, &data).map_err(|e| encode(&e))?;
    }
    Ok(())
}
