//! Reassembles board lines from the byte stream of a pico pipe.
//!
//! The pipe delivers arbitrary chunks (up to 32 KiB upstream) whose boundaries have nothing
//! to do with lines: a line may arrive in many chunks and a chunk may hold many lines. The
//! framer buffers at most one partial line of [`MAX_LINE_LEN`] bytes (+1 for a CR); a longer line is
//! reported once as [`FramerError::LineTooLong`] and its remaining bytes are skipped up to
//! the next newline, so one garbage writer cannot make a reader buffer without bound or lose
//! the lines that follow.

use std::collections::VecDeque;

use bytes::BytesMut;
use thiserror::Error;

/// Longest board line accepted, newline excluded. Real lines are under 300 bytes; the slack
/// leaves room for sealed codes and new keys.
pub const MAX_LINE_LEN: usize = 8 * 1024;

/// A line the framer could not turn into text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramerError {
    /// The line grew past the framer's limit before its newline arrived.
    #[error("board line longer than {max} bytes; skipped up to the next newline")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// The line is not UTF-8 text (binary garbage on the board).
    #[error("board line is not valid UTF-8 ({len} bytes); skipped")]
    NotUtf8 {
        /// Its length.
        len: usize,
    },
}

/// Incremental line splitter: push chunks in, take lines out.
///
/// Lines come out without their `\n` (and without a `\r` before it, for writers that use
/// CRLF). Empty lines are returned too; deciding what a line means is the codec's job.
#[derive(Debug)]
pub struct LineFramer {
    max_line_len: usize,
    partial: BytesMut,
    /// Skipping the tail of an over-long line until its newline.
    discarding: bool,
    ready: VecDeque<Result<String, FramerError>>,
}

impl Default for LineFramer {
    fn default() -> Self {
        Self::new(MAX_LINE_LEN)
    }
}

impl LineFramer {
    /// A framer that accepts lines of at most `max_line_len` bytes.
    pub fn new(max_line_len: usize) -> Self {
        Self {
            max_line_len,
            partial: BytesMut::new(),
            discarding: false,
            ready: VecDeque::new(),
        }
    }

    /// Feeds the next chunk of the stream.
    pub fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.take_segment(&chunk[..end], true);
                    chunk = &chunk[end + 1..];
                }
                None => {
                    self.take_segment(chunk, false);
                    chunk = &[];
                }
            }
        }
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Result<String, FramerError>> {
        self.ready.pop_front()
    }

    /// Bytes of the line still waiting for its newline (at most the maximum line length + 1).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Ends the stream: a trailing line without newline is returned as a last line, as a
    /// reader of a closed pipe would want, rather than silently dropped.
    pub fn finish(&mut self) -> Option<Result<String, FramerError>> {
        if !self.discarding && !self.partial.is_empty() {
            let line = self.partial.split();
            self.ready.push_back(decode(&line));
        }
        self.discarding = false;
        self.ready.pop_front()
    }

    fn take_segment(&mut self, segment: &[u8], ends_line: bool) {
        if self.discarding {
            // The error for this line was already reported when it overflowed.
            self.discarding = !ends_line;
            return;
        }
        let too_long = if ends_line {
            trim_cr_len(&self.partial, segment) > self.max_line_len
        } else {
            // One byte of slack: it may be the `\r` of a CRLF whose `\n` is still on the way.
            self.partial.len() + segment.len() > self.max_line_len + 1
        };
        if too_long {
            self.partial.clear();
            self.ready.push_back(Err(FramerError::LineTooLong {
                max: self.max_line_len,
            }));
            self.discarding = !ends_line;
            return;
        }
        if ends_line && self.partial.is_empty() {
            // The whole line is in this chunk (the usual case): no copy into `partial`.
            self.ready.push_back(decode(segment));
            return;
        }
        self.partial.extend_from_slice(segment);
        if ends_line {
            let line = self.partial.split();
            self.ready.push_back(decode(&line));
        }
    }
}

