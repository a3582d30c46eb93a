//! Real R for the tests: the future.p2p package installed once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const NO_R: &str = "R is not installed (Rscript not found): the p2p-r tests need real R with \
     the future package; run .ci/run, whose setup step .ci/setup/40-r.sh installs them";

/// The R library holding the future.p2p package under test.
pub fn r_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        if Command::new("Rscript").arg("--version").output().is_err() {
            panic!("{NO_R}");
        }
        let library = tempfile::Builder::new()
            .prefix("rlib-")
            .tempdir_in(scratch_dir())
            .expect("a temporary R library")
            .keep();
        // The tests run inside tokio runtimes; install from a thread of its own.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(p2p_r::rpkg::install(Path::new("R"), &library))
                .expect("installing the future.p2p R package")
        })
        .join()
        .expect("the installer thread")
    })
}

/// Where test binaries keep what outlives one test: `target/tmp` beside the running test
/// or example binary (`target/PROFILE/deps/NAME`, `target/PROFILE/examples/NAME`), so
/// `cargo clean` removes it; the system's temporary directory otherwise.
pub fn scratch_dir() -> PathBuf {
    let beside_target = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?.parent()?;
        let dir = target.join("tmp");
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir)
    });
    beside_target.unwrap_or_else(std::env::temp_dir)
}
