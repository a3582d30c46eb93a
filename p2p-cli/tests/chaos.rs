//! Chaos with real processes, bounded to fit CI: a hub, a host and four workers as
//! separate `future-p2p` processes, a Rust client with unique payloads, and a random
//! worker SIGKILLed every second (a fresh process takes its place). With the default retry
//! count nothing is lost, nothing is duplicated and nothing fails. The longer version with
//! its table is `cargo run --release -p p2p-cli --example chaos_bench`.

use std::path::Path;
use std::time::Duration;

use p2p_testkit::chaos::{self, ChaosConfig, ChaosReport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_lose_duplicate_and_fail_nothing() {
    let config = ChaosConfig {
        tasks: 200,
        workers: 4,
        slots: 1,
        task_seconds: 0.2,
        kill_every: Duration::from_secs(1),
        deadline: Duration::from_secs(240),
    };
    let report = chaos::run(Path::new(env!("CARGO_BIN_EXE_future-p2p")), &config)
        .await
        .expect("the process cluster starts");
    println!("{}\n{}", ChaosReport::HEADER, report.row());
    assert!(
        report.kills >= 3,
        "the run was too short to kill: {report:?}"
    );
    assert_eq!(
        (report.lost, report.duplicated, report.failed),
        (0, 0, 0),
        "{report:?}"
    );
}
