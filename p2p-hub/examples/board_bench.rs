//! Board benchmark: one table, figures and ratios against a raw TCP baseline from the same run.
//!
//! `cargo run --release -p p2p-hub --example board_bench [-- --lines N --readers N]`
//!
//! Rows:
//! - raw TCP round trip: a line to a tokio echo server on loopback and back (sampled
//!   alternately with the board round trips, so all share the same machine load);
//! - board round trip (replay): a line sent on a `pipe -r` comes back through the server,
//!   the same two legs as the TCP echo, with SSH encryption and the broker in between;
//! - board round trip (peer): a line to another peer on the topic and its answer back
//!   (four legs, what a request/offer exchange costs);
//! - fan-out: one writer, N readers (each its own SSH connection), first unpaced for the
//!   highest rate every reader sustains, then paced at 20,000 lines/s for latency. The
//!   lines are board requests (`when=…,type=request,from=bench@…`), so the server's sender
//!   check reads every one of them, as it does on a cluster's topic.
//!
//! `--busy N` runs N threads that spin on the CPU during the fan-out runs, to measure "with
//! the machine busy" reproducibly (the paced fan-out is then measured twice: without and
//! with them). The load average before and after is printed too, as whatever else ran on
//! the machine counts as load.
//!
//! Not a test: nothing here asserts on time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2p_hub::board::{BoardServer, ServerConfig};
use p2p_transport::board::{Board, BoardConfig, PipeOptions, Topic, TopicEvent};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    round_trips: usize,
    readers: usize,
    lines: usize,
    paced_rate: usize,
    paced_secs: u64,
    busy: usize,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        round_trips: 2000,
        readers: 50,
        lines: 50_000,
        paced_rate: 20_000,
        paced_secs: 3,
        busy: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--round-trips" => a.round_trips = value.parse()?,
            "--readers" => a.readers = value.parse()?,
            "--lines" => a.lines = value.parse()?,
            "--rate" => a.paced_rate = value.parse()?,
            "--seconds" => a.paced_secs = value.parse()?,
            "--busy" => a.busy = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        p50: percentile(&samples, 0.50),
        p99: percentile(&samples, 0.99),
    }
}

/// A line-echo server on loopback and a connected client.
struct TcpEcho {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl TcpEcho {
    async fn start() -> Result<TcpEcho, Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        });
        let sock = tokio::net::TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let (r, write) = sock.into_split();
        Ok(TcpEcho {
            lines: BufReader::new(r).lines(),
            write,
        })
    }

    async fn round_trip(&mut self, line: &str) -> Result<Duration, Error> {
        let start = Instant::now();
        self.write.write_all(format!("{line}\n").as_bytes()).await?;
        self.lines.next_line().await?.ok_or("echo closed")?;
        Ok(start.elapsed())
    }
}

async fn next_line(topic: &mut Topic) -> Result<String, Error> {
    loop {
        match topic.recv().await {
            Some(TopicEvent::Line(l)) => return Ok(l),
            Some(TopicEvent::Closed { message, .. }) => {
                return Err(format!("topic closed: {message}").into());
            }
            Some(_) => {}
            None => return Err("topic ended".into()),
        }
    }
}

/// Raw TCP, board replay and board peer round trips, interleaved sample by sample so the
/// three see the same machine load (the baseline swings with whatever else runs).
async fn round_trips(a: &Board, b: &Board, n: usize) -> Result<(Stats, Stats, Stats), Error> {
    let mut tcp = TcpEcho::start().await?;
    let replay = PipeOptions {
        replay: true,
        ..PipeOptions::default()
    };
    let mut own = a.open("rtt-replay", &replay).await?;
    let mut ping = a.open("rtt-peer", &PipeOptions::default()).await?;
    let mut pong = b.open("rtt-peer", &PipeOptions::default()).await?;
    // Wait until both peers are on the channel.
    loop {
        ping.send_line("when=x,type=hello").await?;
        if let Ok(line) =
            tokio::time::timeout(Duration::from_millis(200), next_line(&mut pong)).await
        {
            line?;
            break;
        }
    }
    let echo = tokio::spawn(async move {
        while let Ok(line) = next_line(&mut pong).await {
            if pong.send_line(&line).await.is_err() {
                break;
            }
        }
    });
    let (mut t, mut r, mut p) = (Vec::new(), Vec::new(), Vec::new());
    let warmup = n / 10;
    for i in 0..n + warmup {
        let line = format!("when=x,type=ping,seq={i}");
        let tcp_sample = tcp.round_trip(&line).await?;
        let start = Instant::now();
        own.send_line(&line).await?;
        next_line(&mut own).await?;
        let replay_sample = start.elapsed();
        let start = Instant::now();
        ping.send_line(&line).await?;
        while next_line(&mut ping).await? != line {}
        let peer_sample = start.elapsed();
        if i >= warmup {
            t.push(tcp_sample);
            r.push(replay_sample);
            p.push(peer_sample);
        }
    }
    own.close().await;
    ping.close().await;
    echo.abort();
    Ok((stats(t), stats(r), stats(p)))
}

