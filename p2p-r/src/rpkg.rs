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
    (
        "R/PicoP2PFuture.R",
        include_str!("../rpkg/R/PicoP2PFuture.R"),
    ),
    ("R/bridge.R", include_str!("../rpkg/R/bridge.R")),
    (
        "R/evaluator_loop.R",
        include_str!("../rpkg/R/evaluator_loop.R"),
    ),
    ("R/payload.R", include_str!("../rpkg/R/payload.R")),
    ("R/protocol.R", include_str!("../rpkg/R/protocol.R")),
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
    let output = Command::new(r)
        .args(["CMD", "INSTALL", "--no-docs", "--no-multiarch", "--library"])
        .arg(library)
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

#[cfg(test)]
mod tests {
    use super::*;

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
