//! The `identity` section (sshpod's own): who a login runs as inside its container, and the
//! container's hostname.
//!
//! Off by default, so a ContainerSSH file behaves as before: processes run as the image's user.
//! With `enable: true` a login as `alice` runs as `alice` with a uid and gid sshpod chooses (a
//! fixed `uid`, one a config server answers for the user, or the login name hashed into
//! `uidRange`), in the home `home` (`%u` is the login name), with the shell `shell` (empty:
//! `/bin/bash` where the image has it, else `/bin/sh`); `sudo: true` lets the user become root
//! inside their own container. `hostname` (a template, `%u` likewise) names the container for
//! every login, whether or not `enable` is set. Both backends read the section; a config
//! server's answer may change it per user.

use serde::{Deserialize, Serialize};

use crate::check::Checker;

/// Default `identity.home`.
pub const DEFAULT_HOME: &str = "/home/%u";
/// Default first uid of `identity.uidRange`.
pub const DEFAULT_UID_MIN: u32 = 10_000;
/// Default last uid of `identity.uidRange`.
pub const DEFAULT_UID_MAX: u32 = 59_999;
/// The highest uid or gid accepted: below the kernel's `(uid_t)-1` and the 16-bit `nobody`
/// ranges' oddities are the operator's business, but `-1` means "unchanged" to the kernel.
pub const MAX_ID: u32 = 0x7fff_fffe;

/// `identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityConfig {
    /// Whether logins run as their own user (default false: the image's user, as ContainerSSH).
    pub enable: bool,
    /// A fixed uid for every login, or (from a config server's answer) this login's; 0 means
    /// "choose from `uidRange`".
    pub uid: u32,
    /// The primary gid; 0 means the same as the uid.
    pub gid: u32,
    /// Where a login name is hashed to when `uid` is 0.
    pub uid_range: UidRange,
    /// The home directory; `%u` is the login name (default `/home/%u`).
    pub home: String,
    /// The login shell; empty means `/bin/bash` where the image has it, else `/bin/sh`.
    pub shell: String,
    /// Whether the user may become root inside their own container with `sudo` (needs `sudo`
    /// in the image; the container stays unprivileged).
    pub sudo: bool,
    /// The container's hostname; `%u` is the login name, empty leaves the backend's default.
    pub hostname: String,
}

/// `identity.uidRange`: inclusive bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UidRange {
    /// The first uid.
    pub min: u32,
    /// The last uid.
    pub max: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        Self {
            min: DEFAULT_UID_MIN,
            max: DEFAULT_UID_MAX,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Checker::quietly(|quiet| RawIdentity::default().resolve(quiet))
    }
}

/// `identity` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub(crate) struct RawIdentity {
    enable: bool,
    uid: u32,
    gid: u32,
    uid_range: UidRange,
    home: String,
    shell: String,
    sudo: bool,
    hostname: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            enable: false,
            uid: 0,
            gid: 0,
            uid_range: UidRange::default(),
            home: DEFAULT_HOME.to_owned(),
            shell: String::new(),
            sudo: false,
            hostname: String::new(),
        }
    }
}

impl RawIdentity {
    /// Validates `identity`. Values are checked even when `enable` is false, so a mistake shows
    /// when the file is loaded rather than when it is turned on.
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> IdentityConfig {
        if self.uid > MAX_ID {
            check.error("identity.uid", format!("must be at most {MAX_ID}"));
        }
        if self.gid > MAX_ID {
            check.error("identity.gid", format!("must be at most {MAX_ID}"));
        }
        let range = self.uid_range;
        if range.min == 0 {
            check.error(
                "identity.uidRange.min",
                "must be at least 1: uid 0 is root (use `sudo: true` to give root)",
            );
        }
        if range.max > MAX_ID {
            check.error("identity.uidRange.max", format!("must be at most {MAX_ID}"));
        }
        if range.min > range.max {
            check.error(
                "identity.uidRange",
                format!("`min` ({}) is above `max` ({})", range.min, range.max),
            );
        }
        if let Err(reason) = check_home(&self.home) {
            check.error("identity.home", reason);
        }
        if let Err(reason) = check_shell(&self.shell) {
            check.error("identity.shell", reason);
        }
        if let Err(reason) = check_hostname_template(&self.hostname) {
            check.error("identity.hostname", reason);
        }
        if self.sudo && !self.enable {
            check.warn(
                "identity.sudo",
                "has no effect without `identity.enable: true`",
            );
        }
        IdentityConfig {
            enable: self.enable,
            uid: self.uid,
            gid: self.gid,
            uid_range: range,
            home: self.home,
            shell: self.shell,
            sudo: self.sudo,
            hostname: self.hostname,
        }
    }
}

/// Characters a path written into `/etc/passwd` must not hold: its field separator, line
/// breaks, and NUL.
fn breaks_passwd(text: &str) -> bool {
    text.chars().any(|c| c == ':' || c.is_control())
}

/// Placeholders of a template other than `%u` and `%%`, which [`expand`] refuses.
fn check_placeholders(template: &str) -> Result<(), String> {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | '%') => {}
                Some(other) => {
                    return Err(format!(
                        "`%{other}` is not a placeholder; use `%u` (the login name) or `%%`"
                    ))
                }
                None => {
                    return Err("ends with a lone `%`; write `%%` for a percent sign".to_owned())
                }
            }
        }
    }
    Ok(())
}

