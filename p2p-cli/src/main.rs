//! `future-p2p`: the command line of future-p2p (hub, host, worker, user, ls, status,
//! bridge); see [`p2p_cli`].

fn main() -> std::process::ExitCode {
    p2p_cli::main_with_args(std::env::args_os())
}
