//! Builds the pod sandbox helper (`helper/kube-sim-pause.rs`) as a static executable and
//! embeds it: kube-sim turns it into the "pause" image at start-up, because no registry is
//! reachable to pull one.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "helper/kube-sim-pause.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("kube-sim-pause");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = env::var("TARGET").unwrap_or_default();
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-name", "kube_sim_pause", "-O"])
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
