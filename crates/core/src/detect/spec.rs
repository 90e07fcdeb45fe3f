//! Model specs: what a detector is, how to feed it and how to read its outputs.
//!
//! A spec is a sidecar file next to the model (`model.toml` or `model.json` beside
//! `model.onnx`), schema version 1:
//!
//! ```toml
//! schema_version = 1
//! name = "knife-gun-yolov8"
//! version = "2024.1"
//! task = "detect"                  # detect | anomaly_map | classify
//! score_threshold = 0.25           # default for every class
//!
//! [input]
//! name = "images"
//! layout = "nchw"
//! width = 640
//! height = 640
//! channels = [                   # the scan core's channel recipe, in model order
//!   { channel = "attenuation_high", mean = 0.0, std = 4.0 },
//!   { channel = "attenuation_low", mean = 0.0, std = 4.0 },
//!   { channel = "r_value" },        # mean 0, std 1 by default
//! ]
//! resize = "tiles"                 # tiles (SAHI grid, default) | letterbox (whole image, Ultralytics)
//!
//! [input.rendered]                 # optional: how rendered 8-bit images are fed instead
//! resize = "letterbox"
//! pad_value = 114                  # letterbox grey of 8-bit channels
//! channels = [{ channel = "red" }, { channel = "green" }, { channel = "blue" }]
//!
//! [decoder]
//! kind = "yolov8"                  # yolov8 | yolov5 | end_to_end | anomalib | classification
//! output = "output0"
//! iou_threshold = 0.45
//! max_detections = 300
//! nms = "standard"                 # standard | ultralytics (its exact candidate filter and NMS)
//!
//! [[classes]]
//! name = "knife"
//! threat = "weapon"
//! score_threshold = 0.4            # optional, overrides the default
//! ```
//!
//! Without a sidecar, [`infer_spec`] builds one from the ONNX metadata (Ultralytics exports
//! carry `names`, `imgsz`, `stride`, `task`) and the output shapes; an Ultralytics detector is
//! then fed rendered images exactly as Ultralytics feeds them (letterbox, RGB, its NMS).
//! [`validate`] then checks the spec against the model's real inputs and outputs before any
//! scan runs.

use super::decode::classify::Activation;
use super::decode::{BoxParams, NmsRule};
use crate::preprocess::tiles::{Channel, ChannelRecipe, ChannelSpec};
use crate::scan::ScanKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The spec schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest input side (pixels) a spec may ask for: a tile bigger than this is no tile, and
/// the bound guards every tensor allocation downstream.
pub const MAX_INPUT_SIDE: usize = 8192;

/// What the model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Boxes with a class and a score per object.
    Detect,
    /// A per-pixel anomaly score map per tile.
    AnomalyMap,
    /// One class per tile.
    Classify,
}

/// Memory order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Batch, channels, height, width (PyTorch's order).
    #[default]
    Nchw,
    /// Batch, height, width, channels (channels last, TensorFlow's order).
    Nhwc,
}

/// How a scan becomes model inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// SAHI's grid of input-sized tiles over the scan at its own scale (after any resampling to
    /// the model's pitch), a scan smaller than a tile padded with air at its right and bottom.
    #[default]
    Tiles,
    /// Ultralytics' letterbox: the whole image scaled (up or down) to fit one input, centred,
    /// the rest padded with `pad_value` grey; one run per scan, boxes mapped back to the image.
    Letterbox,
}

/// Ultralytics' letterbox grey.
pub const DEFAULT_PAD_VALUE: u8 = 114;

/// How rendered 8-bit images (`ScanKind::Rendered`) are fed when it differs from raw scans:
/// the `[input.rendered]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderedInput {
    /// How a rendered image becomes model inputs.
    #[serde(default)]
    pub resize: ResizeMode,
    /// Letterbox grey (0-255) of the 8-bit channels; letterbox only, default 114.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_value: Option<u8>,
    /// The channel recipe for rendered images, as many channels as `input.channels`.
    pub channels: Vec<ChannelSpec>,
}

/// How one scan is fed: the resize mode, the letterbox grey and the channels
/// ([`InputSpec::feed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feed<'a> {
    /// Tiles or letterbox.
    pub resize: ResizeMode,
    /// Letterbox grey of 8-bit channels (114 unless the spec says otherwise).
    pub pad_value: u8,
    /// The channels, in model order.
    pub channels: &'a [ChannelSpec],
}

impl Feed<'_> {
    /// The channels as the scan core's recipe.
    pub fn recipe(&self) -> ChannelRecipe {
        ChannelRecipe { channels: self.channels.to_vec() }
    }
}

/// The model's one input: its name, layout, tile size and channel recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the model's input tensor.
    pub name: String,
    /// Memory order the model takes; tiles are filled channels first and permuted for it.
    #[serde(default)]
    pub layout: Layout,
    /// Tile width in pixels (along the scan).
    pub width: usize,
    /// Tile height in pixels (down the detector).
    pub height: usize,
    /// The scan core's channel recipe: channels in model order, each with its
    /// normalisation `(x - mean) / std`.
    pub channels: Vec<ChannelSpec>,
    /// Pixel pitch (mm, both axes) the model was trained at. A scan at another pitch is
    /// resampled to it before tiling (`preprocess::resample`); absent: every scan runs at its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_pitch_mm: Option<f32>,
    /// How a scan becomes model inputs: SAHI tiles (default) or Ultralytics' letterbox.
    #[serde(default)]
    pub resize: ResizeMode,
    /// Letterbox grey (0-255) of the 8-bit channels; letterbox only, default 114.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_value: Option<u8>,
    /// How rendered 8-bit images are fed instead, if differently (`[input.rendered]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<RenderedInput>,
}

impl InputSpec {
    /// The channels raw scans are fed, as the scan core's recipe.
    pub fn recipe(&self) -> ChannelRecipe {
        ChannelRecipe { channels: self.channels.clone() }
    }

    /// How a scan of `kind` is fed: `[input.rendered]` for a rendered image when the spec has
    /// one, else `[input]`.
    pub fn feed(&self, kind: ScanKind) -> Feed<'_> {
        match (&self.rendered, kind) {
            (Some(r), ScanKind::Rendered) => {
                Feed { resize: r.resize, pad_value: r.pad_value.unwrap_or(DEFAULT_PAD_VALUE), channels: &r.channels }
            }
            _ => Feed {
                resize: self.resize,
                pad_value: self.pad_value.unwrap_or(DEFAULT_PAD_VALUE),
                channels: &self.channels,
            },
        }
    }
}

fn default_iou() -> f32 {
    0.45
}
fn default_max_det() -> usize {
    300
}
fn default_output() -> String {
    "output0".into()
}
fn default_map() -> String {
    "anomaly_map".into()
}
fn default_anomaly_threshold() -> f32 {
    0.5
}

