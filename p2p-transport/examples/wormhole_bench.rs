//! Wormhole benchmark: one run, one table, every figure next to a raw-TCP baseline measured
//! in the same run on the same loopback.
//!
//! ```text
//! cargo run --release -p p2p-transport --example wormhole_bench
//! ```
//!
//! Targets (docs/ARCHITECTURE.md §9): 64 MiB through our relay at >= 0.3x the raw copy rate;
//! warm frame round trip <= 2x raw TCP; cold small transfer <= 30 ms p50 with the local hub.
//! Not a test: nothing here asserts timings.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_hub::mailbox::{MailboxConfig, MailboxServer};
use p2p_hub::relay::{RelayConfig, TransitRelay};
use p2p_proto::frame::{Frame, Outcome, Task, TaskResult};
use p2p_testkit::peers;
use p2p_transport::wormhole::{
    Session, SessionConfig, SessionRole, TransferOptions, TransitMode, WormholeConfig,
    receive_bytes, send_bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const BIG: usize = 64 << 20;
const COLD_RUNS: usize = 30;
const RTT_RUNS: usize = 2000;
const SMALL: usize = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mailbox = MailboxServer::bind(loopback, MailboxConfig::default()).await?;
    let relay = TransitRelay::bind(loopback, RelayConfig::default()).await?;
    let mut config = WormholeConfig::new(mailbox.url(), relay.url());
    // Rust peers drop loopback from direct hints, so on one host they meet via the relay;
    // say so explicitly rather than waiting for direct attempts to fail.
    config.transit = TransitMode::RelayOnly;
    println!(
        "local hub: mailbox {}  relay {}",
        mailbox.url(),
        relay.url()
    );

    let raw_copy = raw_tcp_copy(BIG).await?;
    let relayed = relayed_transfer(&config, BIG).await?;
    let cold = cold_transfers(&config).await?;
    // The machine is shared: take the raw baseline both before and after the session
    // figures and keep the better, so a burst of load does not flatter the ratio.
    let raw_before = raw_tcp_rtt().await?;
    let warm_rtt = warm_session_rtt(&config, true).await?;
    let warm_relay_rtt = warm_session_rtt(&config, false).await?;
    let raw_rtt = raw_before.min(raw_tcp_rtt().await?);

    let mib = (BIG >> 20) as f64;
    let raw_rate = mib / raw_copy.as_secs_f64();
    let relay_rate = mib / relayed.as_secs_f64();
    println!();
    println!(
        "{:<44} {:>14} {:>14} {:>10}",
        "measurement", "figure", "baseline", "ratio"
    );
    println!("{}", "-".repeat(85));
    println!(
        "{:<44} {:>10.0} MiB/s {:>14} {:>10}",
        "raw TCP copy 64 MiB (loopback)", raw_rate, "-", "1.00x"
    );
    println!(
        "{:<44} {:>10.0} MiB/s {:>8.0} MiB/s {:>9.2}x  (target >= 0.30x)",
        "wormhole 64 MiB via our relay",
        relay_rate,
        raw_rate,
        relay_rate / raw_rate
    );
    println!(
        "{:<44} {:>11.1} ms {:>14} {:>10}  (target <= 30 ms p50; p90 {:.1} ms)",
        format!("cold {SMALL} B transfer, rendezvous incl. (p50)"),
        ms(cold.0),
        "-",
        "-",
        ms(cold.1)
    );
    println!(
        "{:<44} {:>11.1} us {:>14} {:>10}",
        "raw TCP round trip (p50)",
        us(raw_rtt),
        "-",
        "1.00x"
    );
    println!(
        "{:<44} {:>11.1} us {:>11.1} us {:>9.2}x  (target <= 2x)",
        "warm session frame round trip, direct (p50)",
        us(warm_rtt),
        us(raw_rtt),
        warm_rtt.as_secs_f64() / raw_rtt.as_secs_f64()
    );
    println!(
        "{:<44} {:>11.1} us {:>11.1} us {:>9.2}x  (two extra hops)",
        "warm session frame round trip, relay (p50)",
        us(warm_relay_rtt),
        us(raw_rtt),
        warm_relay_rtt.as_secs_f64() / raw_rtt.as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

async fn raw_tcp_copy(len: usize) -> Result<Duration, BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while total < len {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok::<usize, std::io::Error>(total)
    });
    let chunk = vec![0x5au8; 64 << 10];
    let start = Instant::now();
    let mut socket = TcpStream::connect(addr).await?;
    let mut sent = 0;
    while sent < len {
        socket.write_all(&chunk).await?;
        sent += chunk.len();
    }
    socket.shutdown().await?;
    let got = reader.await??;
    let elapsed = start.elapsed();
    assert_eq!(got, len);
    Ok(elapsed)
}

