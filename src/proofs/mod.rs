//! The byte layouts that contracts and node share (SPEC §2): signed proof data, lockhash,
//! locksroot and Merkle proofs. Every function here has a twin in `contracts/`.

mod merkle;

pub use merkle::{MerkleTree, merkle_root, verify_merkle_proof};

use crate::crypto::{PrivateKey, SignatureError, keccak256, recover_eip191};
use crate::primitives::{
    Address, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, SecretHash, Signature,
    TokenAmount,
};
use serde::{Deserialize, Serialize};

/// A hash-time lock: `amount` moves to the partner if it learns the secret of `secrethash`
/// before block `expiration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lock {
    /// Last block at which the secret may be registered on chain.
    pub expiration: BlockNumber,
    /// Tokens locked.
    pub amount: TokenAmount,
    /// `sha256(secret)`.
    pub secrethash: SecretHash,
}

impl Lock {
    /// `keccak256(expiration(u256) ‖ amount(u256) ‖ secrethash)`.
    pub fn lockhash(&self) -> H256 {
        let mut b = [0u8; 96];
        b[24..32].copy_from_slice(&self.expiration.0.to_be_bytes());
        b[32..64].copy_from_slice(&self.amount.to_be_bytes());
        b[64..96].copy_from_slice(self.secrethash.as_bytes());
        keccak256(b)
    }
}

/// The channel a proof is bound to: id, open block (reset by a withdraw) and chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelBinding {
    /// The channel.
    pub channel_identifier: ChannelId,
    /// Block the channel (re)opened at; voids proofs of earlier epochs.
    pub open_block_number: BlockNumber,
    /// Chain id.
    pub chain_id: ChainId,
}

impl ChannelBinding {
    fn append(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.channel_identifier.as_bytes());
        out.extend_from_slice(&self.open_block_number.0.to_be_bytes());
        out.extend_from_slice(&u256_of_u64(self.chain_id.0));
    }
}

fn u256_of_u64(v: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&v.to_be_bytes());
    b
}

/// `keccak256(lower ‖ higher ‖ token_network)`.
pub fn channel_identifier(a: Address, b: Address, token_network: Address) -> ChannelId {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let mut d = [0u8; 60];
    d[..20].copy_from_slice(&lo.0);
    d[20..40].copy_from_slice(&hi.0);
    d[40..].copy_from_slice(&token_network.0);
    ChannelId(keccak256(d))
}

/// `keccak256(locksroot ‖ transferred_amount)`, or zero when both are zero.
pub fn balance_hash(transferred_amount: TokenAmount, locksroot: Locksroot) -> H256 {
    if transferred_amount.is_zero() && locksroot.0.is_zero() {
        return H256::ZERO;
    }
    let mut d = [0u8; 64];
    d[..32].copy_from_slice(locksroot.as_bytes());
    d[32..].copy_from_slice(&transferred_amount.to_be_bytes());
    keccak256(d)
}

/// A proof whose packed bytes are signed under EIP-191 and checked on chain.
pub trait SignedData {
    /// The `abi.encodePacked` bytes of SPEC §2.
    fn packed(&self) -> Vec<u8>;

    /// Signs the packed bytes.
    fn sign(&self, key: &PrivateKey) -> Signature {
        key.sign_eip191(&self.packed())
    }

    /// The signer of `sig` over the packed bytes.
    fn signer(&self, sig: &Signature) -> Result<Address, SignatureError> {
        recover_eip191(&self.packed(), sig)
    }
}

/// The sender's statement of what it has paid and what it has locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BalanceProofData {
    /// Cumulative tokens paid to the partner.
    pub transferred_amount: TokenAmount,
    /// Root of the sender's pending locks.
    pub locksroot: Locksroot,
    /// Sequence number.
    pub nonce: Nonce,
    /// `keccak256` of the off-chain message body this proof travelled in.
    pub additional_hash: H256,
    /// The channel and epoch.
    pub binding: ChannelBinding,
}

impl SignedData for BalanceProofData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(32 + 32 + 8 + 32 + 32 + 8 + 32);
        d.extend_from_slice(&self.transferred_amount.to_be_bytes());
        d.extend_from_slice(self.locksroot.as_bytes());
        d.extend_from_slice(&self.nonce.0.to_be_bytes());
        d.extend_from_slice(&self.additional_hash.0);
        self.binding.append(&mut d);
        d
    }
}

