//! Configuration errors.
//!
//! Every problem names the file, the position (when known) and the dotted key, so an operator can
//! jump straight to the offending line. Loading collects all problems it can find and returns them
//! together as [`ConfigErrors`].

use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, as given to [`crate::load`] or as `origin` to [`crate::parse_str`].
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path such as `docker.execution.container.image` (`ssh.ciphers[1]` for list
    /// items); empty for the document as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All problems found while loading a configuration file; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns the expected name closest to `given`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(given: &str, expected: &[&'a str]) -> Option<&'a str> {
    let lower = given.to_ascii_lowercase();
    expected
        .iter()
        .map(|candidate| {
            let distance = strsim::levenshtein(&lower, &candidate.to_ascii_lowercase());
            let similarity = strsim::jaro_winkler(&lower, &candidate.to_ascii_lowercase());
            (candidate, distance, similarity)
        })
        .filter(|(_, distance, similarity)| *distance <= 2 || *similarity >= 0.9)
        .max_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)))
        .map(|(candidate, _, _)| *candidate)
}

/// Message for a name that is not among `expected` (an unknown key or choice).
pub(crate) fn unknown_message(what: &str, given: &str, expected: &[&str]) -> String {
    match did_you_mean(given, expected) {
        Some(suggestion) => format!("unknown {what} `{given}`; did you mean `{suggestion}`?"),
        None if expected.is_empty() => format!("unknown {what} `{given}`"),
        None => format!(
            "unknown {what} `{given}`; expected one of: {}",
            expected.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_position() {
        let mut error = ConfigError {
            file: "c.yaml".into(),
            line: Some(3),
            column: Some(5),
            key: "ssh.listen".into(),
            message: "bad".into(),
        };
        assert_eq!(error.to_string(), "c.yaml:3:5: key `ssh.listen`: bad");
        error.line = None;
        error.column = None;
        error.key.clear();
        assert_eq!(error.to_string(), "c.yaml: bad");
        let errors = ConfigErrors(vec![error.clone(), error]);
        assert_eq!(errors.to_string(), "c.yaml: bad\nc.yaml: bad");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("lisen", &["listen", "banner"]), Some("listen"));
        assert_eq!(
            did_you_mean("Ciphers", &["ciphers", "kex"]),
            Some("ciphers")
        );
        assert_eq!(did_you_mean("zzzzzz", &["listen", "banner"]), None);
    }
}