/// An anchor-based box head whose duplicates NMS removes (the YOLOv5 and YOLOv8 layouts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NmsHeadSpec {
    /// Name of the output tensor.
    #[serde(default = "default_output")]
    pub output: String,
    /// IoU (0..=1) above which NMS drops the weaker of two same-class boxes in a tile.
    #[serde(default = "default_iou")]
    pub iou_threshold: f32,
    /// Detections kept per tile after NMS, best first.
    #[serde(default = "default_max_det")]
    pub max_detections: usize,
    /// Which candidates pass and how NMS runs: nii-atr's (default) or Ultralytics' exactly.
    #[serde(default, skip_serializing_if = "NmsRule::is_standard")]
    pub nms: NmsRule,
}

impl Default for NmsHeadSpec {
    fn default() -> Self {
        Self {
            output: default_output(),
            iou_threshold: default_iou(),
            max_detections: default_max_det(),
            nms: NmsRule::Standard,
        }
    }
}

/// How to read the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DecoderSpec {
    /// `[N, 4 + nc, A]`.
    Yolov8(NmsHeadSpec),
    /// `[N, A, 5 + nc]`.
    Yolov5(NmsHeadSpec),
    /// `[N, K, 6]`, NMS-free.
    EndToEnd {
        /// Name of the output tensor.
        #[serde(default = "default_output")]
        output: String,
        /// Detections kept per tile, best first.
        #[serde(default = "default_max_det")]
        max_detections: usize,
    },
    /// anomalib 2.x: `anomaly_map`, `pred_score`, optional `pred_mask`.
    Anomalib {
        /// Name of the per-pixel anomaly map output.
        #[serde(default = "default_map")]
        map_output: String,
        /// Name of the per-tile score output, if the model has one.
        #[serde(default)]
        score_output: Option<String>,
        /// Name of the boolean mask output, if the model has one.
        #[serde(default)]
        mask_output: Option<String>,
        /// Map value above which a pixel is anomalous (before region extraction).
        #[serde(default = "default_anomaly_threshold")]
        threshold: f32,
    },
    /// `[N, nc]`.
    Classification {
        /// Name of the output tensor.
        #[serde(default = "default_output")]
        output: String,
        /// How raw outputs become class probabilities.
        #[serde(default)]
        activation: Activation,
    },
}

impl DecoderSpec {
    /// The decoder's name as specs spell it (`kind = "..."`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Yolov8(_) => "yolov8",
            Self::Yolov5(_) => "yolov5",
            Self::EndToEnd { .. } => "end_to_end",
            Self::Anomalib { .. } => "anomalib",
            Self::Classification { .. } => "classification",
        }
    }

    /// The task this decoder serves.
    pub fn task(&self) -> Task {
        match self {
            Self::Yolov8(_) | Self::Yolov5(_) | Self::EndToEnd { .. } => Task::Detect,
            Self::Anomalib { .. } => Task::AnomalyMap,
            Self::Classification { .. } => Task::Classify,
        }
    }

    /// Output names the decoder reads.
    pub fn outputs(&self) -> Vec<&str> {
        match self {
            Self::Yolov8(NmsHeadSpec { output, .. })
            | Self::Yolov5(NmsHeadSpec { output, .. })
            | Self::EndToEnd { output, .. }
            | Self::Classification { output, .. } => vec![output],
            Self::Anomalib { map_output, score_output, mask_output, .. } => std::iter::once(map_output.as_str())
                .chain(score_output.as_deref())
                .chain(mask_output.as_deref())
                .collect(),
        }
    }

    /// The NMS IoU threshold of an NMS head; `None` for decoders without NMS.
    pub fn iou_threshold(&self) -> Option<f32> {
        match self {
            Self::Yolov8(h) | Self::Yolov5(h) => Some(h.iou_threshold),
            _ => None,
        }
    }

    /// The NMS rule of an NMS head; `None` for decoders without NMS.
    pub fn nms_rule(&self) -> Option<NmsRule> {
        match self {
            Self::Yolov8(h) | Self::Yolov5(h) => Some(h.nms),
            _ => None,
        }
    }

    /// The map value above which a pixel is anomalous, for a decoder whose output is an
    /// anomaly map; `None` for every other decoder.
    pub fn anomaly_threshold(&self) -> Option<f32> {
        match self {
            Self::Anomalib { threshold, .. } => Some(*threshold),
            _ => None,
        }
    }

    /// Box-decoder thresholds for a model with these per-class score thresholds; `None` for
    /// a decoder that gives no boxes. NMS-free heads get IoU 0 (no NMS runs).
    pub fn box_params(&self, class_thresholds: Vec<f32>) -> Option<BoxParams> {
        let (iou_threshold, max_detections) = match self {
            Self::Yolov8(h) | Self::Yolov5(h) => (h.iou_threshold, h.max_detections),
            Self::EndToEnd { max_detections, .. } => (0.0, *max_detections),
            Self::Anomalib { .. } | Self::Classification { .. } => return None,
        };
        Some(BoxParams { class_thresholds, iou_threshold, max_detections })
    }
}

/// What a class means for the officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatCategory {
    /// Firearms, knives and their parts.
    Weapon,
    /// Explosives and their precursors.
    Explosive,
    /// Drugs.
    Narcotics,
    /// Banknotes in bulk.
    Currency,
    /// Cigarettes and other tobacco.
    Tobacco,
    /// Spirits and other drink.
    Alcohol,
    /// Dense material that could hide something (lead, thick steel).
    Shielding,
    /// Something unusual the model cannot name (anomaly detectors).
    Anomaly,
    /// Undeclared or mis-declared goods.
    Contraband,
    /// A class the model knows but that is no threat (e.g. `car`, `pallet`).
    Benign,
    /// Not mapped by the spec.
    #[default]
    Unknown,
}

/// One class of the model, in output order (the class id is its index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Class name, as findings report it.
    pub name: String,
    /// What the class means for the officer.
    #[serde(default)]
    pub threat: ThreatCategory,
    /// Overrides the spec's `score_threshold` for this class.
    #[serde(default)]
    pub score_threshold: Option<f32>,
}

fn default_score_threshold() -> f32 {
    0.25
}

/// What a detector is, how to feed it and how to read its outputs: the sidecar file's
/// contents (module docs show one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Model name, as findings and reports name it.
    pub name: String,
    /// Model version, free text.
    #[serde(default)]
    pub version: String,
    /// What the model does; must fit the decoder.
    pub task: Task,
    /// Minimum score (0..=1) of a detection or class, unless its class sets its own.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// The model's input.
    pub input: InputSpec,
    /// How to read the outputs.
    pub decoder: DecoderSpec,
    /// Classes in output order; empty for anomaly models.
    #[serde(default)]
    pub classes: Vec<ClassSpec>,
}

impl ModelSpec {
    /// Minimum score per class, in class order.
    pub fn class_thresholds(&self) -> Vec<f32> {
        self.classes.iter().map(|c| c.score_threshold.unwrap_or(self.score_threshold)).collect()
    }

