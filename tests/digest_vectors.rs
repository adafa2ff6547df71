//! The committed digest test vectors (`tests/vectors/digests.json`): every SPEC §2 proof,
//! lockhash, locksroot and Merkle proof, computed by the core. The contracts suite checks the
//! same file on chain. This test fails if the core's bytes drift from the file; run with
//! `UPDATE_VECTORS=1` to rewrite it after an intended change.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use smartraiden::crypto::{PrivateKey, eip191_hash, recover_eip191};
use smartraiden::primitives::*;
use smartraiden::proofs::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/digests.json");
/// anvil's account #1 (public test mnemonic): a key every contract test can also fund.
const SIGNER: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

struct Gen(ChaCha8Rng);

impl Gen {
    fn h256(&mut self) -> H256 {
        let mut b = [0u8; 32];
        self.0.fill_bytes(&mut b);
        H256(b)
    }
    fn addr(&mut self) -> Address {
        let mut b = [0u8; 20];
        self.0.fill_bytes(&mut b);
        Address(b)
    }
    /// Amounts across the range: small, u64-sized and near 2^256.
    fn amount(&mut self, i: usize) -> TokenAmount {
        match i % 3 {
            0 => TokenAmount::from(self.0.next_u32() as u64),
            1 => TokenAmount::from(self.0.next_u64()),
            _ => TokenAmount(
                alloy_primitives_max() - alloy_primitives::U256::from(self.0.next_u32()),
            ),
        }
    }
    fn u64(&mut self) -> u64 {
        self.0.next_u64() >> 8
    }
    fn binding(&mut self) -> ChannelBinding {
        ChannelBinding {
            channel_identifier: ChannelId(self.h256()),
            open_block_number: BlockNumber(self.u64()),
            chain_id: ChainId(if self.0.next_u32().is_multiple_of(2) {
                31337
            } else {
                8888
            }),
        }
    }
}

fn alloy_primitives_max() -> alloy_primitives::U256 {
    alloy_primitives::U256::MAX
}

fn binding_json(b: &ChannelBinding) -> Value {
    json!({
        "channel_identifier": b.channel_identifier.to_string(),
        "open_block_number": b.open_block_number.0,
        "chain_id": b.chain_id.0,
    })
}

/// Adds `data`, `digest`, `signature` and `signer` to a case's input fields.
fn signed_case(mut fields: Value, data: &impl SignedData, key: &PrivateKey) -> Value {
    let packed = data.packed();
    let sig = data.sign(key);
    assert_eq!(recover_eip191(&packed, &sig).unwrap(), key.address());
    let m = fields.as_object_mut().unwrap();
    m.insert("data".into(), json!(format!("0x{}", hex::encode(&packed))));
    m.insert("digest".into(), json!(eip191_hash(&packed).to_string()));
    m.insert("signature".into(), json!(sig.to_string()));
    m.insert("signer".into(), json!(key.address().to_checksum()));
    fields
}

fn lock_json(l: &Lock) -> Value {
    json!({
        "expiration": l.expiration.0,
        "amount": l.amount.to_string(),
        "secrethash": l.secrethash.to_string(),
        "lockhash": l.lockhash().to_string(),
    })
}

