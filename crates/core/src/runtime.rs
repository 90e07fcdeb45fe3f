//! Finding and loading the ONNX Runtime shared library.
//!
//! ort is built with `load-dynamic`, so the library is opened at run time. Left to itself,
//! ort panics on first use when the library is missing; here every model load goes through
//! [`init`], which looks in a fixed, documented order and returns a typed error that says
//! where it looked and the one command that fixes it.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release the project fetches and tests against (`make setup`).
pub const ORT_VERSION: &str = "1.31.1";
/// Oldest ONNX Runtime minor version whose C API ort was compiled against (`api-24`).
pub const MIN_ORT_MINOR: u32 = 24;
/// The command that fetches the library into the project's cache.
pub const FIX_COMMAND: &str = "make setup";

const LIB_FILE: &str = "libonnxruntime.so.1.31.1";

/// Where a library candidate came from, in search order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LibrarySource {
    /// `--ort-library` flag or the `ort_library` config key.
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    Environment,
    /// A library file beside the running executable.
    NextToExecutable,
    /// The copy `make setup` fetched into `.cache/onnxruntime/`.
    ProjectCache,
    /// An installed Python `onnxruntime` package (`onnxruntime/capi/`).
    PythonPackage,
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Explicit => "explicit path",
            Self::Environment => "ORT_DYLIB_PATH",
            Self::NextToExecutable => "next to the executable",
            Self::ProjectCache => "project cache (make setup)",
            Self::PythonPackage => "Python onnxruntime package",
        })
    }
}

/// The library that was loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    /// The shared library file.
    pub library: PathBuf,
    /// Where it was found.
    pub source: LibrarySource,
    /// The version it reports, e.g. `1.31.1`.
    pub version: String,
}

/// Why ONNX Runtime could not be loaded; each says the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No candidate library file exists.
    #[error(
        "ONNX Runtime library not found; looked in:\n{}\nfix: run `{FIX_COMMAND}` (fetches onnxruntime=={ORT_VERSION} from PyPI), or set ORT_DYLIB_PATH to a libonnxruntime.so",
        .searched.iter().map(|(s, p)| format!("  - {s}: {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    NotFound {
        /// Every place looked in, in search order.
        searched: Vec<(LibrarySource, PathBuf)>,
    },
    /// A library file exists but does not open (wrong architecture, missing dependencies).
    #[error("{}: cannot load ONNX Runtime library ({source_kind}): {reason}; fix: run `{FIX_COMMAND}` or point ORT_DYLIB_PATH at a working libonnxruntime.so", .path.display())]
    Unloadable {
        /// The library file.
        path: PathBuf,
        /// Where it was found.
        source_kind: LibrarySource,
        /// What the loader said.
        reason: String,
    },
    /// The library opens but is older than the C API ort needs.
    #[error("{}: ONNX Runtime {found} is too old ({source_kind}); nii-atr needs 1.{MIN_ORT_MINOR} or later and is tested with {ORT_VERSION}; fix: run `{FIX_COMMAND}` or set ORT_DYLIB_PATH", .path.display())]
    WrongVersion {
        /// The library file.
        path: PathBuf,
        /// Where it was found.
        source_kind: LibrarySource,
        /// The version it reports.
        found: String,
    },
    /// Another library is already loaded in this process: one cannot switch.
    #[error("ONNX Runtime was already loaded from {}; cannot switch to {} in the same process", .loaded.display(), .requested.display())]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The one asked for.
        requested: PathBuf,
    },
}

static LOADED: OnceLock<RuntimeInfo> = OnceLock::new();
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The root of the checkout this crate was built in (the workspace holds it at `crates/core`).
fn workspace_root() -> &'static Path {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    core.parent().and_then(Path::parent).unwrap_or(core)
}

/// The candidate paths, in search order. Only existing files are tried.
pub fn candidates(explicit: Option<&Path>) -> Vec<(LibrarySource, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push((LibrarySource::Explicit, p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push((LibrarySource::Environment, PathBuf::from(p)));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push((LibrarySource::NextToExecutable, dir.join(LIB_FILE)));
        out.push((LibrarySource::NextToExecutable, dir.join("libonnxruntime.so")));
    }
    // The checkout this binary was built from: `make setup` puts the library in its root.
    out.push((LibrarySource::ProjectCache, workspace_root().join(".cache/onnxruntime").join(LIB_FILE)));
    out.extend(python_package_libraries().into_iter().map(|p| (LibrarySource::PythonPackage, p)));
    out
}

/// Libraries shipped inside an installed Python `onnxruntime` package, found without
/// starting Python: site-packages folders under the usual prefixes and `$VIRTUAL_ENV`.
fn python_package_libraries() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(v).join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(&home).join(".local/lib"));
        // pyenv keeps one prefix per version.
        if let Ok(rd) = std::fs::read_dir(PathBuf::from(&home).join(".pyenv/versions")) {
            roots.extend(rd.flatten().map(|e| e.path().join("lib")));
        }
    }
    roots.push(PathBuf::from("/usr/local/lib"));
    roots.push(PathBuf::from("/usr/lib"));
    let mut found = Vec::new();
    for root in roots {
        for py in entries_starting_with(&root, "python3") {
            for site in ["site-packages", "dist-packages"] {
                let capi = py.join(site).join("onnxruntime/capi");
                found.extend(entries_starting_with(&capi, "libonnxruntime.so"));
            }
        }
    }
    found
}