    /// Name of class `id`; `?` when the spec has no such class.
    pub fn class_name(&self, id: u32) -> &str {
        self.classes.get(id as usize).map_or("?", |c| c.name.as_str())
    }

    /// Threat category of class `id`; [`ThreatCategory::Unknown`] when the spec has no such class.
    pub fn threat_of(&self, id: u32) -> ThreatCategory {
        self.classes.get(id as usize).map_or(ThreatCategory::Unknown, |c| c.threat)
    }

    /// Sets the score threshold of every class and the NMS IoU threshold (`None`: unchanged),
    /// then checks the spec again: how a spec-less model's thresholds are set from the pipeline
    /// config or the command line. An IoU threshold for a decoder without NMS is an error.
    pub fn set_thresholds(&mut self, score: Option<f32>, iou: Option<f32>) -> Result<(), SpecCheckError> {
        if let Some(score) = score {
            self.score_threshold = score;
            self.classes.iter_mut().for_each(|c| c.score_threshold = None);
        }
        if let Some(iou) = iou {
            match &mut self.decoder {
                DecoderSpec::Yolov8(h) | DecoderSpec::Yolov5(h) => h.iou_threshold = iou,
                d => return Err(SpecCheckError::NoNms { decoder: d.kind() }),
            }
        }
        self.check()
    }

    /// The spec as a TOML document, as `nii-atr model` prints it and a sidecar holds it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write the spec as TOML: {e}\n"))
    }

    /// Reads a `.toml` or `.json` spec and checks it is self-consistent.
    pub fn from_path(path: &Path) -> Result<Self, SpecError> {
        let text = crate::io::read_text_capped(path, MAX_SPEC_BYTES).map_err(SpecError::File)?;
        let spec: Self = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => crate::io::parse_json(text.as_bytes())
                .map_err(|reason| SpecError::Json { path: path.into(), reason })?,
            _ => crate::io::parse_toml(&text).map_err(|reason| SpecError::Toml { path: path.into(), reason })?,
        };
        spec.check().map_err(|source| SpecError::Invalid { path: path.into(), error: source })?;
        Ok(spec)
    }

    /// Internal consistency, independent of any model file.
    pub fn check(&self) -> Result<(), SpecCheckError> {
        use SpecCheckError as E;
        if self.schema_version != SCHEMA_VERSION {
            return Err(E::SchemaVersion { found: self.schema_version });
        }
        if self.decoder.task() != self.task {
            return Err(E::TaskDecoder { task: self.task, decoder: self.decoder.kind() });
        }
        let i = &self.input;
        if i.channels.is_empty() {
            return Err(E::NoChannels);
        }
        if i.width == 0 || i.height == 0 || i.width > MAX_INPUT_SIDE || i.height > MAX_INPUT_SIDE {
            return Err(E::InputSize { width: i.width, height: i.height });
        }
        let rendered = i.rendered.as_ref().map_or(&[][..], |r| &r.channels[..]);
        if let Some(c) =
            i.channels.iter().chain(rendered).find(|c| !(c.std.is_finite() && c.std != 0.0 && c.mean.is_finite()))
        {
            return Err(E::Normalisation { channel: c.channel });
        }
        if let Some(r) = &i.rendered
            && r.channels.len() != i.channels.len()
        {
            return Err(E::RenderedChannels { rendered: r.channels.len(), channels: i.channels.len() });
        }
        let modes = [(i.resize, i.pad_value, "input")]
            .into_iter()
            .chain(i.rendered.as_ref().map(|r| (r.resize, r.pad_value, "input.rendered")));
        for (resize, pad_value, table) in modes {
            if resize == ResizeMode::Tiles && pad_value.is_some() {
                return Err(E::PadValue { table });
            }
            if resize == ResizeMode::Letterbox && self.task != Task::Detect {
                return Err(E::LetterboxTask { table, task: self.task });
            }
            if resize == ResizeMode::Letterbox && i.pixel_pitch_mm.is_some() {
                return Err(E::LetterboxPitch { table });
            }
        }
        // 0.1-100 mm spans every cargo and vehicle scanner; outside it is a unit mistake.
        if let Some(p) = i.pixel_pitch_mm
            && !(0.1..=100.0).contains(&p)
        {
            return Err(E::PixelPitch { pitch_mm: p });
        }
        let thr_ok = |t: f32| (0.0..=1.0).contains(&t);
        if !thr_ok(self.score_threshold) || self.classes.iter().any(|c| c.score_threshold.is_some_and(|t| !thr_ok(t))) {
            return Err(E::ScoreThreshold);
        }
        if self.task != Task::AnomalyMap && self.classes.is_empty() {
            return Err(E::NoClasses);
        }
        match &self.decoder {
            DecoderSpec::Yolov8(h) | DecoderSpec::Yolov5(h) if !thr_ok(h.iou_threshold) => {
                return Err(E::IouThreshold);
            }
            DecoderSpec::Anomalib { threshold, .. } if !threshold.is_finite() => {
                return Err(E::AnomalyThreshold);
            }
            _ => {}
        }
        Ok(())
    }

    /// `model.toml` or `model.json` next to `model.onnx`, if present.
    pub fn sidecar_of(model: &Path) -> Option<PathBuf> {
        ["toml", "json"].iter().map(|e| model.with_extension(e)).find(|p| p.is_file())
    }
}

