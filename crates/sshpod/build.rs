//! Puts the commit sshpod was built from into `sshpod --version` (`SSHPOD_COMMIT`).
//!
//! A build outside a git checkout (a source tarball) reads `SSHPOD_COMMIT` from the
//! environment, else says `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SSHPOD_COMMIT");
    let commit = std::env::var("SSHPOD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SSHPOD_COMMIT={commit}");
}

/// The checkout's commit (12 hex digits, `-dirty` is not tracked: the build script cannot
/// watch every file), asking cargo to run this again when HEAD moves.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        // The branch's ref file (absent once packed: then packed-refs moves instead).
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
            .map(PathBuf::from)
            .unwrap_or_else(|| git_dir.clone());
        println!("cargo:rerun-if-changed={}", common.join(&branch).display());
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
