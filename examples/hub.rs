//! The self-hosted hub on this machine (SSH pipe server, wormhole mailbox and transit relay
//! in one process): the `future-p2p hub` command, run from the sources.
//!
//! ```sh
//! cargo run --example hub -- --state-dir ./hub-state --signup
//! ```
//!
//! Users are `name key-type base64` lines in `STATE/users` (or sign up: with `--signup`, the
//! SSH login name of an unknown key is registered when it is free).

fn main() -> std::process::ExitCode {
    let args = std::env::args_os().skip(1);
    p2p_cli::main_with_args(["future-p2p".into(), "hub".into()].into_iter().chain(args))
}
