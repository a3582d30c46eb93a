//! The real OpenSSH client against the board server.

use std::time::Duration;

use p2p_testkit::openssh::*;
use tokio::io::AsyncReadExt;

struct Keys {
    _dir: tempfile::TempDir,
    alice: std::path::PathBuf,
    bob: std::path::PathBuf,
    dave: std::path::PathBuf,
    mallory: std::path::PathBuf,
    anon: std::path::PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    Keys {
        alice: keygen(dir.path(), "alice"),
        bob: keygen(dir.path(), "bob"),
        dave: keygen(dir.path(), "dave"),
        mallory: keygen(dir.path(), "mallory"),
        anon: keygen(dir.path(), "anon"),
        _dir: dir,
    }
}

fn users(k: &Keys) -> [(&'static str, &std::path::Path); 4] {
    [
        ("alice", &k.alice),
        ("bob", &k.bob),
        ("dave", &k.dave),
        ("mallory", &k.mallory),
    ]
}

async fn hub(k: &Keys) -> TestBoard {
    TestBoard::start(&users(k)).await
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
    // Unlisted users are told why, instead of being routed to a topic of their own
    // (upstream sends dave to `dave/alice/p2p`, where he waits forever).
    let dave = run(port, &k.dave, "dave", "pipe alice/p2p").await;
    assert_eq!(dave.code, Some(1), "{dave:?}");
    assert_eq!(
        dave.stderr(),
        "access denied: dave is not on the access list of alice/p2p (ask alice to add you)\n\r"
    );
    assert_eq!(dave.stdout(), "");
    let anon = run(port, &k.anon, "whoever", "sub alice/p2p").await;
    assert_eq!(anon.code, Some(1), "{anon:?}");
    assert!(
        anon.stderr()
            .starts_with("access denied: public (an unregistered key) is not on the access list"),
        "{anon:?}"
    );
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    let ls = wait_for_ls(port, &k.alice, "alice", |s| s.contains("(bob@")).await;
    assert!(!ls.contains("(dave@") && !ls.contains("(public@"), "{ls:?}");
    alice.write(b"secret\n").await;
    assert_eq!(bob.read_until(b"\n").await, b"secret\n");
    assert_eq!(
        run(port, &k.dave, "dave", "ls").await.stdout(),
        "no pubsub channels found\n"
    );
}

/// A member who comes before the host is told the cluster is not hosted, and nobody but
/// its owner can create a topic in the owner's namespace.
#[tokio::test]
async fn only_the_owner_creates_topics_in_their_namespace() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    for (user, command) in [
        ("bob", "pipe alice/p2p"),
        ("bob", "pipe alice/p2p -a bob,mallory"),
        ("mallory", "sub alice/p2p"),
        ("mallory", "pub alice/p2p -b=false"),
    ] {
        let key = if user == "bob" { &k.bob } else { &k.mallory };
        let refused = run(port, key, user, command).await;
        assert_eq!(refused.code, Some(1), "{command}: {refused:?}");
        assert!(
            refused
                .stderr()
                .starts_with("alice/p2p is not hosted: it is alice's"),
            "{command}: {refused:?}"
        );
    }
    // Nothing was created, for anyone.
    for (key, user) in [
        (&k.alice, "alice"),
        (&k.bob, "bob"),
        (&k.mallory, "mallory"),
    ] {
        assert_eq!(
            run(port, key, user, "ls").await.stdout(),
            "no pubsub channels found\n"
        );
    }
    // Once alice hosts it, bob gets in.
    let mut alice = ssh(port, &k.alice, "alice", "pipe p2p -a bob");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@")).await;
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(bob@")).await;
    alice.write(b"hello\n").await;
    assert_eq!(bob.read_until(b"\n").await, b"hello\n");
}

/// Mallory, a member, posts lines as bob (issue 14: forged offers and results): the hub
/// drops every line whose `from=` is not the SSH user that wrote it, and says so to her.
#[tokio::test]
async fn a_line_from_another_user_never_reaches_the_members() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let mut alice = ssh(port, &k.alice, "alice", "pipe p2p -a bob,mallory");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@")).await;
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    let mut mallory = ssh(port, &k.mallory, "mallory", "pipe alice/p2p");
    wait_for_ls(port, &k.alice, "alice", |s| {
        s.contains("(bob@") && s.contains("(mallory@")
    })
    .await;
    let forged = [
        "when=2026-01-01T00:00:00,expires=1767225660,type=offer,from=bob@box:7,to=alice@box:1,future=f1,protocols=wormhole",
        "when=2026-01-01T00:00:01,expires=1767225660,type=result,from=bob@box:7,to=alice@box:1,future=f1,via=wormhole://1-a-b",
        // A split pair that future.p2p's parser would read as from=bob@box:7.
        "when=2026-01-01T00:00:02,type=offer,a=,b=from,bob@box:7=z",
    ];
    let own = "when=2026-01-01T00:00:03,expires=1767225660,type=worker,from=mallory@box:9";
    let mut input = String::new();
    for line in forged {
        input.push_str(line);
        input.push('\n');
    }
    input.push_str(own);
    input.push('\n');
    mallory.write(input.as_bytes()).await;
    // The first line alice and bob get is mallory's own.
    assert_eq!(alice.read_until(b"\n").await, format!("{own}\n").as_bytes());
    assert_eq!(bob.read_until(b"\n").await, format!("{own}\n").as_bytes());
    // Bob's real lines pass.
    let real = "when=2026-01-01T00:00:04,expires=1767225660,type=offer,from=bob@box:7,to=alice@box:1,future=f1";
    bob.write(format!("{real}\n").as_bytes()).await;
    assert_eq!(
        alice.read_until(b"\n").await,
        format!("{real}\n").as_bytes()
    );
    // Mallory was told, on stderr (her pipe stays open).
    let told = read_stderr_until(&mut mallory, b"\n").await;
    assert_eq!(
        String::from_utf8_lossy(&told),
        "board line dropped (from=bob@box:7 names another user than this session's); on this hub a line's from= must be you (mallory)\n"
    );
}

