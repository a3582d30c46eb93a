//! Wormhole benchmark: one run, one table, every figure next to a raw-TCP baseline measured
//! in the same run on the same loopback.
//!
//! ```text
//! cargo run --release -p p2p-transport --example wormhole_bench
//! ```
//!
//! Targets (docs/ARCHITECTURE.md §9): a 64 MiB payload on a warm session at >= 0.5x the raw copy rate through our
//! relay and >= 0.7x direct (issue 15); a 64 MiB file transfer through our relay at >= 0.3x;
//! warm frame round trip <= 2x raw TCP; cold small transfer <= 30 ms p50 with the local hub
//! (issue 4). Beside each bulk figure, the CPU this process spent per GiB moved (both ends
//! and the relay), and the raw copy through the relay alone, so what the relay, the
//! session and the cipher each cost can be read off one table; then the CPU cost per GiB
//! of each candidate record cipher at three record sizes, which is how the sessions'
//! cipher and record size were picked. The load average is printed before and after: the
//! machine is shared. Not a test: nothing here asserts timings.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

use bytes::Bytes;
use p2p_hub::mailbox::{MailboxConfig, MailboxServer};
use p2p_hub::relay::{RelayConfig, TransitRelay};
use p2p_proto::frame::{Frame, Outcome, Task, TaskResult};
use p2p_testkit::peers;
use p2p_transport::wormhole::{
    Incoming, Session, SessionConfig, SessionRole, TransferOptions, TransitMode, WormholeConfig,
    receive_bytes, send_bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const BIG: usize = 64 << 20;
/// Bulk runs per path; the best counts (the machine is shared).
const BULK_RUNS: usize = 3;
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

    let load_before = load_average();
    let raw_before = best_of(|| raw_tcp_copy(BIG, None)).await?;
    let relay_only = best_of(|| raw_tcp_copy(BIG, Some(relay.local_addr()))).await?;
    let warm_relay = best_of(|| warm_session_bulk(&config, false)).await?;
    let warm_direct = best_of(|| warm_session_bulk(&config, true)).await?;
    let relayed = relayed_transfer(&config, BIG).await?;
    // The raw baseline both before and after the payload figures, the better kept, so a
    // burst of load does not flatter the ratios.
    let raw_copy = raw_before.min(best_of(|| raw_tcp_copy(BIG, None)).await?);
    let cold = cold_transfers(&config).await?;
    let raw_rtt_before = raw_tcp_rtt().await?;
    let warm_rtt = warm_session_rtt(&config, true).await?;
    let warm_relay_rtt = warm_session_rtt(&config, false).await?;
    let raw_rtt = raw_rtt_before.min(raw_tcp_rtt().await?);

    // Last, so that its seconds of CPU do not heat the machine under the transfers.
    let ciphers = tokio::task::spawn_blocking(cipher_costs).await?;
    let load_after = load_average();

    let mib = (BIG >> 20) as f64;
    let rate = |d: Duration| mib / d.as_secs_f64();
    let cpu_per_gib = |bulk: &Bulk| bulk.cpu.as_secs_f64() * 1024.0 / mib;
    let raw_rate = rate(raw_copy.elapsed);
    println!();
    println!("load average (1, 5, 15 min; 2 cores): {load_before} before, {load_after} after");
    println!();
    println!("record ciphers, CPU s/GiB on one core, seal + open, in place, by record size:");
    print!("{:<34}", "cipher");
    for size in CIPHER_RECORDS {
        print!(" {:>9}", format!("{} KiB", size >> 10));
    }
    println!();
    for (name, costs) in &ciphers {
        print!("{name:<34}");
        for cost in costs {
            print!(" {:>7.3} s", cost.as_secs_f64());
        }
        println!();
    }
    println!();
    println!(
        "{:<44} {:>14} {:>14} {:>10} {:>10}",
        "measurement", "figure", "baseline", "ratio", "CPU/GiB"
    );
    println!("{}", "-".repeat(96));
    let bulk_line = |name: &str, bulk: &Bulk, target: &str| {
        println!(
            "{:<44} {:>10.0} MiB/s {:>8.0} MiB/s {:>9.2}x {:>8.2} s  {target}",
            name,
            rate(bulk.elapsed),
            raw_rate,
            rate(bulk.elapsed) / raw_rate,
            cpu_per_gib(bulk),
        );
    };
    bulk_line("raw TCP copy 64 MiB (loopback)", &raw_copy, "");
    bulk_line(
        "raw TCP copy 64 MiB through our relay",
        &relay_only,
        "(the relay alone)",
    );
    bulk_line(
        "warm session 64 MiB task, via our relay",
        &warm_relay,
        "(target >= 0.50x)",
    );
    bulk_line(
        "warm session 64 MiB task, direct",
        &warm_direct,
        "(target >= 0.70x)",
    );
    println!(
        "{:<44} {:>10.0} MiB/s {:>8.0} MiB/s {:>9.2}x {:>10}  (target >= 0.30x)",
        "wormhole file 64 MiB via our relay",
        rate(relayed),
        raw_rate,
        rate(relayed) / raw_rate,
        "-"
    );
    println!(
        "{:<44} {:>11.1} ms {:>14} {:>10} {:>10}  (target <= 30 ms p50; p90 {:.1} ms)",
        format!("cold {SMALL} B transfer, rendezvous incl. (p50)"),
        ms(cold.0),
        "-",
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
        "{:<44} {:>11.1} us {:>11.1} us {:>9.2}x {:>10}  (target <= 2x)",
        "warm session frame round trip, direct (p50)",
        us(warm_rtt),
        us(raw_rtt),
        warm_rtt.as_secs_f64() / raw_rtt.as_secs_f64(),
        "-"
    );
    println!(
        "{:<44} {:>11.1} us {:>11.1} us {:>9.2}x {:>10}  (two extra hops)",
        "warm session frame round trip, relay (p50)",
        us(warm_relay_rtt),
        us(raw_rtt),
        warm_relay_rtt.as_secs_f64() / raw_rtt.as_secs_f64(),
        "-"
    );
    println!();
    println!(
        "(best of {BULK_RUNS} runs each; CPU/GiB: of this whole process, both ends and the \
         relay, per GiB moved)"
    );
    Ok(())
}

