//! The details of an OpenSSH certificate sent to the public-key webhook (sshpod's extension
//! of ContainerSSH's `/pubkey` request).

use std::collections::BTreeMap;

use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PublicKey};
use sshpod_webhook::protocol::CertificateInfo;

use super::webhook::key_line;

/// What the certificate says, for the webhook.
pub(super) fn certificate_info(certificate: &Certificate) -> CertificateInfo {
    let ca = PublicKey::from(certificate.signature_key().clone());
    let to_map = |map: &russh::keys::ssh_key::certificate::OptionsMap| {
        map.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let certified = PublicKey::from(certificate.public_key().clone());
    CertificateInfo {
        cert_type: if certificate.cert_type().is_host() {
            "host".to_owned()
        } else {
            "user".to_owned()
        },
        key_id: certificate.key_id().to_owned(),
        serial: certificate.serial(),
        principals: certificate.valid_principals().to_vec(),
        ca_fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
        ca_key: ca.to_openssh().map(|l| key_line(&l)).unwrap_or_default(),
        valid_after: rfc3339(certificate.valid_after()),
        valid_before: if certificate.valid_before() == u64::MAX {
            "forever".to_owned()
        } else {
            rfc3339(certificate.valid_before())
        },
        critical_options: to_map(certificate.critical_options()),
        extensions: to_map(certificate.extensions()),
        public_key: certified
            .to_openssh()
            .map(|l| key_line(&l))
            .unwrap_or_default(),
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time.
fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
