//! Which environment variables a client may set for a session (`env` requests, `SendEnv`,
//! `SetEnv`), following OpenSSH's model.
//!
//! Only names matching `ssh.acceptEnv` are taken (by default `LANG` and `LC_*`, as Debian's
//! sshd ships; `TERM` comes with the terminal request instead), at most [`MAX_VARIABLES`] and
//! [`MAX_BYTES`] per session. When the login's command is forced (a key's `command=`, a
//! certificate's `force-command`), variables that make a shell or the dynamic linker run
//! something of the client's choosing before that command are dropped whatever the patterns
//! say: the forced command is the point of the restriction.

/// Variables a session may be given.
pub(crate) const MAX_VARIABLES: usize = 128;

/// Bytes of names and values a session may be given.
pub(crate) const MAX_BYTES: usize = 64 * 1024;

/// Names never passed to a forced command: each lets the client run code first (`BASH_ENV`
/// and `ENV` name a file a shell sources, `SHELLOPTS`/`BASHOPTS` turn on tracing whose `PS4`
/// is expanded, `BASH_FUNC_*` define functions, `LD_*` load libraries, `PATH` and `IFS` change
/// what the command's words mean).
const NEVER_WHEN_FORCED: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PATH",
    "IFS",
    "BASH_FUNC_*",
    "LD_*",
];

/// Why a variable was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a portable name (letters, digits, `_`, not starting with a digit).
    BadName,
    /// Not matched by `ssh.acceptEnv`.
    NotAccepted,
    /// The session has [`MAX_VARIABLES`] or [`MAX_BYTES`] already.
    TooMany,
}

/// The variables a session's client has sent so far.
#[derive(Debug, Default)]
pub(crate) struct SessionEnv {
    vars: Vec<(String, String)>,
    bytes: usize,
}

impl SessionEnv {
    /// Takes `name=value` if `accept` patterns and the session's limits allow. A name sent
    /// again replaces its value.
    pub(crate) fn offer(
        &mut self,
        accept: &[String],
        name: &str,
        value: &str,
    ) -> Result<(), Refused> {
        if !sshpod_core::is_env_name(name) {
            return Err(Refused::BadName);
        }
        if !accept.iter().any(|pattern| matches(pattern, name)) {
            return Err(Refused::NotAccepted);
        }
        let replaced = self
            .vars
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| self.vars.remove(i));
        let freed = replaced.as_ref().map_or(0, |(n, v)| n.len() + v.len());
        let bytes = self.bytes - freed + name.len() + value.len();
        if self.vars.len() >= MAX_VARIABLES || bytes > MAX_BYTES {
            if let Some(old) = replaced {
                self.vars.push(old);
            }
            return Err(Refused::TooMany);
        }
        self.bytes = bytes;
        self.vars.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The variables for the session's process; without those a forced command must not see.
    pub(crate) fn into_vars(self, command_forced: bool) -> Vec<(String, String)> {
        let mut vars = self.vars;
        if command_forced {
            vars.retain(|(name, _)| !NEVER_WHEN_FORCED.iter().any(|p| matches(p, name)));
        }
        vars
    }
}

