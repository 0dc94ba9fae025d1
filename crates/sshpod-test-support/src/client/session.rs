//! An interactive session channel, and what a command printed and how it ended.

use russh::client::Msg;
use russh::{Channel, ChannelMsg, Sig};

/// How a remote command ended, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitOutcome {
    /// `exit-status`.
    Code(u32),
    /// `exit-signal`, by its SSH name without `SIG` (`TERM`, `KILL`, ...).
    Signal(String),
}

/// Everything a session channel received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Channel data (with a pty, the terminal's output).
    pub stdout: Vec<u8>,
    /// Extended data of type 1.
    pub stderr: Vec<u8>,
    /// The exit status or signal, once received.
    pub exit: Option<ExitOutcome>,
}

impl Output {
    /// `stdout` as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// `stderr` as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A session channel: set it up (pty, env), start something in it, then talk to it.
///
/// Reads happen only inside the methods that wait (`read_until`, `read_to_end` and the
/// requests that wait for the server's reply); everything received meanwhile lands in
/// [`output`](Self::output).
pub struct Session {
    channel: Channel<Msg>,
    output: Output,
    eof: bool,
    closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("output", &self.output)
            .field("eof", &self.eof)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(channel: Channel<Msg>) -> Self {
        Self {
            channel,
            output: Output::default(),
            eof: false,
            closed: false,
        }
    }

    /// Asks for a pseudo-terminal (no modes); `Ok(true)` when the server agreed.
    pub async fn request_pty(
        &mut self,
        term: &str,
        cols: u32,
        rows: u32,
    ) -> Result<bool, russh::Error> {
        self.channel
            .request_pty(true, term, cols, rows, 0, 0, &[])
            .await?;
        self.reply().await
    }

    /// Sets an environment variable (`SetEnv`); `Ok(true)` when the server agreed.
    pub async fn set_env(&mut self, name: &str, value: &str) -> Result<bool, russh::Error> {
        self.channel.set_env(true, name, value).await?;
        self.reply().await
    }

    /// Runs a command; `Ok(true)` when the server agreed.
    pub async fn exec(&mut self, command: &str) -> Result<bool, russh::Error> {
        self.channel.exec(true, command).await?;
        self.reply().await
    }

    /// Starts the login shell; `Ok(true)` when the server agreed.
    pub async fn shell(&mut self) -> Result<bool, russh::Error> {
        self.channel.request_shell(true).await?;
        self.reply().await
    }

    /// Starts a subsystem; `Ok(true)` when the server agreed.
    pub async fn subsystem(&mut self, name: &str) -> Result<bool, russh::Error> {
        self.channel.request_subsystem(true, name).await?;
        self.reply().await
    }

    /// Sends bytes to the process's stdin.
    pub async fn write(&self, data: &[u8]) -> Result<(), russh::Error> {
        self.channel.data(data).await
    }

    /// Ends the process's stdin.
    pub async fn eof(&self) -> Result<(), russh::Error> {
        self.channel.eof().await
    }

    /// Tells the server the terminal changed size.
    pub async fn window_change(&self, cols: u32, rows: u32) -> Result<(), russh::Error> {
        self.channel.window_change(cols, rows, 0, 0).await
    }

    /// Sends a signal to the process.
    pub async fn signal(&self, signal: Sig) -> Result<(), russh::Error> {
        self.channel.signal(signal).await
    }

    /// Closes the channel from this side. Reads end at once afterwards: russh forgets a
    /// channel it closed, so the server's answering close never arrives.
    pub async fn close(&mut self) -> Result<(), russh::Error> {
        self.closed = true;
        self.channel.close().await
    }

    /// Reads until `holds` is true of the output so far (`Ok(true)`) or the channel closes
    /// first (`Ok(false)`).
    pub async fn read_until(
        &mut self,
        mut holds: impl FnMut(&Output) -> bool,
    ) -> Result<bool, russh::Error> {
        loop {
            if holds(&self.output) {
                return Ok(true);
            }
            if !self.next().await {
                return Ok(holds(&self.output));
            }
        }
    }

    /// Reads until stdout contains `text`; `Ok(false)` when the channel closed first.
    pub async fn read_until_stdout_contains(&mut self, text: &str) -> Result<bool, russh::Error> {
        let needle = text.as_bytes();
        self.read_until(|o| contains(&o.stdout, needle)).await
    }

    /// Reads until the channel closes and returns everything received.
    pub async fn read_to_end(mut self) -> Result<Output, russh::Error> {
        while self.next().await {}
        Ok(self.output)
    }

    /// What has been received so far.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Whether the server has sent EOF.
    pub fn got_eof(&self) -> bool {
        self.eof
    }

    /// Whether the channel has closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Waits for the server's answer to the last request, keeping whatever arrives before
    /// it. A channel that closes first counts as a refusal.
    async fn reply(&mut self) -> Result<bool, russh::Error> {
        loop {
            if self.closed {
                return Ok(false);
            }
            match self.channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(true),
                Some(ChannelMsg::Failure) => return Ok(false),
                Some(msg) => self.absorb(msg),
                None => self.closed = true,
            }
        }
    }

    /// Takes one message; `false` once the channel has closed.
    async fn next(&mut self) -> bool {
        if self.closed {
            return false;
        }
        match self.channel.wait().await {
            Some(msg) => self.absorb(msg),
            None => self.closed = true,
        }
        !self.closed
    }

    fn absorb(&mut self, msg: ChannelMsg) {
        match msg {
            ChannelMsg::Data { data } => self.output.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                self.output.stderr.extend_from_slice(&data)
            }
            ChannelMsg::ExitStatus { exit_status } => {
                self.output.exit = Some(ExitOutcome::Code(exit_status));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.output.exit = Some(ExitOutcome::Signal(sig_name(&signal_name)));
            }
            ChannelMsg::Eof => self.eof = true,
            ChannelMsg::Close => self.closed = true,
            _ => {}
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The SSH name of a signal (russh keeps its own private).
fn sig_name(signal: &Sig) -> String {
    match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    }
    .to_owned()
}
