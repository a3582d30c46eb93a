//! Shared pieces of the end-to-end tests: a hub on 127.0.0.1 with port 0, and peers on it.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use future_p2p::transport::lines::{LineChannel, LinePump, line_channel};
use future_p2p::transport::wormhole::{
    MailboxConfig, MailboxHandle, MailboxServer, RelayConfig, RelayHandle, TransitRelay,
    WormholeConfig,
};
use tokio::sync::mpsc;

/// The rendezvous half of the hub: mailbox server and transit relay.
pub struct Rendezvous {
    pub mailbox: MailboxHandle,
    pub relay: RelayHandle,
}

impl Rendezvous {
    pub async fn start() -> Rendezvous {
        let any = "127.0.0.1:0".parse().unwrap();
        Rendezvous {
            mailbox: MailboxServer::bind(any, MailboxConfig::default())
                .await
                .unwrap(),
            relay: TransitRelay::bind(any, RelayConfig::default())
                .await
                .unwrap(),
        }
    }

    pub fn wormhole(&self) -> WormholeConfig {
        WormholeConfig::new(
            self.mailbox.url(),
            format!("tcp://{}", self.relay.local_addr()),
        )
    }
}

/// A topic shared by in-process peers: every line one peer writes reaches all the others,
/// in one order, as a pico pipe does.
pub struct Topic {
    join: mpsc::UnboundedSender<LinePump>,
}

impl Topic {
    pub fn new() -> Topic {
        let (join, mut joins) = mpsc::unbounded_channel::<LinePump>();
        tokio::spawn(async move {
            let (lines_tx, mut lines) = mpsc::unbounded_channel::<(usize, String)>();
            let mut readers: Vec<Option<mpsc::Sender<String>>> = Vec::new();
            loop {
                tokio::select! {
                    Some(pump) = joins.recv() => {
                        let id = readers.len();
                        readers.push(Some(pump.to_driver));
                        let lines_tx = lines_tx.clone();
                        let mut from = pump.from_driver;
                        tokio::spawn(async move {
                            while let Some(line) = from.recv().await {
                                if lines_tx.send((id, line)).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                    Some((from, line)) = lines.recv() => {
                        for (id, reader) in readers.iter_mut().enumerate() {
                            if id == from {
                                continue;
                            }
                            if let Some(tx) = reader
                                && tx.send(line.clone()).await.is_err()
                            {
                                *reader = None;
                            }
                        }
                    }
                    else => return,
                }
            }
        });
        Topic { join }
    }

    pub fn join(&self) -> LineChannel {
        let (channel, pump) = line_channel(1024);
        self.join.send(pump).unwrap();
        channel
    }
}

/// Bounds a wait in a test.
pub async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}
