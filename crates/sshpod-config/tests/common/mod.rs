//! What the ContainerSSH-compatibility tests share: fixtures by path, and loading that fails
//! loudly.

use std::path::{Path, PathBuf};

use sshpod_config::{load, parse_str, ConfigErrors, Format, Loaded};

/// The minimal `auth` section a file needs to load.
pub const AUTH: &str = "auth: {password: {method: htpasswd, htpasswd: {file: /h}}}\n";

/// A file under `tests/`.
pub fn file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path)
}

/// Loads a file under `tests/`, which must be valid.
pub fn loads(path: &str) -> Loaded {
    load(&file(path)).unwrap_or_else(|errors| panic!("{path}:\n{errors}"))
}

/// The errors of YAML that must not load.
pub fn refused(text: &str) -> Vec<String> {
    match parse_str(text, Format::Yaml, "t.yaml") {
        Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config.docker),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}
