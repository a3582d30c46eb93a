//! Sealed codes: a wormhole code only the accepted worker can read.
//!
//! A worker that speaks `sealed-v1` puts its X25519 public key in its offer (`pk=`); the
//! client seals the accept's code to that key with an anonymous sealed box (libsodium's
//! `crypto_box_seal`, from the `crypto_box` crate). Other members still see the accept line
//! but cannot open the box, so they cannot race the worker to the transfer. No cryptography
//! is written here; this module only fixes what is sealed (the code's text) and the types.
//!
//! Randomness comes from the caller, which keeps this crate free of I/O and lets tests
//! replay a seeded generator.

use crypto_box::aead::rand_core::CryptoRngCore;
use crypto_box::{PublicKey, SecretKey};
use thiserror::Error;

use crate::id::WormholeCode;
use crate::message::{SealedCode, WorkerKey};

/// A sealed code could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    /// The box was not sealed to this worker's key, or was tampered with.
    #[error("sealed code cannot be opened with this worker's key")]
    NotForUs,
    /// The box opened but does not hold a wormhole code.
    #[error("sealed box does not hold a valid wormhole code")]
    BadContent,
    /// Sealing failed (the code is too long for a sealed code).
    #[error("cannot seal the code")]
    Seal,
}

/// A worker's secret key; its public half goes into offers.
#[derive(Clone)]
pub struct WorkerSecret(SecretKey);

impl std::fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerSecret(public: {})", self.public())
    }
}

impl WorkerSecret {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        WorkerSecret(SecretKey::generate(rng))
    }

    /// A key from its 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        WorkerSecret(SecretKey::from(bytes))
    }

    /// The public key to advertise in offers.
    pub fn public(&self) -> WorkerKey {
        WorkerKey(*self.0.public_key().as_bytes())
    }

    /// Opens a code sealed to this worker.
    pub fn open(&self, sealed: &SealedCode) -> Result<WormholeCode, SealError> {
        let plain = self
            .0
            .unseal(sealed.as_bytes())
            .map_err(|_| SealError::NotForUs)?;
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(SealError::BadContent)
    }
}

/// Seals `code` so that only the holder of `to`'s secret can read it.
pub fn seal(
    code: &WormholeCode,
    to: &WorkerKey,
    rng: &mut impl CryptoRngCore,
) -> Result<SealedCode, SealError> {
    let ciphertext = PublicKey::from(to.0)
        .seal(rng, code.as_str().as_bytes())
        .map_err(|_| SealError::Seal)?;
    SealedCode::new(ciphertext).map_err(|_| SealError::Seal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn only_the_addressed_worker_opens_the_code() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let worker = WorkerSecret::generate(&mut rng);
        let eavesdropper = WorkerSecret::generate(&mut rng);
        let code: WormholeCode = "3141-0a3f9c1b2e4d5f60".parse().unwrap();
        let sealed = seal(&code, &worker.public(), &mut rng).unwrap();
        assert_eq!(worker.open(&sealed), Ok(code.clone()));
        assert_eq!(eavesdropper.open(&sealed), Err(SealError::NotForUs));
        let again = seal(&code, &worker.public(), &mut rng).unwrap();
        assert_ne!(again, sealed, "sealing is randomised");
    }

    #[test]
    fn tampered_boxes_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let worker = WorkerSecret::generate(&mut rng);
        let code: WormholeCode = "7-abcdefabcdef".parse().unwrap();
        let mut bytes = seal(&code, &worker.public(), &mut rng)
            .unwrap()
            .as_bytes()
            .to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = SealedCode::new(bytes).unwrap();
        assert_eq!(worker.open(&tampered), Err(SealError::NotForUs));
        // A box holding something other than a code.
        let junk = PublicKey::from(worker.public().0)
            .seal(&mut rng, b"not a code")
            .unwrap();
        assert_eq!(
            worker.open(&SealedCode::new(junk).unwrap()),
            Err(SealError::BadContent)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_boxes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1..=SealedCode::MAX_LEN)) {
            let worker = WorkerSecret::from_bytes([9; 32]);
            let _ = worker.open(&SealedCode::new(bytes).unwrap());
        }
    }
}
