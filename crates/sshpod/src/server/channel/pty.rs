//! Terminal requests: SSH terminal modes turned into `stty` arguments.

use russh::Pty;

/// The boolean modes sshpod passes on. Control characters keep the container's defaults.
const FLAGS: &[(Pty, &str)] = &[
    (Pty::IGNPAR, "ignpar"),
    (Pty::PARMRK, "parmrk"),
    (Pty::INPCK, "inpck"),
    (Pty::ISTRIP, "istrip"),
    (Pty::INLCR, "inlcr"),
    (Pty::IGNCR, "igncr"),
    (Pty::ICRNL, "icrnl"),
    (Pty::IXON, "ixon"),
    (Pty::IXANY, "ixany"),
    (Pty::IXOFF, "ixoff"),
    (Pty::IMAXBEL, "imaxbel"),
    (Pty::IUTF8, "iutf8"),
    (Pty::ISIG, "isig"),
    (Pty::ICANON, "icanon"),
    (Pty::ECHO, "echo"),
    (Pty::ECHOE, "echoe"),
    (Pty::ECHOK, "echok"),
    (Pty::ECHONL, "echonl"),
    (Pty::NOFLSH, "noflsh"),
    (Pty::TOSTOP, "tostop"),
    (Pty::IEXTEN, "iexten"),
    (Pty::ECHOCTL, "echoctl"),
    (Pty::ECHOKE, "echoke"),
    (Pty::OPOST, "opost"),
    (Pty::ONLCR, "onlcr"),
    (Pty::OCRNL, "ocrnl"),
    (Pty::ONOCR, "onocr"),
    (Pty::ONLRET, "onlret"),
];

/// `stty` arguments for the client's modes: `echo` or `-echo`, and so on.
pub(crate) fn stty_args(modes: &[(Pty, u32)]) -> Vec<String> {
    modes
        .iter()
        .filter_map(|(mode, value)| {
            FLAGS.iter().find(|(m, _)| m == mode).map(|(_, name)| {
                if *value == 0 {
                    format!("-{name}")
                } else {
                    (*name).to_owned()
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_flags_and_ignores_control_characters() {
        let modes = [(Pty::ECHO, 0), (Pty::ICANON, 1), (Pty::VINTR, 3)];
        assert_eq!(stty_args(&modes), ["-echo", "icanon"]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_modes_give_only_known_stty_words(modes in proptest::collection::vec((any::<u8>(), any::<u32>()), 0..64)) {
            let modes: Vec<(Pty, u32)> = modes
                .into_iter()
                .filter_map(|(op, value)| Pty::from_u8(op).map(|p| (p, value)))
                .collect();
            for word in stty_args(&modes) {
                let name = word.strip_prefix('-').unwrap_or(&word);
                prop_assert!(FLAGS.iter().any(|(_, known)| *known == name), "{}", word);
            }
        }
    }
}
