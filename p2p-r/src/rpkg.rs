//! The future.p2p R package, bundled in this crate so that a worker binary can install
//! the exact version its evaluator protocol matches.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use thiserror::Error;
use tokio::process::Command;

/// The package sources (`rpkg/`), as paths relative to the package root and contents.
pub const SOURCES: &[(&str, &str)] = &[
    ("DESCRIPTION", include_str!("../rpkg/DESCRIPTION")),
    ("NAMESPACE", include_str!("../rpkg/NAMESPACE")),
    ("R/backend.R", include_str!("../rpkg/R/backend.R")),
    ("R/bridge.R", include_str!("../rpkg/R/bridge.R")),
    ("R/cli.R", include_str!("../rpkg/R/cli.R")),
    (
        "R/evaluator_loop.R",
        include_str!("../rpkg/R/evaluator_loop.R"),
    ),
    ("R/options.R", include_str!("../rpkg/R/options.R")),
    ("R/original.R", include_str!("../rpkg/R/original.R")),
    ("R/payload.R", include_str!("../rpkg/R/payload.R")),
    ("R/pico_p2p.R", include_str!("../rpkg/R/pico_p2p.R")),
    ("R/protocol.R", include_str!("../rpkg/R/protocol.R")),
    ("R/session.R", include_str!("../rpkg/R/session.R")),
    ("R/worker.R", include_str!("../rpkg/R/worker.R")),
];

/// The package could not be installed.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error("writing the package sources: {0}")]
    Write(#[source] io::Error),
    #[error("cannot run {r}: {source} (is R installed? .ci/setup/40-r.sh installs it)")]
    Spawn {
        r: String,
        #[source]
        source: io::Error,
    },
    #[error("R CMD INSTALL failed ({status}):\n{output}")]
    Failed { status: String, output: String },
}

/// Installs the bundled future.p2p package into the R library `library` (created if
/// missing) with `r` (the `R` executable) and returns the library's path.
pub async fn install(r: &Path, library: &Path) -> Result<PathBuf, InstallError> {
    let sources = tempfile::Builder::new()
        .prefix("future.p2p-src-")
        .tempdir()
        .map_err(InstallError::Write)?;
    let package = sources.path().join("future.p2p");
    for (path, contents) in SOURCES {
        let target = package.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(InstallError::Write)?;
        }
        std::fs::write(&target, contents).map_err(InstallError::Write)?;
    }
    std::fs::create_dir_all(library).map_err(InstallError::Write)?;
    // `--library=DIR` in one word: R CMD INSTALL takes `--library DIR` as an unknown
    // option and a package named DIR, and installs into the site library instead.
    let mut library_option = std::ffi::OsString::from("--library=");
    library_option.push(library);
    let output = Command::new(r)
        .args(["CMD", "INSTALL", "--no-docs", "--no-multiarch"])
        .arg(library_option)
        .arg(&package)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| InstallError::Spawn {
            r: r.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(InstallError::Failed {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(library.to_path_buf())
}

/// A fingerprint of the bundled sources: a library installed from other sources (another
/// build of future-p2p) is not reused.
pub fn sources_fingerprint() -> String {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, contents) in SOURCES {
        for byte in path.bytes().chain([0]).chain(contents.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Where workers keep the bundled package installed: `$XDG_CACHE_HOME/future-p2p/r`,
/// `~/.cache/future-p2p/r`, or a directory in the temporary directory.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("future-p2p")
        .join("r")
}

/// The R library under `cache` holding the bundled future.p2p, installed there first if
/// needed. Installs go to a directory of their own and are renamed into place, so
/// workers starting together never see a half-installed package.
pub async fn install_cached(r: &Path, cache: &Path) -> Result<PathBuf, InstallError> {
    let library = cache.join(format!("future.p2p-{}", sources_fingerprint()));
    if library.join("future.p2p").join("DESCRIPTION").is_file() {
        return Ok(library);
    }
    std::fs::create_dir_all(cache).map_err(InstallError::Write)?;
    let staging = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(cache)
        .map_err(InstallError::Write)?;
    install(r, staging.path()).await?;
    let staged = staging.keep();
    if std::fs::rename(&staged, &library).is_err() {
        // Another worker installed it meanwhile; theirs is the same package.
        let _ = std::fs::remove_dir_all(&staged);
    }
    Ok(library)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package lands in the library asked for, not in R's site library.
    #[tokio::test]
    async fn installs_into_the_given_library() {
        let library = tempfile::tempdir().unwrap();
        install(Path::new("R"), library.path()).await.unwrap();
        assert!(
            library
                .path()
                .join("future.p2p")
                .join("DESCRIPTION")
                .is_file()
        );
    }

    /// Every file of rpkg/ is bundled, so an installed package is never missing one.
    #[test]
    fn every_package_source_is_bundled() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rpkg");
        let mut on_disk = vec!["DESCRIPTION".to_owned(), "NAMESPACE".to_owned()];
        for entry in std::fs::read_dir(root.join("R")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            on_disk.push(format!("R/{name}"));
        }
        on_disk.sort();
        let mut bundled: Vec<String> = SOURCES.iter().map(|(path, _)| path.to_string()).collect();
        bundled.sort();
        assert_eq!(bundled, on_disk);
    }
}
