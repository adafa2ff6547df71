//! The simulation's chain model (`smartraiden::sim::SimChain`) against the real contracts: the
//! same seeded random sequences of contract calls run on anvil (our compiled contracts, every
//! call submitted through `ChainExecutor` as the node submits it, so `msg.sender` is the
//! participant) and on the model, with the same block numbers. For every call both must succeed
//! or both fail with the same error name, the follower's events decoded from anvil must equal the
//! model's, and the touched channel's on-chain views must equal the model's; after each sequence
//! every account's token balance must be its start minus what the model says it paid in plus
//! what the model paid out, and the token network must hold what the model's channels hold.
//!
//! A failure names its sequence's seed. Reproduce it alone with
//! `SIM_DIFF_SEED=<seed> SIM_DIFF_SEQUENCES=1 cargo test --test sim_chain_differential`;
//! `SIM_DIFF_SEQUENCES` and `SIM_DIFF_CALLS` scale a run (the coverage check applies to the
//! default run only).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address as EthAddress, U256};
use alloy::signers::local::PrivateKeySigner;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use smartraiden::chain::bindings::{StandardToken, TokenNetwork};
use smartraiden::chain::deploy::{DeployOptions, Deployment, deploy};
use smartraiden::chain::{
    ChainClient, ChainContracts, ChainError, ChainExecutor, ChainFollower, DevChain,
    FollowerConfig, FollowerProgress,
};
use smartraiden::core::io::OnChainBalanceProof;
use smartraiden::core::{ChainEvent, ContractCall, Input};
use smartraiden::crypto::PrivateKey;
use smartraiden::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, Secret,
    Signature, TokenAmount,
};
use smartraiden::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, DisposedLockData, Lock, MerkleTree,
    SignedData, WithdrawData, channel_identifier,
};
use smartraiden::sim::SimChain;

const DEFAULT_SEED: u64 = 0x5eed_0001;
const SEQUENCES: u64 = 40;
const CALLS: u64 = 40;
/// The deployment's punish window (blocks), also the model's.
const PUNISH: u64 = 5;
/// Tokens each account holds before a sequence.
const START_TOKENS: u64 = 1_000_000;
/// Accounts 0–2 are channel participants; account 3 takes part in no channel (a third party).
const ACCOUNTS: usize = 4;
/// The secp256k1 group order, to malleate a signature into its high-`s` twin.
const SECP256K1_ORDER: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

fn eth(a: Address) -> EthAddress {
    EthAddress::from(a.0)
}

/// One anvil for the whole test: the contracts, four funded accounts that approved the token
/// network for everything, and a snapshot every sequence starts from.
struct Fixture {
    chain: DevChain,
    deployment: Deployment,
    token: Address,
    tn: Address,
    signers: Vec<PrivateKeySigner>,
    keys: Vec<PrivateKey>,
}

impl Fixture {
    async fn new() -> Fixture {
        let chain = DevChain::start().await.expect("anvil starts");
        let deployer = chain.client(DevChain::key(0)).await.unwrap();
        let options = DeployOptions {
            punish_block_number: PUNISH,
            ..DeployOptions::default()
        };
        let deployment = deploy(&deployer, &options).await.expect("deploy");
        let tn = deployment.token_network.expect("token network created");
        let mut signers = Vec::new();
        let mut keys = Vec::new();
        for i in 1..=ACCOUNTS as u32 {
            let signer = DevChain::key(i);
            let client = chain.client(signer.clone()).await.unwrap();
            let token = StandardToken::new(deployment.token, deployer.provider());
            deployer
                .send(token.transfer(client.address(), U256::from(START_TOKENS)))
                .await
                .unwrap();
            // An allowance of 2^256-1 is never decremented: the executor sends no approve of
            // its own, so every call is exactly one transaction.
            let token = StandardToken::new(deployment.token, client.provider());
            client.send(token.approve(tn, U256::MAX)).await.unwrap();
            keys.push(PrivateKey::from_bytes(signer.to_bytes().0).unwrap());
            signers.push(signer);
        }
        Fixture {
            token: Address(deployment.token.0.0),
            tn: Address(tn.0.0),
            chain,
            deployment,
            signers,
            keys,
        }
    }
}

/// A payer's balance proof as it stands on chain: its transferred amount (unlocks included)
/// and the locks under its locksroot.
#[derive(Clone, Debug)]
struct KnownProof {
    transferred: TokenAmount,
    locks: Vec<Lock>,
}

impl KnownProof {
    fn locksroot(&self) -> Locksroot {
        tree(&self.locks).root()
    }
}

fn tree(locks: &[Lock]) -> MerkleTree {
    MerkleTree::new(locks.iter().map(Lock::lockhash).collect())
}

/// What the test knows of a channel's current life (from open to settle), learnt from the calls
/// that went through, to make calls that can go through.
#[derive(Clone, Debug, Default)]
struct Known {
    /// Per payer, its proof on chain.
    on_chain: BTreeMap<Address, KnownProof>,
    /// Locks unlocked on chain: (payer, unlocker, lock).
    unlocked: Vec<(Address, Address, Lock)>,
}

/// What a successful close or update puts on chain (the events carry no locks).
struct ProofEffect {
    payer: Address,
    proof: KnownProof,
}

/// A generated call: who sends it, what it is, how to label it, and what it records on success.
struct Generated {
    from: usize,
    call: ContractCall,
    kind: String,
    effect: Option<ProofEffect>,
}

/// Outcome counts per call kind, over the whole run.
#[derive(Default)]
struct Stats {
    outcomes: BTreeMap<String, BTreeMap<String, u32>>,
    calls: u64,
    blocks_mined: u64,
}

