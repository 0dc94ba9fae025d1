//! The bytes of scp's protocol: record lines as its sink reads them, and replies as its
//! `response()` reads them.

/// The longest record line scp reads (its 2048-byte buffer, less the NUL).
pub(super) const MAX_LINE: usize = 2047;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reply {
    /// `\0`.
    Ok,
    /// An error line: the file or directory is skipped.
    Error,
    /// `\x02` and a line: the reader exits.
    Fatal,
}

/// Reads replies as scp's `response()` does: `\0`, or a byte and a message up to a newline or
/// scp's buffer's end.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReplyReader {
    /// Inside a message: its reply, and how many more bytes it may take.
    message: Option<(Reply, usize)>,
}

impl ReplyReader {
    /// Takes bytes from the front of `input` until a reply is whole.
    pub(super) fn read(&mut self, input: &mut &[u8]) -> Option<Reply> {
        loop {
            match self.message {
                None => {
                    let (&first, rest) = input.split_first()?;
                    *input = rest;
                    self.message = Some(match first {
                        0 => return Some(Reply::Ok),
                        1 => (Reply::Error, MAX_LINE),
                        2 => (Reply::Fatal, MAX_LINE),
                        // Any other byte starts an error message it is part of.
                        _ => (Reply::Error, MAX_LINE - 1),
                    });
                }
                Some((reply, left)) => {
                    let limit = left.min(input.len());
                    if let Some(at) = input[..limit].iter().position(|&b| b == b'\n') {
                        *input = &input[at + 1..];
                        self.message = None;
                        return Some(reply);
                    }
                    *input = &input[limit..];
                    if left == limit {
                        self.message = None;
                        return Some(reply);
                    }
                    self.message = Some((reply, left - limit));
                    return None;
                }
            }
        }
    }
}

/// A record line from the front of `input`, as scp's sink reads one: through a newline, or
/// [`MAX_LINE`] bytes. `None` (taking nothing) until it is whole.
pub(super) fn take_line<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let limit = input.len().min(MAX_LINE);
    // The first byte is read on its own; the newline is looked for after it.
    let end = match input.get(1..limit)?.iter().position(|&b| b == b'\n') {
        Some(at) => at + 2,
        None if limit == MAX_LINE => MAX_LINE,
        None => return None,
    };
    let (line, rest) = input.split_at(end);
    *input = rest;
    Some(line)
}

/// The size and name of a `C` or `D` record (`C0644 12 name`), checked as scp's sink checks
/// them: four octal digits, a size that fits `off_t`, a name that is a single path part.
pub(super) fn parse_entry(text: &[u8]) -> Option<(u64, String)> {
    let mode = text.get(1..5)?;
    if !mode.iter().all(|b| (b'0'..=b'7').contains(b)) || text.get(5) != Some(&b' ') {
        return None;
    }
    let rest = &text[6..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b' ') {
        return None;
    }
    let size: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    if size > i64::MAX as u64 {
        return None;
    }
    let name = &rest[digits + 1..];
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return None;
    }
    Some((size, String::from_utf8_lossy(name).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_scp_reads_them() {
        let mut reader = ReplyReader::default();
        let mut input: &[u8] = b"\0\x01bad\nXworse\n\x02fatal";
        assert_eq!(reader.read(&mut input), Some(Reply::Ok));
        assert_eq!(reader.read(&mut input), Some(Reply::Error));
        assert_eq!(reader.read(&mut input), Some(Reply::Error));
        assert_eq!(reader.read(&mut input), None);
        let mut rest: &[u8] = b"\n";
        assert_eq!(reader.read(&mut rest), Some(Reply::Fatal));
        // A message with no newline ends where scp's buffer does.
        let long = [vec![1], vec![b'x'; MAX_LINE], vec![0]].concat();
        let mut input: &[u8] = &long;
        assert_eq!(reader.read(&mut input), Some(Reply::Error));
        assert_eq!(reader.read(&mut input), Some(Reply::Ok));
    }

    #[test]
    fn lines_end_at_a_newline_or_where_scp_s_buffer_does() {
        let mut input: &[u8] = b"C0644 1 a\nrest";
        assert_eq!(take_line(&mut input), Some(&b"C0644 1 a\n"[..]));
        assert_eq!(take_line(&mut input), None, "no newline yet");
        assert_eq!(input, b"rest");
        let long = vec![b'x'; MAX_LINE + 5];
        let mut input: &[u8] = &long;
        assert_eq!(take_line(&mut input).map(<[u8]>::len), Some(MAX_LINE));
        assert_eq!(input.len(), 5);
    }

    #[test]
    fn entries_are_checked_as_scp_checks_them() {
        assert_eq!(parse_entry(b"C0644 12 name"), Some((12, "name".to_owned())));
        assert_eq!(parse_entry(b"D0755 0 dir"), Some((0, "dir".to_owned())));
        for bad in [
            &b"C644 1 a"[..],
            b"C0648 1 a",
            b"C0644 a b",
            b"C0644 1a b",
            b"C0644 1 ",
            b"C0644 1 a/b",
            b"C0644 1 .",
            b"C0644 1 ..",
            b"C0644 9223372036854775808 a",
        ] {
            assert_eq!(parse_entry(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
