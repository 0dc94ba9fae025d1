//! Which volumes a user's container mounts: their home (when `homes.enable`) and the class's
//! extra mounts, with the names every backend gives them (a Docker volume or a PVC of that
//! name). Pure; the backends create and mount them.

use sshpod_config::{HomesConfig, MountScope};

use crate::labels;

/// A volume a container of the user mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The volume's name on the engine.
    pub volume: String,
    /// Where it is mounted.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `home` or the extra mount's name.
    pub kind: String,
    /// Per user (labelled with the login) or shared.
    pub per_user: bool,
    /// Requested size of a PVC (a Kubernetes quantity).
    pub size: String,
    /// Storage class of a PVC; empty for the cluster's default.
    pub storage_class_name: String,
}

/// The volumes a container of `user` mounts: their home (when homes are on) and the extra
/// mounts. The home is mounted at `home` when given (the user's identity says where it is),
/// else at `homes.path`. Fails for a login that cannot be part of the home's path.
pub fn plan(homes: &HomesConfig, user: &str, home: Option<&str>) -> Result<Vec<Planned>, String> {
    let mut planned = Vec::new();
    if homes.enable {
        let target = match home {
            Some(home) => home.to_owned(),
            None => homes
                .home_for(user)
                .ok_or_else(|| "your login name cannot name a home directory".to_owned())?,
        };
        planned.push(Planned {
            volume: labels::volume_name("sshpod-home-", user),
            target,
            read_only: false,
            kind: HOME_KIND.to_owned(),
            per_user: true,
            size: homes.size.clone(),
            storage_class_name: homes.storage_class_name.clone(),
        });
    }
    for mount in &homes.extra_mounts {
        let per_user = mount.scope == MountScope::PerUser;
        planned.push(Planned {
            volume: if per_user {
                labels::volume_name(&format!("sshpod-{}-", mount.name), user)
            } else {
                format!("sshpod-mount-{}", mount.name)
            },
            target: mount.path.clone(),
            read_only: mount.is_read_only(),
            kind: mount.name.clone(),
            per_user,
            size: mount.size.clone(),
            storage_class_name: mount.storage_class_name.clone(),
        });
    }
    Ok(planned)
}

/// Who owns a user's volumes: the uid and gid the user's processes run as. `None` (no identity
/// configured) leaves them to root, as volumes are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeOwner {
    /// The user's uid.
    pub uid: u32,
    /// Their primary gid.
    pub gid: u32,
}

/// The command (run as root in the container) that gives the user's own volumes (home and
/// per-user mounts, not shared ones, not their contents) to `owner`; `None` when there is
/// nothing to do.
pub fn chown_argv(planned: &[Planned], owner: Option<HomeOwner>) -> Option<Vec<String>> {
    let owner = owner?;
    let targets: Vec<String> = planned
        .iter()
        .filter(|p| p.per_user && !p.read_only)
        .map(|p| p.target.clone())
        .collect();
    if targets.is_empty() || (owner.uid == 0 && owner.gid == 0) {
        return None;
    }
    let mut argv = vec![
        "chown".to_owned(),
        format!("{}:{}", owner.uid, owner.gid),
        "--".to_owned(),
    ];
    argv.extend(targets);
    Some(argv)
}

/// The kind of a user's home volume (the value of the `sshpod.home` label).
pub const HOME_KIND: &str = "home";

/// A user's volume, as `sshpod homes ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeVolume {
    /// The login it belongs to.
    pub user: String,
    /// `home`, or the name of a per-user extra mount.
    pub kind: String,
    /// The volume's name on the engine, or the claim's.
    pub volume: String,
    /// When it was created (RFC 3339), if it says.
    pub created: Option<String>,
}

/// The marker a home gets once its first-login customisation ran; delete it to run it again.
pub const CUSTOMIZED_MARKER: &str = ".sshpod-customized";

