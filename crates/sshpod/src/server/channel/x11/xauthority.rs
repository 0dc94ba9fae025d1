//! The Xauthority file format (`~/.Xauthority`, as libXau reads it), so sshpod can give a
//! session's X clients the client's cookie without `xauth` in the image.
//!
//! A file is a sequence of entries; each is a big-endian `u16` address family, then four
//! counted strings (a big-endian `u16` length and the bytes): the address, the display number
//! in decimal, the authorization protocol's name and its data. Adding an entry replaces any
//! with the same family, address, display and protocol, as `xauth add` does.

/// `FamilyLocal`: a display on this host, named by the host's name. X clients look a
/// connection to `localhost:N` up under it, with the host's name as the address.
pub(crate) const FAMILY_LOCAL: u16 = 256;

/// The largest existing file sshpod merges its entry into; a bigger one is left alone.
pub(crate) const MAX_FILE: usize = 64 * 1024;

/// One authorization entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The address family ([`FAMILY_LOCAL`] for the entries sshpod writes).
    pub(crate) family: u16,
    /// The address (for [`FAMILY_LOCAL`]: the host's name).
    pub(crate) address: Vec<u8>,
    /// The display number, in decimal.
    pub(crate) number: Vec<u8>,
    /// The protocol's name, such as `MIT-MAGIC-COOKIE-1`.
    pub(crate) name: Vec<u8>,
    /// The protocol's data (the cookie).
    pub(crate) data: Vec<u8>,
}

impl Entry {
    /// Whether adding `other` replaces this entry.
    fn same_slot(&self, other: &Entry) -> bool {
        self.family == other.family
            && self.address == other.address
            && self.number == other.number
            && self.name == other.name
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.to_be_bytes());
        for field in [&self.address, &self.number, &self.name, &self.data] {
            // Every field sshpod writes is far below 64 KiB (checked where they come from);
            // a longer one is cut rather than written with a wrong length.
            let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&field[..usize::from(len)]);
        }
    }
}

/// Reads the entries of `file`. Reading stops at the first entry that is cut short, as libXau
/// does; the entries before it are returned, and whether something was left over.
pub(crate) fn parse(file: &[u8]) -> (Vec<Entry>, Leftover) {
    let mut entries = Vec::new();
    let mut rest = file;
    while !rest.is_empty() {
        match parse_entry(rest) {
            Some((entry, after)) => {
                entries.push(entry);
                rest = after;
            }
            None => return (entries, Leftover::Malformed),
        }
    }
    (entries, Leftover::None)
}

/// Whether a file had bytes after its last whole entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftover {
    /// It ended with an entry.
    None,
    /// It had bytes that are not a whole entry (they are dropped when it is rewritten).
    Malformed,
}

fn parse_entry(bytes: &[u8]) -> Option<(Entry, &[u8])> {
    let (family, rest) = take_u16(bytes)?;
    let (address, rest) = take_counted(rest)?;
    let (number, rest) = take_counted(rest)?;
    let (name, rest) = take_counted(rest)?;
    let (data, rest) = take_counted(rest)?;
    Some((
        Entry {
            family,
            address: address.to_vec(),
            number: number.to_vec(),
            name: name.to_vec(),
            data: data.to_vec(),
        },
        rest,
    ))
}

fn take_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_be_bytes(*head), rest))
}

fn take_counted(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = take_u16(bytes)?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The file `existing` with `entry` added: an entry for the same family, address, display and
/// protocol is replaced where it stood, otherwise `entry` goes first.
pub(crate) fn merged(existing: &[Entry], entry: &Entry) -> Vec<u8> {
    let mut out = Vec::new();
    let mut placed = false;
    for old in existing {
        if old.same_slot(entry) {
            if !placed {
                entry.encode_into(&mut out);
                placed = true;
            }
        } else {
            old.encode_into(&mut out);
        }
    }
    if !placed {
        let mut first = Vec::new();
        entry.encode_into(&mut first);
        first.extend_from_slice(&out);
        out = first;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, number: &str, data: &[u8]) -> Entry {
        Entry {
            family: FAMILY_LOCAL,
            address: address.as_bytes().to_vec(),
            number: number.as_bytes().to_vec(),
            name: b"MIT-MAGIC-COOKIE-1".to_vec(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn an_entry_is_written_as_libxau_reads_it() {
        let written = merged(&[], &entry("box", "10", &[0xde, 0xad]));
        let mut expected = vec![0x01, 0x00, 0x00, 0x03];
        expected.extend_from_slice(b"box");
        expected.extend_from_slice(&[0x00, 0x02]);
        expected.extend_from_slice(b"10");
        expected.extend_from_slice(&[0x00, 0x12]);
        expected.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        expected.extend_from_slice(&[0x00, 0x02, 0xde, 0xad]);
        assert_eq!(written, expected);
        assert_eq!(
            parse(&written),
            (vec![entry("box", "10", &[0xde, 0xad])], Leftover::None)
        );
    }

    #[test]
    fn adding_replaces_the_same_display_and_keeps_the_others_in_order() {
        let other_display = entry("box", "11", b"keep");
        let other_host = entry("elsewhere", "10", b"keep too");
        let stale = entry("box", "10", b"old");
        let mut file = Vec::new();
        for e in [&other_display, &stale, &other_host] {
            e.encode_into(&mut file);
        }
        let (existing, leftover) = parse(&file);
        assert_eq!(leftover, Leftover::None);
        let fresh = entry("box", "10", b"new");
        let (after, _) = parse(&merged(&existing, &fresh));
        assert_eq!(
            after,
            vec![other_display, fresh.clone(), other_host.clone()]
        );

        let (after, _) = parse(&merged(std::slice::from_ref(&other_host), &fresh));
        assert_eq!(after, vec![fresh, other_host], "a new entry goes first");
    }

    #[test]
    fn a_cut_file_keeps_its_whole_entries() {
        let kept = entry("box", "11", b"keep");
        let mut file = Vec::new();
        kept.encode_into(&mut file);
        let whole = file.len();
        entry("box", "12", b"cut").encode_into(&mut file);
        for cut in whole + 1..file.len() {
            assert_eq!(
                parse(&file[..cut]),
                (vec![kept.clone()], Leftover::Malformed),
                "cut at {cut}"
            );
        }
        assert_eq!(parse(&[0xff; 3]), (vec![], Leftover::Malformed));
        // A length that claims more than the file holds.
        assert_eq!(
            parse(&[0x01, 0x00, 0xff, 0xff, b'x']),
            (vec![], Leftover::Malformed)
        );
        assert_eq!(parse(&[]), (vec![], Leftover::None));
    }
}
