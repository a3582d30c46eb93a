//! The bridge codec against its R implementation (rpkg/R/bridge.R): frames R encodes
//! decode in Rust, and frames Rust encodes decode in R.

use std::process::Command;

use bytes::{Bytes, BytesMut};
use p2p_proto::frame::RemoteErrorKind;
use p2p_r::bridge::protocol::{
    BRIDGE_PROTOCOL_VERSION, ErrorKind, FutureState, Reply, Request, ServerHello,
};

fn run_r(args: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/r/bridge.R");
    let output = Command::new("Rscript")
        .arg(script)
        .args(args)
        .env("R_LIBS", p2p_testkit::r::test_r_libs())
        .output()
        .expect("Rscript runs (installed by .ci/setup/40-r.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bridge.R {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn requests_encoded_by_r_decode_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    run_r(&["requests", dir.path().to_str().unwrap()]);
    let payload = Bytes::from(std::fs::read(dir.path().join("payload.bin")).unwrap());
    let mut stream = BytesMut::from(&std::fs::read(dir.path().join("requests.bin")).unwrap()[..]);
    let decoder = p2p_r::frame::RFrameReader::default();
    let mut requests = Vec::new();
    while let Some(request) = decoder.decode::<Request>(&mut stream).expect("well-formed") {
        requests.push(request);
    }
    assert!(stream.is_empty());
    let [Request::Hello(hello), rest @ ..] = &requests[..] else {
        panic!("no hello first: {requests:?}");
    };
    assert_eq!(hello.protocol, BRIDGE_PROTOCOL_VERSION);
    // The future R found: Debian's 1.31 (legacy API) or a CRAN one (FutureBackend API).
    assert_eq!(hello.future_version, p2p_testkit::r::future_version());
    let api = if p2p_testkit::r::future_has_backend_api() {
        "evalFuture"
    } else {
        "expr"
    };
    assert_eq!(hello.api, api);
    assert_eq!(
        rest,
        [
            Request::Submit {
                id: 1,
                label: "fit été model".into(),
                payload
            },
            Request::Submit {
                id: 2,
                label: String::new(),
                payload: Bytes::new()
            },
            Request::Cancel { id: 1 },
            Request::Poll { id: 2 },
            Request::Poll { id: 0 },
        ]
    );
}

#[test]
fn replies_encoded_by_rust_decode_in_r() {
    let replies = [
        Reply::Hello(ServerHello {
            protocol: BRIDGE_PROTOCOL_VERSION,
            version: "0.1.0".into(),
            cluster: "alice/p2p".into(),
            max_payload: 512 << 20,
        }),
        Reply::Workers { total: 3, free: 2 },
        Reply::Status {
            id: 1,
            state: FutureState::Running,
            detail: "bob@box:42 ü".into(),
        },
        Reply::Condition {
            id: 1,
            condition: Bytes::from_static(&[1, 2, 3]),
        },
        Reply::Result {
            id: 1,
            result: Bytes::from_static(&[0, 255]),
        },
        Reply::Status {
            id: 2,
            state: FutureState::Requeued,
            detail: String::new(),
        },
        Reply::Error {
            id: 2,
            kind: ErrorKind::Remote(RemoteErrorKind::Crashed),
            message: "R process 7 ended by signal 9".into(),
        },
        Reply::Error {
            id: 0,
            kind: ErrorKind::Cluster,
            message: "board closed".into(),
        },
    ];
    let mut stream = BytesMut::new();
    for reply in &replies {
        reply.encode(&mut stream).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("replies.bin"), &stream).unwrap();
    let printed = run_r(&["replies", dir.path().to_str().unwrap()]);
    let expected = "\
hello 0 protocol=1 version=0.1.0 cluster=alice/p2p max_payload=536870912
workers 0 total=3 free=2
status 1 state=running detail=bob@box:42 ü
condition 1 condition=<3 bytes:1,2,3>
result 1 result=<2 bytes:0,255>
status 2 state=requeued detail=
error 2 kind=crashed message=R process 7 ended by signal 9
error 0 kind=cluster message=board closed
left=0
";
    assert_eq!(printed, expected);
}