/// The load average, as /proc/loadavg gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The best of [`BULK_RUNS`] runs.
async fn best_of<T: Ord, F: std::future::Future<Output = Result<T, BoxError>>>(
    mut run: impl FnMut() -> F,
) -> Result<T, BoxError> {
    let mut best = run().await?;
    for _ in 1..BULK_RUNS {
        best = best.min(run().await?);
    }
    Ok(best)
}

fn cpu(clock: ClockId) -> Duration {
    let t = clock_gettime(clock);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Plaintext per record in the cipher figures (the sessions' record size is 256 KiB).
const CIPHER_RECORDS: [usize; 3] = [64 << 10, 256 << 10, 1 << 20];
/// Bytes sealed and opened per cipher and record size; the figures are scaled to a GiB.
const CIPHER_BYTES: usize = 256 << 20;

/// Seal plus open CPU per GiB of each candidate, in place, on one thread, per record size.
fn cipher_costs() -> Vec<(&'static str, Vec<Duration>)> {
    fn nonce12(counter: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        n
    }
    fn measure(
        mut seal: impl FnMut(u64, &mut [u8]) -> [u8; 16],
        mut open: impl FnMut(u64, &mut [u8], &[u8; 16]) -> bool,
    ) -> Vec<Duration> {
        CIPHER_RECORDS
            .iter()
            .map(|&record| {
                let mut buf = vec![0x5au8; record];
                let t0 = cpu(ClockId::ThreadCPUTime);
                for i in 0..(CIPHER_BYTES / record) as u64 {
                    let tag = seal(i, &mut buf);
                    assert!(open(i, &mut buf, &tag), "a record opens");
                }
                (cpu(ClockId::ThreadCPUTime) - t0) * ((1 << 30) / CIPHER_BYTES) as u32
            })
            .collect()
    }
    let key = [7u8; 32];
    let mut out = Vec::new();
    {
        use crypto_secretbox::XSalsa20Poly1305;
        use crypto_secretbox::aead::{AeadInPlace, KeyInit};
        let cipher = XSalsa20Poly1305::new((&key).into());
        let nonce24 = |i: u64| {
            let mut n = [0u8; 24];
            n[16..].copy_from_slice(&i.to_be_bytes());
            n
        };
        let costs = measure(
            |i, b| {
                let tag = cipher.encrypt_in_place_detached((&nonce24(i)).into(), b"", b);
                tag.expect("seal").into()
            },
            |i, b, t| {
                cipher
                    .decrypt_in_place_detached((&nonce24(i)).into(), b"", b, t.into())
                    .is_ok()
            },
        );
        out.push(("XSalsa20-Poly1305 (RustCrypto)", costs));
    }
    {
        use chacha20poly1305::ChaCha20Poly1305;
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let cipher = ChaCha20Poly1305::new((&key).into());
        let costs = measure(
            |i, b| {
                let tag = cipher.encrypt_in_place_detached((&nonce12(i)).into(), b"", b);
                tag.expect("seal").into()
            },
            |i, b, t| {
                cipher
                    .decrypt_in_place_detached((&nonce12(i)).into(), b"", b, t.into())
                    .is_ok()
            },
        );
        out.push(("ChaCha20-Poly1305 (RustCrypto)", costs));
    }
    {
        use aes_gcm::Aes256Gcm;
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = Aes256Gcm::new((&key).into());
        let costs = measure(
            |i, b| {
                let tag = cipher.encrypt_in_place_detached((&nonce12(i)).into(), b"", b);
                tag.expect("seal").into()
            },
            |i, b, t| {
                cipher
                    .decrypt_in_place_detached((&nonce12(i)).into(), b"", b, t.into())
                    .is_ok()
            },
        );
        out.push(("AES-256-GCM (RustCrypto)", costs));
    }
    for (name, algorithm) in [
        ("ChaCha20-Poly1305 (ring)", &ring::aead::CHACHA20_POLY1305),
        ("AES-256-GCM (ring; sessions v2)", &ring::aead::AES_256_GCM),
        ("AES-128-GCM (ring)", &ring::aead::AES_128_GCM),
    ] {
        use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};
        let key_bytes = &key[..algorithm.key_len()];
        let key = LessSafeKey::new(UnboundKey::new(algorithm, key_bytes).expect("key"));
        let costs = measure(
            |i, b| {
                let nonce = Nonce::assume_unique_for_key(nonce12(i));
                let tag = key.seal_in_place_separate_tag(nonce, Aad::empty(), b);
                tag.expect("seal").as_ref().try_into().expect("16 bytes")
            },
            |i, b, t| {
                let nonce = Nonce::assume_unique_for_key(nonce12(i));
                key.open_in_place_separate_tag(nonce, Aad::empty(), Tag::from(*t), b, 0..)
                    .is_ok()
            },
        );
        out.push((name, costs));
    }
    out
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

/// `len` bytes copied over loopback TCP in 64 KiB writes and reads, the time from the
/// first write to the last read and the CPU this process spent; through our relay when
/// `via` is its address (two connections paired by a token, no encryption: what the relay
/// costs by itself).
async fn raw_tcp_copy(len: usize, via: Option<SocketAddr>) -> Result<Bulk, BoxError> {
    let (mut sender, mut receiver) = match via {
        None => {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let sender = TcpStream::connect(listener.local_addr()?).await?;
            (sender, listener.accept().await?.0)
        }
        Some(relay) => {
            let token = format!("{:032x}", rand::random::<u128>());
            let pair = |side: &'static str| {
                let token = token.clone();
                async move {
                    let mut socket = TcpStream::connect(relay).await?;
                    let line = format!("please relay {token} for side {side}\n");
                    socket.write_all(line.as_bytes()).await?;
                    let mut ok = [0u8; 3];
                    socket.read_exact(&mut ok).await?;
                    assert_eq!(&ok, b"ok\n", "the relay paired us");
                    Ok::<_, std::io::Error>(socket)
                }
            };
            tokio::try_join!(pair("aa"), pair("bb"))?
        }
    };
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while total < len {
            let n = receiver.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok::<usize, std::io::Error>(total)
    });
    let chunk = vec![0x5au8; 64 << 10];
    let cpu_before = cpu(ClockId::ProcessCPUTime);
    let start = Instant::now();
    let mut sent = 0;
    while sent < len {
        sender.write_all(&chunk).await?;
        sent += chunk.len();
    }
    sender.shutdown().await?;
    let got = reader.await??;
    let elapsed = start.elapsed();
    let cpu = cpu(ClockId::ProcessCPUTime) - cpu_before;
    assert_eq!(got, len);
    Ok(Bulk { elapsed, cpu })
}

