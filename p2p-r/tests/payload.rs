//! The payload builder of the future.p2p R package, checked in real R
//! (tests/r/payload.R): small payloads, untouched RNG, emptied `where` environments.

use std::process::Command;

#[test]
fn payloads_are_small_and_leave_the_session_alone() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/r/payload.R");
    let output = Command::new("Rscript")
        .arg(script)
        .env("R_LIBS", p2p_testkit::r::test_r_libs())
        .output()
        .unwrap_or_else(|err| panic!("{} ({err})", p2p_testkit::r::NO_R));
    assert!(
        output.status.success() && output.stdout.ends_with(b"ok\n"),
        "payload.R failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
