//! sshpod's SSH server as a library: the binary (`main.rs`) runs it with a real backend, and
//! the in-process test gateway (`sshpod-test-support`) runs it with a fake one.
//!
//! The path of one login, by folder: `server/admission` lets the connection in,
//! `server/transport` wraps its socket, `server/handler.rs` turns SSH requests into work,
//! `server/auth` decides the login, `server/connection` provisions the container and tears
//! it down, `server/channel` runs each channel, and `server/io` moves the bytes.
//!
//! `web` is the recordings page: an HTTP(S) server that lists recordings and plays them.
//! `http` serves metrics (`metrics`, with countries from `geoip`) and health; its TLS and
//! connection handling serve the recordings page too.

pub mod geoip;
pub mod http;
pub mod log_codes;
pub mod metrics;
pub mod server;
pub mod web;
