//! The acceptance rules of SPEC §3 for balance-proof messages, as pure checks that return
//! what to apply. A refused message changes nothing.

use super::{ChannelError, ChannelState, EndState, SignedProof};
use crate::messages::{BalanceProof, SignedMessage};
use crate::primitives::{Address, BlockNumber, Secret, SecretHash, TokenAmount};
use crate::proofs::Lock;

/// The verdict on an incoming balance-proof message (short-lived: returned by a check and
/// applied at once, so its size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Already applied (nonce at or below the partner's, signed by the partner): acknowledge
    /// again, change nothing.
    Duplicate,
    /// Valid and new: the partner's next state.
    Fresh {
        /// The partner's new signed proof.
        proof: SignedProof,
        /// The partner's pending locks after it.
        locks: Vec<Lock>,
    },
}

impl ChannelState {
    /// Sender, epoch and nonce checks shared by every balance-proof message.
    fn check_header(&self, sender: Address, bp: &BalanceProof) -> Result<bool, ChannelError> {
        if sender != self.partner.address {
            return Err(ChannelError::NotPartner(sender));
        }
        if bp.open_block_number != self.open_block_number {
            return Err(ChannelError::WrongEpoch {
                expected: self.open_block_number,
                got: bp.open_block_number,
            });
        }
        if bp.nonce <= self.partner.nonce {
            return Ok(true);
        }
        if !self.can_transfer() {
            return Err(ChannelError::NotOpen(self.status.api_name()));
        }
        let expected = self.partner.nonce.next();
        if bp.nonce != expected {
            return Err(ChannelError::BadNonce {
                expected,
                got: bp.nonce,
            });
        }
        if bp.transferred_amount < self.partner.transferred_amount {
            return Err(ChannelError::BadTransferredAmount);
        }
        Ok(false)
    }

    fn fresh(
        msg: &SignedMessage,
        bp: &BalanceProof,
        locks: Vec<Lock>,
    ) -> Result<Incoming, ChannelError> {
        if bp.locksroot != EndState::root_of(&locks) {
            return Err(ChannelError::LocksrootMismatch);
        }
        Ok(Incoming::Fresh {
            proof: SignedProof {
                balance_proof: *bp,
                additional_hash: msg.hash,
                signature: msg.signature,
            },
            locks,
        })
    }

    /// A DirectTransfer: pays `transferred − previous`, locks unchanged.
    pub fn check_direct(
        &self,
        msg: &SignedMessage,
        bp: &BalanceProof,
    ) -> Result<Incoming, ChannelError> {
        if self.check_header(msg.sender, bp)? {
            return Ok(Incoming::Duplicate);
        }
        let amount = bp
            .transferred_amount
            .checked_sub(self.partner.transferred_amount)
            .ok_or(ChannelError::BadTransferredAmount)?;
        if amount.is_zero() {
            return Err(ChannelError::ZeroAmount);
        }
        if amount > self.partner_distributable() {
            return Err(ChannelError::InsufficientBalance);
        }
        Self::fresh(msg, bp, self.partner.locks.clone())
    }

    /// A MediatedTransfer: adds `lock`, transferred unchanged, expiration within the window.
    pub fn check_mediated(
        &self,
        msg: &SignedMessage,
        bp: &BalanceProof,
        lock: &Lock,
        block: BlockNumber,
        max_locks: usize,
    ) -> Result<Incoming, ChannelError> {
        if self.check_header(msg.sender, bp)? {
            return Ok(Incoming::Duplicate);
        }
        if self.partner.locks.len() >= max_locks {
            return Err(ChannelError::TooManyLocks(max_locks));
        }
        if bp.transferred_amount != self.partner.transferred_amount {
            return Err(ChannelError::BadTransferredAmount);
        }
        if lock.amount.is_zero() {
            return Err(ChannelError::ZeroAmount);
        }
        if self.partner.lock(&lock.secrethash).is_some() {
            return Err(ChannelError::DuplicateLock(lock.secrethash));
        }
        if lock.amount > self.partner_distributable() {
            return Err(ChannelError::InsufficientBalance);
        }
        let limit = block.plus(self.settle_timeout);
        if lock.expiration > limit {
            return Err(ChannelError::LockTooLong {
                expiration: lock.expiration,
                limit,
            });
        }
        let mut locks = self.partner.locks.clone();
        locks.push(*lock);
        Self::fresh(msg, bp, locks)
    }

    /// An Unlock: removes the lock of `secret` and adds its amount to transferred.
    pub fn check_unlock(
        &self,
        msg: &SignedMessage,
        bp: &BalanceProof,
        secret: &Secret,
    ) -> Result<Incoming, ChannelError> {
        if self.check_header(msg.sender, bp)? {
            return Ok(Incoming::Duplicate);
        }
        let secrethash = secret.hash();
        let lock = self
            .partner
            .lock(&secrethash)
            .ok_or(ChannelError::UnknownLock(secrethash))?;
        if Some(bp.transferred_amount) != self.partner.transferred_amount.checked_add(lock.amount) {
            return Err(ChannelError::BadTransferredAmount);
        }
        Self::fresh(msg, bp, self.partner.locks_without(&secrethash))
    }

    /// A RemoveExpiredHashlock: the lock expired unclaimed (and its secret was not registered
    /// on chain in time).
    pub fn check_remove_expired(
        &self,
        msg: &SignedMessage,
        bp: &BalanceProof,
        secrethash: &SecretHash,
        block: BlockNumber,
        registered_in_time: bool,
    ) -> Result<Incoming, ChannelError> {
        if self.check_header(msg.sender, bp)? {
            return Ok(Incoming::Duplicate);
        }
        let lock = self
            .partner
            .lock(secrethash)
            .ok_or(ChannelError::UnknownLock(*secrethash))?;
        if lock.expiration >= block {
            return Err(ChannelError::LockNotExpired {
                expiration: lock.expiration,
                block,
            });
        }
        if registered_in_time {
            return Err(ChannelError::SecretRegistered);
        }
        if bp.transferred_amount != self.partner.transferred_amount {
            return Err(ChannelError::BadTransferredAmount);
        }
        Self::fresh(msg, bp, self.partner.locks_without(secrethash))
    }

    /// An AnnounceDisposedResponse: the partner removes a lock we gave back.
    pub fn check_disposed_response(
        &self,
        msg: &SignedMessage,
        bp: &BalanceProof,
        secrethash: &SecretHash,
        we_disposed: bool,
    ) -> Result<Incoming, ChannelError> {
        if self.check_header(msg.sender, bp)? {
            return Ok(Incoming::Duplicate);
        }
        self.partner
            .lock(secrethash)
            .ok_or(ChannelError::UnknownLock(*secrethash))?;
        if !we_disposed {
            return Err(ChannelError::NotDisposed(*secrethash));
        }
        if bp.transferred_amount != self.partner.transferred_amount {
            return Err(ChannelError::BadTransferredAmount);
        }
        Self::fresh(msg, bp, self.partner.locks_without(secrethash))
    }

    /// Applies a verdict of one of the checks to the partner's end.
    pub(crate) fn accept(&mut self, incoming: Incoming) {
        if let Incoming::Fresh { proof, locks } = incoming {
            self.partner.apply(proof, locks);
        }
    }

    /// The amount an incoming direct transfer pays (for notifications).
    pub(crate) fn direct_amount(&self, bp: &BalanceProof) -> TokenAmount {
        bp.transferred_amount
            .saturating_sub(self.partner.transferred_amount)
    }
}