/// The first-login step, a POSIX shell script taking the home, the repository, the command
/// run in its clone and the command run in the home as `$1`..`$4` (never spliced into the
/// script), with `HOME`, `USER` and `LOGNAME` as a login has them. It does nothing when the
/// marker exists; otherwise it writes the marker first (so the step runs once, even if it
/// fails), clones the repository into a temporary directory and runs its command there, runs
/// the home's command, and says so when a step failed.
/// Errors are not fatal: the script always exits 0.
const CUSTOMIZE_SCRIPT: &str = r#"home=$1 repo=$2 repo_command=$3 command=$4
[ -e "$home/.sshpod-customized" ] && exit 0
USER=$(id -un 2>/dev/null) || USER=$(id -u)
export HOME="$home" USER LOGNAME="$USER"
date > "$home/.sshpod-customized" || exit 0
echo "sshpod: customising your home (first login)"
failed=""
if [ -n "$repo" ]; then
  dir=$(mktemp -d) && git clone --quiet --depth 1 "$repo" "$dir/repo" 2>&1 || failed="cloning $repo"
  if [ -z "$failed" ] && [ -n "$repo_command" ]; then
    (cd "$dir/repo" && /bin/sh -c "$repo_command") 2>&1 || failed="customizeRepoCommand"
  fi
  [ -n "$dir" ] && rm -rf "$dir"
fi
if [ -n "$command" ]; then
  (cd "$home" && /bin/sh -c "$command") 2>&1 || failed="${failed:+$failed, }customizeCommand"
fi
if [ -n "$failed" ]; then echo "sshpod: customisation failed: $failed"; fi
exit 0
"#;

/// The argv of the first-login step for a home at `home`, when `homes` configures one.
pub fn customize_argv(homes: &HomesConfig, home: &str) -> Option<Vec<String>> {
    homes.customizes().then(|| {
        [
            "/bin/sh",
            "-c",
            CUSTOMIZE_SCRIPT,
            "sshpod-customize",
            home,
            &homes.customize_repo,
            &homes.customize_repo_command,
            &homes.customize_command,
        ]
        .map(str::to_owned)
        .to_vec()
    })
}

/// The first-login step as one command line for `/bin/sh -c`, every argument quoted (for
/// backends that run command lines, such as the Kubernetes exec wrapper).
pub fn customize_command_line(homes: &HomesConfig, home: &str) -> Option<String> {
    let argv = customize_argv(homes, home)?;
    let quoted: Vec<String> = argv.iter().map(|arg| shell_quote(arg)).collect();
    Some(format!("exec {}", quoted.join(" ")))
}

/// Output for a terminal: bare line feeds become CR LF (a greeting put before a shell's own
/// output on a pty).
pub fn for_terminal(output: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(output.len() + output.len() / 16);
    let mut previous = 0u8;
    for &byte in output {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_own_volumes_are_given_to_their_uid() {
        let homes = HomesConfig {
            enable: true,
            ..HomesConfig::default()
        };
        let planned = plan(&homes, "alice", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chown_argv(&planned, None), None, "root keeps them");
        let owner = HomeOwner {
            uid: 1500,
            gid: 100,
        };
        assert_eq!(
            chown_argv(&planned, Some(owner)),
            Some(
                ["chown", "1500:100", "--", "/home/alice"]
                    .map(str::to_owned)
                    .to_vec()
            )
        );
    }

    #[test]
    fn line_feeds_become_terminal_line_ends() {
        assert_eq!(for_terminal(b"a\nb\r\nc"), b"a\r\nb\r\nc");
    }

    #[test]
    fn the_command_line_quotes_every_argument() {
        let homes = HomesConfig {
            enable: true,
            customize_command: "echo 'it'; touch x".to_owned(),
            ..HomesConfig::default()
        };
        let line =
            customize_command_line(&homes, "/home/o'neil").unwrap_or_else(|| panic!("configured"));
        assert!(line.starts_with("exec '/bin/sh' '-c' '"), "{line}");
        assert!(
            line.ends_with(r#" '/home/o'\''neil' '' '' 'echo '\''it'\''; touch x'"#),
            "{line}"
        );
    }

    #[test]
    fn the_first_login_step_takes_its_settings_as_arguments() {
        let mut homes = HomesConfig {
            enable: true,
            ..HomesConfig::default()
        };
        assert_eq!(
            customize_argv(&homes, "/home/a"),
            None,
            "nothing configured"
        );
        homes.customize_command = "echo '$(rm -rf /)'; touch done".to_owned();
        let argv = customize_argv(&homes, "/home/a").unwrap_or_else(|| panic!("configured"));
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert!(argv[2].contains(CUSTOMIZED_MARKER));
        assert_eq!(
            argv[4..],
            ["/home/a", "", "", "echo '$(rm -rf /)'; touch done"]
        );
    }
}
