//! README.md's "Running a cluster" commands, run as a new user would paste them: in a
//! fresh shell with a fresh HOME (no SSH key, no known hosts), in order, from the first
//! `sh` block of that section. The one line the test does not run is `cargo install`: the
//! `future-p2p` it would install is the one this test was built with, put first on PATH.
//!
//! The README uses the hub's fixed default ports (2222, 4000, 4001), so the commands run
//! in a network namespace of their own (`unshare`, as root): its loopback is theirs alone,
//! nothing else on the machine is touched, and a PID namespace ends every process they
//! started when the shell exits.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/cluster.rs"]
mod cluster;

use cluster::wait_bounded;

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

/// The first ```sh block after the heading `section`, as lines.
fn sh_block(readme: &str, section: &str) -> Vec<String> {
    let after = readme
        .split_once(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {section:?}"))
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no sh block under {section:?}"))
        .0;
    block.lines().map(str::to_owned).collect()
}

#[test]
fn the_running_a_cluster_commands_work_as_pasted() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let lines = sh_block(&readme, "## Running a cluster");
    let (install, commands): (Vec<String>, Vec<String>) = lines
        .into_iter()
        .partition(|line| line.starts_with("cargo install "));
    assert_eq!(
        install.len(),
        1,
        "the section starts by installing future-p2p"
    );
    let home = tempfile::tempdir().expect("a fresh HOME");
    let script = format!(
        "set -eu\nip link set lo up\ncd \"$HOME\"\n{}\n",
        commands.join("\n")
    );
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let mut shell = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--kill-child", "bash", "-c"])
        .arg(&script)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs; the README test needs root for its namespace");
    let status = wait_bounded(&mut shell, Duration::from_secs(300));
    let output = shell.wait_with_output().expect("the shell's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "the README's commands failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("ready"), "the hub's log: {stdout}");
    assert!(stdout.contains("\nolleh\n"), "submit's result: {stdout}");
    assert!(
        stdout.contains("workers 1 with 1 slot(s)"),
        "status: {stdout}"
    );
}
