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
//!
//! [decoder]
//! kind = "yolov8"                  # yolov8 | yolov5 | end_to_end | anomalib | classification
//! output = "output0"
//! iou_threshold = 0.45
//! max_detections = 300
//!
//! [[classes]]
//! name = "knife"
//! threat = "weapon"
//! score_threshold = 0.4            # optional, overrides the default
//! ```
//!
//! Without a sidecar, [`infer_spec`] builds one from the ONNX metadata (Ultralytics exports
//! carry `names`, `imgsz`, `task`) and the output shapes. [`validate`] then checks the
//! spec against the model's real inputs and outputs before any scan runs.

use super::decode::classify::Activation;
use crate::preprocess::tiles::{ChannelRecipe, ChannelSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

/// What the model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Detect,
    AnomalyMap,
    Classify,
}

/// Memory order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    #[serde(default)]
    pub layout: Layout,
    pub width: usize,
    pub height: usize,
    /// The scan core's channel recipe: channels in model order, each with its
    /// normalisation `(x - mean) / std`.
    pub channels: Vec<ChannelSpec>,
    /// Pixel pitch (mm, both axes) the model was trained at. A scan at another pitch is
    /// resampled to it before tiling (`inspect::pitch`); absent: every scan runs at its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_pitch_mm: Option<f32>,
}

impl InputSpec {
    pub fn recipe(&self) -> ChannelRecipe {
        ChannelRecipe { channels: self.channels.clone() }
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

/// How to read the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DecoderSpec {
    /// `[N, 4 + nc, A]`.
    Yolov8 {
        #[serde(default = "default_output")]
        output: String,
        #[serde(default = "default_iou")]
        iou_threshold: f32,
        #[serde(default = "default_max_det")]
        max_detections: usize,
    },
    /// `[N, A, 5 + nc]`.
    Yolov5 {
        #[serde(default = "default_output")]
        output: String,
        #[serde(default = "default_iou")]
        iou_threshold: f32,
        #[serde(default = "default_max_det")]
        max_detections: usize,
    },
    /// `[N, K, 6]`, NMS-free.
    EndToEnd {
        #[serde(default = "default_output")]
        output: String,
        #[serde(default = "default_max_det")]
        max_detections: usize,
    },
    /// anomalib 2.x: `anomaly_map`, `pred_score`, optional `pred_mask`.
    Anomalib {
        #[serde(default = "default_map")]
        map_output: String,
        #[serde(default)]
        score_output: Option<String>,
        #[serde(default)]
        mask_output: Option<String>,
        /// Map value above which a pixel is anomalous (before region extraction).
        #[serde(default = "default_anomaly_threshold")]
        threshold: f32,
    },
    /// `[N, nc]`.
    Classification {
        #[serde(default = "default_output")]
        output: String,
        #[serde(default)]
        activation: Activation,
    },
}

impl DecoderSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Yolov8 { .. } => "yolov8",
            Self::Yolov5 { .. } => "yolov5",
            Self::EndToEnd { .. } => "end_to_end",
            Self::Anomalib { .. } => "anomalib",
            Self::Classification { .. } => "classification",
        }
    }

    /// The task this decoder serves.
    pub fn task(&self) -> Task {
        match self {
            Self::Yolov8 { .. } | Self::Yolov5 { .. } | Self::EndToEnd { .. } => Task::Detect,
            Self::Anomalib { .. } => Task::AnomalyMap,
            Self::Classification { .. } => Task::Classify,
        }
    }

    /// Output names the decoder reads.
    pub fn outputs(&self) -> Vec<&str> {
        match self {
            Self::Yolov8 { output, .. }
            | Self::Yolov5 { output, .. }
            | Self::EndToEnd { output, .. }
            | Self::Classification { output, .. } => vec![output],
            Self::Anomalib { map_output, score_output, mask_output, .. } => std::iter::once(map_output.as_str())
                .chain(score_output.as_deref())
                .chain(mask_output.as_deref())
                .collect(),
        }
    }
}

/// What a class means for the officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatCategory {
    Weapon,
    Explosive,
    Narcotics,
    Currency,
    Tobacco,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    #[serde(default)]
    pub threat: ThreatCategory,
    /// Overrides the spec's `score_threshold` for this class.
    #[serde(default)]
    pub score_threshold: Option<f32>,
}

fn default_score_threshold() -> f32 {
    0.25
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub schema_version: u32,
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub task: Task,
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    pub input: InputSpec,
    pub decoder: DecoderSpec,
    #[serde(default)]
    pub classes: Vec<ClassSpec>,
}

impl ModelSpec {
    /// Minimum score per class, in class order.
    pub fn class_thresholds(&self) -> Vec<f32> {
        self.classes.iter().map(|c| c.score_threshold.unwrap_or(self.score_threshold)).collect()
    }

    pub fn class_name(&self, id: u32) -> &str {
        self.classes.get(id as usize).map_or("?", |c| c.name.as_str())
    }

    pub fn threat_of(&self, id: u32) -> ThreatCategory {
        self.classes.get(id as usize).map_or(ThreatCategory::Unknown, |c| c.threat)
    }

