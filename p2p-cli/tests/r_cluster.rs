//! The future.p2p R package against a real cluster ([`cluster::LocalCluster`]), with the
//! futureverse that `R_LIBS` selects (see p2p_testkit::r): the package's testthat suite,
//! and future.tests, the futureverse's conformance suite for future backends. Each runs
//! in an R session as carol, on a cluster of its own on one shared hub, and starts bob's
//! workers itself (to test a plan set before any worker exists). Any failure, error or
//! timeout fails the test; the testthat suite skips only what the future at hand lacks
//! (e.g. `cancel()` before future 1.49), and says so.
//!
//! ```sh
//! cargo test -p p2p-cli --test r_cluster                                  # Debian's future
//! R_LIBS=$PWD/.ci/r-lib/cran cargo test -p p2p-cli --test r_cluster       # CRAN's future
//! ```

#[path = "common/cluster.rs"]
mod cluster;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use cluster::{LocalCluster, wait_bounded};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

/// The hub all suites of this binary share, and the right to run an R suite: one at a
/// time, since they time things and CI has two cores.
fn shared_cluster() -> (&'static LocalCluster, MutexGuard<'static, ()>) {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    static ONE_SUITE: Mutex<()> = Mutex::new(());
    let turn = ONE_SUITE.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = CLUSTER.get_or_init(|| LocalCluster::start(Path::new(BIN)));
    (cluster, turn)
}

/// A file of the p2p-r crate, which holds the R package and its R test scripts.
fn p2p_r_path(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../p2p-r")
        .join(path)
}

/// Runs the package's testthat suite on a cluster of its own (`name`), with fresh workers.
fn run_testthat(cluster: &LocalCluster, name: &str) -> std::process::ExitStatus {
    let name = cluster.host(name);
    let mut r = cluster
        .rscript(&p2p_testkit::r::test_r_libs(), &name)
        .args([
            "-e",
            "testthat::test_dir(Sys.getenv('FP2P_TEST_DIR'), reporter = 'summary', \
             load_package = 'none', stop_on_failure = TRUE)",
        ])
        .env("FP2P_TEST_DIR", p2p_r_path("rpkg/tests/testthat"))
        .spawn()
        .expect("Rscript starts");
    wait_bounded(&mut r, Duration::from_secs(900))
}

#[test]
fn testthat_suite_on_a_real_cluster() {
    let (cluster, _turn) = shared_cluster();
    println!(
        "testthat suite on future {}",
        p2p_testkit::r::future_version()
    );
    let status = run_testthat(cluster, "testthat");
    assert!(
        status.success(),
        "the testthat suite failed ({status}); see its output above"
    );
}

#[test]
fn future_tests_conformance_on_a_real_cluster() {
    let (cluster, _turn) = shared_cluster();
    let name = cluster.host("conformance");
    // future.tests draws plots: their Rplots.pdf lands there.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut r = cluster
        .rscript(&p2p_testkit::r::test_r_libs(), &name)
        .current_dir(scratch.path())
        .arg(p2p_r_path("tests/r/future_tests.R"))
        .env(
            "FP2P_TEST_HELPER",
            p2p_r_path("rpkg/tests/testthat/helper-cluster.R"),
        )
        .spawn()
        .expect("Rscript starts");
    let status = wait_bounded(&mut r, Duration::from_secs(1200));
    assert!(
        status.success(),
        "future.tests::check() on future {} found errors or timeouts ({status}); see its output above",
        p2p_testkit::r::future_version()
    );
}
