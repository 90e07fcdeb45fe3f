//! ONNX Runtime sessions: built once per model, then lent out one caller at a time.
//!
//! `Session::run` needs `&mut` (ONNX Runtime's allocators are not thread-safe), so a
//! [`SessionPool`] owns `sessions` independent sessions of the same model and hands each
//! to one caller at a time; the pool's lock is held only to take or return a session,
//! never across a run. Execution providers live one per file.

mod cpu;
mod cuda;
mod tensorrt;

use super::DetectError;
use super::spec::{ModelInfo, TensorInfo};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `cuda` feature).
    Cuda,
    /// NVIDIA TensorRT (needs the `tensorrt` feature).
    Tensorrt,
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimization {
    /// No graph optimisation.
    Disable,
    /// Constant folding, redundant-node removal and simple fusions.
    Basic,
    /// Basic plus complex node fusions.
    Extended,
    /// Every optimisation, memory-layout ones included.
    #[default]
    All,
}

/// Session settings (`[session]` in the pipeline config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Where the model runs.
    pub provider: Provider,
    /// GPU index for CUDA/TensorRT.
    pub device_id: i32,
    /// Refuse to run when the GPU provider cannot be used, instead of falling back to CPU:
    /// a misconfigured GPU server must fail loudly, not run 50x slower.
    pub require_gpu: bool,
    /// Threads inside one operator; 0 lets ONNX Runtime pick (one per core).
    pub intra_threads: usize,
    /// Let ONNX Runtime's intra-op threads keep spinning for work after a run returns (its own
    /// default). Off, they stop spinning once `run` returns (they still spin inside a run), so
    /// the pipeline's work between runs (calibration, tiles, decode, outputs) gets the cores.
    pub spin_between_runs: bool,
    /// ONNX Runtime's graph optimisation level.
    pub optimization: Optimization,
    /// Independent sessions per model, for concurrent callers (each holds its own weights).
    pub sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            device_id: 0,
            require_gpu: false,
            intra_threads: 0,
            spin_between_runs: false,
            optimization: Optimization::All,
            sessions: 1,
        }
    }
}

impl From<Optimization> for GraphOptimizationLevel {
    fn from(o: Optimization) -> Self {
        match o {
            Optimization::Disable => Self::Disable,
            Optimization::Basic => Self::Level1,
            Optimization::Extended => Self::Level2,
            Optimization::All => Self::All,
        }
    }
}

/// A pool of sessions of one model.
pub struct SessionPool {
    model: PathBuf,
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
    info: ModelInfo,
    provider: &'static str,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool").field("model", &self.model).field("provider", &self.provider).finish()
    }
}

fn ort_err(model: &Path) -> impl Fn(ort::Error) -> DetectError + '_ {
    move |source| DetectError::ModelLoad { path: model.to_path_buf(), error: source }
}

/// Builds one session of `model` with the configured provider.
fn build_session(model: &Path, cfg: &SessionConfig) -> Result<(Session, &'static str), DetectError> {
    let env = crate::runtime::environment().ok_or(DetectError::RuntimeNotLoaded)?;
    let err = ort_err(model);
    let mut builder = Session::builder(env).map_err(&err)?;
    builder = builder.with_optimization_level(cfg.optimization.into()).map_err(|e| err(e.into()))?;
    if cfg.intra_threads > 0 {
        builder = builder.with_intra_threads(cfg.intra_threads).map_err(|e| err(e.into()))?;
    }
    if !cfg.spin_between_runs {
        builder = builder.with_config_entry("session.force_spinning_stop", "1").map_err(|e| err(e.into()))?;
    }
    let (eps, provider) = match cfg.provider {
        Provider::Cpu => (vec![cpu::dispatch()], cpu::NAME),
        Provider::Cuda => cuda::dispatch(cfg)?,
        Provider::Tensorrt => tensorrt::dispatch(cfg)?,
    };
    builder = builder.with_execution_providers(eps).map_err(|e| {
        let e: ort::Error = e.into();
        if cfg.require_gpu {
            DetectError::Provider { provider: provider.into(), reason: e.to_string() }
        } else {
            err(e)
        }
    })?;
    let session = builder.commit_from_file(model).map_err(&err)?;
    Ok((session, provider))
}

fn tensor_info(outlet: &ort::value::Outlet) -> TensorInfo {
    let dtype = outlet.dtype();
    let element = dtype.tensor_type().map_or_else(|| "non-tensor".to_string(), |t| element_name(t).to_string());
    let dims = dtype.tensor_shape().map(|s| s.iter().map(|&d| usize::try_from(d).ok()).collect()).unwrap_or_default();
    TensorInfo { name: outlet.name().to_string(), element, dims }
}

fn element_name(t: ort::value::TensorElementType) -> &'static str {
    use ort::value::TensorElementType as T;
    match t {
        T::Float32 => "f32",
        T::Float64 => "f64",
        T::Float16 => "f16",
        T::Bfloat16 => "bf16",
        T::Bool => "bool",
        T::Int8 => "i8",
        T::Uint8 => "u8",
        T::Int16 => "i16",
        T::Uint16 => "u16",
        T::Int32 => "i32",
        T::Uint32 => "u32",
        T::Int64 => "i64",
        T::Uint64 => "u64",
        _ => "other",
    }
}

fn model_info(session: &Session) -> ModelInfo {
    let mut info = ModelInfo {
        inputs: session.inputs().iter().map(tensor_info).collect(),
        outputs: session.outputs().iter().map(tensor_info).collect(),
        ..Default::default()
    };
    if let Ok(meta) = session.metadata() {
        info.graph_name = meta.name();
        for key in meta.custom_keys().unwrap_or_default() {
            if let Some(v) = meta.custom(&key) {
                info.metadata.insert(key, v);
            }
        }
    }
    info
}

impl SessionPool {
    /// Loads `model` into `cfg.sessions` sessions. ONNX Runtime must be loaded first
    /// ([`crate::runtime::init`]); a missing or corrupt file is a typed error.
    pub fn load(model: &Path, cfg: &SessionConfig) -> Result<Self, DetectError> {
        if !model.is_file() {
            return Err(DetectError::ModelMissing { path: model.to_path_buf() });
        }
        let count = cfg.sessions.max(1);
        let mut sessions = Vec::with_capacity(count);
        let mut provider = cpu::NAME;
        for _ in 0..count {
            let (s, p) = build_session(model, cfg)?;
            provider = p;
            sessions.push(s);
        }
        let info = model_info(&sessions[0]);
        tracing::debug!(model = %model.display(), provider, sessions = count, "model loaded");
        Ok(Self { model: model.to_path_buf(), idle: Mutex::new(sessions), returned: Condvar::new(), info, provider })
    }

    /// What the model declares about its inputs, outputs and metadata.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The execution provider the sessions were built for.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        &self.model
    }

    /// Runs `f` with a session of its own, waiting for one to come back if all are lent.
    pub fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let session = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(s) = idle.pop() {
                    break s;
                }
                idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
            }
        };
        // The guard hands the session back on every exit, a panic in `f` included, so
        // other callers never wait for a session that is gone.
        struct Lent<'a> {
            pool: &'a SessionPool,
            session: Option<Session>,
        }
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                if let Some(s) = self.session.take() {
                    self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                    self.pool.returned.notify_one();
                }
            }
        }
        let mut lent = Lent { pool: self, session: Some(session) };
        f(lent.session.as_mut().expect("just lent"))
    }
}
