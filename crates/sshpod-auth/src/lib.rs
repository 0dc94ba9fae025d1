//! sshpod's built-in authenticators.
//!
//! - [`AuthorizedKeys`]: public-key authentication from OpenSSH `authorized_keys` files, one file
//!   per user found through a path pattern such as `/etc/sshpod/authorized_keys/%u`.
//! - [`Htpasswd`]: password authentication from an Apache-style `htpasswd` file with bcrypt,
//!   SHA-512-crypt or Argon2id hashes.
//! - [`KeyPolicy`]: the whole built-in public-key decision, as sshd makes it: authorized keys,
//!   user certificates from trusted CAs ([`TrustedCaKeys`], [`AuthorizedPrincipals`]),
//!   `cert-authority` lines, and revoked keys ([`RevokedKeys`]: KRL or key list).
//! - [`Restrictions`]: what a login may do afterwards (forced command, pty, forwarding), from
//!   key options and certificate options alike, for the server to enforce.
//!
//! The authenticators re-read their files on every attempt (the revoked keys file when it changes), so operators can edit the files while the server
//! runs. Every check is **blocking** (file I/O, and password
//! hashing is deliberately CPU-heavy): call them from `tokio::task::spawn_blocking`, never
//! directly on an async worker thread.
//!
//! Login names reach this crate only as a validated [`UserName`], which is safe to put into a
//! path; passwords only as a [`Password`], which never prints its content.
//!
//! Dependency rule: this crate depends on russh (for its public-key types) and on the password
//! hashing crates, and on nothing else of sshpod. It does no async work and owns no state.

#![warn(missing_docs, unreachable_pub)]

mod address;
mod authorized_keys;
mod certificate;
mod credentials;
mod error;
mod file;
mod htpasswd;
mod krl;
mod policy;
#[cfg(test)]
mod properties;
mod restrictions;
mod revoked;

pub use crate::address::{Cidr, CidrError};
pub use crate::authorized_keys::{AuthorizedKeys, KeyOptions};
pub use crate::certificate::{AuthorizedPrincipals, CertificateInfo, TrustedCaKeys};
pub use crate::credentials::{Password, UserName, UserNameError};
pub use crate::error::Error;
pub use crate::htpasswd::Htpasswd;
pub use crate::policy::{Decision, Grant, KeyPolicy, Refusal, Via};
pub use crate::restrictions::{CommandConflict, PermitListen, PermitOpen, Restrictions};
pub use crate::revoked::{ListVersion, Revocation, RevokedKeys};