struct FanOut {
    rate: f64,
    latency: Stats,
}

/// One writer, `readers` readers. `pace`: lines per second, or unpaced. Each reader runs in
/// its own task (as each worker would), and hands its topic back when done.
async fn fan_out(
    origin: Instant,
    writer: &Topic,
    readers: Vec<Topic>,
    lines: usize,
    pace: Option<usize>,
    tag: &'static str,
) -> Result<(FanOut, Vec<Topic>), Error> {
    let collectors: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(lines);
                while samples.len() < lines {
                    let line = next_line(&mut r).await?;
                    // `tag=` and `ts=` are the fifth and sixth fields.
                    let mut fields = line.split(',').skip(4);
                    if fields.next().and_then(|f| f.strip_prefix("tag=")) != Some(tag) {
                        continue;
                    }
                    let Some(sent) = fields.next().and_then(|f| f.strip_prefix("ts=")) else {
                        continue;
                    };
                    let sent: u64 = sent.parse()?;
                    let now = origin.elapsed().as_nanos() as u64;
                    samples.push(Duration::from_nanos(now.saturating_sub(sent)));
                }
                Ok::<_, Error>((r, samples))
            })
        })
        .collect();
    let start = Instant::now();
    let sender = writer.sender();
    let batch = pace.map(|r| (r / 1000).max(1)).unwrap_or(lines);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0;
    while sent < lines {
        if pace.is_some() {
            tick.tick().await;
        }
        for _ in 0..batch.min(lines - sent) {
            let ts = origin.elapsed().as_nanos();
            sender
                .send_line(&format!(
                    "when=2026-01-01T00:00:00,expires=1767225600,type=request,from=bench@bench:1,tag={tag},ts={ts},future=f{sent},size=1024"
                ))
                .await?;
            sent += 1;
        }
    }
    let mut all = Vec::with_capacity(lines * collectors.len());
    let mut topics = Vec::with_capacity(collectors.len());
    for c in collectors {
        let (topic, samples) = c.await??;
        all.extend(samples);
        topics.push(topic);
    }
    let elapsed = start.elapsed();
    Ok((
        FanOut {
            rate: lines as f64 / elapsed.as_secs_f64(),
            latency: stats(all),
        },
        topics,
    ))
}

fn write_key(dir: &Path, name: &str) -> Result<(PathBuf, String), Error> {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random()));
    let path = dir.join(name);
    std::fs::write(&path, key.to_openssh(LineEnding::LF)?.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((path, key.public_key().to_openssh()?))
}

