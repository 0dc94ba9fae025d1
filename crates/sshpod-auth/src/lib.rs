//! sshpod's built-in authenticators.
//!
//! - [`AuthorizedKeys`]: public-key authentication from OpenSSH `authorized_keys` files, one file
//!   per user found through a path pattern such as `/etc/sshpod/authorized_keys/%u`.
//! - [`Htpasswd`]: password authentication from an Apache-style `htpasswd` file with bcrypt,
//!   SHA-512-crypt or Argon2id hashes.
//!
//! Both re-read their file on every attempt, so operators can edit the files while the server
//! runs and there is no cache to invalidate. Every check is **blocking** (file I/O, and password
//! hashing is deliberately CPU-heavy): call them from `tokio::task::spawn_blocking`, never
//! directly on an async worker thread.
//!
//! Login names reach this crate only as a validated [`UserName`], which is safe to put into a
//! path; passwords only as a [`Password`], which never prints its content.
//!
//! Dependency rule: this crate depends on russh (for its public-key types) and on the password
//! hashing crates, and on nothing else of sshpod. It does no async work and owns no state.

#![warn(missing_docs, unreachable_pub)]

mod authorized_keys;
mod credentials;
mod error;
mod file;
mod htpasswd;

pub use crate::authorized_keys::{AuthorizedKeys, KeyOptions};
pub use crate::credentials::{Password, UserName, UserNameError};
pub use crate::error::Error;
pub use crate::htpasswd::Htpasswd;