impl Stats {
    fn record(&mut self, kind: &str, outcome: &str) {
        *self
            .outcomes
            .entry(kind.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    fn seen(&self, kind: &str, outcome: &str) -> bool {
        self.outcomes
            .get(kind)
            .and_then(|o| o.get(outcome))
            .is_some_and(|n| *n > 0)
    }
}

/// One sequence: fresh executors (their nonce caches must not outlive a revert), a fresh model,
/// a follower from the sequence's first block.
struct Run<'a> {
    fx: &'a Fixture,
    seed: u64,
    rng: ChaCha8Rng,
    execs: Vec<ChainExecutor>,
    model: SimChain,
    follower: ChainFollower,
    /// The chain head: the next transaction lands in `head + 1`.
    head: u64,
    known: BTreeMap<ChannelId, Known>,
    /// Open blocks of earlier epochs per channel (for proofs of a wrong epoch).
    epochs: BTreeMap<ChannelId, Vec<BlockNumber>>,
    /// Every lock secret made so far.
    secrets: Vec<Secret>,
    history: Vec<String>,
    stats: &'a mut Stats,
}

impl<'a> Run<'a> {
    async fn new(fx: &'a Fixture, seed: u64, stats: &'a mut Stats) -> Run<'a> {
        let contracts = ChainContracts::from(&fx.deployment);
        let mut execs = Vec::new();
        for signer in &fx.signers {
            let client = ChainClient::connect(fx.chain.url(), signer.clone())
                .await
                .unwrap();
            execs.push(ChainExecutor::new(Arc::new(client), contracts));
        }
        let head = fx.chain.block_number().await.unwrap();
        let mut config = FollowerConfig::new(
            Address(fx.deployment.registry.0.0),
            Address(fx.deployment.secret_registry.0.0),
            0,
        );
        config.rpc_timeout = Duration::from_secs(10);
        let follower = ChainFollower::new(
            fx.chain.url(),
            config,
            FollowerProgress::after(head, [fx.tn]),
        )
        .unwrap();
        let mut model = SimChain::new();
        model.punish_window = BlockCount(PUNISH);
        model.block = BlockNumber(head);
        assert_eq!(
            model.chain_id,
            ChainId(execs[0].client().chain_id()),
            "the model signs for anvil's chain id"
        );
        model.register_token_network(fx.token, fx.tn);
        Run {
            fx,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            execs,
            model,
            follower,
            head,
            known: BTreeMap::new(),
            epochs: BTreeMap::new(),
            secrets: Vec::new(),
            history: Vec::new(),
            stats,
        }
    }

    fn fail(&self, what: String) -> ! {
        let tail = self.history.len().saturating_sub(25);
        panic!(
            "model and contracts disagree (sequence seed {seed}; reproduce with \
             SIM_DIFF_SEED={seed} SIM_DIFF_SEQUENCES=1):\n{what}\n\
             last calls of the sequence:\n  {}",
            self.history[tail..].join("\n  "),
            seed = self.seed,
        )
    }

    // ------------------------------------------------------------------ randomness

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn h256(&mut self) -> H256 {
        let mut b = [0u8; 32];
        self.rng.fill_bytes(&mut b);
        H256(b)
    }

    fn addr(&self, i: usize) -> Address {
        self.fx.keys[i].address()
    }

    /// A channel pair, in random orientation (the first is the actor): mostly 0–1, so sequences
    /// get deep into one channel's life, sometimes the others.
    fn pick_pair(&mut self) -> (usize, usize) {
        let (a, b) = match self.below(100) {
            0..70 => (0, 1),
            70..85 => (0, 2),
            _ => (1, 2),
        };
        if self.chance(50) { (a, b) } else { (b, a) }
    }

    fn channel_id(&self, a: usize, b: usize) -> ChannelId {
        channel_identifier(self.addr(a), self.addr(b), self.fx.tn)
    }

    /// The binding a signer uses: mostly the channel's current one, sometimes a wrong epoch or
    /// chain.
    fn binding(&mut self, a: usize, b: usize) -> (ChannelBinding, &'static str) {
        let id = self.channel_id(a, b);
        let open = self
            .model
            .channel_view(self.fx.tn, self.addr(a), self.addr(b))
            .open_block_number;
        let right = ChannelBinding {
            channel_identifier: id,
            open_block_number: open,
            chain_id: self.model.chain_id,
        };
        match self.below(100) {
            0..86 => (right, ""),
            86..93 => {
                let earlier = self.epochs.get(&id).and_then(|e| e.last()).copied();
                let open_block_number =
                    earlier.unwrap_or(BlockNumber(open.0.saturating_sub(1 + self.below(3))));
                (
                    ChannelBinding {
                        open_block_number,
                        ..right
                    },
                    " [wrong epoch]",
                )
            }
            93..97 => (
                ChannelBinding {
                    chain_id: ChainId(1),
                    ..right
                },
                " [wrong chain]",
            ),
            _ => (
                ChannelBinding {
                    open_block_number: BlockNumber(open.0 + 1),
                    ..right
                },
                " [next epoch]",
            ),
        }
    }

