//! What an scp command line says: which way files go (`-t` or `-f`), whether directories come
//! too (`-r`), and the target or sources the files' paths are made from.

use super::super::words::{base_name, simple_command};

/// Options of OpenSSH's scp that take a value.
const OPTIONS_WITH_VALUES: &str = "DFJMPScilXo";
/// Options of OpenSSH's scp without a value (besides `-d`, `-f`, `-r` and `-t`).
const OPTIONS: &str = "12346ABCTOpqRsv";

/// What the command line says.
#[derive(Debug)]
pub(super) struct ScpCommand {
    pub(super) direction: Direction,
    pub(super) places: Places,
    pub(super) recursive: bool,
}

/// Which way the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// `scp -t`: the client sends files.
    Upload,
    /// `scp -f`: the server sends files.
    Download,
}

/// Where the command line says the files go or come from.
#[derive(Debug)]
pub(super) enum Places {
    /// `-t TARGET`, and whether it is known to be a directory.
    Target { target: String, directory: bool },
    /// `-f SOURCE...`.
    Sources(Vec<String>),
}

impl ScpCommand {
    /// Reads `line` as OpenSSH's scp reads its arguments; `None` unless it runs scp's remote
    /// end (`-t` with one target, or `-f`) as one simple command.
    pub(super) fn parse(line: &str) -> Option<Self> {
        let words = simple_command(line)?;
        let (program, args) = words.split_first()?;
        if base_name(program) != "scp" {
            return None;
        }
        let (mut from, mut to, mut recursive, mut directory) = (false, false, false, false);
        let mut operands = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let flags = match arg.strip_prefix('-') {
                Some("-") => {
                    operands.extend(args.by_ref().cloned());
                    break;
                }
                Some(flags) if !flags.is_empty() => flags,
                _ => {
                    // Options end at the first operand, as in OpenSSH's own getopt.
                    operands.push(arg.clone());
                    operands.extend(args.by_ref().cloned());
                    break;
                }
            };
            let mut chars = flags.chars();
            while let Some(flag) = chars.next() {
                match flag {
                    'f' => from = true,
                    't' => to = true,
                    'r' => recursive = true,
                    'd' => directory = true,
                    _ if OPTIONS_WITH_VALUES.contains(flag) => {
                        if chars.as_str().is_empty() {
                            args.next()?;
                        }
                        break;
                    }
                    _ if OPTIONS.contains(flag) => {}
                    // scp would not start.
                    _ => return None,
                }
            }
        }
        let (direction, places) = if from {
            (Direction::Download, Places::Sources(operands))
        } else if to {
            // The sink takes exactly one target.
            let [target] = <[String; 1]>::try_from(operands).ok()?;
            let directory = directory
                || target.ends_with('/')
                || matches!(target.as_str(), "." | ".." | "~")
                || target.ends_with("/.")
                || target.ends_with("/..");
            (Direction::Upload, Places::Target { target, directory })
        } else {
            return None;
        };
        Some(Self {
            direction,
            places,
            recursive,
        })
    }
}

impl Places {
    /// Where a file or directory named `name` in a record outside any directory record goes or
    /// comes from.
    pub(super) fn top(&self, name: &str) -> String {
        match self {
            Places::Target { target, directory } => {
                if *directory || base_name(trim_slashes(target)) != name {
                    join(target, name)
                } else {
                    target.clone()
                }
            }
            Places::Sources(sources) => source_place(sources, name),
        }
    }
}

/// `base/name`, without doubling a slash.
pub(super) fn join(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// A path without trailing slashes, as scp's source names it (`/` stays).
fn trim_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && !path.is_empty() {
        "/"
    } else {
        trimmed
    }
}

/// Where a file the source sends at the top came from: the source operand it is named after,
/// or its name in the directory of an operand that is a pattern, or just its name.
fn source_place(sources: &[String], name: &str) -> String {
    let sources = sources.iter().map(|source| trim_slashes(source));
    if let Some(source) = sources.clone().find(|source| base_name(source) == name) {
        return source.to_owned();
    }
    let pattern = sources
        .clone()
        .find(|source| base_name(source).contains(['*', '?', '[']));
    match pattern.and_then(|pattern| pattern.rsplit_once('/')) {
        Some(("", _)) => join("/", name),
        Some((dir, _)) => join(dir, name),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(line: &str) -> Option<(String, bool, bool)> {
        match ScpCommand::parse(line) {
            Some(ScpCommand {
                direction: Direction::Upload,
                places: Places::Target { target, directory },
                recursive,
            }) => Some((target, directory, recursive)),
            _ => None,
        }
    }

    #[test]
    fn command_lines_are_read_as_scp_reads_its_options() {
        assert_eq!(
            target("scp -v -r -p -d -t -- /x"),
            Some(("/x".into(), true, true))
        );
        assert_eq!(target("scp -rt /x"), Some(("/x".into(), false, true)));
        assert_eq!(
            target("scp -l 100 -o Opt=1 -P22 -t x"),
            Some(("x".into(), false, false))
        );
        assert_eq!(target("scp -t -- -x"), Some(("-x".into(), false, false)));
        assert_eq!(target("scp -t a b"), None, "scp refuses two targets");
        assert_eq!(target("scp -t"), None);
        assert_eq!(target("scp -Z -t x"), None, "scp does not know -Z");
        assert_eq!(target("scp a b"), None);
        assert_eq!(target("sftp -t x"), None);
        match ScpCommand::parse("/usr/bin/scp -f a 'b c'") {
            Some(ScpCommand {
                direction: Direction::Download,
                places: Places::Sources(sources),
                ..
            }) => assert_eq!(sources, ["a", "b c"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn top_places_come_from_the_target_or_the_sources() {
        let top = |line: &str, name: &str| match ScpCommand::parse(line) {
            Some(command) => command.places.top(name),
            None => panic!("{line:?}"),
        };
        assert_eq!(top("scp -t /tmp/a.txt", "a.txt"), "/tmp/a.txt");
        assert_eq!(top("scp -t /tmp", "a.txt"), "/tmp/a.txt");
        assert_eq!(top("scp -t /tmp/", "a.txt"), "/tmp/a.txt");
        assert_eq!(top("scp -t .", "a.txt"), "./a.txt");
        assert_eq!(top("scp -t /", "a.txt"), "/a.txt");
        assert_eq!(top("scp -d -t /tmp/a.txt", "a.txt"), "/tmp/a.txt/a.txt");
        assert_eq!(top("scp -f /etc/hostname", "hostname"), "/etc/hostname");
        assert_eq!(top("scp -r -f /srv/tree/", "tree"), "/srv/tree");
        assert_eq!(
            top("scp -f /var/log/*.log", "syslog.log"),
            "/var/log/syslog.log"
        );
        assert_eq!(top("scp -f /x?", "xy"), "/xy");
        assert_eq!(top("scp -f 'a b' c", "c"), "c");
        assert_eq!(top("scp -f $HOME/f", "g"), "g", "unknown: the name alone");
    }
}
