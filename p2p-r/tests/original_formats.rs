//! The R evaluator on future.p2p 0.4.0's formats, with real R and the CRAN future the
//! original needs: the RDS file of a Future, written by the original package's own
//! `saveFuture()`, is evaluated and answered with the RDS file of its FutureResult; what
//! is not such a Future is refused before anything of it runs; and the failure result
//! written in Rust reads in R as a FutureResult whose `value()` raises a FutureError.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::protocols::PayloadFormat;
use p2p_r::evaluator::{REvaluator, REvaluatorConfig};
use p2p_testkit::r::{OriginalLibraries, r_library};
use p2p_worker::executor::{Executor, Job};

/// Runs `code` in R with the given libraries; its stdout.
fn r(libraries: &[&Path], code: &str) -> String {
    let output = Command::new("Rscript")
        .args(["-e", code])
        .env(
            "R_LIBS",
            std::env::join_paths(libraries).expect("library paths"),
        )
        .output()
        .expect("Rscript runs (installed by .ci/setup/40-r.sh)");
    assert!(
        output.status.success(),
        "R failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn job(future: &str, payload: Vec<u8>) -> Job {
    Job {
        future: future.parse().expect("a future id"),
        client: "carol@box:1".parse().expect("a peer id"),
        payload: Bytes::from(payload),
        format: PayloadFormat::FutureP2p,
    }
}

async fn run(evaluator: &REvaluator, job: Job) -> Result<Bytes, RemoteError> {
    let (progress, _) = tokio::sync::mpsc::unbounded_channel();
    tokio::time::timeout(Duration::from_secs(120), evaluator.execute(job, progress))
        .await
        .expect("the evaluator answers within 2 minutes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_futures_are_evaluated_and_foreign_files_refused() {
    let libraries = OriginalLibraries::from_ci();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| dir.path().join(name).display().to_string();
    // What the original client sends: saveFuture() of its future, and its board id.
    let made = r(
        &[&libraries.original, &libraries.cran],
        &format!(
            r#"library(future); plan(sequential)
f <- future({{ cat("printed\n"); message("note"); 6 * 7 }}, lazy = TRUE)
future.p2p:::saveFuture(f, file = "{good}")
e <- future(stop("boom"), lazy = TRUE)
future.p2p:::saveFuture(e, file = "{error}")
saveRDS(list(a = 1), "{list}")
cat(paste(f$uuid, collapse = "-"), paste(e$uuid, collapse = "-"), "\n")"#,
            good = path("good.rds"),
            error = path("error.rds"),
            list = path("list.rds"),
        ),
    );
    let ids: Vec<&str> = made.split_whitespace().collect();
    let (good_id, error_id) = (ids[0], ids[1]);
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect("an RDS file");

    let evaluator = REvaluator::start(REvaluatorConfig {
        library_paths: vec![r_library().to_owned(), libraries.cran.clone()],
        ..REvaluatorConfig::default()
    })
    .await
    .expect("the R evaluator starts");

    // A Future: evaluated, answered with saveRDS() of its FutureResult (gzip).
    let result = run(&evaluator, job(good_id, read("good.rds")))
        .await
        .expect("a result");
    assert_eq!(&result[..2], &[0x1f, 0x8b], "saveRDS() writes gzip");
    std::fs::write(dir.path().join("result.rds"), &result).expect("writing the result");
    // A future that fails has a result too: the error travels in it.
    let failed = run(&evaluator, job(error_id, read("error.rds")))
        .await
        .expect("a result carrying the error");
    std::fs::write(dir.path().join("failed.rds"), &failed).expect("writing the result");

    // Not a Future, another future's file, not RDS: refused, and nothing of them runs.
    let refusals = [
        ("list", job(good_id, read("list.rds")), "not a Future"),
        ("mismatch", job(error_id, read("good.rds")), "not future"),
        (
            "garbage",
            job(good_id, b"X\n\x00garbage".to_vec()),
            "cannot read the future's RDS file",
        ),
    ];
    for (name, job, expected) in refusals {
        let err = run(&evaluator, job).await.expect_err(name);
        assert_eq!(err.kind, RemoteErrorKind::Failed, "{name}: {err}");
        assert!(err.message.contains(expected), "{name}: {err}");
    }
    // The failure answer the worker sends instead, for the client's readRDS().
    let refusal = RemoteError {
        kind: RemoteErrorKind::Crashed,
        message: "R process 9 ended by signal 9".into(),
    };
    let answer = evaluator
        .failure_result(
            &good_id.parse().unwrap(),
            PayloadFormat::FutureP2p,
            &refusal,
        )
        .expect("an answer in the client's format");
    std::fs::write(dir.path().join("answer.rds"), &answer).expect("writing the answer");
    assert!(
        evaluator
            .failure_result(&good_id.parse().unwrap(), PayloadFormat::Native, &refusal)
            .is_none(),
        "our own clients hear of failures otherwise"
    );
    evaluator.shutdown().await;

    // What the original client's value() makes of the three answers.
    let seen = r(
        &[&libraries.original, &libraries.cran],
        &format!(
            r#"library(future); plan(sequential)
as_client <- function(file) {{
  f <- future(NULL); resolved(f)
  f$result <- readRDS(file)
  out <- character(0)
  v <- withCallingHandlers(
    tryCatch(value(f), error = function(e) paste("error", class(e)[1], conditionMessage(e))),
    message = function(m) {{ out <<- c(out, paste("message", trimws(conditionMessage(m)))); invokeRestart("muffleMessage") }})
  printed <- capture.output(print(v))
  c(out, printed)
}}
cat(as_client("{result}"), sep = "\n"); cat("--\n")
cat(as_client("{failed}"), sep = "\n"); cat("--\n")
cat(as_client("{answer}"), sep = "\n")"#,
            result = path("result.rds"),
            failed = path("failed.rds"),
            answer = path("answer.rds"),
        ),
    );
    let parts: Vec<&str> = seen.split("--\n").collect();
    assert!(parts[0].contains("printed"), "{seen}");
    assert!(parts[0].contains("message note"), "{seen}");
    assert!(parts[0].contains("[1] 42"), "{seen}");
    assert!(parts[1].contains("boom"), "{seen}");
    assert!(
        parts[2].contains("error FutureError")
            && parts[2].contains("lost its R process")
            && parts[2].contains("ended by signal 9"),
        "{seen}"
    );
}
