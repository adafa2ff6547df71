//! The core's on-chain claims against the real contracts on anvil: a node holding several
//! locks of a payer that went silent closes, and every lock is unlocked on chain with the
//! amounts and Merkle proofs the contract expects, to the exact payout. The payer is played by
//! hand with its key; the node is a `Core` fed by the real chain follower, its transactions
//! submitted by the real executor (failures fed back as the node's shell does).

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use smartraiden::chain::bindings::StandardToken;
use smartraiden::chain::deploy::{DeployOptions, Deployment, deploy};
use smartraiden::chain::{
    ChainContracts, ChainExecutor, ChainFollower, DevChain, FollowerConfig, FollowerProgress,
};
use smartraiden::core::channel::EndState;
use smartraiden::core::{Action, ChainEvent, ContractCall, Core, Ctx, Input, NodeConfig, Output};
use smartraiden::crypto::PrivateKey;
use smartraiden::messages::{BalanceProof, MediatedTransfer, Message, RevealSecret, encode_signed};
use smartraiden::primitives::{
    Address, BlockCount, BlockNumber, ChainId, H256, Nonce, Secret, TokenAmount,
};
use smartraiden::proofs::{Lock, channel_identifier};

const SETTLE_TIMEOUT: u64 = 20;
const PUNISH: u64 = 5;

struct World {
    chain: DevChain,
    deployment: Deployment,
    payer: PrivateKey,
    payer_exec: ChainExecutor,
    node: Core,
    node_exec: ChainExecutor,
    follower: ChainFollower,
    /// Every transaction the node submitted, with whether it went through.
    submitted: Vec<(ContractCall, bool)>,
    rng: rand_chacha::ChaCha8Rng,
}

impl World {
    async fn new() -> World {
        let _ = env_logger::builder().is_test(true).try_init();
        let chain = DevChain::start().await.expect("anvil starts");
        let deployer = chain.client(DevChain::key(0)).await.unwrap();
        let options = DeployOptions {
            punish_block_number: PUNISH,
            ..DeployOptions::default()
        };
        let deployment = deploy(&deployer, &options).await.expect("deploy");
        let mut parties = Vec::new();
        for i in 1..=2 {
            let signer = DevChain::key(i);
            let key = PrivateKey::from_bytes(signer.to_bytes().0).unwrap();
            let client = chain.client(signer).await.unwrap();
            let token = StandardToken::new(deployment.token, deployer.provider());
            deployer
                .send(token.transfer(client.address(), U256::from(1_000u64)))
                .await
                .unwrap();
            let exec = ChainExecutor::new(Arc::new(client), ChainContracts::from(&deployment));
            parties.push((key, exec));
        }
        let (node_key, node_exec) = parties.pop().unwrap();
        let (payer, payer_exec) = parties.pop().unwrap();
        let mut config = FollowerConfig::new(
            Address(deployment.registry.0.0),
            Address(deployment.secret_registry.0.0),
            0,
        );
        config.poll_interval = Duration::from_millis(20);
        let follower =
            ChainFollower::new(chain.url(), config, FollowerProgress::from_block(0)).unwrap();
        let mut node_config = NodeConfig::new(ChainId(node_exec.client().chain_id()));
        node_config.reveal_timeout = BlockCount(4);
        use rand_core::SeedableRng;
        World {
            chain,
            deployment,
            payer,
            payer_exec,
            node: Core::new(node_key, node_config),
            node_exec,
            follower,
            submitted: Vec::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(1),
        }
    }

    fn token(&self) -> Address {
        Address(self.deployment.token.0.0)
    }

    fn act(&mut self, action: Action) -> Vec<Output> {
        let mut ctx = Ctx {
            now_ms: 0,
            rng: &mut self.rng,
        };
        self.node.act(action, &mut ctx).expect("action accepted")
    }

    fn step(&mut self, input: Input) -> Vec<Output> {
        let mut ctx = Ctx {
            now_ms: 0,
            rng: &mut self.rng,
        };
        self.node.step(input, &mut ctx)
    }

    /// Carries out the node's outputs as its shell would, until the node has nothing more to
    /// say: transactions are submitted (failures fed back), the chain followed, messages to
    /// the silent payer dropped.
    async fn settle_down(&mut self, mut outputs: Vec<Output>) {
        loop {
            for o in std::mem::take(&mut outputs) {
                if let Output::ContractSend(call) = o {
                    match self.node_exec.execute(&call).await {
                        Ok(_) => self.submitted.push((call, true)),
                        Err(e) => {
                            self.submitted.push((call.clone(), false));
                            let failure = e.as_failure();
                            outputs.extend(self.step(Input::ContractFailed { call, failure }));
                        }
                    }
                }
            }
            let inputs = self.follow().await;
            for input in inputs {
                outputs.extend(self.step(input));
            }
            if outputs
                .iter()
                .all(|o| !matches!(o, Output::ContractSend(_)))
            {
                return;
            }
        }
    }

    async fn follow(&mut self) -> Vec<Input> {
        let mut all = Vec::new();
        loop {
            all.extend(self.follower.poll_once().await.expect("poll"));
            if !self.follower.behind() {
                return all;
            }
        }
    }

    /// Mines one block and lets the node react.
    async fn mine(&mut self) {
        self.chain.mine(1).await.unwrap();
        self.settle_down(Vec::new()).await;
    }

