//! The `/bin/sh` wrapper every process is started through.
//!
//! Container APIs (Docker exec, Kubernetes exec) cannot signal an exec'd process, and the
//! Kubernetes one cannot set its environment either. So each process starts as a tiny shell
//! script that records its PID in a file, exports the environment it was given, applies
//! terminal modes, and then `exec`s the program (keeping the PID). A signal is another exec
//! running [`kill_argv`] against that PID. Nothing beyond `/bin/sh` is needed in the image.

use std::sync::Mutex;

use crate::{is_env_name, BackendError, ExitStatus, Signal, TtySpec};

/// The signal sshpod last delivered to a process, so that its end is reported as that
/// signal rather than as the shell's 128+N exit code (see [`exit_status`]).
#[derive(Debug, Default)]
pub struct DeliveredSignal(Mutex<Option<Signal>>);

impl DeliveredSignal {
    /// Marks `signal` as on its way, before it is sent: the process may die of it, and its
    /// exit be read, before the sender hears back (a `kill` exec takes tens of milliseconds to
    /// report). The mark stays if the signal is sent; otherwise the earlier one comes back.
    pub fn sending(&self, signal: Signal) -> Sending<'_> {
        let before = self.0.lock().ok().and_then(|mut d| d.replace(signal));
        Sending {
            delivered: self,
            signal,
            before,
            sent: false,
        }
    }

    /// The exit status for the process's exit `code`.
    pub fn exit_status(&self, code: i64) -> ExitStatus {
        exit_status(code, self.0.lock().ok().and_then(|d| *d))
    }
}

/// A signal on its way (see [`DeliveredSignal::sending`]). Dropped unsent, it takes its mark
/// back.
#[derive(Debug)]
pub struct Sending<'a> {
    delivered: &'a DeliveredSignal,
    signal: Signal,
    before: Option<Signal>,
    sent: bool,
}

impl Sending<'_> {
    /// The signal was sent.
    pub fn sent(mut self) {
        self.sent = true;
    }

    /// Takes the exit code of [`kill_argv`] run for the signal: 0 means delivered.
    pub fn record_kill(self, kill_code: i64) -> Result<(), BackendError> {
        if kill_code != 0 {
            return Err(BackendError::SignalNotDelivered {
                signal: self.signal,
                kill_exit_code: kill_code,
            });
        }
        self.sent();
        Ok(())
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        if let Ok(mut d) = self.delivered.0.lock() {
            // Unless another signal has been marked since.
            if *d == Some(self.signal) {
                *d = self.before;
            }
        }
    }
}

/// A fresh, unguessable PID file name for one process.
pub fn pid_file_name(random: [u8; 8]) -> String {
    let mut name = String::from(".sshpod-");
    for byte in random {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Wraps `argv` so that the process's PID lands in `pid_file` (in /dev/shm, or /tmp where
/// /dev/shm is not writable), `env` is exported, and the size and modes of `tty` are applied.
pub fn wrap_argv(
    argv: Vec<String>,
    pid_file: &str,
    env: &[(String, String)],
    tty: Option<&TtySpec>,
) -> Vec<String> {
    let mut script =
        format!("{{ echo $$ >/dev/shm/{pid_file} || echo $$ >/tmp/{pid_file}; }} 2>/dev/null; ");
    for (name, value) in env {
        // Names are checked by the caller; a name that is not a shell identifier is skipped
        // rather than given to the shell.
        if is_env_name(name) {
            script.push_str(&format!("export {name}={}; ", quote(value)));
        }
    }
    if let Some(tty) = tty {
        // The size goes in here too: a resize sent by the API races with the program's first
        // look at its terminal.
        script.push_str(&format!(
            "stty rows {} cols {}",
            tty.size.rows, tty.size.cols
        ));
        for mode in &tty.stty_modes {
            script.push(' ');
            script.push_str(mode);
        }
        script.push_str(" 2>/dev/null; ");
    }
    script.push_str("exec \"$@\"");
    let mut wrapped = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script,
        "sh".to_owned(),
    ];
    wrapped.extend(argv);
    wrapped
}

/// Like [`wrap_argv`], with `prelude` (shell code ending in `; `) run first, before anything
/// else the wrapper does.
pub fn wrap_argv_after(
    prelude: &str,
    argv: Vec<String>,
    pid_file: &str,
    env: &[(String, String)],
    tty: Option<&TtySpec>,
) -> Vec<String> {
    let mut wrapped = wrap_argv(argv, pid_file, env, tty);
    // [/bin/sh, -c, SCRIPT, sh, argv...]
    wrapped[2].insert_str(0, prelude);
    wrapped
}

/// The command that delivers `signal` to the process recorded in `pid_file`.
pub fn kill_argv(pid_file: &str, signal: Signal) -> Vec<String> {
    vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!(
            "pid=$(cat /dev/shm/{pid_file} 2>/dev/null || cat /tmp/{pid_file}) && kill -s {} \"$pid\"",
            signal.name()
        ),
    ]
}

/// Maps an exit code reported by a container API onto an SSH exit status. Both Docker and
/// Kubernetes report a process killed by signal N as 128+N, which cannot be told from
/// `exit 128+N`; it is reported as a signal only when sshpod itself delivered that signal.
pub fn exit_status(code: i64, delivered: Option<Signal>) -> ExitStatus {
    if let Some(sig) = delivered {
        if code == 128 + i64::from(sig.number()) {
            return ExitStatus::Signal(sig);
        }
    }
    ExitStatus::Code(u32::try_from(code).unwrap_or(255))
}