/// Why a spec is not self-consistent ([`ModelSpec::check`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecCheckError {
    /// A schema version this build does not read.
    #[error("schema_version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    SchemaVersion {
        /// The spec's `schema_version`.
        found: u32,
    },
    /// `task` and the decoder's task differ.
    #[error("task {task:?} does not fit decoder `{decoder}`")]
    TaskDecoder {
        /// The spec's `task`.
        task: Task,
        /// The decoder's kind.
        decoder: &'static str,
    },
    /// `input.channels` lists nothing.
    #[error("input.channels is empty")]
    NoChannels,
    /// A tile side (pixels) of 0 or over [`MAX_INPUT_SIDE`].
    #[error("input size {width}x{height} outside 1..={MAX_INPUT_SIDE}")]
    InputSize {
        /// `input.width`, pixels.
        width: usize,
        /// `input.height`, pixels.
        height: usize,
    },
    /// A channel's normalisation would divide by zero or yield non-finite values.
    #[error("channel {channel:?} needs a finite mean and a finite non-zero std")]
    Normalisation {
        /// The channel at fault.
        channel: Channel,
    },
    /// `input.pixel_pitch_mm` outside 0.1..=100 mm.
    #[error("input.pixel_pitch_mm {pitch_mm} outside 0.1..=100 mm")]
    PixelPitch {
        /// The spec's pitch, mm.
        pitch_mm: f32,
    },
    /// A score threshold outside 0..=1.
    #[error("score thresholds must lie in [0, 1]")]
    ScoreThreshold,
    /// A detect or classify model without classes.
    #[error("a detect or classify model needs `classes`")]
    NoClasses,
    /// `decoder.iou_threshold` outside 0..=1.
    #[error("decoder.iou_threshold must lie in [0, 1]")]
    IouThreshold,
    /// `decoder.threshold` of an anomaly model is NaN or infinite.
    #[error("decoder.threshold must be finite")]
    AnomalyThreshold,
    /// `[input.rendered]` lists another number of channels than `[input]` (the model has one).
    #[error("input.rendered.channels lists {rendered} channels but input.channels {channels}")]
    RenderedChannels {
        /// Channels of `[input.rendered]`.
        rendered: usize,
        /// Channels of `[input]`.
        channels: usize,
    },
    /// `pad_value` given where nothing is letterboxed.
    #[error("{table}.pad_value applies to resize = \"letterbox\" only")]
    PadValue {
        /// `input` or `input.rendered`.
        table: &'static str,
    },
    /// Letterbox asked for a model that is not a detector.
    #[error("{table}.resize = \"letterbox\" needs task = \"detect\", not {task:?}")]
    LetterboxTask {
        /// `input` or `input.rendered`.
        table: &'static str,
        /// The spec's task.
        task: Task,
    },
    /// Letterbox and a training pitch together: the letterbox sets the scale itself.
    #[error("{table}.resize = \"letterbox\" scales the whole image to the input; input.pixel_pitch_mm cannot apply")]
    LetterboxPitch {
        /// `input` or `input.rendered`.
        table: &'static str,
    },
    /// An IoU threshold given for a decoder that runs no NMS.
    #[error("decoder `{decoder}` runs no NMS: an IoU threshold does not apply")]
    NoNms {
        /// The decoder's kind.
        decoder: &'static str,
    },
}

/// Most bytes a model spec file may have: a spec with a thousand classes is under 64 KiB.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Everything that can go wrong reading a spec, inferring one or checking it against a model.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file cannot be read: missing, not a regular file, over [`MAX_SPEC_BYTES`],
    /// not UTF-8. The message names the file.
    #[error("cannot read model spec {0}")]
    File(crate::io::FileError),
    /// The TOML spec does not parse, has unknown keys or a value of the wrong type.
    #[error("{}: invalid TOML model spec: {reason}", .path.display())]
    Toml {
        /// The spec file.
        path: PathBuf,
        /// Where and why, in words.
        reason: crate::io::SchemaError,
    },
    /// The JSON spec does not parse, has unknown keys or a value of the wrong type.
    #[error("{}: invalid JSON model spec: {reason}", .path.display())]
    Json {
        /// The spec file.
        path: PathBuf,
        /// Where and why, in words.
        reason: crate::io::SchemaError,
    },
    /// The spec parses but is not self-consistent.
    #[error("{}: invalid model spec: {error}", .path.display())]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// What is inconsistent.
        error: SpecCheckError,
    },
    /// No sidecar, and the model says too little to build a spec from.
    #[error("{}: cannot infer a spec without a sidecar: {reason}; write `{}` (see docs/inspection.md, model specs)", .model.display(), .model.with_extension("toml").display())]
    CannotInfer {
        /// The model file.
        model: PathBuf,
        /// What could not be inferred.
        reason: String,
    },
    /// The spec and the model's declared inputs or outputs disagree.
    #[error("{}: model and spec disagree: {reason}", .model.display())]
    Mismatch {
        /// The model file.
        model: PathBuf,
        /// The disagreement.
        reason: String,
    },
}

/// Element type and shape of one model input or output; `None` dims are dynamic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// ONNX element type name (`f32`, `bool`, `i64`, ...).
    pub element: String,
    /// Dimensions; `None` where dynamic.
    pub dims: Vec<Option<usize>>,
}

/// What a loaded model declares about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model's inputs, in order.
    pub inputs: Vec<TensorInfo>,
    /// The model's outputs, in order.
    pub outputs: Vec<TensorInfo>,
    /// ONNX `metadata_props`.
    pub metadata: BTreeMap<String, String>,
    /// The ONNX graph's name, if set.
    pub graph_name: Option<String>,
}

/// Parses Ultralytics' `names` metadata, a Python dict literal: `{0: 'knife', 1: "gun"}`.
pub fn parse_ultralytics_names(s: &str) -> Option<Vec<String>> {
    let body = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':')?;
        let idx: usize = key.trim().parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let close = after[1..].find(quote)? + 1;
        entries.push((idx, after[1..close].to_string()));
        rest = after[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    entries.sort_by_key(|(i, _)| *i);
    // Indices must be exactly 0..n: class ids index this list.
    entries.iter().enumerate().all(|(pos, (i, _))| pos == *i).then(|| entries.into_iter().map(|(_, n)| n).collect())
}

/// Parses `imgsz`: `640`, `[640, 640]` (height, width).
pub fn parse_imgsz(s: &str) -> Option<(usize, usize)> {
    let t = s.trim().trim_start_matches(['[', '(']).trim_end_matches([']', ')']);
    let nums: Vec<usize> = t.split(',').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    match nums.as_slice() {
        [s] => Some((*s, *s)),
        [h, w] => Some((*h, *w)),
        _ => None,
    }
}

/// What an inferred spec was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InferredFrom {
    /// An Ultralytics export's metadata (`names`, `imgsz`, `stride`, `task`) and the output
    /// shapes: fed and post-processed as Ultralytics does.
    Ultralytics,
    /// The input and output shapes, with `names` and `imgsz` metadata where present.
    Shapes,
}

impl std::fmt::Display for InferredFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ultralytics => "the Ultralytics export's metadata (names, imgsz, stride, task) and the output shapes",
            Self::Shapes => "the input and output shapes (and names/imgsz metadata where present)",
        })
    }
}

/// Whether the model is an Ultralytics export: its metadata names Ultralytics as `author` or
/// in its `description`, or carries the keys every Ultralytics export writes (`imgsz`,
/// `names`, `stride`).
pub fn is_ultralytics(info: &ModelInfo) -> bool {
    let meta = |k: &str| info.metadata.get(k).map(String::as_str);
    let says = |k: &str| meta(k).is_some_and(|v| v.to_ascii_lowercase().contains("ultralytics"));
    says("author") || says("description") || ["imgsz", "names", "stride"].iter().all(|k| meta(k).is_some())
}

/// What [`infer_spec`] builds a spec from for this model.
pub fn inferred_from(info: &ModelInfo) -> InferredFrom {
    if is_ultralytics(info) { InferredFrom::Ultralytics } else { InferredFrom::Shapes }
}

/// Graph names exporters write when the user gave none: torch's (`main_graph`, `torch_jit`)
/// and tf2onnx's. They name no model.
const EXPORTER_GRAPH_NAMES: [&str; 4] = ["main_graph", "torch_jit", "torch-jit-export", "tf2onnx"];

