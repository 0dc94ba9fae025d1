//! kube-sim's pod sandbox program, the only file of the "pause" image kube-sim builds at
//! start-up. Static and dependency-free, so it needs no base image.
//!
//! `kube-sim-pause`: holds the pod's network namespace; sleeps until killed.
//! `kube-sim-pause dial PORT`: connects to 127.0.0.1:PORT (inside the pod's network namespace),
//! writes one zero byte to stdout once connected, then copies stdin to the socket and the socket
//! to stdout. On failure it writes the reason to stderr and exits with status 2.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => loop {
            std::thread::park();
        },
        Some("dial") => match args.get(2).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) => dial(port),
            None => fail("usage: kube-sim-pause dial PORT"),
        },
        Some(other) => fail(&format!("unknown command {other}")),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::from(2)
}

fn dial(port: u16) -> ExitCode {
    let socket = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return fail(&format!("dial tcp4 127.0.0.1:{port}: {e}")),
    };
    let _ = socket.set_nodelay(true);
    if std::io::stdout().write_all(&[0]).and_then(|()| std::io::stdout().flush()).is_err() {
        return ExitCode::from(2);
    }
    let mut upstream = match socket.try_clone() {
        Ok(s) => s,
        Err(e) => return fail(&format!("socket: {e}")),
    };
    std::thread::spawn(move || {
        let _ = copy(&mut std::io::stdin().lock(), &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = socket;
    let _ = copy(&mut downstream, &mut std::io::stdout().lock());
    ExitCode::SUCCESS
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
