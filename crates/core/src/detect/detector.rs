//! A loaded model: spec + sessions, with `pre → run → decode` timed separately.

use super::DetectError;
use super::decode::anomaly::{self, AnomalyOutputs, AnomalyTile};
use super::decode::classify::{self, ClassScores};
use super::decode::{BoxParams, DecodeError, DecodeStats, ModelOutputs, OutputTensor, end_to_end, yolo_v5, yolo_v8};
use super::geometry::Detection;
use super::session::{SessionConfig, SessionPool};
use super::spec::{self, BatchDim, DecoderSpec, Layout, ModelSpec};
use ndarray::{ArrayView4, ArrayViewD, Axis};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the spec came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum SpecSource {
    /// A file given explicitly or found beside the model.
    File(PathBuf),
    /// Built from the model's metadata and output shapes.
    Inferred,
}

/// Decoded results of a batch, one entry per tile.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Boxes(Vec<Vec<Detection>>),
    Anomaly(Vec<AnomalyTile>),
    Classes(Vec<Option<ClassScores>>),
}

impl Decoded {
    pub fn len(&self) -> usize {
        match self {
            Self::Boxes(v) => v.len(),
            Self::Anomaly(v) => v.len(),
            Self::Classes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    pub ort_run: Duration,
    pub extract: Duration,
    pub decode: Duration,
    pub runs: usize,
}

impl RunTimes {
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
        let (spec, spec_source) = match spec.map(Path::to_path_buf).or_else(|| ModelSpec::sidecar_of(model)) {
            Some(p) => (ModelSpec::from_path(&p)?, SpecSource::File(p)),
            None => (spec::infer_spec(model, pool.info())?, SpecSource::Inferred),
        };
        let batch_dim = spec::validate(model, &spec, pool.info())?;
        Ok(Self { spec, spec_source, pool, batch_dim, path: model.to_path_buf() })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn spec_source(&self) -> &SpecSource {
        &self.spec_source
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn batch_dim(&self) -> BatchDim {
        self.batch_dim
    }

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

    /// Input tensor shape for `n` tiles, in the model's layout.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        let i = &self.spec.input;
        match i.layout {
            Layout::Nchw => [n, i.channels.len(), i.height, i.width],
            Layout::Nhwc => [n, i.height, i.width, i.channels.len()],
        }
    }

    /// One ONNX Runtime run on exactly one model batch; returns the decoder's outputs,
    /// copied out of ONNX Runtime.
    pub fn run(&self, input: ArrayView4<'_, f32>, times: &mut RunTimes) -> Result<ModelOutputs<'static>, DetectError> {
        self.run_with(input, times, |outputs| Ok(outputs.clone().into_owned()))
    }

    /// One run of `batch` tiles, decoded while the outputs still sit in ONNX Runtime's
    /// buffers: a detection head of a few MB per batch is read in place, not copied.
    pub fn run_decode(
        &self,
        input: ArrayView4<'_, f32>,
        stats: &mut DecodeStats,
        times: &mut RunTimes,
    ) -> Result<Decoded, DetectError> {
        let batch = input.shape()[0];
        let mut decode_time = std::time::Duration::ZERO;
        let decoded = self.run_with(input, times, |outputs| {
            let t = Instant::now();
            let d = self.decode(outputs, batch, stats);
            decode_time = t.elapsed();
            d
        })?;
        times.decode += decode_time;
        Ok(decoded)
    }

    /// Runs one batch and hands the outputs (f32 ones borrowed from ONNX Runtime) to `f`.
    fn run_with<R>(
        &self,
        input: ArrayView4<'_, f32>,
        times: &mut RunTimes,
        f: impl FnOnce(&ModelOutputs<'_>) -> Result<R, DetectError>,
    ) -> Result<R, DetectError> {
        let n = input.shape()[0];
        let expected = self.input_shape(n);
        if input.shape() != expected || n == 0 || matches!(self.batch_dim, BatchDim::Static(b) if b != n) {
            return Err(DetectError::Input {
                model: self.path.clone(),
                expected: match self.batch_dim {
                    BatchDim::Static(b) => self.input_shape(b).to_vec(),
                    BatchDim::Dynamic => expected.to_vec(),
                },
                found: input.shape().to_vec(),
            });
        }
        let input = input.as_standard_layout();
        let run_err = |source: ort::Error| DetectError::Run { model: self.path.clone(), source };
        let wanted: Vec<String> = self.spec.decoder.outputs().into_iter().map(str::to_string).collect();
        self.pool.with_session(|session| {
            let tensor = ort::value::TensorRef::from_array_view(&input).map_err(run_err)?;
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
            .map_err(|source| DetectError::Decode { model: self.path.clone(), source })
    }

    fn decode_outputs(
        &self,
        outputs: &ModelOutputs,
        batch: usize,
        stats: &mut DecodeStats,
    ) -> Result<Decoded, DecodeError> {
        type BoxDecoder = fn(
            ArrayViewD<'_, f32>,
            &str,
            usize,
            &BoxParams,
            &mut DecodeStats,
        ) -> Result<Vec<Vec<Detection>>, DecodeError>;
        let mut boxes = |decode: BoxDecoder, output: &str| {
            let params = self.spec.decoder.box_params(self.spec.class_thresholds()).expect("a box decoder");
            Ok(Decoded::Boxes(decode(outputs.f32(output)?, output, batch, &params, stats)?))
        };
        match &self.spec.decoder {
            DecoderSpec::Yolov8(head) => boxes(yolo_v8::decode, &head.output),
            DecoderSpec::Yolov5(head) => boxes(yolo_v5::decode, &head.output),
            DecoderSpec::EndToEnd { output, .. } => boxes(end_to_end::decode, output),
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

    /// Runs any number of tiles, `batch` at a time (the model's own batch when static),
    /// and decodes them: results come back one per tile, in order.
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
