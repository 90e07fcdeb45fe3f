//! Scan readers: descriptor + plane files, bare multi-page 16-bit TIFF, rendered 8-bit images.
//!
//! Every file is opened only when it is a regular file; a descriptor's plane files must lie
//! inside its folder; every image's size, and the bytes its decoding will hold (decoder buffers
//! and the planes made from them), are checked from its header against [`Limits`] before any
//! pixel buffer is allocated.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::ImageDecoder;
use ndarray::Array2;

use super::{
    Counts, DECODE_BYTES_PER_PIXEL, Limits, MAX_DESCRIPTOR_BYTES, PlaneCounts, PlaneFiles, SCHEMA_VERSION, Scan,
    ScanDescriptor, ScanError, ScanKind, ScannerRef, SourceKind, SourceSpec,
};
use crate::io::FileError;

/// Decoded pixels before they become a plane.
enum Decoded {
    Gray16(Array2<u16>),
    Gray8(Array2<u8>),
    Rgb8 { rows: usize, cols: usize, data: Vec<u8> },
}

impl Decoded {
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

/// What a file is read for: a descriptor's plane takes only 16-bit grey, one page; a file given
/// as the scan takes a 16-bit pair of pages or one 8-bit picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    RawPlane,
    Scan,
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
    let bytes = crate::io::read_capped(path, MAX_DESCRIPTOR_BYTES)?;
    let d: ScanDescriptor = crate::io::parse_json(&bytes)
        .map_err(|e| ScanError::Descriptor { path: path.to_path_buf(), error: Box::new(e) })?;
    if d.schema_version != SCHEMA_VERSION {
        return Err(ScanError::DescriptorContent {
            path: path.to_path_buf(),
            reason: format!("schema_version {} is not supported (this build reads {SCHEMA_VERSION})", d.schema_version),
        });
    }
    Ok(d)
}

/// The file `value` (descriptor field `field`) names, resolved inside the descriptor's folder
/// `folder` (canonical): an absolute path, or one that leaves the folder through `..` or a
/// symbolic link, would let a descriptor read any image on the machine.
fn plane_inside(
    descriptor: &Path,
    base: &Path,
    folder: &Path,
    field: &'static str,
    value: &Path,
) -> Result<PathBuf, ScanError> {
    let refuse = |why: String| ScanError::PlanePath {
        path: descriptor.to_path_buf(),
        field,
        reason: format!("{:?} is {why}", value.display().to_string()),
    };
    if value.as_os_str().is_empty() {
        return Err(refuse("empty".into()));
    }
    if value.is_absolute() || value.has_root() {
        return Err(refuse("an absolute path; plane files are named relative to the descriptor's folder".into()));
    }
    let joined = base.join(value);
    let resolved = joined.canonicalize().map_err(|e| ScanError::io(&joined, e))?;
    if !resolved.starts_with(folder) {
        return Err(refuse(format!("outside the scan's folder {} (after symbolic links)", folder.display())));
    }
    Ok(resolved)
}

/// Whether a scanner profile name is a plain name: the profile is looked up as `<name>.json`
/// in fixed folders, so a name with a path in it could point anywhere.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
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
    if let Some(ScannerRef::Named(name)) = &d.scanner
        && !is_plain_name(name)
    {
        return Err(content(format!("scanner {name:?} must be a profile name, not a path (no `/`, `\\` or `..`)")));
    }
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = base.canonicalize().map_err(|e| ScanError::io(base, e))?;
    let high_path = plane_inside(path, base, &folder, "planes.high", &d.planes.high)?;
    let low_path = match &d.planes.low {
        Some(p) => Some(plane_inside(path, base, &folder, "planes.low", p)?),
        None => None,
    };
    let high = read_raw_plane(&high_path, limits)?;
    let low = match low_path {
        Some(low_path) => {
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
    match decode_file(path, limits, Want::RawPlane)?.remove(0) {
        Decoded::Gray16(a) => Ok(a),
        // decode_file refuses other depths from the header for a raw plane.
        _ => Err(raw_plane_depth(path, "not 16-bit grey")),
    }
}

fn raw_plane_depth(path: &Path, what: &str) -> ScanError {
    ScanError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("plane is {what}; raw scan planes must be 16-bit grey"),
    }
}

