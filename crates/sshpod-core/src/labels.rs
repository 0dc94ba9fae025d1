//! The labels sshpod puts on every container or pod, and the rules that turn a login name
//! into a name or label value every backend accepts. One copy for all backends, so a
//! container and a pod of the same login say the same thing.
//!
//! The rules are Kubernetes' (DNS-1123 names, label values), the stricter of the two
//! backends: a name valid there is valid on Docker too.

/// The sshpod process that owns the container: a random id per start, after the seat (where
/// the process serves from, the same across its restarts) on Docker.
pub const INSTANCE: &str = "sshpod.instance";
/// The SSH connection the container serves.
pub const CONNECTION: &str = "sshpod.connection";
/// The authenticated login name (as a label value, see [`label_value`]).
pub const USER: &str = "sshpod.user";

/// On a home (or per-user extra volume): which volume of the user it is (`home`, or the extra
/// mount's name). Volumes with this label are the ones `sshpod homes` lists.
pub const HOME: &str = "sshpod.home";
/// On a user's container (`mode: user`): the login it serves, as [`USER`] does, but only on
/// containers shared by a user's connections.
pub const USER_CONTAINER: &str = "sshpod.user-container";
/// On a member of the warm pool: started ahead of logins, without [`CONNECTION`] or [`USER`]
/// (labels are fixed at creation, and a member's login is not known then). It keeps the label
/// after a login claimed it; its name then says whose it is.
pub const POOL: &str = "sshpod.pool";

/// The longest DNS-1123 label (and Kubernetes label value).
const MAX_LABEL: usize = 63;

/// `prefix` + `user` + `-` + `id` (a short connection id, maybe with a session number), as a
/// DNS-1123 label: lower case, digits and `-`, at most 63 characters, alphanumeric at both
/// ends. Runs of other characters become one `-`; a user name with nothing left gives
/// `sshpod-ID`. `id` must itself be lower-case alphanumeric (and `-`), as connection ids are.
pub fn container_name(prefix: &str, user: &str, id: &str) -> String {
    let mut name = String::new();
    for c in prefix.chars().chain(user.chars()) {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-');
    let room = MAX_LABEL.saturating_sub(id.len() + 1);
    let head: String = name.chars().take(room).collect();
    let head = head.trim_end_matches('-');
    if head.is_empty() {
        format!("sshpod-{id}")
    } else {
        format!("{head}-{id}")
    }
}

/// The name of a volume of `user`: `prefix` + the login (lower-cased, other characters as
/// `-`, cut to fit) + `-` + 10 hex digits of a hash of the exact login, so two logins that
/// sanitise alike (`Alice` and `alice`) still get volumes of their own. A DNS-1123 label, so
/// it serves as a Docker volume and a PVC name alike; the same login always gives the same
/// name, in every sshpod process and version.
pub fn volume_name(prefix: &str, user: &str) -> String {
    container_name(prefix, user, &login_hash(user))
}

/// 10 hex digits of the 64-bit FNV-1a hash of `login`: stable across processes and builds
/// (unlike the standard library's hasher), short enough for names.
pub fn login_hash(login: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in login.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", hash >> 24)
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends
/// (others become `_`; an empty result is allowed).
pub fn label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(
            container_name("sshpod-", "Alice.Smith@example", "0123456789ab"),
            "sshpod-alice-smith-example-0123456789ab"
        );
        let long = "x".repeat(100);
        let name = container_name("sshpod-", &long, "0123456789ab");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-0123456789ab"));
        assert_eq!(
            container_name("", "__", "0123456789ab"),
            "sshpod-0123456789ab"
        );
    }

    #[test]
    fn volume_names_say_whose_and_never_collide() {
        assert_eq!(
            volume_name("sshpod-home-", "alice"),
            format!("sshpod-home-alice-{}", login_hash("alice"))
        );
        assert_eq!(login_hash("alice"), login_hash("alice"));
        assert_eq!(login_hash("alice").len(), 10);
        // Fixed, so homes made by one version are found by the next.
        assert_eq!(login_hash(""), "cbf29ce484");
        assert_ne!(
            volume_name("sshpod-home-", "Alice"),
            volume_name("sshpod-home-", "alice")
        );
        assert_ne!(
            volume_name("sshpod-home-", "a.b"),
            volume_name("sshpod-home-", "a_b")
        );
        let long = volume_name("sshpod-home-", &"x".repeat(300));
        assert_eq!(long.len(), 63);
        assert!(volume_name("sshpod-home-", "../../etc").starts_with("sshpod-home-etc-"));
    }

    #[test]
    fn label_values_are_sanitised() {
        assert_eq!(label_value("alice"), "alice");
        assert_eq!(label_value("al ice@x"), "al_ice_x");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"y".repeat(80)).len(), 63);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_user_gives_a_dns_label(prefix in "[a-z-]{0,10}", user in "\\PC{0,80}", id in "[0-9a-f]{12}(-[0-9]{1,3})?") {
            let name = container_name(&prefix, &user, &id);
            prop_assert!(name.len() <= 63);
            let suffix = format!("-{}", id);
            prop_assert!(name.ends_with(&suffix));
            prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            prop_assert!(name.starts_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(!name.contains("--") || id.contains("--"));
        }

        #[test]
        fn any_value_gives_a_label_value(value in "\\PC{0,100}") {
            let label = label_value(&value);
            prop_assert!(label.len() <= 63);
            prop_assert!(label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
            if let (Some(first), Some(last)) = (label.chars().next(), label.chars().last()) {
                prop_assert!(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
            }
        }
    }
}
