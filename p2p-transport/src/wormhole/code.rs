//! Wormhole codes: `NAMEPLATE-PASSWORD`, chosen by the sender as future.p2p does.
//!
//! future.p2p sends the future under `CODE-f` and the result under `CODE-r`, where `CODE`
//! is four digits, a dash and twelve hex digits. The `magic-wormhole` crate checks the
//! password's entropy (zxcvbn) when a code is parsed, so codes we generate are always
//! re-parsed through that check; only codes that arrive from a future.p2p peer go through
//! [`WormholeCode::from_peer`], the one place that may bypass it.

use std::fmt;

use magic_wormhole::{Code, Nameplate, Password};
use rand::Rng;

/// Why a string is not a usable wormhole code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The code has no `-` between nameplate and password.
    #[error("wormhole code {0:?} has no '-' between nameplate and password")]
    MissingSeparator(String),
    /// The nameplate (before the first `-`) is not a number >= 1.
    #[error("wormhole code {0:?}: the nameplate must be a number >= 1")]
    BadNameplate(String),
    /// The password is empty or contains characters a peer could not type or transmit.
    #[error("wormhole code {0:?}: the password must be non-empty printable ASCII without spaces")]
    BadPassword(String),
    /// The `magic-wormhole` crate rejected the code (for example too little entropy).
    #[error("wormhole code {code:?} rejected: {reason}")]
    Rejected {
        /// The code as given.
        code: String,
        /// The crate's explanation.
        reason: String,
    },
}

/// A validated wormhole code, ready for [`super::transfer`] and [`super::session`].
#[derive(Clone, PartialEq, Eq)]
pub struct WormholeCode {
    // The crate's `Code` only exposes its text through `Display`; keep our own copy.
    text: String,
    code: Code,
}

impl WormholeCode {
    /// A fresh random code in future.p2p's shape: `NNNN-xxxxxxxxxxxx` (4 digits, 12 hex).
    ///
    /// 48 random bits always pass the crate's entropy check; the loop only guards against
    /// the astronomically unlikely draw (say all zeros) that zxcvbn scores as weak.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        loop {
            let nameplate: u16 = rng.random_range(1000..10000);
            let secret: u64 = rng.random_range(0..(1u64 << 48));
            let text = format!("{nameplate}-{secret:012x}");
            // Both suffixed forms must also parse, since transfers use them.
            if let (Ok(code), Ok(_), Ok(_)) = (
                Self::parse(&text),
                Self::parse(&format!("{text}-f")),
                Self::parse(&format!("{text}-r")),
            ) {
                return code;
            }
        }
    }

    /// Parse a code with the crate's full checks (numeric nameplate, password entropy).
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        check_shape(text)?;
        text.parse::<Code>()
            .map(|code| WormholeCode {
                text: text.to_owned(),
                code,
            })
            .map_err(|err| CodeError::Rejected {
                code: text.to_owned(),
                reason: err.to_string(),
            })
    }

    /// Accept a code that a future.p2p peer chose, even if the crate finds it too weak.
    ///
    /// Interoperability beats the entropy check here: the peer already published the code
    /// and will use exactly this string as the PAKE password, so refusing it would only
    /// break the transfer without making it safer. The shape (numeric nameplate, printable
    /// password) is still enforced, and strong codes take the checked path.
    pub fn from_peer(text: &str) -> Result<Self, CodeError> {
        match Self::parse(text) {
            Ok(code) => Ok(code),
            Err(CodeError::Rejected { .. }) => Ok(Self::unchecked(text)),
            Err(other) => Err(other),
        }
    }

    /// The crate's unchecked constructor, isolated here on purpose.
    ///
    /// `Nameplate::new_unchecked` and `Password::new_unchecked` are `unsafe` only in the
    /// sense of "skips validation" (no memory safety is involved); [`check_shape`] has
    /// already verified the nameplate is numeric and the password non-empty, which is what
    /// the rest of the crate relies on.
    fn unchecked(text: &str) -> Self {
        let (nameplate, password) = text.split_once('-').unwrap_or((text, ""));
        // SAFETY: see above; the shape was checked by `check_shape` in `from_peer`.
        #[allow(unsafe_code)]
        let code = unsafe {
            Code::from_components(
                Nameplate::new_unchecked(nameplate),
                Password::new_unchecked(password),
            )
        };
        WormholeCode {
            text: text.to_owned(),
            code,
        }
    }

    /// The code future.p2p uses for the future itself: `CODE-f`.
    pub fn future(&self) -> Self {
        self.with_suffix("f")
    }

    /// The code future.p2p uses for the result: `CODE-r`.
    pub fn result(&self) -> Self {
        self.with_suffix("r")
    }

    fn with_suffix(&self, suffix: &str) -> Self {
        // Appending to a valid password keeps the shape valid; entropy can only grow.
        let text = format!("{}-{suffix}", self.as_str());
        Self::from_peer(&text).unwrap_or_else(|_| Self::unchecked(&text))
    }

    /// The nameplate, the part the mailbox server sees.
    pub fn nameplate(&self) -> String {
        self.code.nameplate().to_string()
    }

    /// The full code string (also the PAKE password).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The crate's code type, for calls into `magic-wormhole`.
    pub(crate) fn to_crate(&self) -> Code {
        self.code.clone()
    }
}