fn read_bare_image(path: &Path, limits: &Limits) -> Result<Scan, ScanError> {
    let mut pages = decode_file(path, limits, Want::Scan)?;
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
                // decode_file reads a second page only when it is 16-bit grey too.
                Some(_) => return Err(second_page_depth(path, "not 16-bit grey")),
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

fn second_page_depth(path: &Path, what: &str) -> ScanError {
    ScanError::Unsupported { path: path.to_path_buf(), reason: format!("page 1 is {what}, page 0 is 16-bit grey") }
}

/// Fails unless a read holding `bytes` at its peak fits [`Limits::max_decode_bytes`].
fn check_decode_bytes(
    path: &Path,
    limits: &Limits,
    (width, height): (u32, u32),
    what: &str,
    bytes: u64,
) -> Result<(), ScanError> {
    let allowed = limits.max_decode_bytes();
    if bytes <= allowed {
        return Ok(());
    }
    Err(ScanError::Limits {
        path: path.to_path_buf(),
        width: width as u64,
        height: height as u64,
        reason: format!(
            "reading this {what} image needs {bytes} bytes, over the {allowed} allowed \
             ({DECODE_BYTES_PER_PIXEL} bytes per pixel of max_pixels {})",
            limits.max_pixels
        ),
    })
}

/// Decodes one image (PNG, JPEG) or up to two TIFF pages, checking limits first.
fn decode_file(path: &Path, limits: &Limits, want: Want) -> Result<Vec<Decoded>, ScanError> {
    let (file, file_len) = crate::io::open_regular(path)?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    let n = reader.read(&mut magic).map_err(|e| ScanError::io(path, e))?;
    reader.seek(SeekFrom::Start(0)).map_err(|e| ScanError::io(path, e))?;
    if n < 4 {
        return Err(ScanError::Decode { path: path.to_path_buf(), reason: format!("file is only {n} bytes long") });
    }
    if &magic == b"II*\0" || &magic == b"MM\0*" || &magic == b"II+\0" || &magic == b"MM\0+" {
        decode_tiff(path, reader, limits, want, file_len)
    } else {
        decode_with_image(path, reader, limits, want, file_len).map(|d| vec![d])
    }
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> ScanError {
    ScanError::Decode { path: path.to_path_buf(), reason: e.to_string() }
}

/// Most bytes per pixel of a TIFF page this reader decodes (8-bit RGB; 16-bit grey needs 2).
const TIFF_MAX_PAGE_BYTES_PER_PIXEL: u64 = 3;

/// The `tiff` crate's own buffer limits, set from ours so that every page inside [`Limits`]
/// decodes (its defaults refuse a single-strip page over 128 MiB, e.g. a 120 Mpx 16-bit one),
/// and every page outside them is refused by our checks, with our message, before it gets there.
pub(crate) fn tiff_limits(limits: &Limits) -> tiff::decoder::Limits {
    const HEADROOM: u64 = 1 << 20;
    let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    // The result buffer: pixels x samples x bytes per sample of the largest page we take.
    let page = limits.max_pixels.saturating_mul(TIFF_MAX_PAGE_BYTES_PER_PIXEL);
    let mut t = tiff::decoder::Limits::default();
    t.decoding_buffer_size = usize_of(page.saturating_add(HEADROOM));
    // One strip or tile's compressed bytes: a single uncompressed strip holds the whole page,
    // and LZW can grow incompressible data (by well under 2x). We check each strip against the
    // file's length first.
    t.intermediate_buffer_size = usize_of(page.saturating_mul(2).saturating_add(HEADROOM));
    // Tag arrays such as strip offsets and byte counts: tiles are at least 16 x 16 pixels, so a
    // page has at most max_pixels / 256 of them, 16 bytes each (offset and count).
    t.ifd_value_size = usize_of((limits.max_pixels / 256).saturating_mul(16).max(1 << 20));
    t
}

fn decode_tiff(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
    want: Want,
    file_len: u64,
) -> Result<Vec<Decoded>, ScanError> {
    use tiff::ColorType;
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::tags::Tag;
    let mut dec = Decoder::new(reader).map_err(|e| decode_err(path, e))?.with_limits(tiff_limits(limits));
    let mut pages = Vec::new();
    // Bytes of the pages decoded so far, still held while the next one decodes.
    let mut held = 0u64;
    loop {
        let page = pages.len();
        let (w, h) = dec.dimensions().map_err(|e| decode_err(path, e))?;
        limits.check(path, w as u64, h as u64)?;
        let (rows, cols) = (h as usize, w as usize);
        let color = dec.colortype().map_err(|e| decode_err(path, e))?;
        let unsupported = |what: String| ScanError::Unsupported { path: path.to_path_buf(), reason: what };
        let (bytes_per_pixel, what) = match color {
            ColorType::Gray(16) => (2, "16-bit grey"),
            ColorType::Gray(8) => (1, "8-bit grey"),
            ColorType::RGB(8) => (3, "8-bit RGB"),
            other => {
                return Err(unsupported(format!("TIFF page {page} has colour type {other:?}; expected 16-bit grey")));
            }
        };
        if color != ColorType::Gray(16) {
            if want == Want::RawPlane {
                return Err(raw_plane_depth(path, what));
            }
            if page > 0 {
                return Err(second_page_depth(path, what));
            }
        }
        let tag = |dec: &mut Decoder<_>, t: Tag| dec.find_tag_unsigned::<u32>(t).map_err(|e| decode_err(path, e));
        if color == ColorType::RGB(8) && tag(&mut dec, Tag::PlanarConfiguration)? == Some(2) {
            return Err(unsupported(format!("TIFF page {page} stores red, green and blue as separate planes")));
        }
        // A strip or tile cannot hold more bytes than the file: refuse it before the decoder
        // sizes a buffer for it.
        let counts = match dec.find_tag_unsigned_vec::<u64>(Tag::StripByteCounts) {
            Ok(Some(v)) => Some(v),
            _ => dec.find_tag_unsigned_vec::<u64>(Tag::TileByteCounts).map_err(|e| decode_err(path, e))?,
        };
        if let Some((i, n)) = counts.iter().flatten().enumerate().find(|(_, n)| **n > file_len) {
            return Err(decode_err(
                path,
                format!(
                    "page {page}, strip or tile {i} claims {n} bytes, more than the file's {file_len} (truncated?)"
                ),
            ));
        }
        let pixels = w as u64 * h as u64;
        let decoded = pixels * bytes_per_pixel;
        // An 8-bit page becomes a 16-bit plane while it is still held, and a grey one also
        // gets the colour planes a rendered scan keeps (R = G = B; RGB keeps its own buffer).
        let plane = match color {
            ColorType::Gray(16) => 0,
            ColorType::Gray(8) => pixels * (2 + 3),
            _ => pixels * 2,
        };
        // JPEG-compressed chunks are read whole and decoded into a chunk buffer first.
        let jpeg = if tag(&mut dec, Tag::Compression)? == Some(7) {
            let (cw, ch) = dec.chunk_dimensions();
            file_len + cw as u64 * ch as u64 * bytes_per_pixel
        } else {
            0
        };
        check_decode_bytes(path, limits, (w, h), what, held + decoded + plane + jpeg)?;
        let img = dec.read_image().map_err(|e| decode_err(path, e))?;
        let expect = (pixels * if color == ColorType::RGB(8) { 3 } else { 1 }) as usize;
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
        held += decoded_bytes(&decoded);
        pages.push(decoded);
        // A second page is the low plane of a 16-bit pair; an 8-bit picture is one view.
        let another = want == Want::Scan && page == 0 && color == ColorType::Gray(16) && dec.more_images();
        if !another {
            break;
        }
        dec.next_image().map_err(|e| decode_err(path, e))?;
    }
    Ok(pages)
}

fn decoded_bytes(d: &Decoded) -> u64 {
    match d {
        Decoded::Gray16(a) => a.len() as u64 * 2,
        Decoded::Gray8(a) => a.len() as u64,
        Decoded::Rgb8 { data, .. } => data.len() as u64,
    }
}

/// What a JPEG's frame header says: progressive or not, and how many components. Unknown
/// (markers this scan cannot follow) reads as the costliest: progressive, four components.
fn jpeg_frame(r: &mut (impl Read + Seek)) -> (bool, u64) {
    const WORST: (bool, u64) = (true, 4);
    let byte = |r: &mut dyn Read| -> Option<u8> {
        let mut b = [0u8];
        r.read_exact(&mut b).ok().map(|_| b[0])
    };
    if r.seek(SeekFrom::Start(2)).is_err() {
        return WORST;
    }
    // Each marker segment is skipped by its length; the frame header comes before any scan.
    for _ in 0..4096 {
        if byte(r) != Some(0xFF) {
            return WORST;
        }
        let mut marker = 0xFF;
        while marker == 0xFF {
            match byte(r) {
                Some(m) => marker = m,
                None => return WORST,
            }
        }
        let mut len = [0u8; 2];
        match marker {
            0x01 | 0xD0..=0xD8 => continue,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                // Frame header: length (2), precision (1), height (2), width (2), components (1).
                let mut head = [0u8; 8];
                if r.read_exact(&mut head).is_err() {
                    return WORST;
                }
                return (matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE), head[7].clamp(1, 4) as u64);
            }
            _ => {
                if r.read_exact(&mut len).is_err() {
                    return WORST;
                }
                let len = u16::from_be_bytes(len) as i64;
                if len < 2 || r.seek(SeekFrom::Current(len - 2)).is_err() {
                    return WORST;
                }
            }
        }
    }
    WORST
}