    async fn balance(&self, who: Address) -> u64 {
        let b = self
            .node_exec
            .token_balance(self.token(), who)
            .await
            .unwrap();
        b.to_u128().unwrap() as u64
    }
}

#[tokio::test]
async fn every_lock_of_a_silent_payer_is_unlocked_on_the_real_contracts() {
    let mut w = World::new().await;
    let (payer, us) = (w.payer.address(), w.node.address());
    let tn = w
        .payer_exec
        .token_network_of(w.token())
        .await
        .unwrap()
        .unwrap();
    // The payer opens with 100; we deposit nothing.
    w.payer_exec
        .execute(&ContractCall::OpenChannel {
            token_network: tn,
            partner: us,
            settle_timeout: BlockCount(SETTLE_TIMEOUT),
            deposit: TokenAmount::from(100u64),
        })
        .await
        .unwrap();
    w.settle_down(Vec::new()).await;
    let id = channel_identifier(payer, us, tn);
    let open_block = w
        .node
        .state
        .channel(&id)
        .expect("the node knows the channel")
        .open_block_number;
    let chain_id = ChainId(w.node_exec.client().chain_id());

    // Two locks toward us, signed by the payer, then both secrets revealed to us.
    let block = w.node.state.block;
    let secrets = [Secret(H256([11; 32])), Secret(H256([22; 32]))];
    let mut locks = Vec::new();
    for (i, (secret, amount)) in secrets.iter().zip([10u64, 20]).enumerate() {
        let lock = Lock {
            expiration: block.plus(BlockCount(SETTLE_TIMEOUT - 2)),
            amount: TokenAmount::from(amount),
            secrethash: secret.hash(),
        };
        locks.push(lock);
        let m = Message::MediatedTransfer(MediatedTransfer {
            balance_proof: BalanceProof {
                channel_identifier: id,
                open_block_number: open_block,
                nonce: Nonce(i as u64 + 1),
                transferred_amount: TokenAmount::ZERO,
                locksroot: EndState::root_of(&locks),
            },
            lock,
            initiator: payer,
            target: us,
            fee: TokenAmount::ZERO,
        });
        let bytes = encode_signed(m, &w.payer, chain_id).bytes;
        let out = w.step(Input::Receive(bytes));
        w.settle_down(out).await;
    }
    for secret in secrets {
        let bytes = encode_signed(
            Message::RevealSecret(RevealSecret { secret }),
            &w.payer,
            chain_id,
        )
        .bytes;
        let out = w.step(Input::Receive(bytes));
        w.settle_down(out).await;
    }
    assert_eq!(w.node.state.channel(&id).unwrap().partner.secrets.len(), 2);

    // The payer never unlocks. We register both secrets, then close: both unlocks go out
    // together, the second carrying the amount the first leaves on chain.
    let before = (w.balance(payer).await, w.balance(us).await);
    for secret in secrets {
        let out = w.act(Action::RegisterSecret { secret });
        w.settle_down(out).await;
    }
    let out = w.act(Action::Close { channel: id });
    w.settle_down(out).await;
    let settle_after =
        BlockNumber(w.chain.block_number().await.unwrap() + SETTLE_TIMEOUT + PUNISH + 2);
    while w.node.state.channel(&id).is_some() {
        assert!(
            w.chain.block_number().await.unwrap() <= settle_after.0 + 5,
            "the channel never settled; the node submitted {:?}",
            w.submitted
        );
        w.mine().await;
    }
    let unlocks: Vec<&(ContractCall, bool)> = w
        .submitted
        .iter()
        .filter(|(c, _)| matches!(c, ContractCall::Unlock { .. }))
        .collect();
    assert_eq!(unlocks.len(), 2, "one unlock per lock: {:?}", w.submitted);
    assert!(unlocks.iter().all(|(_, ok)| *ok), "{unlocks:?}");
    assert!(
        w.submitted.iter().all(|(_, ok)| *ok),
        "no transaction of the node failed: {:?}",
        w.submitted
    );
    assert_eq!(w.balance(us).await - before.1, 30, "we are paid both locks");
    assert_eq!(
        w.balance(payer).await - before.0,
        70,
        "the payer gets the rest"
    );
    // Both unlocks left their logs on chain.
    let unlocked = w
        .follow_all_from(0)
        .await
        .into_iter()
        .filter(|e| matches!(e, ChainEvent::ChannelUnlocked { .. }))
        .count();
    assert_eq!(unlocked, 2);
}

impl World {
    /// Every event of our contracts from `block` on (a fresh follower).
    async fn follow_all_from(&self, block: u64) -> Vec<ChainEvent> {
        let mut config = FollowerConfig::new(
            Address(self.deployment.registry.0.0),
            Address(self.deployment.secret_registry.0.0),
            0,
        );
        config.poll_interval = Duration::from_millis(20);
        let mut f = ChainFollower::new(
            self.chain.url(),
            config,
            FollowerProgress::from_block(block),
        )
        .unwrap();
        let mut events = Vec::new();
        loop {
            for i in f.poll_once().await.unwrap() {
                if let Input::ContractReceive(e) = i {
                    events.push(e);
                }
            }
            if !f.behind() {
                return events;
            }
        }
    }
}
