//! A loaded model: spec + sessions, with `pre → run → decode` timed separately.
//!
//! Callers hand tiles over channels first (`[n, channels, height, width]`); the detector
//! permutes them to the model's layout and pads a static batch, so no caller needs to know
//! either.

use super::DetectError;
use super::decode::anomaly::{self, AnomalyOutputs, AnomalyTile};
use super::decode::classify::{self, ClassScores};
use super::decode::{DecodeError, DecodeStats, ModelOutputs, OutputTensor, end_to_end, yolo_v5, yolo_v8};
use super::geometry::Detection;
use super::session::{SessionConfig, SessionPool};
use super::spec::{self, BatchDim, DecoderSpec, InferredFrom, Layout, ModelInfo, ModelSpec};
use ndarray::{Array4, ArrayView4, Axis, CowArray, Ix4};
use serde::Serialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the spec came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SpecSource {
    /// A spec file given explicitly (`--spec`, `[[models]] spec`).
    Given {
        /// The spec file.
        path: PathBuf,
    },
    /// `model.toml` or `model.json` found beside the model.
    Sidecar {
        /// The spec file.
        path: PathBuf,
    },
    /// Built from the model's metadata and shapes ([`spec::infer_spec`]).
    Inferred {
        /// What it was built from.
        from: InferredFrom,
    },
}

impl SpecSource {
    /// Whether the spec was inferred from the model rather than read from a file.
    pub fn is_inferred(&self) -> bool {
        matches!(self, Self::Inferred { .. })
    }

    /// The spec file, unless inferred.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Given { path } | Self::Sidecar { path } => Some(path),
            Self::Inferred { .. } => None,
        }
    }
}

impl std::fmt::Display for SpecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given { path } => write!(f, "given: {}", path.display()),
            Self::Sidecar { path } => write!(f, "sidecar beside the model: {}", path.display()),
            Self::Inferred { from } => write!(f, "inferred from {from}"),
        }
    }
}

/// Decoded results of a batch, one entry per tile.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Detections per tile, boxes in the tile's pixels.
    Boxes(Vec<Vec<Detection>>),
    /// Anomaly map (and score, mask) per tile.
    Anomaly(Vec<AnomalyTile>),
    /// Top class per tile; `None` where no class cleared its threshold.
    Classes(Vec<Option<ClassScores>>),
}

