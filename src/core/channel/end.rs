//! [`EndState`]: one participant's side of a channel.

use crate::core::io::OnChainBalanceProof;
use crate::messages::BalanceProof;
use crate::primitives::{
    Address, H256, Locksroot, Nonce, Secret, SecretHash, Signature, TokenAmount,
};
use crate::proofs::{Lock, MerkleTree};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A balance proof with its signature, as it can be submitted on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProof {
    /// The proof.
    pub balance_proof: BalanceProof,
    /// `keccak256` of the body it travelled in.
    pub additional_hash: H256,
    /// The signer's signature.
    pub signature: Signature,
}

impl SignedProof {
    /// The form `closeChannel`/`updateBalanceProof` take.
    pub fn on_chain(&self) -> OnChainBalanceProof {
        OnChainBalanceProof {
            transferred_amount: self.balance_proof.transferred_amount,
            locksroot: self.balance_proof.locksroot,
            nonce: self.balance_proof.nonce,
            additional_hash: self.additional_hash,
            signature: self.signature,
        }
    }
}

/// One participant's side: what it deposited, paid and has locked toward the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndState {
    /// The participant.
    pub address: Address,
    /// Its current deposit in this epoch.
    pub deposit: TokenAmount,
    /// Nonce of its latest balance proof (0: none yet).
    pub nonce: Nonce,
    /// Cumulative amount it has paid.
    pub transferred_amount: TokenAmount,
    /// Its pending locks toward the other end, in insertion order (the Merkle leaf order).
    pub locks: Vec<Lock>,
    /// Secrets known for its pending locks.
    pub secrets: BTreeMap<SecretHash, Secret>,
    /// Its latest signed balance proof.
    pub latest_proof: Option<SignedProof>,
}

impl EndState {
    /// An end with nothing deposited or sent.
    pub fn new(address: Address) -> EndState {
        EndState {
            address,
            deposit: TokenAmount::ZERO,
            nonce: Nonce(0),
            transferred_amount: TokenAmount::ZERO,
            locks: Vec::new(),
            secrets: BTreeMap::new(),
            latest_proof: None,
        }
    }

    /// deposit − what it paid + what the other end paid it.
    pub fn balance(&self, other: &EndState) -> TokenAmount {
        self.deposit
            .saturating_add(other.transferred_amount)
            .saturating_sub(self.transferred_amount)
    }

    /// Sum of its pending locks.
    pub fn locked_amount(&self) -> TokenAmount {
        self.locks
            .iter()
            .fold(TokenAmount::ZERO, |a, l| a.saturating_add(l.amount))
    }

    /// The Merkle root of `locks`.
    pub fn root_of(locks: &[Lock]) -> Locksroot {
        MerkleTree::new(locks.iter().map(Lock::lockhash).collect()).root()
    }

    /// The root of its current pending locks.
    pub fn locksroot(&self) -> Locksroot {
        Self::root_of(&self.locks)
    }

    /// Its pending lock for `secrethash`.
    pub fn lock(&self, secrethash: &SecretHash) -> Option<&Lock> {
        self.locks.iter().find(|l| &l.secrethash == secrethash)
    }

    /// Its locks with one removed (order kept).
    pub fn locks_without(&self, secrethash: &SecretHash) -> Vec<Lock> {
        self.locks
            .iter()
            .filter(|l| &l.secrethash != secrethash)
            .copied()
            .collect()
    }

    /// The Merkle proof of its lock for `secrethash` against its locksroot.
    pub fn merkle_proof(&self, secrethash: &SecretHash) -> Option<Vec<H256>> {
        let index = self
            .locks
            .iter()
            .position(|l| &l.secrethash == secrethash)?;
        MerkleTree::new(self.locks.iter().map(Lock::lockhash).collect()).proof(index)
    }

    /// Records a new signed state for this end.
    pub(crate) fn apply(&mut self, proof: SignedProof, locks: Vec<Lock>) {
        self.nonce = proof.balance_proof.nonce;
        self.transferred_amount = proof.balance_proof.transferred_amount;
        let live: std::collections::BTreeSet<SecretHash> =
            locks.iter().map(|l| l.secrethash).collect();
        self.secrets.retain(|h, _| live.contains(h));
        self.locks = locks;
        self.latest_proof = Some(proof);
    }
}