/// One payload on a warm session: how long from the first byte sent to the last byte
/// received, and the CPU this process spent on it (both ends and the relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Bulk {
    elapsed: Duration,
    cpu: Duration,
}

/// A 64 MiB task on an open session, taken by the worker as a worker does
/// (`recv_incoming`, the pieces passed on and dropped); `direct` lets the follower listen
/// on loopback, otherwise it goes through the relay.
async fn warm_session_bulk(config: &WormholeConfig, direct: bool) -> Result<Bulk, BoxError> {
    let code = peers::fresh_code();
    let session_config = SessionConfig {
        listen: direct.then_some(SocketAddr::from(([127, 0, 0, 1], 0))),
        max_payload: BIG as u64,
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
            // Warm: one small frame each way first.
            let ping = session.recv().await?;
            session.send(&ping).await?;
            let Incoming::Task(mut task) = session.recv_incoming().await? else {
                return Err::<usize, BoxError>("expected a task".into());
            };
            let mut received = 0;
            loop {
                tokio::select! {
                    piece = task.payload.next_chunk() => match piece? {
                        Some(piece) => received += piece.len(),
                        None => break,
                    },
                    // Keep the session read, as a worker does while its task runs.
                    frame = session.recv_incoming() => { frame?; }
                }
            }
            session.close().await;
            Ok(received)
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
        future: "bench-bulk".parse()?,
        payload: Bytes::from(vec![0xa5u8; BIG]),
    });
    let ping = Frame::Cancel(p2p_proto::frame::Cancel {
        future: "bench-ping".parse()?,
    });
    client.send(&ping).await?;
    client.recv().await?;
    let cpu_before = cpu(ClockId::ProcessCPUTime);
    let start = Instant::now();
    client.send(&task).await?;
    let received = worker.await??;
    let elapsed = start.elapsed();
    let cpu = cpu(ClockId::ProcessCPUTime) - cpu_before;
    assert_eq!(received, BIG);
    Ok(Bulk { elapsed, cpu })
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
