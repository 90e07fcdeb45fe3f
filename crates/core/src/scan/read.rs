//! Scan readers: descriptor + plane files, bare multi-page 16-bit TIFF, rendered 8-bit images.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::ImageDecoder;
use ndarray::Array2;

use super::{
    Counts, Limits, PlaneCounts, PlaneFiles, SCHEMA_VERSION, Scan, ScanDescriptor, ScanError, ScanKind, SourceKind,
    SourceSpec,
};

/// A descriptor larger than this is not a scan descriptor (per-row arrays of 6,000 rows are ~100 kB).
const MAX_DESCRIPTOR_BYTES: u64 = 16 << 20;

/// Decoded pixels before they become a plane.
enum Decoded {
    Gray16(Array2<u16>),
    Gray8(Array2<u8>),
    Rgb8 { rows: usize, cols: usize, data: Vec<u8> },
}

impl Decoded {
    fn bit_depth_name(&self) -> &'static str {
        match self {
            Decoded::Gray16(_) => "16-bit grey",
            Decoded::Gray8(_) => "8-bit grey",
            Decoded::Rgb8 { .. } => "8-bit RGB",
        }
    }

    /// Rendered images: grey level (RGB luminance) stands for transmission, scaled to 16 bits;
    /// the colour planes are kept as decoded (grey: R = G = B).
    fn into_rendered(self, path: &Path) -> Result<(Array2<u16>, Option<image::RgbImage>), ScanError> {
        Ok(match self {
            Decoded::Gray16(a) => (a, None),
            Decoded::Gray8(a) => {
                let rgb = image::RgbImage::from_fn(a.ncols() as u32, a.nrows() as u32, |x, y| {
                    image::Rgb([a[[y as usize, x as usize]]; 3])
                });
                (a.mapv(|v| v as u16 * 257), Some(rgb))
            }
            Decoded::Rgb8 { rows, cols, data } => {
                let plane = Array2::from_shape_fn((rows, cols), |(r, c)| {
                    let i = (r * cols + c) * 3;
                    // ITU-R BT.601 luma, as image-rs converts RGB to grey.
                    let y = 0.299 * data[i] as f32 + 0.587 * data[i + 1] as f32 + 0.114 * data[i + 2] as f32;
                    (y.round().clamp(0.0, 255.0) as u16) * 257
                });
                let rgb = image::RgbImage::from_raw(cols as u32, rows as u32, data)
                    .ok_or_else(|| decode_err(path, format!("RGB data does not fill {cols} x {rows} pixels")))?;
                (plane, Some(rgb))
            }
        })
    }
}

/// Reads a scan from a descriptor (`.json`), a folder holding `scan.json`, a bare 16-bit TIFF
/// (page 0 high, page 1 low), a 16-bit grey PNG (single energy) or an 8-bit grey/RGB image
/// (rendered, degraded single view).
pub fn read_scan(path: &Path, limits: &Limits) -> Result<Scan, ScanError> {
    let path = if path.is_dir() { path.join("scan.json") } else { path.to_path_buf() };
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let mut scan = match ext.as_str() {
        "json" => read_descriptor_scan(&path, limits)?,
        "tif" | "tiff" | "png" | "jpg" | "jpeg" => read_bare_image(&path, limits)?,
        _ => {
            // A mistyped path is "not found", not an unknown file type.
            std::fs::metadata(&path).map_err(|e| ScanError::io(&path, e))?;
            let kind = if ext.is_empty() {
                "no file extension".to_string()
            } else {
                format!("unknown scan file type `.{ext}`")
            };
            return Err(ScanError::Unsupported {
                path,
                reason: format!("{kind} (expected .json, .tif/.tiff, .png, .jpg, or a folder holding scan.json)"),
            });
        }
    };
    scan.origin = Some(path);
    Ok(scan)
}

fn read_descriptor(path: &Path) -> Result<ScanDescriptor, ScanError> {
    let meta = std::fs::metadata(path).map_err(|e| ScanError::io(path, e))?;
    if meta.len() > MAX_DESCRIPTOR_BYTES {
        return Err(ScanError::DescriptorContent {
            path: path.to_path_buf(),
            reason: format!("{} bytes is more than the {MAX_DESCRIPTOR_BYTES} a descriptor may have", meta.len()),
        });
    }
    let text = std::fs::read(path).map_err(|e| ScanError::io(path, e))?;
    let d: ScanDescriptor =
        serde_json::from_slice(&text).map_err(|e| ScanError::Descriptor { path: path.to_path_buf(), source: e })?;
    if d.schema_version != SCHEMA_VERSION {
        return Err(ScanError::DescriptorContent {
            path: path.to_path_buf(),
            reason: format!("schema_version {} is not supported (this build reads {SCHEMA_VERSION})", d.schema_version),
        });
    }
    Ok(d)
}

