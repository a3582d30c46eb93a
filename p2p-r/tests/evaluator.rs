//! The R evaluator with real R: payloads made by R's future package go through an
//! REvaluator and come back as what value() needs.

mod client;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use client::{Case, WAIT, evaluator};
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_r::evaluator::{REvaluator, REvaluatorConfig, SpawnError};
use p2p_transport::wormhole::IncomingPayload;
use p2p_worker::executor::{Executor, Job, StreamJob};
use tokio::sync::mpsc;

/// Runs a case to its result, collecting the conditions relayed on the way.
async fn run(evaluator: &REvaluator, case: &Case) -> (Result<Bytes, RemoteError>, Vec<Bytes>) {
    let (progress, mut conditions) = mpsc::unbounded_channel();
    let result = tokio::time::timeout(WAIT, evaluator.execute(case.job(), progress))
        .await
        .expect("the job ends in time");
    let mut relayed = Vec::new();
    while let Ok(condition) = conditions.try_recv() {
        relayed.push(condition);
    }
    (result, relayed)
}

async fn value_of(evaluator: &REvaluator, case: &Case) -> String {
    let (result, conditions) = run(evaluator, case).await;
    case.client_value(&result.expect("a result"), &conditions)
}

async fn pid_of(evaluator: &REvaluator, case: &Case) -> String {
    let value = value_of(evaluator, case).await;
    value
        .lines()
        .find_map(|line| line.strip_prefix("value="))
        .unwrap_or_else(|| panic!("no value in {value}"))
        .to_owned()
}

#[tokio::test]
async fn values_and_globals_come_back() {
    let case = Case::make("value");
    let evaluator = evaluator(1).await;
    assert_eq!(
        evaluator.info().future_version,
        p2p_testkit::r::future_version()
    );
    assert!(value_of(&evaluator, &case).await.contains("value=42"));
    evaluator.shutdown().await;
}