/// The entries of folder `dir` whose names start with `prefix`, sorted; none when `dir`
/// cannot be read.
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .collect();
    out.sort();
    out
}

/// Picks the first candidate that exists, or says where it looked.
pub fn locate(explicit: Option<&Path>) -> Result<(LibrarySource, PathBuf), RuntimeError> {
    let all = candidates(explicit);
    // A path the user named (flag, config or ORT_DYLIB_PATH) is meant: never fall past it.
    if let Some((source, path)) =
        all.iter().find(|(s, _)| matches!(s, LibrarySource::Explicit | LibrarySource::Environment))
        && !path.is_file()
    {
        return Err(RuntimeError::NotFound { searched: vec![(*source, path.clone())] });
    }
    all.iter().find(|(_, p)| p.is_file()).cloned().ok_or(RuntimeError::NotFound { searched: all })
}

/// Reads the library's version through `OrtGetApiBase` without handing it to ort yet.
fn probe_version(path: &Path, source: LibrarySource) -> Result<String, RuntimeError> {
    let unloadable =
        |reason: String| RuntimeError::Unloadable { path: path.to_path_buf(), source_kind: source, reason };
    // SAFETY: loading a shared library runs its initialisers; ONNX Runtime's are benign.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| unloadable(e.to_string()))?;
    // SAFETY: the symbol's signature is ONNX Runtime's stable C entry point.
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase\0") }
            .map_err(|_| unloadable("no OrtGetApiBase symbol: not an ONNX Runtime library".into()))?;
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(unloadable("OrtGetApiBase returned null".into()));
    }
    // SAFETY: base is non-null and points into the loaded library, which outlives this call.
    let version = unsafe { CStr::from_ptr(((*base).GetVersionString)()) }.to_string_lossy().into_owned();
    // Keep the library mapped: ort opens the same path next and must see the same image.
    std::mem::forget(lib);
    Ok(version)
}

fn minor_of(version: &str) -> Option<u32> {
    let mut it = version.split('.');
    let major: u32 = it.next()?.trim().parse().ok()?;
    let minor: u32 = it.next()?.trim().parse().ok()?;
    (major == 1).then_some(minor)
}

/// Loads ONNX Runtime once per process. Later calls return the same library, or an error if
/// a different explicit path is asked for.
pub fn init(explicit: Option<&Path>) -> Result<&'static RuntimeInfo, RuntimeError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = LOADED.get() {
        if let Some(req) = explicit
            && !same_file(req, &info.library)
        {
            return Err(RuntimeError::AlreadyLoaded { loaded: info.library.clone(), requested: req.to_path_buf() });
        }
        return Ok(info);
    }
    let (source, path) = locate(explicit)?;
    let version = probe_version(&path, source)?;
    match minor_of(&version) {
        Some(m) if m >= MIN_ORT_MINOR => {}
        _ => return Err(RuntimeError::WrongVersion { path, source_kind: source, found: version }),
    }
    if version != ORT_VERSION {
        tracing::warn!(%version, expected = ORT_VERSION, path = %path.display(), "ONNX Runtime version differs from the tested one");
    }
    let unloadable = |reason: String| RuntimeError::Unloadable { path: path.clone(), source_kind: source, reason };
    let env = ort::init_from(&path)
        .map_err(|e| unloadable(e.to_string()))?
        .with_name("nii-atr")
        .build()
        .map_err(|e| unloadable(e.to_string()))?;
    // ort keeps only a weak reference to the environment: hold it for the process lifetime.
    let _ = ENVIRONMENT.set(env);
    tracing::debug!(path = %path.display(), %version, %source, "loaded ONNX Runtime");
    Ok(LOADED.get_or_init(|| RuntimeInfo { library: path, source, version }))
}

/// The library loaded by [`init`], if any.
pub fn loaded() -> Option<&'static RuntimeInfo> {
    LOADED.get()
}

/// The process-wide ONNX Runtime environment sessions are built in; `None` before [`init`].
pub fn environment() -> Option<&'static ort::environment::Environment> {
    ENVIRONMENT.get()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_versions() {
        assert_eq!(minor_of("1.31.1"), Some(31));
        assert_eq!(minor_of("1.9.0"), Some(9));
        assert_eq!(minor_of("2.0.0"), None);
        assert_eq!(minor_of("garbage"), None);
    }

    #[test]
    fn explicit_path_comes_first_and_missing_is_reported() {
        let bogus = Path::new("/nonexistent/libonnxruntime.so");
        let c = candidates(Some(bogus));
        assert_eq!(c[0], (LibrarySource::Explicit, bogus.to_path_buf()));
        assert!(c.iter().any(|(s, _)| *s == LibrarySource::ProjectCache));
    }

    #[test]
    fn a_named_path_that_is_missing_is_not_skipped() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("explicit path: /nonexistent/libonnxruntime.so") && msg.contains("make setup"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = probe_version(&fake, LibrarySource::Explicit).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RuntimeError::Unloadable { .. }), "{msg}");
        assert!(msg.contains("libonnxruntime.so") && msg.contains(FIX_COMMAND), "{msg}");
    }

    #[test]
    fn not_found_names_every_place_and_the_fix() {
        let err = RuntimeError::NotFound {
            searched: vec![(LibrarySource::Environment, "/a".into()), (LibrarySource::ProjectCache, "/b".into())],
        };
        let msg = err.to_string();
        assert!(msg.contains("ORT_DYLIB_PATH: /a") && msg.contains("/b") && msg.contains("make setup"), "{msg}");
    }
}