fn generate() -> Value {
    let key = PrivateKey::from_hex(SIGNER).unwrap();
    let mut g = Gen(ChaCha8Rng::seed_from_u64(2018));
    let n = 4;
    let merge = |a: Value, b: Value| {
        let mut a = a;
        a.as_object_mut()
            .unwrap()
            .extend(b.as_object().unwrap().clone());
        a
    };

    let mut balance_proof = vec![];
    let mut delegation = vec![];
    let mut withdraw = vec![];
    let mut cooperative_settle = vec![];
    let mut disposed_lock = vec![];
    let mut unlock_delegation = vec![];
    for i in 0..n {
        let bp = BalanceProofData {
            transferred_amount: g.amount(i),
            locksroot: Locksroot(g.h256()),
            nonce: Nonce(g.u64()),
            additional_hash: g.h256(),
            binding: g.binding(),
        };
        balance_proof.push(signed_case(
            merge(
                json!({
                    "transferred_amount": bp.transferred_amount.to_string(),
                    "locksroot": bp.locksroot.to_string(),
                    "nonce": bp.nonce.0,
                    "additional_hash": bp.additional_hash.to_string(),
                    "balance_hash": balance_hash(bp.transferred_amount, bp.locksroot).to_string(),
                }),
                binding_json(&bp.binding),
            ),
            &bp,
            &key,
        ));
        let d = DelegationData {
            transferred_amount: g.amount(i),
            locksroot: Locksroot(g.h256()),
            nonce: Nonce(g.u64()),
            binding: g.binding(),
        };
        delegation.push(signed_case(
            merge(
                json!({
                    "transferred_amount": d.transferred_amount.to_string(),
                    "locksroot": d.locksroot.to_string(),
                    "nonce": d.nonce.0,
                }),
                binding_json(&d.binding),
            ),
            &d,
            &key,
        ));
        let w = WithdrawData {
            participant: g.addr(),
            participant_balance: g.amount(i),
            participant_withdraw: g.amount(i + 1),
            expiration: BlockNumber(g.u64()),
            binding: g.binding(),
        };
        withdraw.push(signed_case(
            merge(
                json!({
                    "participant": w.participant.to_checksum(),
                    "participant_balance": w.participant_balance.to_string(),
                    "participant_withdraw": w.participant_withdraw.to_string(),
                    "expiration": w.expiration.0,
                }),
                binding_json(&w.binding),
            ),
            &w,
            &key,
        ));
        let c = CooperativeSettleData {
            participant1: g.addr(),
            participant1_balance: g.amount(i),
            participant2: g.addr(),
            participant2_balance: g.amount(i + 2),
            expiration: BlockNumber(g.u64()),
            binding: g.binding(),
        };
        cooperative_settle.push(signed_case(
            merge(
                json!({
                    "participant1": c.participant1.to_checksum(),
                    "participant1_balance": c.participant1_balance.to_string(),
                    "participant2": c.participant2.to_checksum(),
                    "participant2_balance": c.participant2_balance.to_string(),
                    "expiration": c.expiration.0,
                }),
                binding_json(&c.binding),
            ),
            &c,
            &key,
        ));
        let dl = DisposedLockData {
            lockhash: g.h256(),
            binding: g.binding(),
            additional_hash: g.h256(),
        };
        disposed_lock.push(signed_case(
            merge(
                json!({
                    "lockhash": dl.lockhash.to_string(),
                    "additional_hash": dl.additional_hash.to_string(),
                }),
                binding_json(&dl.binding),
            ),
            &dl,
            &key,
        ));
        let u = UnlockDelegationData {
            delegatee: g.addr(),
            expiration: BlockNumber(g.u64()),
            amount: g.amount(i),
            secrethash: SecretHash(g.h256()),
            binding: g.binding(),
        };
        unlock_delegation.push(signed_case(
            merge(
                json!({
                    "delegatee": u.delegatee.to_checksum(),
                    "expiration": u.expiration.0,
                    "amount": u.amount.to_string(),
                    "secrethash": u.secrethash.to_string(),
                }),
                binding_json(&u.binding),
            ),
            &u,
            &key,
        ));
    }

    let mut lockhash = vec![];
    let mut locksroot = vec![];
    for count in [0usize, 1, 2, 3, 5, 8] {
        let locks: Vec<Lock> = (0..count)
            .map(|i| Lock {
                expiration: BlockNumber(g.u64() % 10_000_000),
                amount: g.amount(i),
                secrethash: Secret(g.h256()).hash(),
            })
            .collect();
        lockhash.extend(locks.iter().map(lock_json));
        let tree = MerkleTree::new(locks.iter().map(Lock::lockhash).collect());
        let proofs: Vec<Value> = (0..count)
            .map(|i| {
                let p = tree.proof(i).unwrap();
                assert!(verify_merkle_proof(locks[i].lockhash(), &p, tree.root()));
                json!(p.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            })
            .collect();
        locksroot.push(json!({
            "locks": locks.iter().map(lock_json).collect::<Vec<_>>(),
            "root": tree.root().to_string(),
            "proofs": proofs,
        }));
    }
    let mut channel_identifier = vec![];
    for _ in 0..n {
        let (a, b, tn) = (g.addr(), g.addr(), g.addr());
        channel_identifier.push(json!({
            "participant1": a.to_checksum(), "participant2": b.to_checksum(),
            "token_network": tn.to_checksum(),
            "channel_identifier": smartraiden::proofs::channel_identifier(a, b, tn).to_string(),
        }));
    }
    let secret = Secret(g.h256());
    json!({
        "about": "SPEC §2 digests computed by the smartraiden core; regenerate with UPDATE_VECTORS=1 cargo test --test digest_vectors",
        "eip191_prefix": "\\x19Ethereum Signed Message:\\n<decimal length of data>",
        "signer_private_key": SIGNER,
        "signer": key.address().to_checksum(),
        "balance_proof": balance_proof,
        "delegation": delegation,
        "withdraw": withdraw,
        "cooperative_settle": cooperative_settle,
        "disposed_lock": disposed_lock,
        "unlock_delegation": unlock_delegation,
        "lockhash": lockhash,
        "locksroot": locksroot,
        "channel_identifier": channel_identifier,
        "secrethash": [{"secret": secret.to_string(), "secrethash": secret.hash().to_string()}],
    })
}

#[test]
fn committed_vectors_match_the_core() {
    let fresh = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(PATH, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).expect("tests/vectors/digests.json exists");
    assert!(
        committed == fresh,
        "tests/vectors/digests.json differs from the core's digests"
    );
}

#[test]
fn balance_hash_is_zero_only_for_the_empty_proof() {
    assert!(balance_hash(TokenAmount::ZERO, Locksroot(H256::ZERO)).is_zero());
    assert!(!balance_hash(TokenAmount::from(1u64), Locksroot(H256::ZERO)).is_zero());
}

#[test]
fn secrethash_is_sha256_of_the_secret() {
    // sha256 of 32 zero bytes.
    assert_eq!(
        Secret(H256::ZERO).hash().to_string(),
        "0x66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    );
}
