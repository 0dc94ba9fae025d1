//! What a session asks to run, turned into a program and arguments by a backend's
//! configuration; and the rule for environment variable names. One copy for every backend
//! (and the server), so both backends refuse and describe the same requests the same way.

use std::collections::BTreeMap;

use crate::{BackendError, Command, NotPossible};

/// Whether a backend's configuration lets sessions run commands (`ssh host cmd`) or only a
/// shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandPolicy {
    /// Shells, commands and configured subsystems.
    Any,
    /// Shells and subsystems only (Kubernetes `pod.disableCommand`).
    ShellOnly,
}

/// The parts of a backend's configuration that say what a session's [`Command`] runs.
#[derive(Debug, Clone, Copy)]
pub struct CommandTable<'a> {
    /// The login shell's argv.
    pub shell: &'a [String],
    /// Subsystem name → program.
    pub subsystems: &'a BTreeMap<String, String>,
    /// Whether commands may run.
    pub policy: CommandPolicy,
}

impl CommandTable<'_> {
    /// The argv for `command`: the shell, `/bin/sh -c LINE`, or the subsystem's program.
    /// Refuses a command under [`CommandPolicy::ShellOnly`] and a subsystem not in the table.
    pub fn argv(&self, command: &Command) -> Result<Vec<String>, BackendError> {
        match command {
            Command::Shell => Ok(self.shell.to_vec()),
            Command::Exec(_) if self.policy == CommandPolicy::ShellOnly => {
                Err(NotPossible::CommandsDisabled.into())
            }
            Command::Exec(line) => Ok(vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()]),
            Command::Subsystem(name) => match self.subsystems.get(name) {
                Some(program) => Ok(vec![program.clone()]),
                None => Err(NotPossible::UnknownSubsystem { name: name.clone() }.into()),
            },
        }
    }
}

impl Command {
    /// How errors name the command to the user: "your shell", the command line, or "the
    /// sftp subsystem".
    pub fn describe(&self) -> String {
        match self {
            Command::Shell => "your shell".to_owned(),
            Command::Exec(line) => line.clone(),
            Command::Subsystem(name) => format!("the {name} subsystem"),
        }
    }
}

/// True for names a POSIX shell accepts in `export NAME=...`: a letter or `_`, then
/// letters, digits and `_`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(policy: CommandPolicy) -> (Vec<String>, BTreeMap<String, String>, CommandPolicy) {
        (
            vec!["/bin/bash".to_owned(), "-l".to_owned()],
            BTreeMap::from([("sftp".to_owned(), "/usr/lib/sftp-server".to_owned())]),
            policy,
        )
    }

    #[test]
    fn commands_become_argv() {
        let (shell, subsystems, policy) = table(CommandPolicy::Any);
        let t = CommandTable {
            shell: &shell,
            subsystems: &subsystems,
            policy,
        };
        assert_eq!(t.argv(&Command::Shell).unwrap(), shell);
        assert_eq!(
            t.argv(&Command::Exec("echo hi".into())).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            t.argv(&Command::Subsystem("sftp".into())).unwrap(),
            ["/usr/lib/sftp-server"]
        );
        let unknown = t.argv(&Command::Subsystem("x".into())).unwrap_err();
        assert_eq!(unknown.to_string(), "the subsystem `x` is not available");
    }

    #[test]
    fn shell_only_refuses_commands_but_not_subsystems() {
        let (shell, subsystems, policy) = table(CommandPolicy::ShellOnly);
        let t = CommandTable {
            shell: &shell,
            subsystems: &subsystems,
            policy,
        };
        let refused = t.argv(&Command::Exec("id".into())).unwrap_err();
        assert!(matches!(
            refused,
            BackendError::NotPossible(NotPossible::CommandsDisabled)
        ));
        assert!(refused.to_string().contains("disabled"));
        assert!(t.argv(&Command::Subsystem("sftp".into())).is_ok());
    }

    #[test]
    fn descriptions_name_what_was_asked() {
        assert_eq!(Command::Shell.describe(), "your shell");
        assert_eq!(Command::Exec("ls -l".into()).describe(), "ls -l");
        assert_eq!(
            Command::Subsystem("sftp".into()).describe(),
            "the sftp subsystem"
        );
    }

    #[test]
    fn env_names_are_shell_identifiers() {
        for good in ["A", "_", "LANG", "x_1", "_9"] {
            assert!(is_env_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "É", "A;B"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn env_names_agree_with_the_shell_grammar(name in "\\PC{0,12}") {
            let expected = regex_like(&name);
            prop_assert_eq!(is_env_name(&name), expected);
        }

        #[test]
        fn command_lines_pass_through_unchanged(line in "\\PC{0,64}") {
            let shell = Vec::new();
            let subsystems = BTreeMap::new();
            let t = CommandTable { shell: &shell, subsystems: &subsystems, policy: CommandPolicy::Any };
            let argv = t.argv(&Command::Exec(line.clone())).unwrap();
            prop_assert_eq!(argv, vec!["/bin/sh".to_owned(), "-c".to_owned(), line]);
        }
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, written out by bytes.
    fn regex_like(name: &str) -> bool {
        let bytes = name.as_bytes();
        !bytes.is_empty()
            && name.is_ascii()
            && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    }
}
