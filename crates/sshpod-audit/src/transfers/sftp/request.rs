//! What an SFTP request asks, read from its fields: the paths and handles it names, nothing
//! resolved yet.

use super::super::packet::Fields;
use super::super::LinkKind;

pub(super) const INIT: u8 = 1;
pub(super) const OPEN: u8 = 3;
pub(super) const CLOSE: u8 = 4;
pub(super) const READ: u8 = 5;
pub(super) const REMOVE: u8 = 13;
pub(super) const MKDIR: u8 = 14;
pub(super) const RMDIR: u8 = 15;
pub(super) const RENAME: u8 = 18;
pub(super) const SYMLINK: u8 = 20;
pub(super) const EXTENDED: u8 = 200;

/// A request, as it names things.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Asked<'a> {
    Open {
        path: String,
        flags: u32,
    },
    Close {
        handle: &'a [u8],
    },
    Read {
        handle: &'a [u8],
        offset: u64,
    },
    /// `copy-data` into the file open as `handle`: the server writes bytes that never pass.
    CopyInto {
        handle: &'a [u8],
    },
    Remove {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Link {
        path: String,
        target: String,
        kind: LinkKind,
    },
    /// A request the server answers whose outcome changes nothing followed here.
    Other,
}

/// A request whose fields do not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// The request a packet of `kind` makes (`WRITE` aside: its data passes in pieces); `None` for
/// `INIT` and for types the server does not know, which OpenSSH's sftp-server does not answer.
pub(super) fn parse(kind: u8, fields: &[u8]) -> Result<Option<Asked<'_>>, Malformed> {
    let mut fields = Fields::new(fields);
    let asked = match kind {
        INIT => return Ok(None),
        OPEN => {
            let path = fields.path().ok_or(Malformed)?;
            let flags = fields.u32().ok_or(Malformed)?;
            Asked::Open { path, flags }
        }
        CLOSE => Asked::Close {
            handle: fields.string().ok_or(Malformed)?,
        },
        READ => {
            let handle = fields.string().ok_or(Malformed)?;
            let offset = fields.u64().ok_or(Malformed)?;
            fields.u32().ok_or(Malformed)?;
            Asked::Read { handle, offset }
        }
        REMOVE => Asked::Remove {
            path: fields.path().ok_or(Malformed)?,
        },
        MKDIR => Asked::Mkdir {
            path: fields.path().ok_or(Malformed)?,
        },
        RMDIR => Asked::Rmdir {
            path: fields.path().ok_or(Malformed)?,
        },
        RENAME => {
            let from = fields.path().ok_or(Malformed)?;
            let to = fields.path().ok_or(Malformed)?;
            Asked::Rename { from, to }
        }
        SYMLINK => {
            // OpenSSH's order (its PROTOCOL, 4.1): the target first, then the link.
            let target = fields.path().ok_or(Malformed)?;
            let path = fields.path().ok_or(Malformed)?;
            Asked::Link {
                path,
                target,
                kind: LinkKind::Symbolic,
            }
        }
        EXTENDED => parse_extended(&mut fields)?,
        // LSTAT, FSTAT, SETSTAT, FSETSTAT, OPENDIR, READDIR, REALPATH, STAT, READLINK.
        7..=12 | 16 | 17 | 19 => Asked::Other,
        _ => return Ok(None),
    };
    Ok(Some(asked))
}

fn parse_extended<'a>(fields: &mut Fields<'a>) -> Result<Asked<'a>, Malformed> {
    let name = fields.string().ok_or(Malformed)?;
    let asked = match name {
        b"posix-rename@openssh.com" => {
            let from = fields.path().ok_or(Malformed)?;
            let to = fields.path().ok_or(Malformed)?;
            Asked::Rename { from, to }
        }
        b"hardlink@openssh.com" => {
            let target = fields.path().ok_or(Malformed)?;
            let path = fields.path().ok_or(Malformed)?;
            Asked::Link {
                path,
                target,
                kind: LinkKind::Hard,
            }
        }
        b"copy-data" => {
            // read-from handle, offset and length; write-to handle and offset.
            fields.string().ok_or(Malformed)?;
            fields.u64().ok_or(Malformed)?;
            fields.u64().ok_or(Malformed)?;
            let handle = fields.string().ok_or(Malformed)?;
            fields.u64().ok_or(Malformed)?;
            Asked::CopyInto { handle }
        }
        _ => Asked::Other,
    };
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{string, strings};
    use super::*;

    #[test]
    fn requests_read_as_openssh_sends_them() {
        let open = [string(b"/f"), 0x1au32.to_be_bytes().to_vec(), vec![0; 4]].concat();
        assert_eq!(
            parse(OPEN, &open),
            Ok(Some(Asked::Open {
                path: "/f".into(),
                flags: 0x1a
            }))
        );
        assert_eq!(
            parse(SYMLINK, &strings(&[b"target", b"/link"])),
            Ok(Some(Asked::Link {
                path: "/link".into(),
                target: "target".into(),
                kind: LinkKind::Symbolic
            }))
        );
        assert_eq!(
            parse(EXTENDED, &strings(&[b"limits@openssh.com"])),
            Ok(Some(Asked::Other))
        );
        assert_eq!(parse(INIT, &3u32.to_be_bytes()), Ok(None));
        assert_eq!(parse(99, &[]), Ok(None), "the server does not answer");
        assert_eq!(parse(17, &[]), Ok(Some(Asked::Other)), "STAT is answered");
    }

    #[test]
    fn fields_that_do_not_read_are_malformed() {
        assert_eq!(parse(OPEN, &string(b"/f")), Err(Malformed), "no flags");
        assert_eq!(parse(REMOVE, &[0, 0, 0, 9, b'/']), Err(Malformed));
        assert_eq!(parse(REMOVE, &string(b"/a\0b")), Err(Malformed));
        assert_eq!(
            parse(EXTENDED, &strings(&[b"posix-rename@openssh.com", b"/a"])),
            Err(Malformed)
        );
    }
}