async fn connect(server: &BoardServer, key: &Path, known_hosts: &Path) -> Result<Board, Error> {
    let args = [
        "-p".to_owned(),
        server.local_addr().port().to_string(),
        "-i".to_owned(),
        key.display().to_string(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    let mut config = BoardConfig::from_ssh_args("bench@127.0.0.1", &args)?;
    config.agent = None;
    Ok(Board::connect(config).await?)
}

/// Threads that spin on the CPU until dropped: a busy machine on demand.
struct Spinners {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start(n: usize) -> Spinners {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The 1-minute load average, as `/proc/loadavg` says (`?` where there is none).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let (key, public) = write_key(dir.path(), "bench")?;
    std::fs::write(state.join("users"), format!("bench {public}\n"))?;
    let mut config = ServerConfig::new(&state);
    config.listen = "127.0.0.1:0".parse()?;
    let server = BoardServer::start(config).await?;
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            server.local_addr().port(),
            server.host_key().to_openssh()?
        ),
    )?;

    eprintln!("round trips (raw TCP and board, interleaved) ...");
    let a_board = connect(&server, &key, &known_hosts).await?;
    let b_board = connect(&server, &key, &known_hosts).await?;
    let (tcp, replay, peer) = round_trips(&a_board, &b_board, a.round_trips).await?;

    eprintln!("connecting {} readers ...", a.readers);
    let origin = Instant::now();
    let mut boards = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..a.readers {
        let b = connect(&server, &key, &known_hosts).await?;
        readers.push(b.open("fanout", &PipeOptions::default()).await?);
        boards.push(b);
    }
    let writer_board = connect(&server, &key, &known_hosts).await?;
    let writer = writer_board.open("fanout", &PipeOptions::default()).await?;
    // Warm up: until every reader sees the writer's lines.
    let (_, readers) = fan_out(origin, &writer, readers, 100, Some(10_000), "warm").await?;
    eprintln!("fan-out, unpaced, {} lines ...", a.lines);
    let (unpaced, readers) = fan_out(origin, &writer, readers, a.lines, None, "free").await?;
    let paced_lines = a.paced_rate * a.paced_secs as usize;
    eprintln!(
        "fan-out, paced at {} lines/s for {} s ...",
        a.paced_rate, a.paced_secs
    );
    let load_before = loadavg();
    let (paced, readers) = fan_out(
        origin,
        &writer,
        readers,
        paced_lines,
        Some(a.paced_rate),
        "paced",
    )
    .await?;
    eprintln!("fan-out, paced, with {} busy threads spinning ...", a.busy);
    let spinners = Spinners::start(a.busy);
    let (busy, _readers) = fan_out(
        origin,
        &writer,
        readers,
        paced_lines,
        Some(a.paced_rate),
        "busy",
    )
    .await?;
    drop(spinners);
    let load_after = loadavg();

    let base = tcp.p50.as_secs_f64();
    let ratio = |d: Duration| format!("{:.1}x", d.as_secs_f64() / base);
    println!();
    println!("| measurement | p50 | p99 | rate | p50 vs raw TCP p50 |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw TCP round trip (loopback echo) | {} | {} | | 1.0x |",
        us(tcp.p50),
        us(tcp.p99)
    );
    println!(
        "| board round trip, own line back (`pipe -r`) | {} | {} | | {} |",
        us(replay.p50),
        us(replay.p99),
        ratio(replay.p50)
    );
    println!(
        "| board round trip, peer echo (4 legs) | {} | {} | | {} |",
        us(peer.p50),
        us(peer.p99),
        ratio(peer.p50)
    );
    println!(
        "| fan-out to {} readers, unpaced | {} | {} | {:.0} lines/s ({:.0} deliveries/s) | {} |",
        a.readers,
        ms(unpaced.latency.p50),
        ms(unpaced.latency.p99),
        unpaced.rate,
        unpaced.rate * a.readers as f64,
        ratio(unpaced.latency.p50),
    );
    println!(
        "| fan-out to {} readers, paced {} lines/s | {} | {} | {:.0} lines/s | {} |",
        a.readers,
        a.paced_rate,
        ms(paced.latency.p50),
        ms(paced.latency.p99),
        paced.rate,
        ratio(paced.latency.p50),
    );
    println!(
        "| fan-out to {} readers, paced {} lines/s, {} busy threads | {} | {} | {:.0} lines/s | {} |",
        a.readers,
        a.paced_rate,
        a.busy,
        ms(busy.latency.p50),
        ms(busy.latency.p99),
        busy.rate,
        ratio(busy.latency.p50),
    );
    println!();
    println!(
        "machine: {} cores; load average {load_before} before the paced runs, {load_after} after",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "targets: board round trip within 3x raw TCP; 20,000 lines/s to 50 readers with p99 <= 5 ms"
    );
    drop(boards);
    Ok(())
}
