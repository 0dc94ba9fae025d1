//! Reading CBOR values from a hostile stream with bounded memory.
//!
//! `ciborium`'s own deserializer cannot be told how much memory it may use, so values are built
//! here from its low-level headers: every value is charged to a [`Budget`] before it is kept,
//! lengths in the input are never used to allocate (strings grow as their bytes arrive), and
//! nesting is limited so the stack is too.

use std::io;

use ciborium::Value;
use ciborium_ll::{simple, Decoder, Header};

/// How deep arrays, maps and tags may nest. ContainerSSH's messages nest four levels at most
/// (message, payload, a list of questions, a question).
const MAX_DEPTH: usize = 32;

/// What a kept value costs besides its bytes: its slot in the tree.
const VALUE_COST: u64 = std::mem::size_of::<Value>() as u64;

/// Bytes read from the stream at a time while a string is collected.
const CHUNK: usize = 4096;

/// How much decoded memory may still be used. Shared by every message of one log.
#[derive(Debug)]
pub(super) struct Budget {
    left: u64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub(super) fn new(limit: u64) -> Self {
        Self { left: limit }
    }

    /// Takes `cost` bytes from the budget, or says it is spent.
    pub(super) fn charge(&mut self, cost: u64) -> Result<(), ReadError> {
        self.left = self.left.checked_sub(cost).ok_or(ReadError::OverBudget)?;
        Ok(())
    }
}

/// Why a value could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The stream failed (or ended: [`io::ErrorKind::UnexpectedEof`]).
    Io(io::Error),
    /// The bytes are not CBOR, or not CBOR this format uses.
    Invalid(String),
    /// The value would pass the budget.
    OverBudget,
}

impl From<ciborium_ll::Error<io::Error>> for ReadError {
    fn from(e: ciborium_ll::Error<io::Error>) -> Self {
        match e {
            ciborium_ll::Error::Io(e) => ReadError::Io(e),
            ciborium_ll::Error::Syntax(offset) => {
                ReadError::Invalid(format!("invalid CBOR at byte {offset} of the body"))
            }
        }
    }
}

/// Reads one whole value.
pub(super) fn read_value<R: io::Read>(
    decoder: &mut Decoder<R>,
    budget: &mut Budget,
) -> Result<Value, ReadError> {
    let header = decoder.pull()?;
    value_from(header, decoder, budget, 0)
}

/// Reads the value `header` starts.
pub(super) fn value_from<R: io::Read>(
    header: Header,
    decoder: &mut Decoder<R>,
    budget: &mut Budget,
    depth: usize,
) -> Result<Value, ReadError> {
    if depth > MAX_DEPTH {
        return Err(ReadError::Invalid(format!(
            "values nested more than {MAX_DEPTH} deep"
        )));
    }
    budget.charge(VALUE_COST)?;
    Ok(match header {
        Header::Positive(n) => Value::Integer(n.into()),
        // CBOR's negative integers are -1 - n, which always fits a CBOR integer value.
        Header::Negative(n) => match (-1 - i128::from(n)).try_into() {
            Ok(i) => Value::Integer(i),
            Err(_) => return Err(ReadError::Invalid("integer out of range".to_owned())),
        },
        Header::Float(f) => Value::Float(f),
        Header::Simple(simple::FALSE) => Value::Bool(false),
        Header::Simple(simple::TRUE) => Value::Bool(true),
        Header::Simple(simple::NULL | simple::UNDEFINED) => Value::Null,
        Header::Simple(other) => {
            return Err(ReadError::Invalid(format!("unknown simple value {other}")))
        }
        Header::Tag(tag) => {
            let inner = decoder.pull()?;
            let inner = value_from(inner, decoder, budget, depth + 1)?;
            Value::Tag(tag, Box::new(inner))
        }
        Header::Break => return Err(ReadError::Invalid("unexpected break".to_owned())),
        Header::Bytes(len) => {
            let mut bytes = Vec::new();
            let mut chunk = [0u8; CHUNK];
            let mut segments = decoder.bytes(len);
            while let Some(mut segment) = segments.pull()? {
                while let Some(part) = segment.pull(&mut chunk)? {
                    budget.charge(part.len() as u64)?;
                    bytes.extend_from_slice(part);
                }
            }
            Value::Bytes(bytes)
        }
        Header::Text(len) => {
            let mut text = String::new();
            let mut chunk = [0u8; CHUNK];
            let mut segments = decoder.text(len);
            while let Some(mut segment) = segments.pull()? {
                while let Some(part) = segment.pull(&mut chunk)? {
                    budget.charge(part.len() as u64)?;
                    text.push_str(part);
                }
            }
            Value::Text(text)
        }
        Header::Array(len) => {
            let mut items = Vec::new();
            while let Some(header) = next_item(decoder, len, items.len())? {
                items.push(value_from(header, decoder, budget, depth + 1)?);
            }
            Value::Array(items)
        }
        Header::Map(len) => {
            let mut entries = Vec::new();
            while let Some(header) = next_item(decoder, len, entries.len())? {
                let key = value_from(header, decoder, budget, depth + 1)?;
                let header = decoder.pull()?;
                let value = value_from(header, decoder, budget, depth + 1)?;
                entries.push((key, value));
            }
            Value::Map(entries)
        }
    })
}