impl fmt::Display for WormholeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for WormholeCode {
    // The code is a secret until the transfer is done; keep it out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WormholeCode({}-…)", self.nameplate())
    }
}

impl std::str::FromStr for WormholeCode {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_shape(text: &str) -> Result<(), CodeError> {
    let (nameplate, password) = text
        .split_once('-')
        .ok_or_else(|| CodeError::MissingSeparator(text.to_owned()))?;
    let numeric = !nameplate.is_empty() && nameplate.bytes().all(|b| b.is_ascii_digit());
    if !numeric || nameplate.bytes().all(|b| b == b'0') {
        return Err(CodeError::BadNameplate(text.to_owned()));
    }
    if password.is_empty() || !password.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CodeError::BadPassword(text.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_codes_parse_with_suffixes() {
        for _ in 0..50 {
            let code = WormholeCode::generate();
            let text = code.as_str().to_owned();
            assert_eq!(text.len(), 4 + 1 + 12);
            assert!(WormholeCode::parse(&text).is_ok());
            assert_eq!(code.future().as_str(), format!("{text}-f"));
            assert_eq!(code.result().as_str(), format!("{text}-r"));
            assert_eq!(code.nameplate(), &text[..4]);
        }
    }

    #[test]
    fn weak_peer_code_is_accepted_only_through_from_peer() {
        assert!(matches!(
            WormholeCode::parse("1234-abcdef-f"),
            Err(CodeError::Rejected { .. })
        ));
        let code = WormholeCode::from_peer("1234-abcdef-f").expect("peer code");
        assert_eq!(code.as_str(), "1234-abcdef-f");
        assert_eq!(code.nameplate(), "1234");
    }

    #[test]
    fn malformed_codes_are_typed_errors() {
        assert!(matches!(
            WormholeCode::from_peer("nodash"),
            Err(CodeError::MissingSeparator(_))
        ));
        assert!(matches!(
            WormholeCode::from_peer("abc-def"),
            Err(CodeError::BadNameplate(_))
        ));
        assert!(matches!(
            WormholeCode::from_peer("0-purple-sausages"),
            Err(CodeError::BadNameplate(_))
        ));
        assert!(matches!(
            WormholeCode::from_peer("12-"),
            Err(CodeError::BadPassword(_))
        ));
        assert!(matches!(
            WormholeCode::from_peer("12-with space"),
            Err(CodeError::BadPassword(_))
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let code = WormholeCode::parse("4-purple-sausages").expect("valid");
        assert_eq!(format!("{code:?}"), "WormholeCode(4-…)");
    }

    proptest! {
        #[test]
        fn from_peer_never_panics(text in ".{0,40}") {
            let _ = WormholeCode::from_peer(&text);
        }
    }
}
