//! [`Mesh`]: nodes wired back to back with instant, lossless delivery and no clock — the
//! protocol's CPU cost alone (benches), without the simulation's scheduling and persistence.

use crate::core::{Action, ChainEvent, Core, Ctx, Input, NodeConfig, Output};
use crate::crypto::PrivateKey;
use crate::primitives::{Address, BlockCount, BlockNumber, ChainId, TokenAmount};
use crate::proofs::channel_identifier;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::{BTreeMap, VecDeque};

/// Cores exchanging messages directly.
pub struct Mesh {
    /// The nodes.
    pub cores: Vec<Core>,
    index: BTreeMap<Address, usize>,
    rng: ChaCha8Rng,
    /// The token of the one token network.
    pub token: Address,
}

impl Mesh {
    /// `n` nodes in a line `0 — 1 — … — n-1`, each channel funded with `deposit` on both sides.
    pub fn line(n: usize, deposit: TokenAmount) -> Mesh {
        let token = Address([0xaa; 20]);
        let tn = Address([0xbb; 20]);
        let keys: Vec<PrivateKey> = (0..n)
            .map(|i| PrivateKey::from_bytes([i as u8 + 1; 32]).expect("valid"))
            .collect();
        let mut events = vec![ChainEvent::TokenNetworkCreated {
            token,
            token_network: tn,
            punish_window: BlockCount(5),
        }];
        for w in keys.windows(2) {
            let (a, b) = (w[0].address(), w[1].address());
            let id = channel_identifier(a, b, tn);
            events.push(ChainEvent::ChannelOpened {
                token_network: tn,
                channel_identifier: id,
                participant1: a,
                participant2: b,
                settle_timeout: BlockCount(500),
                open_block_number: BlockNumber(1),
            });
            for p in [a, b] {
                events.push(ChainEvent::ChannelDeposit {
                    channel_identifier: id,
                    participant: p,
                    total_deposit: deposit,
                });
            }
        }
        let mut mesh = Mesh {
            cores: keys
                .iter()
                .map(|k| Core::new(k.clone(), NodeConfig::new(ChainId(31337))))
                .collect(),
            index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.address(), i))
                .collect(),
            rng: ChaCha8Rng::seed_from_u64(7),
            token,
        };
        for i in 0..n {
            for e in &events {
                mesh.input(i, Input::ContractReceive(e.clone()));
            }
            mesh.input(i, Input::XmppLink(true));
            mesh.input(i, Input::ChainHead(BlockNumber(2)));
            mesh.input(i, Input::Block(BlockNumber(2)));
        }
        mesh
    }

    /// Node `i`'s address.
    pub fn address(&self, i: usize) -> Address {
        self.cores[i].address()
    }

    fn input(&mut self, i: usize, input: Input) -> Vec<Output> {
        self.cores[i].step(
            input,
            &mut Ctx {
                now_ms: 0,
                rng: &mut self.rng,
            },
        )
    }

    /// Runs an action on node `i` and delivers every resulting message until none is left;
    /// returns the number of messages delivered.
    pub fn act(&mut self, i: usize, action: Action) -> usize {
        let out = self.cores[i]
            .act(
                action,
                &mut Ctx {
                    now_ms: 0,
                    rng: &mut self.rng,
                },
            )
            .expect("action accepted");
        let mut queue: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let mut delivered = 0;
        self.enqueue(&mut queue, out);
        while let Some((to, bytes)) = queue.pop_front() {
            delivered += 1;
            let out = self.input(to, Input::Receive(bytes));
            self.enqueue(&mut queue, out);
        }
        delivered
    }

    fn enqueue(&self, queue: &mut VecDeque<(usize, Vec<u8>)>, out: Vec<Output>) {
        for o in out {
            if let Output::Send { to, bytes } = o {
                queue.push_back((self.index[&to], bytes));
            }
        }
    }
}
