//! One channel as this node sees it: both ends' deposits, balance proofs and pending locks,
//! and every acceptance rule of SPEC §3.

mod end;
mod error;
mod rules;

pub use end::{EndState, SignedProof};
pub use error::ChannelError;
pub use rules::Incoming;

use crate::messages::{BalanceProof, SettleTerms, WithdrawTerms};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, SecretHash,
    Signature, TokenAmount,
};
use crate::proofs::{ChannelBinding, Lock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a channel is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelStatus {
    /// Open for transfers.
    Opened,
    /// Withdraw terms carrying our signature are outstanding: no transfers, no deposits.
    Withdrawing,
    /// Cooperative-settle terms carrying our signature are outstanding: no transfers, no
    /// deposits.
    CooperativeSettling,
    /// We submitted a close.
    Closing,
    /// Closed on chain at `closed_block`; settle after the window.
    Closed {
        /// Block of closing.
        closed_block: BlockNumber,
        /// Whether we closed it.
        closed_by_us: bool,
    },
    /// We submitted a settle.
    Settling,
}

impl ChannelStatus {
    /// The REST name of this state.
    pub fn api_name(&self) -> &'static str {
        match self {
            ChannelStatus::Opened => "opened",
            ChannelStatus::Withdrawing => "withdrawing",
            ChannelStatus::CooperativeSettling => "cooperative_settling",
            ChannelStatus::Closing => "closing",
            ChannelStatus::Closed { .. } => "closed",
            ChannelStatus::Settling => "settling",
        }
    }

    /// Whether the channel is closed or beyond on chain.
    pub fn is_closed(&self) -> bool {
        matches!(self, ChannelStatus::Closed { .. } | ChannelStatus::Settling)
    }
}

/// A channel we participate in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Its identifier.
    pub identifier: ChannelId,
    /// The token network contract.
    pub token_network: Address,
    /// The token.
    pub token: Address,
    /// The chain.
    pub chain_id: ChainId,
    /// Current epoch (reset by a withdraw).
    pub open_block_number: BlockNumber,
    /// Settle window.
    pub settle_timeout: BlockCount,
    /// Blocks after the settle window reserved for punishment (the token network's
    /// `punish_block_number`, read from the chain).
    pub punish_window: BlockCount,
    /// Blocks a payee needs to claim a lock on chain after learning its secret.
    pub reveal_timeout: BlockCount,
    /// Our end.
    pub our: EndState,
    /// The partner's end.
    pub partner: EndState,
    /// Life-cycle state.
    pub status: ChannelStatus,
    /// Partner locks we gave back (AnnounceDisposed sent), with the hash of that message.
    /// Never claimed by any path while the lock can still be on chain: the partner holds our
    /// signed statement and would take the whole channel with `punishObsoleteUnlock`. Kept
    /// until the partner's proof drops the lock, and for the rest of the epoch once closed.
    pub given_back: BTreeMap<SecretHash, H256>,
    /// Our locks the partner gave back, with its signed statement (evidence for punishment
    /// should it unlock one on chain).
    pub disposed_to_us: BTreeMap<SecretHash, DisposedProof>,
    /// Co-signed withdraw or cooperative-settle terms of this epoch carrying our signature.
    /// While present the channel takes no transfer and no deposit in either direction: the
    /// partner could have them executed at any block up to their expiration.
    pub negotiation: Option<Negotiation>,
    /// What the chain holds after a close: balance hashes, the partner's lock tree and the
    /// locks unlocked (or being unlocked) on chain.
    pub onchain: OnChainBalances,
}

/// Each participant's `(transferred_amount, locksroot)` as the contract holds it (both zero until
/// a proof is submitted), and what on-chain unlocks need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnChainBalances {
    /// Ours.
    pub our: (TokenAmount, Locksroot),
    /// The partner's (its transferred amount grows with every on-chain unlock).
    pub partner: (TokenAmount, Locksroot),
    /// The leaves of the partner's lock tree whose root the chain holds, once known. Every
    /// unlock proves a lock against this original root, so it never shrinks.
    pub partner_leaves: Option<Vec<Lock>>,
    /// Lockhashes unlocked on chain (either direction).
    pub unlocked: BTreeSet<H256>,
    /// Lockhashes of the partner's locks whose unlock we submitted and have not seen yet.
    pub unlocking: BTreeSet<H256>,
    /// Whether the partner was punished in our favour (settling pays us the whole channel).
    pub punished: bool,
    /// Our transferred amount in the balance proof of ours the chain holds, before any
    /// unlock added to it: a payment of ours counted iff its cumulative total is within it.
    pub our_proof_transferred: TokenAmount,
}

/// The partner's signed statement that it gave a lock back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisposedProof {
    /// The lock.
    pub lock: Lock,
    /// `keccak256` of the AnnounceDisposed body.
    pub additional_hash: H256,
    /// The partner's signature over the disposed-lock data.
    pub signature: Signature,
}

/// Terms both participants sign to change a channel on chain at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CosignedTerms {
    /// A withdraw (the channel stays open in a new epoch).
    Withdraw(WithdrawTerms),
    /// A cooperative settle (the channel is paid out and gone).
    Settle(SettleTerms),
}

impl CosignedTerms {
    /// Last block the contract executes them.
    pub fn expiration(&self) -> BlockNumber {
        match self {
            CosignedTerms::Withdraw(t) => t.expiration,
            CosignedTerms::Settle(t) => t.expiration,
        }
    }

    /// The channel status while they are outstanding.
    pub fn status(&self) -> ChannelStatus {
        match self {
            CosignedTerms::Withdraw(_) => ChannelStatus::Withdrawing,
            CosignedTerms::Settle(_) => ChannelStatus::CooperativeSettling,
        }
    }

