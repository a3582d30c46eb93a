//! The real OpenSSH client against the board server.

use std::time::Duration;

use p2p_testkit::openssh::*;

struct Keys {
    _dir: tempfile::TempDir,
    alice: std::path::PathBuf,
    bob: std::path::PathBuf,
    dave: std::path::PathBuf,
    anon: std::path::PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    Keys {
        alice: keygen(dir.path(), "alice"),
        bob: keygen(dir.path(), "bob"),
        dave: keygen(dir.path(), "dave"),
        anon: keygen(dir.path(), "anon"),
        _dir: dir,
    }
}

async fn hub(k: &Keys) -> TestBoard {
    TestBoard::start(&[("alice", &k.alice), ("bob", &k.bob), ("dave", &k.dave)]).await
}

#[tokio::test]
async fn seed_scenario_pipe_and_ls() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let mut alice = ssh(port, &k.alice, "alice", "pipe p2p -a bob,carol,diana");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@127.0.0.1:")).await;
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    let ls = wait_for_ls(port, &k.alice, "alice", |s| s.contains("(bob@127.0.0.1:")).await;
    let lines: Vec<&str> = ls.split("\r\n").collect();
    assert_eq!(lines[0], "Channel Information");
    assert_eq!(lines[1], "- alice/p2p: (Access List: bob, carol, diana)");
    assert_eq!(lines[2], "  Pipes:");
    assert!(
        lines[3].starts_with("  - ") && lines[3].contains(" (alice@127.0.0.1:"),
        "{ls:?}"
    );
    assert!(
        lines[4].starts_with("  - ") && lines[4].contains(" (bob@127.0.0.1:"),
        "{ls:?}"
    );
    assert_eq!(lines[5], "");
    assert_eq!(lines.len(), 6, "{ls:?}");
    // Bob does not own the topic: his ls shows nothing.
    assert_eq!(
        run(port, &k.bob, "bob", "ls").await.stdout(),
        "no pubsub channels found\n"
    );

    alice
        .write(b"when=2026-01-01T00:00:00,type=cluster\n")
        .await;
    assert_eq!(
        bob.read_until(b"\n").await,
        b"when=2026-01-01T00:00:00,type=cluster\n"
    );
    bob.write(b"when=2026-01-01T00:00:01,type=worker\n").await;
    assert_eq!(
        alice.read_until(b"\n").await,
        b"when=2026-01-01T00:00:01,type=worker\n"
    );

    // Bob leaves; alice's pipe (the cluster host) stays up and stays listed.
    drop(bob);
    let ls = wait_for_ls(port, &k.alice, "alice", |s| !s.contains("(bob@")).await;
    assert!(ls.contains("(alice@127.0.0.1:"), "{ls:?}");
    alice.close_stdin();
}

#[tokio::test]
async fn unlisted_user_does_not_get_in() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let mut alice = ssh(port, &k.alice, "alice", "pipe p2p -a bob");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@")).await;
    let mut dave = ssh(port, &k.dave, "dave", "pipe alice/p2p");
    let mut anon = ssh(port, &k.anon, "whoever", "pipe alice/p2p");
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    // Dave was routed to his own dave/alice/p2p, which he owns.
    wait_for_ls(port, &k.dave, "dave", |s| s.contains("- dave/alice/p2p:")).await;
    let ls = wait_for_ls(port, &k.alice, "alice", |s| s.contains("(bob@")).await;
    assert!(!ls.contains("(dave@") && !ls.contains("(public@"), "{ls:?}");

    alice.write(b"secret\n").await;
    assert_eq!(bob.read_until(b"\n").await, b"secret\n");
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt;
    for intruder in [&mut dave, &mut anon] {
        let got =
            tokio::time::timeout(Duration::from_millis(500), intruder.stdout.read(&mut buf)).await;
        assert!(got.is_err(), "an unlisted user received data: {got:?}");
    }
}