fn read_descriptor_scan(path: &Path, limits: &Limits) -> Result<Scan, ScanError> {
    let d = read_descriptor(path)?;
    let content = |reason: String| ScanError::DescriptorContent { path: path.to_path_buf(), reason };
    let pitch = d.pixel_pitch_mm;
    if !(pitch.along.is_finite() && pitch.along > 0.0 && pitch.vertical.is_finite() && pitch.vertical > 0.0) {
        return Err(content(format!("pixel_pitch_mm must be positive and finite, got {pitch:?}")));
    }
    if !(d.source.high_energy.is_finite() && d.source.high_energy > 0.0) {
        return Err(content(format!("source.high_energy must be positive, got {}", d.source.high_energy)));
    }
    match (d.source.low_energy, &d.planes.low) {
        (Some(_), None) => return Err(content("source.low_energy is set but planes.low is missing".into())),
        (None, Some(_)) => return Err(content("planes.low is set but source.low_energy is missing".into())),
        (Some(lo), Some(_)) if !(lo.is_finite() && lo > 0.0 && lo < d.source.high_energy) => {
            return Err(content(format!(
                "source.low_energy {lo} must be positive and below high_energy {}",
                d.source.high_energy
            )));
        }
        _ => {}
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let high_path = base.join(&d.planes.high);
    let high = read_raw_plane(&high_path, limits)?;
    let low = match &d.planes.low {
        Some(p) => {
            let low_path = base.join(p);
            let low = read_raw_plane(&low_path, limits)?;
            if low.dim() != high.dim() {
                return Err(ScanError::PlaneMismatch { path: low_path, high: high.dim(), low: low.dim() });
            }
            Some(low)
        }
        None => None,
    };
    validate_calibration(path, &d, high.nrows(), high.ncols(), low.is_some())?;
    Ok(Scan { descriptor: d, kind: ScanKind::Raw, high, low, rgb: None, origin: None })
}

/// Reads one 16-bit grey plane (TIFF page 0 or PNG). Other bit depths are refused.
pub fn read_plane(path: &Path, limits: &Limits) -> Result<Array2<u16>, ScanError> {
    read_raw_plane(path, limits)
}

fn read_raw_plane(path: &Path, limits: &Limits) -> Result<Array2<u16>, ScanError> {
    let mut pages = decode_file(path, limits, 1)?;
    match pages.remove(0) {
        Decoded::Gray16(a) => Ok(a),
        other => Err(ScanError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("plane is {}; raw scan planes must be 16-bit grey", other.bit_depth_name()),
        }),
    }
}

fn read_bare_image(path: &Path, limits: &Limits) -> Result<Scan, ScanError> {
    let mut pages = decode_file(path, limits, 2)?;
    let first = pages.remove(0);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scan".into());
    let file_name = PathBuf::from(path.file_name().unwrap_or_default());
    match first {
        Decoded::Gray16(high) => {
            let low = match pages.pop() {
                Some(Decoded::Gray16(low)) if low.dim() == high.dim() => Some(low),
                Some(Decoded::Gray16(low)) => {
                    return Err(ScanError::PlaneMismatch {
                        path: path.to_path_buf(),
                        high: high.dim(),
                        low: low.dim(),
                    });
                }
                Some(other) => {
                    return Err(ScanError::Unsupported {
                        path: path.to_path_buf(),
                        reason: format!("page 1 is {}, page 0 is 16-bit grey", other.bit_depth_name()),
                    });
                }
                None => None,
            };
            // Defaults for a bare file: a 6/4 MV linac (the common cargo set-up), no dark offset,
            // air estimated from the brightest counts (see calibration).
            let source = SourceSpec {
                kind: SourceKind::Linac,
                high_energy: 6.0,
                low_energy: low.as_ref().map(|_| 4.0),
                extra: Default::default(),
            };
            let planes = PlaneFiles { high: file_name.clone(), low: low.as_ref().map(|_| file_name) };
            let d = ScanDescriptor::minimal(stem, source, planes);
            Ok(Scan { descriptor: d, kind: ScanKind::Raw, high, low, rgb: None, origin: None })
        }
        rendered => {
            let source =
                SourceSpec { kind: SourceKind::Unknown, high_energy: 1.0, low_energy: None, extra: Default::default() };
            let d = ScanDescriptor::minimal(stem, source, PlaneFiles { high: file_name, low: None });
            let (high, rgb) = rendered.into_rendered(path)?;
            Ok(Scan { descriptor: d, kind: ScanKind::Rendered, high, low: None, rgb, origin: None })
        }
    }
}

