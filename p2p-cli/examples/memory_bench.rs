//! What payloads and idle workers cost in memory.
//!
//! Payloads: a 64 MiB and a 1 GiB payload from a Rust client to a worker through a local
//! hub, client, worker and hub each a process of its own, with the payload limit raised to
//! 2 GiB on client and worker. For each: the peak resident memory (VmHWM, reset before each
//! payload) of each process over the payload's size, and the time against a raw TCP copy
//! of the same size in the same run.
//!
//! Idle workers: the resident memory of an R worker's `future-p2p` process and of its R
//! process once it has joined and sits idle, kept warm (default) and lazy
//! (`--r-idle-stop`), next to a bare `Rscript` in the same run.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example memory_bench
//! cargo run --release -p p2p-cli --example memory_bench -- idle   # idle workers only
//! ```
//!
//! For the idle workers it also prints where the kept-warm worker's resident memory is,
//! mapping by mapping from /proc/PID/smaps: the binary's code and data pages are
//! file-backed (shared with every other `future-p2p` process and the page cache), the
//! heap and thread stacks anonymous (the process's own).
//!
//! The worker runs `wc -c` (the payload goes through the worker to a command that reads it
//! all; the result is small), and `cat` for the round trip of a 64 MiB result. The hub and
//! alice's host are those of the R test suite (tests/common/cluster.rs); the worker is
//! bob's, the client carol's. The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one
//! built next to this example. Targets: each process holds at most about 1.5x one payload
//! (issue 14); an idle worker's `future-p2p` process at most 12 MiB (issue 15). Not a
//! test: nothing here asserts figures.

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::LocalCluster;
use p2p_cli::BoardArgs;
use p2p_scheduler::{Scheduler, SchedulerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MIB: u64 = 1 << 20;
const LIMIT: &str = "2G";

/// A process whose peak memory is measured.
struct Measured {
    name: &'static str,
    pid: u32,
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Starts a new peak: VmHWM becomes the current resident size.
fn reset_peak(pid: u32) {
    if let Err(err) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("cannot reset the peak of {pid}: {err}");
    }
}

/// A child process killed and reaped when dropped, on every path out of the bench.
struct Reaped(Child);

impl Reaped {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(bin: &Path, cluster: &LocalCluster, command: &str) -> Reaped {
    let child = Command::new(bin)
        .args(["worker", "--cluster", "alice/p2p", "--hello-interval", "2"])
        .args(["--max-payload", LIMIT, "--exec", command])
        .arg(format!("--ssh-args={}", cluster.ssh_args("bob")))
        .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .expect("future-p2p worker starts");
    Reaped(child)
}

async fn raw_tcp_copy(len: u64) -> Result<Duration, BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                return Ok::<u64, std::io::Error>(total);
            }
            total += n as u64;
        }
    });
    let chunk = vec![0x5au8; 256 << 10];
    let start = Instant::now();
    let mut socket = TcpStream::connect(addr).await?;
    let mut sent = 0;
    while sent < len {
        socket.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    socket.shutdown().await?;
    let got = reader.await??;
    assert_eq!(got, len);
    Ok(start.elapsed())
}

