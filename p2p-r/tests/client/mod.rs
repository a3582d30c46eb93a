//! The client side of the evaluator tests, in real R (tests/r/client.R): futures and
//! their payloads, and what value() gives for the results that came back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use p2p_r::evaluator::{REvaluator, REvaluatorConfig};
use p2p_worker::executor::Job;

use p2p_testkit::r::{NO_R, r_library, test_r_libs};

/// Bound on any one wait in the tests.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn config(slots: usize) -> REvaluatorConfig {
    REvaluatorConfig {
        slots,
        library_paths: vec![r_library().to_path_buf()],
        ..REvaluatorConfig::default()
    }
}

pub async fn evaluator(slots: usize) -> REvaluator {
    p2p_testkit::init_tracing();
    tokio::time::timeout(WAIT, REvaluator::start(config(slots)))
        .await
        .expect("R starts in time")
        .expect("R starts")
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/r/client.R")
}

fn run_client(args: &[&str]) -> String {
    let output = Command::new("Rscript")
        .arg(client_script())
        .args(args)
        .env("R_LIBS", test_r_libs())
        .output()
        .unwrap_or_else(|err| panic!("{NO_R} ({err})"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "client.R {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A future made by real R, with its payload.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub payload: Bytes,
}

impl Case {
    /// Makes the future `name` of tests/r/client.R and its payload.
    pub fn make(name: &str) -> Case {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().to_str().expect("a UTF-8 temporary path");
        run_client(&["make", path, name]);
        let payload = std::fs::read(dir.path().join("payload.bin")).expect("the payload");
        Case {
            dir,
            payload: Bytes::from(payload),
        }
    }

    pub fn job(&self) -> Job {
        Job {
            future: "f-1".parse().expect("a future id"),
            client: "alice@host:1".parse().expect("a peer id"),
            payload: self.payload.clone(),
            format: p2p_proto::protocols::PayloadFormat::Native,
        }
    }

    /// What `value()` gives in the client for `result` and the relayed `conditions`:
    /// "key=value" lines (value, stdout, message, warning, error, condition).
    pub fn client_value(&self, result: &Bytes, conditions: &[Bytes]) -> String {
        std::fs::write(self.dir.path().join("result.bin"), result).expect("writing the result");
        for (index, condition) in conditions.iter().enumerate() {
            let path = self.dir.path().join(format!("condition-{index:03}.bin"));
            std::fs::write(path, condition).expect("writing a condition");
        }
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary path");
        run_client(&["value", dir])
    }

    /// The values `value()` gives for several results of this case, in order.
    pub fn client_values(&self, results: &[Bytes]) -> Vec<String> {
        let dir = self.dir.path().join("results");
        std::fs::create_dir_all(&dir).expect("a results directory");
        for (index, result) in results.iter().enumerate() {
            std::fs::write(dir.join(format!("{index:03}.bin")), result).expect("writing a result");
        }
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary path");
        run_client(&["values", dir])
            .lines()
            .filter_map(|line| line.strip_prefix("value="))
            .map(str::to_owned)
            .collect()
    }
}