    /// `signer`'s signature of `data`, or (sometimes) a faulty one.
    fn sign(&mut self, data: &impl SignedData, signer: usize) -> (Signature, &'static str) {
        let good = data.sign(&self.fx.keys[signer]);
        match self.below(100) {
            0..76 => (good, ""),
            76..84 => {
                let other = (signer + 1 + self.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
                (data.sign(&self.fx.keys[other]), " [wrong signer]")
            }
            // ecrecover accepts the high-s twin of a valid signature.
            84..92 => (malleate(good), " [high s]"),
            92..96 => {
                let mut bad = good;
                bad.0[64] = if self.chance(50) { 0 } else { 29 };
                (bad, " [bad v]")
            }
            _ => {
                let mut bad = Signature([0; 65]);
                self.rng.fill_bytes(&mut bad.0[..64]);
                bad.0[64] = 27 + self.below(2) as u8;
                (bad, " [garbage signature]")
            }
        }
    }

    /// A fresh lock: its secret is remembered, registered or not later.
    fn new_lock(&mut self) -> Lock {
        let secret = Secret(self.h256());
        self.secrets.push(secret);
        Lock {
            expiration: BlockNumber((self.head + self.below(25)).saturating_sub(3)),
            amount: TokenAmount::from(1 + self.below(20)),
            secrethash: secret.hash(),
        }
    }

    /// A balance proof of `payer` (partner of `submitter`) with `nonce`: fresh locks or the
    /// ones on chain, mostly small amounts.
    fn balance_proof(
        &mut self,
        payer: usize,
        submitter: usize,
        nonce: u64,
    ) -> (OnChainBalanceProof, KnownProof, String) {
        let id = self.channel_id(payer, submitter);
        let previous = self
            .known
            .get(&id)
            .and_then(|k| k.on_chain.get(&self.addr(payer)))
            .cloned();
        let mut locks = match previous {
            Some(p) if self.chance(50) => p.locks,
            _ => Vec::new(),
        };
        let fresh = if self.chance(80) {
            1 + self.below(3)
        } else {
            0
        };
        for _ in 0..fresh {
            let lock = self.new_lock();
            locks.push(lock);
        }
        let transferred = if self.chance(4) {
            TokenAmount(U256::MAX - U256::from(self.below(10)))
        } else {
            TokenAmount::from(self.below(60))
        };
        let known = KnownProof { transferred, locks };
        let (binding, binding_note) = self.binding(payer, submitter);
        let data = BalanceProofData {
            transferred_amount: transferred,
            locksroot: known.locksroot(),
            nonce: Nonce(nonce),
            additional_hash: self.h256(),
            binding,
        };
        let (signature, sig_note) = self.sign(&data, payer);
        let proof = OnChainBalanceProof {
            transferred_amount: data.transferred_amount,
            locksroot: data.locksroot,
            nonce: data.nonce,
            additional_hash: data.additional_hash,
            signature,
        };
        let note = format!(
            "nonce {nonce}, transferred {transferred}, {} locks{binding_note}{sig_note}",
            known.locks.len()
        );
        (proof, known, note)
    }

    /// An expiration around the block the next transaction lands in.
    fn expiration(&mut self) -> BlockNumber {
        let block = self.head + 1;
        let delta: i64 = [-3, -1, 0, 0, 1, 2, 5, 20, 20][self.below(9) as usize];
        BlockNumber(block.saturating_add_signed(delta))
    }

    // ------------------------------------------------------------------ generation

    fn generate(&mut self) -> Generated {
        let (a, b) = self.pick_pair();
        let state = self
            .model
            .channel_view(self.fx.tn, self.addr(a), self.addr(b))
            .state;
        let roll = self.below(100);
        match state {
            0 => match roll {
                0..85 => self.open(a, b),
                85..88 => self.deposit(a, b),
                88..91 => self.close(a, b),
                91..94 => self.settle(a, b),
                94..96 => self.withdraw(a, b),
                96..98 => self.cooperative_settle(a, b),
                _ => self.register_secret(a),
            },
            1 => match roll {
                0..15 => self.deposit(a, b),
                15..29 => self.withdraw(a, b),
                29..37 => self.cooperative_settle(a, b),
                37..60 => self.close(a, b),
                60..70 => self.register_secret(a),
                70..74 => self.open(a, b),
                74..79 => self.update(a, b),
                79..84 => self.unlock(a, b),
                84..88 => self.settle(a, b),
                88..92 => self.punish(a, b),
                _ => self.deposit(a, b),
            },
            _ => match roll {
                0..18 => self.update(a, b),
                18..42 => {
                    let (a, b) = self.towards_locks(a, b);
                    // As a node does: reveal the secret on chain before unlocking.
                    if self.needs_secret(a, b) && self.chance(60) {
                        self.register_secret(a)
                    } else {
                        self.unlock(a, b)
                    }
                }
                42..56 => self.register_secret(a),
                56..72 => self.settle(a, b),
                72..84 => {
                    let (a, b) = self.towards_unlocked(a, b);
                    self.punish(a, b)
                }
                84..87 => self.close(a, b),
                87..90 => self.deposit(a, b),
                90..93 => self.withdraw(a, b),
                93..96 => self.cooperative_settle(a, b),
                _ => self.open(a, b),
            },
        }
    }

    /// Mostly `(payee, payer)` of the pair such that the payer's proof on chain has locks.
    fn towards_locks(&mut self, a: usize, b: usize) -> (usize, usize) {
        let known = self.known.get(&self.channel_id(a, b));
        let a_has_locks = known
            .and_then(|k| k.on_chain.get(&self.addr(a)))
            .is_some_and(|p| !p.locks.is_empty());
        if a_has_locks && self.chance(80) {
            (b, a)
        } else {
            (a, b)
        }
    }

    /// Whether none of `payer`'s locks on chain can be unlocked by `payee` for want of a
    /// registered secret, but one could be registered in time.
    fn needs_secret(&self, payee: usize, payer: usize) -> bool {
        let next = BlockNumber(self.head + 1);
        let Some(proof) = self
            .known
            .get(&self.channel_id(payee, payer))
            .and_then(|k| k.on_chain.get(&self.addr(payer)))
        else {
            return false;
        };
        let registered_in_time = |l: &Lock| {
            self.model
                .registered_secret(&l.secrethash)
                .is_some_and(|(_, at)| at <= l.expiration)
        };
        !proof.locks.iter().any(registered_in_time)
            && proof.locks.iter().any(|l| {
                l.expiration >= next && self.model.registered_secret(&l.secrethash).is_none()
            })
    }

    /// Mostly `(beneficiary, cheater)` of the pair such that the cheater unlocked a lock of the
    /// beneficiary on chain.
    fn towards_unlocked(&mut self, a: usize, b: usize) -> (usize, usize) {
        let (pa, pb) = (self.addr(a), self.addr(b));
        let b_cheated = self
            .known
            .get(&self.channel_id(a, b))
            .is_some_and(|k| k.unlocked.iter().any(|(p, u, _)| *p == pb && *u == pa));
        if b_cheated && self.chance(85) {
            (b, a)
        } else {
            (a, b)
        }
    }

    fn open(&mut self, a: usize, b: usize) -> Generated {
        let settle_timeout = match self.below(25) {
            0 => 5,
            1 => 2_700_001,
            3..6 => 6,
            _ => 8 + self.below(13),
        };
        let deposit = match self.below(100) {
            0..50 => TokenAmount::ZERO,
            50..52 => TokenAmount(U256::from(1) << 128),
            _ => TokenAmount::from(1 + self.below(100)),
        };
        let partner = if self.chance(3) { a } else { b };
        let kind = if deposit.is_zero() {
            "open"
        } else {
            "open with deposit"
        };
        Generated {
            from: a,
            call: ContractCall::OpenChannel {
                token_network: self.fx.tn,
                partner: self.addr(partner),
                settle_timeout: BlockCount(settle_timeout),
                deposit,
            },
            kind: kind.into(),
            effect: None,
        }
    }

    fn deposit(&mut self, a: usize, b: usize) -> Generated {
        let view = self
            .model
            .channel_view(self.fx.tn, self.addr(a), self.addr(b));
        let total = view.participants[0].0.0 + view.participants[1].0.0;
        let amount = match self.below(100) {
            0..5 => TokenAmount::ZERO,
            // Just over what the channel can take (the model holds no token balances: an amount
            // that passed this check would fail in the token on chain).
            5..8 => TokenAmount(U256::from(u128::MAX) - total + U256::from(1 + self.below(100))),
            _ => TokenAmount::from(1 + self.below(50)),
        };
        Generated {
            from: a,
            call: ContractCall::Deposit {
                token_network: self.fx.tn,
                partner: self.addr(b),
                amount,
            },
            kind: "deposit".into(),
            effect: None,
        }
    }

    fn close(&mut self, a: usize, b: usize) -> Generated {
        if self.chance(30) {
            return Generated {
                from: a,
                call: ContractCall::Close {
                    token_network: self.fx.tn,
                    partner: self.addr(b),
                    balance_proof: None,
                },
                kind: "close without proof".into(),
                effect: None,
            };
        }
        // Nonce 0 with a proof: the contract records none.
        let nonce = if self.chance(4) { 0 } else { 1 + self.below(4) };
        let (proof, known, note) = self.balance_proof(b, a, nonce);
        Generated {
            from: a,
            call: ContractCall::Close {
                token_network: self.fx.tn,
                partner: self.addr(b),
                balance_proof: Some(proof),
            },
            kind: format!("close with proof ({note})"),
            effect: (nonce > 0).then(|| ProofEffect {
                payer: self.addr(b),
                proof: known,
            }),
        }
    }

    fn update(&mut self, a: usize, b: usize) -> Generated {
        let on_chain = self
            .model
            .channel_view(self.fx.tn, self.addr(b), self.addr(a))
            .participants[0]
            .2
            .0;
        let (nonce, which) = match self.below(100) {
            0..70 => (on_chain + 1 + self.below(2), "newer"),
            70..85 => (on_chain, "equal"),
            _ => (on_chain.saturating_sub(1), "older"),
        };
        let (proof, known, note) = self.balance_proof(b, a, nonce);
        Generated {
            from: a,
            call: ContractCall::UpdateBalanceProof {
                token_network: self.fx.tn,
                partner: self.addr(b),
                balance_proof: proof,
            },
            kind: format!("update ({which} nonce; {note})"),
            effect: Some(ProofEffect {
                payer: self.addr(b),
                proof: known,
            }),
        }
    }

    fn unlock(&mut self, a: usize, b: usize) -> Generated {
        let id = self.channel_id(a, b);
        let (payee, payer) = (self.addr(a), self.addr(b));
        let known = self.known.get(&id).cloned().unwrap_or_default();
        let proof = known.on_chain.get(&payer).cloned();
        let already: Vec<Lock> = known
            .unlocked
            .iter()
            .filter(|(p, u, _)| *p == payer && *u == payee)
            .map(|(_, _, l)| *l)
            .collect();
        let (transferred, lock, merkle_proof, note) = match proof {
            Some(p) if !p.locks.is_empty() => {
                let t = tree(&p.locks);
                let roll = self.below(100);
                // Mostly a lock whose secret was registered in time: the unlock can go through.
                let claimable: Vec<usize> = (0..p.locks.len())
                    .filter(|&i| {
                        self.model
                            .registered_secret(&p.locks[i].secrethash)
                            .is_some_and(|(_, at)| at <= p.locks[i].expiration)
                    })
                    .collect();
                let i = if !claimable.is_empty() && self.chance(70) {
                    claimable[self.below(claimable.len() as u64) as usize]
                } else {
                    self.below(p.locks.len() as u64) as usize
                };
                let mut merkle_proof = t.proof(i).expect("index in tree");
                match roll {
                    0..15 if !already.is_empty() => {
                        let lock = already[self.below(already.len() as u64) as usize];
                        let i = p.locks.iter().position(|l| *l == lock);
                        let merkle_proof = i.and_then(|i| t.proof(i)).unwrap_or_default();
                        (p.transferred, lock, merkle_proof, "again")
                    }
                    15..27 => {
                        let off = 1 + self.below(5);
                        let wrong = if self.chance(50) {
                            TokenAmount(p.transferred.0.wrapping_add(U256::from(off)))
                        } else {
                            TokenAmount(p.transferred.0.wrapping_sub(U256::from(off)))
                        };
                        (wrong, p.locks[i], merkle_proof, "wrong transferred amount")
                    }
                    27..39 => {
                        if merkle_proof.is_empty() || self.chance(30) {
                            merkle_proof.push(self.h256());
                        } else {
                            let j = self.below(merkle_proof.len() as u64) as usize;
                            merkle_proof[j].0[self.below(32) as usize] ^= 0x01;
                        }
                        (p.transferred, p.locks[i], merkle_proof, "bad merkle proof")
                    }
                    39..45 => {
                        let lock = self.new_lock();
                        (p.transferred, lock, merkle_proof, "lock not in the tree")
                    }
                    _ => (p.transferred, p.locks[i], merkle_proof, "lock of the proof"),
                }
            }
            _ => {
                let lock = self.new_lock();
                let merkle_proof = (0..self.below(3)).map(|_| self.h256()).collect();
                (
                    TokenAmount::from(self.below(30)),
                    lock,
                    merkle_proof,
                    "no known proof",
                )
            }
        };
        let registered = self.model.registered_secret(&lock.secrethash);
        let secret_note = match registered {
            None => "secret not registered".to_string(),
            Some((_, at)) if at > lock.expiration => "secret registered late".to_string(),
            Some(_) => "secret registered".to_string(),
        };
        Generated {
            from: a,
            call: ContractCall::Unlock {
                token_network: self.fx.tn,
                partner: payer,
                transferred_amount: transferred,
                lock,
                merkle_proof,
            },
            kind: format!("unlock ({note}, {secret_note})"),
            effect: None,
        }
    }

    fn register_secret(&mut self, a: usize) -> Generated {
        // Prefer the secrets of locks on chain that are not registered yet and not expired.
        let next = BlockNumber(self.head + 1);
        let pending: Vec<Secret> = {
            let on_chain: Vec<_> = self
                .known
                .values()
                .flat_map(|k| k.on_chain.values())
                .flat_map(|p| p.locks.iter())
                .filter(|l| l.expiration >= next)
                .map(|l| l.secrethash)
                .collect();
            self.secrets
                .iter()
                .filter(|s| {
                    on_chain.contains(&s.hash())
                        && self.model.registered_secret(&s.hash()).is_none()
                })
                .copied()
                .collect()
        };
        let registered: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| self.model.registered_secret(&s.hash()).is_some())
            .copied()
            .collect();
        let (secret, note) = match self.below(100) {
            0..65 if !pending.is_empty() => (
                pending[self.below(pending.len() as u64) as usize],
                "of a lock on chain",
            ),
            65..80 if !registered.is_empty() => (
                registered[self.below(registered.len() as u64) as usize],
                "again",
            ),
            80..84 => (Secret(H256::ZERO), "zero"),
            _ if !self.secrets.is_empty() && self.chance(70) => {
                let i = self.below(self.secrets.len() as u64) as usize;
                (self.secrets[i], "of any lock")
            }
            _ => (Secret(self.h256()), "unknown"),
        };
        let from = if self.chance(70) {
            a
        } else {
            self.below(ACCOUNTS as u64) as usize
        };
        Generated {
            from,
            call: ContractCall::RegisterSecret { secret },
            kind: format!("register secret ({note})"),
            effect: None,
        }
    }

