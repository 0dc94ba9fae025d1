//! SFTP packets as bytes, for tests.

pub(crate) fn packet(kind: u8, id: u32, fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as u32 + 5).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(fields);
    out
}

pub(crate) fn string(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

pub(crate) fn strings(items: &[&[u8]]) -> Vec<u8> {
    items.iter().flat_map(|item| string(item)).collect()
}

pub(crate) fn open(id: u32, path: &str, flags: u32) -> Vec<u8> {
    let mut fields = string(path.as_bytes());
    fields.extend_from_slice(&flags.to_be_bytes());
    fields.extend_from_slice(&0u32.to_be_bytes()); // no attributes
    packet(3, id, &fields)
}

pub(crate) fn write(id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
    let mut fields = string(handle);
    fields.extend_from_slice(&offset.to_be_bytes());
    fields.extend(string(data));
    packet(6, id, &fields)
}

pub(crate) fn read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
    let mut fields = string(handle);
    fields.extend_from_slice(&offset.to_be_bytes());
    fields.extend_from_slice(&len.to_be_bytes());
    packet(5, id, &fields)
}

pub(crate) fn status(id: u32, code: u32) -> Vec<u8> {
    let mut fields = code.to_be_bytes().to_vec();
    fields.extend(strings(&[b"message", b""]));
    packet(101, id, &fields)
}

pub(crate) fn handle(id: u32, handle: &[u8]) -> Vec<u8> {
    packet(102, id, &string(handle))
}

pub(crate) fn data(id: u32, data: &[u8]) -> Vec<u8> {
    packet(103, id, &string(data))
}

pub(crate) fn version(version: u32) -> Vec<u8> {
    packet(2, version, &[])
}

pub(crate) fn init() -> Vec<u8> {
    packet(1, 3, &[])
}
