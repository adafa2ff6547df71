//! Reliable delivery without I/O: every queued message is resent with capped exponential
//! backoff until the recipient's signed Ack echoes its hash. The shell persists this state
//! with each transition, so queued messages survive a restart and are resent.

use super::io::Output;
use crate::primitives::{Address, ChannelId, H256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Retransmission timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before the first resend.
    pub initial_ms: u64,
    /// Cap on the delay between resends.
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 250,
            max_ms: 8_000,
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempts: u32) -> u64 {
        self.initial_ms
            .saturating_mul(1u64 << attempts.min(20))
            .min(self.max_ms)
    }
}

/// A message awaiting its Ack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Recipient.
    pub to: Address,
    /// `keccak256(body)`, echoed by the Ack.
    pub hash: H256,
    /// Wire bytes.
    pub bytes: Vec<u8>,
    /// The channel a balance-proof message belongs to (dropped when it closes).
    pub channel: Option<ChannelId>,
    /// Sends so far.
    pub attempts: u32,
    /// When to resend.
    pub next_at_ms: u64,
}

/// The outbox of unacknowledged messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pending: BTreeMap<u64, Pending>,
    index: BTreeMap<(Address, H256), u64>,
    next_seq: u64,
}

impl Delivery {
    /// Queues a message and returns its first send, or nothing if the same message to the
    /// same recipient is already queued.
    pub fn enqueue(
        &mut self,
        to: Address,
        hash: H256,
        bytes: Vec<u8>,
        channel: Option<ChannelId>,
        now_ms: u64,
        policy: &RetryPolicy,
    ) -> Option<Output> {
        if self.index.contains_key(&(to, hash)) {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert((to, hash), seq);
        let out = Output::Send {
            to,
            bytes: bytes.clone(),
        };
        self.pending.insert(
            seq,
            Pending {
                to,
                hash,
                bytes,
                channel,
                attempts: 1,
                next_at_ms: now_ms + policy.delay(0),
            },
        );
        Some(out)
    }

    /// Removes the message `echo` sent to `from`; false if none was pending (a stale or
    /// forged Ack).
    pub fn acknowledge(&mut self, from: Address, echo: H256) -> bool {
        match self.index.remove(&(from, echo)) {
            Some(seq) => self.pending.remove(&seq).is_some(),
            None => false,
        }
    }

    /// Resends of every message whose timer is due, in queue order.
    pub fn due(&mut self, now_ms: u64, policy: &RetryPolicy) -> Vec<Output> {
        let mut out = Vec::new();
        for p in self.pending.values_mut() {
            if p.next_at_ms <= now_ms {
                out.push(Output::Send {
                    to: p.to,
                    bytes: p.bytes.clone(),
                });
                p.next_at_ms = now_ms + policy.delay(p.attempts);
                p.attempts = p.attempts.saturating_add(1);
            }
        }
        out
    }

    /// When the earliest resend falls due.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.pending.values().map(|p| p.next_at_ms).min()
    }

    /// Every queued message, for a resend after restart.
    pub fn all(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// Forgets the balance-proof messages of a channel that closed or changed epoch.
    pub fn drop_channel(&mut self, channel: ChannelId) {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.channel == Some(channel))
            .map(|(s, _)| *s)
            .collect();
        for seq in gone {
            if let Some(p) = self.pending.remove(&seq) {
                self.index.remove(&(p.to, p.hash));
            }
        }
    }

    /// Drops messages to `to` matching `pred` (e.g. a stale request).
    pub fn drop_where(&mut self, mut pred: impl FnMut(&Pending) -> bool) {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(s, _)| *s)
            .collect();
        for seq in gone {
            if let Some(p) = self.pending.remove(&seq) {
                self.index.remove(&(p.to, p.hash));
            }
        }
    }

    /// Number of unacknowledged messages.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing awaits an Ack.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u8) -> Address {
        Address([i; 20])
    }

    #[test]
    fn resends_with_capped_backoff_until_acknowledged() {
        let policy = RetryPolicy {
            initial_ms: 100,
            max_ms: 400,
        };
        let mut d = Delivery::default();
        assert!(
            d.enqueue(a(1), H256([1; 32]), vec![1], None, 0, &policy)
                .is_some()
        );
        assert!(
            d.enqueue(a(1), H256([1; 32]), vec![1], None, 0, &policy)
                .is_none(),
            "deduplicated"
        );
        assert!(d.due(99, &policy).is_empty());
        let times: Vec<u64> = (0..2000u64)
            .filter(|t| !d.due(*t, &policy).is_empty())
            .collect();
        assert_eq!(&times[..5], &[100, 300, 700, 1100, 1500]);
        assert!(
            !d.acknowledge(a(2), H256([1; 32])),
            "ack from someone else is ignored"
        );
        assert!(d.acknowledge(a(1), H256([1; 32])));
        assert!(d.is_empty() && d.due(10_000, &policy).is_empty());
    }

    #[test]
    fn closing_a_channel_drops_its_messages_only() {
        let policy = RetryPolicy::default();
        let mut d = Delivery::default();
        let c = ChannelId(H256([9; 32]));
        d.enqueue(a(1), H256([1; 32]), vec![1], Some(c), 0, &policy);
        d.enqueue(a(1), H256([2; 32]), vec![2], None, 0, &policy);
        d.drop_channel(c);
        assert_eq!(d.len(), 1);
        assert!(d.acknowledge(a(1), H256([2; 32])));
    }
}
