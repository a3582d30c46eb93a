//! `ssh_args` as the R package passes them (`-J somehost`, `-p`, `-i`, `-l`, `-o Key=Value`),
//! parsed natively into the settings of a connection. Sans-IO.
//!
//! Supported: `-J`/`-o ProxyJump` (comma-separated hops, `[user@]host[:port]`), `-p`/`-o Port`,
//! `-i`/`-o IdentityFile` (repeatable), `-l`/`-o User`, `-o StrictHostKeyChecking`,
//! `-o UserKnownHostsFile` (space-separated list), and `-o ServerAliveInterval`,
//! `-o ConnectTimeout`, `-o BatchMode` (the client never prompts, so BatchMode changes
//! nothing). Like OpenSSH, the first value of a single-valued setting wins, options can be
//! glued (`-p2222`, `-oPort=2222`) and `-o` takes `Key=Value` or `Key Value`. Anything else is
//! a typed error that points at the system-ssh backend, which passes arguments verbatim to
//! `ssh` and so honours `~/.ssh/config`, ProxyCommand and the rest.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// One ProxyJump hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Login name, if given.
    pub user: Option<String>,
    /// Host name or address.
    pub host: String,
    /// Port (22 if not given).
    pub port: u16,
}

/// `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// `yes`/`ask`: unknown hosts are refused.
    Strict,
    /// `accept-new`/`no`/`off`: unknown hosts are learned (trust on first use). A changed
    /// key is refused whatever the setting.
    AcceptNew,
}

/// Settings gathered from `ssh_args` (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshArgs {
    /// `-p`/`Port`.
    pub port: Option<u16>,
    /// `-l`/`User`.
    pub user: Option<String>,
    /// `-i`/`IdentityFile`, in order.
    pub identity_files: Vec<PathBuf>,
    /// `-J`/`ProxyJump`, first hop first.
    pub jump: Vec<Hop>,
    /// `StrictHostKeyChecking`.
    pub strict: Option<Strictness>,
    /// `UserKnownHostsFile`.
    pub known_hosts: Vec<PathBuf>,
    /// `ServerAliveInterval` (0: off).
    pub alive_interval: Option<Duration>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
}

/// Why `ssh_args` could not be used natively.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SshArgsError {
    /// A flag that takes a value came last.
    #[error("ssh option {0} needs a value")]
    MissingValue(String),
    /// A flag the native client does not implement.
    #[error("ssh flag {0} is not supported natively; use the system ssh backend")]
    UnsupportedFlag(String),
    /// An `-o` option the native client does not implement.
    #[error("ssh option {0} is not supported natively; use the system ssh backend")]
    UnsupportedOption(String),
    /// A value that does not parse.
    #[error("invalid value {value:?} for {option}")]
    InvalidValue {
        /// The option.
        option: String,
        /// The value.
        value: String,
    },
    /// A positional argument: the destination is given separately.
    #[error("unexpected argument {0:?} in ssh_args")]
    UnexpectedArgument(String),
}

fn invalid(option: &str, value: &str) -> SshArgsError {
    SshArgsError::InvalidValue {
        option: option.to_owned(),
        value: value.to_owned(),
    }
}

fn parse_port(option: &str, value: &str) -> Result<u16, SshArgsError> {
    value
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(option, value))
}

fn parse_seconds(option: &str, value: &str) -> Result<Duration, SshArgsError> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| invalid(option, value))
}

/// Parses one `[user@]host[:port]` (IPv6 as `[addr]:port`).
pub fn parse_hop(spec: &str) -> Result<Hop, SshArgsError> {
    let bad = || invalid("ProxyJump", spec);
    let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_owned()), r),
        Some(_) => return Err(bad()),
        None => (None, spec),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.starts_with('-') {
        return Err(bad());
    }
    let port = match port {
        Some(p) => parse_port("ProxyJump", p)?,
        None => 22,
    };
    Ok(Hop {
        user,
        host: host.to_owned(),
        port,
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn apply_option(args: &mut SshArgs, text: &str) -> Result<(), SshArgsError> {
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k.trim(), v.trim()),
        None => match text.trim().split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => return Err(SshArgsError::MissingValue(format!("-o {text}"))),
        },
    };
    match key.to_ascii_lowercase().as_str() {
        "port" => set_once(&mut args.port, parse_port(key, value)?),
        "user" => set_once(&mut args.user, value.to_owned()),
        "identityfile" => args.identity_files.push(PathBuf::from(value)),
        "proxyjump" => {
            if args.jump.is_empty() && value != "none" {
                args.jump = value.split(',').map(parse_hop).collect::<Result<_, _>>()?;
            }
        }
        "stricthostkeychecking" => {
            let s = match value.to_ascii_lowercase().as_str() {
                "yes" | "ask" => Strictness::Strict,
                "no" | "off" | "accept-new" => Strictness::AcceptNew,
                _ => return Err(invalid(key, value)),
            };
            set_once(&mut args.strict, s);
        }
        "userknownhostsfile" => {
            if args.known_hosts.is_empty() {
                args.known_hosts = value.split_whitespace().map(PathBuf::from).collect();
            }
        }
        "serveraliveinterval" => set_once(&mut args.alive_interval, parse_seconds(key, value)?),
        "connecttimeout" => set_once(&mut args.connect_timeout, parse_seconds(key, value)?),
        "batchmode" => match value.to_ascii_lowercase().as_str() {
            "yes" | "no" => {}
            _ => return Err(invalid(key, value)),
        },
        _ => return Err(SshArgsError::UnsupportedOption(key.to_owned())),
    }
    Ok(())
}

