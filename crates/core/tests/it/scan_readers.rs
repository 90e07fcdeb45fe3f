//! Every scan reader path on real files: good scans round-trip, and hostile or broken files
//! give a typed error naming the file, in the manner of image-rs's `tests/limits.rs`: plane
//! paths leaving the scan's folder, FIFOs and devices, sizes over the limits, and the bytes a
//! decode would hold. `peak_memory_per_input_kind` (ignored) measures docs/scans.md's table.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use nii_atr_core::scan::{
    Limits, PlaneFormat, Scan, ScanError, ScanKind, read_scan, write_multipage_tiff, write_plane, write_scan,
};

fn example() -> Scan {
    nii_atr_core::example::container_scan(40.0, 1)
}

fn tiny_limits() -> Limits {
    Limits { max_width: 64, max_height: 64, max_pixels: 2048 }
}

#[test]
fn descriptor_scans_round_trip_in_tiff_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let scan = example();
    for format in [PlaneFormat::Tiff, PlaneFormat::Png] {
        let path = write_scan(&scan, &dir.path().join(format!("{format:?}")), format).unwrap();
        let back = read_scan(&path, &Limits::default()).unwrap();
        assert_eq!(back.high, scan.high);
        assert_eq!(back.low, scan.low);
        assert_eq!(back.descriptor.manifest, scan.descriptor.manifest);
        assert_eq!(back.kind, ScanKind::Raw);
        // A folder holding scan.json reads the same.
        let via_dir = read_scan(path.parent().unwrap(), &Limits::default()).unwrap();
        assert_eq!(via_dir.high, scan.high);
    }
}

#[test]
fn unknown_descriptor_fields_survive_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scan(&example(), &dir.path().join("a"), PlaneFormat::Png).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["vendor"] = serde_json::json!({"model": "X-9", "lane": 4});
    json["container"]["seal"] = "S-77".into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let scan = read_scan(&path, &Limits::default()).unwrap();
    let out = write_scan(&scan, &dir.path().join("b"), PlaneFormat::Tiff).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(again["vendor"]["model"], "X-9");
    assert_eq!(again["container"]["seal"], "S-77");
}

#[test]
fn bare_multipage_tiff_is_a_dual_energy_scan_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let scan = example();
    let path = dir.path().join("bare.tif");
    write_multipage_tiff(&path, &[&scan.high, scan.low.as_ref().unwrap()]).unwrap();
    let back = read_scan(&path, &Limits::default()).unwrap();
    assert!(back.is_dual_energy());
    assert_eq!(back.low, scan.low);
    assert_eq!(back.descriptor.source.low_energy, Some(4.0));
    // With no air counts given, calibration estimates air from the brightest counts.
    let pre = nii_atr_core::preprocess::preprocess(&back, &Default::default()).unwrap();
    assert!(pre.attenuation.high.iter().all(|v| v.is_finite()));
}

#[test]
fn rendered_8bit_images_are_a_degraded_single_view() {
    let dir = tempfile::tempdir().unwrap();
    let grey = image::GrayImage::from_fn(40, 20, |x, _| image::Luma([(x * 6) as u8]));
    let rgb = image::RgbImage::from_fn(40, 20, |x, _| image::Rgb([200, (x * 6) as u8, 30]));
    for (name, save) in [
        ("grey.png", Box::new(|p: &Path| grey.save(p).unwrap()) as Box<dyn Fn(&Path)>),
        ("rgb.png", Box::new(|p: &Path| rgb.save(p).unwrap())),
        ("rgb.jpg", Box::new(|p: &Path| rgb.save(p).unwrap())),
        ("grey.tif", Box::new(|p: &Path| grey.save(p).unwrap())),
    ] {
        let path = dir.path().join(name);
        save(&path);
        let scan = read_scan(&path, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(scan.kind, ScanKind::Rendered, "{name}");
        assert_eq!((scan.rows(), scan.columns()), (20, 40));
        let pre = nii_atr_core::preprocess::preprocess(&scan, &Default::default()).unwrap();
        // Brighter grey is less attenuation.
        assert!(pre.attenuation.high[[5, 2]] > pre.attenuation.high[[5, 38]], "{name}");
    }
}

#[test]
fn rendered_images_keep_their_colour_planes() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = image::RgbImage::from_fn(40, 20, |x, y| image::Rgb([200, (x * 6) as u8, (y * 9) as u8]));
    rgb.save(dir.path().join("rgb.png")).unwrap();
    // Alpha is dropped, not blended over anything (OpenCV's IMREAD_COLOR).
    let rgba = image::RgbaImage::from_fn(40, 20, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        image::Rgba([p[0], p[1], p[2], (x * 5) as u8])
    });
    rgba.save(dir.path().join("rgba.png")).unwrap();
    for name in ["rgb.png", "rgba.png"] {
        let scan = read_scan(&dir.path().join(name), &Limits::default()).unwrap();
        assert_eq!(scan.rgb.as_ref(), Some(&rgb), "{name}: the planes as decoded");
    }
    // A grey image gives R = G = B, as OpenCV reads it in colour.
    let grey = image::GrayImage::from_fn(40, 20, |x, y| image::Luma([(x * 6 + y) as u8]));
    grey.save(dir.path().join("grey.png")).unwrap();
    let scan = read_scan(&dir.path().join("grey.png"), &Limits::default()).unwrap();
    let planes = scan.rgb.expect("grey images have colour planes too");
    assert!(grey.enumerate_pixels().all(|(x, y, g)| planes.get_pixel(x, y).0 == [g.0[0]; 3]));
    // Raw scans have none.
    let raw = nii_atr_core::example::block_scan(8, 8, &[]);
    assert!(raw.rgb.is_none());
}

