//! X11 forwarding (`ssh -X`, `ssh -Y`, the `x11-req` request), as OpenSSH's sshd does it with
//! `X11UseLocalhost yes`: a session that asks gets a display inside the container, a listener
//! on `127.0.0.1:6000+N` for the first free N from [`FIRST_DISPLAY`], `DISPLAY=localhost:N.S`
//! in its environment and the client's cookie for display N in the login user's Xauthority
//! file (`$XAUTHORITY`, else `~/.Xauthority`). Each connection to the display becomes an `x11`
//! channel to the client, whose `ssh` checks the cookie and swaps in its X server's own (for
//! `-X`, an untrusted one), so sshpod passes the cookie on untouched.
//!
//! The file is written by sshpod itself ([`xauthority`]) through two short processes in the
//! container, run as the login's user with the session's environment just before the
//! session's program: one prints the container's hostname and the current file, the other
//! replaces the file (mode 0600). No `xauth` is needed in the image, only `/bin/sh`, `cat` and
//! `mv`.

pub(crate) mod xauthority;

use std::time::Duration;

use sshpod_core::{Command, Container, ExitStatus, ProcessSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::xauthority::{Entry, Leftover, FAMILY_LOCAL};

/// The first display tried (OpenSSH's default `X11DisplayOffset`), so displays of the
/// container's own X servers (`:0`) are left alone.
pub(crate) const FIRST_DISPLAY: u16 = 10;

/// How many displays a session tries before giving up.
pub(crate) const DISPLAYS_TRIED: u16 = 16;

/// X11's TCP port for display 0.
pub(crate) const X11_BASE_PORT: u16 = 6000;

/// The longest cookie taken, in bytes (MIT-MAGIC-COOKIE-1's is 16).
const MAX_COOKIE: usize = 256;

/// The longest protocol name taken.
const MAX_PROTOCOL: usize = 64;

/// How long writing the Xauthority file may hold the session's start up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

/// What an `x11-req` carries, checked.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct X11Auth {
    /// The authorization protocol's name (`MIT-MAGIC-COOKIE-1`).
    pub(crate) protocol: String,
    /// The cookie, decoded from the request's hex.
    pub(crate) cookie: Vec<u8>,
    /// The screen number for `DISPLAY`.
    pub(crate) screen: u32,
}

impl std::fmt::Debug for X11Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Auth")
            .field("protocol", &self.protocol)
            .field("cookie", &"<secret>")
            .field("screen", &self.screen)
            .finish()
    }
}

impl X11Auth {
    /// Checks a request's protocol name, hex cookie and screen.
    pub(crate) fn parse(protocol: &str, cookie: &str, screen: u32) -> Result<Self, &'static str> {
        let printable = |c: char| c.is_ascii_graphic();
        if protocol.is_empty() || protocol.len() > MAX_PROTOCOL || !protocol.chars().all(printable)
        {
            return Err("the X11 authorization protocol's name is not a short printable word");
        }
        if cookie.is_empty() || cookie.len() > 2 * MAX_COOKIE || cookie.len() % 2 != 0 {
            return Err("the X11 cookie is not an even number of hex digits");
        }
        // `from_str_radix` alone would take a sign.
        if !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the X11 cookie is not hex");
        }
        let cookie = cookie
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or("the X11 cookie is not hex")?;
        if screen > u32::from(u16::MAX) {
            return Err("the X11 screen number is out of range");
        }
        Ok(Self {
            protocol: protocol.to_owned(),
            cookie,
            screen,
        })
    }
}

/// The displays a session tries, in order: from [`FIRST_DISPLAY`], skipping those the
/// connection's other sessions hold, [`DISPLAYS_TRIED`] of them at most.
pub(crate) fn candidate_displays(held: &[u16]) -> impl Iterator<Item = u16> + '_ {
    (FIRST_DISPLAY..=u16::MAX - X11_BASE_PORT)
        .filter(move |d| !held.contains(d))
        .take(usize::from(DISPLAYS_TRIED))
}

/// `DISPLAY` for display `display` and the client's screen.
pub(crate) fn display_variable(display: u16, screen: u32) -> String {
    format!("localhost:{display}.{screen}")
}

/// A session's display and the client's cookie for it, to be written before its program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct X11Setup {
    /// The display number.
    pub(crate) display: u16,
    /// The client's protocol and cookie.
    pub(crate) auth: X11Auth,
}

