//! The russh server configuration, from sshpod's: algorithms, keys, limits, keepalives.

use std::borrow::Cow;
use std::time::Duration;

use russh::keys::ssh_key::Certificate;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::Config as RusshConfig;
use russh::{kex, MethodSet, Preferred, SshId};
use sshpod_config::Config;
use sshpod_russh::algorithms;

/// How long a failed authentication attempt is held before the answer, to slow guessing.
const AUTH_REJECTION_DELAY: Duration = Duration::from_millis(500);

/// The client-facing packet size; 32 KiB is what OpenSSH uses.
const MAX_PACKET: u32 = 32 * 1024;

/// The library's limits from `ssh.rekeyLimit` (checked at load to be within its bounds).
fn rekey_limits(limit: sshpod_config::RekeyLimit) -> russh::Limits {
    let bytes =
        usize::try_from(limit.bytes.min(sshpod_config::RekeyLimit::MAX_BYTES)).unwrap_or(1 << 30);
    // "No time limit": longer than any connection lives.
    let interval = limit
        .interval
        .unwrap_or(Duration::from_secs(10 * 365 * 24 * 3600));
    russh::Limits::new(bytes, bytes, interval)
}

pub(crate) fn build(
    config: &Config,
    keys: Vec<PrivateKey>,
    certificates: Vec<Certificate>,
    methods: MethodSet,
) -> RusshConfig {
    let ssh = &config.ssh;
    let mut kexes: Vec<kex::Name> = ssh.kex.iter().filter_map(|k| algorithms::kex(*k)).collect();
    // Extension negotiation and strict key exchange (Terrapin) are always on.
    kexes.push(kex::EXTENSION_SUPPORT_AS_SERVER);
    kexes.push(kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER);
    let preferred = Preferred {
        kex: Cow::Owned(kexes),
        key: Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]),
        cipher: Cow::Owned(
            ssh.ciphers
                .iter()
                .filter_map(|c| algorithms::cipher(*c))
                .collect(),
        ),
        mac: Cow::Owned(
            ssh.macs
                .iter()
                .filter_map(|m| algorithms::mac(*m))
                .collect(),
        ),
        compression: Cow::Borrowed(&[russh::compression::NONE]),
        ..Preferred::DEFAULT
    };
    let keepalive = (!ssh.client_alive_interval.is_zero()).then_some(ssh.client_alive_interval);
    RusshConfig {
        server_id: SshId::Standard(Cow::Owned(ssh.server_version.clone())),
        methods,
        auth_rejection_time: AUTH_REJECTION_DELAY,
        // OpenSSH probes with "none" first; that is no guess and needs no delay.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        // Offered as `*-cert-v01@openssh.com` host key algorithms, ahead of the plain keys.
        certificates,
        preferred,
        max_auth_attempts: ssh.max_auth_tries as usize,
        // Idle shells are legitimate; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: keepalive,
        keepalive_max: ssh.client_alive_count_max as usize,
        nodelay: true,
        maximum_packet_size: MAX_PACKET,
        limits: rekey_limits(ssh.rekey_limit),
        ..RusshConfig::default()
    }
}
