//! Public-key authentication from OpenSSH `authorized_keys` files.
//!
//! The file format is the one `sshd(8)` documents under "AUTHORIZED_KEYS FILE FORMAT": one key per
//! line, optionally preceded by comma-separated options, followed by an optional comment. Only
//! the key material (algorithm and key data) is compared, never the comment.
//!
//! `from=` is checked against the client's address, and `cert-authority` lines (with
//! `principals=`) are found by [`AuthorizedKeys::authority_options`] for certificates. Options
//! that decide *whether* a key may log in and that this crate cannot check (`expiry-time=`,
//! `verify-required`) make the line refuse the key, with a warning: failing closed is safer than
//! silently dropping a restriction. Options that restrict the *session* (`command=`, `no-pty`,
//! `restrict`, ...) are returned in [`KeyOptions`] for the caller to enforce (see
//! [`crate::Restrictions`]). Unknown options make the line malformed, as in OpenSSH.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{self, PublicKey};
use tracing::{info, warn};

use crate::address;
use crate::file::{self, Line};
use crate::restrictions::PermitOpen;
use crate::{Error, UserName};

/// Public-key authentication from OpenSSH `authorized_keys` files, one file per user.
///
/// The file is located through a path pattern in which `%u` stands for the login name and `%%`
/// for a literal `%`, e.g. `/etc/sshpod/authorized_keys/%u`. It is re-read on every check, so
/// edits take effect at the next login. All methods do blocking file I/O: call them from
/// `tokio::task::spawn_blocking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKeys {
    pattern: String,
}

/// Session restrictions from the options of a matching `authorized_keys` line.
///
/// The flags are the effective result of the options in order, so `restrict,pty` gives
/// `restrict: true, no_pty: false`. The caller is responsible for enforcing them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyOptions {
    /// The line has `restrict`.
    pub restrict: bool,
    /// No pseudo-terminal may be allocated (`no-pty`, or `restrict` without a later `pty`).
    pub no_pty: bool,
    /// No TCP forwarding (`no-port-forwarding`, or `restrict` without `port-forwarding`).
    pub no_port_forwarding: bool,
    /// No agent forwarding (`no-agent-forwarding`, or `restrict` without `agent-forwarding`).
    pub no_agent_forwarding: bool,
    /// No X11 forwarding (`no-X11-forwarding`, or `restrict` without `X11-forwarding`).
    pub no_x11_forwarding: bool,
    /// Do not run `~/.ssh/rc` (`no-user-rc`, or `restrict` without `user-rc`).
    pub no_user_rc: bool,
    /// Forced command (`command="..."`), run instead of whatever the client asked for.
    pub command: Option<String>,
    /// `environment="NAME=value"` entries, in file order.
    pub environment: Vec<String>,
    /// `permitopen="host:port"` entries, in file order.
    pub permit_open: Vec<String>,
    /// `permitlisten="[host:]port"` entries, in file order.
    pub permit_listen: Vec<String>,
    /// `from="pattern-list"`: the client addresses the line accepts.
    pub from: Option<String>,
    /// The line is a `cert-authority`: its key signs certificates instead of logging in.
    pub cert_authority: bool,
    /// `principals="a,b"` of a `cert-authority` line: the certificate principals it accepts
    /// (without it, the login name).
    pub principals: Option<String>,
}

impl AuthorizedKeys {
    /// Reads keys from the file `pattern` names, with `%u` replaced by the login name and `%%`
    /// by `%`. A bad pattern is reported by [`AuthorizedKeys::validate_pattern`] and by every
    /// check.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// The pattern as given to [`AuthorizedKeys::new`].
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Checks the pattern without touching the file system, for configuration checks.
    pub fn validate_pattern(&self) -> Result<(), Error> {
        expand_pattern(&self.pattern, "user").map(drop)
    }

    /// The file that holds `user`'s keys.
    pub fn path_for(&self, user: &UserName) -> Result<PathBuf, Error> {
        expand_pattern(&self.pattern, user.as_str())
    }

