//! Who a login runs as inside its container (`identity` in the configuration): the user's name,
//! uid, gid, home and shell, the `/etc/passwd` and `/etc/group` entries that make `whoami` and
//! `id` answer right on a stock image, and the environment sshd gives a session.
//!
//! The login name comes from a client or a config server and is hostile: it reaches
//! `/etc/passwd`, a path and a hostname only after [`is_user_name`] accepted it. Everything
//! here is pure; the backends run [`Identity::setup_argv`] as root once a container starts, and
//! start every process with [`Identity::prelude`] and [`Identity::env`].

use std::fmt;

use sshpod_config::{expand, is_dns_label, IdentityConfig, UidRange};

/// The longest login name taken (Linux's `useradd` limit).
pub const MAX_USER_NAME: usize = 32;

/// The `PATH` a session starts with.
pub const SESSION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A login that cannot be given its identity or hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The login name cannot be a user name inside a container.
    BadUserName {
        /// The name, with anything unprintable escaped.
        name: String,
    },
    /// The hostname template gives no valid hostname for this login.
    BadHostname {
        /// What the template gave.
        hostname: String,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::BadUserName { name } => write!(
                f,
                "the login name `{name}` cannot be a user in your container: use 1 to \
                 {MAX_USER_NAME} letters, digits, `_`, `.` or `-`, not starting with `.` or `-`, \
                 and not only digits"
            ),
            IdentityError::BadHostname { hostname } => write!(
                f,
                "`{hostname}` cannot be your container's hostname (letters, digits and `-`, at \
                 most 63)"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// The user a login runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The login name (checked by [`is_user_name`]).
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// The home directory.
    pub home: String,
    /// The login shell; `None` means `/bin/bash` where the image has it, else `/bin/sh`.
    pub shell: Option<String>,
    /// Whether the user may become root with `sudo`.
    pub sudo: bool,
}

/// Sets up the user in a started container, as root; `$1`..`$6` are the name, uid, gid,
/// home, shell (empty: detect) and `1` for sudo. Only shell built-ins edit the files, so an
/// image with nothing but `/bin/sh` works; the few programs needed fall back to busybox's.
/// The files are rewritten in place (a bind-mounted `/etc/passwd` stays mounted). Entries of
/// the image with the same name or uid are replaced, so `whoami` names this user; a group with
/// the gid is kept (its name is then the group's), one with the name and another gid goes.
/// The home is created only when missing and never emptied; it is given to the user.
const SETUP: &str = r#"set -e
name=$1 uid=$2 gid=$3 home=$4 shell=$5 sudo=$6
run() { if command -v "$1" >/dev/null 2>&1; then "$@"; else busybox "$@"; fi; }
if [ -z "$shell" ]; then shell=/bin/sh; if [ -x /bin/bash ]; then shell=/bin/bash; fi; fi
umask 022
[ -d /etc ] || run mkdir -p /etc
passwd="root:x:0:0:root:/root:/bin/sh
"
if [ -f /etc/passwd ]; then
  passwd=
  while IFS= read -r line || [ -n "$line" ]; do
    rest=${line#*:}; rest=${rest#*:}
    case "$line" in "$name":*) continue ;; esac
    [ "${rest%%:*}" = "$uid" ] && continue
    passwd="$passwd$line
"
  done </etc/passwd
fi
printf '%s%s:x:%s:%s:%s:%s:%s\n' "$passwd" "$name" "$uid" "$gid" "$name" "$home" "$shell" >/etc/passwd
group= have=
if [ -f /etc/group ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    rest=${line#*:}; rest=${rest#*:}
    if [ "${rest%%:*}" = "$gid" ]; then have=1
    else case "$line" in "$name":*) continue ;; esac
    fi
    group="$group$line
"
  done </etc/group
else
  group="root:x:0:
"
fi
if [ -n "$have" ]; then printf '%s' "$group" >/etc/group
else printf '%s%s:x:%s:\n' "$group" "$name" "$gid" >/etc/group; fi
if [ -f /etc/shadow ]; then
  shadow=
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in "$name":*) continue ;; esac
    shadow="$shadow$line
"
  done </etc/shadow
  printf '%s%s:*:1::::::\n' "$shadow" "$name" >/etc/shadow
fi
if [ ! -d "$home" ]; then run mkdir -p "$home"; run chmod 0755 "$home"; fi
run chown "$uid:$gid" "$home"
if [ "$sudo" = 1 ]; then
  if [ -d /etc/sudoers.d ]; then
    printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$name" >/etc/sudoers.d/sshpod-user
    run chmod 0440 /etc/sudoers.d/sshpod-user
  else
    echo "sshpod: sudo is on, but this image has no sudo" >&2
  fi
fi
"#;

/// Becomes the user (`$1` uid, `$2` gid, `$3` name) and runs the rest of the arguments;
/// exits 126 with a message when the image has no way to switch users.
const SWITCH_USER: &str = r#"u=$1 g=$2 n=$3; shift 3
if setpriv --reuid="$u" --regid="$g" --clear-groups true 2>/dev/null; then
  exec setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
fi
if command -v busybox >/dev/null 2>&1; then exec busybox su -p -s /bin/sh "$n" -c 'exec "$0" "$@"' "$@"; fi
echo "sshpod: cannot become $n: the image has neither setpriv (util-linux) nor busybox" >&2
exit 126
"#;

impl Identity {
    /// The identity of a login as `login` under `config`; `None` when `identity.enable` is
    /// off. The name is refused unless [`is_user_name`] accepts it.
    pub fn resolve(config: &IdentityConfig, login: &str) -> Result<Option<Self>, IdentityError> {
        if !config.enable {
            return Ok(None);
        }
        if !is_user_name(login) {
            return Err(IdentityError::BadUserName {
                name: login.escape_default().to_string(),
            });
        }
        let uid = if config.uid != 0 {
            config.uid
        } else {
            uid_for(login, config.uid_range)
        };
        let gid = if config.gid != 0 { config.gid } else { uid };
        Ok(Some(Self {
            name: login.to_owned(),
            uid,
            gid,
            home: expand(&config.home, login),
            shell: (!config.shell.is_empty()).then(|| config.shell.clone()),
            sudo: config.sudo,
        }))
    }

    /// The `uid:gid` a container API runs a process as.
    pub fn user_spec(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }

    /// The command (`/bin/sh -c` and arguments) that sets the user up, run as root once the
    /// container has started and before any of the user's processes.
    pub fn setup_argv(&self) -> Vec<String> {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            SETUP.to_owned(),
            "sshpod-setup".to_owned(),
            self.name.clone(),
            self.uid.to_string(),
            self.gid.to_string(),
            self.home.clone(),
            self.shell.clone().unwrap_or_default(),
            if self.sudo { "1" } else { "0" }.to_owned(),
        ]
    }

    /// The environment sshd gives every session (besides `SSH_CLIENT`, `SSH_CONNECTION`, which
    /// the server sets, and `SHELL` and `SSH_TTY`, which [`Identity::prelude`] sets).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("USER".to_owned(), self.name.clone()),
            ("LOGNAME".to_owned(), self.name.clone()),
            ("HOME".to_owned(), self.home.clone()),
            ("PATH".to_owned(), SESSION_PATH.to_owned()),
        ]
    }

    /// Shell code (ending in `; `) that each process runs before its program: it exports
    /// `SHELL`, enters the home (`/` if it is not there), and with a terminal exports
    /// `SSH_TTY`. It does not rely on the environment, which is exported after it on some
    /// backends.
    pub fn prelude(&self, tty: bool) -> String {
        let mut code = match &self.shell {
            Some(shell) => format!("SHELL={}; ", quote(shell)),
            None => "SHELL=/bin/sh; if [ -x /bin/bash ]; then SHELL=/bin/bash; fi; ".to_owned(),
        };
        code.push_str("export SHELL; ");
        code.push_str(&format!("cd {} 2>/dev/null || cd /; ", quote(&self.home)));
        if tty {
            code.push_str(
                "SSH_TTY=$(tty 2>/dev/null || busybox tty 2>/dev/null) && export SSH_TTY \
                 || unset SSH_TTY; ",
            );
        }
        code
    }

    /// `argv` run as the user, for a backend whose exec API cannot set the user (Kubernetes):
    /// a root shell runs [`Identity::prelude`], then becomes the user with util-linux's
    /// `setpriv` (Debian, Ubuntu) or else busybox's `su` (Alpine, busybox images), each of
    /// which `exec`s, so the process keeps the PID the wrapper recorded.
    pub fn run_as_argv(&self, tty: bool, argv: Vec<String>) -> Vec<String> {
        let mut script = self.prelude(tty);
        script.push_str(SWITCH_USER);
        let mut out = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            script,
            "sh".to_owned(),
            self.uid.to_string(),
            self.gid.to_string(),
            self.name.clone(),
        ];
        out.extend(argv);
        out
    }

    /// The argv of the user's login shell (`ssh host`), read from `$SHELL` as
    /// [`Identity::prelude`] set it.
    pub fn login_shell_argv() -> Vec<String> {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "exec \"$SHELL\" -l".to_owned(),
        ]
    }
}

