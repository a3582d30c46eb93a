//! Members cannot stall others cheaply (issue 14.2), with loose bounds: the figures
//! against a baseline are `cargo run --release --example flood_bench`.
//! - 20,000 worker hellos under made-up ids do not stall alice's client (it took 34-62 s
//!   when the client did work for every known worker on every line);
//! - ten requests that mallory never accepts do not keep bob's only slot from alice, and
//!   draw a few offers, not one every hold.

use std::time::Duration;

use p2p_testkit::flood;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_fake_worker_hellos_do_not_stall_a_client() {
    p2p_testkit::init_tracing();
    let (stalled, baseline) = flood::hello_flood(20_000, Duration::from_secs(60))
        .await
        .expect("the flood run");
    println!("task after the flood: {stalled:?} (without: {baseline:?})");
    assert!(stalled < Duration::from_secs(30), "{stalled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_fake_requests_do_not_hold_a_workers_only_slot() {
    p2p_testkit::init_tracing();
    let run = flood::fake_requests(10, Duration::from_secs(20), Duration::from_secs(30))
        .await
        .expect("the fake request run");
    println!("{run:?}");
    assert!(run.alice_task < Duration::from_secs(10), "{run:?}");
    // Before: one offer every 3 s hold, 7 in 20 s; now pauses double after each.
    assert!(run.offers_to_mallory <= 5, "{run:?}");
}