    /// `Ok(true)` when `key` may log in as `user` from `peer` by a line of the file. A missing
    /// file is `Ok(false)`: the user has no keys.
    ///
    /// This ignores session restrictions such as `command=` and `no-pty`; a server that honours
    /// them calls [`AuthorizedKeys::authorized_options`] instead. Blocking: file I/O.
    pub fn is_authorized(
        &self,
        user: &UserName,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<bool, Error> {
        Ok(self.authorized_options(user, key, peer)?.is_some())
    }

    /// The options of the first usable line that lists `key` (not as a `cert-authority`) for
    /// `user` and whose `from=`, if any, allows `peer`; `Ok(None)` when there is none
    /// (including when the file does not exist). Blocking: file I/O.
    pub fn authorized_options(
        &self,
        user: &UserName,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<Option<KeyOptions>, Error> {
        self.find(user, peer, |entry| {
            !entry.options.cert_authority && entry.key.key_data() == key.key_data()
        })
    }

    /// The options of the first usable `cert-authority` line for `ca` whose `from=` allows
    /// `peer` and whose `principals=` (or, without it, the login name) is among
    /// `cert_principals`. Blocking: file I/O.
    pub fn authority_options(
        &self,
        user: &UserName,
        ca: &KeyData,
        cert_principals: &[String],
        peer: IpAddr,
    ) -> Result<Option<KeyOptions>, Error> {
        self.find(user, peer, |entry| {
            entry.options.cert_authority
                && entry.key.key_data() == ca
                && match &entry.options.principals {
                    Some(list) => list
                        .split(',')
                        .any(|p| cert_principals.iter().any(|c| c == p)),
                    None => cert_principals.iter().any(|c| c == user.as_str()),
                }
        })
    }

    /// Whether `user`'s file has any `cert-authority` line (so a key offered by a client may
    /// turn out to be a certificate's key). Blocking: file I/O.
    pub fn has_authorities(&self, user: &UserName) -> Result<bool, Error> {
        let path = self.path_for(user)?;
        let Some(contents) = file::read_optional(&path)? else {
            return Ok(false);
        };
        let found = file::lines(&contents).any(|Line { text, .. }| {
            text.ok()
                .and_then(|t| parse_line(t).ok())
                .is_some_and(|e| e.options.cert_authority)
        });
        Ok(found)
    }

    fn find(
        &self,
        user: &UserName,
        peer: IpAddr,
        wanted: impl FnMut(&Entry) -> bool,
    ) -> Result<Option<KeyOptions>, Error> {
        let path = self.path_for(user)?;
        let Some(contents) = file::read_optional(&path)? else {
            return Ok(None);
        };
        Ok(find_line(&path, &contents, peer, wanted))
    }
}

/// Scans file contents for the first line `wanted` picks that is usable from `peer`; logs and
/// skips lines it cannot use.
fn find_line(
    path: &Path,
    contents: &[u8],
    peer: IpAddr,
    mut wanted: impl FnMut(&Entry) -> bool,
) -> Option<KeyOptions> {
    for Line { number, text } in file::lines(contents) {
        let entry = text.map_err(|_| LineError::NotUtf8).and_then(parse_line);
        let entry = match entry {
            Ok(entry) => entry,
            Err(reason) => {
                warn!(
                    file = %path.display(),
                    line = number,
                    %reason,
                    "skipping malformed authorized_keys line"
                );
                continue;
            }
        };
        if !wanted(&entry) {
            continue;
        }
        if let Some(option) = entry.refused_by {
            warn!(
                file = %path.display(),
                line = number,
                option,
                "authorized_keys line matches but has an option sshpod cannot enforce; refusing it"
            );
            continue;
        }
        if let Some(from) = &entry.options.from {
            if !address::from_pattern_allows(from, peer) {
                info!(
                    file = %path.display(),
                    line = number,
                    %peer,
                    "authorized_keys line matches but its from= does not allow this address"
                );
                continue;
            }
        }
        return Some(entry.options);
    }
    None
}

/// Substitutes `%u` and `%%` in `pattern`.
pub(crate) fn expand_pattern(pattern: &str, user: &str) -> Result<PathBuf, Error> {
    let mut path = String::with_capacity(pattern.len() + user.len());
    let mut chars = pattern.char_indices();
    while let Some((position, c)) = chars.next() {
        if c != '%' {
            path.push(c);
            continue;
        }
        match chars.next() {
            Some((_, 'u')) => path.push_str(user),
            Some((_, '%')) => path.push('%'),
            _ => {
                return Err(Error::InvalidPattern {
                    pattern: pattern.to_owned(),
                    position,
                })
            }
        }
    }
    Ok(PathBuf::from(path))
}

/// One usable line of an `authorized_keys` file.
#[derive(Debug)]
pub(crate) struct Entry {
    key: PublicKey,
    options: KeyOptions,
    /// An option that makes this line refuse the key (the first one, for the log).
    refused_by: Option<&'static str>,
}

/// Why a line was skipped. Kept short: it ends up in a log line.
#[derive(Debug, PartialEq)]
pub(crate) enum LineError {
    NotUtf8,
    MissingKey,
    BadKey(ssh_key::Error),
    UnterminatedQuote,
    BadOptionSyntax,
    UnknownOption(String),
    BadOptionValue(&'static str),
    DuplicateCommand,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("not valid UTF-8"),
            Self::MissingKey => f.write_str("no key after the options"),
            Self::BadKey(e) => write!(f, "cannot parse the key: {e}"),
            Self::UnterminatedQuote => f.write_str("unterminated quote in the options"),
            Self::BadOptionSyntax => f.write_str("malformed options"),
            Self::UnknownOption(name) => write!(f, "unknown option {name:?}"),
            Self::BadOptionValue(name) => write!(f, "option {name} has a missing or bad value"),
            Self::DuplicateCommand => f.write_str("more than one command= option"),
        }
    }
}

/// Parses a non-blank, non-comment line: `[options] keytype base64 [comment]`.
fn parse_line(text: &str) -> Result<Entry, LineError> {
    // Like sshd: try the line as a bare key first, then as options followed by a key.
    let bare = parse_key(text);
    let key_error = match bare {
        Ok(key) => {
            return Ok(Entry {
                key,
                options: KeyOptions::default(),
                refused_by: None,
            })
        }
        Err(e) => e,
    };
    let first_word = text.split_ascii_whitespace().next().unwrap_or_default();
    if is_known_algorithm(first_word) {
        return Err(key_error);
    }
    let (options_text, rest) = split_options(text)?;
    let (options, refused_by) = parse_options(options_text)?;
    Ok(Entry {
        key: parse_key(rest)?,
        options,
        refused_by,
    })
}

fn is_known_algorithm(word: &str) -> bool {
    matches!(ssh_key::Algorithm::new(word), Ok(algorithm) if !matches!(algorithm, ssh_key::Algorithm::Other(_)))
}

/// Parses `keytype base64 [comment]`, with any amount of blanks between fields.
pub(crate) fn parse_key(text: &str) -> Result<PublicKey, LineError> {
    let mut fields = text.split_ascii_whitespace();
    let (Some(algorithm), Some(data)) = (fields.next(), fields.next()) else {
        return Err(LineError::MissingKey);
    };
    PublicKey::from_openssh(&format!("{algorithm} {data}")).map_err(LineError::BadKey)
}

/// Splits at the first blank outside double quotes. Inside quotes, `\"` is a literal quote.
fn split_options(text: &str) -> Result<(&str, &str), LineError> {
    let mut quoted = false;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if quoted && matches!(chars.peek(), Some((_, '"'))) => {
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => {
                let (options, rest) = text.split_at(index);
                return Ok((options, rest.trim_start()));
            }
            _ => {}
        }
    }
    Err(if quoted {
        LineError::UnterminatedQuote
    } else {
        LineError::MissingKey
    })
}

