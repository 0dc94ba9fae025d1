//! Builds the in-container forwarding helper as a static executable and embeds it: the same
//! source the Docker backend ships (`../sshpod-docker/agent/sshpod-agent.rs`), so both backends
//! run one helper and sshpod needs nothing baked into guest images.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "../sshpod-docker/agent/sshpod-agent.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("sshpod-agent");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = env::var("TARGET").unwrap_or_default();
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-name", "sshpod_agent", "-O"])
        .args(["-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static"])
        .args(["--target", &target])
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building {source} failed: {s}"),
        Err(e) => panic!("running rustc for {source}: {e}"),
    }
}
