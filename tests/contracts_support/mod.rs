//! Shared fixture of the contracts suites: a fresh anvil per test, the contracts deployed by the
//! library's own `deploy`, three funded participants whose proofs are signed by the core's
//! signing code (`smartraiden::proofs`, `smartraiden::crypto`).

#![allow(dead_code)]

use alloy::primitives::{Address as EthAddress, Bytes, FixedBytes, U256};
use alloy::rpc::types::TransactionReceipt;
use smartraiden::chain::bindings::{SecretRegistry, StandardToken, TokenNetwork};
use smartraiden::chain::deploy::{DeployOptions, Deployment, deploy};
use smartraiden::chain::{ChainClient, ChainError, DevChain};
use smartraiden::crypto::PrivateKey;
use smartraiden::primitives::{
    Address, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, SecretHash, Signature,
    TokenAmount,
};
use smartraiden::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, DelegationData, DisposedLockData,
    Lock, MerkleTree, SignedData, UnlockDelegationData, WithdrawData,
};

#[allow(unused_imports)]
pub use smartraiden::chain::bindings::TokenNetwork::TokenNetworkErrors as E;

/// Punish window used by the fixtures (blocks).
pub const PUNISH: u64 = 5;
/// Settle timeout used by the fixtures (blocks).
pub const SETTLE_TIMEOUT: u64 = 20;
/// Tokens each participant starts with.
pub const START_TOKENS: u64 = 1_000_000;
/// Expiration block of co-signed withdraw / cooperative-settle terms that must not expire
/// during a test.
pub const FAR: u64 = 1_000_000;

/// One participant: its chain client and the core key signing its proofs (the same secret).
pub struct Party {
    /// Sends its transactions.
    pub client: ChainClient,
    /// The core's key for off-chain proofs.
    pub key: PrivateKey,
}

impl Party {
    /// Its address, alloy type.
    pub fn eth(&self) -> EthAddress {
        self.client.address()
    }
    /// Its address, core type.
    pub fn addr(&self) -> Address {
        self.key.address()
    }
}

/// A fresh chain with the contracts deployed and participants a, b (channel partners) and c (third party).
pub struct Env {
    pub chain: DevChain,
    pub deployer: ChainClient,
    pub deployment: Deployment,
    pub tn_address: EthAddress,
    pub a: Party,
    pub b: Party,
    pub c: Party,
}

/// alloy address of a core address.
pub fn eth(a: Address) -> EthAddress {
    EthAddress::from(a.0)
}

/// The signature as call data.
pub fn sig(s: Signature) -> Bytes {
    Bytes::copy_from_slice(&s.0)
}

/// 32-byte value as alloy bytes32.
pub fn b32(h: H256) -> FixedBytes<32> {
    FixedBytes(h.0)
}