/// Single-quotes `value` for the shell.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TerminalSize;

    #[test]
    fn a_signal_counts_from_before_it_is_sent_and_only_if_it_was() {
        let delivered = DeliveredSignal::default();
        let sending = delivered.sending(Signal::Term);
        // The process died of it before the sender heard back: reported as the signal.
        assert_eq!(delivered.exit_status(143), ExitStatus::Signal(Signal::Term));
        assert!(sending.record_kill(0).is_ok());
        assert_eq!(delivered.exit_status(143), ExitStatus::Signal(Signal::Term));

        // A kill that failed, or a send given up, leaves the earlier mark.
        let failed = delivered.sending(Signal::Int);
        assert!(failed.record_kill(1).is_err());
        assert_eq!(delivered.exit_status(130), ExitStatus::Code(130));
        drop(delivered.sending(Signal::Hup));
        assert_eq!(delivered.exit_status(129), ExitStatus::Code(129));
        assert_eq!(delivered.exit_status(143), ExitStatus::Signal(Signal::Term));
    }

    #[test]
    fn wrapper_keeps_arguments_apart_and_records_the_pid() {
        let argv = wrap_argv(
            vec!["/bin/sh".into(), "-c".into(), "echo 'a b'; exit 3".into()],
            ".sshpod-x",
            &[],
            None,
        );
        assert_eq!(argv[0], "/bin/sh");
        assert!(argv[2].contains("echo $$ >/dev/shm/.sshpod-x"));
        assert!(argv[2].ends_with("exec \"$@\""));
        assert_eq!(argv[3], "sh");
        assert_eq!(&argv[4..], ["/bin/sh", "-c", "echo 'a b'; exit 3"]);
    }

    #[test]
    fn a_prelude_runs_before_the_pid_is_recorded() {
        let argv = wrap_argv_after("exec </x; ", vec!["cat".into()], ".sshpod-x", &[], None);
        assert!(argv[2].starts_with("exec </x; { echo $$ >/dev/shm/.sshpod-x"));
        assert_eq!(&argv[4..], ["cat"]);
    }

    #[test]
    fn environment_is_exported_quoted_and_bad_names_are_dropped() {
        let env = [
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("TRICKY".to_owned(), "it's $(not) run".to_owned()),
            ("BAD;NAME".to_owned(), "x".to_owned()),
        ];
        let argv = wrap_argv(vec!["env".into()], ".sshpod-x", &env, None);
        assert!(argv[2].contains("export LANG='C.UTF-8'; "));
        assert!(argv[2].contains(r#"export TRICKY='it'\''s $(not) run'; "#));
        assert!(!argv[2].contains("BAD"));
    }

    #[test]
    fn terminal_modes_go_through_stty() {
        let tty = TtySpec {
            term: "xterm".into(),
            size: TerminalSize { cols: 80, rows: 24 },
            stty_modes: vec!["-echo".into(), "intr".into(), "^C".into()],
        };
        let argv = wrap_argv(vec!["bash".into()], ".sshpod-x", &[], Some(&tty));
        assert!(argv[2].contains("stty rows 24 cols 80 -echo intr ^C 2>/dev/null;"));
    }

    #[test]
    fn exit_codes_become_signals_only_when_sshpod_sent_them() {
        assert_eq!(exit_status(0, None), ExitStatus::Code(0));
        assert_eq!(exit_status(143, None), ExitStatus::Code(143));
        assert_eq!(
            exit_status(143, Some(Signal::Term)),
            ExitStatus::Signal(Signal::Term)
        );
        assert_eq!(exit_status(7, Some(Signal::Term)), ExitStatus::Code(7));
        assert_eq!(exit_status(-1, None), ExitStatus::Code(255));
    }

    #[test]
    fn kill_names_the_signal_and_pid_files_are_random_hex() {
        assert!(kill_argv(".sshpod-x", Signal::Usr1)[2].contains("kill -s USR1"));
        assert_eq!(pid_file_name([0xab; 8]), ".sshpod-abababababababab");
    }
}

/// Property tests: whatever a client sends as an environment value comes out of the shell as
/// exactly that value, never as code.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn any_value_survives_the_shell_exactly(value in "[^\u{0}]{0,64}") {
            let script = format!("printf %s {}", quote(&value));
            let out = std::process::Command::new("/bin/sh").args(["-c", &script]).output().unwrap();
            prop_assert!(out.status.success());
            prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }

        #[test]
        fn shell_metacharacters_stay_data(value in "[$`\\\\'\"();&|<>*?~ \n\t a-z]{0,32}") {
            let wrapped = wrap_argv(
                vec!["printenv".into(), "V".into()],
                "",
                &[("V".to_owned(), value.clone())],
                None,
            );
            // Drop the PID-file step (a host path) and run the rest as the container would.
            let script = wrapped[2].split_once("2>/dev/null; ").map(|(_, rest)| rest).unwrap().to_owned();
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &script, "sh", "printenv", "V"])
                .env_clear()
                .output()
                .unwrap();
            prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{value}\n"));
        }
    }
}
