//! How current the node's view of the chain is. Lock expirations, reveal timeouts and settle
//! windows are all judged against the last block the node processed; a node that trails the
//! chain (catching up after a restart, its RPC endpoint down) could forward a lock already
//! expired on chain, or pay a payee with no time left to claim from the payer. While the view
//! is behind, the node takes on no lock: it defers lock-bearing messages (unacknowledged, so
//! their senders resend them) and refuses to start mediated transfers.

use super::Core;
use crate::messages::Message;
use crate::primitives::BlockNumber;

/// The chain head the follower last reported, and when (not persisted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainView {
    /// The confirmed head the follower saw, and the core's clock then.
    head: Option<(BlockNumber, u64)>,
}

impl ChainView {
    /// The follower saw the confirmed head at `head` (never moves backwards).
    pub fn saw_head(&mut self, head: BlockNumber, now_ms: u64) {
        let head = self.head.map_or(head, |(h, _)| h.max(head));
        self.head = Some((head, now_ms));
    }

    /// When (core clock) the follower last reported, if ever.
    pub fn last_contact_ms(&self) -> Option<u64> {
        self.head.map(|(_, at)| at)
    }

    /// The confirmed head last reported, if any.
    pub fn head(&self) -> Option<BlockNumber> {
        self.head.map(|(h, _)| h)
    }
}

impl Core {
    /// Why the node's chain view cannot be trusted for lock timing now, or `None` if it can.
    pub fn chain_behind(&self) -> Option<String> {
        let config = &self.state.config;
        let Some((head, seen_ms)) = self.chain.head else {
            return Some("the chain follower has not reported the chain head yet".into());
        };
        let silent_ms = self.now_ms.saturating_sub(seen_ms);
        if silent_ms > config.chain_stale_after_ms {
            return Some(format!("no word from the chain for {} s", silent_ms / 1000));
        }
        let block = self.state.block;
        if head.0 > block.0 + config.max_block_lag.0 {
            return Some(format!("processed block {block} of {head}"));
        }
        None
    }

    /// The chain view as the follower reported it.
    pub fn chain_view(&self) -> ChainView {
        self.chain
    }

    /// Whether `message` must wait for a current chain view, and why: a new lock
    /// (MediatedTransfer), a secret that would make us pay a payee as a mediator, or a lock
    /// given back that would make us route it anew.
    pub(super) fn defer_while_chain_behind(&self, message: &Message) -> Option<String> {
        let concerns_locks = match message {
            // In no-internet mode a new lock is given back at once and a lock given back to us
            // ends its transfer: neither depends on the chain view.
            Message::MediatedTransfer(_) | Message::AnnounceDisposed(_) => {
                self.no_internet().is_none()
            }
            Message::RevealSecret(m) => self.state.mediators.contains_key(&m.secret.hash()),
            _ => false,
        };
        if concerns_locks {
            self.chain_behind()
        } else {
            None
        }
    }
}
