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
    /// A withdraw is being negotiated or submitted: no new transfers.
    Withdrawing,
    /// A cooperative settle is being negotiated or submitted: no new transfers.
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
    /// Blocks a payee needs to claim a lock on chain after learning its secret.
    pub reveal_timeout: BlockCount,
    /// Our end.
    pub our: EndState,
    /// The partner's end.
    pub partner: EndState,
    /// Life-cycle state.
    pub status: ChannelStatus,
    /// Partner locks we gave back (AnnounceDisposed sent; awaiting its response).
    pub disposed_by_us: BTreeSet<SecretHash>,
    /// Our locks the partner gave back, with its signed statement (evidence for punishment
    /// should it unlock one on chain).
    pub disposed_to_us: BTreeMap<SecretHash, DisposedProof>,
    /// A withdraw or cooperative settle under negotiation.
    pub negotiation: Option<Negotiation>,
    /// The balance hashes the chain holds after a close, as (transferred amount, locksroot):
    /// set by the close, updates and unlocks; what `settleChannel` must be given.
    pub onchain: OnChainBalances,
}

/// Each participant's `(transferred_amount, locksroot)` as the contract holds it (both zero until
/// a proof is submitted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnChainBalances {
    /// Ours.
    pub our: (TokenAmount, Locksroot),
    /// The partner's.
    pub partner: (TokenAmount, Locksroot),
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

/// A co-signed channel operation in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Negotiation {
    /// We asked to withdraw; awaiting the partner's signature.
    WithdrawRequested {
        /// The terms.
        terms: WithdrawTerms,
        /// Our signature over them.
        our_signature: Signature,
        /// When we asked.
        at_ms: u64,
    },
    /// We co-signed the partner's withdraw; awaiting it on chain.
    WithdrawCosigned {
        /// The terms.
        terms: WithdrawTerms,
    },
    /// We asked to settle cooperatively; awaiting the partner's signature.
    SettleRequested {
        /// The terms.
        terms: SettleTerms,
        /// Our signature over them.
        our_signature: Signature,
        /// When we asked.
        at_ms: u64,
    },
    /// We co-signed the partner's settle; awaiting it on chain.
    SettleCosigned {
        /// The terms.
        terms: SettleTerms,
    },
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
        reveal_timeout: BlockCount,
    ) -> ChannelState {
        ChannelState {
            identifier,
            token_network,
            token,
            chain_id,
            open_block_number,
            settle_timeout,
            reveal_timeout,
            our: EndState::new(our),
            partner: EndState::new(partner),
            status: ChannelStatus::Opened,
            disposed_by_us: BTreeSet::new(),
            disposed_to_us: BTreeMap::new(),
            negotiation: None,
            onchain: OnChainBalances::default(),
        }
    }

    /// For a closed channel, the last block of its settle and punish windows: a settle may be
    /// submitted once the chain is past it (the contract wants `settle_block_number +
    /// punish_window + 1`, and a transaction is mined after the head we know).
    pub fn settle_possible_after(&self, punish_window: BlockCount) -> Option<BlockNumber> {
        match self.status {
            ChannelStatus::Closed { closed_block, .. } => {
                Some(closed_block.plus(self.settle_timeout).plus(punish_window))
            }
            _ => None,
        }
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
        self.disposed_by_us.clear();
        self.disposed_to_us.clear();
        self.negotiation = None;
    }
}