struct Row {
    what: String,
    size: u64,
    elapsed: Duration,
    raw: Duration,
    peaks: Vec<(&'static str, u64, u64)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    let cluster = LocalCluster::start(&bin);
    // alice hosts alice/p2p for bob (the workers) and carol (the client).
    cluster.host("p2p");
    let env = |key: &str| {
        cluster
            .env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let board = BoardArgs {
        host: "127.0.0.1".into(),
        ssh_args: cluster.ssh_args("carol").to_owned(),
        system_ssh: false,
        user: None,
        mailbox: env("FUTURE_P2P_MAILBOX"),
        relay: env("FUTURE_P2P_RELAY"),
        topic_style: Default::default(),
    };
    let joined = board.join(&"alice/p2p".parse()?, None).await?;
    let mut options = SchedulerOptions::new(joined.me, board.wormhole());
    options.max_payload = 2 << 30;
    options.max_result_size = 2 << 30;
    let scheduler = Scheduler::start(joined.lines, options);

    let idle_only = std::env::args().nth(1).as_deref() == Some("idle");
    let mut rows = Vec::new();
    let runs: &[(&str, &[u64])] = if idle_only {
        &[]
    } else {
        &[("wc -c", &[64 * MIB, 1024 * MIB]), ("cat", &[64 * MIB])]
    };
    for &(command, sizes) in runs {
        let worker = worker(&bin, &cluster, command);
        let mut seen = scheduler.workers();
        tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|w| !w.is_empty())).await??;
        // A first small task opens the session: the figures are of a warm worker.
        let warm = scheduler
            .submit("warm-up".parse()?, Bytes::from_static(b"x"))
            .await?;
        tokio::time::timeout(Duration::from_secs(60), warm).await??;
        let processes = [
            Measured {
                name: "client",
                pid: std::process::id(),
            },
            Measured {
                name: "worker",
                pid: worker.id(),
            },
            Measured {
                name: "hub",
                pid: hub_pid(),
            },
        ];
        for &size in sizes {
            let raw = raw_tcp_copy(size).await?;
            for process in &processes {
                reset_peak(process.pid);
            }
            // Filled, so its pages are resident as a real payload's are.
            let payload = Bytes::from(vec![0x5au8; size as usize]);
            let start = Instant::now();
            let handle = scheduler
                .submit(format!("payload-{}", size / MIB).parse()?, payload)
                .await?;
            let result = tokio::time::timeout(Duration::from_secs(600), handle).await??;
            let elapsed = start.elapsed();
            match command {
                "cat" => assert_eq!(result.len() as u64, size),
                _ => assert_eq!(String::from_utf8_lossy(&result).trim(), size.to_string()),
            }
            drop(result);
            let peaks = processes
                .iter()
                .map(|p| (p.name, status_kib(p.pid, "VmHWM:") * 1024, size))
                .collect();
            rows.push(Row {
                what: format!("`{command}`"),
                size,
                elapsed,
                raw,
                peaks,
            });
        }
        drop(worker);
        // Its hello must expire before the next worker counts as the only one.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if !idle_only {
        print_payloads(&rows);
    }

    let (idle, mappings) = idle_workers(&bin, &cluster).await?;
    println!();
    println!(
        "| idle R worker | future-p2p RSS | of it anonymous | of it file-backed | its R processes' RSS |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mib = |bytes: &Option<u64>| match bytes {
        Some(bytes) => format!("{:.1} MiB", *bytes as f64 / MIB as f64),
        None => "-".to_owned(),
    };
    for row in &idle {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what,
            mib(&row.own.map(|m| m.rss)),
            mib(&row.own.map(|m| m.anon)),
            mib(&row.own.map(|m| m.file)),
            mib(&row.r)
        );
    }
    println!();
    println!("The kept-warm worker's resident memory by mapping (over 64 KiB):");
    println!();
    println!("| mapping | RSS | anonymous | private | shared |");
    println!("|---|---:|---:|---:|---:|");
    let kib = |k: u64| format!("{:.2} MiB", k as f64 / 1024.0);
    for m in mappings.iter().filter(|m| m.rss_kib > 64) {
        println!(
            "| {} | {} | {} | {} | {} |",
            m.name,
            kib(m.rss_kib),
            kib(m.anon_kib),
            kib(m.private_kib),
            kib(m.shared_kib)
        );
    }
    Ok(())
}

fn print_payloads(rows: &[Row]) {
    println!();
    println!(
        "| payload | worker runs | time | raw TCP copy | x raw | client peak | worker peak | hub peak |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let peak = |name: &str| {
            let (_, bytes, size) = row
                .peaks
                .iter()
                .find(|(n, _, _)| *n == name)
                .expect("measured");
            format!(
                "{:.0} MiB = {:.2}x",
                *bytes as f64 / MIB as f64,
                *bytes as f64 / *size as f64
            )
        };
        println!(
            "| {} MiB | {} | {:.2} s | {:.2} s | {:.2} | {} | {} | {} |",
            row.size / MIB,
            row.what,
            row.elapsed.as_secs_f64(),
            row.raw.as_secs_f64(),
            row.elapsed.as_secs_f64() / row.raw.as_secs_f64(),
            peak("client"),
            peak("worker"),
            peak("hub"),
        );
    }
    println!();
    println!(
        "(peak = VmHWM of the process while the payload went through, its idle size \
         included; the client's includes the payload it submitted)"
    );
}

/// Our children, of any of our threads.
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The hub the cluster started: our child running `future-p2p hub`.
fn hub_pid() -> u32 {
    children()
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).nth(1) == Some(b"hub"))
        })
        .expect("the hub is a child of this process")
}

/// Resident memory of `pid`'s children named `name`, summed; `None` if it has none.
fn children_rss(pid: u32, name: &str) -> Option<u64> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    let rss: Vec<u64> = children
        .split_whitespace()
        .filter_map(|child| child.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .map(|child| status_kib(child, "VmRSS:") * 1024)
        .collect();
    (!rss.is_empty()).then(|| rss.iter().sum())
}

