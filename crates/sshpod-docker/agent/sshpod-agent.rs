//! sshpod's in-container helper, copied into a container only when a client asks for port
//! forwarding. It is built by `build.rs` as a static, dependency-free executable so it runs
//! in any Linux image, whatever its C library.
//!
//! `sshpod-agent dial HOST PORT`: connects to HOST:PORT from inside the container and copies
//! stdin to the socket and the socket to stdout, until the service closes the connection. Once
//! connected it writes one zero byte to stdout, so sshpod can accept or refuse the SSH channel
//! truthfully, then `close CLOSE\n`: a socket in a fresh private directory that, once
//! connected to (`sshpod-agent close CLOSE`), closes the connection both ways, as sshd closes
//! the socket of a closed channel, for a service that keeps it open after the end of input. On
//! failure it writes the reason to stderr and exits with status 2.
//!
//! `sshpod-agent dial-unix PATH` does the same with the Unix socket PATH
//! (`direct-streamlocal@openssh.com`).
//!
//! `sshpod-agent listen HOST PORT` (`ssh -R`): listens on HOST:PORT and writes
//! `listening PORT DIR` to stdout (the port actually bound, and a fresh private directory).
//! Each accepted connection is reported as `accept N ADDRESS PORT` and parked behind the Unix
//! socket `DIR/N.sock` until sshpod takes it with `sshpod-agent take DIR/N.sock`, which relays
//! it like `dial` does (without a close socket: `close N` below does that), so every forwarded
//! connection has its own stream. `refuse N` on stdin closes a parked connection; `close N`
//! closes a taken one whose client side is gone (both ways, as sshd closes the socket of a
//! closed channel); `stop` or the end of stdin stops listening, and the helper exits once its
//! connections have ended. `sshpod-agent listen-unix PATH` does the same on the Unix socket
//! PATH (reporting port 0, and `local 0` as every originator), and removes it when it stops.
//! `sshpod-agent listen-agent` (`ssh -A`) listens on `agent.sock` in its private directory.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [_, "dial", host, port] => match port.parse::<u16>() {
            Ok(port) => match TcpStream::connect((*host, port)) {
                Ok(socket) => {
                    let _ = socket.set_nodelay(true);
                    relay_closable(Both::Tcp(socket))
                }
                Err(e) => fail(&format!("connect {host}:{port}: {e}")),
            },
            Err(_) => fail(&format!("bad port {port}")),
        },
        [_, "dial-unix", path] => match UnixStream::connect(path) {
            Ok(socket) => relay_closable(Both::Unix(socket)),
            Err(e) => fail(&format!("connect {path}: {e}")),
        },
        [_, "take", path] => match UnixStream::connect(path) {
            Ok(socket) => relay_stdio(Both::Unix(socket), ""),
            Err(e) => fail(&format!("taking the connection {path}: {e}")),
        },
        // Connecting is the whole message; a helper that already ended is no error.
        [_, "close", path] => {
            let _ = UnixStream::connect(path);
            ExitCode::SUCCESS
        }
        [_, "listen", host, port] => match port.parse::<u16>() {
            Ok(port) => match TcpListener::bind((*host, port)) {
                Ok(listener) => listen(Listening::Tcp(listener), None),
                Err(e) => fail(&format!("listen on {host}:{port}: {e}")),
            },
            Err(_) => fail(&format!("bad port {port}")),
        },
        [_, "listen-unix", path] => match UnixListener::bind(path) {
            Ok(listener) => listen(Listening::Unix(listener, PathBuf::from(path)), None),
            Err(e) => fail(&format!("listen on {path}: {e}")),
        },
        [_, "listen-agent"] => match private_dir() {
            Ok(dir) => {
                let path = dir.join("agent.sock");
                match UnixListener::bind(&path) {
                    Ok(listener) => listen(Listening::Unix(listener, path), Some(dir)),
                    Err(e) => fail(&format!("listen on {}: {e}", path.display())),
                }
            }
            Err(e) => fail(&format!("making a private directory: {e}")),
        },
        _ => fail(
            "usage: sshpod-agent dial HOST PORT | dial-unix PATH | listen HOST PORT | \
             listen-unix PATH | listen-agent | take PATH | close PATH",
        ),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "sshpod-agent: {message}");
    ExitCode::from(2)
}