/// Reads a client's stderr up to and including `needle`.
async fn read_stderr_until(client: &mut Ssh, needle: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !contains(&got, needle) {
            if client.stderr.read(&mut byte).await.expect("stderr") == 0 {
                break;
            }
            got.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("nothing on stderr");
    got
}

/// An owner who hosts again with a shorter list ends the sessions of the users taken off
/// it at once (issue 14: revocation), whatever they do on the topic.
#[tokio::test]
async fn a_new_access_list_ends_the_sessions_it_leaves_out() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    let mut host = ssh(port, &k.alice, "alice", "pipe p2p -a bob,dave");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@")).await;
    let bob_reader = ssh(port, &k.bob, "bob", "sub alice/p2p -k");
    let mut bob_writer = ssh(port, &k.bob, "bob", "pub alice/p2p -c");
    let mut dave = ssh(port, &k.dave, "dave", "pipe alice/p2p");
    wait_for_ls(port, &k.alice, "alice", |s| {
        s.contains("(dave@") && s.matches("(bob@").count() == 2
    })
    .await;
    bob_writer.write(b"while listed\n").await;
    assert_eq!(host.read_until(b"\n").await, b"while listed\n");

    // Alice hosts again with dave only.
    let _host2 = ssh(port, &k.alice, "alice", "pipe p2p -a dave");
    let revoked = "access revoked: alice took you off the access list of alice/p2p\n\r";
    let reader_end = bob_reader.finish().await;
    assert_eq!(reader_end.code, Some(1), "{reader_end:?}");
    assert_eq!(reader_end.stderr(), revoked);
    let writer_end = bob_writer.finish().await;
    assert_eq!(writer_end.code, Some(1), "{writer_end:?}");
    assert_eq!(writer_end.stderr(), revoked);
    let ls = wait_for_ls(port, &k.alice, "alice", |s| !s.contains("(bob@")).await;
    assert!(ls.contains("(Access List: dave)"), "{ls:?}");
    // Dave stays, and bob cannot come back.
    host.write(b"for dave\n").await;
    assert_eq!(
        dave.read_until(b"for dave\n").await,
        b"while listed\nfor dave\n"
    );
    let again = run(port, &k.bob, "bob", "pipe alice/p2p").await;
    assert!(
        again
            .stderr()
            .starts_with("access denied: bob is not on the access list"),
        "{again:?}"
    );
}