fn assert_err(path: &Path, limits: &Limits, check: impl Fn(&ScanError) -> bool, needle: &str) {
    let err = read_scan(path, limits).expect_err("must fail");
    let msg = err.to_string();
    assert!(check(&err), "wrong variant for {}: {msg}", path.display());
    assert!(msg.contains(&path.file_name().unwrap().to_string_lossy().to_string()), "error must name the file: {msg}");
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
}

/// A minimal little-endian TIFF whose header claims `width` x `height` 16-bit pixels but
/// carries only 8 bytes of data.
fn tiff_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend(8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 16),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 8 * 12 + 4),
        (278, 4, 1, height),
        (279, 4, 1, width.saturating_mul(height).saturating_mul(2)),
    ];
    b.extend((entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        b.extend(tag.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(count.to_le_bytes());
        if ty == 3 {
            b.extend((value as u16).to_le_bytes());
            b.extend([0, 0]);
        } else {
            b.extend(value.to_le_bytes());
        }
    }
    b.extend(0u32.to_le_bytes());
    b.extend([0u8; 8]);
    b
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid 16-bit PNG with its IHDR patched to claim other dimensions (CRC fixed up).
fn png_claiming(dir: &Path, width: u32, height: u32) -> PathBuf {
    let path = dir.join(format!("claims-{width}x{height}.png"));
    write_plane(&Array2::from_elem((4, 4), 1000u16), &path, PlaneFormat::Png).unwrap();
    let mut b = std::fs::read(&path).unwrap();
    b[16..20].copy_from_slice(&width.to_be_bytes());
    b[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, b).unwrap();
    path
}

#[test]
fn absurd_dimensions_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h, needle) in [(1_000_000, 10, "width"), (10, 1_000_000, "height"), (60_000, 60_000, "width")] {
        let path = dir.path().join(format!("claims-{w}x{h}.tif"));
        std::fs::write(&path, tiff_claiming(w, h)).unwrap();
        assert_err(&path, &Limits::default(), |e| matches!(e, ScanError::Limits { .. }), needle);
        let png = png_claiming(dir.path(), w, h);
        assert_err(&png, &Limits::default(), |e| matches!(e, ScanError::Limits { .. }), needle);
    }
    // Within width and height limits, but too many pixels.
    let path = dir.path().join("many.tif");
    std::fs::write(&path, tiff_claiming(60, 60)).unwrap();
    assert_err(&path, &tiny_limits(), |e| matches!(e, ScanError::Limits { .. }), "pixels");
    let path = dir.path().join("zero.tif");
    std::fs::write(&path, tiff_claiming(0, 5)).unwrap();
    assert!(read_scan(&path, &Limits::default()).is_err());
}

/// A little-endian 16-bit grey TIFF of `width` x `height` in one uncompressed strip, pixel
/// `(r, c)` = `(r * 7 + c) % 65536`, written as it is made (the data is never held whole).
fn write_single_strip_tiff(path: &Path, width: u32, height: u32) {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 16),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 8 * 12 + 4),
        (278, 4, height),
        (279, 4, width * height * 2),
    ];
    let mut b = b"II*\0".to_vec();
    b.extend(8u32.to_le_bytes());
    b.extend((entries.len() as u16).to_le_bytes());
    for (tag, ty, value) in entries {
        b.extend(tag.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        if ty == 3 {
            b.extend((value as u16).to_le_bytes());
            b.extend([0, 0]);
        } else {
            b.extend(value.to_le_bytes());
        }
    }
    b.extend(0u32.to_le_bytes());
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(&b).unwrap();
    let mut row = Vec::with_capacity(width as usize * 2);
    for r in 0..height {
        row.clear();
        row.extend((0..width).flat_map(|c| (((r * 7 + c) % 65536) as u16).to_le_bytes()));
        out.write_all(&row).unwrap();
    }
    out.flush().unwrap();
}

