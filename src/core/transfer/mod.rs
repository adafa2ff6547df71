//! Transfer state machines: direct transfers, and the initiator, mediator and target roles of
//! a mediated transfer, plus the lock housekeeping every role shares (unlock, expiry, on-chain
//! secret registration).

mod direct;
mod initiator;
mod locks;
mod mediator;
mod preview;
mod target;

pub use initiator::ChosenRoute;
pub use preview::TransferPreview;

use crate::primitives::{Address, ChannelId, Secret, TokenAmount};
use crate::proofs::Lock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One lock we sent toward a payee on one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Our channel.
    pub channel: ChannelId,
    /// The payee on it.
    pub partner: Address,
    /// The lock.
    pub lock: Lock,
}

/// A payment we initiated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiatorState {
    /// The token network.
    pub token_network: Address,
    /// The token.
    pub token: Address,
    /// The payee.
    pub target: Address,
    /// What the payee receives.
    pub amount: TokenAmount,
    /// Most the user pays in fees.
    pub max_fee: Option<TokenAmount>,
    /// The secret.
    pub secret: Secret,
    /// The user holds the secret until `AllowRevealSecret`.
    pub hold_secret: bool,
    /// The target asked for the secret (while it was held).
    pub secret_requested: bool,
    /// We revealed the secret to the target.
    pub revealed: bool,
    /// The user canceled.
    pub canceled: bool,
    /// The lock in flight.
    pub current: Option<Attempt>,
    /// Channels already tried (a disposed lock moves on to the next).
    pub tried: BTreeSet<ChannelId>,
}

/// A payment we forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediatorState {
    /// The token network.
    pub token_network: Address,
    /// The token.
    pub token: Address,
    /// The payer's channel.
    pub payer_channel: ChannelId,
    /// The payer.
    pub payer: Address,
    /// The payer's lock to us.
    pub payer_lock: Lock,
    /// Fee left for mediators in the payer's message.
    pub incoming_fee: TokenAmount,
    /// The initiator.
    pub initiator: Address,
    /// The target.
    pub target: Address,
    /// Our lock onward.
    pub payee: Option<Attempt>,
    /// Channels already tried onward.
    pub tried: BTreeSet<ChannelId>,
    /// The secret, once learned.
    pub secret: Option<Secret>,
    /// The payer's lock is resolved (unlocked, expired or disposed back).
    pub payer_done: bool,
    /// Our onward lock is resolved.
    pub payee_done: bool,
    /// The payer unlocked to us (we were paid).
    pub payer_paid: bool,
    /// We unlocked to the payee (we paid).
    pub payee_paid: bool,
}

/// A payment to us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// The token network.
    pub token_network: Address,
    /// The token.
    pub token: Address,
    /// The initiator.
    pub initiator: Address,
    /// The payer's channel.
    pub payer_channel: ChannelId,
    /// The payer.
    pub payer: Address,
    /// The payer's lock.
    pub lock: Lock,
    /// What we receive (`lock.amount` minus unspent fee).
    pub amount: TokenAmount,
    /// The secret, once learned.
    pub secret: Option<Secret>,
}