/// The container hostname for `login` from the template `identity.hostname`; `None` when the
/// template is empty. The login name is lower-cased and its `_` and `.` become `-`, since
/// hostnames allow neither; a result that is still no DNS label is refused.
pub fn hostname_for(template: &str, login: &str) -> Result<Option<String>, IdentityError> {
    if template.is_empty() {
        return Ok(None);
    }
    let label: String = login
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let hostname = expand(template, &label);
    if is_dns_label(&hostname) {
        Ok(Some(hostname))
    } else {
        Err(IdentityError::BadHostname {
            hostname: hostname.escape_default().to_string(),
        })
    }
}

/// Whether `name` can be a user name in `/etc/passwd`, a path component and (mapped) a
/// hostname: 1 to [`MAX_USER_NAME`] ASCII letters, digits, `_`, `.` and `-`, not starting with
/// `.` or `-` (no hidden directories, no options), and not only digits (a uid).
pub fn is_user_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_USER_NAME
        && bytes[0] != b'.'
        && bytes[0] != b'-'
        && !bytes.iter().all(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The uid a login name maps to in `range`: FNV-1a (64-bit) of the name's bytes, modulo the
/// range's size, from its first uid. Stable across versions, hosts and restarts; two names
/// may share a uid (with the default 50,000 uids, about even odds once some 260 users have
/// logged in), which a config server's per-user `uid` avoids.
pub fn uid_for(name: &str, range: UidRange) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = name
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    let size = u64::from(range.max.saturating_sub(range.min)) + 1;
    // The remainder is below `size`, which fits in u32 plus one.
    range.min + u32::try_from(hash % size).unwrap_or(0)
}

