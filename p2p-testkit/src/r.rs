//! Real R for the tests: the future.p2p package installed once per test binary, and the
//! R library path the tests give R.
//!
//! Which futureverse the R tests run on is chosen the ordinary R way, by `R_LIBS`: unset,
//! R finds Debian's future 1.31 in its site library; `.ci/run` runs the R tests twice,
//! with `R_LIBS=.ci/r-lib/debian` (future.tests 0.8.0, for future 1.31) and with
//! `R_LIBS=.ci/r-lib/cran` (CRAN's future 1.68 and friends), both made by
//! .ci/setup/45-r-cran.sh. Every R the tests start has the future.p2p library first, then
//! the inherited `R_LIBS`.

use std::ffi::OsString;
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

/// `R_LIBS` for an R of the tests: `first`, then the libraries of the inherited `R_LIBS`.
pub fn r_libs(first: &Path) -> OsString {
    let inherited = std::env::var_os("R_LIBS").unwrap_or_default();
    let paths = std::iter::once(first.to_path_buf())
        .chain(std::env::split_paths(&inherited).filter(|p| !p.as_os_str().is_empty()));
    std::env::join_paths(paths).expect("library paths without ':'")
}

/// `R_LIBS` with the future.p2p package under test first.
pub fn test_r_libs() -> OsString {
    r_libs(r_library())
}

/// The version of the future package that R finds with [`test_r_libs`], e.g. `1.31.0`.
pub fn future_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let output = Command::new("Rscript")
            .args(["-e", "cat(format(packageVersion('future')))"])
            .env("R_LIBS", test_r_libs())
            .output()
            .unwrap_or_else(|err| panic!("{NO_R} ({err})"));
        assert!(output.status.success(), "R cannot find the future package");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    })
}

/// Whether that future has the FutureBackend API (future >= 1.40.0).
pub fn future_has_backend_api() -> bool {
    let mut parts = future_version()
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 40)
}

/// Where `.ci/setup/46-r-original.sh` installs the original future.p2p 0.4.0, the peer of
/// the interop tests, and the CRAN futureverse it needs (future >= 1.67; Debian has 1.31).
/// The two packages share a name, so no R session may see both ours and the original.
#[derive(Debug, Clone)]
pub struct OriginalLibraries {
    /// `.ci/r-lib/original`: the original future.p2p alone.
    pub original: PathBuf,
    /// `.ci/r-lib/cran`: the CRAN futureverse (45-r-cran.sh).
    pub cran: PathBuf,
}

impl OriginalLibraries {
    /// The libraries CI made; panics with the setup steps to run when they are missing.
    pub fn from_ci() -> OriginalLibraries {
        let ci = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/r-lib");
        let libraries = OriginalLibraries {
            original: ci.join("original"),
            cran: ci.join("cran"),
        };
        assert!(
            libraries.original.join("future.p2p/DESCRIPTION").is_file()
                && libraries.cran.join("future/DESCRIPTION").is_file(),
            "the original future.p2p 0.4.0 is not installed in {} on {}: run .ci/run, or bash \
             .ci/setup/45-r-cran.sh && bash .ci/setup/46-r-original.sh",
            libraries.original.display(),
            libraries.cran.display()
        );
        libraries
    }
}
