//! `STATE/clusters`: the access lists of registered owners, so a restarted hub serves the
//! same clusters to whoever reconnects first (see [`super::topic`] for why they persist).
//!
//! One line per topic, an admin may read and edit it while the hub is stopped (removing a
//! line retires the topic's list):
//!
//! ```text
//! # channel owner access-list
//! alice/p2p alice bob,carol,SHA256:AbC...
//! ```
//!
//! The server rewrites the whole file (atomically, mode 0600) whenever a list is created or
//! replaced. Parsing is pure ([`parse_clusters`], [`format_clusters`]).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::registry::validate_username;
use super::topic::{PUBLIC_NAMESPACE, PersistedAcl};

/// File name inside the state directory.
pub const CLUSTERS_FILE: &str = "clusters";

/// Why `clusters` could not be read or written.
#[derive(Debug, Error)]
pub enum ClustersError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("clusters line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

fn valid_entry(entry: &str) -> bool {
    !entry.is_empty() && !entry.contains(|c: char| c == ',' || c.is_whitespace())
}

/// Parses the `clusters` file (`#` lines and blank lines are ignored).
pub fn parse_clusters(text: &str) -> Result<Vec<PersistedAcl>, ClustersError> {
    let err = |line, reason: &str| ClustersError::Parse {
        line,
        reason: reason.to_owned(),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [channel, owner, list] = fields[..] else {
                return Err(err(n, "expected `channel owner user,user,...`"));
            };
            let owner = validate_username(owner).map_err(|e| err(n, &e.to_string()))?;
            let namespace = channel.split_once('/').map(|(ns, _)| ns);
            if !(namespace == Some(owner.as_str()) || namespace == Some(PUBLIC_NAMESPACE))
                || channel.ends_with('/')
            {
                return Err(err(n, "the channel must be `owner/name` or `public/name`"));
            }
            let list: Vec<String> = list.split(',').map(str::to_owned).collect();
            if !list.iter().all(|e| valid_entry(e)) {
                return Err(err(n, "empty entry in the access list"));
            }
            Ok((channel.to_owned(), owner, list))
        })
        .collect()
}

/// The `clusters` file for `entries`.
pub fn format_clusters(entries: &[PersistedAcl]) -> String {
    let mut out = String::from("# channel owner access-list (written by the hub)\n");
    for (channel, owner, list) in entries {
        out.push_str(&format!("{channel} {owner} {}\n", list.join(",")));
    }
    out
}

/// Loads `dir/clusters` (missing: none).
pub fn load(dir: &Path) -> Result<Vec<PersistedAcl>, ClustersError> {
    let path = dir.join(CLUSTERS_FILE);
    let io = |source| ClustersError::Io {
        path: path.clone(),
        source,
    };
    crate::statedir::tighten(&path, crate::statedir::FILE_MODE).map_err(io)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_clusters(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(e)),
    }
}

/// Rewrites `dir/clusters` with `entries`.
pub fn save(dir: &Path, entries: &[PersistedAcl]) -> Result<(), ClustersError> {
    let path = dir.join(CLUSTERS_FILE);
    crate::statedir::replace_private(&path, format_clusters(entries).as_bytes())
        .map_err(|source| ClustersError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acl(channel: &str, owner: &str, list: &[&str]) -> PersistedAcl {
        (
            channel.to_owned(),
            owner.to_owned(),
            list.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            acl("alice/p2p", "alice", &["bob", "SHA256:abc+/="]),
            acl("public/news", "carol", &["dave"]),
        ];
        save(dir.path(), &entries).unwrap();
        assert_eq!(load(dir.path()).unwrap(), entries);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CLUSTERS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        for bad in [
            "alice/p2p alice",
            "bob/p2p alice bob",
            "alice/ alice bob",
            "alice/p2p alice bob,,carol",
            "alice/p2p root bob",
        ] {
            assert!(
                matches!(
                    parse_clusters(bad),
                    Err(ClustersError::Parse { line: 1, .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse_clusters("# x\n\n").unwrap(), vec![]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = parse_clusters(&s);
        }
    }
}