/// Amount as core type.
pub fn amt(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

/// The first 24 bytes of a core balance hash (the contract stores it truncated).
pub fn bh24(h: H256) -> FixedBytes<24> {
    FixedBytes::from_slice(&h.0[..24])
}

/// Asserts that `res` failed with a TokenNetwork custom error matching the pattern.
#[macro_export]
macro_rules! assert_reverts {
    ($res:expr, $pat:pat $(if $guard:expr)?) => {{
        match $res {
            Ok(_) => panic!("expected revert {}, but the transaction succeeded", stringify!($pat)),
            Err(e) => match e.decode_revert::<$crate::contracts_support::E>() {
                Some(decoded) => assert!(
                    matches!(&decoded, $pat $(if $guard)?),
                    "expected revert {}, got {:?}",
                    stringify!($pat),
                    decoded
                ),
                None => panic!("expected revert {}, got non-TokenNetwork error: {e}", stringify!($pat)),
            },
        }
    }};
}

impl Env {
    /// Starts anvil, deploys everything, funds a, b, c with ether and tokens and approves the TokenNetwork.
    pub async fn new() -> Env {
        let chain = DevChain::start().await.expect("anvil starts");
        let deployer = chain.client(DevChain::key(0)).await.unwrap();
        let options = DeployOptions {
            punish_block_number: PUNISH,
            ..DeployOptions::default()
        };
        let deployment = deploy(&deployer, &options).await.expect("deploy");
        let tn_address = deployment.token_network.unwrap();
        let mut parties = Vec::new();
        for i in 1..=3 {
            let signer = DevChain::key(i);
            let key = PrivateKey::from_bytes(signer.to_bytes().0).unwrap();
            let client = chain.client(signer).await.unwrap();
            assert_eq!(
                client.address(),
                eth(key.address()),
                "core and alloy derive the same address"
            );
            let token = StandardToken::new(deployment.token, deployer.provider());
            deployer
                .send(token.transfer(client.address(), U256::from(START_TOKENS)))
                .await
                .unwrap();
            let token = StandardToken::new(deployment.token, client.provider());
            client
                .send(token.approve(tn_address, U256::MAX))
                .await
                .unwrap();
            parties.push(Party { client, key });
        }
        let c = parties.pop().unwrap();
        let b = parties.pop().unwrap();
        let a = parties.pop().unwrap();
        Env {
            chain,
            deployer,
            deployment,
            tn_address,
            a,
            b,
            c,
        }
    }

    /// The TokenNetwork as seen by `who`.
    pub fn tn<'a>(
        &self,
        who: &'a Party,
    ) -> TokenNetwork::TokenNetworkInstance<&'a alloy::providers::DynProvider> {
        TokenNetwork::new(self.tn_address, who.client.provider())
    }

    /// The SecretRegistry as seen by `who`.
    pub fn secrets<'a>(
        &self,
        who: &'a Party,
    ) -> SecretRegistry::SecretRegistryInstance<&'a alloy::providers::DynProvider> {
        SecretRegistry::new(self.deployment.secret_registry, who.client.provider())
    }

    /// Token balance of an address.
    pub async fn token_balance(&self, who: EthAddress) -> U256 {
        StandardToken::new(self.deployment.token, self.deployer.provider())
            .balanceOf(who)
            .call()
            .await
            .unwrap()
    }

    /// Channel identifier per the core.
    pub fn channel_id(&self) -> ChannelId {
        smartraiden::proofs::channel_identifier(
            self.a.addr(),
            self.b.addr(),
            Address(self.tn_address.0.0),
        )
    }

    /// (settle_block_number, open_block_number, state, settle_timeout) of the a–b channel.
    pub async fn channel(&self) -> (u64, u64, u8, u64) {
        let r = self
            .tn(&self.a)
            .getChannelInfo(self.a.eth(), self.b.eth())
            .call()
            .await
            .unwrap();
        (
            r.settle_block_number,
            r.open_block_number,
            r.state,
            r.settle_timeout,
        )
    }

    /// (deposit, balance_hash, nonce) of `who` in the a–b channel.
    pub async fn participant(&self, who: &Party, partner: &Party) -> (U256, FixedBytes<24>, u64) {
        let r = self
            .tn(&self.a)
            .getParticipantInfo(who.eth(), partner.eth())
            .call()
            .await
            .unwrap();
        (r.participant_deposit, r.balance_hash, r.nonce)
    }

    /// The binding of the a–b channel as it is now on chain.
    pub async fn binding(&self) -> ChannelBinding {
        let (_, open_block, _, _) = self.channel().await;
        ChannelBinding {
            channel_identifier: self.channel_id(),
            open_block_number: BlockNumber(open_block),
            chain_id: ChainId(self.deployer.chain_id()),
        }
    }

    /// Opens a–b with deposits (da by a, db by b), settle timeout SETTLE_TIMEOUT.
    pub async fn open(&self, da: u64, db: u64) {
        self.a
            .client
            .send(self.tn(&self.a).openChannelWithDeposit(
                self.a.eth(),
                self.b.eth(),
                SETTLE_TIMEOUT,
                U256::from(da),
            ))
            .await
            .unwrap();
        if db > 0 {
            self.b
                .client
                .send(
                    self.tn(&self.b)
                        .deposit(self.b.eth(), self.a.eth(), U256::from(db)),
                )
                .await
                .unwrap();
        }
    }

    /// Mines to the first block at which settleChannel is allowed.
    pub async fn mine_past_settle(&self) {
        let (settle_block, _, _, _) = self.channel().await;
        // settleChannel's transaction lands in head + 1.
        self.chain.mine_to(settle_block + PUNISH).await.unwrap();
    }

    /// Mines so that the next transaction lands in block `block`.
    pub async fn next_tx_in(&self, block: u64) {
        self.chain.mine_to(block - 1).await.unwrap();
    }

    /// Settles a–b with the given proofs' (transferred, locksroot) and returns the receipt.
    pub async fn settle(
        &self,
        who: &Party,
        ta: TokenAmount,
        la: Locksroot,
        tb: TokenAmount,
        lb: Locksroot,
    ) -> Result<TransactionReceipt, ChainError> {
        who.client
            .send(self.tn(who).settleChannel(
                self.a.eth(),
                ta.0,
                b32(la.0),
                self.b.eth(),
                tb.0,
                b32(lb.0),
            ))
            .await
    }
}

