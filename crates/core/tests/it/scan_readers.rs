//! Every scan reader path on real files: good scans round-trip, and hostile or broken files
//! give a typed error naming the file, in the manner of image-rs's `tests/limits.rs`.

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
