//! Validation context: finds where a key sits in the source text and collects every problem.
//!
//! Typed structs do not carry positions. Instead the source is parsed a second time into a tree of
//! located nodes (serde-saphyr's `Spanned`; JSON is a subset of YAML for this purpose), indexed
//! by dotted key path. A validation error then only needs the key path to report line and column.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::ConfigError;
use crate::Backend;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    fn of(location: &serde_saphyr::Location) -> Option<Self> {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        (line > 0).then_some(Self { line, column })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Position>,
    value: Option<Position>,
}

/// Key path (lower-cased, so `Image` and `image` agree) to the position of the key and its value.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    entries: HashMap<String, Entry>,
}

impl Positions {
    /// Indexes `text`; on a syntax error the index is empty and errors carry no position.
    pub(crate) fn index(text: &str) -> Self {
        let mut positions = Self::default();
        if let Ok(Some(root)) = serde_saphyr::from_str::<Option<Spanned<Node>>>(text) {
            positions.walk(String::new(), None, &root);
        }
        positions
    }

    fn walk(&mut self, path: String, key: Option<Position>, node: &Spanned<Node>) {
        let value = Position::of(&node.referenced);
        match &node.value {
            Node::Map(entries) => {
                for (name, child) in entries {
                    let child_path = join(&path, &name.value);
                    self.walk(child_path, Position::of(&name.referenced), child);
                }
            }
            Node::Seq(items) => {
                for (index, child) in items.iter().enumerate() {
                    self.walk(format!("{path}[{index}]"), None, child);
                }
            }
            Node::Scalar => {}
        }
        self.entries
            .insert(path.to_ascii_lowercase(), Entry { key, value });
    }

    /// Where the value at `path` starts, or the nearest enclosing value that exists in the file.
    pub(crate) fn value(&self, path: &str) -> Option<Position> {
        self.nearest(path).and_then(|entry| entry.value)
    }

    /// Where the key `path` is written (falls back to the value position).
    pub(crate) fn key(&self, path: &str) -> Option<Position> {
        self.nearest(path)
            .and_then(|entry| entry.key.or(entry.value))
    }

    /// Number of indexed paths.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn nearest(&self, path: &str) -> Option<&Entry> {
        let mut path = path.to_ascii_lowercase();
        loop {
            if let Some(entry) = self.entries.get(&path) {
                return Some(entry);
            }
            if path.is_empty() {
                return None;
            }
            let cut = path.rfind(['.', '[']).unwrap_or(0);
            path.truncate(cut);
        }
    }
}

/// Appends a map key to a dotted path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A YAML node with located children; scalars are not kept.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// Collects errors and warnings while turning the raw file shape into [`crate::Config`].
#[derive(Debug)]
pub(crate) struct Checker<'a> {
    file: &'a str,
    positions: &'a Positions,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
    /// The backend the file selects, once known (see [`Checker::backend_section`]).
    selected: Option<Backend>,
    /// Inside a section the configuration does not use.
    unselected: bool,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a str, positions: &'a Positions) -> Self {
        Self {
            file,
            positions,
            errors: Vec::new(),
            warnings: Vec::new(),
            selected: None,
            unselected: false,
        }
    }

    /// Runs `f` with a checker whose findings go nowhere: for defaults, and for sections that
    /// are off and so not validated.
    pub(crate) fn quietly<R>(f: impl FnOnce(&mut Checker<'_>) -> R) -> R {
        let positions = Positions::default();
        let mut quiet = Checker::new("", &positions);
        f(&mut quiet)
    }

    /// Records the backend the file selects, for [`Checker::backend_section`].
    pub(crate) fn select_backend(&mut self, backend: Backend) {
        self.selected = Some(backend);
    }

    /// Runs `resolve` for the section of `backend`. When the file selects another backend,
    /// sshpod reports, like ContainerSSH, only what makes the section unreadable (unknown
    /// keys, values of the wrong type: [`Checker::shape_error`]), not its invalid values nor
    /// its warnings: a `docker` file keeps working with a `kubernetes` section it never uses,
    /// such as the one ContainerSSH writes into every file it saves.
    pub(crate) fn backend_section<R>(
        &mut self,
        backend: Backend,
        resolve: impl FnOnce(&mut Self) -> R,
    ) -> R {
        if self.selected.is_none_or(|selected| selected == backend) {
            return resolve(self);
        }
        let outer = std::mem::replace(&mut self.unselected, true);
        let result = resolve(self);
        self.unselected = outer;
        result
    }

    /// Reports a bad value at `key`.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        if !self.unselected {
            self.shape_error(key, message);
        }
    }

    /// Reports a key that should not be there at all (points at the key, not its value).
    pub(crate) fn error_at_key(&mut self, key: &str, message: impl Into<String>) {
        if !self.unselected {
            self.shape_error_at_key(key, message);
        }
    }

    /// Reports a value the section's type cannot hold at `key`, even in an unselected section.
    pub(crate) fn shape_error(&mut self, key: &str, message: impl Into<String>) {
        let position = self.positions.value(key);
        self.push(key, position, message.into());
    }

    /// Reports an unknown key (at the key), even in an unselected section.
    pub(crate) fn shape_error_at_key(&mut self, key: &str, message: impl Into<String>) {
        let position = self.positions.key(key);
        self.push(key, position, message.into());
    }

    /// Records a warning, prefixed with the position of `key` when known; none in an
    /// unselected section.
    pub(crate) fn warn(&mut self, key: &str, message: impl fmt::Display) {
        if self.unselected {
            return;
        }
        let warning = match self.positions.key(key) {
            Some(at) => format!("{}:{}:{}: {message}", self.file, at.line, at.column),
            None => format!("{}: {message}", self.file),
        };
        self.warnings.push(warning);
    }

    fn push(&mut self, key: &str, position: Option<Position>, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            key: key.to_string(),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_yaml_and_json() {
        let yaml = Positions::index("ssh:\n  listen: x\n  ciphers:\n    - a\n    - b\n");
        assert_eq!(
            yaml.value("ssh.listen"),
            Some(Position {
                line: 2,
                column: 11
            })
        );
        assert_eq!(
            yaml.key("ssh.listen"),
            Some(Position { line: 2, column: 3 })
        );
        assert_eq!(
            yaml.value("ssh.ciphers[1]"),
            Some(Position { line: 5, column: 7 })
        );
        // Missing keys fall back to the enclosing value.
        assert_eq!(yaml.value("ssh.banner"), yaml.value("ssh"));

        let json = Positions::index("{\n  \"docker\": {\"Image\": \"x\"}\n}");
        assert_eq!(
            json.value("docker.image"),
            Some(Position {
                line: 2,
                column: 23
            })
        );
        assert!(json.len() >= 3);
    }

    #[test]
    fn broken_text_gives_an_empty_index() {
        assert_eq!(Positions::index("a: [").value("a"), None);
    }
}