/// The header of a container's next item, or `None` after its last: `len` items when it has a
/// length, else up to the break.
pub(super) fn next_item<R: io::Read>(
    decoder: &mut Decoder<R>,
    len: Option<usize>,
    read: usize,
) -> Result<Option<Header>, ReadError> {
    match len {
        Some(len) if read >= len => Ok(None),
        Some(_) => Ok(Some(decoder.pull()?)),
        None => match decoder.pull()? {
            Header::Break => Ok(None),
            header => Ok(Some(header)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], limit: u64) -> Result<Value, ReadError> {
        let mut decoder = Decoder::from(bytes);
        read_value(&mut decoder, &mut Budget::new(limit))
    }

    fn must_read(bytes: &[u8]) -> Value {
        match read(bytes, 1 << 20) {
            Ok(v) => v,
            Err(e) => panic!("reading {bytes:02x?}: {e:?}"),
        }
    }

    #[test]
    fn reads_what_ciborium_writes() {
        let value = Value::Map(vec![
            (Value::Text("data".into()), Value::Bytes(vec![0, 1, 2, 255])),
            (Value::Text("n".into()), Value::Integer((-300).into())),
            (Value::Text("big".into()), Value::Integer(u64::MAX.into())),
            (Value::Text("f".into()), Value::Float(1.5)),
            (
                Value::Text("list".into()),
                Value::Array(vec![
                    Value::Null,
                    Value::Bool(true),
                    Value::Text("é".repeat(5000)),
                ]),
            ),
            (
                Value::Text("tag".into()),
                Value::Tag(1, Box::new(Value::Integer(5.into()))),
            ),
        ]);
        let mut bytes = Vec::new();
        if let Err(e) = ciborium::into_writer(&value, &mut bytes) {
            panic!("encoding: {e}");
        }
        assert_eq!(must_read(&bytes), value);
    }

    #[test]
    fn reads_indefinite_containers_and_chunked_strings() {
        // [_ "ab" "c"_ , {_ 1: h'01' h'02'_ }] with indefinite lengths everywhere.
        let bytes = [
            0x9f, 0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff, 0xbf, 0x01, 0x5f, 0x41, 0x01, 0x41,
            0x02, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            must_read(&bytes),
            Value::Array(vec![
                Value::Text("abc".into()),
                Value::Map(vec![(Value::Integer(1.into()), Value::Bytes(vec![1, 2]))]),
            ])
        );
    }

    #[test]
    fn a_huge_declared_length_ends_at_the_input_without_allocating_it() {
        // A byte string claiming 2^62 bytes, followed by three.
        let bytes = [0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
        match read(&bytes, u64::MAX) {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected the input to run out, got {other:?}"),
        }
        // An array claiming 2^64 - 1 items, with one.
        let bytes = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(read(&bytes, u64::MAX), Err(ReadError::Io(_))));
    }

    #[test]
    fn values_past_the_budget_are_refused() {
        // An array of 1000 nulls costs 1001 tree slots.
        let mut bytes = vec![0x99, 0x03, 0xe8];
        bytes.extend(std::iter::repeat_n(0xf6, 1000));
        assert!(matches!(
            read(&bytes, 1000 * VALUE_COST),
            Err(ReadError::OverBudget)
        ));
        assert!(read(&bytes, 1001 * VALUE_COST).is_ok());
        // A 10000-byte string.
        let mut bytes = vec![0x59, 0x27, 0x10];
        bytes.extend(std::iter::repeat_n(b'x', 10_000));
        assert!(matches!(read(&bytes, 9_000), Err(ReadError::OverBudget)));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let bytes = vec![0x81; 10_000];
        match read(&bytes, u64::MAX) {
            Err(ReadError::Invalid(reason)) => assert!(reason.contains("nested"), "{reason}"),
            other => panic!("expected a nesting error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bytes_are_invalid() {
        // A reserved additional-information value, a lone break, invalid UTF-8, a bad simple.
        for bytes in [&[0x1c][..], &[0xff], &[0x62, 0xff, 0xfe], &[0xf8, 0x10]] {
            assert!(
                matches!(read(bytes, u64::MAX), Err(ReadError::Invalid(_))),
                "{bytes:02x?}"
            );
        }
    }
}
