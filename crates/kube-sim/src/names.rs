//! Kubernetes name rules (apimachinery `validation.go`) and `generateName`.

use rand::Rng;

fn is_label_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `name` is not a DNS-1123 label (namespaces, container and volume names), if it is not.
pub fn dns1123_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    if !is_label_part(name) {
        return Some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    None
}

/// Why `name` is not a DNS-1123 subdomain (pod and PVC names), if it is not.
pub fn dns1123_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    if name.is_empty() || !name.split('.').all(is_label_part) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    None
}

/// Why `value` is not a valid label value, if it is not.
pub fn label_value(value: &str) -> Option<String> {
    let ok_inner = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    let b = value.as_bytes();
    if value.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    if b.is_empty() {
        return None;
    }
    if !b.iter().all(|c| ok_inner(*c))
        || !b[0].is_ascii_alphanumeric()
        || !b[b.len() - 1].is_ascii_alphanumeric()
    {
        return Some(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    None
}

/// `generateName`: the base cut to 58 characters plus five random characters from the
/// apiserver's alphabet (`storage/names/generate.go`).
pub fn generate(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut cut = base.to_owned();
    cut.truncate(58);
    let mut rng = rand::thread_rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{cut}{suffix}")
}

/// A random RFC 4122 version-4 UID.
pub fn uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(dns1123_label("web-1").is_none());
        assert!(dns1123_label("Web").is_some());
        assert!(dns1123_label("-a").is_some());
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert!(dns1123_label("").is_some());
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("a.b-c.d").is_none());
        assert!(dns1123_subdomain("a..b").is_some());
        assert!(dns1123_subdomain("Bad_Name").is_some());
        assert!(dns1123_subdomain("").is_some());
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_none());
        assert!(label_value("A_b.c-1").is_none());
        assert!(label_value("_a").is_some());
        assert!(label_value("a b").is_some());
    }

    #[test]
    fn generated_names() {
        let n = generate("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert!(dns1123_subdomain(&n).is_none());
        assert_eq!(generate(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