/// A process's resident memory, and how much of it is anonymous (its own) and backed by a
/// file (the binary and libraries, shared with the page cache, wherever the file is: a
/// binary on a tmpfs counts as shared memory in /proc/PID/status, so its split is not used).
#[derive(Clone, Copy)]
struct Resident {
    rss: u64,
    anon: u64,
    file: u64,
}

fn resident(pid: u32) -> Resident {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        rollup
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let (rss, anon) = (kib("Rss:") * 1024, kib("Anonymous:") * 1024);
    Resident {
        rss,
        anon,
        file: rss.saturating_sub(anon),
    }
}

/// Resident memory of the mappings of one file (or of anonymous memory), by permissions.
struct Mapping {
    name: String,
    rss_kib: u64,
    anon_kib: u64,
    private_kib: u64,
    shared_kib: u64,
}

/// `pid`'s mappings from /proc/PID/smaps, those of one file and permissions summed, the
/// largest first.
fn mappings(pid: u32) -> Vec<Mapping> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, permissions, offset, device, inode, path.
            let perms = fields.next().unwrap_or_default();
            let path = fields.nth(3).unwrap_or("[anonymous]");
            let file = path.rsplit('/').next().unwrap_or(path);
            let name = format!("{file} {perms}");
            match out.iter().position(|m| m.name == name) {
                Some(at) => {
                    let m = out.remove(at);
                    out.push(m);
                }
                None => out.push(Mapping {
                    name,
                    rss_kib: 0,
                    anon_kib: 0,
                    private_kib: 0,
                    shared_kib: 0,
                }),
            }
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        let kib: u64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match first {
            "Rss:" => current.rss_kib += kib,
            "Anonymous:" => current.anon_kib += kib,
            "Private_Clean:" | "Private_Dirty:" => current.private_kib += kib,
            "Shared_Clean:" | "Shared_Dirty:" => current.shared_kib += kib,
            _ => {}
        }
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.rss_kib));
    out
}

struct Idle {
    what: String,
    own: Option<Resident>,
    r: Option<u64>,
}

/// An R worker joins and idles, warm and lazy; and a bare Rscript for scale. Also the
/// kept-warm worker's mappings.
async fn idle_workers(
    bin: &Path,
    cluster: &LocalCluster,
) -> Result<(Vec<Idle>, Vec<Mapping>), BoxError> {
    let mut rows = Vec::new();
    let mut warm_mappings = Vec::new();
    for (what, extra) in [
        ("kept warm (default)", &[][..]),
        ("lazy (--r-idle-stop 10m)", &["--r-idle-stop", "10m"][..]),
    ] {
        let mut worker = Reaped(
            Command::new(bin)
                .args(["worker", "--cluster", "alice/p2p", "--hello-interval", "2"])
                .args(extra)
                .arg(format!("--ssh-args={}", cluster.ssh_args("bob")))
                .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::piped())
                .spawn()
                .expect("future-p2p worker starts"),
        );
        let stdout = worker.0.stdout.take().expect("piped");
        // It prints `worker ... joined` once R is up (warm) and the board joined.
        let joined = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.starts_with("worker "))
        });
        let joined = tokio::time::timeout(Duration::from_secs(300), joined).await??;
        assert!(joined, "the worker joined");
        tokio::time::sleep(Duration::from_secs(5)).await;
        rows.push(Idle {
            what: what.to_owned(),
            own: Some(resident(worker.id())),
            r: children_rss(worker.id(), "R"),
        });
        if extra.is_empty() {
            warm_mappings = mappings(worker.id());
        }
        drop(worker);
    }
    // An R session as a client has it (future and future.p2p loaded, from the library the
    // workers installed), for scale.
    let library = cluster
        .env
        .iter()
        .find(|(key, _)| *key == "FUTURE_P2P_R_LIBRARY")
        .map(|(_, library)| PathBuf::from(library))
        .expect("the cluster's R library");
    // Workers install the package into a subdirectory named after its sources.
    let library = std::fs::read_dir(&library)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("future.p2p-"))
        })
        .ok_or("no future.p2p library installed by the workers")?;
    let mut r = cluster
        .rscript(library.as_os_str(), "alice/p2p")
        .args([
            "-e",
            "suppressPackageStartupMessages(library(future.p2p)); Sys.sleep(8)",
        ])
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    rows.push(Idle {
        what: "an R session with future.p2p loaded, for scale".to_owned(),
        own: None,
        r: Some(status_kib(r.id(), "VmRSS:") * 1024),
    });
    cluster::wait_bounded(&mut r, Duration::from_secs(60));
    Ok((rows, warm_mappings))
}
