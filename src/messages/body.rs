//! Message bodies: what each message carries.

use crate::primitives::{
    Address, BlockNumber, ChannelId, H256, Locksroot, Nonce, Secret, SecretHash, TokenAmount,
};
use crate::proofs::Lock;
use serde::{Deserialize, Serialize};

/// The balance-proof fields a message carries (the signature and `additional_hash` are
/// derived: the signature travels after the body and `additional_hash = keccak256(body)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceProof {
    /// The channel.
    pub channel_identifier: ChannelId,
    /// The channel's epoch.
    pub open_block_number: BlockNumber,
    /// Previous nonce + 1.
    pub nonce: Nonce,
    /// Cumulative amount paid by the sender.
    pub transferred_amount: TokenAmount,
    /// Root of the sender's pending locks.
    pub locksroot: Locksroot,
}

/// Pays a direct partner: `transferred_amount` grows, locksroot unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectTransfer {
    /// The new balance proof.
    pub balance_proof: BalanceProof,
    /// Random per payment, so every transfer (and its id, the body hash) is unique.
    pub payment_identifier: u64,
}

/// Adds a hash-time lock toward `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediatedTransfer {
    /// The new balance proof (locksroot includes `lock`).
    pub balance_proof: BalanceProof,
    /// The lock added.
    pub lock: Lock,
    /// Who pays.
    pub initiator: Address,
    /// Who is paid.
    pub target: Address,
    /// Fee left for the mediators after the receiver; the target gets `lock.amount - fee`.
    pub fee: TokenAmount,
}

/// The target asks the initiator for the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRequest {
    /// The payment.
    pub secrethash: SecretHash,
    /// The amount the target will receive.
    pub amount: TokenAmount,
}

/// The secret, travelling from the initiator to the target and then back hop by hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealSecret {
    /// The preimage.
    pub secret: Secret,
}

/// Removes a lock whose secret is known and adds its amount to `transferred_amount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlock {
    /// The new balance proof.
    pub balance_proof: BalanceProof,
    /// The lock's secret.
    pub secret: Secret,
}

/// Drops a lock that expired unclaimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveExpiredHashlock {
    /// The new balance proof (locksroot without the lock).
    pub balance_proof: BalanceProof,
    /// Which lock.
    pub secrethash: SecretHash,
}

/// A payee gives a lock back because it cannot route it onward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceDisposed {
    /// The channel.
    pub channel_identifier: ChannelId,
    /// The channel's epoch.
    pub open_block_number: BlockNumber,
    /// The lock given back.
    pub lock: Lock,
}

/// The payer removes a disposed lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceDisposedResponse {
    /// The new balance proof (locksroot without the lock).
    pub balance_proof: BalanceProof,
    /// Which lock.
    pub secrethash: SecretHash,
}

/// Withdraw terms; both sides sign the same data (SPEC §2 withdraw proof).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawTerms {
    /// The channel.
    pub channel_identifier: ChannelId,
    /// The channel's epoch.
    pub open_block_number: BlockNumber,
    /// Who withdraws.
    pub participant: Address,
    /// Its balance before the withdraw.
    pub participant_balance: TokenAmount,
    /// How much it takes out.
    pub participant_withdraw: TokenAmount,
    /// Last block at which the contract executes these terms: after it both signatures are
    /// dead, so neither side stays bound to terms the other never co-signed or submitted.
    pub expiration: BlockNumber,
}

/// Cooperative-settle terms; both sides sign the same data (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleTerms {
    /// The channel.
    pub channel_identifier: ChannelId,
    /// The channel's epoch.
    pub open_block_number: BlockNumber,
    /// First participant.
    pub participant1: Address,
    /// Its payout.
    pub participant1_balance: TokenAmount,
    /// Second participant.
    pub participant2: Address,
    /// Its payout.
    pub participant2_balance: TokenAmount,
    /// Last block at which the contract executes these terms (see [`WithdrawTerms`]).
    pub expiration: BlockNumber,
}

/// Liveness probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Distinguishes pings.
    pub nonce: u64,
}

/// Confirms receipt of the message whose body hashes to `echo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// `keccak256` of the acknowledged message's body.
    pub echo: H256,
}

/// Every protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`DirectTransfer`].
    DirectTransfer(DirectTransfer),
    /// See [`MediatedTransfer`].
    MediatedTransfer(MediatedTransfer),
    /// See [`SecretRequest`].
    SecretRequest(SecretRequest),
    /// See [`RevealSecret`].
    RevealSecret(RevealSecret),
    /// The `Secret` message of SPEC §3; see [`Unlock`].
    Unlock(Unlock),
    /// See [`RemoveExpiredHashlock`].
    RemoveExpiredHashlock(RemoveExpiredHashlock),
    /// See [`AnnounceDisposed`].
    AnnounceDisposed(AnnounceDisposed),
    /// See [`AnnounceDisposedResponse`].
    AnnounceDisposedResponse(AnnounceDisposedResponse),
    /// A participant asks to withdraw.
    WithdrawRequest(WithdrawTerms),
    /// The partner co-signs a withdraw.
    WithdrawResponse(WithdrawTerms),
    /// A participant proposes a cooperative settle.
    SettleRequest(SettleTerms),
    /// The partner co-signs a cooperative settle.
    SettleResponse(SettleTerms),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Ack`].
    Ack(Ack),
}

impl Message {
    /// The balance proof this message carries, if any.
    pub fn balance_proof(&self) -> Option<&BalanceProof> {
        match self {
            Message::DirectTransfer(m) => Some(&m.balance_proof),
            Message::MediatedTransfer(m) => Some(&m.balance_proof),
            Message::Unlock(m) => Some(&m.balance_proof),
            Message::RemoveExpiredHashlock(m) => Some(&m.balance_proof),
            Message::AnnounceDisposedResponse(m) => Some(&m.balance_proof),
            _ => None,
        }
    }

    /// The message's name as in SPEC §3, for logs and fault points.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::DirectTransfer(_) => "DirectTransfer",
            Message::MediatedTransfer(_) => "MediatedTransfer",
            Message::SecretRequest(_) => "SecretRequest",
            Message::RevealSecret(_) => "RevealSecret",
            Message::Unlock(_) => "Secret",
            Message::RemoveExpiredHashlock(_) => "RemoveExpiredHashlock",
            Message::AnnounceDisposed(_) => "AnnounceDisposed",
            Message::AnnounceDisposedResponse(_) => "AnnounceDisposedResponse",
            Message::WithdrawRequest(_) => "WithdrawRequest",
            Message::WithdrawResponse(_) => "WithdrawResponse",
            Message::SettleRequest(_) => "SettleRequest",
            Message::SettleResponse(_) => "SettleResponse",
            Message::Ping(_) => "Ping",
            Message::Ack(_) => "Ack",
        }
    }
}
