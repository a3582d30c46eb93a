//! future.p2p against the other R backends, in one R session per futureverse: the
//! latency of `value(future(1))` (p50, p99), 1,000 futures (`future_lapply()` with
//! `future.chunk.size = 1`; `mirai_map()` for raw mirai) in tasks/s, and
//! `future_lapply(1:1000)` with its default chunking, for future.p2p on a local cluster
//! with two warm one-slot workers, future.mirai (`mirai_multisession`), raw mirai,
//! `multisession` and `sequential`, with ratios against future.mirai (against
//! multisession where future.mirai cannot run, e.g. Debian's future 1.31).
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example r_backends_bench [-- LIBRARY...]   # "" for R's own
//! ```
//!
//! By default it runs on CRAN's futureverse (`.ci/r-lib/cran`, made by
//! .ci/setup/45-r-cran.sh) and then on R's own library (Debian's future 1.31). mirai,
//! nanonext and future.mirai come from a bench-only library, `FUTURE_P2P_BENCH_R_LIB`
//! (default `.ci/r-lib/bench`), which this bench makes from `../shared/r-cran` when they
//! are missing (nanonext builds its bundled NNG and mbedtls: cmake, a few minutes). The R
//! side is r_backends_bench.R; the cluster is that of the R test suite
//! (tests/common/cluster.rs). The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one
//! built next to this example. `FUTURE_P2P_BENCH_CLIENT_LIB`, an R library with another
//! build of future.p2p, measures that one on the client side instead of the bundled one
//! (to compare two versions of the package on the same workers).

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster::{LocalCluster, wait_bounded};

const R_BENCH: &str = include_str!("r_backends_bench.R");

/// Whether `package` is installed in `library`.
fn installed(library: &Path, package: &str) -> bool {
    library.join(package).join("DESCRIPTION").is_file()
}

/// The bench-only library with mirai, nanonext and future.mirai, installed from
/// `../shared/r-cran` on top of `cran` when missing; `None` (the peers are then left
/// out, and the bench says so) when they cannot be installed.
fn bench_library(repo: &Path, cran: Option<&Path>) -> Option<PathBuf> {
    let library = std::env::var_os("FUTURE_P2P_BENCH_R_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".ci/r-lib/bench"));
    let packages = ["nanonext", "mirai", "future.mirai"];
    if packages.iter().all(|p| installed(&library, p)) {
        return Some(library);
    }
    let shared = repo.join("../shared/r-cran/install.sh");
    let Some(cran) = cran.filter(|_| shared.is_file()) else {
        eprintln!(
            "note: mirai and future.mirai are not in {} and cannot be installed (they need \
             {} and CRAN's futureverse in .ci/r-lib/cran): measuring without them",
            library.display(),
            shared.display()
        );
        return None;
    };
    eprintln!(
        "installing nanonext, mirai and future.mirai into the bench library {} from {} \
         (once; nanonext builds NNG and mbedtls with cmake, a few minutes on 2 cores)",
        library.display(),
        shared.display()
    );
    let status = Command::new("bash")
        .arg(&shared)
        .arg(&library)
        .arg("mirai")
        .env("R_LIBS", cran)
        .status();
    match status {
        Ok(status) if status.success() => Some(library),
        outcome => {
            eprintln!(
                "note: installing the bench library failed ({outcome:?}): measuring without mirai"
            );
            None
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cran = repo.join(".ci/r-lib/cran");
    let cran = cran.is_dir().then(|| cran.canonicalize()).transpose()?;
    let mut libraries: Vec<OsString> = std::env::args_os().skip(1).collect();
    if libraries.is_empty() {
        if let Some(cran) = &cran {
            libraries.push(cran.clone().into_os_string());
        }
        libraries.push(OsString::new());
    }
    let peers = bench_library(&repo, cran.as_deref());

    let package = tempfile::tempdir()?;
    let client_library = match std::env::var_os("FUTURE_P2P_BENCH_CLIENT_LIB") {
        Some(library) => PathBuf::from(library),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(p2p_r::rpkg::install(Path::new("R"), package.path()))?,
    };
    // A file, not `-e`: R ignores an expression of more than 10,000 bytes.
    let script = package.path().join("r_backends_bench.R");
    std::fs::write(&script, R_BENCH)?;
    let cluster = LocalCluster::start(&bin);
    for (i, extra) in libraries.iter().enumerate() {
        let mut r_libs = client_library.as_os_str().to_owned();
        if !extra.is_empty() {
            // The peers are built for CRAN's futureverse; mirai alone would load on any,
            // but future.mirai needs future >= 1.40, so they go only beside a library
            // that has it.
            let is_cran = Path::new(extra).canonicalize().ok() == cran;
            if let Some(peers) = peers.as_ref().filter(|_| is_cran) {
                r_libs.push(":");
                r_libs.push(peers);
            }
            r_libs.push(":");
            r_libs.push(extra);
        }
        let name = cluster.host(&format!("bench{i}"));
        let mut r = cluster.rscript(&r_libs, &name).arg(&script).spawn()?;
        let status = wait_bounded(&mut r, Duration::from_secs(1800));
        if !status.success() {
            return Err(format!("the R bench with R_LIBS={r_libs:?} failed ({status})").into());
        }
    }
    Ok(())
}