/// OpenSSH's wildcard match: `*` any run of characters, `?` any one.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Where the last `*` was, and the name position it has taken up to.
    let (mut pi, mut ni, mut star) = (0, 0, None);
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> Vec<String> {
        vec!["LANG".into(), "LC_*".into()]
    }

    #[test]
    fn wildcards_as_openssh_matches_them() {
        assert!(matches("LC_*", "LC_ALL"));
        assert!(matches("LC_*", "LC_"));
        assert!(!matches("LC_*", "LANG"));
        assert!(matches("*", "ANYTHING"));
        assert!(matches("L?NG", "LANG"));
        assert!(!matches("L?NG", "LNG"));
        assert!(matches("*_*_X", "A_B_C_X"));
        assert!(!matches("*_*_X", "A_B_C_Y"));
        assert!(matches("LANG", "LANG"));
        assert!(!matches("LANG", "LANGUAGE"));
    }

    #[test]
    fn only_accepted_portable_names_are_taken() {
        let mut env = SessionEnv::default();
        assert_eq!(env.offer(&debian(), "LANG", "C.UTF-8"), Ok(()));
        assert_eq!(env.offer(&debian(), "LC_TIME", "C"), Ok(()));
        assert_eq!(
            env.offer(&debian(), "BASH_ENV", "$(id)"),
            Err(Refused::NotAccepted)
        );
        assert_eq!(env.offer(&["*".into()], "A-B", "x"), Err(Refused::BadName));
        assert_eq!(
            env.offer(&debian(), "LANG", "en_GB.UTF-8"),
            Ok(()),
            "replaced"
        );
        assert_eq!(
            env.into_vars(false),
            [
                ("LC_TIME".to_owned(), "C".to_owned()),
                ("LANG".to_owned(), "en_GB.UTF-8".to_owned())
            ]
        );
    }

    #[test]
    fn a_forced_command_never_sees_what_would_run_first() {
        let all = vec!["*".to_owned()];
        let mut env = SessionEnv::default();
        for name in [
            "BASH_ENV",
            "ENV",
            "SHELLOPTS",
            "BASHOPTS",
            "PS4",
            "PATH",
            "IFS",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_FUNC_ls%%",
            "LANG",
        ] {
            // BASH_FUNC_ls%% is not a portable name and is refused outright.
            let _ = env.offer(&all, name, "$(touch /tmp/pwned)");
        }
        let forced = env.into_vars(true);
        assert_eq!(
            forced,
            [("LANG".to_owned(), "$(touch /tmp/pwned)".to_owned())]
        );
    }

    #[test]
    fn a_session_takes_at_most_so_many_variables_and_bytes() {
        let all = vec!["*".to_owned()];
        let mut env = SessionEnv::default();
        for i in 0..MAX_VARIABLES {
            assert_eq!(env.offer(&all, &format!("V{i}"), "x"), Ok(()));
        }
        assert_eq!(env.offer(&all, "ONE_MORE", "x"), Err(Refused::TooMany));
        assert_eq!(
            env.offer(&all, "V0", "y"),
            Ok(()),
            "replacing is not adding"
        );

        let mut env = SessionEnv::default();
        let big = "x".repeat(MAX_BYTES / 2);
        assert_eq!(env.offer(&all, "A", &big), Ok(()));
        assert_eq!(env.offer(&all, "B", &big), Err(Refused::TooMany));
        assert_eq!(env.into_vars(false).len(), 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The plain recursive definition of a wildcard match, to hold the fast one against.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, _) => n.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn wildcards_agree_with_their_definition(pattern in "[AB_*?]{0,8}", name in "[AB_]{0,10}") {
            prop_assert_eq!(matches(&pattern, &name), reference(pattern.as_bytes(), name.as_bytes()));
        }

        #[test]
        fn no_client_gets_past_the_caps(
            offers in proptest::collection::vec(
                (
                    "[A-Z_][A-Z0-9_]{0,6}|.{0,8}",
                    prop_oneof![
                        "[a-z$()]{0,4}",
                        (1000usize..3000).prop_map(|n| "x".repeat(n))
                    ],
                ),
                0..300,
            )
        ) {
            let all = vec!["*".to_owned()];
            let mut env = SessionEnv::default();
            for (name, value) in &offers {
                let _ = env.offer(&all, name, value);
            }
            let vars = env.into_vars(true);
            prop_assert!(vars.len() <= MAX_VARIABLES);
            prop_assert!(vars.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() <= MAX_BYTES);
            for (name, _) in &vars {
                prop_assert!(sshpod_core::is_env_name(name));
                prop_assert!(!NEVER_WHEN_FORCED.iter().any(|p| matches(p, name)), "{} reached a forced command", name);
            }
        }
    }
}
