//! The `user` command's output: who the board thinks this key is.

use super::error::BoardError;

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
    fn user_output() {
        let u = parse_user("alice\n0f0e\n2026-01-01T00:00:00Z\n\r\n").unwrap();
        assert_eq!((u.name.as_str(), u.plus), ("alice", None));
        assert!(matches!(
            parse_user("alice\n"),
            Err(BoardError::UserOutput(_))
        ));
    }
}
