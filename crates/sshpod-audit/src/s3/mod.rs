//! S3 storage that loses nothing: the recorder writes every connection into the local spool
//! (`audit.s3.local`, with [`layout`](crate::layout)'s tree) and the [`Uploader`] empties it
//! into the bucket; [`S3Store`] reads the bucket back.
//!
//! # What the uploader promises
//!
//! - **Object keys** are the files' paths relative to the spool (`<connection>/events.jsonl`, or
//!   `<connection>` for the one-file formats), so the bucket holds the spool's tree.
//! - **Long sessions upload as they run.** While an entry is incomplete, every file that has
//!   grown by at least `uploadPartSize` bytes since its last part sends the next
//!   `uploadPartSize` bytes of its already-written prefix as a multipart part. When the entry
//!   is complete the rest goes up as the last part and the upload is completed; a file that
//!   never reached one part is sent with a single PUT.
//! - **Restarts resume.** Multipart progress (upload id, part ETags, part size) is kept per entry
//!   in `.state/<connection>.upload`, written whole after every part, so a new process (even
//!   after `kill -9`) continues the same upload. A part sent but not yet noted is sent again
//!   (same bytes, same number); an upload id the store no longer knows starts that file again
//!   from its first byte. The file is named `.upload`, not `.json`, so that
//!   [`layout::read_states`](crate::layout::read_states) does not take it for a state.
//! - **Nothing is abandoned.** A store that fails is retried with exponential backoff (1 s
//!   doubling to 60 s, with jitter) for as long as the process runs; the outage is logged once
//!   at warn with the store's error and its end at info. ContainerSSH gives up after 20 failures;
//!   we do not.
//! - **Removal last.** An entry is removed from the spool only after every file of its complete
//!   recording has been uploaded; the progress file goes after the entry (a leftover one is
//!   removed at the next start).
//! - **Shutdown** (the lifecycle's token is cancelled) stops at once, mid-request if need be:
//!   whatever was not noted is sent again by the next process.
//!
//! # Objects
//!
//! Object metadata is ContainerSSH's, from the entry's state: `timestamp` (unix seconds of the
//! connection's start), `authenticated` (`true`/`false`), `country`, and `username` and `ip`
//! only with `metadata.username` and `metadata.ip`. Values come from clients, so anything but
//! printable ASCII is percent-encoded and each value is cut at 1 KiB (S3 allows 2 KiB of metadata
//! per object). Metadata is set when an object's upload starts: a multipart upload of a long
//! session carries what was known then. Content types: `application/x-ndjson` for `.jsonl`,
//! `application/x-asciicast` for `.cast`, `application/octet-stream` for the rest (ContainerSSH
//! sends `application/octet-stream` for everything). `acl` becomes the canned-ACL header
//! `x-amz-acl`, signed, on every request of the uploader.
//!
//! # Addressing
//!
//! `pathStyleAccess: false` (ContainerSSH's default) asks for virtual-hosted addressing
//! (`https://<bucket>.<endpoint host>/<key>`). It needs a DNS name the bucket can be put in
//! front of, so sshpod uses path style (`<endpoint>/<bucket>/<key>`) when the endpoint's host is
//! an IP address or `localhost`, or when the bucket is not a valid DNS label (upper case,
//! underscores, or dots over https), as the AWS SDKs do; the choice is logged at start.
//!
//! # Permissions
//!
//! The uploader needs `s3:PutObject` (which covers the multipart requests),
//! `s3:ListMultipartUploadParts` (asked only when a part fails, to tell a lost upload from a
//! failing store) and, with `acl`, `s3:PutObjectAcl`; [`S3Store`] needs `s3:ListBucket` and
//! `s3:GetObject`. A refused request is retried like any failure: nothing is dropped.
//!
//! # The spool's size, and what the recorder does
//!
//! `maxSpoolSize` (0: no limit) bounds the bytes of the entries' files (state files are not
//! counted). The recorder takes the uploader's [`SpoolBudget`] ([`UploaderHandle::budget`]) and:
//!
//! 1. writes an entry's state before its first data byte (entries without a state are not
//!    uploaded);
//! 2. calls [`SpoolBudget::try_reserve`] with the size of every write before it makes it, and
//!    treats [`SpoolFull`] as a failed recording (with `audit.required`, the session ends); a
//!    write that then fails gives its bytes back with [`SpoolBudget::release`];
//! 3. calls [`UploaderHandle::notify`] after it writes a state (a new connection, `complete:
//!    true`), so the upload starts without waiting for the next scan (every second).
//!
//! The uploader gives the bytes back when it removes an uploaded entry. [`Uploader::start`]
//! spawns its task on the lifecycle it is given, so it is called from within the tokio runtime.

mod backoff;
mod budget;
mod client;
mod object;
mod progress;
mod store;
mod uploader;

use std::io;
use std::path::PathBuf;

pub use budget::{spool_usage, SpoolBudget, SpoolFull};
pub use store::S3Store;
pub use uploader::{Uploader, UploaderHandle, UploaderStats, UploaderTiming};

/// Why the S3 storage could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// `endpoint` is not an http(s) URL.
    #[error("audit.s3.endpoint {endpoint:?} is not an http:// or https:// URL")]
    Endpoint {
        /// The configured endpoint.
        endpoint: String,
    },
    /// `cacert` holds no usable PEM certificate.
    #[error("audit.s3.cacert holds no usable PEM certificate")]
    CaCert {
        /// What the parser said, if it failed (none: it found no certificate).
        #[source]
        source: Option<object_store::Error>,
    },
    /// `acl` is not one of S3's canned ACLs.
    #[error("audit.s3.acl {acl:?} is not a canned ACL (private, public-read, public-read-write, authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control, log-delivery-write)")]
    Acl {
        /// The configured ACL.
        acl: String,
    },
    /// `uploadPartSize` is outside what S3 accepts.
    #[error("audit.s3.uploadPartSize {size} is out of range (1 byte to 5 GiB)")]
    PartSize {
        /// The configured size.
        size: u64,
    },
    /// Only one of `accessKey` and `secretKey` is set.
    #[error("audit.s3 needs both accessKey and secretKey, or neither (the instance's role)")]
    Credentials,
    /// The client could not be built from the configuration.
    #[error("building the S3 client for bucket {bucket:?}")]
    Client {
        /// The bucket.
        bucket: String,
        /// What object_store said.
        #[source]
        source: object_store::Error,
    },
    /// The spool could not be read.
    #[error("reading the audit spool {path}")]
    Spool {
        /// The spool directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}
