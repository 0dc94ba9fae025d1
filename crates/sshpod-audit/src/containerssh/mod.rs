//! ContainerSSH's audit log formats, for users coming from ContainerSSH: `format: binary` (its
//! binary audit log, read in versions 1 and 2 and written in version 2, so its decoder and
//! tools read sshpod's logs and `sshpod audit export` reads its logs) and `format: asciinema`
//! (an asciicast v2 file per connection, as it writes one). [`from_sshpod()`] writes a recording
//! in sshpod's own format as a binary audit log.
//!
//! The binary format: a 40-byte header (`ContainerSSH-Auditlog`, NUL-padded to 32 bytes, then
//! the version as a little-endian `u64`), then a gzip stream of CBOR messages (version 1: one
//! array; version 2: one map after another, each flushed). A message is a map of
//! `connectionId`, `timestamp` (nanoseconds), `type` (see [`type_id`]), `payload` and
//! `channelId`.

mod asciinema;
mod cbor;
mod decode;
mod encode;
mod from_sshpod;
mod header;
mod log_writer;
mod message;
#[cfg(test)]
mod test_items;

pub use asciinema::AsciinemaWriter;
pub use ciborium::Value;
pub use decode::{decode, decode_with_limit, AuditLog, DecodeError, DEFAULT_LIMIT};
pub use encode::BinaryWriter;
pub use from_sshpod::{from_sshpod, ExportError, Exported, CHUNK};
pub use message::{type_id, type_key, type_name, Message};
