//! Session recordings: what sshpod keeps of every connection, where it keeps it, and how it is
//! read back.
//!
//! The server hands every connection's events and channel records to
//! [`Audit`](recorder::Audit) (an [`EventSink`](sshpod_core::EventSink)); a writer thread turns
//! them into files in a local directory, one entry per connection ([`layout`]), in sshpod's
//! format ([`sshpod_format`]) or ContainerSSH's ([`containerssh`]), following SFTP and scp
//! sessions' files ([`transfers`]); with S3 storage, that directory is a spool the uploader
//! ([`s3`]) empties into the bucket. Readers ([`store`], [`summary`]) list and open recordings
//! in a directory or a bucket for the `sshpod audit` commands and the recordings page.

pub mod asciicast;
pub mod chain;
pub mod containerssh;
pub mod item;
pub mod layout;
pub mod log_lines;
pub mod recorder;
pub mod s3;
pub mod sshpod_format;
pub mod store;
pub mod summary;
pub mod transfers;
