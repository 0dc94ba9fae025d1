//! sshpod's in-container helper, copied into a container only when a client asks for port
//! forwarding. It is built by `build.rs` as a static, dependency-free executable so it runs
//! in any Linux image, whatever its C library.
//!
//! `sshpod-agent dial HOST PORT`: connects to HOST:PORT from inside the container and copies
//! stdin to the socket and the socket to stdout, until the service closes the connection. Once connected it
//! writes one zero byte to stdout, so sshpod can accept or refuse the SSH channel truthfully;
//! on failure it writes the reason to stderr and exits with status 2.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [_, "dial", host, port] => match port.parse::<u16>() {
            Ok(port) => dial(host, port),
            Err(_) => fail(&format!("bad port {port}")),
        },
        _ => fail("usage: sshpod-agent dial HOST PORT"),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "sshpod-agent: {message}");
    ExitCode::from(2)
}

fn dial(host: &str, port: u16) -> ExitCode {
    let socket = match TcpStream::connect((host, port)) {
        Ok(s) => s,
        Err(e) => return fail(&format!("connect {host}:{port}: {e}")),
    };
    let _ = socket.set_nodelay(true);
    {
        let mut out = std::io::stdout().lock();
        if out.write_all(&[0]).and_then(|()| out.flush()).is_err() {
            return ExitCode::from(2);
        }
    }
    let upstream = match socket.try_clone() {
        Ok(s) => s,
        Err(e) => return fail(&format!("socket: {e}")),
    };
    // stdin -> socket on its own thread; EOF on stdin half-closes the socket.
    std::thread::spawn(move || {
        let mut upstream = upstream;
        let _ = copy(&mut std::io::stdin().lock(), &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut socket = socket;
    let _ = copy(&mut socket, &mut std::io::stdout().lock());
    // The service closed its side: end now, so the client sees the connection close (the
    // stdin thread may be blocked on a client that is waiting for exactly that).
    ExitCode::SUCCESS
}

fn copy(from: &mut dyn Read, to: &mut dyn Write) -> std::io::Result<()> {
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
