//! `future-p2p top`: the status screen, redrawn every `--interval` while the user watches.
//!
//! It stays on the cluster's topic as a client: its first hello makes every worker and
//! client answer at once (so the first screen is complete), and their later hellos keep
//! it current; a peer whose hello lapsed leaves the screen ([`Census::forget_lapsed`]).
//! On a terminal each screen replaces the last, and `q` (or Ctrl-C) quits; elsewhere the
//! screens follow one another, a blank line apart. `--iterations N` draws N screens and
//! exits without reading keys (for scripts and tests).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use p2p_proto::id::ClusterName;
use p2p_transport::clock::unix_ms;
use tokio::sync::mpsc;

use crate::CliError;
use crate::connect::BoardArgs;
use crate::status::{Census, status_hello};
use crate::units::parse_duration;

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// Time between two screens (e.g. 2, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "2")]
    pub interval: Duration,
    /// Draw this many screens, then exit (keys are not read).
    #[arg(long)]
    pub iterations: Option<u64>,
}

/// How often top says hello again, so peers keep counting it as a client.
const HELLO_EVERY: Duration = Duration::from_secs(20);

pub async fn top(args: TopArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    let joined = args.board.join(&cluster, None).await?;
    let qualified = cluster.qualified(&joined.user)?.to_string();
    let me = joined.me.to_string();
    let mut lines = joined.lines;
    let mut refusals = joined.refusals;
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let mut keys = match args.iterations {
        None if interactive => read_keys(),
        _ => mpsc::unbounded_channel().1,
    };
    let interval = args.interval.max(Duration::from_millis(100));
    let mut hello = tokio::time::interval(HELLO_EVERY);
    let mut screen = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut census = Census::default();
    let started = std::time::Instant::now();
    let mut drawn = 0u64;
    loop {
        tokio::select! {
            _ = hello.tick() => {
                if let Some(line) = status_hello(&joined.me, 2 * HELLO_EVERY) {
                    let _ = lines.outgoing.send(line).await;
                }
            }
            line = lines.incoming.recv() => match line {
                Some(line) => census.observe(&line),
                None => break,
            },
            _ = screen.tick() => {
                census.forget_lapsed((unix_ms() / 1000) as i64);
                let status = census.status(&qualified, &me, started.elapsed());
                draw(&frame(&status.render(), interval, args.iterations.is_none() && interactive), interactive)?;
                drawn += 1;
                if args.iterations.is_some_and(|n| drawn >= n) {
                    break;
                }
            }
            Some(()) = keys.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            Ok(()) = refusals.changed() => {
                let said = refusals.borrow_and_update().clone();
                if let Some(said) = said {
                    return Err(p2p_cluster::ClusterError::Refused {
                        cluster: qualified,
                        user: joined.user,
                        said,
                    }
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// One screen: a title line, then the status.
fn frame(status: &str, interval: Duration, keys: bool) -> String {
    let now = time_of_day(unix_ms() / 1000);
    let quit = if keys { "; q quits" } else { "" };
    format!(
        "future-p2p top  {now} UTC  (every {} s{quit})\n{status}",
        interval.as_secs_f64()
    )
}

/// `HH:MM:SS` of a Unix time, UTC.
fn time_of_day(unix: u64) -> String {
    let secs = unix % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Writes a screen: over the last one on a terminal, after it elsewhere.
fn draw(screen: &str, terminal: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if terminal {
        // Home, clear to the end of the screen.
        write!(out, "\x1b[H\x1b[2J{screen}")?;
    } else {
        writeln!(out, "{screen}")?;
    }
    out.flush()?;
    Ok(())
}

/// A message for every key that quits (q, Q, Esc, Ctrl-C in raw mode), read on a thread
/// of its own (reading a key blocks).
fn read_keys() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let term = console::Term::stdout();
        while let Ok(key) = term.read_key() {
            let quits = matches!(
                key,
                console::Key::Char('q' | 'Q') | console::Key::Escape | console::Key::CtrlC
            );
            if quits {
                let _ = tx.send(());
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_has_a_title_with_the_time() {
        assert_eq!(time_of_day(1_795_698_440), "13:07:20");
        let screen = frame("cluster alice/p2p\n", Duration::from_secs(2), true);
        assert!(screen.starts_with("future-p2p top  "));
        assert!(screen.contains("(every 2 s; q quits)\ncluster alice/p2p"));
    }
}
