//! Command-line parsing for the pipe server: exec string -> typed [`Command`]
//! (docs/pico-compat.md §3, §4).
//!
//! Sans-IO: the session layer prints what the parse returns and runs the command.
//!
//! Intended-rule deviations from upstream, each a typed error instead of a silent oddity:
//! - an unknown command word fails with `unknown command` (upstream: no output, exit 0, a
//!   side effect of its middleware chain falling through);
//! - `-d` accepts only `multicast` and `round_robin` (upstream: anything else is multicast);
//! - `sub` needs a topic (upstream subscribes to `<user>/`, a quirk of `toTopic(user, "")`).

use thiserror::Error;

use super::duration::GoDuration;
use super::flags::{self, FlagError, FlagKind, FlagSpec, ParsedFlags};
use super::tokenize::{TokenizeError, tokenize};

/// How a channel hands each chunk to its readers (docs/pico-compat.md §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatcher {
    /// Every reader gets every chunk.
    #[default]
    Multicast,
    /// Each chunk goes to exactly one reader, in turn.
    RoundRobin,
}

/// Options shared by pub, sub and pipe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicArgs {
    /// The topic as typed (`None`: generate one, where the command allows it).
    pub topic: Option<String>,
    /// `-a`: users or `SHA256:` fingerprints allowed in (trimmed, empties dropped).
    pub access: Vec<String>,
    /// `-p`: public namespace.
    pub public: bool,
    /// `-c`: no status lines.
    pub clean: bool,
}

/// `pub` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubArgs {
    /// Shared options.
    pub common: TopicArgs,
    /// `-b`: wait for a reader before the first chunk and before each chunk.
    pub block: bool,
    /// `-t`: how long the first wait may last.
    pub timeout: GoDuration,
    /// `-e`: publish one NUL byte instead of reading stdin.
    pub empty: bool,
    /// `-d`: dispatcher, if this pub creates the channel.
    pub dispatcher: Dispatcher,
}

/// `sub` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubArgs {
    /// Shared options.
    pub common: TopicArgs,
    /// `-k`: stay when the last writer leaves.
    pub keepalive: bool,
}