    /// Reads a `.toml` or `.json` spec and checks it is self-consistent.
    pub fn from_path(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.into(), source })?;
        let spec: Self = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_str(&text).map_err(|source| SpecError::Json { path: path.into(), source })?
            }
            _ => toml::from_str(&text).map_err(|source| SpecError::Toml { path: path.into(), source })?,
        };
        spec.check().map_err(|reason| SpecError::Invalid { path: path.into(), reason })?;
        Ok(spec)
    }

    /// Internal consistency, independent of any model file.
    pub fn check(&self) -> Result<(), String> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (this build reads {SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        if self.decoder.task() != self.task {
            return Err(format!("task {:?} does not fit decoder `{}`", self.task, self.decoder.kind()));
        }
        let i = &self.input;
        if i.channels.is_empty() {
            return Err("input.channels is empty".into());
        }
        // A tile bigger than this is no tile: it guards every tensor allocation downstream.
        const MAX_SIDE: usize = 8192;
        if i.width == 0 || i.height == 0 || i.width > MAX_SIDE || i.height > MAX_SIDE {
            return Err(format!("input size {}x{} outside 1..={MAX_SIDE}", i.width, i.height));
        }
        if let Some(c) = i.channels.iter().find(|c| !(c.std.is_finite() && c.std != 0.0 && c.mean.is_finite())) {
            return Err(format!("channel {:?} needs a finite mean and a finite non-zero std", c.channel));
        }
        // 0.1-100 mm spans every cargo and vehicle scanner; outside it is a unit mistake.
        if let Some(p) = i.pixel_pitch_mm
            && !(0.1..=100.0).contains(&p)
        {
            return Err(format!("input.pixel_pitch_mm {p} outside 0.1..=100 mm"));
        }
        let thr_ok = |t: f32| (0.0..=1.0).contains(&t);
        if !thr_ok(self.score_threshold) || self.classes.iter().any(|c| c.score_threshold.is_some_and(|t| !thr_ok(t))) {
            return Err("score thresholds must lie in [0, 1]".into());
        }
        if self.task != Task::AnomalyMap && self.classes.is_empty() {
            return Err("a detect or classify model needs `classes`".into());
        }
        match &self.decoder {
            DecoderSpec::Yolov8 { iou_threshold, .. } | DecoderSpec::Yolov5 { iou_threshold, .. }
                if !thr_ok(*iou_threshold) =>
            {
                return Err("decoder.iou_threshold must lie in [0, 1]".into());
            }
            DecoderSpec::Anomalib { threshold, .. } if !threshold.is_finite() => {
                return Err("decoder.threshold must be finite".into());
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

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read model spec: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: invalid TOML model spec: {source}", .path.display())]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("{}: invalid JSON model spec: {source}", .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: invalid model spec: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: cannot infer a spec without a sidecar: {reason}; write `{}` (see README, model specs)", .model.display(), .model.with_extension("toml").display())]
    CannotInfer { model: PathBuf, reason: String },
    #[error("{}: model and spec disagree: {reason}", .model.display())]
    Mismatch { model: PathBuf, reason: String },
}

/// Element type and shape of one model input or output; `None` dims are dynamic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ONNX element type name (`f32`, `bool`, `i64`, ...).
    pub element: String,
    pub dims: Vec<Option<usize>>,
}

/// What a loaded model declares about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// ONNX `metadata_props`.
    pub metadata: BTreeMap<String, String>,
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

/// Builds a spec from the model alone: Ultralytics metadata when present, else output shapes.
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
    let input_spec = InputSpec {
        name: input.name.clone(),
        layout: Layout::Nchw,
        width,
        height,
        channels: recipe.channels,
        pixel_pitch_mm: None,
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
            ([_, Some(rows), a], _) if known_nc.map_or(a.is_none_or(|a| *rows < a), |nc| *rows == nc + 4) => (
                Task::Detect,
                DecoderSpec::Yolov8 { output, iou_threshold: default_iou(), max_detections: default_max_det() },
                rows.saturating_sub(4),
            ),
            ([_, _, Some(cols)], _) if known_nc.is_none_or(|nc| *cols == nc + 5) && *cols > 5 => (
                Task::Detect,
                DecoderSpec::Yolov5 { output, iou_threshold: default_iou(), max_detections: default_max_det() },
                cols - 5,
            ),
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
    let spec =
        ModelSpec {
            schema_version: SCHEMA_VERSION,
            name: info.graph_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
                model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
            }),
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
    spec.check().map_err(fail)?;
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
            DecoderSpec::Yolov8 { .. } => d.len() == 3 && fixed(1, 4 + nc),
            DecoderSpec::Yolov5 { .. } => d.len() == 3 && fixed(2, 5 + nc),
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
            DecoderSpec::Yolov8 { output: "output0".into(), iou_threshold: 0.45, max_detections: 300 }
        );
        assert_eq!(spec.threat_of(1), ThreatCategory::Weapon);
        assert_eq!(spec.threat_of(9), ThreatCategory::Unknown);
    }

    #[test]
    fn inconsistent_specs_are_rejected() {
        let mut s = toy_spec();
        s.schema_version = 2;
        assert!(s.check().unwrap_err().contains("schema_version"));
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
        s.decoder = DecoderSpec::Yolov5 { output: "output0".into(), iou_threshold: 0.5, max_detections: 10 };
        assert!(validate(m, &s, &info).is_err());
        let mut info1 = yolo_info(&[]);
        info1.inputs[0].dims[0] = Some(1);
        assert_eq!(validate(m, &toy_spec(), &info1).unwrap(), BatchDim::Static(1));
        info1.inputs[0].dims = vec![Some(1), Some(3), Some(64)];
        assert!(validate(m, &toy_spec(), &info1).unwrap_err().to_string().contains("rank 3"));
    }
}