    fn settle(&mut self, a: usize, b: usize) -> Generated {
        let id = self.channel_id(a, b);
        let known = self.known.get(&id).cloned().unwrap_or_default();
        let side = |who: Address| {
            known
                .on_chain
                .get(&who)
                .map(|p| (p.transferred, p.locksroot()))
                .unwrap_or((TokenAmount::ZERO, Locksroot::default()))
        };
        let (pa, pb) = (self.addr(a), self.addr(b));
        let (mut ta, la) = side(pa);
        let (tb, mut lb) = side(pb);
        let mut note = "right";
        if self.chance(20) {
            note = "wrong balance";
            if self.chance(50) {
                ta = TokenAmount(ta.0.wrapping_add(U256::from(1)));
            } else {
                lb = Locksroot(self.h256());
            }
        }
        let punished = self
            .model
            .channel_view(self.fx.tn, pa, pb)
            .punished_beneficiary
            .is_some();
        Generated {
            from: self.below(ACCOUNTS as u64) as usize,
            call: ContractCall::Settle {
                token_network: self.fx.tn,
                participant1: pa,
                participant1_transferred_amount: ta,
                participant1_locksroot: la,
                participant2: pb,
                participant2_transferred_amount: tb,
                participant2_locksroot: lb,
            },
            kind: format!(
                "settle ({note}{})",
                if punished { ", punished" } else { "" }
            ),
            effect: None,
        }
    }

