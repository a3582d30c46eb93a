//! Keys pinned per worker id: trust on first sight.
//!
//! A worker's offer carries the key its accept is sealed to. On a board that does not prove
//! who wrote a line (pipe.pico.sh), another member can post offers under a worker's id with
//! a key of their own, and would then receive the payloads and return forged results in
//! the worker's name. So the first offer seen under an id pins its key (or its having no
//! key), and later offers under that id with another key, or without one, are refused.
//!
//! A pin lapses [`PIN_TTL`] after the last offer that matched it: a worker restarted with
//! the same host and process id (a container's pid 1) gets a new key and is trusted again
//! once the old pin lapsed; an impostor who waits that long is refused the moment the real
//! worker offers again, and reported. The table is bounded: when full, the half least
//! recently confirmed goes, so each check costs the same however many workers there are.

use std::collections::HashMap;

use p2p_proto::id::PeerId;
use p2p_proto::message::WorkerKey;
use p2p_proto::time::Millis;

/// How long a pin outlives the last offer that matched it.
pub const PIN_TTL: Millis = 10 * 60 * 1000;

/// Pins kept at most.
pub const MAX_PINS: usize = 16_384;

/// What the table says of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// Its key is the one pinned for its sender (or it pins one now).
    Trusted,
    /// Its key differs from the one pinned; `first` when this pin has not been reported.
    Refused {
        /// Whether this is the first refusal under this pin (report it once).
        first: bool,
    },
}

#[derive(Debug, Clone)]
struct Pin {
    key: Option<WorkerKey>,
    confirmed: Millis,
    reported: bool,
}

/// The keys pinned per worker id.
#[derive(Debug, Default)]
pub struct KeyPins {
    pins: HashMap<PeerId, Pin>,
}

impl KeyPins {
    /// Checks an offer from `worker` with `key` at `now`, pinning it if the id is new.
    pub fn check(&mut self, now: Millis, worker: &PeerId, key: Option<&WorkerKey>) -> PinCheck {
        if let Some(pin) = self.pins.get_mut(worker)
            && now < pin.confirmed.saturating_add(PIN_TTL)
        {
            if pin.key.as_ref() == key {
                pin.confirmed = now;
                return PinCheck::Trusted;
            }
            let first = !pin.reported;
            pin.reported = true;
            return PinCheck::Refused { first };
        }
        if self.pins.len() >= MAX_PINS && !self.pins.contains_key(worker) {
            self.forget_older_half();
        }
        self.pins.insert(
            worker.clone(),
            Pin {
                key: key.copied(),
                confirmed: now,
                reported: false,
            },
        );
        PinCheck::Trusted
    }

    /// Pins held now.
    pub fn len(&self) -> usize {
        self.pins.len()
    }

    /// Whether no key is pinned.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    fn forget_older_half(&mut self) {
        let mut times: Vec<Millis> = self.pins.values().map(|p| p.confirmed).collect();
        let middle = times.len() / 2;
        let (_, &mut cut, _) = times.select_nth_unstable(middle);
        self.pins.retain(|_, pin| pin.confirmed > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u32) -> PeerId {
        format!("bob@h:{n}").parse().unwrap()
    }

    const BOB: WorkerKey = WorkerKey([1; 32]);
    const MALLORY: WorkerKey = WorkerKey([2; 32]);

    #[test]
    fn the_first_key_under_an_id_holds_and_others_are_refused_once_reported() {
        let mut pins = KeyPins::default();
        assert_eq!(pins.check(0, &id(1), Some(&BOB)), PinCheck::Trusted);
        assert_eq!(pins.check(1, &id(1), Some(&BOB)), PinCheck::Trusted);
        assert_eq!(
            pins.check(2, &id(1), Some(&MALLORY)),
            PinCheck::Refused { first: true }
        );
        // Dropping the key is a downgrade, refused too; reported once per pin.
        assert_eq!(
            pins.check(3, &id(1), None),
            PinCheck::Refused { first: false }
        );
        assert_eq!(pins.check(4, &id(1), Some(&BOB)), PinCheck::Trusted);
        // A keyless worker stays keyless.
        assert_eq!(pins.check(5, &id(2), None), PinCheck::Trusted);
        assert_eq!(
            pins.check(6, &id(2), Some(&MALLORY)),
            PinCheck::Refused { first: true }
        );
    }

    #[test]
    fn a_pin_lapses_after_its_last_matching_offer() {
        let mut pins = KeyPins::default();
        pins.check(0, &id(1), Some(&BOB));
        pins.check(1_000, &id(1), Some(&BOB));
        // Refusals do not keep the pin alive: only its own key's offers do.
        assert!(matches!(
            pins.check(1_000 + PIN_TTL - 1, &id(1), Some(&MALLORY)),
            PinCheck::Refused { .. }
        ));
        assert_eq!(
            pins.check(1_000 + PIN_TTL, &id(1), Some(&MALLORY)),
            PinCheck::Trusted
        );
        assert!(matches!(
            pins.check(1_001 + PIN_TTL, &id(1), Some(&BOB)),
            PinCheck::Refused { first: true }
        ));
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_confirmed_half() {
        let mut pins = KeyPins::default();
        for n in 0..MAX_PINS as u32 {
            pins.check(Millis::from(n), &id(n), Some(&BOB));
        }
        // The oldest is confirmed again just before the table fills over.
        pins.check(MAX_PINS as Millis, &id(0), Some(&BOB));
        pins.check(MAX_PINS as Millis + 1, &id(u32::MAX), Some(&BOB));
        assert!(pins.len() <= MAX_PINS / 2 + 1, "{}", pins.len());
        assert!(matches!(
            pins.check(MAX_PINS as Millis + 2, &id(0), Some(&MALLORY)),
            PinCheck::Refused { .. }
        ));
    }

    proptest! {
        /// Whatever the order of offers, an id is never trusted with two keys within
        /// PIN_TTL of a matching offer, and the table never exceeds its bound.
        #[test]
        fn one_key_per_id_while_the_pin_lives(
            offers in proptest::collection::vec((0u32..4, 0u8..3, 0u64..PIN_TTL), 1..200),
        ) {
            let mut pins = KeyPins::default();
            let mut now = 0;
            let mut trusted: HashMap<u32, (Option<u8>, Millis)> = HashMap::new();
            for (worker, key, dt) in offers {
                now += dt;
                let key = (key > 0).then_some(key);
                let wk = key.map(|k| WorkerKey([k; 32]));
                let verdict = pins.check(now, &id(worker), wk.as_ref());
                if let Some((pinned, at)) = trusted.get(&worker).copied()
                    && now < at + PIN_TTL
                {
                    prop_assert_eq!(verdict == PinCheck::Trusted, pinned == key);
                }
                if verdict == PinCheck::Trusted {
                    trusted.insert(worker, (key, now));
                }
                prop_assert!(pins.len() <= MAX_PINS);
            }
        }
    }
}
