//! The scan descriptor: a versioned JSON file that says what a scan is and where its planes are.
//!
//! Unknown fields are collected in `extra` maps at every level, so a scan written back by
//! nii-atr keeps what other tools put there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The descriptor schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything about a scan except the pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanDescriptor {
    /// Descriptor format version; this build reads [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scan's name, used in reports and in errors when no file is known.
    pub scan_id: String,
    /// Scanner profile for material discrimination: a built-in profile's name; else a file
    /// `<name>.json` (or `name` itself when it ends in `.json`) beside the descriptor, in its
    /// parent folder, or in a `profiles/` folder of either, first found wins (see
    /// [`crate::preprocess::resolve_profile`]); or the profile inline. Absent: the fallback
    /// profile of the source's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<ScannerRef>,
    /// The X-ray source and its energies.
    pub source: SourceSpec,
    /// Pixel size at the container, mm.
    pub pixel_pitch_mm: PixelPitch,
    /// Dark and air counts, or where to estimate air from.
    #[serde(default)]
    pub calibration: CalibrationSpec,
    /// The plane image files.
    pub planes: PlaneFiles,
    /// The container scanned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// The declared cargo, for declared-cargo verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A scanner profile by name or inline (kept as JSON here; `preprocess::materials` parses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScannerRef {
    /// A profile name: a built-in one or a `<name>.json` file looked up near the descriptor.
    Named(String),
    /// The profile itself, as JSON.
    Inline(Value),
}

/// The X-ray source. Energies are in `unit`: MV for linacs (nominal endpoint), kVp for tubes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// Linac, tube or unknown: sets the unit of the energies.
    pub kind: SourceKind,
    /// Endpoint energy of the high (or only) energy beam.
    pub high_energy: f32,
    /// Endpoint energy of the low-energy beam; absent for single-energy scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_energy: Option<f32>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The kind of X-ray source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Linear accelerator, energies in MV (e.g. 6/4 MV interlaced).
    Linac,
    /// X-ray tube, energies in kVp (e.g. 140/80 kVp).
    Tube,
    /// Unknown source, e.g. an already-rendered 8-bit image.
    Unknown,
}

impl SourceSpec {
    /// The unit of the energies: `MV`, `kVp`, or `?` for an unknown source.
    pub fn unit(&self) -> &'static str {
        match self.kind {
            SourceKind::Linac => "MV",
            SourceKind::Tube => "kVp",
            SourceKind::Unknown => "?",
        }
    }
}

/// Pixel pitch in mm, referred to the object (container) plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelPitch {
    /// Along the vehicle: one column is one scan line.
    pub along: f32,
    /// Vertical: one row is one detector element.
    pub vertical: f32,
}

/// Dark (offset) and air (open-beam) counts, or where to estimate air from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSpec {
    /// Dark (offset) counts, measured with the beam off. Absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dark: Option<PlaneCounts>,
    /// Air (open-beam) counts. Absent: estimated from `air_region`, else from a high
    /// percentile of the plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub air: Option<PlaneCounts>,
    /// Parts of the image where the beam passes through air only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub air_region: Option<AirRegion>,
    /// Counts at or above this are saturated (masked). Default 65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation_counts: Option<u16>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Counts for the high plane and, for dual-energy scans, the low plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneCounts {
    /// Counts of the high-energy (or only) plane.
    pub high: Counts,
    /// Counts of the low-energy plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Counts>,
}

/// One value for all detector rows, or one per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Counts {
    /// The same counts in every detector row.
    Scalar(f32),
    /// Counts per detector row, top to bottom; as many as the plane has rows.
    PerRow(Vec<f32>),
}

/// Half-open index ranges `[start, end)` of air-only image parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirRegion {
    /// Detector rows that see open beam for the whole scan (above the vehicle): follows the
    /// source's pulse-to-pulse intensity along the scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<[usize; 2]>,
    /// Scan lines taken before the vehicle enters (or after it leaves): gives per-row air counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<[usize; 2]>,
}

/// Plane image files, relative to the descriptor's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneFiles {
    /// The high-energy (or only) plane.
    pub high: PathBuf,
    /// The low-energy plane of a dual-energy scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<PathBuf>,
}

/// The container scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// ISO 6346 size-type code, e.g. `22G1` (20 ft) or `45G1` (40 ft high cube).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_type: Option<String>,
    /// ISO 6346 container number, e.g. `MSCU1234565`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the shipper declared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The container is declared empty.
    #[serde(default)]
    pub declared_empty: bool,
    /// The declared goods, one line per commodity.
    #[serde(default)]
    pub goods: Vec<ManifestLine>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One declared commodity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestLine {
    /// Harmonized System code (chapter, heading or subheading), e.g. `6109` or `610910`.
    pub hs_code: String,
    /// The goods in the shipper's words.
    #[serde(default)]
    pub description: String,
    /// Number of packages (cartons, pallets, coils).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<u32>,
    /// Declared gross mass, kg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gross_mass_kg: Option<f64>,
    /// Fields this build does not know, kept for writing back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ScanDescriptor {
    /// A minimal descriptor, as used for bare TIFFs and rendered images.
    pub fn minimal(scan_id: impl Into<String>, source: SourceSpec, planes: PlaneFiles) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            scan_id: scan_id.into(),
            scanner: None,
            source,
            pixel_pitch_mm: PixelPitch { along: 5.0, vertical: 5.0 },
            calibration: CalibrationSpec::default(),
            planes,
            container: None,
            manifest: None,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = r#"{
            "schema_version": 1, "scan_id": "s1",
            "source": {"kind": "linac", "high_energy": 6, "low_energy": 4, "vendor_mode": "interlaced"},
            "pixel_pitch_mm": {"along": 5, "vertical": 5},
            "calibration": {"dark": {"high": 100, "low": [90, 91]}, "air_region": {"rows": [0, 10]}},
            "planes": {"high": "high.tiff", "low": "low.tiff"},
            "container": {"iso_type": "45G1", "seal": "X123"},
            "manifest": {"goods": [{"hs_code": "6109", "gross_mass_kg": 8000, "consignee": "ACME"}]},
            "operator_note": {"lane": 3}
        }"#;
        let d: ScanDescriptor = serde_json::from_str(json).unwrap();
        assert_eq!(d.extra["operator_note"]["lane"], 3);
        assert_eq!(d.source.extra["vendor_mode"], "interlaced");
        assert_eq!(d.container.as_ref().unwrap().extra["seal"], "X123");
        assert_eq!(d.manifest.as_ref().unwrap().goods[0].extra["consignee"], "ACME");
        assert_eq!(d.calibration.dark.as_ref().unwrap().low, Some(Counts::PerRow(vec![90.0, 91.0])));
        let back: ScanDescriptor = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
