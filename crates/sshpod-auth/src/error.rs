//! The error type shared by both authenticators.

use std::io;
use std::path::PathBuf;

/// Why an authenticator could not reach a decision.
///
/// A rejected credential is not an error: the checks return `Ok(false)` / `Ok(None)` for that.
/// Malformed lines inside a file are not errors either; they are skipped with a warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or reading an authorized keys or htpasswd file failed.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is larger than the authenticators are willing to read on every attempt.
    #[error("{} is larger than the limit of {limit} bytes", path.display())]
    FileTooLarge {
        /// The oversized file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A file whose content must be understood completely (a revocation list, a list of
    /// trusted CA keys) is not.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The authorized keys path pattern has a `%` that is not followed by `u` or `%`.
    #[error("authorized keys path pattern {pattern:?} has an unknown %-token at byte {position}")]
    InvalidPattern {
        /// The pattern as configured.
        pattern: String,
        /// Byte offset of the offending `%`.
        position: usize,
    },
}