/// A balance proof signed by `key`.
pub fn balance_proof(
    key: &PrivateKey,
    binding: ChannelBinding,
    transferred: TokenAmount,
    locksroot: Locksroot,
    nonce: u64,
    additional_hash: H256,
) -> (BalanceProofData, Bytes) {
    let data = BalanceProofData {
        transferred_amount: transferred,
        locksroot,
        nonce: Nonce(nonce),
        additional_hash,
        binding,
    };
    let s = data.sign(key);
    (data, sig(s))
}

/// A delegation signed by `key` for the balance proof `bp`.
pub fn delegation(key: &PrivateKey, bp: &BalanceProofData) -> Bytes {
    sig(DelegationData {
        transferred_amount: bp.transferred_amount,
        locksroot: bp.locksroot,
        nonce: bp.nonce,
        binding: bp.binding,
    }
    .sign(key))
}

/// A withdraw proof signed by `key`, valid up to block `expiration`.
pub fn withdraw_sig(
    key: &PrivateKey,
    binding: ChannelBinding,
    participant: Address,
    balance: u64,
    withdraw: u64,
    expiration: u64,
) -> Bytes {
    sig(WithdrawData {
        participant,
        participant_balance: amt(balance),
        participant_withdraw: amt(withdraw),
        expiration: BlockNumber(expiration),
        binding,
    }
    .sign(key))
}

/// A cooperative-settle proof signed by `key`, valid up to block `expiration`.
pub fn coop_sig(
    key: &PrivateKey,
    binding: ChannelBinding,
    p1: Address,
    b1: TokenAmount,
    p2: Address,
    b2: TokenAmount,
    expiration: u64,
) -> Bytes {
    sig(CooperativeSettleData {
        participant1: p1,
        participant1_balance: b1,
        participant2: p2,
        participant2_balance: b2,
        expiration: BlockNumber(expiration),
        binding,
    }
    .sign(key))
}

/// A disposed-lock proof signed by `key`.
pub fn disposed_sig(
    key: &PrivateKey,
    binding: ChannelBinding,
    lockhash: H256,
    additional_hash: H256,
) -> Bytes {
    sig(DisposedLockData {
        lockhash,
        binding,
        additional_hash,
    }
    .sign(key))
}

/// An unlock delegation signed by `key` naming `delegatee`.
pub fn unlock_delegation_sig(
    key: &PrivateKey,
    binding: ChannelBinding,
    delegatee: Address,
    lock: &Lock,
) -> Bytes {
    sig(UnlockDelegationData {
        delegatee,
        expiration: lock.expiration,
        amount: lock.amount,
        secrethash: lock.secrethash,
        binding,
    }
    .sign(key))
}

/// A secret (deterministic from `n`) and its sha256 hash.
pub fn secret(n: u8) -> (H256, SecretHash) {
    let s = smartraiden::primitives::Secret(H256([n; 32]));
    (s.0, s.hash())
}

/// Locks with their tree; returns (locks, tree).
pub fn locks_tree(locks: &[Lock]) -> MerkleTree {
    MerkleTree::new(locks.iter().map(|l| l.lockhash()).collect())
}

/// The Merkle proof of lock `index` as call data.
pub fn merkle_proof(tree: &MerkleTree, index: usize) -> Bytes {
    let proof = tree.proof(index).expect("index in tree");
    let mut out = Vec::with_capacity(proof.len() * 32);
    for h in proof {
        out.extend_from_slice(&h.0);
    }
    Bytes::from(out)
}

/// A fixed additional hash (the contract treats it as opaque).
pub fn ah(n: u8) -> H256 {
    H256([n; 32])
}