#[test]
fn a_single_strip_tiff_above_the_tiff_crates_default_limits_decodes() {
    // 11,200 x 6,000 16-bit in one strip: 134.4 MB, over the tiff crate's 128 MiB default for
    // one strip, well inside our limits. The full 120 Mpx case is checked on the computed
    // decoder limits (scan::read's unit tests): writing 240 MB here would slow every run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strip.tif");
    let (w, h) = (11_200u32, 6_000u32);
    write_single_strip_tiff(&path, w, h);
    assert!(std::fs::metadata(&path).unwrap().len() > 128 << 20);
    let scan = read_scan(&path, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((scan.columns(), scan.rows()), (w as usize, h as usize));
    for (r, c) in [(0usize, 0usize), (5999, 11_199), (3000, 42)] {
        assert_eq!(scan.high[[r, c]], ((r * 7 + c) % 65536) as u16);
    }
    // The same file under limits it breaks is refused by our check, with our message.
    let tight = Limits { max_pixels: 60_000_000, ..Limits::default() };
    assert_err(&path, &tight, |e| matches!(e, ScanError::Limits { .. }), "pixels exceed the limit");
}

/// A baseline RGB JPEG of `w` x `h` from the image crate; with `progressive` its frame marker
/// is patched to SOF2, enough for the header checks that run before any decoding.
fn jpeg_file(path: &Path, w: u32, h: u32, progressive: bool) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 9) as u8, 80]));
    img.save(path).unwrap();
    if progressive {
        let mut b = std::fs::read(path).unwrap();
        let at = b.windows(2).position(|m| m == [0xFF, 0xC0]).expect("a baseline frame marker");
        b[at + 1] = 0xC2;
        std::fs::write(path, b).unwrap();
    }
}

#[test]
fn decode_bytes_are_checked_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // 40 x 25 = 1,000 pixels at a limit of 1,000: 8,000 bytes may be held. A baseline JPEG
    // holds its file and 5 bytes a pixel; a progressive one also every coefficient (2 bytes
    // per component per pixel), which does not fit.
    let limits = Limits { max_width: 64, max_height: 64, max_pixels: 1_000 };
    let baseline = dir.path().join("baseline.jpg");
    jpeg_file(&baseline, 40, 25, false);
    assert_eq!(read_scan(&baseline, &limits).unwrap().kind, ScanKind::Rendered);
    let progressive = dir.path().join("progressive.jpg");
    jpeg_file(&progressive, 40, 25, true);
    assert_err(&progressive, &limits, |e| matches!(e, ScanError::Limits { .. }), "bytes, over the 8000 allowed");
    // A JPEG file larger than a read may hold is refused before the decoder reads it whole.
    let big = dir.path().join("big.jpg");
    jpeg_file(&big, 40, 25, false);
    let f = std::fs::OpenOptions::new().append(true).open(&big).unwrap();
    f.set_len(9_000).unwrap();
    assert_err(&big, &limits, |e| matches!(e, ScanError::File(_)), "over the limit");
    // A raw plane of the wrong depth is refused from its header, before decoding.
    let folder = dir.path().join("s");
    let path = scan_with_planes(&folder, "high.png", "rgb.png");
    image::RgbImage::new(8, 8).save(folder.join("rgb.png")).unwrap();
    let err = read_scan(&path, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("rgb.png: unsupported image: plane is 8-bit RGB; raw scan planes must be 16-bit grey"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_decode_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scan = example();
    let good = write_scan(&scan, &dir.path().join("s"), PlaneFormat::Tiff).unwrap();
    let high = good.parent().unwrap().join("high.tiff");
    let bytes = std::fs::read(&high).unwrap();
    // Truncated plane: the descriptor read fails naming the plane file.
    std::fs::write(&high, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_scan(&good, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Decode { .. }) && err.to_string().contains("high.tiff"), "{err}");
    // The small TIFF claiming 60x60 but holding 8 bytes is truncated too.
    let path = dir.path().join("short.tif");
    std::fs::write(&path, tiff_claiming(60, 60)).unwrap();
    assert_err(&path, &Limits::default(), |e| matches!(e, ScanError::Decode { .. }), "decode");
    // Garbage with a TIFF name, a PNG cut short, an empty file.
    let path = dir.path().join("garbage.tiff");
    std::fs::write(&path, b"this is not an image at all").unwrap();
    assert_err(&path, &Limits::default(), |e| matches!(e, ScanError::Unsupported { .. }), "not a TIFF");
    let png = dir.path().join("cut.png");
    write_plane(&scan.high, &png, PlaneFormat::Png).unwrap();
    let b = std::fs::read(&png).unwrap();
    std::fs::write(&png, &b[..b.len() / 3]).unwrap();
    assert_err(&png, &Limits::default(), |e| matches!(e, ScanError::Decode { .. }), "decode");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_err(&empty, &Limits::default(), |e| matches!(e, ScanError::Decode { .. }), "0 bytes");
}

#[test]
fn descriptor_problems_name_the_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let scan = example();
    let path = write_scan(&scan, &dir.path().join("s"), PlaneFormat::Png).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let folder = path.parent().unwrap().to_path_buf();
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|j| j["planes"]["low"] = "missing.png".into()), "missing.png"),
        (Box::new(|j| j["schema_version"] = 9.into()), "schema_version 9"),
        (Box::new(|j| j["pixel_pitch_mm"]["along"] = (-1.0).into()), "pixel_pitch_mm"),
        (Box::new(|j| j["calibration"]["dark"]["high"] = (-5.0).into()), "non-negative"),
        (Box::new(|j| j["calibration"]["dark"]["low"] = serde_json::json!([1.0, 2.0])), "detector rows"),
        (Box::new(|j| j["source"]["low_energy"] = serde_json::Value::Null), "low_energy"),
        (Box::new(|j| j["calibration"]["air_region"]["rows"] = serde_json::json!([5, 100000])), "air_region.rows"),
        (Box::new(|j| j["scan_id"] = 5.into()), "invalid scan descriptor"),
    ];
    for (i, (mutate, needle)) in cases.iter().enumerate() {
        let mut j = original.clone();
        mutate(&mut j);
        let p = folder.join(format!("case{i}.json"));
        std::fs::write(&p, serde_json::to_vec(&j).unwrap()).unwrap();
        let err = read_scan(&p, &Limits::default()).expect_err(needle);
        let msg = err.to_string();
        assert!(msg.contains(needle), "case {i}: expected `{needle}` in: {msg}");
        assert!(msg.contains(".json") || msg.contains(".png"), "case {i} must name a file: {msg}");
    }
    let p = folder.join("broken.json");
    std::fs::write(&p, b"{\"schema_version\": 1, \"scan_id\": ").unwrap();
    assert_err(&p, &Limits::default(), |e| matches!(e, ScanError::Descriptor { .. }), "EOF");
}