/// Why the cookie could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum XauthFailed {
    #[error("running a shell in the container: {0}")]
    Run(#[source] sshpod_core::BackendError),
    #[error("reading the output: {0}")]
    Read(#[source] std::io::Error),
    #[error("the container's hostname could not be read")]
    NoHostname,
    #[error("the existing Xauthority file is larger than {} KiB", xauthority::MAX_FILE / 1024)]
    TooLarge,
    #[error("the shell ended with {0:?}: {1}")]
    Failed(ExitStatus, String),
    #[error("it did not finish within {} s", WRITE_TIMEOUT.as_secs())]
    Timeout,
}

/// Prints the container's hostname (as X clients look it up: `gethostname`) on a line of its
/// own, then the user's Xauthority file, if any.
const READ_SCRIPT: &str = "f=${XAUTHORITY:-$HOME/.Xauthority}; \
    h=; read -r h 2>/dev/null </proc/sys/kernel/hostname || h=$(uname -n); \
    printf '%s\\n' \"$h\"; \
    if [ -f \"$f\" ]; then exec cat -- \"$f\"; fi";

/// Replaces the user's Xauthority file with stdin, through a private file of its own (made
/// afresh: `set -C` refuses one that is already there, a planted link included).
const WRITE_SCRIPT: &str = "umask 077; set -C; f=${XAUTHORITY:-$HOME/.Xauthority}; \
    t=\"$f.sshpod-$$\"; if cat >\"$t\"; then mv -f -- \"$t\" \"$f\" && exit 0; rm -f -- \"$t\"; fi; \
    exit 1";

/// Adds the client's cookie for the session's display to the user's Xauthority file, in the
/// session's container and with its environment (which decides `$XAUTHORITY` and `$HOME`).
pub(crate) async fn write_cookie<C: Container>(
    container: &C,
    env: &[(String, String)],
    setup: &X11Setup,
) -> Result<Leftover, XauthFailed> {
    tokio::time::timeout(WRITE_TIMEOUT, write_cookie_now(container, env, setup))
        .await
        .unwrap_or(Err(XauthFailed::Timeout))
}

async fn write_cookie_now<C: Container>(
    container: &C,
    env: &[(String, String)],
    setup: &X11Setup,
) -> Result<Leftover, XauthFailed> {
    // The hostname line (at most 255 bytes and its newline), then the file.
    let read = run(container, env, READ_SCRIPT, &[], xauthority::MAX_FILE + 256).await?;
    let newline = read
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(XauthFailed::NoHostname)?;
    let (hostname, file) = (&read[..newline], &read[newline + 1..]);
    if hostname.is_empty() || hostname.len() > 255 {
        return Err(XauthFailed::NoHostname);
    }
    if file.len() > xauthority::MAX_FILE {
        return Err(XauthFailed::TooLarge);
    }
    let (existing, leftover) = xauthority::parse(file);
    let entry = Entry {
        family: FAMILY_LOCAL,
        address: hostname.to_vec(),
        number: setup.display.to_string().into_bytes(),
        name: setup.auth.protocol.clone().into_bytes(),
        data: setup.auth.cookie.clone(),
    };
    let content = xauthority::merged(&existing, &entry);
    run(container, env, WRITE_SCRIPT, &content, 0).await?;
    Ok(leftover)
}

/// Runs `script` with `input` on its stdin; its stdout if it exits with status 0. A stdout
/// longer than `limit` is [`XauthFailed::TooLarge`], without waiting for the rest.
async fn run<C: Container>(
    container: &C,
    env: &[(String, String)],
    script: &str,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, XauthFailed> {
    let process = container
        .exec(ProcessSpec {
            command: Command::Exec(script.to_owned()),
            env: env.to_vec(),
            tty: None,
            x11: None,
        })
        .await
        .map_err(XauthFailed::Run)?;
    let mut stdin = process.stdin;
    let feed = async move {
        // A shell that stopped reading has failed; its status says so.
        let _ = stdin.write_all(input).await;
        let _ = stdin.shutdown().await;
    };
    let mut out = Vec::new();
    let mut stdout = process
        .stdout
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1);
    let read_out = stdout.read_to_end(&mut out);
    let mut err = Vec::new();
    let read_err = async {
        if let Some(stderr) = process.stderr {
            let _ = stderr.take(1024).read_to_end(&mut err).await;
        }
    };
    let ((), read, ()) = tokio::join!(feed, read_out, read_err);
    read.map_err(XauthFailed::Read)?;
    if out.len() > limit {
        // Dropping the process ends it (its output has nowhere to go).
        return Err(XauthFailed::TooLarge);
    }
    match process.control.wait().await.map_err(XauthFailed::Run)? {
        ExitStatus::Code(0) => Ok(out),
        status => Err(XauthFailed::Failed(
            status,
            String::from_utf8_lossy(&err).trim().to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_cookies_decoded() {
        let auth = X11Auth::parse("MIT-MAGIC-COOKIE-1", "00ff10Ab", 0);
        assert_eq!(
            auth.as_ref().map(|a| a.cookie.clone()),
            Ok(vec![0x00, 0xff, 0x10, 0xab])
        );
        for (protocol, cookie, screen) in [
            ("", "00", 0),
            ("MIT MAGIC", "00", 0),
            (&"P".repeat(65) as &str, "00", 0),
            ("MIT-MAGIC-COOKIE-1", "", 0),
            ("MIT-MAGIC-COOKIE-1", "abc", 0),
            ("MIT-MAGIC-COOKIE-1", "zz", 0),
            ("MIT-MAGIC-COOKIE-1", "+1", 0),
            ("MIT-MAGIC-COOKIE-1", "é0", 0),
            ("MIT-MAGIC-COOKIE-1", &"00".repeat(257), 0),
            ("MIT-MAGIC-COOKIE-1", "00", 70_000),
        ] {
            assert!(
                X11Auth::parse(protocol, cookie, screen).is_err(),
                "{protocol:?} {cookie:?} {screen}"
            );
        }
    }

    #[test]
    fn the_cookie_stays_out_of_debug_output() {
        let auth = X11Auth::parse("MIT-MAGIC-COOKIE-1", "5ec7e7", 0);
        let shown = format!("{auth:?}");
        assert!(shown.contains("MIT-MAGIC-COOKIE-1") && !shown.contains("5ec7e7"));
        assert!(!shown.contains("94, 199, 231"), "{shown}");
    }

    #[test]
    fn displays_start_at_ten_and_skip_the_connections_own() {
        let first: Vec<u16> = candidate_displays(&[]).collect();
        assert_eq!(first.first(), Some(&FIRST_DISPLAY));
        assert_eq!(first.len(), usize::from(DISPLAYS_TRIED));
        let next: Vec<u16> = candidate_displays(&[10, 12]).take(3).collect();
        assert_eq!(next, [11, 13, 14]);
        assert_eq!(display_variable(11, 0), "localhost:11.0");
        assert_eq!(display_variable(11, 2), "localhost:11.2");
    }
}
