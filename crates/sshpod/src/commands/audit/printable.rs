//! Text a client chose (user names, commands, environment values, file paths) printed so that it
//! cannot act on the terminal of the person reading it: control characters (escape sequences,
//! carriage returns, C1 controls) and the marks that reorder text (bidirectional overrides) are
//! written as JSON writes an escaped character (`\u001b`), so quoted values stay valid JSON.

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::Value;

/// Whether `c` would do something other than show itself.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character that acts on a terminal escaped.
pub(super) fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts(c) {
            // Every such character is in the Basic Multilingual Plane: four digits suffice.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A field's value for `name=value`: a plain word as is, other text quoted as JSON writes it,
/// numbers, booleans and objects as JSON; escaped either way.
pub(super) fn value(value: &Value) -> String {
    let text = match value {
        Value::String(text) if is_word(text) => text.clone(),
        other => other.to_string(),
    };
    escaped(&text).into_owned()
}

/// Whether `text` reads unambiguously without quotes after `name=`.
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\\' | '=') || acts(c))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nothing_a_client_wrote_reaches_the_terminal_as_control() {
        assert_eq!(escaped("alice"), "alice");
        assert_eq!(
            escaped("x\u{1b}]0;owned\u{7}\r\n\u{9b}2J"),
            "x\\u001b]0;owned\\u0007\\u000d\\u000a\\u009b2J"
        );
        assert_eq!(escaped("abc\u{202e}fdp.exe"), "abc\\u202efdp.exe");
        assert_eq!(value(&json!("/tmp/a.txt")), "/tmp/a.txt");
        assert_eq!(value(&json!("rm -rf /")), "\"rm -rf /\"");
        assert_eq!(value(&json!("")), "\"\"");
        assert_eq!(value(&json!("a\u{9b}b")), "\"a\\u009bb\"");
        assert_eq!(value(&json!(80)), "80");
        assert_eq!(
            value(&json!({"exec": "ls\u{1b}[2J"})),
            "{\"exec\":\"ls\\u001b[2J\"}"
        );
    }
}
