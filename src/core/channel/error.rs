//! [`ChannelError`]: why a balance proof or channel request was refused.

use crate::primitives::{Address, BlockNumber, ChannelId, Nonce, SecretHash};

/// A violated acceptance rule (SPEC §3). The message is refused and nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// We have no such channel.
    #[error("unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// The signer is not our partner in this channel.
    #[error("sender {0:?} is not the channel partner")]
    NotPartner(Address),
    /// The proof is for another epoch of the channel.
    #[error("open block number {got} does not match the channel's {expected}")]
    WrongEpoch {
        /// Ours.
        expected: BlockNumber,
        /// Theirs.
        got: BlockNumber,
    },
    /// The channel is closed, settling or negotiating its end.
    #[error("channel is not open for transfers ({0})")]
    NotOpen(&'static str),
    /// The nonce is not previous + 1.
    #[error("nonce {got}, expected {expected}")]
    BadNonce {
        /// previous + 1.
        expected: Nonce,
        /// Received.
        got: Nonce,
    },
    /// `transferred_amount` went down, or changed where it must not, or by the wrong amount.
    #[error("transferred amount is not what the message implies")]
    BadTransferredAmount,
    /// More than the sender can pay.
    #[error("amount exceeds the sender's distributable balance")]
    InsufficientBalance,
    /// A zero amount.
    #[error("amount is zero")]
    ZeroAmount,
    /// The locksroot does not match the expected pending locks.
    #[error("locksroot does not match the pending locks")]
    LocksrootMismatch,
    /// A lock with this secrethash is already pending.
    #[error("lock {0:?} is already pending")]
    DuplicateLock(SecretHash),
    /// No pending lock with this secrethash.
    #[error("no pending lock {0:?}")]
    UnknownLock(SecretHash),
    /// The lock's expiration is beyond the settle window.
    #[error("lock expiration {expiration} is beyond block {limit} (the settle window)")]
    LockTooLong {
        /// Offered.
        expiration: BlockNumber,
        /// Latest acceptable.
        limit: BlockNumber,
    },
    /// The sender already holds the most pending locks allowed on this channel.
    #[error("the sender already has {0} pending locks on this channel, the most allowed")]
    TooManyLocks(usize),
    /// The lock has not expired yet (for RemoveExpiredHashlock).
    #[error("lock expires at {expiration}, block is {block}: not expired")]
    LockNotExpired {
        /// Its expiration.
        expiration: BlockNumber,
        /// Our block.
        block: BlockNumber,
    },
    /// Its secret was registered on chain in time: it can be claimed, not removed.
    #[error("lock's secret is registered on chain")]
    SecretRegistered,
    /// We never disposed this lock (for AnnounceDisposedResponse).
    #[error("lock {0:?} was not disposed")]
    NotDisposed(SecretHash),
    /// A withdraw/settle term disagrees with our view.
    #[error("terms disagree with our view: {0}")]
    BadTerms(&'static str),
}
