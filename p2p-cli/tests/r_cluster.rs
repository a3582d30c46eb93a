//! The future.p2p R package against a real cluster ([`cluster::LocalCluster`]): the
//! testthat suite in rpkg/tests/testthat runs in an R session as carol and starts bob's
//! workers itself, to test a plan set before any worker exists. Any test failure fails
//! this test.

#[path = "common/cluster.rs"]
mod cluster;

use std::path::Path;
use std::time::Duration;

use cluster::{LocalCluster, wait_bounded};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

#[test]
fn testthat_suite_on_a_real_cluster() {
    let r_library = p2p_testkit::r::r_library();
    let cluster = LocalCluster::start(Path::new(BIN));
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../p2p-r/rpkg/tests/testthat");
    let mut r = cluster
        .rscript(Path::new(BIN), r_library)
        .args([
            "-e",
            "testthat::test_dir(Sys.getenv('FP2P_TEST_DIR'), reporter = 'summary', \
             load_package = 'none', stop_on_failure = TRUE)",
        ])
        .env("FP2P_TEST_DIR", &suite)
        .spawn()
        .expect("Rscript starts");
    let status = wait_bounded(&mut r, Duration::from_secs(900));
    assert!(
        status.success(),
        "the testthat suite failed ({status}); see its output above"
    );
}
