//! The hub's user registry: which SSH key belongs to which username
//! (docs/pico-compat.md §8).
//!
//! Persisted in the state directory as two plain-text files an admin can edit (mode 0600,
//! see [`crate::statedir`]):
//! - `users`: one `username key-type base64 [comment]` line per key (a user may have several
//!   keys; `#` lines and blank lines are ignored). The comment is the key's name, shown in
//!   client IDs as `alice-laptop@...`.
//! - `accounts`: one `username id created` line per user (UUID, RFC 3339 time), for `user`.
//!   A user listed in `users` without an account line gets one on load.
//!
//! A key that is not registered is the anonymous user `public`, as on pico.sh. A key listed
//! under two names is also anonymous (upstream's `ErrMultiplePublicKeys`). Parsing is pure
//! ([`parse_users`], [`parse_accounts`]); only [`Registry::open`] and
//! [`Registry::register`] touch the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use russh::keys::PublicKey;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Names pico.sh refuses at registration (docs/pico-compat.md §8.3); `public` is the
/// anonymous namespace.
pub const DENY_LIST: &[&str] = &[
    "admin",
    "abuse",
    "cgi",
    "ops",
    "help",
    "spec",
    "root",
    "new",
    "create",
    "www",
    "public",
    "global",
    "g",
    "localhost",
    "ams",
    "ash",
    "nue",
];

/// Why a username is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsernameError {
    /// Not 1 to 50 ASCII letters and digits (p2p-proto's rule, pico.sh's).
    #[error(transparent)]
    Syntax(#[from] p2p_proto::id::IdError),
    /// Reserved.
    #[error("username {0:?} is reserved")]
    Reserved(String),
}

/// Checks a username (`^[a-zA-Z0-9]{1,50}$`, not on the deny-list) and lower-cases it.
pub fn validate_username(name: &str) -> Result<String, UsernameError> {
    p2p_proto::id::check_username(name)?;
    let lower = name.to_ascii_lowercase();
    if DENY_LIST.contains(&lower.as_str()) {
        return Err(UsernameError::Reserved(lower));
    }
    Ok(lower)
}

/// Errors reading or writing the registry.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("{file} line {line}: {reason}")]
    Parse {
        /// `users` or `accounts`.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A key could not be written in OpenSSH format.
    #[error("cannot encode public key: {0}")]
    Encode(String),
    /// The name is taken (by another key).
    #[error("username {0:?} is already registered")]
    Taken(String),
    /// The name is not valid.
    #[error(transparent)]
    Username(#[from] UsernameError),
}

/// One `users` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Owner.
    pub user: String,
    /// The key (comment cleared; the comment is `name`).
    pub key: PublicKey,
    /// The key's name (the comment), may be empty.
    pub name: String,
}

/// One `accounts` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Username.
    pub name: String,
    /// Account id.
    pub id: uuid::Uuid,
    /// Creation time (UTC).
    pub created: OffsetDateTime,
}

impl Account {
    fn new(name: String) -> Account {
        Account {
            name,
            id: uuid::Uuid::new_v4(),
            created: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// `created` as RFC 3339, as `ssh pico.sh user` prints it.
    pub fn created_rfc3339(&self) -> String {
        self.created
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.created.unix_timestamp().to_string())
    }

    fn line(&self) -> String {
        format!("{} {} {}\n", self.name, self.id, self.created_rfc3339())
    }
}

fn parse_err(file: &'static str, line: usize, reason: impl Into<String>) -> RegistryError {
    RegistryError::Parse {
        file,
        line,
        reason: reason.into(),
    }
}

fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Parses the `users` file.
pub fn parse_users(text: &str) -> Result<Vec<KeyEntry>, RegistryError> {
    content_lines(text)
        .map(|(n, line)| {
            let (user, key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| parse_err("users", n, "expected `username key-type base64`"))?;
            let user = validate_username(user)?;
            let mut key = PublicKey::from_openssh(key.trim())
                .map_err(|e| parse_err("users", n, format!("bad public key: {e}")))?;
            let name = AsRef::<str>::as_ref(key.comment()).to_owned();
            key.set_comment("");
            Ok(KeyEntry { user, key, name })
        })
        .collect()
}

/// Parses the `accounts` file.
pub fn parse_accounts(text: &str) -> Result<Vec<Account>, RegistryError> {
    content_lines(text)
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, id, created] = fields[..] else {
                return Err(parse_err("accounts", n, "expected `username id created`"));
            };
            Ok(Account {
                name: validate_username(name)?,
                id: id
                    .parse()
                    .map_err(|e| parse_err("accounts", n, format!("bad id: {e}")))?,
                created: OffsetDateTime::parse(created, &Rfc3339)
                    .map_err(|e| parse_err("accounts", n, format!("bad time: {e}")))?,
            })
        })
        .collect()
}

/// Who a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Username.
    pub user: String,
    /// The key's name (comment), may be empty.
    pub key_name: String,
}

/// The registry, loaded in memory, written through on change.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    keys: Vec<KeyEntry>,
    accounts: HashMap<String, Account>,
}