/// Single-quotes `value` for the shell.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IdentityConfig {
        IdentityConfig {
            enable: true,
            ..IdentityConfig::default()
        }
    }

    fn resolve(config: &IdentityConfig, login: &str) -> Identity {
        match Identity::resolve(config, login) {
            Ok(Some(identity)) => identity,
            other => panic!("{login}: {other:?}"),
        }
    }

    #[test]
    fn off_means_no_identity() {
        let off = IdentityConfig::default();
        assert_eq!(Identity::resolve(&off, "a:b"), Ok(None));
    }

    #[test]
    fn defaults_give_a_home_under_home_and_a_mapped_uid() {
        let alice = resolve(&config(), "alice");
        assert_eq!(alice.home, "/home/alice");
        assert!((10_000..=59_999).contains(&alice.uid));
        assert_eq!(alice.gid, alice.uid);
        assert_eq!(alice.shell, None);
        assert_eq!(alice.user_spec(), format!("{}:{}", alice.uid, alice.uid));
    }

    #[test]
    fn a_fixed_uid_and_gid_win_over_the_range() {
        let fixed = IdentityConfig {
            uid: 2000,
            gid: 100,
            shell: "/bin/zsh".into(),
            ..config()
        };
        let bob = resolve(&fixed, "bob");
        assert_eq!((bob.uid, bob.gid), (2000, 100));
        assert_eq!(bob.shell.as_deref(), Some("/bin/zsh"));
    }

    #[test]
    fn uid_mapping_is_stable_and_stays_in_its_range() {
        let range = UidRange {
            min: 10_000,
            max: 59_999,
        };
        // Fixed values: a change here moves every user's files to another owner.
        assert_eq!(uid_for("alice", range), uid_for("alice", range));
        assert_eq!(uid_for("alice", range), 26_183);
        assert_ne!(uid_for("alice", range), uid_for("bob", range));
        for min in [1, 1000, u32::MAX - 10] {
            let range = UidRange {
                min,
                max: min.saturating_add(7),
            };
            for name in ["a", "alice", "bob", "x_y-z.1", &"n".repeat(32)] {
                let uid = uid_for(name, range);
                assert!((range.min..=range.max).contains(&uid), "{name}: {uid}");
            }
        }
        let one = UidRange { min: 5, max: 5 };
        assert_eq!(uid_for("anyone", one), 5);
        let all = UidRange {
            min: 1,
            max: u32::MAX,
        };
        assert!(uid_for("alice", all) >= 1);
    }

    #[test]
    fn hostile_names_never_become_users() {
        for bad in [
            "",
            "a:b",
            "a\nroot::0:0::/:/bin/sh",
            "a b",
            "../etc",
            ".hidden",
            "-rf",
            "1234",
            "a/b",
            "é",
            "a\0b",
            &"n".repeat(33),
        ] {
            assert!(!is_user_name(bad), "{bad:?}");
            let refused = Identity::resolve(&config(), bad);
            assert!(
                matches!(refused, Err(IdentityError::BadUserName { .. })),
                "{bad:?}: {refused:?}"
            );
        }
        for good in ["alice", "Bob", "x_y-z.1", "_svc", "a1", &"n".repeat(32)] {
            assert!(is_user_name(good), "{good:?}");
        }
        let message = match Identity::resolve(&config(), "a\nb") {
            Err(e) => e.to_string(),
            Ok(other) => panic!("{other:?}"),
        };
        assert!(message.contains("`a\\nb`"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn setup_takes_values_as_arguments_not_code() {
        let alice = resolve(&config(), "alice");
        let argv = alice.setup_argv();
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert!(!argv[2].contains("alice"));
        assert_eq!(
            argv[4..],
            [
                "alice".to_owned(),
                alice.uid.to_string(),
                alice.uid.to_string(),
                "/home/alice".to_owned(),
                String::new(),
                "0".to_owned()
            ]
        );
    }

    #[test]
    fn setup_writes_passwd_and_group_entries() {
        // Runs the script against a scratch root: `/etc` is rewritten under a temp dir.
        let dir = std::env::temp_dir().join(format!("sshpod-identity-{}", std::process::id()));
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &str| {
            std::fs::write(etc.join(name), text).unwrap_or_else(|e| panic!("{e}"))
        };
        write(
            "passwd",
            "root:x:0:0:root:/root:/bin/bash\nold:x:20001:20001::/home/old:/bin/sh\nalice:x:1000:1000::/x:/bin/sh",
        );
        write("group", "root:x:0:\nusers:x:100:\nalice:x:1000:\n");
        let fixed = IdentityConfig {
            uid: 20001,
            gid: 100,
            home: format!("{}/home/%u", dir.display()),
            shell: "/bin/sh".into(),
            ..config()
        };
        let alice = resolve(&fixed, "alice");
        let script = alice.setup_argv()[2].replace("/etc/", &format!("{}/etc/", dir.display()));
        let mut argv = alice.setup_argv();
        argv[2] = script.replace("run chown", ": chown");
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success());
        let read = |name: &str| std::fs::read_to_string(etc.join(name)).unwrap_or_default();
        assert_eq!(
            read("passwd"),
            format!(
                "root:x:0:0:root:/root:/bin/bash\nalice:x:20001:100:alice:{}/home/alice:/bin/sh\n",
                dir.display()
            )
        );
        // The group with the gid stays and names it; the one with the name and another gid goes.
        assert_eq!(read("group"), "root:x:0:\nusers:x:100:\n");
        assert!(dir.join("home/alice").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_prelude_sets_shell_home_and_tty() {
        let mut alice = resolve(&config(), "alice");
        let plain = alice.prelude(false);
        assert!(plain.contains("[ -x /bin/bash ]"));
        assert!(plain.contains("cd '/home/alice' 2>/dev/null || cd /; "));
        assert!(!plain.contains("SSH_TTY"));
        assert!(alice.prelude(true).contains("export SSH_TTY"));
        alice.shell = Some("/bin/it's".into());
        assert!(alice
            .prelude(false)
            .starts_with("SHELL='/bin/it'\\''s'; export SHELL; "));
        let env = alice.env();
        assert!(env.contains(&("USER".to_owned(), "alice".to_owned())));
        assert!(env.contains(&("LOGNAME".to_owned(), "alice".to_owned())));
        assert!(env.contains(&("HOME".to_owned(), "/home/alice".to_owned())));
        assert!(env.iter().any(|(k, _)| k == "PATH"));
    }

    #[test]
    fn run_as_keeps_the_program_apart_from_the_script() {
        let alice = resolve(&config(), "alice");
        let argv = alice.run_as_argv(false, vec!["echo".into(), "$(x)".into()]);
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert!(argv[2].starts_with(&alice.prelude(false)));
        assert!(argv[2].contains("exec setpriv"));
        let uid = alice.uid.to_string();
        assert_eq!(argv[3..], ["sh", &uid, &uid, "alice", "echo", "$(x)"]);
    }

    #[test]
    fn hostnames_follow_the_template_and_dns_rules() {
        assert_eq!(hostname_for("", "alice"), Ok(None));
        assert_eq!(
            hostname_for("%u-sshpod", "Alice_B.c"),
            Ok(Some("alice-b-c-sshpod".to_owned()))
        );
        assert!(matches!(
            hostname_for("%u-sshpod", &"n".repeat(60)),
            Err(IdentityError::BadHostname { .. })
        ));
        assert!(hostname_for("%u", "-x").is_err());
    }
}