#[test]
fn descriptor_type_errors_name_the_field_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scan(&example(), &dir.path().join("s"), PlaneFormat::Png).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|j| j["pixel_pitch_mm"]["along"] = "x".into()),
            r#"field pixel_pitch_mm.along: expected a number, found the string "x""#,
        ),
        (
            Box::new(|j| j["schema_version"] = (-1).into()),
            "field schema_version: expected a whole number from 0 to 4294967295, found -1",
        ),
        (
            Box::new(|j| j["calibration"]["saturation_counts"] = 70000.into()),
            "field calibration.saturation_counts: expected a whole number from 0 to 65535, found 70000",
        ),
        (
            Box::new(|j| j["calibration"]["dark"]["high"] = "hot".into()),
            "field calibration.dark.high: expected a number, or a list of numbers",
        ),
        (
            Box::new(|j| j["manifest"]["goods"][0]["hs_code"] = 6109.into()),
            "field manifest.goods[0].hs_code: expected a string, found 6109",
        ),
        (
            Box::new(|j| j["source"]["kind"] = "laser".into()),
            r#"field source.kind: expected one of `linac`, `tube`, `unknown`, found "laser""#,
        ),
        (
            Box::new(|j| {
                j["planes"].as_object_mut().unwrap().remove("high");
            }),
            "field planes.high: required, but missing",
        ),
        (
            Box::new(|j| j["pixel_pitch_mm"] = "wide".into()),
            r#"field pixel_pitch_mm: expected an object, found the string "wide""#,
        ),
    ];
    for (i, (mutate, needle)) in cases.iter().enumerate() {
        let mut j = original.clone();
        mutate(&mut j);
        // Pretty-printed: the error must not point at a line of a long file instead of the field.
        let p = path.parent().unwrap().join(format!("typed{i}.json"));
        std::fs::write(&p, serde_json::to_vec_pretty(&j).unwrap()).unwrap();
        let err = read_scan(&p, &Limits::default()).expect_err(needle);
        let msg = err.to_string();
        assert!(matches!(err, ScanError::Descriptor { .. }), "case {i}: {msg}");
        assert!(
            msg.contains(needle) && msg.contains(&format!("typed{i}.json")),
            "case {i}: expected `{needle}` in: {msg}"
        );
        for jargon in ["f32", "u16", "u32", "invalid type", "at line", "struct "] {
            assert!(!msg.contains(jargon), "case {i}: `{jargon}` in: {msg}");
        }
    }
}

