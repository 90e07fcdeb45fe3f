//! Shared by the fuzz targets: the readers take paths, so each input is written to a file in
//! a folder of this process (on tmpfs where there is one) and read back through the real entry
//! point, exactly as a user's file would be.

use std::path::PathBuf;
use std::sync::OnceLock;

/// This process's scratch folder.
pub fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("nii-atr-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// Writes `data` to `name` in the scratch folder and returns its path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).expect("scratch write");
    path
}
