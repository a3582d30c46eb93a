//! Go `flag` package semantics (`ContinueOnError`) for the pub/sub/pipe flag sets
//! (docs/pico-compat.md §3.3).
//!
//! Rules reproduced: `-x` and `--x` both work; values as `-x=v` or `-x v` (bools only with
//! `=`); parsing stops at the first non-flag argument or after `--`; `-h`/`-help` request the
//! usage; error texts are Go's, and the usage text is Go's `PrintDefaults` layout.

use std::collections::BTreeMap;

use thiserror::Error;

use super::duration::GoDuration;

/// The type of a flag, which decides how its value is parsed and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `-x`, `-x=true`, `-x=false`.
    Bool,
    /// Free text.
    String,
    /// A Go duration such as `30s`.
    Duration,
}

/// One flag of a command's flag set.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Name without dashes.
    pub name: &'static str,
    /// Value type.
    pub kind: FlagKind,
    /// Default as Go would print it (`""`, `false`, `720h0m0s`).
    pub default: &'static str,
    /// One-line help.
    pub usage: &'static str,
}

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// A bool flag.
    Bool(bool),
    /// A string flag.
    String(String),
    /// A duration flag.
    Duration(GoDuration),
}

/// Why a command line's flags were rejected. Texts are the ones Go's `flag` prints.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlagError {
    /// `-h` or `-help` (Go's `ErrHelp`).
    #[error("flag: help requested")]
    Help,
    /// A flag the command does not define.
    #[error("flag provided but not defined: -{0}")]
    NotDefined(String),
    /// `---x`, `-=x` and the like.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// A non-bool flag at the end of the line without a value.
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    /// A bool flag with a value that is not a Go bool.
    #[error("invalid boolean value {value:?} for -{flag}: parse error")]
    InvalidBool {
        /// Flag name.
        flag: String,
        /// Value as typed.
        value: String,
    },
    /// A value the flag's type (or allowed set) rejects.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// Flag name.
        flag: String,
        /// Value as typed.
        value: String,
        /// Why.
        reason: String,
    },
}

/// Flags after parsing, plus the positional arguments left after the last flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFlags {
    values: BTreeMap<&'static str, FlagValue>,
    /// Arguments after the flags (Go's `Args()`).
    pub rest: Vec<String>,
}

impl ParsedFlags {
    /// A bool flag's value (its default if not given).
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(FlagValue::Bool(true)))
    }

    /// A string flag's value.
    pub fn string(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(FlagValue::String(s)) => s,
            _ => "",
        }
    }

    /// A duration flag's value.
    pub fn duration(&self, name: &str) -> GoDuration {
        match self.values.get(name) {
            Some(FlagValue::Duration(d)) => *d,
            _ => GoDuration(0),
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_value(spec: &FlagSpec, value: &str) -> Result<FlagValue, FlagError> {
    match spec.kind {
        FlagKind::Bool => {
            parse_bool(value)
                .map(FlagValue::Bool)
                .ok_or_else(|| FlagError::InvalidBool {
                    flag: spec.name.to_owned(),
                    value: value.to_owned(),
                })
        }
        FlagKind::String => Ok(FlagValue::String(value.to_owned())),
        // Go's durationValue.Set reports only "parse error", whatever the cause.
        FlagKind::Duration => GoDuration::parse(value)
            .map(FlagValue::Duration)
            .map_err(|_| FlagError::InvalidValue {
                flag: spec.name.to_owned(),
                value: value.to_owned(),
                reason: "parse error".to_owned(),
            }),
    }
}

/// Parses `args` against `specs` with Go `flag` rules.
pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<ParsedFlags, FlagError> {
    let mut values = BTreeMap::new();
    for spec in specs {
        let default = match spec.kind {
            FlagKind::Bool => FlagValue::Bool(spec.default == "true"),
            FlagKind::String => FlagValue::String(spec.default.to_owned()),
            FlagKind::Duration => {
                FlagValue::Duration(GoDuration::parse(spec.default).unwrap_or(GoDuration(0)))
            }
        };
        values.insert(spec.name, default);
    }
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        let bytes = s.as_bytes();
        if bytes.len() < 2 || bytes[0] != b'-' {
            break;
        }
        let mut dashes = 1;
        if bytes[1] == b'-' {
            dashes = 2;
            if bytes.len() == 2 {
                i += 1;
                break;
            }
        }
        let name_part = &s[dashes..];
        if name_part.is_empty() || name_part.starts_with('-') || name_part.starts_with('=') {
            return Err(FlagError::BadSyntax(s.clone()));
        }
        i += 1;
        let (name, inline) = match name_part.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name_part, None),
        };
        let Some(spec) = specs.iter().find(|f| f.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::NotDefined(name.to_owned()));
        };
        let value = match (spec.kind, inline) {
            (FlagKind::Bool, None) => FlagValue::Bool(true),
            (_, Some(v)) => parse_value(spec, v)?,
            (_, None) => {
                let Some(v) = args.get(i) else {
                    return Err(FlagError::NeedsArgument(name.to_owned()));
                };
                i += 1;
                parse_value(spec, v)?
            }
        };
        values.insert(spec.name, value);
    }
    Ok(ParsedFlags {
        values,
        rest: args[i..].to_vec(),
    })
}