fn check_home(home: &str) -> Result<(), String> {
    if !home.starts_with('/') {
        return Err("must be an absolute path such as `/home/%u`".to_owned());
    }
    if breaks_passwd(home) {
        return Err("must not contain `:` or control characters".to_owned());
    }
    if home.split('/').any(|part| part == "..") {
        return Err("must not contain `..`".to_owned());
    }
    check_placeholders(home)
}

fn check_shell(shell: &str) -> Result<(), String> {
    if shell.is_empty() {
        return Ok(());
    }
    if !shell.starts_with('/') {
        return Err(
            "must be an absolute path such as `/bin/bash`, or empty to detect one".to_owned(),
        );
    }
    if breaks_passwd(shell) || shell.contains(char::is_whitespace) {
        return Err("must not contain `:`, spaces or control characters".to_owned());
    }
    Ok(())
}

fn check_hostname_template(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Ok(());
    }
    check_placeholders(template)?;
    // The shortest login name must make a valid label; longer ones are checked per login.
    let sample = expand(template, "u");
    if template.contains('%') && sample.contains('%') {
        return Err("`%%` cannot be part of a hostname".to_owned());
    }
    if is_dns_label(&sample) {
        Ok(())
    } else {
        Err(format!(
            "must give a DNS label (lower-case letters, digits and `-`, not at either end, at \
             most 63 characters); `{template}` gives `{sample}` for the user `u`"
        ))
    }
}

/// `template` with `%u` replaced by `user` and `%%` by `%`.
pub fn expand(template: &str, user: &str) -> String {
    let mut out = String::with_capacity(template.len() + user.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('u')) => {
                out.push_str(user);
                chars.next();
            }
            ('%', Some('%')) => {
                out.push('%');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// RFC 1123 label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, Format};

    /// An authentication method, which every file needs; after the text under test, so that
    /// its line numbers stay as written.
    const AUTH: &str = "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /x\n";

    fn load(yaml: &str) -> Result<crate::Loaded, crate::ConfigErrors> {
        parse_str(&format!("{yaml}{AUTH}"), Format::Yaml, "sshpod.yaml")
    }

    fn errors(yaml: &str) -> Vec<String> {
        match load(yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn off_by_default_with_documented_defaults() {
        let loaded = load("").unwrap_or_else(|e| panic!("{e}"));
        let identity = &loaded.config.identity;
        assert!(!identity.enable);
        assert_eq!(identity.home, "/home/%u");
        assert_eq!(
            identity.uid_range,
            UidRange {
                min: 10_000,
                max: 59_999
            }
        );
        assert_eq!(identity.shell, "");
        assert!(!identity.sudo);
        assert_eq!(identity.hostname, "");
    }

    #[test]
    fn a_full_section_loads() {
        let yaml = "identity:\n  enable: true\n  uid: 2000\n  gid: 100\n  home: /users/%u\n  \
                    shell: /bin/sh\n  sudo: true\n  hostname: '%u-lab'\n  uidRange: {min: 5, max: 9}\n";
        let loaded = load(yaml).unwrap_or_else(|e| panic!("{e}"));
        let identity = loaded.config.identity.clone();
        assert_eq!((identity.uid, identity.gid), (2000, 100));
        assert_eq!(identity.uid_range, UidRange { min: 5, max: 9 });
        assert_eq!(identity.hostname, "%u-lab");
        assert!(identity.sudo && identity.enable);
        // `check-config` prints it, and a config server's answer is merged into that print.
        let printed = loaded.config.to_yaml();
        let again =
            parse_str(&printed, Format::Yaml, "printed.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.config, loaded.config);
    }

    #[test]
    fn mistakes_are_reported_at_their_line_and_key() {
        let yaml = "identity:\n  enable: true\n  home: home/%u\n  shell: 'bin:sh'\n  \
                    hostname: '%u_lab'\n  uidRange:\n    min: 0\n    max: 10\n";
        let found = errors(yaml);
        let expect = [
            ("sshpod.yaml:3:9: key `identity.home`", "absolute"),
            ("sshpod.yaml:4:10: key `identity.shell`", "absolute"),
            ("sshpod.yaml:5:13: key `identity.hostname`", "DNS label"),
            ("sshpod.yaml:7:10: key `identity.uidRange.min`", "root"),
        ];
        for (at, what) in expect {
            assert!(
                found.iter().any(|e| e.starts_with(at) && e.contains(what)),
                "no `{at}` about {what} in {found:#?}"
            );
        }
    }

    #[test]
    fn paths_that_would_break_passwd_are_refused() {
        assert!(!errors("identity:\n  home: \"/home/%u\\nroot::0:0::/:/bin/sh\"\n").is_empty());
        assert!(!errors("identity:\n  home: /home/%u:x\n").is_empty());
        assert!(!errors("identity:\n  home: /home/../etc\n").is_empty());
        assert!(!errors("identity:\n  shell: '/bin/sh -x'\n").is_empty());
        assert!(!errors("identity:\n  home: /home/%x\n").is_empty());
        assert!(!errors("identity:\n  uidRange: {min: 20, max: 10}\n").is_empty());
        assert!(!errors("identity:\n  uid: 4294967295\n").is_empty());
        assert!(!errors("identity:\n  colour: blue\n").is_empty());
    }

    #[test]
    fn templates_expand_the_login_name() {
        assert_eq!(expand("/home/%u", "alice"), "/home/alice");
        assert_eq!(expand("%u-%%-%x", "bob"), "bob-%-%x");
        assert_eq!(expand("plain", "bob"), "plain");
    }

    #[test]
    fn dns_labels_follow_rfc_1123() {
        for good in ["a", "alice-sshpod", "x1", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