#[tokio::test]
async fn stdout_messages_warnings_and_errors_travel_in_the_result() {
    let chatty = Case::make("chatty");
    let error = Case::make("error");
    let evaluator = evaluator(1).await;
    let value = value_of(&evaluator, &chatty).await;
    for expected in [
        "stdout=hello from the worker",
        "message=a message",
        "warning=a warning",
        "value=\"done\"",
    ] {
        assert!(
            value.contains(expected),
            "{expected:?} missing in:\n{value}"
        );
    }
    let value = value_of(&evaluator, &error).await;
    assert!(value.contains("error=boom"), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn seeded_futures_give_what_they_give_locally() {
    let case = Case::make("seed");
    let evaluator = evaluator(1).await;
    let value = value_of(&evaluator, &case).await;
    assert!(value.contains("same_as_local=TRUE"), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn progress_arrives_while_the_future_runs() {
    let case = Case::make("progress");
    let evaluator = evaluator(1).await;
    let (progress, mut conditions) = mpsc::unbounded_channel();
    let mut job = evaluator.execute(case.job(), progress);
    // The first progression must come while the job is still running (it sleeps between
    // steps), not with the result.
    let first = tokio::time::timeout(WAIT, async {
        tokio::select! {
            condition = conditions.recv() => condition.expect("a condition"),
            result = &mut job => panic!("the result came before any progress: {result:?}"),
        }
    })
    .await
    .expect("progress in time");
    let result = tokio::time::timeout(WAIT, job)
        .await
        .expect("the result in time")
        .expect("a result");
    let mut relayed = vec![first];
    while let Ok(condition) = conditions.try_recv() {
        relayed.push(condition);
    }
    assert_eq!(relayed.len(), 3, "one condition per progress step");
    let value = case.client_value(&result, &relayed);
    assert_eq!(value.matches("condition=progression").count(), 3, "{value}");
    assert!(value.contains("value=\"progressed\""), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn cancelling_interrupts_r_and_the_process_is_reused() {
    let sleep = Case::make("sleep");
    let pid = Case::make("pid");
    let evaluator = evaluator(1).await;
    let before = pid_of(&evaluator, &pid).await;
    let (progress, _conditions) = mpsc::unbounded_channel();
    let cancelled = tokio::time::timeout(
        Duration::from_secs(2),
        evaluator.execute(sleep.job(), progress),
    )
    .await;
    assert!(cancelled.is_err(), "Sys.sleep(30) finished early");
    // Cancelling is dropping the future; the next job waits for the interrupt to be
    // acknowledged and runs in the same R process, long before the sleep would end.
    let started = Instant::now();
    let after = pid_of(&evaluator, &pid).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(before, after, "the interrupted R process was replaced");
    // The interrupted future left no sink or handler behind.
    let value = value_of(&evaluator, &Case::make("chatty")).await;
    assert!(value.contains("stdout=hello from the worker"), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn cancelling_at_any_moment_leaves_the_evaluator_usable() {
    let nap = Case::make("nap");
    let value = Case::make("value");
    let evaluator = evaluator(1).await;
    // The nap takes 30 ms and more: some cancels land before R starts it, some during
    // it, some just as it ends. None may leave an interrupt pending for the next job,
    // which would then fail as interrupted.
    let mut last = None;
    for delay in (0..150).step_by(3) {
        let (progress, _) = mpsc::unbounded_channel();
        let job = evaluator.execute(nap.job(), progress);
        let _ = tokio::time::timeout(Duration::from_millis(delay), job).await;
        let (result, _) = run(&evaluator, &value).await;
        last = Some(result.unwrap_or_else(|err| panic!("after a cancel at {delay} ms: {err}")));
    }
    let last = last.expect("a last result");
    assert!(value.client_value(&last, &[]).contains("value=42"));
    evaluator.shutdown().await;
}

#[tokio::test]
async fn a_process_whose_future_swallowed_the_interrupt_is_replaced() {
    let swallow = Case::make("swallow");
    let pid = Case::make("pid");
    let evaluator = evaluator(1).await;
    let before = pid_of(&evaluator, &pid).await;
    let (progress, _) = mpsc::unbounded_channel();
    let job = evaluator.execute(swallow.job(), progress);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), job)
            .await
            .is_err()
    );
    // The future caught the SIGINT and returned normally: R never acknowledged it, so
    // the process cannot be trusted to have no interrupt pending and is replaced.
    let after = pid_of(&evaluator, &pid).await;
    assert_ne!(before, after);
    evaluator.shutdown().await;
}

#[tokio::test]
async fn a_crash_of_r_is_reported_and_the_next_job_runs() {
    let value = Case::make("value");
    let evaluator = evaluator(1).await;
    for (name, expected) in [("quit", "exit status 3"), ("pskill", "signal 15")] {
        let case = Case::make(name);
        let (result, _) = run(&evaluator, &case).await;
        let err = result.expect_err("a crash");
        assert_eq!(err.kind, RemoteErrorKind::Crashed, "{err}");
        assert!(err.message.contains(expected), "{name}: {}", err.message);
        assert!(value_of(&evaluator, &value).await.contains("value=42"));
    }
    evaluator.shutdown().await;
}

/// A payload the worker's R cannot evaluate is refused, saying why: one of an unknown
/// API generation always, and a FutureBackend one (future >= 1.40) by a worker with an
/// older future, naming both versions.
#[tokio::test]
async fn payloads_the_worker_cannot_evaluate_are_unsupported() {
    let evaluator = evaluator(1).await;
    let (result, _) = run(&evaluator, &Case::make("unknownapi")).await;
    let err = result.expect_err("a refusal");
    assert_eq!(err.kind, RemoteErrorKind::Unsupported, "{err}");
    assert!(
        err.message.contains("unknown payload API"),
        "{}",
        err.message
    );
    if !p2p_testkit::r::future_has_backend_api() {
        let (result, _) = run(&evaluator, &Case::make("newapi")).await;
        let err = result.expect_err("a refusal");
        assert_eq!(err.kind, RemoteErrorKind::Unsupported, "{err}");
        let ours = format!("future {}", p2p_testkit::r::future_version());
        assert!(
            err.message.contains("future 1.70.0") && err.message.contains(&ours),
            "{}",
            err.message
        );
    }
    evaluator.shutdown().await;
}

#[tokio::test]
async fn output_on_file_descriptor_1_does_not_disturb_the_frames() {
    let case = Case::make("noise");
    let evaluator = evaluator(1).await;
    assert!(value_of(&evaluator, &case).await.contains("value=7"));
    evaluator.shutdown().await;
}

#[tokio::test]
async fn large_globals_go_through() {
    let case = Case::make("big");
    assert!(case.payload.len() > 48_000_000);
    let evaluator = evaluator(1).await;
    let value = value_of(&evaluator, &case).await;
    assert!(value.contains("value=6000000L"), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn many_jobs_share_two_slots() {
    let pid = Case::make("pid");
    let evaluator = evaluator(2).await;
    assert_eq!(evaluator.slots(), 2);
    let jobs = (0..20).map(|_| {
        let (progress, _) = mpsc::unbounded_channel();
        evaluator.execute(pid.job(), progress)
    });
    let results = tokio::time::timeout(WAIT, futures::future::join_all(jobs))
        .await
        .expect("20 jobs in time");
    let results: Vec<Bytes> = results.into_iter().map(|r| r.expect("a result")).collect();
    let pids = pid.client_values(&results);
    assert_eq!(pids.len(), 20, "every result gives a value");
    let distinct: HashSet<&String> = pids.iter().collect();
    assert_eq!(
        distinct.len(),
        2,
        "jobs ran in exactly the two R processes: {pids:?}"
    );
    evaluator.shutdown().await;
}

#[tokio::test]
async fn the_memory_limit_fails_big_allocations_inside_the_future() {
    let case = Case::make("bigalloc");
    let evaluator = tokio::time::timeout(
        WAIT,
        REvaluator::start(REvaluatorConfig {
            memory_limit: Some(2 << 30),
            ..client::config(1)
        }),
    )
    .await
    .expect("R starts in time")
    .expect("R starts under a memory limit");
    let value = value_of(&evaluator, &case).await;
    assert!(value.contains("error=cannot allocate vector"), "{value}");
    evaluator.shutdown().await;
}

#[tokio::test]
async fn a_missing_r_is_a_clear_start_error() {
    let err = REvaluator::start(REvaluatorConfig {
        rscript: "/nonexistent/Rscript".into(),
        ..REvaluatorConfig::default()
    })
    .await
    .expect_err("no R there");
    assert!(matches!(err, SpawnError::Exited(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/Rscript"), "{err}");
}

#[tokio::test]
async fn a_payload_still_arriving_is_read_by_r_as_it_comes() {
    let case = Case::make("big");
    let evaluator = std::sync::Arc::new(evaluator(1).await);
    let (payload, pieces) = IncomingPayload::stream(case.payload.len() as u64);
    let half = case.payload.len() / 2;
    pieces.send(case.payload.slice(..half)).expect("first half");
    let job = StreamJob {
        future: "f-1".parse().expect("id"),
        client: "alice@host:1".parse().expect("peer"),
        payload,
        format: p2p_proto::protocols::PayloadFormat::Native,
    };
    let (progress, _) = mpsc::unbounded_channel();
    let run = tokio::spawn(std::sync::Arc::clone(&evaluator).execute_stream(job, progress));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!run.is_finished(), "R cannot finish half a payload");
    pieces
        .send(case.payload.slice(half..))
        .expect("second half");
    let result = tokio::time::timeout(WAIT, run)
        .await
        .expect("in time")
        .expect("join")
        .expect("a result");
    assert!(case.client_value(&result, &[]).contains("value=6000000L"));
}

#[tokio::test]
async fn payloads_that_are_not_one_serialized_object_fail_and_r_is_replaced() {
    let pid = Case::make("pid");
    let evaluator = evaluator(1).await;
    let before = pid_of(&evaluator, &pid).await;
    let mut trailing = pid.payload.to_vec();
    trailing.extend_from_slice(b"more bytes");
    for (payload, expected) in [
        (Bytes::from(trailing), "not one serialized object"),
        (Bytes::from_static(b"not R at all"), "cannot unserialize"),
    ] {
        let job = Job {
            payload,
            ..pid.job()
        };
        let (progress, _) = mpsc::unbounded_channel();
        let err = tokio::time::timeout(WAIT, evaluator.execute(job, progress))
            .await
            .expect("in time")
            .expect_err("a failure");
        assert_eq!(err.kind, RemoteErrorKind::Failed, "{err}");
        assert!(err.message.contains(expected), "{}", err.message);
        // The stream was out of step: a new R serves the next job.
        let after = pid_of(&evaluator, &pid).await;
        assert_ne!(before, after);
    }
    evaluator.shutdown().await;
}

#[tokio::test]
async fn a_result_over_the_limit_is_refused_with_its_size() {
    let case = Case::make("value");
    let evaluator = tokio::time::timeout(
        WAIT,
        REvaluator::start(REvaluatorConfig {
            max_frame: 100,
            ..client::config(1)
        }),
    )
    .await
    .expect("R starts in time")
    .expect("R starts");
    let (result, _) = run(&evaluator, &case).await;
    let err = result.expect_err("refused");
    assert_eq!(err.kind, RemoteErrorKind::PayloadTooLarge, "{err}");
    assert!(
        err.message.contains("limit of 100 bytes"),
        "{}",
        err.message
    );
    evaluator.shutdown().await;
}

#[tokio::test]
async fn lazy_evaluators_start_r_for_work_and_stop_it_when_idle() {
    let pid = Case::make("pid");
    let evaluator = tokio::time::timeout(
        WAIT,
        REvaluator::start(REvaluatorConfig {
            idle_stop: Some(Duration::from_millis(500)),
            ..client::config(1)
        }),
    )
    .await
    .expect("R starts in time")
    .expect("R is there");
    let first: i32 = pid_of(&evaluator, &pid)
        .await
        .trim_end_matches('L')
        .parse()
        .expect("a pid");
    assert!(std::path::Path::new(&format!("/proc/{first}")).exists());
    let deadline = Instant::now() + WAIT;
    while std::path::Path::new(&format!("/proc/{first}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{first}")).exists(),
        "the idle R process was stopped"
    );
    let second: i32 = pid_of(&evaluator, &pid)
        .await
        .trim_end_matches('L')
        .parse()
        .expect("a pid");
    assert_ne!(first, second, "a new R for new work");
    evaluator.shutdown().await;
}
