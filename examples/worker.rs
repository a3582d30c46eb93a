//! Contribute a worker to a cluster: the `future-p2p worker` command, run from the sources.
//!
//! ```sh
//! # R futures, evaluated in persistent R processes
//! cargo run --example worker -- --cluster alice/p2p
//! # tasks of Rust clients: each one a shell command, payload on stdin, result on stdout
//! cargo run --example worker -- --cluster alice/p2p --host 127.0.0.1 \
//!     --ssh-args "-p 2222" --mailbox ws://127.0.0.1:4000/v1 --relay tcp://127.0.0.1:4001 \
//!     --exec cat
//! ```
//!
//! `cargo run --example worker -- --help` lists every option (each also a `FUTURE_P2P_*`
//! environment variable).

fn main() -> std::process::ExitCode {
    let args = std::env::args_os().skip(1);
    p2p_cli::main_with_args(
        ["future-p2p".into(), "worker".into()]
            .into_iter()
            .chain(args),
    )
}