/// A participant's consent that anyone may submit its balance proof for it (monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DelegationData {
    /// Cumulative tokens paid.
    pub transferred_amount: TokenAmount,
    /// Root of pending locks.
    pub locksroot: Locksroot,
    /// Sequence number.
    pub nonce: Nonce,
    /// The channel and epoch.
    pub binding: ChannelBinding,
}

impl SignedData for DelegationData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(32 + 32 + 8 + 32 + 8 + 32);
        d.extend_from_slice(&self.transferred_amount.to_be_bytes());
        d.extend_from_slice(self.locksroot.as_bytes());
        d.extend_from_slice(&self.nonce.0.to_be_bytes());
        self.binding.append(&mut d);
        d
    }
}

/// Both participants' agreement that `participant` withdraws while the channel stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WithdrawData {
    /// Who withdraws.
    pub participant: Address,
    /// Its balance in the channel before the withdraw.
    pub participant_balance: TokenAmount,
    /// How much it takes out.
    pub participant_withdraw: TokenAmount,
    /// Last block at which the contract accepts it.
    pub expiration: BlockNumber,
    /// The channel and epoch.
    pub binding: ChannelBinding,
}

impl SignedData for WithdrawData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(20 + 32 + 32 + 32 + 8 + 32 + 8);
        d.extend_from_slice(&self.participant.0);
        d.extend_from_slice(&self.participant_balance.to_be_bytes());
        d.extend_from_slice(&self.participant_withdraw.to_be_bytes());
        self.binding.append(&mut d);
        d.extend_from_slice(&self.expiration.0.to_be_bytes());
        d
    }
}

/// Both participants' agreement on final balances, settling at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CooperativeSettleData {
    /// First participant.
    pub participant1: Address,
    /// What it receives.
    pub participant1_balance: TokenAmount,
    /// Second participant.
    pub participant2: Address,
    /// What it receives.
    pub participant2_balance: TokenAmount,
    /// Last block at which the contract accepts it.
    pub expiration: BlockNumber,
    /// The channel and epoch.
    pub binding: ChannelBinding,
}

impl SignedData for CooperativeSettleData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(20 + 32 + 20 + 32 + 32 + 8 + 32);
        d.extend_from_slice(&self.participant1.0);
        d.extend_from_slice(&self.participant1_balance.to_be_bytes());
        d.extend_from_slice(&self.participant2.0);
        d.extend_from_slice(&self.participant2_balance.to_be_bytes());
        self.binding.append(&mut d);
        d.extend_from_slice(&self.expiration.0.to_be_bytes());
        d
    }
}

/// A payee's statement that it gave a lock back; unlocking it later on chain is punishable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DisposedLockData {
    /// The lock given back.
    pub lockhash: H256,
    /// The channel and epoch.
    pub binding: ChannelBinding,
    /// `keccak256` of the AnnounceDisposed message body.
    pub additional_hash: H256,
}

impl SignedData for DisposedLockData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(32 + 32 + 8 + 32 + 32);
        d.extend_from_slice(&self.lockhash.0);
        self.binding.append(&mut d);
        d.extend_from_slice(&self.additional_hash.0);
        d
    }
}

/// A participant's consent that `delegatee` unlocks one of its locks on chain for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnlockDelegationData {
    /// Who may submit the unlock.
    pub delegatee: Address,
    /// The lock's expiration.
    pub expiration: BlockNumber,
    /// The lock's amount.
    pub amount: TokenAmount,
    /// The lock's secret hash.
    pub secrethash: SecretHash,
    /// The channel and epoch.
    pub binding: ChannelBinding,
}

impl SignedData for UnlockDelegationData {
    fn packed(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(20 + 32 + 32 + 32 + 32 + 8 + 32);
        d.extend_from_slice(&self.delegatee.0);
        d.extend_from_slice(&u256_of_u64(self.expiration.0));
        d.extend_from_slice(&self.amount.to_be_bytes());
        d.extend_from_slice(self.secrethash.as_bytes());
        self.binding.append(&mut d);
        d
    }
}
