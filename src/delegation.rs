//! Third-party delegation (SPEC §1, §8): the package a node hands a monitoring service so that
//! it can defend one channel on chain while the node is away, and the checks the service runs
//! on it. Every item is signed by whoever the contract will check, and the whole submission is
//! signed by the delegating node over the monitor's address: nothing unsigned is trusted.

use crate::crypto::{PrivateKey, keccak256, recover_eip191};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, Secret,
    SecretHash, Signature, TokenAmount,
};
use crate::proofs::{
    BalanceProofData, ChannelBinding, DelegationData, DisposedLockData, Lock, SignedData,
    UnlockDelegationData, channel_identifier, verify_merkle_proof,
};
use serde::{Deserialize, Serialize};

/// Hex (or decimal, for amounts) text in JSON through `Display`/`FromStr`.
mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<T, D::Error>
    where
        T::Err: Display,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An optional value as a string in JSON.
mod text_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error>
    where
        T::Err: Display,
    {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A list of hex values in JSON.
mod text_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|h| h.to_string()))
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error>
    where
        T::Err: Display,
    {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The partner's latest balance proof, as `updateBalanceProofDelegate` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedProof {
    /// Cumulative tokens the partner paid.
    #[serde(with = "text")]
    pub transferred_amount: TokenAmount,
    /// Root of the partner's pending locks.
    #[serde(with = "text")]
    pub locksroot: Locksroot,
    /// The proof's sequence number.
    pub nonce: Nonce,
    /// `keccak256` of the message body the proof travelled in.
    #[serde(with = "text")]
    pub additional_hash: H256,
    /// The partner's signature over the balance-proof data.
    #[serde(with = "text")]
    pub partner_signature: Signature,
    /// The delegating node's signature over the delegation data (SPEC §2).
    #[serde(with = "text")]
    pub delegation_signature: Signature,
}

/// A lock of the partner's proof whose secret the node knows, with its consent that the
/// delegate (and only it: the contract checks `msg.sender`) unlocks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedUnlock {
    /// Last block the secret may be registered at.
    pub expiration: BlockNumber,
    /// Tokens locked.
    #[serde(with = "text")]
    pub amount: TokenAmount,
    /// `sha256(secret)`.
    #[serde(with = "text")]
    pub secrethash: SecretHash,
    /// Siblings from the lock up to the proof's locksroot.
    #[serde(with = "text_vec")]
    pub merkle_proof: Vec<H256>,
    /// The node's signature over the unlock-delegation data naming the delegate.
    #[serde(with = "text")]
    pub signature: Signature,
    /// The secret, so the delegate can register it on chain when nobody else does (an unlock
    /// needs it registered by the lock's expiration). `sha256(secret)` must be `secrethash`.
    #[serde(default, with = "text_opt", skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

impl DelegatedUnlock {
    /// The lock.
    pub fn lock(&self) -> Lock {
        Lock {
            expiration: self.expiration,
            amount: self.amount,
            secrethash: self.secrethash,
        }
    }
}

/// The partner's signed statement that it gave one of the node's locks back: if the partner
/// unlocks that lock on chain anyway, `punishObsoleteUnlock` gives the node the whole channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PunishEvidence {
    /// The lock given back.
    #[serde(with = "text")]
    pub lockhash: H256,
    /// `keccak256` of the AnnounceDisposed body.
    #[serde(with = "text")]
    pub additional_hash: H256,
    /// The partner's signature over the disposed-lock data.
    #[serde(with = "text")]
    pub partner_signature: Signature,
}

/// Everything a delegate needs to defend one channel of `delegator` (SPEC §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationPackage {
    /// The chain.
    pub chain_id: ChainId,
    /// The token network holding the channel.
    #[serde(with = "text")]
    pub token_network: Address,
    /// The channel.
    #[serde(with = "text")]
    pub channel_identifier: ChannelId,
    /// The channel's epoch: proofs of another epoch are void.
    pub open_block_number: BlockNumber,
    /// The channel's settle window (the update is due in its second half).
    pub settle_timeout: BlockCount,
    /// The node that delegates.
    #[serde(with = "text")]
    pub delegator: Address,
    /// Its partner in the channel.
    #[serde(with = "text")]
    pub partner: Address,
    /// The monitoring service the package is for.
    #[serde(with = "text")]
    pub delegate: Address,
    /// The partner's latest balance proof (none before the partner paid anything).
    pub balance_proof: Option<DelegatedProof>,
    /// Locks of that proof the delegate may unlock.
    pub unlocks: Vec<DelegatedUnlock>,
    /// Evidence against obsolete unlocks by the partner.
    pub punishes: Vec<PunishEvidence>,
    /// Locks of the partner's proof the delegator gave back (AnnounceDisposed), by secrethash:
    /// never to be unlocked or registered for it (the partner holds its signed statement and
    /// would punish the unlock). Once listed, a lock stays listed for the channel's epoch.
    #[serde(default, with = "text_vec")]
    pub given_back: Vec<SecretHash>,
    /// The delegator's signature over [`DelegationPackage::signed_bytes`].
    #[serde(with = "text")]
    pub signature: Signature,
}

