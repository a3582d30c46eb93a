//! Our transfer client against the Python reference mailbox server and transit relay, and
//! against the Python client: every client-side behaviour proven against the reference.

use p2p_testkit::peers;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::id::WormholeCode;
use p2p_testkit::peers::{
    Proc, payload, python_mailbox, python_receive, python_relay, python_send,
};
use p2p_transport::wormhole::{
    TransferError, TransferOptions, TransitMode, WormholeConfig, receive_bytes, receive_file,
    send_bytes, send_file,
};

const LIMIT: Duration = Duration::from_secs(60);

struct Reference {
    _mailbox: Proc,
    _relay: Proc,
    config: WormholeConfig,
    dir: tempfile::TempDir,
}

fn reference() -> Reference {
    p2p_testkit::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mailbox, mailbox_url) = python_mailbox(dir.path());
    let (relay, relay_url) = python_relay();
    Reference {
        _mailbox: mailbox,
        _relay: relay,
        config: WormholeConfig::new(mailbox_url, relay_url),
        dir,
    }
}

fn options() -> TransferOptions {
    TransferOptions {
        timeout: LIMIT,
        ..TransferOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_receiver_first_with_progress() {
    let mut env = reference();
    // Rust peers on one host meet through the relay: magic-wormhole 0.8.1 can panic when
    // both try direct candidates and one closes the loser ("socket must be IP"), and
    // Rust-to-Rust direct attempts only add that race here (loopback is never offered).
    env.config.transit = TransitMode::RelayOnly;
    let code = peers::fresh_code().future_code();
    let data = Bytes::from(payload(300_000, 1));

    let seen = Arc::new(AtomicU64::new(0));
    let mut recv_opts = options();
    let seen_in_cb = Arc::clone(&seen);
    recv_opts.progress = Some(Arc::new(move |done, _total| {
        seen_in_cb.store(done, Ordering::SeqCst);
    }));
    let receiver = {
        let (config, code) = (env.config.clone(), code.clone());
        tokio::spawn(async move { receive_bytes(&config, &code, &recv_opts).await })
    };
    // The receiver claims the nameplate first; the sender arrives later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_bytes(&env.config, &code, "future.rds", data.clone(), &options())
        .await
        .expect("send");
    let received = receiver.await.expect("join").expect("receive");
    assert_eq!(received.name, "future.rds");
    assert_eq!(received.data, data);
    assert_eq!(seen.load(Ordering::SeqCst), data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sends_python_receives() {
    let env = reference();
    let code = peers::fresh_code().result_code();
    let src = env.dir.path().join("result.rds");
    let data = payload(100_000, 2);
    std::fs::write(&src, &data).expect("write");
    let out = env.dir.path().join("got.rds");
    let (mailbox, relay) = (
        env.config.mailbox_url.clone(),
        env.config.relay_urls[0].clone(),
    );
    let python = python_receive(&mailbox, &relay, code.as_str(), &out);
    let sent = send_file(&env.config, &code, &src, &options())
        .await
        .expect("send");
    assert_eq!(sent, data.len() as u64);
    peers::wait_success(python, LIMIT).await;
    assert_eq!(std::fs::read(&out).expect("output"), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sends_rust_receives_future_p2p_code() {
    let env = reference();
    // A low-entropy code as a future.p2p peer might choose: accepted through from_peer.
    let code = "7351-abcdef-f".parse::<WormholeCode>().expect("peer code");
    let src = env.dir.path().join("future.rds");
    let data = payload(150_000, 3);
    std::fs::write(&src, &data).expect("write");
    let (mailbox, relay) = (
        env.config.mailbox_url.clone(),
        env.config.relay_urls[0].clone(),
    );
    let python = python_send(&mailbox, &relay, code.as_str(), &src);
    let dest = env.dir.path().join("received.rds");
    let got = receive_file(&env.config, &code, &dest, &options())
        .await
        .expect("receive");
    assert_eq!(got.name, "future.rds");
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(std::fs::read(&dest).expect("dest"), data);
    peers::wait_success(python, LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_is_a_typed_error_on_both_sides() {
    let env = reference();
    let code = peers::fresh_code();
    // Same nameplate, different password.
    let wrong = format!("{}-9f3ac41b77e2", code.nameplate())
        .parse::<WormholeCode>()
        .expect("code");
    let sender = {
        let (config, code) = (env.config.clone(), code.clone());
        tokio::spawn(async move {
            send_bytes(&config, &code, "x", Bytes::from_static(b"data"), &options()).await
        })
    };
    let received = receive_bytes(&env.config, &wrong, &options()).await;
    assert!(
        matches!(received, Err(TransferError::WrongCode)),
        "{received:?}"
    );
    let sent = sender.await.expect("join");
    assert!(matches!(sent, Err(TransferError::WrongCode)), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_offer_is_rejected_before_any_byte() {
    let env = reference();
    let code = peers::fresh_code().future_code();
    let sender = {
        let (config, code) = (env.config.clone(), code.clone());
        tokio::spawn(async move {
            send_bytes(
                &config,
                &code,
                "big",
                Bytes::from(payload(50_000, 4)),
                &options(),
            )
            .await
        })
    };
    let written = Arc::new(AtomicU64::new(0));
    let mut opts = options();
    opts.max_size = 10_000;
    let written_cb = Arc::clone(&written);
    opts.progress = Some(Arc::new(move |done, _| {
        written_cb.store(done, Ordering::SeqCst)
    }));
    let dest = env.dir.path().join("never.bin");
    let got = receive_file(&env.config, &code, &dest, &opts).await;
    assert!(
        matches!(
            got,
            Err(TransferError::TooLarge {
                offered: 50_000,
                max: 10_000
            })
        ),
        "{got:?}"
    );
    assert_eq!(written.load(Ordering::SeqCst), 0);
    assert!(!dest.exists(), "no file may be left behind");
    let sent = sender.await.expect("join");
    assert!(matches!(sent, Err(TransferError::Peer(_))), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_peer_times_out_and_cancel_is_prompt() {
    let env = reference();
    let mut opts = options();
    opts.timeout = Duration::from_millis(800);
    let code = peers::fresh_code();
    let got = receive_bytes(&env.config, &code, &opts).await;
    assert!(matches!(got, Err(TransferError::Timeout(_))), "{got:?}");

    let opts = options();
    let cancel = opts.cancel.clone();
    let code = peers::fresh_code();
    let config = env.config.clone();
    let task = tokio::spawn(async move {
        send_bytes(&config, &code, "x", Bytes::from_static(b"abc"), &opts).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let got = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("cancel must end the transfer")
        .expect("join");
    assert!(matches!(got, Err(TransferError::Cancelled)), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_killed_mid_transfer_fails_the_receiver() {
    let env = reference();
    let code = peers::fresh_code().future_code();
    let src = env.dir.path().join("huge.bin");
    // Big enough that the transfer is still running when the sender is killed.
    let file = std::fs::File::create(&src).expect("create");
    file.set_len(256 << 20).expect("set_len");
    let (mailbox, relay) = (
        env.config.mailbox_url.clone(),
        env.config.relay_urls[0].clone(),
    );
    let mut python = python_send(&mailbox, &relay, code.as_str(), &src);

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let mut opts = options();
    opts.max_size = 1 << 30;
    opts.progress = Some(Arc::new(move |done, _| {
        if done > 0
            && let Some(tx) = started_tx.lock().expect("lock").take()
        {
            let _ = tx.send(());
        }
    }));
    let dest = env.dir.path().join("partial.bin");
    let receiver = {
        let (config, code, dest) = (env.config.clone(), code.clone(), dest.clone());
        tokio::spawn(async move { receive_file(&config, &code, &dest, &opts).await })
    };
    tokio::time::timeout(LIMIT, started_rx)
        .await
        .expect("transfer must start")
        .expect("progress");
    python.kill();
    let got = tokio::time::timeout(LIMIT, receiver)
        .await
        .expect("receiver must not hang")
        .expect("join");
    assert!(
        got.is_err(),
        "a killed sender must fail the transfer: {got:?}"
    );
    assert!(!dest.exists(), "partial file must be removed");
}
