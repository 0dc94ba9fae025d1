//! The words of a command line, as `/bin/sh -c` splits a simple command, to read the program and
//! arguments of an exec request (`scp -t '/tmp/my dir'`).
//!
//! Quotes and backslashes are undone; anything that makes the line more than one simple command
//! (`;`, `&`, `|`, redirections, parentheses, command substitution, an unquoted newline) makes
//! it unreadable here. Variables, `~` and globs are left as written: what the shell makes of
//! them is not known from the line.

/// The words of `line` if it is one simple command.
pub(crate) fn simple_command(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started (quotes may start an empty one).
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '#' if !started => break,
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '`' | '\n' => return None,
            '$' if chars.peek() == Some(&'(') => return None,
            '\\' => {
                started = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(escaped) => word.push(escaped),
                    None => word.push('\\'),
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '`' => return None,
                        '$' if chars.peek() == Some(&'(') => return None,
                        '\\' => match chars.peek() {
                            Some(&next @ ('$' | '`' | '"' | '\\')) => {
                                word.push(next);
                                chars.next();
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        c => word.push(c),
                    }
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Some(words)
}

/// The last part of a path (`scp` of `/usr/bin/scp`).
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `line` is one simple command running `program` (by name or by a path to it).
pub(crate) fn runs_program(line: &str, program: &str) -> bool {
    simple_command(line)
        .and_then(|words| words.into_iter().next())
        .is_some_and(|first| base_name(&first) == program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        match simple_command(line) {
            Some(words) => words,
            None => panic!("{line:?} does not split"),
        }
    }

    #[test]
    fn words_are_split_and_unquoted_as_sh_does() {
        assert_eq!(split("scp -t /tmp"), ["scp", "-t", "/tmp"]);
        assert_eq!(split("  scp\t-f  a  "), ["scp", "-f", "a"]);
        assert_eq!(split("scp -t '/my dir/'"), ["scp", "-t", "/my dir/"]);
        assert_eq!(
            split(r#"a "b \"c\" \$d \e" f\ g"#),
            ["a", r#"b "c" $d \e"#, "f g"]
        );
        assert_eq!(split("a '' \"\""), ["a", "", ""]);
        assert_eq!(split("a b#c # comment"), ["a", "b#c"]);
        assert_eq!(
            split("a $HOME/x ~/y *.txt"),
            ["a", "$HOME/x", "~/y", "*.txt"]
        );
        assert_eq!(split("a\\\nb"), ["ab"]);
        assert!(split("").is_empty());
    }

    #[test]
    fn more_than_a_simple_command_is_not_read() {
        for line in [
            "scp -t x; rm y",
            "scp -t x && y",
            "scp -t x | y",
            "scp -t x > y",
            "scp -t $(y)",
            "scp -t \"$(y)\"",
            "scp -t `y`",
            "scp -t x\nrm y",
            "scp -t 'open",
            "scp -t \"open",
        ] {
            assert_eq!(simple_command(line), None, "{line:?}");
        }
    }

    #[test]
    fn programs_are_known_by_name_or_path() {
        assert!(runs_program(
            "/usr/lib/openssh/sftp-server -l INFO",
            "sftp-server"
        ));
        assert!(runs_program("sftp-server", "sftp-server"));
        assert!(!runs_program("echo sftp-server", "sftp-server"));
        assert!(!runs_program("sftp-server; true", "sftp-server"));
        assert_eq!(base_name("/usr/bin/scp"), "scp");
        assert_eq!(base_name("scp"), "scp");
    }
}