/// Parses `name[="value"][,name[="value"]]...`. Returns the options and, when one of them
/// makes the line refuse any key, its name.
pub(crate) fn parse_options(
    mut rest: &str,
) -> Result<(KeyOptions, Option<&'static str>), LineError> {
    let mut options = KeyOptions::default();
    let mut refused_by = None;
    loop {
        let name_end = rest.find(['=', ',']).unwrap_or(rest.len());
        let (name, after_name) = rest.split_at(name_end);
        if name.is_empty() {
            return Err(LineError::BadOptionSyntax);
        }
        let value = match after_name.strip_prefix('=') {
            Some(quoted) => {
                let (value, after_value) = parse_quoted(quoted)?;
                rest = after_value;
                Some(value)
            }
            None => {
                rest = after_name;
                None
            }
        };
        if let Some(refusing) = apply_option(&mut options, name, value)? {
            refused_by = refused_by.or(Some(refusing));
        }
        if rest.is_empty() {
            return Ok((options, refused_by));
        }
        rest = rest.strip_prefix(',').ok_or(LineError::BadOptionSyntax)?;
    }
}

/// Parses `"value"` at the start of `text`; returns the unescaped value and what follows.
fn parse_quoted(text: &str) -> Result<(String, &str), LineError> {
    let body = text.strip_prefix('"').ok_or(LineError::BadOptionSyntax)?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[index + 1..])),
            '\\' if matches!(chars.peek(), Some((_, '"'))) => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(LineError::UnterminatedQuote)
}