/// Decodes up to `max_pages` pages (TIFF) or one image (PNG/JPEG), checking limits first.
fn decode_file(path: &Path, limits: &Limits, max_pages: usize) -> Result<Vec<Decoded>, ScanError> {
    let file = File::open(path).map_err(|e| ScanError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    {
        use std::io::{Read, Seek};
        let n = reader.read(&mut magic).map_err(|e| ScanError::io(path, e))?;
        reader.seek(std::io::SeekFrom::Start(0)).map_err(|e| ScanError::io(path, e))?;
        if n < 4 {
            return Err(ScanError::Decode { path: path.to_path_buf(), reason: format!("file is only {n} bytes long") });
        }
    }
    if &magic == b"II*\0" || &magic == b"MM\0*" || &magic == b"II+\0" || &magic == b"MM\0+" {
        decode_tiff(path, reader, limits, max_pages)
    } else {
        decode_with_image(path, reader, limits).map(|d| vec![d])
    }
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> ScanError {
    ScanError::Decode { path: path.to_path_buf(), reason: e.to_string() }
}

fn decode_tiff(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
    max_pages: usize,
) -> Result<Vec<Decoded>, ScanError> {
    use tiff::ColorType;
    use tiff::decoder::{Decoder, DecodingResult};
    let mut tiff_limits = tiff::decoder::Limits::default();
    // Room for one 16-bit plane at the pixel limit; the tiff crate enforces it per buffer.
    tiff_limits.decoding_buffer_size = (limits.max_pixels.saturating_mul(3)).min(usize::MAX as u64) as usize;
    let mut dec = Decoder::new(reader).map_err(|e| decode_err(path, e))?.with_limits(tiff_limits);
    let mut pages = Vec::new();
    loop {
        let (w, h) = dec.dimensions().map_err(|e| decode_err(path, e))?;
        limits.check(path, w as u64, h as u64)?;
        let (rows, cols) = (h as usize, w as usize);
        let color = dec.colortype().map_err(|e| decode_err(path, e))?;
        let page = pages.len();
        let unsupported = |what: String| ScanError::Unsupported { path: path.to_path_buf(), reason: what };
        let expect = match color {
            ColorType::Gray(16) | ColorType::Gray(8) => rows * cols,
            ColorType::RGB(8) => rows * cols * 3,
            other => {
                return Err(unsupported(format!("TIFF page {page} has colour type {other:?}; expected 16-bit grey")));
            }
        };
        let img = dec.read_image().map_err(|e| decode_err(path, e))?;
        let short =
            |n: usize| decode_err(path, format!("page {page} holds {n} samples, expected {expect} (truncated?)"));
        let decoded = match (color, img) {
            (ColorType::Gray(16), DecodingResult::U16(v)) => {
                if v.len() != expect {
                    return Err(short(v.len()));
                }
                Decoded::Gray16(Array2::from_shape_vec((rows, cols), v).map_err(|e| decode_err(path, e))?)
            }
            (ColorType::Gray(8), DecodingResult::U8(v)) => {
                if v.len() != expect {
                    return Err(short(v.len()));
                }
                Decoded::Gray8(Array2::from_shape_vec((rows, cols), v).map_err(|e| decode_err(path, e))?)
            }
            (ColorType::RGB(8), DecodingResult::U8(v)) => {
                if v.len() != expect {
                    return Err(short(v.len()));
                }
                Decoded::Rgb8 { rows, cols, data: v }
            }
            (c, _) => return Err(unsupported(format!("TIFF page {page}: sample format does not match {c:?}"))),
        };
        pages.push(decoded);
        if pages.len() >= max_pages || !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| decode_err(path, e))?;
    }
    Ok(pages)
}

fn decode_with_image(path: &Path, reader: BufReader<File>, limits: &Limits) -> Result<Decoded, ScanError> {
    let reader = image::ImageReader::new(reader).with_guessed_format().map_err(|e| ScanError::io(path, e))?;
    if reader.format().is_none() {
        return Err(ScanError::Unsupported { path: path.to_path_buf(), reason: "not a TIFF, PNG or JPEG file".into() });
    }
    let mut decoder = reader.into_decoder().map_err(|e| decode_err(path, e))?;
    let (w, h) = decoder.dimensions();
    limits.check(path, w as u64, h as u64)?;
    let mut img_limits = image::Limits::default();
    img_limits.max_image_width = Some(limits.max_width);
    img_limits.max_image_height = Some(limits.max_height);
    img_limits.max_alloc = Some(limits.max_pixels.saturating_mul(4));
    decoder.set_limits(img_limits).map_err(|e| decode_err(path, e))?;
    let color = decoder.color_type();
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, e))?;
    let (rows, cols) = (h as usize, w as usize);
    use image::ColorType as C;
    Ok(match color {
        C::L16 => Decoded::Gray16(
            Array2::from_shape_vec((rows, cols), img.into_luma16().into_raw()).map_err(|e| decode_err(path, e))?,
        ),
        C::L8 | C::La8 => Decoded::Gray8(
            Array2::from_shape_vec((rows, cols), img.into_luma8().into_raw()).map_err(|e| decode_err(path, e))?,
        ),
        C::Rgb8 | C::Rgba8 => Decoded::Rgb8 { rows, cols, data: img.into_rgb8().into_raw() },
        other => {
            return Err(ScanError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("colour type {other:?}; expected 16-bit grey, or 8-bit grey/RGB for rendered scans"),
            });
        }
    })
}

