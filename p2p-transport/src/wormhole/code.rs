//! Codes handed to the `magic-wormhole` crate.
//!
//! The protocol's [`WormholeCode`] (p2p-proto) is the one code type: it checks the shape
//! (numeric nameplate, password of letters, digits and `-`). The crate additionally judges
//! a password's entropy (zxcvbn) when a code is parsed. Codes this project makes pass that
//! check; a future.p2p peer's code may not (`1234-abcdef-f`), yet the peer has already
//! published it and uses exactly this string as the PAKE password, so refusing it would
//! only break the transfer without making it safer. [`to_crate`] is the one place that
//! bypasses the check, for shapes p2p-proto has already validated.

use magic_wormhole::{Code, Nameplate, Password};
use p2p_proto::id::WormholeCode;

/// The crate's code for `code`: parsed with the crate's checks, or taken as the peer chose it.
pub(crate) fn to_crate(code: &WormholeCode) -> Code {
    if let Ok(parsed) = code.as_str().parse::<Code>() {
        return parsed;
    }
    // SAFETY: `new_unchecked` is `unsafe` only in the sense of "skips validation" (no memory
    // safety is involved); p2p-proto checked the nameplate is numeric and the password
    // non-empty, which is what the rest of the crate relies on.
    #[allow(unsafe_code)]
    unsafe {
        Code::from_components(
            Nameplate::new_unchecked(code.nameplate()),
            Password::new_unchecked(code.password()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn our_codes_pass_the_crate_checks_and_peer_codes_are_taken_as_chosen() {
        let ours = WormholeCode::from_random(77, 0x0a3f_9c1b_2e4d_5f60).future_code();
        assert!(ours.as_str().parse::<Code>().is_ok());
        assert_eq!(to_crate(&ours).to_string(), ours.as_str());

        let weak: WormholeCode = "1234-abcdef-f".parse().expect("valid shape");
        assert!(
            weak.as_str().parse::<Code>().is_err(),
            "the crate finds it weak"
        );
        let code = to_crate(&weak);
        assert_eq!(code.to_string(), "1234-abcdef-f");
        assert_eq!(code.nameplate().to_string(), "1234");
    }

    proptest! {
        #[test]
        fn every_valid_code_converts(nameplate in 1u32..1_000_000, password in "[a-z0-9][a-z0-9-]{0,30}") {
            let code = WormholeCode::new(nameplate, &password).expect("valid shape");
            prop_assert_eq!(to_crate(&code).to_string(), code.as_str());
        }
    }
}
