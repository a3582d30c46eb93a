//! [`watch_cluster`]: nobody waits on a cluster silently.
//!
//! A member (worker, client, bridge) that joins a cluster's topic cannot tell from the pipe
//! alone whether anyone is there: on pico.sh a topic nobody hosts, or one the member is
//! not allowed on, looks like a quiet topic. What proves the cluster is up is its host's
//! `type=cluster` hello. This wraps the member's [`LineChannel`], passes every line through
//! unchanged, and watches for those hellos:
//! - none within [`WatchOptions::bound`] of joining: a warning that says what is missing
//!   and what to do ([`WatchOptions::advice`]), repeated at growing intervals while it
//!   lasts; the member keeps waiting (and its topic keeps reconnecting) meanwhile;
//! - a host whose last hello expired more than `bound` ago: the same, for a host that left;
//! - the first hello after such a warning: a note that the cluster is up.
//!
//! [`ClusterWatch`] tells callers what was seen (the bridge fails R's futures with it, the
//! host notices a second host).

use std::time::Duration;

use p2p_proto::id::PeerId;
use p2p_proto::message::{Message, Role};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::lines::{LineChannel, line_channel};

/// Longest pause between two repeats of the warning.
const MAX_REPEAT: Duration = Duration::from_secs(600);

/// What to watch and what to tell the user.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The cluster, as the user knows it (`alice/p2p`).
    pub cluster: String,
    /// How long a member may go without a hello from the host before it is told; `None`:
    /// never (a host watching for other hosts).
    pub bound: Option<Duration>,
    /// What the warning says to do (who must host, who must be on the access list).
    pub advice: String,
}

/// The last `type=cluster` hello seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSighting {
    /// Who said it.
    pub host: PeerId,
    /// When (local clock).
    pub at: Instant,
    /// Until when the host vouches for itself (Unix seconds, from the hello).
    pub expires_unix: i64,
}

/// What a member has seen of its cluster's host.
#[derive(Debug, Clone)]
pub struct ClusterWatch {
    sightings: watch::Receiver<Option<HostSighting>>,
}

impl ClusterWatch {
    /// Whether a host hello was ever seen.
    pub fn host_seen(&self) -> bool {
        self.sightings.borrow().is_some()
    }

    /// The last host hello, updated on every one (for `changed()` waits).
    pub fn sightings(&self) -> watch::Receiver<Option<HostSighting>> {
        self.sightings.clone()
    }
}

/// Whether `line` is a host's hello; its sender and expiry if so.
pub fn host_hello(line: &str) -> Option<(PeerId, i64)> {
    // Cheap test first: most lines are requests and offers.
    if !line.contains("type=cluster") {
        return None;
    }
    match p2p_proto::line::decode(line).ok()?.message {
        Message::Hello(hello) if hello.role == Role::Cluster => {
            Some((hello.from, (hello.expires.unix_ms() / 1000) as i64))
        }
        _ => None,
    }
}

