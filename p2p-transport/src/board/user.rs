//! The `user` command's output: who the board thinks this key is, and which host to ask.

use super::error::BoardError;

/// The host that answers `user` for a board reached as `destination` (`host` or
/// `user@host`): pico.sh's main host for its pipe service (`pipe.pico.sh` -> `pico.sh`, the
/// way future.p2p 0.4.0's `pico_username()` derives it; pipe.pico.sh has no `user`
/// command), the board itself otherwise (a future-p2p hub serves both).
pub fn account_destination(destination: &str) -> String {
    let (login, host) = match destination.rsplit_once('@') {
        Some((login, host)) => (Some(login), host),
        None => (None, destination),
    };
    let host = host.strip_prefix("pipe.").unwrap_or(host);
    match login {
        Some(login) => format!("{login}@{host}"),
        None => host.to_owned(),
    }
}

/// `user` output: name, id, creation time, pico+ expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Username.
    pub name: String,
    /// Account id.
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// pico+ expiry, if any.
    pub plus: Option<String>,
}

/// Parses `name\nid\ncreated\nplus\r\n`.
pub fn parse_user(text: &str) -> Result<UserInfo, BoardError> {
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    let mut lines = body.split('\n').map(|l| l.trim_end_matches('\r'));
    let (Some(name), Some(id), Some(created)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(BoardError::UserOutput(text.to_owned()));
    };
    if name.is_empty() || id.is_empty() || created.is_empty() {
        return Err(BoardError::UserOutput(text.to_owned()));
    }
    let plus = lines.next().filter(|p| !p.is_empty()).map(str::to_owned);
    Ok(UserInfo {
        name: name.to_owned(),
        id: id.to_owned(),
        created: created.to_owned(),
        plus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_host_of_pipe_pico_sh_is_pico_sh() {
        assert_eq!(account_destination("pipe.pico.sh"), "pico.sh");
        assert_eq!(account_destination("me@pipe.pico.sh"), "me@pico.sh");
        assert_eq!(account_destination("127.0.0.1"), "127.0.0.1");
        assert_eq!(account_destination("hub.example.org"), "hub.example.org");
        assert_eq!(account_destination("pipeline.example"), "pipeline.example");
    }

    #[test]
    fn user_output() {
        let u = parse_user("alice\n0f0e\n2026-01-01T00:00:00Z\n\r\n").unwrap();
        assert_eq!((u.name.as_str(), u.plus), ("alice", None));
        assert!(matches!(
            parse_user("alice\n"),
            Err(BoardError::UserOutput(_))
        ));
    }
}