/// Why a package is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    /// Meant for another monitoring service.
    #[error("the package names delegate {named}, this service is {ours}")]
    WrongDelegate {
        /// Named in the package.
        named: Address,
        /// This service.
        ours: Address,
    },
    /// Meant for another chain.
    #[error("the package is for chain {named}, this service follows chain {ours}")]
    WrongChain {
        /// Named in the package.
        named: ChainId,
        /// This service's.
        ours: ChainId,
    },
    /// The channel id is not the one of the two participants in that token network.
    #[error("channel {0} is not the channel of the delegator and partner in that token network")]
    WrongChannel(ChannelId),
    /// A signature does not recover to the participant it must come from.
    #[error("bad signature: {0}")]
    BadSignature(&'static str),
    /// An unlock's lock is not in the proof's lock tree.
    #[error("lock {0} is not under the balance proof's locksroot")]
    NotInLocksroot(SecretHash),
    /// An unlock delegation for a lock the same package says was given back.
    #[error("lock {0} is both delegated for unlocking and given back")]
    UnlockOfGivenBack(SecretHash),
    /// A secret given with an unlock does not hash to its lock's secrethash.
    #[error("the secret given for lock {0} does not hash to it")]
    WrongSecret(SecretHash),
    /// Unlocks without a proof to unlock against.
    #[error("unlock delegations need a balance proof")]
    UnlocksWithoutProof,
    /// More items than the service takes.
    #[error("too many items: {0} (limit {1})")]
    TooManyItems(usize, usize),
}

fn push_u64(d: &mut Vec<u8>, v: u64) {
    d.extend_from_slice(&v.to_be_bytes());
}

impl DelegationPackage {
    /// The binding every item of this package signs.
    pub fn binding(&self) -> ChannelBinding {
        ChannelBinding {
            channel_identifier: self.channel_identifier,
            open_block_number: self.open_block_number,
            chain_id: self.chain_id,
        }
    }

    /// Sequence number of the proof carried (0: none).
    pub fn nonce(&self) -> Nonce {
        self.balance_proof.map_or(Nonce(0), |p| p.nonce)
    }

