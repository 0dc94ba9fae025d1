//! The fake's command language: what each program does with its stdin, stdout and stderr.
//!
//! Parsing is a pure function ([`Program::parse`]); running needs only the pipes and the
//! resize events, so signals and container teardown are handled around it (in `process`).

use std::collections::BTreeMap;

use sshpod_core::{ExitStatus, Signal, TerminalSize, TtySpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// A program of the command language, parsed from a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    /// `echo ARGS...`: the arguments, joined by one space, and a newline, on stdout.
    Echo(String),
    /// `stderr TEXT`: the text and a newline on stderr.
    Stderr(String),
    /// `exit N`: ends with code N (modulo 256, as a shell does); `Err` holds a bad argument.
    Exit(Result<u32, String>),
    /// `cat`, the shell and known subsystems: stdin to stdout until EOF.
    Cat,
    /// `count`: reads stdin to EOF, then prints the number of bytes.
    Count,
    /// `yes-bytes N`: N bytes of `y` on stdout; `Err` holds a bad argument.
    YesBytes(Result<u64, String>),
    /// `env`: the process's environment, sorted.
    Env,
    /// `tty`: the terminal, then one line per resize.
    Tty,
    /// `wait`: runs until any signal.
    Wait,
    /// `sleep-forever`: runs until a terminating signal.
    SleepForever,
    /// An empty command line: exits 0 at once.
    Nothing,
    /// Any other first word: `sh: NAME: not found`, exit 127.
    NotFound(String),
}

/// What a running program can see besides its pipes.
#[derive(Debug, Clone)]
pub(crate) struct ProgramContext {
    /// The process's environment: the connection's, then the client's, then `TERM` with a tty.
    pub(crate) env: Vec<(String, String)>,
    /// The terminal, when one was asked for.
    pub(crate) tty: Option<TtySpec>,
}

/// The program's ends of its pipes. With a tty there is no stderr: it goes to stdout.
#[derive(Debug)]
pub(crate) struct ProgramIo {
    pub(crate) stdin: DuplexStream,
    pub(crate) stdout: DuplexStream,
    pub(crate) stderr: Option<DuplexStream>,
}

/// The reader of the program's output went away: the program dies of SIGPIPE, as a real one
/// would.
struct BrokenPipe;

impl ProgramIo {
    async fn out(&mut self, data: &[u8]) -> Result<(), BrokenPipe> {
        self.stdout.write_all(data).await.map_err(|_| BrokenPipe)
    }

    async fn err(&mut self, data: &[u8]) -> Result<(), BrokenPipe> {
        match &mut self.stderr {
            Some(stderr) => stderr.write_all(data).await.map_err(|_| BrokenPipe),
            None => self.out(data).await,
        }
    }
}

