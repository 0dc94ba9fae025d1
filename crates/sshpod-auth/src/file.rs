//! Reading the small, operator-edited text files both authenticators use.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::Error;

/// Largest file we read on each login attempt. Real files are a few kilobytes; the limit only
/// keeps a misconfigured path (a log file, a device) from being slurped into memory.
pub(crate) const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Reads the whole file, or `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let read_error = |source: io::Error| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let mut contents = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
    if contents.len() as u64 > MAX_FILE_SIZE {
        return Err(Error::FileTooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_SIZE,
        });
    }
    Ok(Some(contents))
}

/// One line of a file, with its 1-based number for log messages.
pub(crate) struct Line<'a> {
    pub(crate) number: usize,
    /// The line without its terminator (`\n` or `\r\n`) and surrounding whitespace, or `Err`
    /// when it is not valid UTF-8.
    pub(crate) text: Result<&'a str, std::str::Utf8Error>,
}

/// Splits file contents into lines. Blank lines and lines whose first non-blank character is
/// `#` are left out.
pub(crate) fn lines(contents: &[u8]) -> impl Iterator<Item = Line<'_>> {
    contents
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, raw)| Line {
            number: index + 1,
            text: std::str::from_utf8(raw).map(str::trim),
        })
        .filter(|line| match line.text {
            Ok(text) => !text.is_empty() && !text.starts_with('#'),
            Err(_) => true,
        })
}

/// Reads the whole file; a missing file is an error.
pub(crate) fn read_required(path: &Path) -> Result<Vec<u8>, Error> {
    read_optional(path)?.ok_or_else(|| Error::ReadFile {
        path: path.to_owned(),
        source: io::ErrorKind::NotFound.into(),
    })
}