/// Applies one option. Returns `Some(name)` when the option makes the line refuse the key.
fn apply_option(
    options: &mut KeyOptions,
    name: &str,
    value: Option<String>,
) -> Result<Option<&'static str>, LineError> {
    let name = name.to_ascii_lowercase();
    let flag = |value: &Option<String>, name: &'static str| match value {
        None => Ok(()),
        Some(_) => Err(LineError::BadOptionValue(name)),
    };
    match name.as_str() {
        "restrict" => {
            flag(&value, "restrict")?;
            options.restrict = true;
            options.no_pty = true;
            options.no_port_forwarding = true;
            options.no_agent_forwarding = true;
            options.no_x11_forwarding = true;
            options.no_user_rc = true;
        }
        "no-pty" | "pty" => {
            flag(&value, "pty")?;
            options.no_pty = name.starts_with("no-");
        }
        "no-port-forwarding" | "port-forwarding" => {
            flag(&value, "port-forwarding")?;
            options.no_port_forwarding = name.starts_with("no-");
        }
        "no-agent-forwarding" | "agent-forwarding" => {
            flag(&value, "agent-forwarding")?;
            options.no_agent_forwarding = name.starts_with("no-");
        }
        "no-x11-forwarding" | "x11-forwarding" => {
            flag(&value, "X11-forwarding")?;
            options.no_x11_forwarding = name.starts_with("no-");
        }
        "no-user-rc" | "user-rc" => {
            flag(&value, "user-rc")?;
            options.no_user_rc = name.starts_with("no-");
        }
        // Relaxes a FIDO check; there is nothing to enforce.
        "no-touch-required" => flag(&value, "no-touch-required")?,
        "command" => {
            let command = value.ok_or(LineError::BadOptionValue("command"))?;
            if options.command.replace(command).is_some() {
                return Err(LineError::DuplicateCommand);
            }
        }
        "environment" => {
            let entry = value.ok_or(LineError::BadOptionValue("environment"))?;
            match entry.split_once('=') {
                Some((variable, _)) if !variable.is_empty() => options.environment.push(entry),
                _ => return Err(LineError::BadOptionValue("environment")),
            }
        }
        "permitopen" => {
            let entry = value.ok_or(LineError::BadOptionValue("permitopen"))?;
            if PermitOpen::parse(&entry).is_none() {
                return Err(LineError::BadOptionValue("permitopen"));
            }
            options.permit_open.push(entry);
        }
        "permitlisten" => options
            .permit_listen
            .push(value.ok_or(LineError::BadOptionValue("permitlisten"))?),
        // Selects a tun device for tunnel forwarding; nothing to enforce for logins.
        "tunnel" => drop(value.ok_or(LineError::BadOptionValue("tunnel"))?),
        "from" => {
            let patterns = value.ok_or(LineError::BadOptionValue("from"))?;
            if patterns.trim().is_empty() || options.from.replace(patterns).is_some() {
                return Err(LineError::BadOptionValue("from"));
            }
        }
        "principals" => {
            let principals = value.ok_or(LineError::BadOptionValue("principals"))?;
            if principals.trim().is_empty() || options.principals.replace(principals).is_some() {
                return Err(LineError::BadOptionValue("principals"));
            }
        }
        "cert-authority" => {
            flag(&value, "cert-authority")?;
            options.cert_authority = true;
        }
        "expiry-time" => return refuse(value, "expiry-time"),
        "verify-required" => {
            flag(&value, "verify-required")?;
            return Ok(Some("verify-required"));
        }
        _ => return Err(LineError::UnknownOption(name)),
    }
    Ok(None)
}