/// Length of `partial + segment` once a trailing `\r` is dropped.
fn trim_cr_len(partial: &[u8], segment: &[u8]) -> usize {
    let len = partial.len() + segment.len();
    let last = segment.last().or(partial.last());
    if last == Some(&b'\r') { len - 1 } else { len }
}

fn decode(line: &[u8]) -> Result<String, FramerError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    std::str::from_utf8(line)
        .map(str::to_owned)
        .map_err(|_| FramerError::NotUtf8 { len: line.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(framer: &mut LineFramer) -> Vec<Result<String, FramerError>> {
        std::iter::from_fn(|| framer.next_line()).collect()
    }

    #[test]
    fn splits_lines_across_and_within_chunks() {
        let mut framer = LineFramer::default();
        framer.push(b"when=1,type=a\nwhen=2");
        framer.push(b",type=b\r\n\nwhen=3\n");
        assert_eq!(
            drain(&mut framer),
            vec![
                Ok("when=1,type=a".to_owned()),
                Ok("when=2,type=b".to_owned()),
                Ok(String::new()),
                Ok("when=3".to_owned()),
            ]
        );
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn over_long_line_is_reported_once_and_the_next_line_survives() {
        let mut framer = LineFramer::new(8);
        framer.push(b"0123456");
        framer.push(b"789abc");
        assert_eq!(framer.buffered(), 0, "the overflow is not kept");
        framer.push(b"def\nok\n");
        assert_eq!(
            drain(&mut framer),
            vec![
                Err(FramerError::LineTooLong { max: 8 }),
                Ok("ok".to_owned())
            ]
        );
    }

    #[test]
    fn line_of_exactly_the_maximum_is_accepted_with_or_without_cr() {
        let mut framer = LineFramer::new(4);
        framer.push(b"abcd\nefgh\r\nijklm\n");
        assert_eq!(
            drain(&mut framer),
            vec![
                Ok("abcd".to_owned()),
                Ok("efgh".to_owned()),
                Err(FramerError::LineTooLong { max: 4 }),
            ]
        );
    }

    #[test]
    fn binary_garbage_is_a_typed_error_and_recovers() {
        let mut framer = LineFramer::default();
        framer.push(&[0xff, 0xfe, 0x00, b'\n']);
        framer.push(b"when=1\n");
        assert_eq!(
            drain(&mut framer),
            vec![
                Err(FramerError::NotUtf8 { len: 3 }),
                Ok("when=1".to_owned())
            ]
        );
    }

    #[test]
    fn finish_returns_the_unterminated_last_line() {
        let mut framer = LineFramer::default();
        framer.push(b"a\nb");
        assert_eq!(framer.next_line(), Some(Ok("a".to_owned())));
        assert_eq!(framer.next_line(), None);
        assert_eq!(framer.finish(), Some(Ok("b".to_owned())));
        assert_eq!(framer.finish(), None);
    }

    proptest! {
        /// However the stream is cut into chunks, the same lines come out.
        #[test]
        fn chunking_does_not_change_lines(
            lines in proptest::collection::vec("[a-z=,0-9]{0,20}", 0..20),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut framer = LineFramer::default();
            let mut start = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                framer.push(&stream[start..cut]);
                start = cut;
            }
            let got: Vec<String> = drain(&mut framer).into_iter().map(Result::unwrap).collect();
            prop_assert_eq!(got, lines);
        }

        /// Arbitrary bytes never panic and never grow the buffer past the limit.
        #[test]
        fn arbitrary_bytes_stay_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
            let mut framer = LineFramer::new(64);
            for chunk in &chunks {
                framer.push(chunk);
                prop_assert!(framer.buffered() <= 65);
                for line in drain(&mut framer).into_iter().flatten() {
                    prop_assert!(line.len() <= 64);
                    prop_assert!(!line.contains('\n'));
                }
            }
        }
    }
}
