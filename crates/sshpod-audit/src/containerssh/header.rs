//! The 40 bytes that open every ContainerSSH audit log: the name `ContainerSSH-Auditlog` padded
//! with NUL to 32 bytes, then the format version as a little-endian `u64`.

/// The name at the start of the file.
const MAGIC: &[u8] = b"ContainerSSH-Auditlog";

/// The length of the name field.
const MAGIC_LEN: usize = 32;

/// The length of the whole header.
pub(super) const HEADER_LEN: usize = MAGIC_LEN + 8;

/// The version sshpod writes: a stream of CBOR maps (ContainerSSH 0.5 and later).
pub(super) const WRITTEN_VERSION: u64 = 2;

/// The header of a log of `version`.
pub(super) fn header(version: u64) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..MAGIC.len()].copy_from_slice(MAGIC);
    bytes[MAGIC_LEN..].copy_from_slice(&version.to_le_bytes());
    bytes
}

/// The version a file says it has and the rest of it, or `None` if it does not start with the
/// header.
pub(super) fn split(file: &[u8]) -> Option<(u64, &[u8])> {
    let (name, rest) = file.split_at_checked(MAGIC_LEN)?;
    let (version, body) = rest.split_first_chunk::<8>()?;
    let padding = name.get(MAGIC.len()..)?;
    if !name.starts_with(MAGIC) || padding.iter().any(|&b| b != 0) {
        return None;
    }
    Some((u64::from_le_bytes(*version), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_header_splits_back() {
        let mut file = header(2).to_vec();
        file.extend_from_slice(b"body");
        assert_eq!(split(&file), Some((2, &b"body"[..])));
    }

    #[test]
    fn files_without_the_header_do_not_split() {
        assert_eq!(split(b""), None);
        assert_eq!(split(&header(1)[..HEADER_LEN - 1]), None);
        let mut wrong_name = header(1);
        wrong_name[0] = b'c';
        assert_eq!(split(&wrong_name), None);
        let mut no_padding = header(1);
        no_padding[MAGIC.len()] = b'!';
        assert_eq!(split(&no_padding), None);
    }
}
