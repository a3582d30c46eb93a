//! `ls` output, byte-for-byte in the current upstream format, sans-IO
//! (docs/pico-compat.md §9.1).
//!
//! Upstream prints channels and clients in Go map order (random); here channels are sorted by
//! name and clients listed in join order, so the output is deterministic.

/// One channel as `ls` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelView {
    /// Full channel name.
    pub name: String,
    /// Access list stored under exactly this name (empty: none).
    pub access: Vec<String>,
    /// Client IDs of pubs, subs and pipes, in join order.
    pub pubs: Vec<String>,
    /// Subs.
    pub subs: Vec<String>,
    /// Pipes.
    pub pipes: Vec<String>,
    /// Pubs still waiting for a reader on this name.
    pub waiting: Vec<String>,
}

/// The text for the channels a user owns (`name` starts with `user/`). Live channels come
/// first, then the waiting-pub entries, each in name order.
pub fn format_ls(user: &str, channels: &[ChannelView]) -> String {
    let prefix = format!("{user}/");
    let mut visible: Vec<&ChannelView> = channels
        .iter()
        .filter(|c| c.name.starts_with(&prefix))
        .collect();
    visible.sort_by(|a, b| a.name.cmp(&b.name));
    let live: Vec<&&ChannelView> = visible
        .iter()
        .filter(|c| !(c.pubs.is_empty() && c.subs.is_empty() && c.pipes.is_empty()))
        .collect();
    let waiting: Vec<&&ChannelView> = visible.iter().filter(|c| !c.waiting.is_empty()).collect();
    if live.is_empty() && waiting.is_empty() {
        return "no pubsub channels found\n".to_owned();
    }
    let header = |out: &mut String, c: &ChannelView| {
        out.push_str(&format!("- {}:", c.name));
        if !c.access.is_empty() {
            out.push_str(&format!(" (Access List: {})", c.access.join(", ")));
        }
        out.push_str("\r\n");
    };
    let section = |out: &mut String, title: &str, ids: &[String]| {
        if ids.is_empty() {
            return;
        }
        out.push_str(&format!("  {title}:\r\n"));
        for id in ids {
            out.push_str(&format!("  - {id}\r\n"));
        }
    };
    let mut out = String::from("Channel Information\r\n");
    for c in live {
        header(&mut out, c);
        section(&mut out, "Pubs", &c.pubs);
        section(&mut out, "Subs", &c.subs);
        section(&mut out, "Pipes", &c.pipes);
    }
    for c in waiting {
        header(&mut out, c);
        section(&mut out, "Waiting Pubs", &c.waiting);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_scenario_format() {
        let c = ChannelView {
            name: "alice/p2p".into(),
            access: vec!["bob".into(), "carol".into(), "diana".into()],
            pipes: vec![
                "u1 (alice@1.2.3.4:6543)".into(),
                "u2 (bob@4.3.2.1:4694)".into(),
            ],
            ..Default::default()
        };
        let other = ChannelView {
            name: "bob/p2p".into(),
            pipes: vec!["u3 (bob@4.3.2.1:1)".into()],
            ..Default::default()
        };
        let jobs = ChannelView {
            name: "alice/jobs".into(),
            waiting: vec!["u4 (alice@1.2.3.4:1)".into()],
            ..Default::default()
        };
        assert_eq!(
            format_ls("alice", &[c, other, jobs]),
            "Channel Information\r\n\
             - alice/p2p: (Access List: bob, carol, diana)\r\n  Pipes:\r\n  - u1 (alice@1.2.3.4:6543)\r\n  - u2 (bob@4.3.2.1:4694)\r\n\
             - alice/jobs:\r\n  Waiting Pubs:\r\n  - u4 (alice@1.2.3.4:1)\r\n"
        );
    }

    #[test]
    fn sections_in_order_and_none_line() {
        let c = ChannelView {
            name: "a/x".into(),
            pubs: vec!["p".into()],
            subs: vec!["s".into()],
            pipes: vec!["i".into()],
            ..Default::default()
        };
        assert_eq!(
            format_ls("a", &[c]),
            "Channel Information\r\n- a/x:\r\n  Pubs:\r\n  - p\r\n  Subs:\r\n  - s\r\n  Pipes:\r\n  - i\r\n"
        );
        assert_eq!(format_ls("b", &[]), "no pubsub channels found\n");
    }

    proptest! {
        #[test]
        fn only_own_namespace(user in "[a-z]{1,5}", names in proptest::collection::vec("[a-z]{1,5}/[a-z]{1,3}", 0..8)) {
            let chans: Vec<ChannelView> = names.iter().map(|n| ChannelView {
                name: n.clone(), pipes: vec!["id".into()], ..Default::default()
            }).collect();
            let out = format_ls(&user, &chans);
            for line in out.lines().filter(|l| l.starts_with("- ")) {
                let expected_prefix = format!("- {user}/");
                prop_assert!(line.starts_with(&expected_prefix));
            }
        }
    }
}
