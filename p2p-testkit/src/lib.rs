//! Test and benchmark harness of future-p2p, shared by every crate's tests, the examples
//! and the benchmarks (a dev-dependency only; `publish = false`).
//!
//! ```text
//!   local     LocalHub: an embedded hub on free loopback ports and users with fresh keys;
//!             the quickstart, benchmarks and end-to-end tests run whole clusters on it
//!   openssh   real OpenSSH: ssh-keygen keys, a board server with a user registry, `ssh`
//!             clients as child processes killed on drop
//!   processes ProcessCluster: the `future-p2p` program as hub, host and workers, each a
//!             child process that can be SIGKILLed; clients join in-process
//!   chaos     the chaos scenario on it: workers killed at random under a client checking
//!             unique payloads (the CI test and the bench share it)
//!   scale     many workers (processes and in-process) under a client keeping a window of
//!             unique tasks in flight, a reader counting board lines, the hub's memory
//!   flood     cheap stalls by a member: fake worker hellos against a client, fake
//!             requests against a one-slot worker (the end-to-end test and the bench share it)
//!   peers     the reference magic-wormhole peers (Python client, mailbox server and relay;
//!             wormhole-william) as child processes, bounded waits, test payloads
//!   r         real R with the future.p2p package under test installed once per test binary;
//!             where CI installed the original future.p2p 0.4.0 (OriginalLibraries)
//! ```
//!
//! Every helper fails loudly (with the `.ci/setup` step to run) when a tool is missing, and
//! bounds every wait: a test never skips silently and never hangs.

pub mod chaos;
pub mod flood;
pub mod local;
pub mod openssh;
pub mod peers;
pub mod processes;
pub mod r;
pub mod scale;

/// Logs of the code under test, shown for failing tests (`RUST_LOG` picks them, e.g.
/// `RUST_LOG=p2p_r=debug`); installed once per test binary.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