impl Decoded {
    /// Number of tiles.
    pub fn len(&self) -> usize {
        match self {
            Self::Boxes(v) => v.len(),
            Self::Anomaly(v) => v.len(),
            Self::Classes(v) => v.len(),
        }
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` tiles' results (drops those of a static batch's padding).
    fn truncate(&mut self, n: usize) {
        match self {
            Self::Boxes(v) => v.truncate(n),
            Self::Anomaly(v) => v.truncate(n),
            Self::Classes(v) => v.truncate(n),
        }
    }

    fn extend(&mut self, other: Self) {
        match (self, other) {
            (Self::Boxes(a), Self::Boxes(b)) => a.extend(b),
            (Self::Anomaly(a), Self::Anomaly(b)) => a.extend(b),
            (Self::Classes(a), Self::Classes(b)) => a.extend(b),
            _ => unreachable!("one detector always decodes to the same kind"),
        }
    }
}

/// Time spent in ONNX Runtime's `run` versus copying outputs and decoding them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RunTimes {
    /// Inside ONNX Runtime's `run`.
    pub ort_run: Duration,
    /// Reading the outputs out of ONNX Runtime (and converting non-f32 ones).
    pub extract: Duration,
    /// Decoding the outputs into per-tile results.
    pub decode: Duration,
    /// Model runs counted.
    pub runs: usize,
}

impl RunTimes {
    /// Adds another tally to this one.
    pub fn add(&mut self, o: &Self) {
        self.ort_run += o.ort_run;
        self.extract += o.extract;
        self.decode += o.decode;
        self.runs += o.runs;
    }
}

/// A model ready to run: validated spec, sessions, batch policy.
#[derive(Debug)]
pub struct Detector {
    spec: ModelSpec,
    spec_source: SpecSource,
    pool: SessionPool,
    batch_dim: BatchDim,
    path: PathBuf,
}

impl Detector {
    /// Loads `model` with its spec: `spec` when given, else a sidecar beside the model, else
    /// one inferred from the model. Loads ONNX Runtime first if needed. Every disagreement
    /// between model and spec is an error here, before any scan runs.
    pub fn load(model: &Path, spec: Option<&Path>, session: &SessionConfig) -> Result<Self, DetectError> {
        crate::runtime::init(None)?;
        let pool = SessionPool::load(model, session)?;
        let (spec, spec_source) = match (spec, ModelSpec::sidecar_of(model)) {
            (Some(p), _) => (ModelSpec::from_path(p)?, SpecSource::Given { path: p.to_path_buf() }),
            (None, Some(p)) => (ModelSpec::from_path(&p)?, SpecSource::Sidecar { path: p }),
            (None, None) => {
                let from = spec::inferred_from(pool.info());
                (spec::infer_spec(model, pool.info())?, SpecSource::Inferred { from })
            }
        };
        let batch_dim = spec::validate(model, &spec, pool.info())?;
        Ok(Self { spec, spec_source, pool, batch_dim, path: model.to_path_buf() })
    }

    /// The validated spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Where the spec came from.
    pub fn spec_source(&self) -> &SpecSource {
        &self.spec_source
    }

    /// What the model declares: inputs, outputs, metadata, graph name.
    pub fn info(&self) -> &ModelInfo {
        self.pool.info()
    }

    /// Sets the score threshold (every class) and the NMS IoU threshold of a model whose spec
    /// was inferred, from the pipeline config or the command line (`None`: unchanged). A model
    /// with a spec file keeps its file's thresholds: setting them here is an error, as is an
    /// IoU threshold for a decoder without NMS or a value outside 0..=1.
    pub fn set_inferred_thresholds(&mut self, score: Option<f32>, iou: Option<f32>) -> Result<(), DetectError> {
        if score.is_none() && iou.is_none() {
            return Ok(());
        }
        let refuse = |reason: String| DetectError::Thresholds { model: self.path.clone(), reason };
        if let Some(path) = self.spec_source.path() {
            return Err(refuse(format!(
                "its spec is {}: set score_threshold and iou_threshold there (these apply to spec-less models)",
                path.display()
            )));
        }
        let mut spec = self.spec.clone();
        spec.set_thresholds(score, iou).map_err(|e| refuse(e.to_string()))?;
        self.spec = spec;
        Ok(())
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's batch dimension: fixed, or any size.
    pub fn batch_dim(&self) -> BatchDim {
        self.batch_dim
    }

    /// Name of the execution provider the sessions run on (`cpu`, `cuda`, `tensorrt`).
    pub fn provider(&self) -> &'static str {
        self.pool.provider()
    }

    /// Tiles per run given the configured batch size: the model's own when static.
    pub fn run_batch(&self, configured: usize) -> usize {
        match self.batch_dim {
            BatchDim::Static(n) => n,
            BatchDim::Dynamic => configured.max(1),
        }
    }

    /// Tile ranges, one per run, covering `n_tiles` tiles at the configured batch size
    /// (see [`batch_plan`]).
    pub fn batch_plan(&self, n_tiles: usize, configured: usize) -> Vec<Range<usize>> {
        batch_plan(n_tiles, self.run_batch(configured), self.batch_dim == BatchDim::Dynamic)
    }

    /// Shape of the model's own input tensor for `n` tiles, in its layout.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        let i = &self.spec.input;
        match i.layout {
            Layout::Nchw => [n, i.channels.len(), i.height, i.width],
            Layout::Nhwc => [n, i.height, i.width, i.channels.len()],
        }
    }

    /// Shape `[n, channels, height, width]` of the tile tensor that [`Detector::run`] and
    /// [`Detector::run_decode`] take for `n` tiles: channels first, whatever the model's layout.
    pub fn tiles_shape(&self, n: usize) -> [usize; 4] {
        let i = &self.spec.input;
        [n, i.channels.len(), i.height, i.width]
    }

    /// One ONNX Runtime run of `tiles` (channels first, at most one model batch); returns
    /// the decoder's outputs for the whole run (a static batch's padding included), copied
    /// out of ONNX Runtime.
    pub fn run(&self, tiles: ArrayView4<'_, f32>, times: &mut RunTimes) -> Result<ModelOutputs<'static>, DetectError> {
        let input = self.model_input(tiles)?;
        self.run_with(&input, times, |outputs| Ok(outputs.clone().into_owned()))
    }

    /// One run of `tiles` (channels first, at most one model batch), decoded while the
    /// outputs still sit in ONNX Runtime's buffers: a detection head of a few MB per batch
    /// is read in place, not copied. One result per tile handed in.
    pub fn run_decode(
        &self,
        tiles: ArrayView4<'_, f32>,
        stats: &mut DecodeStats,
        times: &mut RunTimes,
    ) -> Result<Decoded, DetectError> {
        let n = tiles.shape()[0];
        let input = self.model_input(tiles)?;
        let batch = input.shape()[0];
        let mut decode_time = std::time::Duration::ZERO;
        let mut decoded = self.run_with(&input, times, |outputs| {
            let t = Instant::now();
            let d = self.decode(outputs, batch, stats);
            decode_time = t.elapsed();
            d
        })?;
        times.decode += decode_time;
        decoded.truncate(n);
        Ok(decoded)
    }

    /// The model's input for `tiles` (channels first): permuted to the model's layout and,
    /// under a static batch larger than the tile count, padded with zero tiles.
    fn model_input<'a>(&self, tiles: ArrayView4<'a, f32>) -> Result<CowArray<'a, f32, Ix4>, DetectError> {
        let n = tiles.shape()[0];
        let run_n = match self.batch_dim {
            BatchDim::Static(b) => b,
            BatchDim::Dynamic => n,
        };
        if tiles.shape() != self.tiles_shape(n) || n == 0 || n > run_n {
            return Err(DetectError::Input {
                model: self.path.clone(),
                expected: self.tiles_shape(run_n).to_vec(),
                found: tiles.shape().to_vec(),
            });
        }
        Ok(to_model_input(tiles, self.spec.input.layout, run_n))
    }

    /// Runs one model batch (already in the model's layout) and hands the outputs (f32
    /// ones borrowed from ONNX Runtime) to `f`.
    fn run_with<R>(
        &self,
        input: &CowArray<'_, f32, Ix4>,
        times: &mut RunTimes,
        f: impl FnOnce(&ModelOutputs<'_>) -> Result<R, DetectError>,
    ) -> Result<R, DetectError> {
        let run_err = |source: ort::Error| DetectError::Run { model: self.path.clone(), error: source };
        let wanted: Vec<String> = self.spec.decoder.outputs().into_iter().map(str::to_string).collect();
        self.pool.with_session(|session| {
            let tensor = ort::value::TensorRef::from_array_view(input).map_err(run_err)?;
            let t0 = Instant::now();
            let outputs = session.run(ort::inputs![self.spec.input.name.as_str() => tensor]).map_err(run_err)?;
            let t1 = Instant::now();
            let mut tensors = Vec::with_capacity(wanted.len());
            for name in &wanted {
                let Some(value) = outputs.get(name) else { continue };
                let unsupported = |found: &str| DetectError::Unsupported {
                    path: self.path.clone(),
                    reason: format!("output `{name}` is {found}; decoders read f32, bool or integer outputs"),
                };
                use ort::value::TensorElementType as T;
                let tensor = match value.dtype().tensor_type() {
                    Some(T::Float32) => OutputTensor::F32(value.try_extract_array::<f32>().map_err(run_err)?.into()),
                    Some(T::Bool) => OutputTensor::Bool(value.try_extract_array::<bool>().map_err(run_err)?.into()),
                    Some(T::Float64) => {
                        OutputTensor::F32(value.try_extract_array::<f64>().map_err(run_err)?.mapv(|v| v as f32).into())
                    }
                    Some(T::Int64) => {
                        OutputTensor::F32(value.try_extract_array::<i64>().map_err(run_err)?.mapv(|v| v as f32).into())
                    }
                    Some(T::Int32) => {
                        OutputTensor::F32(value.try_extract_array::<i32>().map_err(run_err)?.mapv(|v| v as f32).into())
                    }
                    Some(T::Uint8) => {
                        OutputTensor::F32(value.try_extract_array::<u8>().map_err(run_err)?.mapv(f32::from).into())
                    }
                    Some(other) => return Err(unsupported(&format!("{other:?}"))),
                    None => return Err(unsupported("not a tensor")),
                };
                tensors.push((name.clone(), tensor));
            }
            times.ort_run += t1 - t0;
            times.extract += t1.elapsed();
            times.runs += 1;
            f(&ModelOutputs { tensors })
        })
    }

    /// Decodes the outputs of a run of `batch` tiles.
    pub fn decode(
        &self,
        outputs: &ModelOutputs,
        batch: usize,
        stats: &mut DecodeStats,
    ) -> Result<Decoded, DetectError> {
        self.decode_outputs(outputs, batch, stats)
            .map_err(|source| DetectError::Decode { model: self.path.clone(), error: source })
    }

    fn decode_outputs(
        &self,
        outputs: &ModelOutputs,
        batch: usize,
        stats: &mut DecodeStats,
    ) -> Result<Decoded, DecodeError> {
        let params = || self.spec.decoder.box_params(self.spec.class_thresholds()).expect("a box decoder");
        match &self.spec.decoder {
            DecoderSpec::Yolov8(head) => Ok(Decoded::Boxes(yolo_v8::decode_with(
                outputs.f32(&head.output)?,
                &head.output,
                batch,
                &params(),
                head.nms,
                stats,
            )?)),
            DecoderSpec::Yolov5(head) => Ok(Decoded::Boxes(yolo_v5::decode_with(
                outputs.f32(&head.output)?,
                &head.output,
                batch,
                &params(),
                head.nms,
                stats,
            )?)),
            DecoderSpec::EndToEnd { output, .. } => {
                Ok(Decoded::Boxes(end_to_end::decode(outputs.f32(output)?, output, batch, &params(), stats)?))
            }
            DecoderSpec::Anomalib { map_output, score_output, mask_output, .. } => {
                let names =
                    AnomalyOutputs { map: map_output.clone(), score: score_output.clone(), mask: mask_output.clone() };
                Ok(Decoded::Anomaly(anomaly::decode(outputs, &names, batch, stats)?))
            }
            DecoderSpec::Classification { output, activation } => Ok(Decoded::Classes(classify::decode(
                outputs.f32(output)?,
                output,
                batch,
                *activation,
                &self.spec.class_thresholds(),
                stats,
            )?)),
        }
    }

    /// Runs any number of tiles (channels first), `batch` at a time (the model's own batch
    /// when static), and decodes them: results come back one per tile, in order.
    pub fn infer(
        &self,
        input: ArrayView4<'_, f32>,
        batch: usize,
        stats: &mut DecodeStats,
        times: &mut RunTimes,
    ) -> Result<Decoded, DetectError> {
        let step = self.run_batch(batch);
        let mut all: Option<Decoded> = None;
        for chunk in input.axis_chunks_iter(Axis(0), step) {
            let decoded = self.run_decode(chunk, stats, times)?;
            match &mut all {
                None => all = Some(decoded),
                Some(a) => a.extend(decoded),
            }
        }
        Ok(all.unwrap_or_else(|| match self.spec.decoder.task() {
            spec::Task::Detect => Decoded::Boxes(Vec::new()),
            spec::Task::AnomalyMap => Decoded::Anomaly(Vec::new()),
            spec::Task::Classify => Decoded::Classes(Vec::new()),
        }))
    }
}

/// `tiles` (channels first) as one run's input: in `layout`, in standard memory order, and
/// padded with zero tiles up to `run_n`. Borrowed when nothing needs to change.
fn to_model_input(tiles: ArrayView4<'_, f32>, layout: Layout, run_n: usize) -> CowArray<'_, f32, Ix4> {
    let n = tiles.shape()[0];
    let tiles = match layout {
        Layout::Nchw => tiles,
        Layout::Nhwc => tiles.permuted_axes([0, 2, 3, 1]),
    };
    if n >= run_n {
        return if tiles.is_standard_layout() { tiles.into() } else { tiles.as_standard_layout().into_owned().into() };
    }
    let mut shape = tiles.raw_dim();
    shape[0] = run_n;
    let mut padded = Array4::<f32>::zeros(shape);
    padded.slice_mut(ndarray::s![..n, .., .., ..]).assign(&tiles);
    padded.into()
}

/// Tile ranges per model run. With a dynamic batch dimension the first run takes one tile:
/// the model starts after one tile is filled instead of a whole batch, and the rest is filled
/// while it runs.
pub fn batch_plan(n_tiles: usize, batch: usize, dynamic: bool) -> Vec<Range<usize>> {
    let batch = batch.max(1);
    let first = if dynamic && batch > 1 { n_tiles.min(1) } else { 0 };
    let mut plan: Vec<_> = (first > 0).then_some(0..first).into_iter().collect();
    let mut start = first;
    while start < n_tiles {
        plan.push(start..(start + batch).min(n_tiles));
        start += batch;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_input_permutes_and_pads() {
        // Two tiles of 2 channels x 1 row x 3 columns; value = 100 tile + 10 channel + column.
        let tiles = Array4::from_shape_fn((2, 2, 1, 3), |(n, c, _, x)| (100 * n + 10 * c + x) as f32);
        let same = to_model_input(tiles.view(), Layout::Nchw, 2);
        assert!(same.is_view(), "no copy when nothing changes");
        assert_eq!(same, tiles);
        let nhwc = to_model_input(tiles.view(), Layout::Nhwc, 2);
        assert_eq!(nhwc.shape(), [2, 1, 3, 2]);
        assert!(nhwc.is_standard_layout());
        assert_eq!((nhwc[[1, 0, 2, 0]], nhwc[[1, 0, 2, 1]]), (102.0, 112.0));
        // A static batch of 4: the two tiles, then zero tiles the decoder's results drop.
        let padded = to_model_input(tiles.view(), Layout::Nhwc, 4);
        assert_eq!(padded.shape(), [4, 1, 3, 2]);
        assert_eq!(padded.slice(ndarray::s![..2, .., .., ..]), nhwc);
        assert!(padded.slice(ndarray::s![2.., .., .., ..]).iter().all(|&v| v == 0.0));
        let padded = to_model_input(tiles.view(), Layout::Nchw, 3);
        assert_eq!(padded.slice(ndarray::s![..2, .., .., ..]), tiles);
        assert_eq!(padded.shape(), [3, 2, 1, 3]);
    }

    #[test]
    fn batch_plan_covers_every_tile_once_and_starts_small_when_it_can() {
        assert_eq!(batch_plan(10, 4, true), vec![0..1, 1..5, 5..9, 9..10]);
        assert_eq!(batch_plan(10, 4, false), vec![0..4, 4..8, 8..10]);
        assert_eq!(batch_plan(1, 8, true), vec![0..1]);
        assert_eq!(batch_plan(0, 8, true), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batch_plan(3, 1, true), vec![0..1, 1..2, 2..3]);
    }
}