fn read_optional(path: &Path) -> Result<String, RegistryError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(RegistryError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn append(path: &Path, text: &str) -> Result<(), RegistryError> {
    crate::statedir::append_private(path, text.as_bytes()).map_err(|source| RegistryError::Io {
        path: path.to_owned(),
        source,
    })
}

impl Registry {
    /// Loads `users` and `accounts` from `dir` (missing files are empty), creating account
    /// lines for users that have none.
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        for file in ["users", "accounts"] {
            let path = dir.join(file);
            crate::statedir::tighten(&path, crate::statedir::FILE_MODE)
                .map_err(|source| RegistryError::Io { path, source })?;
        }
        let keys = parse_users(&read_optional(&dir.join("users"))?)?;
        let mut accounts: HashMap<String, Account> =
            parse_accounts(&read_optional(&dir.join("accounts"))?)?
                .into_iter()
                .map(|a| (a.name.clone(), a))
                .collect();
        let mut missing = String::new();
        for entry in &keys {
            if !accounts.contains_key(&entry.user) {
                let account = Account::new(entry.user.clone());
                missing.push_str(&account.line());
                accounts.insert(entry.user.clone(), account);
            }
        }
        if !missing.is_empty() {
            append(&dir.join("accounts"), &missing)?;
        }
        Ok(Registry {
            dir: dir.to_owned(),
            keys,
            accounts,
        })
    }

    /// The user a key belongs to; `None` (anonymous) if unknown or listed under two names.
    pub fn lookup(&self, key: &PublicKey) -> Option<Identity> {
        let mut found = self
            .keys
            .iter()
            .filter(|e| e.key.key_data() == key.key_data());
        let first = found.next()?;
        if found.any(|e| e.user != first.user) {
            return None;
        }
        Some(Identity {
            user: first.user.clone(),
            key_name: first.name.clone(),
        })
    }

    /// The account record of `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Registers `key` as a new user `name` (signup) and persists it. Fails if the name is
    /// invalid or already has an account.
    pub fn register(&mut self, name: &str, key: &PublicKey) -> Result<Identity, RegistryError> {
        let user = validate_username(name)?;
        if self.accounts.contains_key(&user) {
            return Err(RegistryError::Taken(user));
        }
        let mut key = key.clone();
        let key_name = AsRef::<str>::as_ref(key.comment()).to_owned();
        key.set_comment("");
        let key_text = key
            .to_openssh()
            .map_err(|e| RegistryError::Encode(e.to_string()))?;
        let account = Account::new(user.clone());
        append(&self.dir.join("accounts"), &account.line())?;
        append(&self.dir.join("users"), &format!("{user} {key_text}\n"))?;
        self.accounts.insert(user.clone(), account);
        self.keys.push(KeyEntry {
            user: user.clone(),
            key,
            name: key_name.clone(),
        });
        Ok(Identity { user, key_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    #[test]
    fn usernames() {
        assert_eq!(validate_username("Alice"), Ok("alice".into()));
        assert!(matches!(
            validate_username("public"),
            Err(UsernameError::Reserved(_))
        ));
        assert!(matches!(
            validate_username("a-b"),
            Err(UsernameError::Syntax(_))
        ));
        assert!(matches!(
            validate_username(""),
            Err(UsernameError::Syntax(_))
        ));
        assert!(validate_username(&"a".repeat(51)).is_err());
    }

    #[test]
    fn users_file_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users"),
            format!("# comment\nalice {KEY_A} alice-laptop\n\nbob {KEY_B}\ncarol {KEY_B}\n"),
        )
        .unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        assert_eq!(
            reg.lookup(&a),
            Some(Identity {
                user: "alice".into(),
                key_name: "alice-laptop".into()
            })
        );
        // Key B is listed for two users: anonymous.
        assert_eq!(reg.lookup(&PublicKey::from_openssh(KEY_B).unwrap()), None);
        // Accounts were created and persisted, so ids survive a restart.
        let id = reg.account("alice").unwrap().id;
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(again.account("alice").unwrap().id, id);
    }

    #[test]
    fn signup_registers_free_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        let b = PublicKey::from_openssh(KEY_B).unwrap();
        assert_eq!(reg.register("Alice", &a).unwrap().user, "alice");
        assert!(matches!(
            reg.register("alice", &b),
            Err(RegistryError::Taken(_))
        ));
        assert!(matches!(
            reg.register("root", &b),
            Err(RegistryError::Username(_))
        ));
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(again.lookup(&a).unwrap().user, "alice");
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert!(matches!(
            parse_users("alice"),
            Err(RegistryError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            parse_users("alice ssh-ed25519 !!"),
            Err(RegistryError::Parse { .. })
        ));
        assert!(matches!(
            parse_users(&format!("a-b {KEY_A}")),
            Err(RegistryError::Username(_))
        ));
        assert!(matches!(
            parse_accounts("alice x y"),
            Err(RegistryError::Parse { .. })
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,200}") {
            let _ = parse_users(&s);
            let _ = parse_accounts(&s);
        }
    }
}