/// `pipe` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeArgs {
    /// Shared options.
    pub common: TopicArgs,
    /// `-r`: receive one's own chunks too.
    pub replay: bool,
    /// `-d`: dispatcher, if this pipe creates the channel.
    pub dispatcher: Dispatcher,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help` or an empty command.
    Help,
    /// `ls`.
    Ls,
    /// `user` (served by pico.sh's main host upstream; here on the same server).
    User,
    /// `features`: what this board guarantees beyond pico.sh, one word per line (pico.sh
    /// has no such command). Peers ask before trusting the user in a line's `from=`.
    Features,
    /// `pub`.
    Pub(PubArgs),
    /// `sub`.
    Sub(SubArgs),
    /// `pipe`.
    Pipe(PipeArgs),
}

/// Why a command line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The exec string could not be split.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// The first word is not a command this server serves.
    #[error("unknown command: {0}")]
    Unknown(String),
    /// Flag error, `-h`, or the topic `help`. `stdout` is what Go's flag package prints
    /// (the error line, if any, and the usage) before the error.
    #[error("invalid cmd args")]
    InvalidArgs {
        /// The flag error, if it was one (not for `-h` or topic `help`).
        cause: Option<FlagError>,
        /// Text for the session's stdout.
        stdout: String,
    },
    /// `sub` without a topic.
    #[error("topic is required")]
    TopicRequired,
}

const ACCESS: FlagSpec = FlagSpec {
    name: "a",
    kind: FlagKind::String,
    default: "",
    usage: "Comma separated list of pico usernames or ssh-key fingerprints to allow access to a topic",
};
const CLEAN: FlagSpec = FlagSpec {
    name: "c",
    kind: FlagKind::Bool,
    default: "false",
    usage: "Don't send status messages",
};
const DISPATCHER: FlagSpec = FlagSpec {
    name: "d",
    kind: FlagKind::String,
    default: "multicast",
    usage: "Type of dispatcher (e.g. multicast, round_robin)",
};

const PUB_FLAGS: &[FlagSpec] = &[
    ACCESS,
    FlagSpec {
        name: "b",
        kind: FlagKind::Bool,
        default: "true",
        usage: "Block writes until a subscriber is available",
    },
    CLEAN,
    DISPATCHER,
    FlagSpec {
        name: "e",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Send an empty message to subs",
    },
    FlagSpec {
        name: "p",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Publish message to public topic",
    },
    FlagSpec {
        name: "t",
        kind: FlagKind::Duration,
        default: "720h0m0s",
        usage: "Timeout as a Go duration to block for a subscriber to be available. Valid time units are 'ns', 'us' (or 'µs'), 'ms', 's', 'm', 'h'. Default is 30 days.",
    },
];

const SUB_FLAGS: &[FlagSpec] = &[
    ACCESS,
    CLEAN,
    FlagSpec {
        name: "k",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Keep the subscription alive even after the publisher has died",
    },
    FlagSpec {
        name: "p",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Subscribe to a public topic",
    },
];

const PIPE_FLAGS: &[FlagSpec] = &[
    ACCESS,
    CLEAN,
    DISPATCHER,
    FlagSpec {
        name: "p",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Pipe to a public topic",
    },
    FlagSpec {
        name: "r",
        kind: FlagKind::Bool,
        default: "false",
        usage: "Replay messages to the client that sent it",
    },
];

/// The usage text Go prints for `cmd` (`Usage: pub <topic> [args...]` + flag defaults).
pub fn usage(cmd: &str) -> String {
    let specs = match cmd {
        "pub" => PUB_FLAGS,
        "sub" => SUB_FLAGS,
        _ => PIPE_FLAGS,
    };
    format!(
        "Usage: {cmd} <topic> [args...]\nArgs:\n{}",
        flags::print_defaults(specs)
    )
}

/// The `help` text, with `ssh_cmd` (e.g. `ssh -p 2222 hub.example`) as the command prefix.
/// Lines end in `\r\n` and one more `\n` follows, as upstream's `Fprintln` of the CRLF text.
pub fn help_text(ssh_cmd: &str) -> String {
    let text = format!(
        "Command: {ssh_cmd} <command> [args...]

The simplest authenticated pubsub system.  Send messages through
user-defined topics.  Topics are private to the authenticated
ssh user.  The default pubsub model is multicast with bidirectional
blocking, meaning a publisher (\"pub\") will send its message to all
subscribers (\"sub\").  Further, both \"pub\" and \"sub\" will wait for
at least one event to be sent or received. Pipe (\"pipe\") allows
for bidirectional messages to be sent between any clients connected
to a pipe.

Commands:
  help                        Show this help message
  ls                          List active pubsub channels
  pub <topic> [flags]         Publish messages to a topic
  sub <topic> [flags]         Subscribe to messages from a topic
  pipe <topic> [flags]        Bidirectional messaging between clients
  user                        Show your username, account id and creation time
  features                    What this board proves (future-p2p: senders-verified)

Use \"{ssh_cmd} <command> -h\" for help on a specific command."
    );
    format!("{}\n", text.replace('\n', "\r\n"))
}

fn access_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn dispatcher(raw: &str) -> Result<Dispatcher, FlagError> {
    match raw {
        "multicast" => Ok(Dispatcher::Multicast),
        "round_robin" => Ok(Dispatcher::RoundRobin),
        other => Err(FlagError::InvalidValue {
            flag: "d".to_owned(),
            value: other.to_owned(),
            reason: "expected multicast or round_robin".to_owned(),
        }),
    }
}

/// Topic split, flag parse and the single-leftover-positional rule (docs/pico-compat.md §3.3).
fn parse_topic_command(
    cmd: &str,
    args: &[String],
    specs: &[FlagSpec],
) -> Result<(TopicArgs, ParsedFlags), CommandError> {
    let invalid = |cause: Option<FlagError>| {
        let mut stdout = String::new();
        if let Some(e) = &cause
            && *e != FlagError::Help
        {
            stdout.push_str(&format!("{e}\n"));
        }
        stdout.push_str(&usage(cmd));
        CommandError::InvalidArgs {
            cause: cause.filter(|e| *e != FlagError::Help),
            stdout,
        }
    };
    let (mut topic, flag_args) = match args.first() {
        Some(first) if !first.starts_with('-') => (first.trim().to_owned(), &args[1..]),
        _ => (String::new(), args),
    };
    let parsed = flags::parse(specs, flag_args).map_err(|e| invalid(Some(e)))?;
    if parsed.rest.len() == 1 && topic.is_empty() {
        topic = parsed.rest[0].trim().to_owned();
    }
    if topic == "help" {
        return Err(invalid(None));
    }
    let common = TopicArgs {
        topic: (!topic.is_empty()).then_some(topic),
        access: access_list(parsed.string("a")),
        public: parsed.bool("p"),
        clean: parsed.bool("c"),
    };
    Ok((common, parsed))
}

/// Parses an exec string into a [`Command`].
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let args = tokenize(line)?;
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    let rest = &args[1..];
    match first.trim() {
        "" | "help" => Ok(Command::Help),
        "ls" => Ok(Command::Ls),
        "user" => Ok(Command::User),
        "features" => Ok(Command::Features),
        "pub" => {
            let (common, f) = parse_topic_command("pub", rest, PUB_FLAGS)?;
            let dispatcher = dispatcher(f.string("d")).map_err(|e| CommandError::InvalidArgs {
                stdout: format!("{e}\n{}", usage("pub")),
                cause: Some(e),
            })?;
            Ok(Command::Pub(PubArgs {
                common,
                block: f.bool("b"),
                timeout: f.duration("t"),
                empty: f.bool("e"),
                dispatcher,
            }))
        }
        "sub" => {
            let (common, f) = parse_topic_command("sub", rest, SUB_FLAGS)?;
            if common.topic.is_none() {
                return Err(CommandError::TopicRequired);
            }
            Ok(Command::Sub(SubArgs {
                common,
                keepalive: f.bool("k"),
            }))
        }
        "pipe" => {
            let (common, f) = parse_topic_command("pipe", rest, PIPE_FLAGS)?;
            let dispatcher = dispatcher(f.string("d")).map_err(|e| CommandError::InvalidArgs {
                stdout: format!("{e}\n{}", usage("pipe")),
                cause: Some(e),
            })?;
            Ok(Command::Pipe(PipeArgs {
                common,
                replay: f.bool("r"),
                dispatcher,
            }))
        }
        other => Err(CommandError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pipe(line: &str) -> PipeArgs {
        match parse_command(line) {
            Ok(Command::Pipe(p)) => p,
            other => panic!("not a pipe: {other:?}"),
        }
    }

    fn publ(line: &str) -> PubArgs {
        match parse_command(line) {
            Ok(Command::Pub(p)) => p,
            other => panic!("not a pub: {other:?}"),
        }
    }

    #[test]
    fn seed_scenario() {
        let p = pipe("pipe p2p -a bob,carol,diana");
        assert_eq!(p.common.topic.as_deref(), Some("p2p"));
        assert_eq!(p.common.access, ["bob", "carol", "diana"]);
        assert_eq!(
            pipe("pipe alice/p2p").common.topic.as_deref(),
            Some("alice/p2p")
        );
    }

    #[test]
    fn topic_positions() {
        assert_eq!(publ("pub foo -p").common.topic.as_deref(), Some("foo"));
        assert!(publ("pub foo -p").common.public);
        assert_eq!(publ("pub -p foo").common.topic.as_deref(), Some("foo"));
        let p = publ("pub -a ' bob , carol ' foo");
        assert_eq!(p.common.topic.as_deref(), Some("foo"));
        assert_eq!(p.common.access, ["bob", "carol"]);
        // Parsing stops at the first non-flag: `-p` after `extra` is ignored.
        let p = publ("pub foo extra -p");
        assert!(!p.common.public);
        // Two leftovers and no topic: no topic.
        assert_eq!(publ("pub -p a b").common.topic, None);
        assert!(publ("pub x").block);
        assert!(!publ("pub x -b=false").block);
        assert_eq!(publ("pub x").timeout, GoDuration::THIRTY_DAYS);
        assert_eq!(
            pipe("pipe x -d round_robin").dispatcher,
            Dispatcher::RoundRobin
        );
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse_command(""), Ok(Command::Help));
        assert_eq!(parse_command("help"), Ok(Command::Help));
        assert_eq!(parse_command("ls"), Ok(Command::Ls));
        assert_eq!(parse_command("user"), Ok(Command::User));
        assert_eq!(parse_command("features"), Ok(Command::Features));
        assert_eq!(
            parse_command("frob"),
            Err(CommandError::Unknown("frob".into()))
        );
    }

    #[test]
    fn bad_flags_print_go_usage() {
        let Err(CommandError::InvalidArgs { cause, stdout }) = parse_command("pub x -z") else {
            panic!("expected invalid args");
        };
        assert_eq!(cause, Some(FlagError::NotDefined("z".into())));
        assert!(stdout.starts_with(
            "flag provided but not defined: -z\nUsage: pub <topic> [args...]\nArgs:\n"
        ));
        assert!(
            stdout.contains("  -b\tBlock writes until a subscriber is available (default true)\n")
        );
        assert!(matches!(
            parse_command("sub x -h"),
            Err(CommandError::InvalidArgs { cause: None, .. })
        ));
        assert!(matches!(
            parse_command("pipe help"),
            Err(CommandError::InvalidArgs { .. })
        ));
        assert!(matches!(
            parse_command("pipe x -d fanout"),
            Err(CommandError::InvalidArgs { .. })
        ));
        assert_eq!(parse_command("sub -k"), Err(CommandError::TopicRequired));
        assert!(matches!(
            parse_command("pub 'x"),
            Err(CommandError::Tokenize(_))
        ));
    }

    #[test]
    fn help_uses_crlf_and_trailing_newline() {
        let h = help_text("ssh -p 2222 localhost");
        assert!(h.starts_with("Command: ssh -p 2222 localhost <command> [args...]\r\n\r\n"));
        assert!(h.ends_with("for help on a specific command.\n"));
    }

    proptest! {
        #[test]
        fn never_panics(line in ".{0,40}") {
            let _ = parse_command(&line);
        }

        #[test]
        fn never_panics_on_commandish(cmd in "(pub|sub|pipe|ls|user)", rest in "[ a-z=,'\"-]{0,30}") {
            let _ = parse_command(&format!("{cmd} {rest}"));
        }
    }
}
