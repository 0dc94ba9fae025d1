//! The hash chain of an event log: every line carries the SHA-256 of the previous line's link
//! and its own content, so a line changed, removed or inserted breaks every link after it.
//!
//! A line is a JSON object whose last member is `"chain"`: `{...,"chain":"<64 hex>"}`. Its
//! content is the line with that member cut off (`{...}`), byte for byte as written, so checking
//! needs no canonical JSON. The link of line `n` is `SHA-256(link(n-1) as hex || content(n))`,
//! starting from 64 zeros. The last link is the log's digest.

use sha2::{Digest, Sha256};

/// The link before the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const MEMBER: &str = ",\"chain\":\"";

/// Links lines as they are written.
#[derive(Debug, Clone)]
pub struct Chain {
    head: String,
    lines: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// A chain with no lines yet.
    pub fn new() -> Self {
        Self::resume(GENESIS.to_owned(), 0)
    }

    /// A chain continuing after `lines` lines whose last link is `head`.
    pub fn resume(head: String, lines: u64) -> Self {
        Self { head, lines }
    }

    /// Turns `content` (a JSON object, `{...}`, without a newline) into the line to write, with
    /// its link, ending in `\n`.
    pub fn link(&mut self, content: &[u8]) -> Vec<u8> {
        debug_assert!(content.ends_with(b"}"));
        self.head = next(&self.head, content);
        self.lines += 1;
        let body = &content[..content.len() - 1];
        let mut line = Vec::with_capacity(content.len() + MEMBER.len() + 68);
        line.extend_from_slice(body);
        if body != b"{" {
            line.extend_from_slice(MEMBER.as_bytes());
        } else {
            line.extend_from_slice(&MEMBER.as_bytes()[1..]);
        }
        line.extend_from_slice(self.head.as_bytes());
        line.extend_from_slice(b"\"}\n");
        line
    }

    /// The last link (the digest of everything so far).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Lines linked so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }
}

fn next(previous: &str, content: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(previous.as_bytes());
    hash.update(content);
    hex::encode(hash.finalize())
}

/// Where a log's chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A line has no link, or it is not the last member.
    #[error("line {line}: no `chain` member at its end")]
    Unlinked {
        /// 1-based line number.
        line: u64,
    },
    /// A line's link does not follow from the line before and its content.
    #[error("line {line}: the chain breaks here (the line or one before it was changed, removed or inserted)")]
    Broken {
        /// 1-based line number.
        line: u64,
    },
    /// The last line is cut short (a crash while writing it).
    #[error("line {line}: cut short (no newline at the end of the log)")]
    Truncated {
        /// 1-based line number.
        line: u64,
    },
}

/// Checks every link of a log; returns the digest and the number of lines.
pub fn verify(log: &[u8]) -> Result<(String, u64), ChainError> {
    let mut head = GENESIS.to_owned();
    let mut number = 0;
    let mut rest = log;
    while !rest.is_empty() {
        number += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(ChainError::Truncated { line: number });
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let (content, link) = split(line).ok_or(ChainError::Unlinked { line: number })?;
        let expected = next(&head, &content);
        if expected != link {
            return Err(ChainError::Broken { line: number });
        }
        head = expected;
    }
    Ok((head, number))
}

/// A line's content and link, if it ends with the chain member.
pub fn split(line: &[u8]) -> Option<(Vec<u8>, String)> {
    let tail_len = 64 + 2; // 64 hex digits, then `"}`
    if line.len() < tail_len || !line.ends_with(b"\"}") {
        return None;
    }
    let link = std::str::from_utf8(&line[line.len() - tail_len..line.len() - 2]).ok()?;
    if !link.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let before = &line[..line.len() - tail_len];
    let mut content = if let Some(body) = before.strip_suffix(MEMBER.as_bytes()) {
        body.to_vec()
    } else {
        before.strip_suffix(&MEMBER.as_bytes()[1..])?.to_vec()
    };
    content.push(b'}');
    Some((content, link.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> (Vec<u8>, String) {
        let mut chain = Chain::new();
        let mut out = Vec::new();
        for line in lines {
            out.extend(chain.link(line.as_bytes()));
        }
        (out, chain.head().to_owned())
    }

    #[test]
    fn a_log_as_written_verifies_to_its_digest() {
        let (out, head) = log(&[r#"{"seq":0}"#, "{}", r#"{"seq":2,"kind":"closed"}"#]);
        assert_eq!(verify(&out), Ok((head, 3)));
        let text = String::from_utf8(out).unwrap_or_default();
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or_default()).unwrap_or_default();
        assert_eq!(first["seq"], 0);
        assert_eq!(first["chain"].as_str().map(str::len), Some(64));
    }

    #[test]
    fn a_changed_removed_or_cut_line_is_found() {
        let (out, _) = log(&[r#"{"seq":0}"#, r#"{"seq":1}"#, r#"{"seq":2}"#]);
        let text = String::from_utf8(out.clone()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();

        let changed = text.replacen(r#""seq":1"#, r#""seq":7"#, 1);
        assert_eq!(
            verify(changed.as_bytes()),
            Err(ChainError::Broken { line: 2 })
        );

        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert_eq!(
            verify(removed.as_bytes()),
            Err(ChainError::Broken { line: 2 })
        );

        assert_eq!(
            verify(&out[..out.len() - 5]),
            Err(ChainError::Truncated { line: 3 })
        );
        let unlinked = format!("{}\n{{\"seq\":1}}\n", lines[0]);
        assert_eq!(
            verify(unlinked.as_bytes()),
            Err(ChainError::Unlinked { line: 2 })
        );
    }

    #[test]
    fn a_resumed_chain_continues_the_same_links() {
        let (whole, head) = log(&[r#"{"a":1}"#, r#"{"b":2}"#]);
        let (first, _) = log(&[r#"{"a":1}"#]);
        let (link, _) = verify(&first).unwrap_or_default();
        let mut chain = Chain::resume(link, 1);
        let mut out = first;
        out.extend(chain.link(br#"{"b":2}"#));
        assert_eq!(out, whole);
        assert_eq!(chain.head(), head);
    }
}