/// A connected socket of either family.
enum Both {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Both {
    fn try_clone(&self) -> std::io::Result<Both> {
        match self {
            Both::Tcp(s) => s.try_clone().map(Both::Tcp),
            Both::Unix(s) => s.try_clone().map(Both::Unix),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Both::Tcp(s) => s.shutdown(how),
            Both::Unix(s) => s.shutdown(how),
        };
    }
}

impl Read for Both {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Both::Tcp(s) => s.read(buf),
            Both::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Both {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Both::Tcp(s) => s.write(buf),
            Both::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Relays `socket` as [`relay_stdio`] does, with a close socket in a private directory that
/// shuts it down both ways (which ends the relay), announced after the ready byte.
fn relay_closable(socket: Both) -> ExitCode {
    let (dir, closer) = match private_dir().and_then(|dir| {
        let closer = UnixListener::bind(dir.join("close.sock"))?;
        Ok((dir, closer))
    }) {
        Ok(made) => made,
        Err(e) => return fail(&format!("making a close socket: {e}")),
    };
    let inside = match socket.try_clone() {
        Ok(s) => s,
        Err(e) => return fail(&format!("socket: {e}")),
    };
    std::thread::spawn(move || {
        if closer.accept().is_ok() {
            inside.shutdown(Shutdown::Both);
        }
    });
    let announce = format!("close {}\n", dir.join("close.sock").display());
    let ended = relay_stdio(socket, &announce);
    let _ = std::fs::remove_dir_all(&dir);
    ended
}

/// Writes the ready byte and `announce`, then copies stdin to `socket` and `socket` to stdout.
fn relay_stdio(socket: Both, announce: &str) -> ExitCode {
    {
        let mut out = std::io::stdout().lock();
        let ready = out
            .write_all(&[0])
            .and_then(|()| out.write_all(announce.as_bytes()))
            .and_then(|()| out.flush());
        if ready.is_err() {
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
        upstream.shutdown(Shutdown::Write);
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

/// A directory only this user can enter, for the parked connections' sockets.
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut attempt = 0u32;
    loop {
        let dir = base.join(format!(
            "sshpod-{}-{:x}",
            std::process::id(),
            seed.wrapping_add(attempt)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A bound listener of either family (a Unix one with its path, removed when it stops).
enum Listening {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listening {
    /// The port bound (0 for a Unix socket).
    fn port(&self) -> std::io::Result<u16> {
        match self {
            Listening::Tcp(l) => l.local_addr().map(|a| a.port()),
            Listening::Unix(..) => Ok(0),
        }
    }

    /// The next connection and who made it (`ADDRESS PORT`).
    fn accept(&self) -> std::io::Result<(Both, String)> {
        match self {
            Listening::Tcp(l) => {
                let (socket, peer) = l.accept()?;
                let _ = socket.set_nodelay(true);
                Ok((Both::Tcp(socket), format!("{} {}", peer.ip(), peer.port())))
            }
            Listening::Unix(l, _) => l.accept().map(|(s, _)| (Both::Unix(s), "local 0".into())),
        }
    }

    /// Wakes a thread blocked in `accept`.
    fn waker(&self) -> Box<dyn FnOnce() + Send> {
        match self {
            Listening::Tcp(l) => {
                let address = l.local_addr();
                Box::new(move || {
                    if let Ok(mut address) = address {
                        if address.ip().is_unspecified() {
                            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                        }
                        let _ = TcpStream::connect(address);
                    }
                })
            }
            Listening::Unix(_, path) => {
                let path = path.clone();
                Box::new(move || {
                    let _ = UnixStream::connect(path);
                })
            }
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Listening::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves `listener`, parking connections in `dir` (a fresh private directory if `None`).
fn listen(listener: Listening, dir: Option<PathBuf>) -> ExitCode {
    let port = match listener.port() {
        Ok(p) => p,
        Err(e) => return fail(&format!("listening: {e}")),
    };
    let dir = match dir.map_or_else(private_dir, Ok) {
        Ok(d) => d,
        Err(e) => return fail(&format!("making a private directory: {e}")),
    };
    if report(&format!("listening {port} {}", dir.display())).is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        return ExitCode::from(2);
    }
    let closing = Arc::new(AtomicBool::new(false));
    let relayed = Relayed::default();
    {
        // `stop` or the end of stdin (sshpod cancelled the forward or went away) stops the
        // listener: the flag is set, then a connection of our own wakes the blocked accept.
        let (closing, dir, relayed) = (Arc::clone(&closing), dir.clone(), Arc::clone(&relayed));
        let mut wake = Some(listener.waker());
        std::thread::spawn(move || {
            let mut stop = move || {
                closing.store(true, Ordering::SeqCst);
                if let Some(wake) = wake.take() {
                    wake();
                }
            };
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let number = |prefix: &str| line.strip_prefix(prefix)?.trim().parse::<u64>().ok();
                if line == "stop" {
                    stop();
                } else if let Some(n) = number("refuse ") {
                    // Taking the parked connection and dropping it closes it.
                    let _ = UnixStream::connect(dir.join(format!("{n}.sock")));
                } else if let Some(n) = number("close ") {
                    let inside = relayed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&n);
                    if let Some(inside) = inside {
                        // Wakes both relaying threads of the connection, which then end.
                        inside.shutdown(Shutdown::Both);
                    }
                }
            }
            stop();
        });
    }
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    let mut next = 0u64;
    loop {
        let incoming = listener.accept();
        if closing.load(Ordering::SeqCst) {
            break;
        }
        let Ok((socket, peer)) = incoming else {
            continue;
        };
        next += 1;
        let path = dir.join(format!("{next}.sock"));
        let parking = match UnixListener::bind(&path) {
            Ok(p) => p,
            Err(_) => continue,
        };
        connections.retain(|c| !c.is_finished());
        let relayed = Arc::clone(&relayed);
        let number = next;
        connections.push(std::thread::spawn(move || {
            park(socket, parking, &path, number, &relayed);
        }));
        if report(&format!("accept {next} {peer}")).is_err() {
            break;
        }
    }
    drop(listener);
    for connection in connections {
        let _ = connection.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

fn report(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The inside sockets of the connections being relayed, by number, for `close N`.
type Relayed = Arc<Mutex<HashMap<u64, Both>>>;

/// Holds one accepted connection until sshpod takes it (or refuses it), then relays it.
fn park(inside: Both, parking: UnixListener, path: &Path, number: u64, relayed: &Relayed) {
    let taken = parking.accept();
    drop(parking);
    let _ = std::fs::remove_file(path);
    let Ok((taker, _)) = taken else { return };
    if let Ok(handle) = inside.try_clone() {
        relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(number, handle);
    }
    let outside = Both::Unix(taker);
    let (Ok(inside_reader), Ok(outside_reader)) = (inside.try_clone(), outside.try_clone()) else {
        return;
    };
    let inward = std::thread::spawn(move || pipe(outside_reader, inside));
    pipe(inside_reader, outside);
    let _ = inward.join();
    relayed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&number);
}

/// Copies until EOF, then half-closes the destination.
fn pipe(mut from: Both, mut to: Both) {
    let _ = copy(&mut from, &mut to);
    to.shutdown(Shutdown::Write);
    // Nothing more will be read from here either: whoever wrote to it is told at once.
    from.shutdown(Shutdown::Read);
}