    fn withdraw(&mut self, a: usize, b: usize) -> Generated {
        let view = self
            .model
            .channel_view(self.fx.tn, self.addr(a), self.addr(b));
        let total = view.participants[0].0.0 + view.participants[1].0.0;
        let total = u64::try_from(total).unwrap_or(u64::MAX / 2);
        let balance = if self.chance(5) {
            total + 1
        } else {
            self.below(total + 1)
        };
        let withdraw = match self.below(100) {
            0..5 => 0,
            5..10 => balance + 1,
            _ => 1 + self.below(balance.max(1)),
        };
        let expiration = self.expiration();
        let (binding, binding_note) = self.binding(a, b);
        let data = WithdrawData {
            participant: self.addr(a),
            participant_balance: TokenAmount::from(balance),
            participant_withdraw: TokenAmount::from(withdraw),
            expiration,
            binding,
        };
        let (mut s1, n1) = self.sign(&data, a);
        let (mut s2, n2) = self.sign(&data, b);
        let swapped = self.chance(4);
        if swapped {
            (s1, s2) = (s2, s1);
        }
        Generated {
            from: self.below(ACCOUNTS as u64) as usize,
            call: ContractCall::Withdraw {
                token_network: self.fx.tn,
                participant: self.addr(a),
                partner: self.addr(b),
                participant_balance: data.participant_balance,
                participant_withdraw: data.participant_withdraw,
                expiration,
                participant_signature: s1,
                partner_signature: s2,
            },
            kind: format!(
                "withdraw ({withdraw} of {balance}, expiration {}{binding_note}{n1}{n2}{})",
                expiration_note(expiration, self.head + 1),
                if swapped { " [swapped]" } else { "" }
            ),
            effect: None,
        }
    }

    fn cooperative_settle(&mut self, a: usize, b: usize) -> Generated {
        let view = self
            .model
            .channel_view(self.fx.tn, self.addr(a), self.addr(b));
        let total = view.participants[0].0.0 + view.participants[1].0.0;
        let total = u64::try_from(total).unwrap_or(u64::MAX / 2);
        let b1 = self.below(total + 1);
        let mut b2 = total - b1;
        let sums = !self.chance(10);
        if !sums {
            b2 += 1;
        }
        let expiration = self.expiration();
        let (binding, binding_note) = self.binding(a, b);
        let data = CooperativeSettleData {
            participant1: self.addr(a),
            participant1_balance: TokenAmount::from(b1),
            participant2: self.addr(b),
            participant2_balance: TokenAmount::from(b2),
            expiration,
            binding,
        };
        let (s1, n1) = self.sign(&data, a);
        let (s2, n2) = self.sign(&data, b);
        Generated {
            from: self.below(ACCOUNTS as u64) as usize,
            call: ContractCall::CooperativeSettle {
                token_network: self.fx.tn,
                participant1: data.participant1,
                participant1_balance: data.participant1_balance,
                participant2: data.participant2,
                participant2_balance: data.participant2_balance,
                expiration,
                participant1_signature: s1,
                participant2_signature: s2,
            },
            kind: format!(
                "cooperative settle ({b1}+{b2}{}, expiration {}{binding_note}{n1}{n2})",
                if sums { "" } else { " [wrong sum]" },
                expiration_note(expiration, self.head + 1),
            ),
            effect: None,
        }
    }