/// Go's `PrintDefaults` for `specs`, sorted by name as Go does.
pub fn print_defaults(specs: &[FlagSpec]) -> String {
    let mut sorted: Vec<&FlagSpec> = specs.iter().collect();
    sorted.sort_by_key(|f| f.name);
    let mut out = String::new();
    for f in sorted {
        let mut line = format!("  -{}", f.name);
        match f.kind {
            FlagKind::Bool => {}
            FlagKind::String => line.push_str(" string"),
            FlagKind::Duration => line.push_str(" duration"),
        }
        if line.len() <= 4 {
            line.push('\t');
        } else {
            line.push_str("\n    \t");
        }
        line.push_str(&f.usage.replace('\n', "\n    \t"));
        let zero = match f.kind {
            FlagKind::Bool => f.default == "false",
            FlagKind::String => f.default.is_empty(),
            FlagKind::Duration => f.default == "0s",
        };
        if !zero {
            match f.kind {
                FlagKind::String => line.push_str(&format!(" (default {:?})", f.default)),
                _ => line.push_str(&format!(" (default {})", f.default)),
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "a",
            kind: FlagKind::String,
            default: "",
            usage: "acl",
        },
        FlagSpec {
            name: "b",
            kind: FlagKind::Bool,
            default: "true",
            usage: "block",
        },
        FlagSpec {
            name: "p",
            kind: FlagKind::Bool,
            default: "false",
            usage: "public",
        },
        FlagSpec {
            name: "t",
            kind: FlagKind::Duration,
            default: "720h0m0s",
            usage: "timeout",
        },
    ];

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_flag_forms() {
        let p = parse(
            SPECS,
            &args(&["--a", "bob", "-p", "-b=false", "-t=5s", "x", "-p"]),
        )
        .unwrap();
        assert_eq!(p.string("a"), "bob");
        assert!(p.bool("p"));
        assert!(!p.bool("b"));
        assert_eq!(p.duration("t"), GoDuration(5_000_000_000));
        assert_eq!(p.rest, ["x", "-p"]);
        let p = parse(SPECS, &args(&["-a=c,d", "--", "-p"])).unwrap();
        assert_eq!(p.string("a"), "c,d");
        assert!(!p.bool("p"));
        assert_eq!(p.rest, ["-p"]);
        assert!(parse(SPECS, &args(&[])).unwrap().bool("b"));
        assert_eq!(parse(SPECS, &args(&["-", "x"])).unwrap().rest, ["-", "x"]);
    }

    #[test]
    fn go_flag_errors() {
        assert_eq!(
            parse(SPECS, &args(&["-x"])),
            Err(FlagError::NotDefined("x".into()))
        );
        assert_eq!(parse(SPECS, &args(&["-h"])), Err(FlagError::Help));
        assert_eq!(parse(SPECS, &args(&["--help"])), Err(FlagError::Help));
        assert_eq!(
            parse(SPECS, &args(&["-a"])),
            Err(FlagError::NeedsArgument("a".into()))
        );
        assert_eq!(
            parse(SPECS, &args(&["---a"])),
            Err(FlagError::BadSyntax("---a".into()))
        );
        assert_eq!(
            parse(SPECS, &args(&["-b=maybe"])).unwrap_err().to_string(),
            "invalid boolean value \"maybe\" for -b: parse error"
        );
        assert_eq!(
            parse(SPECS, &args(&["-t", "1d"])).unwrap_err().to_string(),
            "invalid value \"1d\" for flag -t: parse error"
        );
    }

    #[test]
    fn print_defaults_layout() {
        assert_eq!(
            print_defaults(SPECS),
            "  -a string\n    \tacl\n  -b\tblock (default true)\n  -p\tpublic\n  -t duration\n    \ttimeout (default 720h0m0s)\n"
        );
    }

    proptest! {
        #[test]
        fn never_panics(a in proptest::collection::vec(".{0,6}", 0..6)) {
            let _ = parse(SPECS, &a);
        }
    }
}