#[test]
fn errors_name_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scan(&example(), &dir.path().join("s"), PlaneFormat::Png).unwrap();
    std::fs::remove_file(path.parent().unwrap().join("low.png")).unwrap();
    let err = read_scan(&path, &Limits::default()).unwrap_err();
    // Printed alone or with its chain of sources, the operating system's words come once.
    for text in [err.to_string(), nii_atr_core::error_chain(&err)] {
        assert_eq!(text.matches("No such file or directory").count(), 1, "{text}");
        assert!(text.contains("low.png"), "{text}");
    }
    let p = path.parent().unwrap().join("bad.json");
    std::fs::write(&p, br#"{"schema_version": "1"}"#).unwrap();
    let err = read_scan(&p, &Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), nii_atr_core::error_chain(&err));
}

/// A descriptor written by `write_scan` into `dir`, with its planes renamed per `planes`.
fn scan_with_planes(dir: &Path, high: &str, low: &str) -> PathBuf {
    let path = write_scan(&example(), dir, PlaneFormat::Png).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["planes"]["high"] = high.into();
    json["planes"]["low"] = low.into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn plane_paths_must_stay_inside_the_scan_folder() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    write_plane(&example().high, &outside.join("x.png"), PlaneFormat::Png).unwrap();
    let folder = root.path().join("scan");
    let abs = outside.join("x.png").display().to_string();
    for (high, low, field, needle) in [
        (abs.as_str(), "low.png", "planes.high", "an absolute path"),
        ("high.png", "../elsewhere/x.png", "planes.low", r#""../elsewhere/x.png" is outside the scan's folder"#),
        ("link-out.png", "low.png", "planes.high", r#""link-out.png" is outside the scan's folder"#),
        ("high.png", "sub/../../elsewhere/x.png", "planes.low", "is outside the scan's folder"),
    ] {
        let path = scan_with_planes(&folder, high, low);
        let _ = std::fs::remove_file(folder.join("link-out.png"));
        symlink(outside.join("x.png"), folder.join("link-out.png")).unwrap();
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        let err = read_scan(&path, &Limits::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ScanError::PlanePath { field: f, .. } if f == field), "{high} {low}: {msg}");
        assert!(msg.contains("scan.json") && msg.contains(field) && msg.contains(needle), "{msg}");
    }
    // A symbolic link that stays inside the folder is fine, and so is `sub/../high.png`.
    let path = scan_with_planes(&folder, "data/h.png", "sub/../low.png");
    std::fs::create_dir_all(folder.join("data")).unwrap();
    let _ = std::fs::remove_file(folder.join("data/h.png"));
    symlink(folder.join("high.png"), folder.join("data/h.png")).unwrap();
    let scan = read_scan(&path, &Limits::default()).unwrap();
    assert_eq!(scan.high, example().high);
    // A scan folder reached through a symbolic link is still its own folder.
    symlink(&folder, root.path().join("alias")).unwrap();
    read_scan(&root.path().join("alias/scan.json"), &Limits::default()).unwrap();
    // A scanner profile name is a name, not a path.
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["scanner"] = "../../etc/profile".into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert_err(&path, &Limits::default(), |e| matches!(e, ScanError::DescriptorContent { .. }), "not a path");
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_at_once() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let fifo = |name: &str| {
        let p = dir.path().join(name);
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        p
    };
    // Given as the scan, as a descriptor, or reached through a link to a device: each would
    // block (or read endless bytes) if opened; each is refused from its file type.
    let mut inputs = vec![fifo("pipe.tif"), fifo("pipe.png"), fifo("pipe.jpg"), fifo("scan.json")];
    for name in ["null.png", "null.json", "stdin.tiff"] {
        let target = if name.starts_with("stdin") { "/dev/stdin" } else { "/dev/null" };
        symlink(target, dir.path().join(name)).unwrap();
        inputs.push(dir.path().join(name));
    }
    for p in &inputs {
        let err = read_scan(p, &Limits::default()).unwrap_err();
        let msg = err.to_string();
        // /dev/stdin is a terminal, a pipe or a file depending on how the tests run.
        if p.ends_with("stdin.tiff") {
            continue;
        }
        assert!(matches!(err, ScanError::File(_)) && msg.contains("not a regular file"), "{}: {msg}", p.display());
        assert!(msg.contains(&p.file_name().unwrap().to_string_lossy().to_string()), "{msg}");
    }
    // A plane file that is a FIFO inside the scan's folder.
    let folder = dir.path().join("s");
    let path = scan_with_planes(&folder, "high.png", "plane-pipe.png");
    assert!(std::process::Command::new("mkfifo").arg(folder.join("plane-pipe.png")).status().unwrap().success());
    let err = read_scan(&path, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::File(_)), "{err}");
    assert!(err.to_string().contains("plane-pipe.png: not a regular file (a FIFO)"), "{err}");
    // A profile file (the `--profile` of info/render) that is a FIFO or a device.
    let profile = nii_atr_core::preprocess::materials::MaterialProfile::load(&fifo("profile.json")).unwrap_err();
    assert!(profile.to_string().contains("not a regular file (a FIFO)"), "{profile}");
    let profile = nii_atr_core::preprocess::materials::MaterialProfile::load(Path::new("/dev/null")).unwrap_err();
    assert!(profile.to_string().contains("not a regular file (a device)"), "{profile}");
}