/// Wraps `lines` (see the module notes). Must be called inside a tokio runtime; the
/// watching task ends with the channel.
pub fn watch_cluster(lines: LineChannel, options: WatchOptions) -> (LineChannel, ClusterWatch) {
    let (wrapped, mut pump) = line_channel(lines.incoming.max_capacity());
    let (seen_tx, seen_rx) = watch::channel(None::<HostSighting>);
    let LineChannel {
        mut incoming,
        outgoing,
        reopened,
    } = lines;
    tokio::spawn(async move {
        let joined = Instant::now();
        let mut warned = false;
        let mut repeat = options.bound;
        let mut next_check = options.bound.and_then(|b| joined.checked_add(b));
        loop {
            tokio::select! {
                line = incoming.recv() => {
                    let Some(line) = line else { return };
                    if let Some((host, expires_unix)) = host_hello(&line) {
                        if warned || seen_tx.borrow().is_none() {
                            tracing::info!(cluster = %options.cluster, %host, "the cluster's host is up");
                        }
                        warned = false;
                        repeat = options.bound;
                        let expires_at = instant_of_unix(expires_unix).max(Instant::now());
                        next_check = options.bound.and_then(|b| expires_at.checked_add(b));
                        seen_tx.send_replace(Some(HostSighting {
                            host,
                            at: Instant::now(),
                            expires_unix,
                        }));
                    }
                    if pump.to_driver.send(line).await.is_err() {
                        return;
                    }
                }
                () = sleep_until(next_check), if next_check.is_some() => {
                    let waited = match seen_tx.borrow().as_ref() {
                        None => joined.elapsed(),
                        Some(sighting) => sighting.at.elapsed(),
                    };
                    let never = seen_tx.borrow().is_none();
                    tracing::warn!(
                        cluster = %options.cluster,
                        "{}",
                        stranded_message(&options, never, waited)
                    );
                    warned = true;
                    next_check = repeat.and_then(|r| Instant::now().checked_add(r));
                    repeat = repeat.map(|r| (r * 2).min(MAX_REPEAT));
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(line) = pump.from_driver.recv().await {
            if outgoing.send(line).await.is_err() {
                break;
            }
        }
    });
    // Reopens are the inner topic's: the wrapper only watches lines.
    let wrapped = LineChannel {
        reopened,
        ..wrapped
    };
    (wrapped, ClusterWatch { sightings: seen_rx })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The warning for a member without a host.
fn stranded_message(options: &WatchOptions, never: bool, waited: Duration) -> String {
    let secs = waited.as_secs();
    if never {
        format!(
            "no host has announced cluster {} in {secs} s (no type=cluster hello on its topic): {} Still waiting.",
            options.cluster, options.advice
        )
    } else {
        format!(
            "the host of cluster {} has been silent for {secs} s: {} Still waiting.",
            options.cluster, options.advice
        )
    }
}

/// The local instant of a Unix time in seconds (now if it is in the past).
fn instant_of_unix(unix_secs: i64) -> Instant {
    let now_ms = crate::clock::unix_ms() as i64;
    let ahead = unix_secs.saturating_mul(1000).saturating_sub(now_ms).max(0);
    Instant::now() + Duration::from_millis(ahead as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::message::{BoardLine, Hello};
    use p2p_proto::time::{BoardTime, Expiry};

    fn hello(role: Role, expires_in: i64) -> String {
        let now = (crate::clock::unix_ms() / 1000) as i64;
        BoardLine::new(
            BoardTime::from_unix(now),
            Message::Hello(Hello {
                role,
                from: PeerId::new("alice", "box", 1).unwrap(),
                expires: Expiry::Unix(now + expires_in),
                protocols: None,
                slots: None,
                busy: None,
            }),
        )
        .encode()
        .unwrap()
    }

    #[test]
    fn only_cluster_hellos_are_host_hellos() {
        assert!(host_hello(&hello(Role::Cluster, 20)).is_some());
        assert!(host_hello(&hello(Role::Worker, 20)).is_none());
        assert!(host_hello("type=cluster but not a line").is_none());
    }

    #[tokio::test]
    async fn lines_pass_through_and_the_host_is_reported() {
        let (member, mut board) = line_channel(16);
        let options = WatchOptions {
            cluster: "alice/p2p".into(),
            bound: Some(Duration::from_millis(50)),
            advice: "ask alice".into(),
        };
        let (mut lines, watch) = watch_cluster(member, options);
        assert!(!watch.host_seen());
        let mut sightings = watch.sightings();
        board
            .to_driver
            .send("when=x,type=request".into())
            .await
            .unwrap();
        assert_eq!(lines.incoming.recv().await.unwrap(), "when=x,type=request");
        // Past the bound the member keeps going: the watch only warns.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let cluster = hello(Role::Cluster, 20);
        board.to_driver.send(cluster.clone()).await.unwrap();
        assert_eq!(lines.incoming.recv().await.unwrap(), cluster);
        sightings.changed().await.unwrap();
        assert_eq!(
            sightings.borrow().as_ref().map(|s| s.host.to_string()),
            Some("alice@box:1".to_owned())
        );
        assert!(watch.host_seen());
        lines.outgoing.send("out".into()).await.unwrap();
        assert_eq!(board.from_driver.recv().await.unwrap(), "out");
    }

    #[test]
    fn the_warning_names_the_cluster_and_the_advice() {
        let options = WatchOptions {
            cluster: "alice/p2p".into(),
            bound: Some(Duration::from_secs(60)),
            advice: "alice must host it.".into(),
        };
        let text = stranded_message(&options, true, Duration::from_secs(61));
        assert!(text.contains("alice/p2p") && text.contains("61 s"));
        assert!(text.contains("alice must host it.") && text.ends_with("Still waiting."));
        assert!(stranded_message(&options, false, Duration::from_secs(5)).contains("silent"));
    }
}
