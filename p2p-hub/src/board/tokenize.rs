//! Exec-string tokenising, the way pipe.pico.sh splits `ssh host <command>`
//! (docs/pico-compat.md §3.1).
//!
//! Upstream uses `go-andiamo/splitter` with a single-space separator, double and single quotes
//! as enclosures and `StripQuotes`: a space inside quotes does not split, the quote characters
//! are removed, and empty parts (two spaces in a row) are kept. Inside one kind of quote the
//! other kind is an ordinary character.
//!
//! Intended-rule deviation: upstream ignores the splitter's error for unbalanced quotes and
//! then prints `help` as if no command was given. Here an unbalanced quote is a typed error,
//! so the user learns why their command did nothing.

use thiserror::Error;

/// Why an exec string could not be split.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenizeError {
    /// A `"` or `'` was opened and never closed.
    #[error("unbalanced {quote} quote in command at byte {position}")]
    UnbalancedQuote {
        /// The quote character left open.
        quote: char,
        /// Byte offset where it was opened.
        position: usize,
    },
}

/// Splits an exec string into arguments on single spaces, honouring and stripping quotes.
///
/// An empty string yields no arguments (which the server answers with `help`).
pub fn tokenize(command: &str) -> Result<Vec<String>, TokenizeError> {
    if command.is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut open: Option<(char, usize)> = None;
    for (position, c) in command.char_indices() {
        match open {
            Some((quote, _)) if c == quote => open = None,
            Some(_) => current.push(c),
            None if c == '"' || c == '\'' => open = Some((c, position)),
            None if c == ' ' => parts.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    if let Some((quote, position)) = open {
        return Err(TokenizeError::UnbalancedQuote { quote, position });
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> Vec<String> {
        tokenize(s).expect("balanced")
    }

    #[test]
    fn splits_on_single_spaces_and_keeps_empties() {
        assert_eq!(ok("pipe p2p -a bob"), ["pipe", "p2p", "-a", "bob"]);
        assert_eq!(ok("pub  x"), ["pub", "", "x"]);
        assert_eq!(ok(""), Vec::<String>::new());
    }

    #[test]
    fn quotes_group_and_are_stripped() {
        assert_eq!(
            ok(r#"pub "a b" -a 'bob, carol'"#),
            ["pub", "a b", "-a", "bob, carol"]
        );
        assert_eq!(
            ok(r#"pub it's"#.replace('\'', "\"'\"").as_str()),
            ["pub", "it's"]
        );
        assert_eq!(ok(r#"x a"b c"d"#), ["x", "ab cd"]);
    }

    #[test]
    fn unbalanced_quote_is_an_error() {
        assert_eq!(
            tokenize("pub \"x"),
            Err(TokenizeError::UnbalancedQuote {
                quote: '"',
                position: 4
            })
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_roundtrips_plain_words(s in ".*") {
            let _ = tokenize(&s);
        }

        #[test]
        fn plain_words_roundtrip(words in proptest::collection::vec("[a-z0-9/,-]{1,8}", 1..6)) {
            let line = words.join(" ");
            prop_assert_eq!(tokenize(&line).expect("no quotes"), words);
        }
    }
}
