//! The `pipe` command line: topic and access list checked so the server's tokeniser sees
//! exactly one topic and one access list.

use super::error::BoardError;

/// Options of `pipe` when opening a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipeOptions {
    /// `-a`: users or `SHA256:` fingerprints allowed in (when this session creates it).
    pub access: Vec<String>,
    /// `-r`: also receive own lines.
    pub replay: bool,
    /// `-p`: public namespace.
    pub public: bool,
}

fn check_word(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '+' | '=')
        })
}

/// The `pipe` command line for `topic` (validated so the server's tokeniser sees exactly
/// one topic and one access list).
pub fn pipe_command(topic: &str, options: &PipeOptions) -> Result<String, BoardError> {
    if !check_word(topic) || topic.contains(['=', ':', '+']) {
        return Err(BoardError::InvalidTopic(topic.to_owned()));
    }
    let mut command = format!("pipe {topic}");
    if !options.access.is_empty() {
        if let Some(bad) = options.access.iter().find(|a| !check_word(a)) {
            return Err(BoardError::InvalidAccess(bad.clone()));
        }
        command.push_str(" -a ");
        command.push_str(&options.access.join(","));
    }
    if options.replay {
        command.push_str(" -r");
    }
    if options.public {
        command.push_str(" -p");
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_commands_are_validated() {
        assert_eq!(
            pipe_command("alice/p2p", &PipeOptions::default()).unwrap(),
            "pipe alice/p2p"
        );
        let opts = PipeOptions {
            access: vec!["bob".into(), "SHA256:abc+/=".into()],
            replay: true,
            public: true,
        };
        assert_eq!(
            pipe_command("p2p", &opts).unwrap(),
            "pipe p2p -a bob,SHA256:abc+/= -r -p"
        );
        for bad in ["", "-a", "a b", "x'y", "a\"b", "a\nb"] {
            assert!(
                matches!(
                    pipe_command(bad, &PipeOptions::default()),
                    Err(BoardError::InvalidTopic(_))
                ),
                "{bad:?}"
            );
        }
        let opts = PipeOptions {
            access: vec!["bob,carol".into()],
            ..Default::default()
        };
        assert!(matches!(
            pipe_command("p2p", &opts),
            Err(BoardError::InvalidAccess(_))
        ));
    }
}