/// Checks calibration numbers against the planes: finite, non-negative, per-row arrays of the
/// right length, air above dark, air region inside the image.
pub(crate) fn validate_calibration(
    path: &Path,
    d: &ScanDescriptor,
    rows: usize,
    cols: usize,
    dual: bool,
) -> Result<(), ScanError> {
    let bad = |reason: String| ScanError::Calibration { path: path.to_path_buf(), reason };
    let check_counts = |what: &str, c: &Counts| -> Result<(), ScanError> {
        let values: &[f32] = match c {
            Counts::Scalar(v) => std::slice::from_ref(v),
            Counts::PerRow(v) => {
                if v.len() != rows {
                    return Err(bad(format!("{what} has {} values but the scan has {rows} detector rows", v.len())));
                }
                v
            }
        };
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
            return Err(bad(format!("{what}[{i}] = {v}: counts must be finite and non-negative")));
        }
        if values.iter().any(|v| *v > 65535.0) {
            return Err(bad(format!("{what} exceeds 65535, the 16-bit count range")));
        }
        Ok(())
    };
    let check_plane_counts = |what: &str, pc: &Option<PlaneCounts>| -> Result<(), ScanError> {
        if let Some(pc) = pc {
            check_counts(&format!("{what}.high"), &pc.high)?;
            match (&pc.low, dual) {
                (Some(l), true) => check_counts(&format!("{what}.low"), l)?,
                (Some(_), false) => return Err(bad(format!("{what}.low given for a single-energy scan"))),
                (None, true) => return Err(bad(format!("{what}.low missing for a dual-energy scan"))),
                (None, false) => {}
            }
        }
        Ok(())
    };
    let cal = &d.calibration;
    check_plane_counts("dark", &cal.dark)?;
    check_plane_counts("air", &cal.air)?;
    if let (Some(dark), Some(air)) = (&cal.dark, &cal.air) {
        let pairs = [(Some(&dark.high), Some(&air.high), "high"), (dark.low.as_ref(), air.low.as_ref(), "low")];
        for (dk, ai, plane) in pairs {
            if let (Some(dk), Some(ai)) = (dk, ai) {
                for r in 0..rows {
                    let (dv, av) = (dk.at(r), ai.at(r));
                    if av <= dv {
                        return Err(bad(format!("{plane} plane, row {r}: air counts {av} not above dark counts {dv}")));
                    }
                }
            }
        }
    }
    if let Some(region) = &cal.air_region {
        for (what, range, n) in [("rows", region.rows, rows), ("columns", region.columns, cols)] {
            if let Some([a, b]) = range
                && (a >= b || b > n)
            {
                return Err(bad(format!("air_region.{what} [{a}, {b}) is empty or outside 0..{n}")));
            }
        }
    }
    Ok(())
}

impl Counts {
    /// The value for detector row `r` (scalar for every row).
    pub fn at(&self, r: usize) -> f32 {
        match self {
            Counts::Scalar(v) => *v,
            Counts::PerRow(v) => v[r],
        }
    }
}
