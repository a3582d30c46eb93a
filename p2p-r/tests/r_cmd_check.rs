//! `R CMD check --as-cran` of the future.p2p package as `R CMD build` makes it, with the
//! futureverse that `R_LIBS` selects (see common/mod.rs): no ERROR, WARNING or NOTE.
//!
//! What only this machine causes is switched off, with R's documented settings:
//! - `--no-manual`: the PDF manual needs LaTeX, which CI does not install (the help
//!   pages are still checked, and rendered to HTML and validated with tidy);
//! - `_R_CHECK_CRAN_INCOMING_REMOTE_=false`: CRAN's incoming checks ask CRAN's servers;
//! - `_R_CHECK_SYSTEM_CLOCK_=false`: the check of file timestamps asks a time server
//!   whether the clock is right (the timestamps are still checked against it).
//!
//! The package's tests run without a cluster here (those needing one skip; r_cluster runs
//! them all).

use std::path::Path;
use std::process::{Command, Output};

/// Environment that would point the package's tests and examples at a cluster.
const CLUSTER_ENV: &[&str] = &[
    "FP2P_TEST_CLUSTER",
    "FUTURE_P2P_CLUSTER",
    "R_FUTURE_P2P_BIN",
    "R_FUTURE_P2P_CLUSTER",
];

fn r(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("R");
    command
        .args(args)
        .current_dir(dir)
        .env("_R_CHECK_CRAN_INCOMING_REMOTE_", "false")
        .env("_R_CHECK_SYSTEM_CLOCK_", "false");
    for name in CLUSTER_ENV {
        command.env_remove(name);
    }
    command
        .output()
        .unwrap_or_else(|err| panic!("{} ({err})", p2p_testkit::r::NO_R))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn r_cmd_check_as_cran_finds_nothing() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("rpkg");
    let built = r(
        dir.path(),
        &["CMD", "build", package.to_str().expect("a UTF-8 path")],
    );
    assert!(
        built.status.success(),
        "R CMD build failed:\n{}",
        text(&built)
    );
    let tarball = std::fs::read_dir(dir.path())
        .expect("the scratch directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with("future.p2p_") && name.ends_with(".tar.gz"))
        .expect("R CMD build made a tarball");

    println!(
        "R CMD check --as-cran {tarball} on future {}",
        p2p_testkit::r::future_version()
    );
    let checked = r(
        dir.path(),
        &["CMD", "check", "--as-cran", "--no-manual", &tarball],
    );
    let log = std::fs::read_to_string(dir.path().join("future.p2p.Rcheck/00check.log"))
        .unwrap_or_else(|_| text(&checked));
    println!("{log}");
    assert!(
        checked.status.success() && log.trim_end().ends_with("Status: OK"),
        "R CMD check --as-cran is not clean; its log is above"
    );
}
