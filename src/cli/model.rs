//! `nii-atr model`: what nii-atr makes of a model before any scan runs: the spec it would use,
//! as TOML a user can save as the model's sidecar, where that spec comes from, and the
//! model's inputs, outputs and metadata.

use nii_atr_core::detect::spec::{ResizeMode, TensorInfo};
use nii_atr_core::detect::{Detector, SessionConfig};
use nii_atr_core::scan::ScanKind;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `nii-atr model`.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// A spec file (.toml or .json) to check against the model; by default the sidecar beside
    /// the model (`model.toml` / `model.json`), else the spec inferred from the model.
    #[arg(long, value_name = "PATH")]
    pub spec: Option<PathBuf>,
}

/// Loads the model with its spec (checked against the model as `inspect` does) and prints
/// [`report`]. ONNX Runtime is loaded on first use unless the caller loaded it.
pub fn run(args: &ModelArgs) -> anyhow::Result<()> {
    let det = Detector::load(&args.model, args.spec.as_deref(), &SessionConfig::default())?;
    print!("{}", report(&det));
    Ok(())
}

fn dims(t: &TensorInfo) -> String {
    let parts: Vec<String> = t.dims.iter().map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

fn mode(resize: ResizeMode) -> &'static str {
    match resize {
        ResizeMode::Tiles => "tiles (SAHI grid at the scan's own scale)",
        ResizeMode::Letterbox => "letterbox (whole image scaled into one input, as Ultralytics)",
    }
}

/// The model's spec as a TOML document, headed by comments saying where the spec comes from,
/// how raw scans and rendered images are fed, and the model's inputs, outputs and metadata:
/// the whole text is a valid spec file.
pub fn report(det: &Detector) -> String {
    let mut out = String::new();
    let info = det.info();
    let spec = det.spec();
    let sidecar = det.path().with_extension("toml");
    let _ = writeln!(out, "# model: {}", det.path().display());
    let _ = writeln!(out, "# spec: {}", det.spec_source());
    if det.spec_source().is_inferred() {
        let _ = writeln!(out, "#   save this output as {} to use it as the model's sidecar", sidecar.display());
    }
    for (what, kind) in [("raw scans", ScanKind::Raw), ("rendered images", ScanKind::Rendered)] {
        let feed = spec.input.feed(kind);
        // The names specs use (`pseudo_red`), not Rust's.
        let channels: Vec<String> = feed
            .channels
            .iter()
            .map(|c| {
                serde_json::to_value(c.channel).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            })
            .collect();
        let _ = write!(out, "# {what}: {}, channels {}", mode(feed.resize), channels.join(", "));
        if feed.resize == ResizeMode::Letterbox {
            let _ = write!(out, ", padded with grey {}", feed.pad_value);
        }
        out.push('\n');
    }
    for (what, tensors) in [("inputs", &info.inputs), ("outputs", &info.outputs)] {
        let _ = writeln!(out, "# {what}:");
        for t in tensors {
            let _ = writeln!(out, "#   {}  {}  {}", t.name, t.element, dims(t));
        }
    }
    if let Some(g) = &info.graph_name {
        let _ = writeln!(out, "# graph name: {g}");
    }
    if !info.metadata.is_empty() {
        let _ = writeln!(out, "# metadata:");
        for (k, v) in &info.metadata {
            let _ = writeln!(out, "#   {k} = {}", v.replace(['\n', '\r'], " "));
        }
    }
    out.push('\n');
    out.push_str(&spec.to_toml());
    out
}

#[cfg(test)]
mod tests {
    use nii_atr_core::detect::spec::{DecoderSpec, ModelSpec, ResizeMode};
    use nii_atr_core::detect::{Detector, SessionConfig};
    use std::path::Path;

    #[test]
    fn the_printed_spec_is_a_sidecar_that_gives_the_same_spec() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/ultralytics/tiny_yolov8.onnx");
        let det = Detector::load(&model, None, &SessionConfig::default()).unwrap();
        let text = super::report(&det);
        assert!(text.contains("# spec: inferred from the Ultralytics export's metadata"), "{text}");
        assert!(text.contains("#   images  f32  [1, 3, 128, 128]"), "{text}");
        assert!(text.contains("#   output0  f32  [1, 6, 336]"), "{text}");
        assert!(text.contains("# rendered images: letterbox"), "{text}");
        // Saved as a sidecar, the output reads back as the very spec inferred.
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("tiny_yolov8.toml");
        std::fs::write(&saved, &text).unwrap();
        let read = ModelSpec::from_path(&saved).unwrap();
        assert_eq!(&read, det.spec());
        assert_eq!(read.name, "tiny_yolov8", "not torch's graph name");
        assert_eq!(read.input.rendered.as_ref().map(|r| r.resize), Some(ResizeMode::Letterbox));
        assert!(matches!(&read.decoder, DecoderSpec::Yolov8(h) if h.iou_threshold == 0.7));
        // The same model given that file as its spec is checked against it and says so.
        let given = Detector::load(&model, Some(&saved), &SessionConfig::default()).unwrap();
        assert!(super::report(&given).contains(&format!("# spec: given: {}", saved.display())));
    }
}
