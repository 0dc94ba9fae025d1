//! Property tests of every parser here that reads what a client or a file hands it: none may
//! panic on any input, and the ones with a meaning keep it.

use std::net::IpAddr;

use proptest::prelude::*;

use crate::address::{source_address_allows, Cidr};
use crate::authorized_keys::parse_options;
use crate::krl::{Krl, MAGIC};
use crate::restrictions::PermitOpen;
use crate::UserName;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn krl_parser_takes_any_bytes(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Krl::parse(&tail);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&tail);
        let _ = Krl::parse(&framed);
    }

    #[test]
    fn key_options_parser_takes_any_text(text in ".{0,200}") {
        let _ = parse_options(&text);
    }

    #[test]
    fn key_options_parser_takes_option_shaped_text(
        text in r#"(restrict|no-pty|pty|command="[^"]{0,20}"|from="[0-9.,*!/a-z]{0,20}"|permitopen="[a-z0-9:*\[\]]{0,12}"|environment="[A-Z]=[a-z]{0,5}"|x)(,(restrict|no-pty|command="[^"]{0,5}"|cert-authority|principals="[a-z,]{0,9}"))*"#
    ) {
        let _ = parse_options(&text);
    }

    #[test]
    fn networks_parse_or_refuse_and_contain_their_own_address(text in "[0-9a-f:./]{0,40}") {
        if let Ok(cidr) = text.parse::<Cidr>() {
            let address = text.split('/').next().unwrap().parse::<IpAddr>().unwrap();
            prop_assert!(cidr.contains(address), "{} does not contain {}", text, address);
        }
    }

    #[test]
    fn certificate_source_address_takes_any_list(list in "[0-9a-f:./, ]{0,60}", ip in any::<IpAddr>()) {
        let _ = source_address_allows(&list, ip);
    }

    #[test]
    fn user_names_are_checked_without_panicking(name in ".{0,80}") {
        if let Ok(user) = UserName::try_from(name.as_str()) {
            prop_assert_eq!(user.as_str(), name.as_str());
            prop_assert!(!name.contains(['/', '\0', '\n']), "{:?} accepted", name);
        }
    }

    #[test]
    fn forwarding_targets_are_matched_as_written(host in ".{0,40}", port in any::<u16>(), entry in ".{0,30}") {
        if let Some(permit) = PermitOpen::parse(&entry) {
            let _ = permit.allows(&host, port);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn htpasswd_lines_are_read_without_panicking(
        contents in proptest::collection::vec(any::<u8>(), 0..400),
        lines in "([a-z#]{0,6}(:[$a-zA-Z0-9./]{0,30})?\n){0,8}",
    ) {
        let alice = UserName::try_from("alice").unwrap();
        for text in [contents.as_slice(), lines.as_bytes()] {
            if let Some((_, hash)) = crate::htpasswd::find_user(std::path::Path::new("f"), text, &alice) {
                prop_assert!(!hash.contains('\n'));
            }
            let _ = crate::htpasswd::stand_in_hash(text);
        }
    }
}