/// The name an inferred spec gives the model: the metadata's `name`, else the graph's name
/// unless it is an exporter's placeholder, else the file stem.
fn model_name(model: &Path, info: &ModelInfo) -> String {
    let meaningful = |n: &str| !n.trim().is_empty() && !EXPORTER_GRAPH_NAMES.contains(&n.trim());
    info.metadata
        .get("name")
        .filter(|n| meaningful(n))
        .or(info.graph_name.as_ref().filter(|n| meaningful(n)))
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()))
}

/// Ultralytics' default IoU threshold of `predict` (`iou=0.7`).
const ULTRALYTICS_IOU: f32 = 0.7;

/// Builds a spec from the model alone: Ultralytics metadata when present, else output shapes.
/// An Ultralytics detector gets Ultralytics' post-processing (`nms = "ultralytics"`, IoU 0.7,
/// 300 detections, score above 0.25) and, for 3-channel inputs, `[input.rendered]` feeding
/// rendered images as Ultralytics does (letterbox, grey 114, red/green/blue / 255); raw scans
/// keep the tiled pseudo-colour view.
pub fn infer_spec(model: &Path, info: &ModelInfo) -> Result<ModelSpec, SpecError> {
    let fail = |reason: String| SpecError::CannotInfer { model: model.into(), reason };
    let [input] = info.inputs.as_slice() else {
        return Err(fail(format!("the model has {} inputs; only single-input models are inferred", info.inputs.len())));
    };
    if input.dims.len() != 4 {
        return Err(fail(format!(
            "input `{}` has rank {}, not an image batch [N, C, H, W]",
            input.name,
            input.dims.len()
        )));
    }
    let meta = |k: &str| info.metadata.get(k).map(String::as_str);
    let names = meta("names").and_then(parse_ultralytics_names);
    let imgsz = meta("imgsz").and_then(parse_imgsz);
    let (channels, height, width) = match (input.dims[1], input.dims[2], input.dims[3], imgsz) {
        (Some(c), Some(h), Some(w), _) => (c, h, w),
        (Some(c), _, _, Some((h, w))) => (c, h, w),
        _ => return Err(fail(format!("input `{}` has dynamic size and no `imgsz` metadata", input.name))),
    };
    // Three channels are fed as the officer's pseudo-colour view, as RGB-trained detectors expect.
    let recipe = match channels {
        1 => ChannelRecipe::grey(),
        3 => ChannelRecipe::pseudo_rgb(),
        c => return Err(fail(format!("input `{}` has {c} channels; only 1 or 3 can be guessed", input.name))),
    };
    let mut input_spec = InputSpec {
        name: input.name.clone(),
        layout: Layout::Nchw,
        width,
        height,
        channels: recipe.channels,
        pixel_pitch_mm: None,
        resize: ResizeMode::Tiles,
        pad_value: None,
        rendered: None,
    };
    let ultralytics = is_ultralytics(info);
    let nms_head = |output: String| {
        if ultralytics {
            NmsHeadSpec {
                output,
                iou_threshold: ULTRALYTICS_IOU,
                max_detections: default_max_det(),
                nms: NmsRule::Ultralytics,
            }
        } else {
            NmsHeadSpec { output, ..NmsHeadSpec::default() }
        }
    };

    let out_named = |n: &str| info.outputs.iter().find(|o| o.name == n);
    let (task, decoder, nc) = if let Some(map) = out_named("anomaly_map") {
        let score = out_named("pred_score").map(|o| o.name.clone());
        let mask = out_named("pred_mask").map(|o| o.name.clone());
        let decoder = DecoderSpec::Anomalib {
            map_output: map.name.clone(),
            score_output: score,
            mask_output: mask,
            threshold: default_anomaly_threshold(),
        };
        (Task::AnomalyMap, decoder, 0)
    } else {
        let [out] = info.outputs.as_slice() else {
            return Err(fail(format!("{} outputs and none named `anomaly_map`", info.outputs.len())));
        };
        let output = out.name.clone();
        let known_nc = names.as_ref().map(Vec::len);
        match (out.dims.as_slice(), meta("task")) {
            ([_, Some(c)], _) => {
                (Task::Classify, DecoderSpec::Classification { output, activation: Activation::Softmax }, *c)
            }
            // `[N, K, 6]` is also YOLOv5 with one class; Ultralytics marks NMS-free exports.
            ([_, Some(_), Some(6)], _) if known_nc != Some(1) || meta("end2end") == Some("True") => (
                Task::Detect,
                DecoderSpec::EndToEnd { output, max_detections: default_max_det() },
                known_nc.unwrap_or(0),
            ),
            ([_, Some(rows), a], _) if known_nc.map_or(a.is_none_or(|a| *rows < a), |nc| *rows == nc + 4) => {
                (Task::Detect, DecoderSpec::Yolov8(nms_head(output)), rows.saturating_sub(4))
            }
            ([_, _, Some(cols)], _) if known_nc.is_none_or(|nc| *cols == nc + 5) && *cols > 5 => {
                (Task::Detect, DecoderSpec::Yolov5(nms_head(output)), cols - 5)
            }
            (dims, _) => {
                return Err(fail(format!("output `{}` of shape {} fits no known decoder", out.name, fmt_dims(dims))));
            }
        }
    };
    if let Some(t) = meta("task") {
        let fits = matches!((t, task), ("detect", Task::Detect) | ("classify", Task::Classify))
            || !["detect", "classify"].contains(&t);
        if !fits {
            return Err(fail(format!("metadata says task `{t}` but the outputs look like {task:?}")));
        }
    }
    let classes = match names {
        Some(n) => n,
        None if task == Task::AnomalyMap => Vec::new(),
        None if nc > 0 => (0..nc).map(|i| format!("class_{i}")).collect(),
        None => return Err(fail("no `names` metadata and the class count cannot be read from the outputs".into())),
    };
    if task != Task::AnomalyMap && nc > 0 && classes.len() != nc {
        return Err(fail(format!("`names` lists {} classes but the output has {nc}", classes.len())));
    }
    // Rendered images reach an Ultralytics detector as `YOLO(...).predict` feeds them.
    if ultralytics && task == Task::Detect && channels == 3 {
        input_spec.rendered = Some(RenderedInput {
            resize: ResizeMode::Letterbox,
            pad_value: Some(DEFAULT_PAD_VALUE),
            channels: ChannelRecipe::rgb().channels,
        });
    }
    let spec = ModelSpec {
        schema_version: SCHEMA_VERSION,
        name: model_name(model, info),
        version: meta("version").unwrap_or("").to_string(),
        task,
        score_threshold: default_score_threshold(),
        input: input_spec,
        decoder,
        classes: classes
            .into_iter()
            .map(|name| ClassSpec { name, threat: ThreatCategory::Unknown, score_threshold: None })
            .collect(),
    };
    spec.check().map_err(|e| fail(e.to_string()))?;
    Ok(spec)
}