impl Program {
    /// Parses a command line. Words are split on whitespace; there is no quoting.
    pub(crate) fn parse(line: &str) -> Program {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            return Program::Nothing;
        };
        let rest = words.collect::<Vec<_>>();
        match name {
            "echo" => Program::Echo(rest.join(" ")),
            "stderr" => Program::Stderr(rest.join(" ")),
            "exit" => Program::Exit(match rest.first() {
                None => Ok(0),
                Some(n) => n
                    .parse::<u32>()
                    .map(|n| n % 256)
                    .map_err(|_| (*n).to_owned()),
            }),
            "cat" => Program::Cat,
            "count" => Program::Count,
            "yes-bytes" => Program::YesBytes(match rest.first() {
                None => Err(String::new()),
                Some(n) => n.parse::<u64>().map_err(|_| (*n).to_owned()),
            }),
            "env" => Program::Env,
            "tty" => Program::Tty,
            "wait" => Program::Wait,
            "sleep-forever" => Program::SleepForever,
            other => Program::NotFound(other.to_owned()),
        }
    }

    /// Whether `signal` ends the program: any signal ends `wait`; the others end on the
    /// signals whose default action a test cares about (KILL, TERM, INT, HUP) and ignore the
    /// rest.
    pub(crate) fn ends_on(&self, signal: Signal) -> bool {
        matches!(self, Program::Wait)
            || matches!(
                signal,
                Signal::Kill | Signal::Term | Signal::Int | Signal::Hup
            )
    }

    /// Runs the program to its end. Dropping the future stops it; its pipes close with it.
    pub(crate) async fn run(
        self,
        mut io: ProgramIo,
        ctx: ProgramContext,
        resizes: mpsc::UnboundedReceiver<TerminalSize>,
    ) -> ExitStatus {
        match self.run_io(&mut io, ctx, resizes).await {
            Ok(status) => status,
            Err(BrokenPipe) => ExitStatus::Signal(Signal::Pipe),
        }
    }

    async fn run_io(
        self,
        io: &mut ProgramIo,
        ctx: ProgramContext,
        resizes: mpsc::UnboundedReceiver<TerminalSize>,
    ) -> Result<ExitStatus, BrokenPipe> {
        let code = match self {
            Program::Echo(text) => {
                io.out(format!("{text}\n").as_bytes()).await?;
                0
            }
            Program::Stderr(text) => {
                io.err(format!("{text}\n").as_bytes()).await?;
                0
            }
            Program::Exit(Ok(code)) => code,
            Program::Exit(Err(arg)) => {
                io.err(format!("sh: exit: Illegal number: {arg}\n").as_bytes())
                    .await?;
                2
            }
            Program::Cat => {
                let mut buf = vec![0; 16 * 1024];
                loop {
                    match io.stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => io.out(&buf[..n]).await?,
                    }
                }
                0
            }
            Program::Count => {
                let mut buf = vec![0; 16 * 1024];
                let mut total = 0u64;
                loop {
                    match io.stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                io.out(format!("{total}\n").as_bytes()).await?;
                0
            }
            Program::YesBytes(Ok(mut left)) => {
                let chunk = [b'y'; 16 * 1024];
                while left > 0 {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                    io.out(&chunk[..n]).await?;
                    left -= n as u64;
                }
                0
            }
            Program::YesBytes(Err(arg)) => {
                io.err(format!("yes-bytes: not a number: `{arg}`\n").as_bytes())
                    .await?;
                2
            }
            Program::Env => {
                let sorted = ctx.env.into_iter().collect::<BTreeMap<_, _>>();
                let mut text = String::new();
                for (name, value) in sorted {
                    text.push_str(&format!("{name}={value}\n"));
                }
                io.out(text.as_bytes()).await?;
                0
            }
            Program::Tty => return tty(io, ctx.tty, resizes).await,
            Program::Wait | Program::SleepForever => std::future::pending().await,
            Program::Nothing => 0,
            Program::NotFound(name) => {
                io.err(format!("sh: {name}: not found\n").as_bytes())
                    .await?;
                127
            }
        };
        Ok(ExitStatus::Code(code))
    }
}

/// `tty`: without a terminal, says so and exits 0. With one, prints it, then a line per
/// resize until stdin ends.
async fn tty(
    io: &mut ProgramIo,
    tty: Option<TtySpec>,
    mut resizes: mpsc::UnboundedReceiver<TerminalSize>,
) -> Result<ExitStatus, BrokenPipe> {
    let Some(tty) = tty else {
        io.out(b"no tty\n").await?;
        return Ok(ExitStatus::Code(0));
    };
    let header = format!(
        "term={} cols={} rows={}\n",
        tty.term, tty.size.cols, tty.size.rows
    );
    io.out(header.as_bytes()).await?;
    let mut buf = vec![0; 4096];
    let mut resizes_open = true;
    loop {
        tokio::select! {
            size = resizes.recv(), if resizes_open => match size {
                Some(size) => {
                    io.out(format!("resize {}x{}\n", size.cols, size.rows).as_bytes())
                        .await?;
                }
                None => resizes_open = false,
            },
            read = io.stdin.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ok(ExitStatus::Code(0)),
                Ok(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_word_as_the_program() {
        assert_eq!(
            Program::parse("echo  hello   world"),
            Program::Echo("hello world".into())
        );
        assert_eq!(
            Program::parse("stderr oh no"),
            Program::Stderr("oh no".into())
        );
        assert_eq!(Program::parse("exit 3"), Program::Exit(Ok(3)));
        assert_eq!(Program::parse("exit 300"), Program::Exit(Ok(44)));
        assert_eq!(Program::parse("exit"), Program::Exit(Ok(0)));
        assert_eq!(Program::parse("exit x"), Program::Exit(Err("x".into())));
        assert_eq!(Program::parse("yes-bytes 10"), Program::YesBytes(Ok(10)));
        assert_eq!(Program::parse("   "), Program::Nothing);
        assert_eq!(Program::parse("vim file"), Program::NotFound("vim".into()));
    }

    #[test]
    fn wait_ends_on_any_signal_and_the_others_on_terminating_ones() {
        assert!(Program::Wait.ends_on(Signal::Usr1));
        assert!(!Program::SleepForever.ends_on(Signal::Usr1));
        assert!(Program::SleepForever.ends_on(Signal::Term));
        assert!(Program::Cat.ends_on(Signal::Kill));
    }
}
