//! What the abuse of issue 14 costs a `future-p2p hub` process, with its limits off (as the
//! hub was before they existed) and with its defaults, and whether another user's transfer
//! still goes through while the attacker holds on.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example hub_abuse_bench
//! ```
//!
//! Each attack runs against a fresh hub process (`FUTURE_P2P_BIN`, or `future-p2p` beside
//! this example's directory), whose resident memory is read from `/proc` before the attack,
//! at its peak and after it. The baseline of each row is the same hub, idle.
//! - storage: 240 connections store up to 1 MiB each in mailboxes (240 MB in 3.5 s);
//! - silent readers: 30 connections listen to 4 mailboxes and never read, while writers add
//!   up to 200 messages of 60 KB to each (308 MB);
//! - nameplates: 10,000 claims from connections that go away;
//! - relay: 500 self-paired connections held open and silent (the transfer is tried 11 s
//!   later, past the default `--relay-evict-idle-after`).
//!
//! Not a test: it prints a table.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use bytes::Bytes;
use futures::StreamExt;
use p2p_transport::wormhole::{
    TransferOptions, TransitMode, WormholeConfig, receive_bytes, send_bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Ws = async_tungstenite::WebSocketStream<async_tungstenite::tokio::ConnectStream>;

/// Flags that take the limits off (the hub before issue 14's quotas).
const LIMITS_OFF: &[&str] = &[
    "--mailbox-max-mailbox-bytes=1T",
    "--mailbox-max-connection-bytes=1T",
    "--mailbox-max-stored=1T",
    "--mailbox-max-listeners=1000000",
    "--mailbox-max-output=1T",
    "--mailbox-max-connections=1000000",
    "--mailbox-max-connections-per-address=1000000",
    "--relay-max-connections-per-address=1000",
    "--relay-idle-timeout=1000d",
    "--relay-evict-idle-after=1000d",
];

struct HubProc {
    child: Child,
    mailbox: String,
    relay: String,
    _dir: tempfile::TempDir,
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HubProc {
    fn start(extra: &[&str]) -> Result<HubProc, Error> {
        let dir = tempfile::tempdir()?;
        let bin = p2p_testkit::processes::future_p2p_binary()?;
        let mut child = Command::new(&bin)
            .args(["hub", "--board", "127.0.0.1:0", "--mailbox", "127.0.0.1:0"])
            .args(["--relay", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut mailbox, mut relay) = (String::new(), String::new());
        for line in lines.by_ref() {
            let line = line?;
            if let Some(m) = line.strip_prefix("mailbox ") {
                mailbox = m.to_owned();
            } else if let Some(r) = line.strip_prefix("relay ") {
                relay = r.to_owned();
            } else if line == "ready" {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(HubProc {
            child,
            mailbox,
            relay,
            _dir: dir,
        })
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn wormhole(&self) -> WormholeConfig {
        let mut config = WormholeConfig::new(self.mailbox.clone(), self.relay.clone());
        config.transit = TransitMode::RelayOnly;
        config
    }
}

async fn ws(url: &str) -> Result<Ws, Error> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        async_tungstenite::tokio::connect_async(url),
    )
    .await??;
    let _ = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
    Ok(ws)
}

async fn send(ws: &mut Ws, value: serde_json::Value) -> Result<(), Error> {
    Ok(ws.send(Message::text(value.to_string())).await?)
}

async fn until(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(30), ws.next()).await
        else {
            return serde_json::Value::Null;
        };
        let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        if value["type"] == kind || value["type"] == "error" {
            return value;
        }
    }
}

/// Another user's 100 kB transfer through the hub; whether it went through in 30 s.
async fn victim(hub: &HubProc) -> bool {
    let config = hub.wormhole();
    let options = TransferOptions {
        timeout: Duration::from_secs(30),
        ..TransferOptions::default()
    };
    let code = p2p_proto::id::WormholeCode::from_random(rand_nameplate(), rand::random());
    let recv = {
        let (config, code, options) = (config.clone(), code.clone(), options.clone());
        tokio::spawn(async move { receive_bytes(&config, &code, &options).await })
    };
    let data = Bytes::from(vec![7u8; 100_000]);
    let sent = send_bytes(&config, &code, "x", data.clone(), &options).await;
    let got = recv.await;
    matches!((sent, got), (Ok(()), Ok(Ok(r))) if r.data == data)
}

fn rand_nameplate() -> u32 {
    rand::random::<u32>() % 1_000_000 + 1
}

/// What an attack leaves behind while it lasts.
type Held = Vec<Box<dyn std::any::Any + Send>>;

async fn storage_flood(hub: &HubProc) -> Result<Held, Error> {
    let body = "ab".repeat(32_000);
    let mut held: Held = Vec::new();
    for n in 0..240 {
        let mut c = ws(&hub.mailbox).await?;
        send(
            &mut c,
            serde_json::json!({"type":"bind","appid":"flood","side":format!("s{n}")}),
        )
        .await?;
        send(
            &mut c,
            serde_json::json!({"type":"open","mailbox":format!("m{n}")}),
        )
        .await?;
        for _ in 0..16 {
            send(
                &mut c,
                serde_json::json!({"type":"add","phase":"x","body":body}),
            )
            .await?;
            if until(&mut c, "message").await["type"] == "error" {
                break;
            }
        }
        held.push(Box::new(c));
    }
    Ok(held)
}

async fn silent_readers(hub: &HubProc) -> Result<Held, Error> {
    let mut held: Held = Vec::new();
    for n in 0..30 {
        let mut c = ws(&hub.mailbox).await?;
        send(
            &mut c,
            serde_json::json!({"type":"bind","appid":"amp","side":"a"}),
        )
        .await?;
        send(
            &mut c,
            serde_json::json!({"type":"open","mailbox":format!("m{}", n % 4)}),
        )
        .await?;
        held.push(Box::new(c));
    }
    let body = "cd".repeat(30_000);
    for m in 0..4 {
        let mut w = ws(&hub.mailbox).await?;
        send(
            &mut w,
            serde_json::json!({"type":"bind","appid":"amp","side":"b"}),
        )
        .await?;
        send(
            &mut w,
            serde_json::json!({"type":"open","mailbox":format!("m{m}")}),
        )
        .await?;
        for _ in 0..200 {
            send(
                &mut w,
                serde_json::json!({"type":"add","phase":"x","body":body}),
            )
            .await?;
        }
        // Read our own echoes so only the silent ones pile up.
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = w.next().await {} });
        held.push(Box::new(drain));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(held)
}

async fn nameplate_flood(hub: &HubProc) -> Result<Held, Error> {
    let workers = 16;
    let claims = 10_000;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = hub.mailbox.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..claims).step_by(workers) {
                let Ok(mut c) = ws(&url).await else { continue };
                let bind = serde_json::json!({"type":"bind","appid":"lothar.com/wormhole/text-or-file-xfer","side":format!("f{n}")});
                let claim = serde_json::json!({"type":"claim","nameplate":(n + 1).to_string()});
                if send(&mut c, bind).await.is_ok() && send(&mut c, claim).await.is_ok() {
                    until(&mut c, "claimed").await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(Vec::new())
}

async fn relay_pairs(hub: &HubProc) -> Result<Held, Error> {
    let addr = hub.relay.trim_start_matches("tcp://").to_owned();
    let mut held: Held = Vec::new();
    for n in 0..500u32 {
        let token = format!("{n:064x}");
        for side in ["1111111111111111", "2222222222222222"] {
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            s.write_all(format!("please relay {token} for side {side}\n").as_bytes())
                .await?;
            held.push(Box::new(s));
        }
    }
    // Let the pairs settle, then wait past the default eviction age.
    tokio::time::sleep(Duration::from_secs(11)).await;
    if let Some(last) = held
        .last_mut()
        .and_then(|b| b.downcast_mut::<tokio::net::TcpStream>())
    {
        let mut ok = [0u8; 3];
        let _ = tokio::time::timeout(Duration::from_millis(100), last.read(&mut ok)).await;
    }
    Ok(held)
}

struct Row {
    attack: &'static str,
    mode: &'static str,
    idle: f64,
    peak: f64,
    during: f64,
    secs: f64,
    victim: bool,
}

async fn measure(attack: &'static str, mode: &'static str, flags: &[&str]) -> Result<Row, Error> {
    let hub = HubProc::start(flags)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (idle, _) = hub.memory();
    let started = Instant::now();
    let held = match attack {
        "storage" => storage_flood(&hub).await?,
        "silent readers" => silent_readers(&hub).await?,
        "nameplates" => nameplate_flood(&hub).await?,
        _ => relay_pairs(&hub).await?,
    };
    let secs = started.elapsed().as_secs_f64();
    let victim = victim(&hub).await;
    let (during, peak) = hub.memory();
    drop(held);
    Ok(Row {
        attack,
        mode,
        idle,
        peak,
        during,
        secs,
        victim,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut rows = Vec::new();
    for attack in ["storage", "silent readers", "nameplates", "relay pairs"] {
        for (mode, flags) in [("limits off", LIMITS_OFF), ("defaults", &[][..])] {
            eprintln!("{attack}, {mode} ...");
            rows.push(measure(attack, mode, flags).await?);
        }
    }
    println!();
    println!(
        "| attack | hub | idle RSS | RSS under attack | peak RSS | peak / idle | attack took | another user's transfer |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1}x | {:.1} s | {} |",
            r.attack,
            r.mode,
            r.idle,
            r.during,
            r.peak,
            r.peak / r.idle,
            r.secs,
            if r.victim { "went through" } else { "FAILED" }
        );
    }
    Ok(())
}
