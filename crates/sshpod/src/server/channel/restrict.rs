//! Forced commands: what a session runs when the security policy (`security.forceCommand`)
//! or the login's key or certificate (`command=`, `force-command`) forces one. As with
//! OpenSSH's ForceCommand, the server's setting wins over the key's. The pty and forwarding
//! checks are in the handler; this is here because it rewrites the request.

use std::collections::BTreeMap;

use sshpod_core::Command;

/// The variable that tells a forced command what the client asked for, as in OpenSSH.
const ORIGINAL_COMMAND: &str = "SSH_ORIGINAL_COMMAND";

/// The command to run for `requested`: the forced command when there is one, with the
/// client's command in `SSH_ORIGINAL_COMMAND` (an exec line, or a subsystem's program; a shell
/// has none). `subsystems` maps subsystem names to programs.
pub(crate) fn command_for(
    forced: Option<&str>,
    requested: Command,
    env: &mut Vec<(String, String)>,
    subsystems: &BTreeMap<String, String>,
) -> Command {
    let Some(forced) = forced else {
        return requested;
    };
    // The client must not choose the variable's value by sending it as an env request.
    env.retain(|(name, _)| name != ORIGINAL_COMMAND);
    let original = match requested {
        Command::Shell => None,
        Command::Exec(line) => Some(line),
        Command::Subsystem(name) => Some(subsystems.get(&name).cloned().unwrap_or(name)),
    };
    if let Some(original) = original {
        env.push((ORIGINAL_COMMAND.to_owned(), original));
    }
    Command::Exec(forced.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forced(command: &str) -> Option<&str> {
        Some(command)
    }

    fn subsystems() -> BTreeMap<String, String> {
        BTreeMap::from([("sftp".to_owned(), "/usr/lib/openssh/sftp-server".to_owned())])
    }

    #[test]
    fn without_a_forced_command_nothing_changes() {
        let mut env = vec![("A".to_owned(), "b".to_owned())];
        let command = command_for(None, Command::Exec("ls".into()), &mut env, &subsystems());
        assert_eq!(command, Command::Exec("ls".into()));
        assert_eq!(env, [("A".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn forced_command_replaces_every_kind_of_request() {
        let r = forced("echo forced");
        let mut env = vec![(ORIGINAL_COMMAND.to_owned(), "spoofed".to_owned())];
        let command = command_for(r, Command::Exec("rm -rf /".into()), &mut env, &subsystems());
        assert_eq!(command, Command::Exec("echo forced".into()));
        assert_eq!(env, [(ORIGINAL_COMMAND.to_owned(), "rm -rf /".to_owned())]);

        let mut env = Vec::new();
        let command = command_for(r, Command::Shell, &mut env, &subsystems());
        assert_eq!(command, Command::Exec("echo forced".into()));
        assert!(env.is_empty());

        let mut env = Vec::new();
        let command = command_for(
            r,
            Command::Subsystem("sftp".into()),
            &mut env,
            &subsystems(),
        );
        assert_eq!(command, Command::Exec("echo forced".into()));
        assert_eq!(
            env,
            [(
                ORIGINAL_COMMAND.to_owned(),
                "/usr/lib/openssh/sftp-server".to_owned()
            )]
        );
    }
}