fn fmt_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

/// How many tiles one run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchDim {
    /// The model fixes the batch size.
    Static(usize),
    /// Any batch size.
    Dynamic,
}

/// Checks the spec against the model's declared inputs and outputs.
pub fn validate(model: &Path, spec: &ModelSpec, info: &ModelInfo) -> Result<BatchDim, SpecError> {
    let mismatch = |reason: String| SpecError::Mismatch { model: model.into(), reason };
    let input = info.inputs.iter().find(|i| i.name == spec.input.name).ok_or_else(|| {
        mismatch(format!(
            "spec input `{}` is not a model input (inputs: {:?})",
            spec.input.name,
            info.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
        ))
    })?;
    if info.inputs.len() != 1 {
        return Err(mismatch(format!("the model has {} inputs; nii-atr feeds exactly one", info.inputs.len())));
    }
    if input.element != "f32" {
        return Err(mismatch(format!("input `{}` is {}, nii-atr feeds f32", input.name, input.element)));
    }
    if input.dims.len() != 4 {
        return Err(mismatch(format!(
            "input `{}` has rank {} ({}); expected 4",
            input.name,
            input.dims.len(),
            fmt_dims(&input.dims)
        )));
    }
    let (c, h, w) = match spec.input.layout {
        Layout::Nchw => (input.dims[1], input.dims[2], input.dims[3]),
        Layout::Nhwc => (input.dims[3], input.dims[1], input.dims[2]),
    };
    let want =
        [(c, spec.input.channels.len(), "channels"), (h, spec.input.height, "height"), (w, spec.input.width, "width")];
    for (got, expected, what) in want {
        if let Some(got) = got
            && got != expected
        {
            return Err(mismatch(format!(
                "input `{}` {what} is {got} in the model, {expected} in the spec ({})",
                input.name,
                fmt_dims(&input.dims)
            )));
        }
    }
    let nc = spec.classes.len();
    for name in spec.decoder.outputs() {
        let out = info.outputs.iter().find(|o| o.name == name).ok_or_else(|| {
            mismatch(format!(
                "decoder output `{name}` is not a model output (outputs: {:?})",
                info.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()
            ))
        })?;
        let d = &out.dims;
        let fixed = |i: usize, v: usize| d.get(i).copied().flatten().is_none_or(|x| x == v);
        let ok = match &spec.decoder {
            DecoderSpec::Yolov8(_) => d.len() == 3 && fixed(1, 4 + nc),
            DecoderSpec::Yolov5(_) => d.len() == 3 && fixed(2, 5 + nc),
            DecoderSpec::EndToEnd { .. } => d.len() == 3 && fixed(2, 6),
            DecoderSpec::Classification { .. } => d.len() == 2 && fixed(1, nc),
            DecoderSpec::Anomalib { score_output, .. } if score_output.as_deref() == Some(name) => {
                d.len() == 1 || (d.len() == 2 && fixed(1, 1))
            }
            DecoderSpec::Anomalib { .. } => d.len() == 3 || (d.len() == 4 && fixed(1, 1)),
        };
        let element_ok = out.element == "f32"
            || (out.element == "bool"
                && matches!(&spec.decoder, DecoderSpec::Anomalib { mask_output: Some(m), .. } if m == name));
        if !ok || !element_ok {
            return Err(mismatch(format!(
                "output `{name}` is {} {} but decoder `{}` with {nc} classes needs another shape",
                out.element,
                fmt_dims(d),
                spec.decoder.kind()
            )));
        }
    }
    Ok(match input.dims[0] {
        Some(0) => return Err(mismatch(format!("input `{}` has a zero batch dimension", input.name))),
        Some(n) => BatchDim::Static(n),
        None => BatchDim::Dynamic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, element: &str, dims: &[Option<usize>]) -> TensorInfo {
        TensorInfo { name: name.into(), element: element.into(), dims: dims.to_vec() }
    }

    fn yolo_info(meta: &[(&str, &str)]) -> ModelInfo {
        ModelInfo {
            inputs: vec![t("images", "f32", &[None, Some(3), Some(64), Some(64)])],
            outputs: vec![t("output0", "f32", &[None, Some(6), Some(16)])],
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            graph_name: Some("toy".into()),
        }
    }

    #[test]
    fn parses_ultralytics_metadata() {
        assert_eq!(parse_ultralytics_names("{0: 'knife', 1: \"gun\"}").unwrap(), vec!["knife", "gun"]);
        assert_eq!(parse_ultralytics_names("{1: 'b', 0: 'a, with comma'}").unwrap(), vec!["a, with comma", "b"]);
        assert_eq!(parse_ultralytics_names("{}").unwrap(), Vec::<String>::new());
        assert!(parse_ultralytics_names("{0: 'a', 2: 'c'}").is_none(), "gap in ids");
        assert!(parse_ultralytics_names("['a']").is_none());
        assert!(parse_ultralytics_names("{0: a}").is_none());
        assert_eq!(parse_imgsz("[480, 640]"), Some((480, 640)));
        assert_eq!(parse_imgsz("640"), Some((640, 640)));
        assert_eq!(parse_imgsz("[1, 2, 3]"), None);
    }

    #[test]
    fn infers_yolov8_with_names() {
        let info = yolo_info(&[("names", "{0: 'knife', 1: 'gun'}"), ("task", "detect"), ("imgsz", "[64, 64]")]);
        let spec = infer_spec(Path::new("m.onnx"), &info).unwrap();
        assert_eq!(spec.task, Task::Detect);
        assert_eq!(spec.decoder.kind(), "yolov8");
        assert_eq!(spec.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["knife", "gun"]);
        assert_eq!((spec.input.width, spec.input.height), (64, 64));
        assert_eq!(validate(Path::new("m.onnx"), &spec, &info).unwrap(), BatchDim::Dynamic);
    }

    #[test]
    fn ultralytics_exports_are_fed_and_post_processed_as_ultralytics() {
        let meta = [("names", "{0: 'knife', 1: 'gun'}"), ("task", "detect"), ("imgsz", "[64, 64]"), ("stride", "32")];
        let mut info = yolo_info(&meta);
        info.graph_name = Some("main_graph".into());
        assert_eq!(inferred_from(&info), InferredFrom::Ultralytics);
        let spec = infer_spec(Path::new("dir/knife-v3.onnx"), &info).unwrap();
        assert_eq!(spec.name, "knife-v3", "torch's graph name is no model name");
        assert_eq!(
            spec.decoder,
            DecoderSpec::Yolov8(NmsHeadSpec {
                output: "output0".into(),
                iou_threshold: 0.7,
                max_detections: 300,
                nms: NmsRule::Ultralytics
            })
        );
        assert_eq!(spec.score_threshold, 0.25);
        // Raw scans keep the tiled material view; rendered images get Ultralytics' letterbox.
        let raw = spec.input.feed(ScanKind::Raw);
        assert_eq!((raw.resize, raw.channels), (ResizeMode::Tiles, &ChannelRecipe::pseudo_rgb().channels[..]));
        let rendered = spec.input.feed(ScanKind::Rendered);
        assert_eq!((rendered.resize, rendered.pad_value), (ResizeMode::Letterbox, 114));
        assert_eq!(rendered.channels, &ChannelRecipe::rgb().channels[..]);
        // Printed as TOML, it reads back as the same spec.
        let back: ModelSpec = toml::from_str(&spec.to_toml()).unwrap();
        assert_eq!(back, spec);
        // The author alone also marks an export; a name in the metadata wins over the stem.
        let mut other = yolo_info(&[("author", "Ultralytics"), ("names", "{0: 'a', 1: 'b'}"), ("name", "crate-v2")]);
        assert_eq!(infer_spec(Path::new("m.onnx"), &other).unwrap().name, "crate-v2");
        other.metadata.clear();
        assert_eq!(inferred_from(&other), InferredFrom::Shapes);
        let plain = infer_spec(Path::new("m.onnx"), &other).unwrap();
        assert_eq!(plain.name, "toy");
        assert!(plain.input.rendered.is_none());
        assert_eq!(plain.decoder.nms_rule(), Some(NmsRule::Standard));
    }

    #[test]
    fn input_modes_are_checked() {
        type Edit = fn(&mut ModelSpec);
        let rgb = || ChannelRecipe::rgb().channels;
        let cases: [(Edit, &str); 5] = [
            (|s| s.input.pad_value = Some(0), "input.pad_value applies to resize = \"letterbox\" only"),
            (
                |s| {
                    s.input.rendered =
                        Some(RenderedInput { resize: ResizeMode::Tiles, pad_value: None, channels: vec![] })
                },
                "input.rendered.channels lists 0 channels but input.channels 3",
            ),
            (
                |s| {
                    s.input.resize = ResizeMode::Letterbox;
                    s.input.pixel_pitch_mm = Some(5.0)
                },
                "input.resize = \"letterbox\" scales the whole image to the input; input.pixel_pitch_mm cannot apply",
            ),
            (
                |s| {
                    s.task = Task::Classify;
                    s.decoder = DecoderSpec::Classification { output: "o".into(), activation: Activation::Softmax };
                    s.input.resize = ResizeMode::Letterbox
                },
                "input.resize = \"letterbox\" needs task = \"detect\", not Classify",
            ),
            (
                |s| {
                    s.input.rendered = Some(RenderedInput {
                        resize: ResizeMode::Tiles,
                        pad_value: Some(3),
                        channels: ChannelRecipe::rgb().channels,
                    })
                },
                "input.rendered.pad_value applies to resize = \"letterbox\" only",
            ),
        ];
        for (edit, want) in cases {
            let mut s = toy_spec();
            edit(&mut s);
            assert_eq!(s.check().unwrap_err().to_string(), want);
        }
        let mut s = toy_spec();
        s.input.rendered = Some(RenderedInput { resize: ResizeMode::Letterbox, pad_value: None, channels: rgb() });
        s.check().unwrap();
        assert_eq!(s.input.feed(ScanKind::Rendered).pad_value, DEFAULT_PAD_VALUE);
        assert_eq!(s.input.feed(ScanKind::Raw).resize, ResizeMode::Tiles);
        let parsed: InputSpec = toml::from_str(
            "name = 'images'\nwidth = 64\nheight = 64\nresize = 'letterbox'\npad_value = 0\nchannels = [{ channel = 'red' }, { channel = 'green' }, { channel = 'blue' }]",
        )
        .unwrap();
        assert_eq!((parsed.resize, parsed.pad_value), (ResizeMode::Letterbox, Some(0)));
        assert!(
            toml::from_str::<InputSpec>("name = 'i'\nwidth = 1\nheight = 1\nresize = 'stretch'\nchannels = []")
                .is_err()
        );
    }

    #[test]
    fn thresholds_are_set_where_they_apply() {
        let mut s = toy_spec();
        s.set_thresholds(Some(0.6), Some(0.3)).unwrap();
        assert_eq!(s.class_thresholds(), vec![0.6, 0.6], "every class, its own threshold included");
        assert_eq!(s.decoder.box_params(vec![]).unwrap().iou_threshold, 0.3);
        assert_eq!(s.set_thresholds(Some(1.5), None), Err(SpecCheckError::ScoreThreshold));
        let mut e2e = toy_spec();
        e2e.decoder = DecoderSpec::EndToEnd { output: "o".into(), max_detections: 10 };
        assert_eq!(e2e.set_thresholds(None, Some(0.5)), Err(SpecCheckError::NoNms { decoder: "end_to_end" }));
        e2e.set_thresholds(Some(0.4), None).unwrap();
    }

    #[test]
    fn infers_other_layouts_from_shapes() {
        let mut info = yolo_info(&[]);
        info.outputs = vec![t("output0", "f32", &[None, Some(16), Some(7)])];
        assert_eq!(infer_spec(Path::new("m.onnx"), &info).unwrap().decoder.kind(), "yolov5");
        info.outputs = vec![t("output0", "f32", &[Some(1), Some(300), Some(6)])];
        assert!(infer_spec(Path::new("m.onnx"), &info).unwrap_err().to_string().contains("class count"));
        info.metadata.insert("names".into(), "{0: 'a', 1: 'b', 2: 'c'}".into());
        assert_eq!(infer_spec(Path::new("m.onnx"), &info).unwrap().decoder.kind(), "end_to_end");
        info.outputs = vec![t("logits", "f32", &[None, Some(3)])];
        assert_eq!(infer_spec(Path::new("m.onnx"), &info).unwrap().task, Task::Classify);
        info.metadata.clear();
        info.outputs =
            vec![t("anomaly_map", "f32", &[None, Some(1), Some(64), Some(64)]), t("pred_score", "f32", &[None])];
        let spec = infer_spec(Path::new("m.onnx"), &info).unwrap();
        assert_eq!(spec.task, Task::AnomalyMap);
        assert!(spec.classes.is_empty());
    }

    #[test]
    fn inference_refuses_what_it_cannot_know() {
        let mut info = yolo_info(&[]);
        info.inputs[0].dims = vec![None, Some(3), None, None];
        let err = infer_spec(Path::new("m.onnx"), &info).unwrap_err();
        assert!(err.to_string().contains("imgsz") && err.to_string().contains("m.toml"), "{err}");
        let mut info = yolo_info(&[("names", "{0: 'a'}")]);
        let err = infer_spec(Path::new("m.onnx"), &info).unwrap_err();
        assert!(err.to_string().contains("fits no known decoder"), "{err}");
        info.outputs.push(t("extra", "f32", &[None]));
        assert!(infer_spec(Path::new("m.onnx"), &info).is_err());
    }

    fn toy_spec() -> ModelSpec {
        toml::from_str(
            r#"
            schema_version = 1
            name = "toy"
            task = "detect"
            [input]
            name = "images"
            width = 64
            height = 64
            channels = [{ channel = "attenuation_high", std = 4.0 }, { channel = "attenuation_low", std = 4.0 }, { channel = "r_value" }]
            [decoder]
            kind = "yolov8"
            [[classes]]
            name = "knife"
            threat = "weapon"
            score_threshold = 0.5
            [[classes]]
            name = "gun"
            threat = "weapon"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn spec_defaults_and_thresholds() {
        let spec = toy_spec();
        spec.check().unwrap();
        assert_eq!(spec.class_thresholds(), vec![0.5, 0.25]);
        assert_eq!(
            spec.decoder,
            DecoderSpec::Yolov8(NmsHeadSpec {
                output: "output0".into(),
                iou_threshold: 0.45,
                max_detections: 300,
                nms: NmsRule::Standard
            })
        );
        assert_eq!(spec.threat_of(1), ThreatCategory::Weapon);
        assert_eq!(spec.threat_of(9), ThreatCategory::Unknown);
    }

    #[test]
    fn inconsistent_specs_are_rejected() {
        let mut s = toy_spec();
        s.schema_version = 2;
        assert!(s.check().unwrap_err().to_string().contains("schema_version"));
        let mut s = toy_spec();
        s.task = Task::Classify;
        assert!(s.check().is_err());
        let mut s = toy_spec();
        s.input.channels[1].std = 0.0;
        assert!(s.check().is_err());
        let mut s = toy_spec();
        s.input.width = 1 << 20;
        assert!(s.check().is_err());
        let mut s = toy_spec();
        s.classes.clear();
        assert!(s.check().is_err());
        assert!(toml::from_str::<ModelSpec>("schema_version = 1\nname='x'\ntask='detect'\nbogus=1").is_err());
    }

    #[test]
    fn check_messages_read_as_before() {
        // Configs and tests match on these words: they stay as they were when they were strings.
        type Edit = fn(&mut ModelSpec);
        let cases: [(Edit, &str); 6] = [
            (|s| s.schema_version = 2, "schema_version 2 is not supported (this build reads 1)"),
            (|s| s.task = Task::Classify, "task Classify does not fit decoder `yolov8`"),
            (|s| s.input.width = 1 << 20, "input size 1048576x64 outside 1..=8192"),
            (|s| s.input.channels[1].std = 0.0, "channel AttenuationLow needs a finite mean and a finite non-zero std"),
            (|s| s.input.pixel_pitch_mm = Some(500.0), "input.pixel_pitch_mm 500 outside 0.1..=100 mm"),
            (|s| s.classes[0].score_threshold = Some(1.5), "score thresholds must lie in [0, 1]"),
        ];
        for (edit, want) in cases {
            let mut s = toy_spec();
            edit(&mut s);
            assert_eq!(s.check().unwrap_err().to_string(), want);
        }
        let mut s = toy_spec();
        s.decoder = DecoderSpec::Yolov5(NmsHeadSpec { iou_threshold: 1.5, ..NmsHeadSpec::default() });
        assert_eq!(s.check().unwrap_err(), SpecCheckError::IouThreshold);
        assert_eq!(SpecCheckError::IouThreshold.to_string(), "decoder.iou_threshold must lie in [0, 1]");
        s.decoder = DecoderSpec::Anomalib {
            map_output: "m".into(),
            score_output: None,
            mask_output: None,
            threshold: f32::NAN,
        };
        s.task = Task::AnomalyMap;
        assert_eq!(s.check().unwrap_err().to_string(), "decoder.threshold must be finite");
        s.input.channels.clear();
        assert_eq!(s.check().unwrap_err().to_string(), "input.channels is empty");
        assert_eq!(SpecCheckError::NoClasses.to_string(), "a detect or classify model needs `classes`");
    }

    #[test]
    fn nms_heads_read_and_write_as_flat_decoder_tables() {
        let d: DecoderSpec = toml::from_str("kind = 'yolov5'\niou_threshold = 0.6").unwrap();
        assert_eq!(d, DecoderSpec::Yolov5(NmsHeadSpec { iou_threshold: 0.6, ..NmsHeadSpec::default() }));
        assert!(toml::from_str::<DecoderSpec>("kind = 'yolov8'\nthreshold = 0.6").is_err(), "unknown key");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "yolov5", "output": "output0", "iou_threshold": 0.6f32, "max_detections": 300})
        );
        assert_eq!(serde_json::from_value::<DecoderSpec>(json).unwrap(), d);
    }

    #[test]
    fn decoders_say_what_callers_need() {
        let spec = toy_spec();
        let p = spec.decoder.box_params(spec.class_thresholds()).unwrap();
        assert_eq!((p.iou_threshold, p.max_detections, p.num_classes()), (0.45, 300, 2));
        assert_eq!(spec.decoder.anomaly_threshold(), None);
        let e2e = DecoderSpec::EndToEnd { output: "o".into(), max_detections: 7 };
        assert_eq!(e2e.box_params(vec![0.5]).map(|p| (p.iou_threshold, p.max_detections)), Some((0.0, 7)));
        let anomaly =
            DecoderSpec::Anomalib { map_output: "m".into(), score_output: None, mask_output: None, threshold: 0.3 };
        assert_eq!(anomaly.anomaly_threshold(), Some(0.3));
        assert!(anomaly.box_params(Vec::new()).is_none());
    }

    #[test]
    fn validation_names_each_disagreement() {
        let info = yolo_info(&[]);
        let m = Path::new("m.onnx");
        let mut s = toy_spec();
        s.input.name = "input".into();
        assert!(validate(m, &s, &info).unwrap_err().to_string().contains("`input` is not a model input"));
        let mut s = toy_spec();
        s.input.width = 32;
        assert!(validate(m, &s, &info).unwrap_err().to_string().contains("width is 64 in the model, 32 in the spec"));
        let mut s = toy_spec();
        s.input.channels.pop();
        assert!(validate(m, &s, &info).unwrap_err().to_string().contains("channels"));
        let mut s = toy_spec();
        s.classes.pop();
        assert!(validate(m, &s, &info).unwrap_err().to_string().contains("output `output0`"));
        let mut s = toy_spec();
        s.decoder =
            DecoderSpec::Yolov5(NmsHeadSpec { iou_threshold: 0.5, max_detections: 10, ..NmsHeadSpec::default() });
        assert!(validate(m, &s, &info).is_err());
        let mut info1 = yolo_info(&[]);
        info1.inputs[0].dims[0] = Some(1);
        assert_eq!(validate(m, &toy_spec(), &info1).unwrap(), BatchDim::Static(1));
        info1.inputs[0].dims = vec![Some(1), Some(3), Some(64)];
        assert!(validate(m, &toy_spec(), &info1).unwrap_err().to_string().contains("rank 3"));
    }
}