#[tokio::test]
async fn pub_sub_with_status_lines_and_exit_codes() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let sub = ssh(port, &k.bob, "bob", "sub alice/news");
    // Bob has no access list to rely on: alice/news typed by bob is bob/alice/news.
    drop(sub);
    let sub = ssh(port, &k.alice, "alice", "sub news");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("Subs:")).await;
    let mut publ = ssh(port, &k.alice, "alice", "pub news");
    publ.write(b"first line\nsecond line\n").await;
    let published = publ.finish().await;
    assert_eq!(published.code, Some(0), "{published:?}");
    assert_eq!(
        published.stdout(),
        format!(
            "subscribe to this channel:\n  ssh -p {port} localhost sub news\nsending msg ...\nmsg sent!\n"
        )
    );
    // The sub leaves with its last publisher, after writing everything.
    let got = sub.finish().await;
    assert_eq!(got.code, Some(0), "{got:?}");
    assert_eq!(got.stdout(), "first line\nsecond line\n");
}

#[tokio::test]
async fn pub_waits_for_a_sub_and_times_out() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let timed_out = run(port, &k.alice, "alice", "pub lonely -t 100ms").await;
    assert_eq!(timed_out.code, Some(1));
    assert!(
        timed_out
            .stdout()
            .contains("no subs found ... waiting 100ms\n"),
        "{timed_out:?}"
    );
    assert_eq!(timed_out.stderr(), "timeout reached, exiting\n\r");

    let mut publ = ssh(port, &k.alice, "alice", "pub later -c");
    publ.write(b"payload\n").await;
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("Waiting Pubs:")).await;
    let sub = ssh(port, &k.alice, "alice", "sub later");
    let published = publ.finish().await;
    assert_eq!(published.code, Some(0));
    assert_eq!(published.stdout(), "", "-c prints no status lines");
    assert_eq!(sub.finish().await.stdout(), "payload\n");
}

#[tokio::test]
async fn sub_keepalive_stays_and_public_topics_mix_anonymous_users() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let mut sub = ssh(port, &k.anon, "x", "sub -k board");
    // Anonymous `board` is public/board, the same as a registered user's `-p board`. The pubs
    // block until the sub is there, so no wait is needed.
    for line in ["one\n", "two\n"] {
        let mut p = ssh(port, &k.alice, "alice", "pub board -p -c");
        p.write(line.as_bytes()).await;
        assert_eq!(p.finish().await.code, Some(0));
    }
    assert_eq!(sub.read_until(b"two\n").await, b"one\ntwo\n");
}

#[tokio::test]
async fn user_command() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let out = run(port, &k.alice, "alice", "user").await;
    assert_eq!(out.code, Some(0));
    let text = out.stdout();
    assert!(text.ends_with("\n\r\n"), "{text:?}");
    let lines: Vec<&str> = text.trim_end_matches("\r\n").split('\n').collect();
    assert_eq!(lines[0], "alice");
    assert_eq!(lines[1].len(), 36, "uuid: {text:?}");
    assert!(
        lines[2].ends_with('Z') && lines[2].contains('T'),
        "rfc3339: {text:?}"
    );
    // The same id after a restart of the registry is checked in its unit tests; the key
    // decides the user, not the login name.
    assert!(
        run(port, &k.alice, "mallory", "user")
            .await
            .stdout()
            .starts_with("alice\n")
    );
    let anon = run(port, &k.anon, "alice", "user").await;
    assert_eq!(anon.code, Some(1));
    assert!(
        anon.stderr()
            .starts_with("detected ssh command: [user]\nERROR: you need to create an account"),
        "{anon:?}"
    );
}

#[tokio::test]
async fn signup_mode_registers_free_login_names() {
    let k = keys();
    let hub = TestBoard::start_with(&[("alice", &k.alice)], |c| c.signup = true).await;
    let port = hub.port();
    let taken = run(port, &k.anon, "alice", "user").await;
    assert_eq!(taken.code, Some(1), "alice is taken: {taken:?}");
    let fresh = run(port, &k.dave, "Dave", "user").await;
    assert!(fresh.stdout().starts_with("dave\n"), "{fresh:?}");
    let users = std::fs::read_to_string(hub.dir.path().join("state/users")).expect("users");
    assert!(
        users.contains(&format!("dave {}", public_line(&k.dave))),
        "{users}"
    );
}