#[test]
fn oversized_text_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(nii_atr_core::scan::MAX_DESCRIPTOR_BYTES + 1).unwrap();
    assert_err(&path, &Limits::default(), |e| matches!(e, ScanError::File(_)), "over the limit");
    f.set_len(nii_atr_core::preprocess::materials::MAX_PROFILE_BYTES + 1).unwrap();
    let e = nii_atr_core::preprocess::materials::MaterialProfile::load(&path).unwrap_err().to_string();
    assert!(e.contains("huge.json") && e.contains("over the limit"), "{e}");
}

#[test]
fn mismatched_planes_and_wrong_bit_depth_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scan = example();
    let path = write_scan(&scan, &dir.path().join("s"), PlaneFormat::Png).unwrap();
    let folder = path.parent().unwrap();
    // Low plane one column short.
    let low = scan.low.as_ref().unwrap().slice(ndarray::s![.., 1..]).to_owned();
    write_plane(&low, &folder.join("low.png"), PlaneFormat::Png).unwrap();
    let err = read_scan(&path, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::PlaneMismatch { .. }) && err.to_string().contains("low.png"), "{err}");
    // An 8-bit plane where a raw 16-bit one is required.
    image::GrayImage::new(scan.columns() as u32, scan.rows() as u32).save(folder.join("low.png")).unwrap();
    let err = read_scan(&path, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Unsupported { .. }) && err.to_string().contains("16-bit"), "{err}");
    // Bare TIFF pages of different sizes.
    let bare = dir.path().join("pages.tif");
    write_multipage_tiff(&bare, &[&scan.high, &low]).unwrap();
    assert_err(&bare, &Limits::default(), |e| matches!(e, ScanError::PlaneMismatch { .. }), "differ");
    // Unknown extension, no extension, and missing files (a mistyped folder or file is "not
    // found", never an unknown type).
    std::fs::write(dir.path().join("scan.xyz"), b"x").unwrap();
    assert_err(
        &dir.path().join("scan.xyz"),
        &Limits::default(),
        |e| matches!(e, ScanError::Unsupported { .. }),
        ".xyz",
    );
    std::fs::write(dir.path().join("scan"), b"x").unwrap();
    assert_err(
        &dir.path().join("scan"),
        &Limits::default(),
        |e| matches!(e, ScanError::Unsupported { .. }),
        "no file extension",
    );
    assert_err(
        &dir.path().join("no-such-folder"),
        &Limits::default(),
        |e| matches!(e, ScanError::Io { .. }),
        "No such file",
    );
    assert_err(&dir.path().join("gone.xyz"), &Limits::default(), |e| matches!(e, ScanError::Io { .. }), "No such file");
    assert_err(
        &dir.path().join("nope.json"),
        &Limits::default(),
        |e| matches!(e, ScanError::Io { .. }),
        "No such file",
    );
}

/// VmHWM (peak resident set) of this process, kB.
fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Run by `peak_memory_per_input_kind` in a child process: reads `NII_ATR_READ`
/// (`<kind>\t<path>`) and prints the peak resident set and how many items were read.
#[test]
#[ignore = "a child of peak_memory_per_input_kind"]
fn read_child() {
    let Ok(what) = std::env::var("NII_ATR_READ") else { return };
    let (kind, path) = what.split_once('\t').unwrap();
    let path = Path::new(path);
    let items = match kind {
        "scan" => read_scan(path, &Limits::default()).map(|s| s.rows() * s.columns()).unwrap_or(0),
        "profile" => nii_atr_core::preprocess::materials::MaterialProfile::load(path).map(|_| 1).unwrap_or(0),
        "reference" => {
            nii_atr_core::verify::CommodityReference::with_extra(Some(path)).map(|r| r.lines.len()).unwrap_or(0)
        }
        "truth" => nii_atr_core::truth::read_truth(path).map(|t| t.len()).unwrap_or(0),
        // Both fail their schema after parsing; the peak is the parse.
        "config" => nii_atr_core::PipelineConfig::load(path).map(|_| 1).unwrap_or(0),
        "spec" => nii_atr_core::detect::spec::ModelSpec::from_path(path).map(|_| 1).unwrap_or(0),
        other => panic!("{other}"),
    };
    println!("VMHWM_KB {} {items}", vm_hwm_kb());
}

