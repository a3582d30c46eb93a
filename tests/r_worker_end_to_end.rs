//! An R future travels the whole way, as `examples/worker.rs --r` serves it: made by real
//! R, submitted by the scheduler over the real hub, evaluated by a worker whose executor is
//! the R evaluator (persistent R processes with the bundled future.p2p package), and the
//! result turned back into `value()` by real R.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::{alice, hub, within, worker};
use future_p2p::r::evaluator::{REvaluator, REvaluatorConfig};

/// p2p-r's R client script: makes futures and payloads, reads results back.
fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("p2p-r/tests/r/client.R")
}

/// `library`, then the libraries of the inherited `R_LIBS` (which selects the futureverse
/// the test runs on, as in p2p-r's tests; the worker's R gets the same).
fn r_libs(library: &Path) -> std::ffi::OsString {
    let inherited = std::env::var_os("R_LIBS").unwrap_or_default();
    let paths = std::iter::once(library.to_path_buf())
        .chain(std::env::split_paths(&inherited).filter(|p| !p.as_os_str().is_empty()));
    std::env::join_paths(paths).expect("library paths without ':'")
}

fn run_client(library: &Path, args: &[&str]) -> String {
    let output = Command::new("Rscript")
        .arg(client_script())
        .args(args)
        .env("R_LIBS", r_libs(library))
        .output()
        .unwrap_or_else(|err| panic!("Rscript not found ({err}): run .ci/run, which installs R"));
    assert!(
        output.status.success(),
        "client.R {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r_future_is_evaluated_by_an_r_worker_over_the_hub() {
    let library = p2p_testkit::r::r_library();
    let case = tempfile::tempdir().expect("a case directory");
    let dir = case.path().to_str().expect("a UTF-8 path");
    run_client(library, &["make", dir, "value"]);
    let payload = std::fs::read(case.path().join("payload.bin")).expect("the payload R made");

    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let evaluator = within(
        "R to start",
        120,
        REvaluator::start(REvaluatorConfig {
            library_paths: vec![library.to_owned()],
            ..REvaluatorConfig::default()
        }),
    )
    .await
    .expect("the R evaluator starts");
    let _bob = worker(&hub, "bob", evaluator, true, |_| {}).await;

    let handle = alice
        .peer
        .submit("r-future-1".parse().unwrap(), Bytes::from(payload))
        .await
        .unwrap();
    let result = within("the R result", 120, handle).await.expect("a result");
    std::fs::write(case.path().join("result.bin"), &result).expect("writing the result");
    let value = run_client(library, &["value", dir]);
    assert!(value.contains("value=42"), "{value}");
}