async fn relayed_transfer(config: &WormholeConfig, len: usize) -> Result<Duration, BoxError> {
    let code = peers::fresh_code().future_code();
    let data = Bytes::from(vec![0xa5u8; len]);
    let options = TransferOptions {
        max_size: len as u64,
        ..TransferOptions::default()
    };
    let receiver = {
        let (config, code, options) = (config.clone(), code.clone(), options.clone());
        tokio::spawn(async move { receive_bytes(&config, &code, &options).await })
    };
    let start = Instant::now();
    send_bytes(config, &code, "big.bin", data, &options).await?;
    let got = receiver.await??;
    let elapsed = start.elapsed();
    assert_eq!(got.data.len(), len);
    Ok(elapsed)
}

/// p50 and p90 of complete small transfers, each with its own rendezvous.
async fn cold_transfers(config: &WormholeConfig) -> Result<(Duration, Duration), BoxError> {
    let data = Bytes::from(vec![1u8; SMALL]);
    let options = TransferOptions::default();
    let mut samples = Vec::with_capacity(COLD_RUNS);
    for _ in 0..COLD_RUNS {
        let code = peers::fresh_code().future_code();
        let start = Instant::now();
        let receiver = {
            let (config, code, options) = (config.clone(), code.clone(), options.clone());
            tokio::spawn(async move { receive_bytes(&config, &code, &options).await })
        };
        send_bytes(config, &code, "small", data.clone(), &options).await?;
        receiver.await??;
        samples.push(start.elapsed());
    }
    Ok((percentile(&mut samples, 0.5), percentile(&mut samples, 0.9)))
}

async fn raw_tcp_rtt() -> Result<Duration, BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..RTT_RUNS {
            socket.read_exact(&mut buf).await?;
            socket.write_all(&buf).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut samples = Vec::with_capacity(RTT_RUNS);
    for _ in 0..RTT_RUNS {
        let start = Instant::now();
        socket.write_all(&buf).await?;
        socket.read_exact(&mut buf).await?;
        samples.push(start.elapsed());
    }
    echo.await??;
    Ok(percentile(&mut samples, 0.5))
}

/// p50 round trip of a 64-byte task echoed as a result on a warm session; `direct` lets
/// the follower listen on loopback, otherwise the frames go through the relay.
async fn warm_session_rtt(config: &WormholeConfig, direct: bool) -> Result<Duration, BoxError> {
    let code = peers::fresh_code();
    let session_config = SessionConfig {
        listen: direct.then_some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SessionConfig::default()
    };
    let worker = {
        let (config, code, session_config) = (config.clone(), code.clone(), session_config.clone());
        tokio::spawn(async move {
            let mut session = Session::connect(
                &config,
                &code,
                SessionRole::Follower,
                &session_config,
                CancellationToken::new(),
            )
            .await?;
            // Echo each task back as its result.
            for _ in 0..RTT_RUNS {
                if let Frame::Task(task) = session.recv().await? {
                    let result = Frame::Result(TaskResult {
                        future: task.future,
                        outcome: Outcome::Value(task.payload),
                    });
                    session.send(&result).await?;
                }
            }
            session.close().await;
            Ok::<(), BoxError>(())
        })
    };
    let mut client = Session::connect(
        config,
        &code,
        SessionRole::Leader,
        &session_config,
        CancellationToken::new(),
    )
    .await?;
    let task = Frame::Task(Task {
        future: "bench-1".parse()?,
        payload: Bytes::from_static(&[7u8; 64]),
    });
    let mut samples = Vec::with_capacity(RTT_RUNS);
    for _ in 0..RTT_RUNS {
        let start = Instant::now();
        client.send(&task).await?;
        client.recv().await?;
        samples.push(start.elapsed());
    }
    worker.await??;
    Ok(percentile(&mut samples, 0.5))
}