/// A real truth record (one line of a generated split) with one threat.
const TRUTH_LINE: &str = r#"{"schema_version":1,"case_id":"demo-test-000002","split":"test","index":2,"seed":16221156129788777420,"scan":"demo-test-000002/scan.json","width":2599,"height":805,"container":"42G1","declared":{"declared_empty":false,"goods":[{"hs_code":"0202","description":"Frozen bovine meat, boneless and bone-in cuts, in cartons","packages":545,"gross_mass_kg":20860.0}]},"load":[{"commodity":"frozen_meat","hs_code":"0202","packages":545,"mass_kg":20863.0}],"empty":false,"mismatch":{"kind":"none","detail":""},"threats":[{"category":"cigarettes","bbox":[845,276,348,224],"footprint_pixels":77952,"cnr":103.947,"contrast":0.859,"difficulty":"easy","hard_mode":false,"depth_m":1.173,"occlusion_g_cm2":14.977,"mass_kg":338.67,"material":"tobacco","yaw_deg":0.0,"concealment":"in place of cargo packages"}],"artefacts":[]}"#;

/// Writes `text` followed by `"1,"` up to `size` bytes and `tail`: the costliest filler for a
/// parser that builds a tree (one node per two bytes).
fn write_filled(path: &Path, head: &str, size: u64, tail: &str) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(head.as_bytes()).unwrap();
    let n = (size as usize - head.len() - tail.len() - 1) / 2;
    out.write_all(&b"1,".repeat(n)).unwrap();
    out.write_all(b"1").unwrap();
    out.write_all(tail.as_bytes()).unwrap();
}

