//! Fifty workers (issue 13.4), bounded to fit CI: a hub and a host as `future-p2p`
//! processes, 47 in-process workers (each on its own SSH connection) and 3 worker
//! processes, one slot each, and a client keeping 4 unique tasks per worker in flight
//! until 2,000 are done. Every task comes back exactly once with its own payload, none
//! fails, and no worker or client stops under the load. The bench with 50 worker
//! processes, 10,000 tasks and the figures is
//! `cargo run --release -p p2p-cli --example scale_bench`.

use std::path::Path;
use std::time::Duration;

use p2p_testkit::scale::{self, ScaleConfig, ScaleReport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_workers_run_every_task_exactly_once_and_nobody_stops() {
    p2p_testkit::init_tracing();
    let config = ScaleConfig {
        process_workers: 3,
        in_process_workers: 47,
        tasks: 2_000,
        window_per_worker: 4,
        deadline: Duration::from_secs(240),
    };
    let report = scale::run(Path::new(env!("CARGO_BIN_EXE_future-p2p")), &config)
        .await
        .expect("the cluster starts");
    println!("{}\n{}", ScaleReport::HEADER, report.row());
    assert_eq!(
        (report.ok, report.wrong, report.failed, report.lost),
        (2_000, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.workers_stopped, 0, "{report:?}");
    assert!(!report.client_stopped, "{report:?}");
}