#[tokio::test]
async fn bad_commands_and_flags() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();

    let help = run(port, &k.alice, "alice", "help").await;
    assert_eq!(help.code, Some(0));
    assert!(help.stdout().starts_with(&format!(
        "Command: ssh -p {port} localhost <command> [args...]\r\n"
    )));

    let unknown = run(port, &k.alice, "alice", "frobnicate").await;
    assert_eq!(
        (unknown.code, unknown.stderr()),
        (Some(1), "unknown command: frobnicate\n\r".to_owned())
    );

    let flag = run(port, &k.alice, "alice", "pub x -z").await;
    assert_eq!(flag.code, Some(1));
    assert!(
        flag.stdout().starts_with(
            "flag provided but not defined: -z\nUsage: pub <topic> [args...]\nArgs:\n"
        ),
        "{flag:?}"
    );
    assert_eq!(flag.stderr(), "invalid cmd args\n\r");

    let usage = run(port, &k.alice, "alice", "pipe -h").await;
    assert_eq!(usage.code, Some(1));
    assert!(
        usage
            .stdout()
            .starts_with("Usage: pipe <topic> [args...]\n"),
        "{usage:?}"
    );

    let duration = run(port, &k.alice, "alice", "pub x -t 1d").await;
    assert!(
        duration
            .stdout()
            .starts_with("invalid value \"1d\" for flag -t: parse error\n"),
        "{duration:?}"
    );

    let quote = run(port, &k.alice, "alice", "pub 'x").await;
    assert_eq!(quote.code, Some(1));
    assert!(
        quote.stderr().starts_with("unbalanced ' quote"),
        "{quote:?}"
    );

    let no_topic = run(port, &k.alice, "alice", "sub -k").await;
    assert_eq!(no_topic.stderr(), "topic is required\n\r");

    let ls = run(port, &k.anon, "anon", "ls").await;
    assert_eq!(
        (ls.code, ls.stderr()),
        (Some(1), "access denied\n\r".to_owned())
    );

    // A public ACL topic refuses an unlisted sub. Nothing lists public topics, so poll: until
    // alice's ACL exists, dave's sub simply joins and waits, and is killed after a moment.
    let _owner = ssh(port, &k.alice, "alice", "sub -p -k -a bob room");
    let denied = tokio::time::timeout(STEP, async {
        loop {
            let attempt = ssh(port, &k.dave, "dave", "sub -p room");
            if let Ok(done) =
                tokio::time::timeout(Duration::from_millis(500), attempt.finish()).await
            {
                return done;
            }
        }
    })
    .await
    .expect("dave was never refused");
    assert_eq!(
        (denied.code, denied.stderr()),
        (Some(1), "access denied\n\r".to_owned())
    );
}

#[tokio::test]
async fn empty_message_replay_and_round_robin() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();

    // -e publishes one NUL byte and finishes with "msg sent!".
    let sub = ssh(port, &k.alice, "alice", "sub ping");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("Subs:")).await;
    let empty = run(port, &k.alice, "alice", "pub ping -e").await;
    assert_eq!(empty.code, Some(0));
    assert!(
        empty.stdout().ends_with("sending msg ...\nmsg sent!\n"),
        "{empty:?}"
    );
    assert_eq!(sub.finish().await.stdout, [0u8]);

    // -r: a pipe sees its own bytes; without it, it does not.
    let mut echo = ssh(port, &k.alice, "alice", "pipe mirror -r");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("- alice/mirror:")).await;
    echo.write(b"self\n").await;
    assert_eq!(echo.read_until(b"\n").await, b"self\n");

    // -d round_robin: each chunk goes to exactly one of the readers, in turn.
    let mut readers = Vec::new();
    for _ in 0..2 {
        readers.push(ssh(port, &k.alice, "alice", "sub jobs -k"));
    }
    wait_for_ls(port, &k.alice, "alice", |s| {
        s.matches("(alice@").count() >= 3 && s.contains("- alice/jobs:")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut publ = ssh(port, &k.alice, "alice", "pub jobs -d round_robin -c");
    for job in ["job1\n", "job2\n", "job3\n", "job4\n"] {
        publ.write(job.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publ.finish().await.code, Some(0));
    let a = readers[0].read_exact(10).await;
    let b = readers[1].read_exact(10).await;
    let mut all = [a, b].concat();
    all.sort();
    let mut expected = b"job1\njob2\njob3\njob4\n".to_vec();
    expected.sort();
    assert_eq!(all, expected, "every job exactly once");
}