/// Peak memory of reading the largest file each reader admits, per input kind, each in a child
/// process (docs/scans.md): images at `Limits::default()`, text files at their caps filled the
/// costliest way. Needs ~2 GB of disk and about a minute:
/// `cargo test -p nii-atr-core --test it -- --ignored peak_memory --nocapture`.
#[test]
#[ignore = "writes ~2 GB of files; run by hand to refresh docs/scans.md"]
fn peak_memory_per_input_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (20_000u32, 6_000u32);
    let ramp16 = |x: u32, y: u32| ((x * 3 + y * 11) % 60_000) as u16;
    let ramp8 = |x: u32, y: u32| ((x + y * 3) % 251) as u8;
    let plane = Array2::from_shape_fn((h as usize, w as usize), |(r, c)| ramp16(c as u32, r as u32));
    let mut kinds: Vec<(&str, &str, PathBuf)> = Vec::new();
    let tiny = dir.path().join("tiny.png");
    write_plane(&Array2::from_elem((8, 8), 1000u16), &tiny, PlaneFormat::Png).unwrap();
    let mut scan = example();
    scan.high = plane.clone();
    scan.low = Some(plane.clone());
    scan.descriptor.calibration = Default::default();
    for (format, name) in [
        (PlaneFormat::Tiff, "descriptor + two 16-bit TIFF planes"),
        (PlaneFormat::Png, "descriptor + two 16-bit PNG planes"),
    ] {
        kinds.push(("scan", name, write_scan(&scan, &dir.path().join(format!("{format:?}")), format).unwrap()));
    }
    let bare = dir.path().join("bare.tif");
    write_multipage_tiff(&bare, &[&plane, &plane]).unwrap();
    kinds.push(("scan", "bare two-page 16-bit TIFF", bare));
    let strip = dir.path().join("strip.tif");
    write_single_strip_tiff(&strip, w, h);
    kinds.push(("scan", "bare one-page 16-bit TIFF, one strip", strip));
    drop(plane);
    let grey = dir.path().join("grey.png");
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([ramp8(x, y)])).save(&grey).unwrap();
    kinds.push(("scan", "8-bit grey PNG", grey));
    let rgb = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([ramp8(x, y), ramp8(y, x), 80]));
    for (name, file) in
        [("8-bit RGB PNG", "rgb.png"), ("8-bit RGB TIFF", "rgb.tif"), ("8-bit RGB JPEG (baseline)", "rgb.jpg")]
    {
        let p = dir.path().join(file);
        rgb.save(&p).unwrap();
        kinds.push(("scan", name, p));
    }
    drop(rgb);
    let rgba = dir.path().join("rgba.png");
    image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([ramp8(x, y), ramp8(y, x), 80, 255])).save(&rgba).unwrap();
    kinds.push(("scan", "8-bit RGBA PNG", rgba));
    // Text inputs at their caps. A descriptor's unknown fields are kept (as JSON values).
    let big = dir.path().join("big").join("scan.json");
    let small = write_scan(&example(), big.parent().unwrap(), PlaneFormat::Png).unwrap();
    let text = std::fs::read_to_string(&small).unwrap();
    let head = format!("{}, \"vendor_log\": [", text.trim_end().strip_suffix('}').unwrap());
    write_filled(&big, &head, nii_atr_core::scan::MAX_DESCRIPTOR_BYTES, "]}");
    kinds.push(("scan", "descriptor at its cap, an unknown field of small numbers", big));
    let profile = dir.path().join("profile.json");
    let fallback = nii_atr_core::preprocess::materials::fallback_profile(nii_atr_core::scan::SourceKind::Linac);
    let text = serde_json::to_string(&fallback).unwrap();
    // `references` is the last field: keep what comes before it, then one very long curve.
    let before = text.split(",\"references\"").next().unwrap();
    let head =
        format!("{before}, \"references\": [{{\"material\": \"x\", \"z_eff\": 1, \"r_value\": [], \"a_high\": [");
    write_filled(&profile, &head, nii_atr_core::preprocess::materials::MAX_PROFILE_BYTES, "]}]}");
    kinds.push(("profile", "profile at its cap, one long curve", profile));
    let reference = dir.path().join("reference.toml");
    write_filled(
        &reference,
        "schema_version = 1\nfiller = [",
        nii_atr_core::verify::reference::MAX_REFERENCE_BYTES,
        "]\n",
    );
    kinds.push(("reference", "commodity reference (TOML) at its cap, one long list", reference));
    let config = dir.path().join("pipeline.toml");
    write_filled(&config, "schema_version = 1\nfiller = [", nii_atr_core::inspect::config::MAX_CONFIG_BYTES, "]\n");
    kinds.push(("config", "pipeline config (TOML) at its cap, one long list", config));
    let spec = dir.path().join("spec.toml");
    write_filled(&spec, "schema_version = 1\nfiller = [", nii_atr_core::detect::spec::MAX_SPEC_BYTES, "]\n");
    kinds.push(("spec", "model spec (TOML) at its cap, one long list", spec));
    let truth = dir.path().join("truth");
    std::fs::create_dir(&truth).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(truth.join("truth.jsonl")).unwrap());
    let lines = nii_atr_core::truth::MAX_TRUTH_BYTES as usize / (TRUTH_LINE.len() + 1);
    for _ in 0..lines {
        writeln!(out, "{TRUTH_LINE}").unwrap();
    }
    drop(out);
    kinds.push(("truth", "truth.jsonl at its cap, real records", truth));
    let hostile = dir.path().join("hostile");
    std::fs::create_dir(&hostile).unwrap();
    let empties = (nii_atr_core::truth::MAX_TRUTH_LINE_BYTES - TRUTH_LINE.len()) / 3 - 2;
    let record = TRUTH_LINE.replace(r#""artefacts":[]"#, &format!(r#""artefacts":[{}""]"#, r#""","#.repeat(empties)));
    let mut out = std::io::BufWriter::new(std::fs::File::create(hostile.join("truth.jsonl")).unwrap());
    for _ in 0..nii_atr_core::truth::MAX_TRUTH_BYTES as usize / (record.len() + 1) {
        writeln!(out, "{record}").unwrap();
    }
    drop(out);
    kinds.push(("truth", "truth.jsonl at its cap, lines at their cap of empty strings", hostile));

    let run = |kind: &str, path: &Path| -> (u64, usize) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "scan_readers::read_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("NII_ATR_READ", format!("{kind}\t{}", path.display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // libtest prints the test's name on the same line, before its output.
        let at = text.find("VMHWM_KB").unwrap_or_else(|| panic!("{text}"));
        let mut parts = text[at..].split_whitespace().skip(1);
        (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap())
    };
    let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
    let (base, _) = run("scan", &tiny);
    println!("baseline (test process reading an 8 x 8 plane): {:.0} MB", mb(base));
    println!("| input | items read | file MB | peak above baseline, MB |");
    println!("|---|---|---|---|");
    for (kind, name, path) in &kinds {
        let (peak, items) = run(kind, path);
        let file_bytes: u64 = if path.is_dir() || path.extension().is_some_and(|e| e == "json") && *kind == "scan" {
            let folder = if path.is_dir() { path.as_path() } else { path.parent().unwrap() };
            std::fs::read_dir(folder).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum()
        } else {
            std::fs::metadata(path).unwrap().len()
        };
        let above = mb(peak.saturating_sub(base));
        println!("| {name} | {items} | {:.1} | {above:.0} |", file_bytes as f64 / 1e6);
        assert!(above * 1e6 <= Limits::default().max_decode_bytes() as f64, "{name}: {above} MB");
    }
}