    /// What they are, for logs and notifications.
    pub fn kind(&self) -> &'static str {
        match self {
            CosignedTerms::Withdraw(_) => "withdraw",
            CosignedTerms::Settle(_) => "cooperative settle",
        }
    }
}

/// Co-signed terms in progress: ours (we asked) or the partner's (we co-signed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiation {
    /// The terms.
    pub terms: CosignedTerms,
    /// Whether we proposed them (then we submit them once co-signed).
    pub ours: bool,
    /// Our signature over them.
    pub our_signature: Signature,
    /// The partner's signature, once we have it (at once when the partner proposed).
    pub partner_signature: Option<Signature>,
    /// `keccak256` of our request or response message (dropped from the outbox when the
    /// terms expire).
    pub message: H256,
}

impl ChannelState {
    /// A freshly opened channel with no deposits.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identifier: ChannelId,
        token_network: Address,
        token: Address,
        chain_id: ChainId,
        our: Address,
        partner: Address,
        open_block_number: BlockNumber,
        settle_timeout: BlockCount,
        punish_window: BlockCount,
        reveal_timeout: BlockCount,
    ) -> ChannelState {
        ChannelState {
            identifier,
            token_network,
            token,
            chain_id,
            open_block_number,
            settle_timeout,
            punish_window,
            reveal_timeout,
            our: EndState::new(our),
            partner: EndState::new(partner),
            status: ChannelStatus::Opened,
            given_back: BTreeMap::new(),
            disposed_to_us: BTreeMap::new(),
            negotiation: None,
            onchain: OnChainBalances::default(),
        }
    }

    /// For a closed channel, the last block of its settle and punish windows: a settle may be
    /// submitted once the chain is past it (the contract wants `settle_block_number +
    /// punish_window + 1`, and a transaction is mined after the head we know).
    pub fn settle_possible_after(&self) -> Option<BlockNumber> {
        self.settle_block().map(|b| b.plus(self.punish_window))
    }

    /// For a closed channel, the contract's `settle_block_number`: the last block for updates
    /// and unlocks.
    pub fn settle_block(&self) -> Option<BlockNumber> {
        match self.status {
            ChannelStatus::Closed { closed_block, .. } => {
                Some(closed_block.plus(self.settle_timeout))
            }
            _ => None,
        }
    }

    /// The partner's lock `h` if we may claim it (off chain from the partner, or on chain):
    /// pending in its latest proof and not given back. Every claim goes through here.
    pub fn claimable_lock(&self, h: &SecretHash) -> Option<&Lock> {
        if self.given_back.contains_key(h) {
            return None;
        }
        self.partner.lock(h)
    }

    /// The partner's locks we may claim, in tree order.
    pub fn claimable_locks(&self) -> impl Iterator<Item = &Lock> {
        self.partner
            .locks
            .iter()
            .filter(|l| !self.given_back.contains_key(&l.secrethash))
    }

    /// The channel, epoch and chain signatures bind to.
    pub fn binding(&self) -> ChannelBinding {
        ChannelBinding {
            channel_identifier: self.identifier,
            open_block_number: self.open_block_number,
            chain_id: self.chain_id,
        }
    }

    /// Our balance: deposit − sent + received (pending locks not deducted).
    pub fn our_balance(&self) -> TokenAmount {
        self.our.balance(&self.partner)
    }

    /// The partner's balance.
    pub fn partner_balance(&self) -> TokenAmount {
        self.partner.balance(&self.our)
    }

    /// What we can still send: balance minus our pending locks.
    pub fn our_distributable(&self) -> TokenAmount {
        self.our_balance().saturating_sub(self.our.locked_amount())
    }

    /// What the partner can still send.
    pub fn partner_distributable(&self) -> TokenAmount {
        self.partner_balance()
            .saturating_sub(self.partner.locked_amount())
    }

    /// Total deposits: what the contract holds for this channel.
    pub fn total_deposit(&self) -> TokenAmount {
        self.our.deposit.saturating_add(self.partner.deposit)
    }

    /// Whether new transfers may be sent or accepted.
    pub fn can_transfer(&self) -> bool {
        self.status == ChannelStatus::Opened
    }

    /// The next balance proof from us with the given totals and locks.
    pub(crate) fn our_next_proof(
        &self,
        transferred_amount: TokenAmount,
        locks: &[Lock],
    ) -> BalanceProof {
        BalanceProof {
            channel_identifier: self.identifier,
            open_block_number: self.open_block_number,
            nonce: Nonce(self.our.nonce.0 + 1),
            transferred_amount,
            locksroot: EndState::root_of(locks),
        }
    }

    /// Our pending lock for `secrethash`, if any.
    pub fn our_lock(&self, secrethash: &SecretHash) -> Option<&Lock> {
        self.our.lock(secrethash)
    }

    /// The partner's pending lock for `secrethash`, if any.
    pub fn partner_lock(&self, secrethash: &SecretHash) -> Option<&Lock> {
        self.partner.lock(secrethash)
    }

    /// Resets both ends to a new epoch after an on-chain withdraw.
    pub(crate) fn start_new_epoch(
        &mut self,
        open_block_number: BlockNumber,
        our_deposit: TokenAmount,
        partner_deposit: TokenAmount,
    ) {
        self.open_block_number = open_block_number;
        self.our = EndState {
            deposit: our_deposit,
            ..EndState::new(self.our.address)
        };
        self.partner = EndState {
            deposit: partner_deposit,
            ..EndState::new(self.partner.address)
        };
        self.status = ChannelStatus::Opened;
        self.given_back.clear();
        self.disposed_to_us.clear();
        self.negotiation = None;
        self.onchain = OnChainBalances::default();
    }
}