    fn punish(&mut self, a: usize, b: usize) -> Generated {
        let id = self.channel_id(a, b);
        let (beneficiary, cheater) = (self.addr(a), self.addr(b));
        let known = self.known.get(&id).cloned().unwrap_or_default();
        let cheated: Vec<Lock> = known
            .unlocked
            .iter()
            .filter(|(p, u, _)| *p == beneficiary && *u == cheater)
            .map(|(_, _, l)| *l)
            .collect();
        let (lockhash, note) = if !cheated.is_empty() && self.chance(85) {
            let lock = cheated[self.below(cheated.len() as u64) as usize];
            (lock.lockhash(), "an unlocked lock")
        } else if let Some(p) = known
            .on_chain
            .get(&beneficiary)
            .filter(|p| !p.locks.is_empty())
        {
            let lock = p.locks[self.below(p.locks.len() as u64) as usize];
            (lock.lockhash(), "a lock on chain")
        } else {
            (self.h256(), "a random lockhash")
        };
        let (binding, binding_note) = self.binding(a, b);
        let data = DisposedLockData {
            lockhash,
            binding,
            additional_hash: self.h256(),
        };
        let (signature, sig_note) = self.sign(&data, b);
        Generated {
            from: a,
            call: ContractCall::PunishObsoleteUnlock {
                token_network: self.fx.tn,
                partner: cheater,
                lockhash,
                additional_hash: data.additional_hash,
                signature,
            },
            kind: format!("punish ({note}{binding_note}{sig_note})"),
            effect: None,
        }
    }

    // ------------------------------------------------------------------ execution

    /// Settle blocks of the closed channels.
    fn settle_blocks(&self) -> Vec<u64> {
        [(0, 1), (0, 2), (1, 2)]
            .iter()
            .map(|&(a, b)| {
                self.model
                    .channel_view(self.fx.tn, self.addr(a), self.addr(b))
            })
            .filter(|v| v.state == 2)
            .map(|v| v.settle_block_number.0)
            .collect()
    }

    /// Whether a closed channel waits in its punish window (calls there mostly fail as too
    /// late or too early: worth skipping often).
    fn waiting_to_settle(&self) -> bool {
        let next = self.head + 1;
        self.settle_blocks()
            .iter()
            .any(|&s| next > s && next <= s + PUNISH)
    }