fn decode_with_image(
    path: &Path,
    mut reader: BufReader<File>,
    limits: &Limits,
    want: Want,
    file_len: u64,
) -> Result<Decoded, ScanError> {
    let mut reader_img =
        image::ImageReader::new(&mut reader).with_guessed_format().map_err(|e| ScanError::io(path, e))?;
    let Some(format) = reader_img.format() else {
        return Err(ScanError::Unsupported { path: path.to_path_buf(), reason: "not a TIFF, PNG or JPEG file".into() });
    };
    let allowed = limits.max_decode_bytes();
    let mut jpeg = None;
    if format == image::ImageFormat::Jpeg {
        // The JPEG decoder reads the whole file before its header: refuse one that could not
        // fit before that, and learn whether decoding holds every coefficient at once.
        if file_len > allowed {
            return Err(FileError::TooLarge { path: path.to_path_buf(), size: file_len, cap: allowed }.into());
        }
        drop(reader_img);
        jpeg = Some(jpeg_frame(&mut reader));
        reader.seek(SeekFrom::Start(0)).map_err(|e| ScanError::io(path, e))?;
        reader_img = image::ImageReader::with_format(&mut reader, format);
    }
    // The decoders' own allocation cap follows ours from the start; their dimension checks
    // come after ours, so that a size over our limits is refused with our message.
    let mut img_limits = image::Limits::default();
    img_limits.max_alloc = Some(allowed);
    reader_img.limits(img_limits.clone());
    let mut decoder = reader_img.into_decoder().map_err(|e| decode_err(path, e))?;
    img_limits.max_image_width = Some(limits.max_width);
    img_limits.max_image_height = Some(limits.max_height);
    let (w, h) = decoder.dimensions();
    limits.check(path, w as u64, h as u64)?;
    let color = decoder.color_type();
    use image::ColorType as C;
    // Bytes per pixel: decoded, then held at the peak of turning it into a plane (an alpha
    // channel is dropped into a copy; an 8-bit picture becomes a 16-bit plane, and a rendered
    // scan keeps its colour planes: an RGB buffer is kept as it is, grey gets R = G = B).
    let (what, decoded, peak) = match color {
        C::L16 => ("16-bit grey", 2, 2),
        C::L8 => ("8-bit grey", 1, 1 + 2 + 3),
        C::La8 => ("8-bit grey and alpha", 2, 1 + 2 + 3),
        C::Rgb8 => ("8-bit RGB", 3, 3 + 2),
        C::Rgba8 => ("8-bit RGBA", 4, 4 + 3),
        other => {
            return Err(ScanError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("colour type {other:?}; expected 16-bit grey, or 8-bit grey/RGB for rendered scans"),
            });
        }
    };
    if want == Want::RawPlane && color != C::L16 {
        return Err(raw_plane_depth(path, what));
    }
    let pixels = w as u64 * h as u64;
    // A JPEG decodes from the whole file in memory; a progressive one also holds every
    // coefficient (2 bytes per component per pixel) until the last scan.
    let jpeg_bytes = match jpeg {
        Some((progressive, components)) => file_len + if progressive { pixels * 2 * components } else { 0 },
        None => 0,
    };
    check_decode_bytes(path, limits, (w, h), what, (pixels * peak).max(pixels * decoded + jpeg_bytes))?;
    decoder.set_limits(img_limits).map_err(|e| decode_err(path, e))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, e))?;
    let (rows, cols) = (h as usize, w as usize);
    Ok(match color {
        C::L16 => Decoded::Gray16(
            Array2::from_shape_vec((rows, cols), img.into_luma16().into_raw()).map_err(|e| decode_err(path, e))?,
        ),
        C::L8 | C::La8 => Decoded::Gray8(
            Array2::from_shape_vec((rows, cols), img.into_luma8().into_raw()).map_err(|e| decode_err(path, e))?,
        ),
        _ => Decoded::Rgb8 { rows, cols, data: img.into_rgb8().into_raw() },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiff_decoder_limits_follow_ours() {
        // At the default limits, the largest page we take must fit the tiff crate's buffers:
        // 120 Mpx of 16-bit grey in a single strip (240 MB), or of 8-bit RGB (360 MB).
        let limits = Limits::default();
        let t = tiff_limits(&limits);
        let gray16 = limits.max_pixels * 2;
        let rgb8 = limits.max_pixels * 3;
        assert!(t.decoding_buffer_size as u64 >= rgb8 && t.decoding_buffer_size as u64 >= gray16);
        assert!(t.intermediate_buffer_size as u64 >= gray16 && t.intermediate_buffer_size as u64 >= rgb8);
        // Tag arrays for a page of 16 x 16 tiles at the pixel limit: offsets and byte counts.
        assert!(t.ifd_value_size as u64 >= limits.max_pixels / 256 * 16);
        // Within a small margin of what we allow: the tiff crate never outgrows our budget.
        assert!((t.decoding_buffer_size as u64) <= rgb8 + (1 << 20));
        assert!((t.decoding_buffer_size as u64) <= limits.max_decode_bytes());
        // Smaller limits give smaller decoder buffers.
        let small = tiff_limits(&Limits { max_width: 64, max_height: 64, max_pixels: 4096 });
        assert!(small.decoding_buffer_size < (2 << 20));
    }

    #[test]
    fn plain_profile_names() {
        for ok in ["synth-linac-6-4", "my.profile.json", "..x"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/etc/x", "a\\b"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