/// Parses R's `ssh_args` (already split into words).
pub fn parse_ssh_args<S: AsRef<str>>(words: &[S]) -> Result<SshArgs, SshArgsError> {
    let mut args = SshArgs::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_ref();
        i += 1;
        let Some(flag) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(SshArgsError::UnexpectedArgument(word.to_owned()));
        };
        let mut chars = flag.chars();
        let letter = chars.next().unwrap_or('-');
        let glued = chars.as_str();
        if !matches!(letter, 'J' | 'p' | 'i' | 'l' | 'o') {
            return Err(SshArgsError::UnsupportedFlag(format!("-{letter}")));
        }
        let value = if glued.is_empty() {
            let v = words
                .get(i)
                .ok_or_else(|| SshArgsError::MissingValue(format!("-{letter}")))?;
            i += 1;
            v.as_ref()
        } else {
            glued
        };
        match letter {
            'J' => apply_option(&mut args, &format!("ProxyJump={value}"))?,
            'p' => set_once(&mut args.port, parse_port("-p", value)?),
            'i' => args.identity_files.push(PathBuf::from(value)),
            'l' => set_once(&mut args.user, value.to_owned()),
            _ => apply_option(&mut args, value)?,
        }
    }
    Ok(args)
}

/// Splits an `ssh_args` string the way a shell would for simple quoting (`'…'`, `"…"`,
/// whitespace), for callers that get one string from R.
pub fn split_words(line: &str) -> Result<Vec<String>, SshArgsError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid("ssh_args", line));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn r_style_args() {
        let a = parse_ssh_args(&["-J", "somehost"]).unwrap();
        assert_eq!(
            a.jump,
            [Hop {
                user: None,
                host: "somehost".into(),
                port: 22
            }]
        );
        let a = parse_ssh_args(&split_words("-p 2222 -i ~/k -l bob -o 'StrictHostKeyChecking accept-new' -oUserKnownHostsFile=/tmp/kh -J a@j1:2200,[::1]:22").unwrap()).unwrap();
        assert_eq!(a.port, Some(2222));
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert_eq!(a.identity_files, [PathBuf::from("~/k")]);
        assert_eq!(a.strict, Some(Strictness::AcceptNew));
        assert_eq!(a.known_hosts, [PathBuf::from("/tmp/kh")]);
        assert_eq!(a.jump.len(), 2);
        assert_eq!(
            a.jump[0],
            Hop {
                user: Some("a".into()),
                host: "j1".into(),
                port: 2200
            }
        );
        assert_eq!(a.jump[1].host, "::1");
    }

    #[test]
    fn first_value_wins() {
        let a = parse_ssh_args(&["-p2200", "-o", "Port=2300", "-o", "User=x", "-l", "y"]).unwrap();
        assert_eq!(a.port, Some(2200));
        assert_eq!(a.user.as_deref(), Some("x"));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            parse_ssh_args(&["-v"]),
            Err(SshArgsError::UnsupportedFlag("-v".into()))
        );
        assert_eq!(
            parse_ssh_args(&["-p"]),
            Err(SshArgsError::MissingValue("-p".into()))
        );
        assert!(matches!(
            parse_ssh_args(&["-p", "0"]),
            Err(SshArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse_ssh_args(&["-o", "ProxyCommand=nc %h %p"]),
            Err(SshArgsError::UnsupportedOption(_))
        ));
        assert!(matches!(
            parse_ssh_args(&["host"]),
            Err(SshArgsError::UnexpectedArgument(_))
        ));
        assert!(parse_hop("@h").is_err());
        assert!(parse_hop("h:99999").is_err());
        assert!(split_words("-J 'x").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(words in proptest::collection::vec(".{0,12}", 0..6), line in ".{0,40}") {
            let _ = parse_ssh_args(&words);
            let _ = split_words(&line);
            let _ = parse_hop(&line);
        }
    }
}