    /// Mines a few blocks, or so that the next transaction lands on a window boundary of a
    /// closed channel: the last block of its settle window or the first after it, the last
    /// block of its punish window or the first settle block.
    async fn mine(&mut self) {
        let closed = self.settle_blocks();
        let next = self.head + 1;
        let mut blocks = 1 + self.below(4);
        if !closed.is_empty() {
            let settle_block = closed[self.below(closed.len() as u64) as usize];
            let target = if next <= settle_block {
                match self.below(10) {
                    0..4 => Some(settle_block),
                    4..6 => Some(settle_block + 1),
                    _ => None,
                }
            } else if next <= settle_block + PUNISH {
                match self.below(10) {
                    0..3 => Some(settle_block + PUNISH),
                    3..9 => Some(settle_block + PUNISH + 1),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(target) = target {
                blocks = target.saturating_sub(next);
            }
        }
        if blocks == 0 {
            return;
        }
        self.fx.chain.mine(blocks).await.unwrap();
        self.head += blocks;
        self.model.block = BlockNumber(self.head);
        self.stats.blocks_mined += blocks;
        self.history
            .push(format!("mined {blocks} blocks: head {}", self.head));
    }

    /// Everything the follower decodes up to the head.
    async fn chain_events(&mut self) -> Vec<ChainEvent> {
        let mut events = Vec::new();
        loop {
            let inputs = self
                .follower
                .poll_once()
                .await
                .unwrap_or_else(|e| self.fail(format!("follower poll failed: {e}")));
            events.extend(inputs.into_iter().filter_map(|i| match i {
                Input::ContractReceive(e) => Some(e),
                _ => None,
            }));
            if !self.follower.behind() {
                return events;
            }
        }
    }

    async fn submit(&mut self, g: Generated) {
        let block = self.head + 1;
        let sender = self.addr(g.from);
        let pair = pair_of(&g.call, sender);
        let punished_before = pair.is_some_and(|(p1, p2)| {
            self.model
                .channel_view(self.fx.tn, p1, p2)
                .punished_beneficiary
                .is_some()
        });
        let model = self
            .model
            .execute(sender, g.call.clone(), BlockNumber(block));
        let chain = match self.execs[g.from].execute(&g.call).await {
            Ok(outcome) => {
                if outcome.block_number != block {
                    self.fail(format!(
                        "{}: mined in block {}, expected {block}",
                        g.kind, outcome.block_number
                    ));
                }
                self.head = block;
                self.model.block = BlockNumber(block);
                Ok(())
            }
            Err(ChainError::ContractRevert { error, .. }) => Err(error),
            Err(other) => self.fail(format!(
                "{} from account {}: the chain failed otherwise than by a named revert: {other}\ncall: {:?}",
                g.kind, g.from, g.call
            )),
        };
        let outcome = match &model {
            Ok(events) if events.is_empty() => "ok, no log".to_string(),
            Ok(_) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        self.history.push(format!(
            "block {block}, account {}: {} → model {outcome}, chain {}",
            g.from,
            g.kind,
            match &chain {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            }
        ));
        match (&model, &chain) {
            (Ok(_), Ok(())) => {}
            (Err(m), Err(c)) if m == c => {}
            _ => self.fail(format!(
                "{} from account {}: model {model:?}, chain {chain:?}\ncall: {:?}",
                g.kind, g.from, g.call
            )),
        }
        let chain_events = self.chain_events().await;
        let model_events = model.clone().unwrap_or_default();
        if chain_events != model_events {
            self.fail(format!(
                "{}: events differ\n  model: {model_events:?}\n  chain: {chain_events:?}",
                g.kind
            ));
        }
        let head = self.fx.chain.block_number().await.unwrap();
        if head != self.head {
            self.fail(format!(
                "{}: chain head {head}, expected {} (a failed call mines nothing)",
                g.kind, self.head
            ));
        }
        if let Some((p1, p2)) = pair {
            self.compare_views(p1, p2, &g.kind).await;
        }
        let kind = g.kind.split(" (").next().unwrap_or(&g.kind).to_string();
        self.stats.calls += 1;
        self.stats.record(&kind, &outcome);
        if std::env::var_os("SIM_DIFF_DETAIL").is_some() {
            self.stats.record(&g.kind, &outcome);
        }
        if kind == "settle" && punished_before {
            self.stats.record("settle after a punish", &outcome);
        }
        if let ContractCall::Withdraw { expiration, .. }
        | ContractCall::CooperativeSettle { expiration, .. } = &g.call
            && expiration.0 == block
        {
            self.stats
                .record(&format!("{kind} in its expiration block"), &outcome);
        }
        if let Ok(events) = model {
            self.learn(&events, sender, g.effect);
        }
    }

    /// Records what the successful call changed.
    fn learn(&mut self, events: &[ChainEvent], sender: Address, effect: Option<ProofEffect>) {
        let mut effect = effect;
        for event in events {
            match event {
                ChainEvent::ChannelOpened {
                    channel_identifier,
                    open_block_number,
                    ..
                } => {
                    self.known.insert(*channel_identifier, Known::default());
                    self.epochs
                        .entry(*channel_identifier)
                        .or_default()
                        .push(*open_block_number);
                }
                ChainEvent::ChannelWithdraw {
                    channel_identifier,
                    open_block_number,
                    ..
                } => self
                    .epochs
                    .entry(*channel_identifier)
                    .or_default()
                    .push(*open_block_number),
                ChainEvent::ChannelClosed {
                    channel_identifier, ..
                }
                | ChainEvent::BalanceProofUpdated {
                    channel_identifier, ..
                } => {
                    if let Some(e) = effect.take() {
                        self.known
                            .entry(*channel_identifier)
                            .or_default()
                            .on_chain
                            .insert(e.payer, e.proof);
                    }
                }
                ChainEvent::ChannelUnlocked {
                    channel_identifier,
                    payer_participant,
                    lockhash,
                    transferred_amount,
                } => {
                    let known = self.known.entry(*channel_identifier).or_default();
                    if let Some(p) = known.on_chain.get_mut(payer_participant) {
                        p.transferred = *transferred_amount;
                        if let Some(lock) = p.locks.iter().find(|l| l.lockhash() == *lockhash) {
                            known.unlocked.push((*payer_participant, sender, *lock));
                        }
                    }
                }
                ChainEvent::ChannelSettled { channel_identifier }
                | ChainEvent::ChannelCooperativeSettled { channel_identifier } => {
                    self.known.remove(channel_identifier);
                }
                _ => {}
            }
        }
    }

    /// The contract's views of the pair against the model's.
    async fn compare_views(&self, p1: Address, p2: Address, after: &str) {
        let tn = TokenNetwork::new(eth(self.fx.tn), self.fx.chain.provider());
        let info = tn.getChannelInfo(eth(p1), eth(p2)).call().await.unwrap();
        let side1 = tn
            .getParticipantInfo(eth(p1), eth(p2))
            .call()
            .await
            .unwrap();
        let side2 = tn
            .getParticipantInfo(eth(p2), eth(p1))
            .call()
            .await
            .unwrap();
        let punished = tn
            .getPunishedBeneficiary(eth(p1), eth(p2))
            .call()
            .await
            .unwrap();
        let chain = (
            info.state,
            info.settle_timeout,
            info.settle_block_number,
            info.open_block_number,
            [
                (side1.participant_deposit, side1.balance_hash.0, side1.nonce),
                (side2.participant_deposit, side2.balance_hash.0, side2.nonce),
            ],
            (punished != EthAddress::ZERO).then_some(Address(punished.0.0)),
        );
        let v = self.model.channel_view(self.fx.tn, p1, p2);
        let model = (
            v.state,
            v.settle_timeout.0,
            v.settle_block_number.0,
            v.open_block_number.0,
            v.participants.map(|(d, h, n)| (d.0, h, n.0)),
            v.punished_beneficiary,
        );
        if chain != model {
            self.fail(format!(
                "after {after}: the channel of {p1} and {p2} differs\n  model: {model:?}\n  chain: {chain:?}"
            ));
        }
    }

    /// Token balances, the token network's holdings, every pair's views and the unlocked locks.
    async fn compare_end(&mut self) {
        let token = StandardToken::new(self.fx.deployment.token, self.fx.chain.provider());
        for i in 0..ACCOUNTS {
            let who = self.addr(i);
            let on_chain = token.balanceOf(eth(who)).call().await.unwrap();
            let paid_in = self.model.paid_in.get(&who).copied().unwrap_or_default();
            let paid_out = self.model.payouts.get(&who).copied().unwrap_or_default();
            let expected = U256::from(START_TOKENS) - paid_in.0 + paid_out.0;
            if on_chain != expected {
                self.fail(format!(
                    "account {i}: {on_chain} tokens on chain, the model expects {START_TOKENS} − \
                     {paid_in} paid in + {paid_out} paid out = {expected}"
                ));
            }
        }
        let held = token.balanceOf(eth(self.fx.tn)).call().await.unwrap();
        let model_held = self.model.token_network_balance(self.fx.tn);
        if held != model_held.0 {
            self.fail(format!(
                "the token network holds {held} tokens, the model's channels {model_held}"
            ));
        }
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            self.compare_views(self.addr(a), self.addr(b), "the sequence")
                .await;
        }
        let tn = TokenNetwork::new(eth(self.fx.tn), self.fx.chain.provider());
        let unlocked: Vec<(Address, Address, Lock)> = self
            .known
            .values()
            .flat_map(|k| k.unlocked.iter().copied())
            .collect();
        for (payer, payee, lock) in unlocked {
            let on_chain = tn
                .queryUnlockedLocks(eth(payer), eth(payee), lock.lockhash().0.into())
                .call()
                .await
                .unwrap();
            let model = self
                .model
                .lock_unlocked(self.fx.tn, payer, payee, lock.lockhash());
            if on_chain != model {
                self.fail(format!(
                    "lock {} of {payer} unlocked by {payee}: chain says {on_chain}, model {model}",
                    lock.lockhash()
                ));
            }
        }
    }

    async fn sequence(&mut self, calls: u64) {
        let mut done = 0;
        while done < calls {
            let mine = if self.waiting_to_settle() { 35 } else { 10 };
            if self.chance(mine) {
                self.mine().await;
                continue;
            }
            let g = self.generate();
            self.submit(g).await;
            done += 1;
        }
        self.compare_end().await;
    }
}

/// The channel pair a call concerns (for comparing views), if any.
fn pair_of(call: &ContractCall, sender: Address) -> Option<(Address, Address)> {
    match call {
        ContractCall::OpenChannel { partner, .. }
        | ContractCall::Deposit { partner, .. }
        | ContractCall::Close { partner, .. }
        | ContractCall::UpdateBalanceProof { partner, .. }
        | ContractCall::Unlock { partner, .. }
        | ContractCall::PunishObsoleteUnlock { partner, .. } => Some((sender, *partner)),
        ContractCall::Withdraw {
            participant,
            partner,
            ..
        } => Some((*participant, *partner)),
        ContractCall::Settle {
            participant1,
            participant2,
            ..
        }
        | ContractCall::CooperativeSettle {
            participant1,
            participant2,
            ..
        } => Some((*participant1, *participant2)),
        ContractCall::RegisterSecret { .. } => None,
    }
}

fn expiration_note(expiration: BlockNumber, block: u64) -> String {
    match expiration.0.cmp(&block) {
        std::cmp::Ordering::Less => format!("{expiration} [expired]"),
        std::cmp::Ordering::Equal => format!("{expiration} [this block]"),
        std::cmp::Ordering::Greater => expiration.to_string(),
    }
}

/// The high-`s` twin of a signature: `(r, n − s, v ^ 1)` recovers the same signer.
fn malleate(sig: Signature) -> Signature {
    let n = U256::from_str_radix(SECP256K1_ORDER, 16).expect("the order parses");
    let s = U256::from_be_slice(&sig.0[32..64]);
    let mut out = sig;
    out.0[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    out.0[64] = if sig.0[64] == 27 { 28 } else { 27 };
    out
}

/// What the default run must reach: each call kind both going through and failing in the ways
/// the model has to get right. A generator change that stops reaching one fails here.
const MUST_SEE: &[(&str, &str)] = &[
    ("open", "ok"),
    ("open", "ChannelAlreadyExists"),
    ("open with deposit", "ok"),
    ("deposit", "ok"),
    ("deposit", "ZeroAmount"),
    ("close without proof", "ok"),
    ("close with proof", "ok"),
    ("close with proof", "InvalidSignature"),
    ("update", "ok"),
    ("update", "NonceNotHigher"),
    ("unlock", "ok"),
    ("unlock", "BalanceHashMismatch"),
    ("unlock", "SecretNotRevealed"),
    ("unlock", "LockAlreadyUnlocked"),
    ("register secret", "ok"),
    ("register secret", "ok, no log"),
    ("settle", "ok"),
    ("settle", "SettleTooEarly"),
    ("settle", "BalanceHashMismatch"),
    ("withdraw", "ok"),
    ("withdraw", "RequestExpired"),
    ("withdraw", "InvalidSignature"),
    ("withdraw in its expiration block", "ok"),
    ("cooperative settle", "ok"),
    ("cooperative settle", "RequestExpired"),
    ("cooperative settle", "InvalidSignature"),
    ("cooperative settle in its expiration block", "ok"),
    ("punish", "ok"),
    ("punish", "LockNotUnlocked"),
    ("settle after a punish", "ok"),
];

#[tokio::test]
async fn the_model_agrees_with_the_contracts_call_for_call() {
    let _ = env_logger::builder().is_test(true).try_init();
    let seed = env_u64("SIM_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let sequences = env_u64("SIM_DIFF_SEQUENCES").unwrap_or(SEQUENCES);
    let calls = env_u64("SIM_DIFF_CALLS").unwrap_or(CALLS);
    let default_run = sequences == SEQUENCES && calls == CALLS && seed == DEFAULT_SEED;
    let started = Instant::now();
    let fx = Fixture::new().await;
    let mut stats = Stats::default();
    for i in 0..sequences {
        let snapshot = fx.chain.snapshot().await.unwrap();
        let mut run = Run::new(&fx, seed.wrapping_add(i), &mut stats).await;
        run.sequence(calls).await;
        fx.chain.revert(snapshot).await.unwrap();
    }
    eprintln!(
        "{sequences} sequences × {calls} calls (seeds {seed}..{}): {} calls, {} blocks mined, {:.1} s",
        seed.wrapping_add(sequences - 1),
        stats.calls,
        stats.blocks_mined,
        started.elapsed().as_secs_f64()
    );
    for (kind, outcomes) in &stats.outcomes {
        eprintln!("  {kind}: {outcomes:?}");
    }
    if default_run {
        let missing: Vec<_> = MUST_SEE
            .iter()
            .filter(|(kind, outcome)| !stats.seen(kind, outcome))
            .collect();
        assert!(
            missing.is_empty(),
            "the default run no longer reaches {missing:?}: the comparison lost coverage"
        );
    }
}