/// A valued option that makes the line refuse the key.
fn refuse(value: Option<String>, name: &'static str) -> Result<Option<&'static str>, LineError> {
    value.ok_or(LineError::BadOptionValue(name))?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::keys::ssh_key::PrivateKey;

    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// A deterministic Ed25519 public key; different seeds give different keys.
    fn key(seed: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    /// `keytype base64` of a test key, without a comment.
    fn line(seed: u8) -> String {
        key(seed).to_openssh().unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::try_from(name).unwrap()
    }

    /// A directory with `alice`'s authorized_keys file holding `contents`.
    fn setup(contents: &str) -> (tempfile::TempDir, AuthorizedKeys) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("alice"), contents).unwrap();
        let pattern = format!("{}/%u", dir.path().display());
        (dir, AuthorizedKeys::new(pattern))
    }

    #[test]
    fn finds_keys_among_options_comments_and_bad_lines() {
        let contents = format!(
            "# keys for alice\n\
             \n\
             this is not a key\n\
             ssh-ed25519 AAAAnotbase64!! broken\n\
             {plain} alice@laptop\n\
             restrict,command=\"echo \\\"hi, there\\\"\" {restricted} with a comment\n\
             \t  no-pty,environment=\"A=b c\",permitopen=\"db:5432\" {spaced}\r\n\
             bogus-option {unknown}\n",
            plain = line(1),
            restricted = line(2),
            spaced = line(3).replacen(' ', "\t  ", 1),
            unknown = line(4),
        );
        let (_dir, keys) = setup(&contents);
        let alice = user("alice");

        assert!(keys.is_authorized(&alice, &key(1), PEER).unwrap());
        assert_eq!(
            keys.authorized_options(&alice, &key(1), PEER).unwrap(),
            Some(KeyOptions::default())
        );

        let restricted = keys
            .authorized_options(&alice, &key(2), PEER)
            .unwrap()
            .unwrap();
        assert!(restricted.restrict && restricted.no_pty && restricted.no_port_forwarding);
        assert_eq!(restricted.command.as_deref(), Some("echo \"hi, there\""));

        let spaced = keys
            .authorized_options(&alice, &key(3), PEER)
            .unwrap()
            .unwrap();
        assert!(spaced.no_pty && !spaced.restrict && !spaced.no_port_forwarding);
        assert_eq!(spaced.environment, ["A=b c"]);
        assert_eq!(spaced.permit_open, ["db:5432"]);

        // A line with an unknown option is malformed, as in OpenSSH.
        assert!(!keys.is_authorized(&alice, &key(4), PEER).unwrap());
        // A key that is not listed at all.
        assert!(!keys.is_authorized(&alice, &key(5), PEER).unwrap());
    }

    #[test]
    fn compares_key_material_not_comment() {
        let (_dir, keys) = setup(&format!("{} someone-else@elsewhere\n", line(1)));
        let mut presented = key(1);
        presented.set_comment("alice@laptop");
        assert!(keys
            .is_authorized(&user("alice"), &presented, PEER)
            .unwrap());
    }

    #[test]
    fn restrict_then_pty_reenables_pty() {
        let (_dir, keys) = setup(&format!("restrict,pty {}\n", line(1)));
        let options = keys
            .authorized_options(&user("alice"), &key(1), PEER)
            .unwrap()
            .unwrap();
        assert!(options.restrict && !options.no_pty && options.no_port_forwarding);
    }

    #[test]
    fn refuses_lines_with_options_it_cannot_enforce() {
        let contents = format!(
            "expiry-time=\"20990101\" {}\nverify-required {}\n",
            line(1),
            line(2)
        );
        let (_dir, keys) = setup(&contents);
        for seed in 1..=2 {
            assert!(!keys
                .is_authorized(&user("alice"), &key(seed), PEER)
                .unwrap());
        }
    }

    #[test]
    fn from_is_checked_against_the_client_address() {
        let contents = format!(
            "from=\"10.0.0.0/8,!10.9.9.9\" {}\nfrom=\"192.0.2.*\" {}\n",
            line(1),
            line(2)
        );
        let (_dir, keys) = setup(&contents);
        let alice = user("alice");
        let at = |ip: &str| ip.parse::<IpAddr>().unwrap();
        assert!(keys.is_authorized(&alice, &key(1), at("10.1.2.3")).unwrap());
        assert!(!keys.is_authorized(&alice, &key(1), at("10.9.9.9")).unwrap());
        assert!(!keys
            .is_authorized(&alice, &key(1), at("192.0.2.1"))
            .unwrap());
        assert!(keys
            .is_authorized(&alice, &key(2), at("192.0.2.1"))
            .unwrap());
        let options = keys
            .authorized_options(&alice, &key(2), at("192.0.2.200"))
            .unwrap()
            .unwrap();
        assert_eq!(options.from.as_deref(), Some("192.0.2.*"));
    }

    #[test]
    fn cert_authority_lines_are_for_certificates_only() {
        let contents = format!(
            "cert-authority,no-pty {}\ncert-authority,principals=\"ops,admins\" {}\n",
            line(1),
            line(2)
        );
        let (_dir, keys) = setup(&contents);
        let alice = user("alice");
        assert!(!keys.is_authorized(&alice, &key(1), PEER).unwrap());
        assert!(keys.has_authorities(&alice).unwrap());
        assert!(!keys.has_authorities(&user("bob")).unwrap());

        let principals = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let ca1 = key(1).key_data().clone();
        let options = keys
            .authority_options(&alice, &ca1, &principals(&["alice"]), PEER)
            .unwrap()
            .unwrap();
        assert!(options.cert_authority && options.no_pty);
        assert!(keys
            .authority_options(&alice, &ca1, &principals(&["bob"]), PEER)
            .unwrap()
            .is_none());

        let ca2 = key(2).key_data().clone();
        assert!(keys
            .authority_options(&alice, &ca2, &principals(&["alice"]), PEER)
            .unwrap()
            .is_none());
        assert!(keys
            .authority_options(&alice, &ca2, &principals(&["x", "admins"]), PEER)
            .unwrap()
            .is_some());
        // A key that is not a CA of this file.
        let ca3 = key(3).key_data().clone();
        assert!(keys
            .authority_options(&alice, &ca3, &principals(&["alice"]), PEER)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_later_usable_line_still_matches() {
        let contents = format!("from=\"10.0.0.0/8\" {k}\nno-pty {k}\n", k = line(1));
        // PEER is 127.0.0.1: the first line does not allow it, the second does.
        let (_dir, keys) = setup(&contents);
        let options = keys
            .authorized_options(&user("alice"), &key(1), PEER)
            .unwrap()
            .unwrap();
        assert!(options.no_pty);
    }

    #[test]
    fn missing_file_means_no_keys() {
        let (_dir, keys) = setup(&line(1));
        assert!(!keys.is_authorized(&user("bob"), &key(1), PEER).unwrap());
    }

    #[test]
    fn unreadable_path_is_an_error() {
        // The user's "file" is a directory.
        let (dir, keys) = setup(&line(1));
        fs::create_dir(dir.path().join("carol")).unwrap();
        let err = keys
            .is_authorized(&user("carol"), &key(1), PEER)
            .unwrap_err();
        assert!(matches!(err, Error::ReadFile { .. }), "{err:?}");
        assert!(err.to_string().contains("carol"), "{err}");
    }

    #[test]
    fn other_users_keys_do_not_count() {
        let (dir, keys) = setup(&line(1));
        fs::write(dir.path().join("bob"), line(2)).unwrap();
        assert!(!keys.is_authorized(&user("bob"), &key(1), PEER).unwrap());
        assert!(keys.is_authorized(&user("bob"), &key(2), PEER).unwrap());
    }

    #[test]
    fn pattern_expansion() {
        let keys = AuthorizedKeys::new("/keys/%u/100%%/%u.pub");
        assert_eq!(
            keys.path_for(&user("alice")).unwrap(),
            PathBuf::from("/keys/alice/100%/alice.pub")
        );
        assert!(keys.validate_pattern().is_ok());
        for bad in ["/keys/%h", "/keys/%"] {
            let err = AuthorizedKeys::new(bad).validate_pattern().unwrap_err();
            assert!(
                matches!(err, Error::InvalidPattern { position: 6, .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn line_parser_reports_reasons() {
        assert_eq!(
            parse_line("ssh-ed25519").unwrap_err(),
            LineError::MissingKey
        );
        assert!(matches!(
            parse_line("ssh-ed25519 AAAA").unwrap_err(),
            LineError::BadKey(_)
        ));
        assert_eq!(
            parse_line(&format!("command=\"x {}", line(1))).unwrap_err(),
            LineError::UnterminatedQuote
        );
        assert_eq!(
            parse_line(&format!("command=x {}", line(1))).unwrap_err(),
            LineError::BadOptionSyntax
        );
        assert_eq!(
            parse_line(&format!("no-pty=\"1\" {}", line(1))).unwrap_err(),
            LineError::BadOptionValue("pty")
        );
        assert_eq!(
            parse_line(&format!("command=\"a\",command=\"b\" {}", line(1))).unwrap_err(),
            LineError::DuplicateCommand
        );
        assert_eq!(
            parse_line(&format!("restrict,,no-pty {}", line(1))).unwrap_err(),
            LineError::BadOptionSyntax
        );
        assert!(
            parse_line(&format!("NO-PTY {}", line(1)))
                .unwrap()
                .options
                .no_pty
        );
    }
}