    /// The bytes the delegator signs (EIP-191): a domain tag, then every field in order, so
    /// that the signature covers the whole submission and the monitor's address.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut d = b"SmartRaiden delegation v1".to_vec();
        d.extend_from_slice(&self.delegate.0);
        push_u64(&mut d, self.chain_id.0);
        d.extend_from_slice(&self.token_network.0);
        d.extend_from_slice(self.channel_identifier.as_bytes());
        push_u64(&mut d, self.open_block_number.0);
        push_u64(&mut d, self.settle_timeout.0);
        d.extend_from_slice(&self.delegator.0);
        d.extend_from_slice(&self.partner.0);
        match &self.balance_proof {
            None => d.push(0),
            Some(p) => {
                d.push(1);
                d.extend_from_slice(&p.transferred_amount.to_be_bytes());
                d.extend_from_slice(p.locksroot.as_bytes());
                push_u64(&mut d, p.nonce.0);
                d.extend_from_slice(&p.additional_hash.0);
                d.extend_from_slice(&p.partner_signature.0);
                d.extend_from_slice(&p.delegation_signature.0);
            }
        }
        push_u64(&mut d, self.unlocks.len() as u64);
        for u in &self.unlocks {
            d.extend_from_slice(&u.lock().lockhash().0);
            push_u64(&mut d, u.merkle_proof.len() as u64);
            for h in &u.merkle_proof {
                d.extend_from_slice(&h.0);
            }
            d.extend_from_slice(&u.signature.0);
            match &u.secret {
                Some(s) => {
                    d.push(1);
                    d.extend_from_slice(&s.0.0);
                }
                None => d.push(0),
            }
        }
        push_u64(&mut d, self.given_back.len() as u64);
        for h in &self.given_back {
            d.extend_from_slice(h.as_bytes());
        }
        push_u64(&mut d, self.punishes.len() as u64);
        for p in &self.punishes {
            d.extend_from_slice(&p.lockhash.0);
            d.extend_from_slice(&p.additional_hash.0);
            d.extend_from_slice(&p.partner_signature.0);
        }
        d
    }

    /// Signs the submission as the delegator.
    pub fn sign(&mut self, key: &PrivateKey) {
        self.signature = key.sign_eip191(&self.signed_bytes());
    }

    /// A digest naming this exact package (for logs and the status of a delegation).
    pub fn id(&self) -> H256 {
        keccak256(self.signed_bytes())
    }

    /// Checks every signature and Merkle proof against the participants the contract will
    /// check, for delegate `ours` on chain `chain_id`. On-chain facts (the channel's epoch and
    /// state, the nonce the chain holds) are the caller's to compare.
    pub fn verify(
        &self,
        ours: Address,
        chain_id: ChainId,
        max_items: usize,
    ) -> Result<(), PackageError> {
        if self.delegate != ours {
            return Err(PackageError::WrongDelegate {
                named: self.delegate,
                ours,
            });
        }
        if self.chain_id != chain_id {
            return Err(PackageError::WrongChain {
                named: self.chain_id,
                ours: chain_id,
            });
        }
        let items = self.unlocks.len() + self.punishes.len() + self.given_back.len();
        if items > max_items {
            return Err(PackageError::TooManyItems(items, max_items));
        }
        if self.delegator == self.partner
            || channel_identifier(self.delegator, self.partner, self.token_network)
                != self.channel_identifier
        {
            return Err(PackageError::WrongChannel(self.channel_identifier));
        }
        let signer = |data: &dyn SignedData, sig: &Signature| data.signer(sig).ok();
        if recover_eip191(&self.signed_bytes(), &self.signature).ok() != Some(self.delegator) {
            return Err(PackageError::BadSignature(
                "the submission is not signed by the delegator",
            ));
        }
        let binding = self.binding();
        if let Some(p) = &self.balance_proof {
            let bp = BalanceProofData {
                transferred_amount: p.transferred_amount,
                locksroot: p.locksroot,
                nonce: p.nonce,
                additional_hash: p.additional_hash,
                binding,
            };
            if signer(&bp, &p.partner_signature) != Some(self.partner) {
                return Err(PackageError::BadSignature(
                    "the balance proof is not signed by the partner",
                ));
            }
            let delegation = DelegationData {
                transferred_amount: p.transferred_amount,
                locksroot: p.locksroot,
                nonce: p.nonce,
                binding,
            };
            if signer(&delegation, &p.delegation_signature) != Some(self.delegator) {
                return Err(PackageError::BadSignature(
                    "the delegation is not signed by the delegator",
                ));
            }
        }
        for u in &self.unlocks {
            let Some(p) = &self.balance_proof else {
                return Err(PackageError::UnlocksWithoutProof);
            };
            let data = UnlockDelegationData {
                delegatee: ours,
                expiration: u.expiration,
                amount: u.amount,
                secrethash: u.secrethash,
                binding,
            };
            if signer(&data, &u.signature) != Some(self.delegator) {
                return Err(PackageError::BadSignature(
                    "an unlock delegation is not signed by the delegator for this delegate",
                ));
            }
            if !verify_merkle_proof(u.lock().lockhash(), &u.merkle_proof, p.locksroot) {
                return Err(PackageError::NotInLocksroot(u.secrethash));
            }
            if u.secret.is_some_and(|s| s.hash() != u.secrethash) {
                return Err(PackageError::WrongSecret(u.secrethash));
            }
            if self.given_back.contains(&u.secrethash) {
                return Err(PackageError::UnlockOfGivenBack(u.secrethash));
            }
        }
        for e in &self.punishes {
            let data = DisposedLockData {
                lockhash: e.lockhash,
                binding,
                additional_hash: e.additional_hash,
            };
            if signer(&data, &e.partner_signature) != Some(self.partner) {
                return Err(PackageError::BadSignature(
                    "punish evidence is not signed by the partner",
                ));
            }
        }
        Ok(())
    }
}