/// Access lists outlive the hub: after a restart on the same state directory, a member who
/// comes back before the host still lands on the owner's topic (issue 13: a restart split
/// the cluster), and the state files are private.
#[tokio::test]
async fn access_lists_survive_a_restart() {
    let k = keys();
    let TestBoard { dir, server } = hub(&k).await;
    let port = server.local_addr().port();
    let state = dir.path().join("state");
    let host = ssh(port, &k.alice, "alice", "pipe p2p -a bob");
    wait_for_ls(port, &k.alice, "alice", |s| s.contains("(alice@")).await;
    drop(host);
    drop(server);

    let mut config = p2p_hub::board::ServerConfig::new(&state);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let server = p2p_hub::board::BoardServer::start(config)
        .await
        .expect("restart");
    let port = server.local_addr().port();
    // Bob first, then dave (not listed), then alice.
    let mut bob = ssh(port, &k.bob, "bob", "pipe alice/p2p");
    let dave = run(port, &k.dave, "dave", "pipe alice/p2p").await;
    assert!(
        dave.stderr()
            .starts_with("access denied: dave is not on the access list"),
        "{dave:?}"
    );
    let mut alice = ssh(port, &k.alice, "alice", "pipe p2p -a bob");
    let ls = wait_for_ls(port, &k.alice, "alice", |s| {
        s.contains("(alice@") && s.contains("(bob@")
    })
    .await;
    assert!(
        ls.starts_with("Channel Information\r\n- alice/p2p: (Access List: bob)"),
        "{ls:?}"
    );
    alice.write(b"one cluster\n").await;
    assert_eq!(bob.read_until(b"\n").await, b"one cluster\n");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        for file in ["users", "accounts", "clusters", "ssh_host_ed25519_key"] {
            assert_eq!(mode(&state.join(file)), 0o600, "{file}");
        }
    }
    drop(server);
}

/// One user cannot hold more than the per-user number of sessions; others are unaffected.
#[tokio::test]
async fn sessions_per_user_are_bounded() {
    let k = keys();
    let hub = TestBoard::start_with(&users(&k), |c| c.max_sessions_per_user = 2).await;
    let port = hub.port();
    let _a = ssh(port, &k.mallory, "mallory", "sub a -k");
    let _b = ssh(port, &k.mallory, "mallory", "sub b -k");
    wait_for_ls(port, &k.mallory, "mallory", |s| {
        s.matches("(mallory@").count() == 2
    })
    .await;
    let third = run(port, &k.mallory, "mallory", "sub c -k").await;
    assert_eq!(third.code, Some(1), "{third:?}");
    assert_eq!(
        third.stderr(),
        "too many sessions: mallory has 2 open on this hub (limit 2); close some first\n\r"
    );
    // `ls` is not a session, and bob's sessions are his own.
    let mut bob = ssh(port, &k.bob, "bob", "pipe t");
    let mut bob2 = ssh(port, &k.bob, "bob", "pipe t");
    wait_for_ls(port, &k.bob, "bob", |s| s.matches("(bob@").count() == 2).await;
    bob.write(b"ok\n").await;
    assert_eq!(bob2.read_until(b"\n").await, b"ok\n");
}

#[tokio::test]
async fn pub_sub_with_status_lines_and_exit_codes() {
    let k = keys();
    let hub = hub(&k).await;
    let port = hub.port();
    // Alice has no topic news with an access list: bob may not create one for her.
    let refused = run(port, &k.bob, "bob", "sub alice/news").await;
    assert!(
        refused.stderr().contains("alice/news is not hosted"),
        "{refused:?}"
    );
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
    assert!(
        taken.stderr().contains("signup refused your login name"),
        "{taken:?}"
    );
    // A reserved name is refused too, and `user` says why.
    let reserved = run(port, &k.anon, "root", "user").await;
    assert_eq!(reserved.code, Some(1), "{reserved:?}");
    assert!(
        reserved.stderr().contains("\"root\" is reserved"),
        "{reserved:?}"
    );
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
    // Both readers on `jobs` itself: sessions of the steps above may still be listed
    // while they wind down, so counting all of alice's would race.
    wait_for_ls(port, &k.alice, "alice", |s| {
        s.split("\n- ")
            .find(|channel| channel.starts_with("alice/jobs:"))
            .is_some_and(|jobs| jobs.matches("(alice@").count() >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut publ = ssh(port, &k.alice, "alice", "pub jobs -d round_robin -c");
    for job in ["job1\n", "job2\n", "job3\n", "job4\n"] {
        publ.write(job.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publ.finish().await.code, Some(0));
    // Each data message is one chunk; a loaded machine may let ssh coalesce two writes
    // into one, so collect whatever each reader got instead of expecting two jobs each.
    let mut got = [Vec::new(), Vec::new()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got[0].len() + got[1].len() < 20 && tokio::time::Instant::now() < deadline {
        for (reader, buf) in readers.iter_mut().zip(&mut got) {
            let mut chunk = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(50), reader.stdout.read(&mut chunk))
                    .await
            {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both readers get chunks in turn: {got:?}"
    );
    let mut all = got.concat();
    all.sort();
    let mut expected = b"job1\njob2\njob3\njob4\n".to_vec();
    expected.sort();
    assert_eq!(all, expected, "every job exactly once");
}
