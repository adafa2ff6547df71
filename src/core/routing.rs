//! The token network's channel graph and route finding: shortest by hops, then by fees,
//! respecting capacity and reachability. Every route starts with a different channel of ours,
//! so a disposed lock falls back to the next one.

use crate::primitives::{Address, ChannelId, TokenAmount};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A channel as anyone sees it on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// One participant.
    pub participant1: Address,
    /// The other.
    pub participant2: Address,
    /// Deposit of participant1.
    pub deposit1: TokenAmount,
    /// Deposit of participant2.
    pub deposit2: TokenAmount,
}

impl Edge {
    /// Most that can move across it in one direction: the total deposit (balances are
    /// private, so this is an upper bound; a mediator short of it disposes the lock).
    pub fn capacity(&self) -> TokenAmount {
        self.deposit1.saturating_add(self.deposit2)
    }
}

/// Most channels of others kept in one token network's graph (each costs every commit; a
/// channel of ours is always kept).
pub const MAX_EDGES: usize = 20_000;
/// Most channels of others kept while neither side has deposited (opening one costs only
/// gas, so they are the cheapest to spam); the oldest are forgotten first.
pub const MAX_UNFUNDED: usize = 1_024;

/// The open channels of one token network, bounded: a channel joins the routable edges once
/// one side deposits, and others' channels beyond [`MAX_EDGES`] are not kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelGraph {
    edges: BTreeMap<ChannelId, Edge>,
    adjacency: BTreeMap<Address, BTreeSet<(Address, ChannelId)>>,
    /// Channels of others opened without a deposit yet, oldest first.
    unfunded: VecDeque<(ChannelId, Address, Address)>,
}

impl ChannelGraph {
    /// Adds an opened channel; `ours` when we are a participant (always kept).
    pub fn add(&mut self, id: ChannelId, p1: Address, p2: Address, ours: bool) {
        if ours {
            self.insert_edge(id, p1, p2);
            return;
        }
        if self.unfunded.len() >= MAX_UNFUNDED {
            self.unfunded.pop_front();
        }
        self.unfunded.push_back((id, p1, p2));
    }

    fn insert_edge(&mut self, id: ChannelId, p1: Address, p2: Address) {
        self.edges.insert(
            id,
            Edge {
                participant1: p1,
                participant2: p2,
                deposit1: TokenAmount::ZERO,
                deposit2: TokenAmount::ZERO,
            },
        );
        self.adjacency.entry(p1).or_default().insert((p2, id));
        self.adjacency.entry(p2).or_default().insert((p1, id));
    }

    /// Records a participant's total deposit (a first deposit makes a channel routable).
    pub fn set_deposit(&mut self, id: ChannelId, participant: Address, total: TokenAmount) {
        if !self.edges.contains_key(&id)
            && !total.is_zero()
            && let Some(i) = self.unfunded.iter().position(|(c, ..)| *c == id)
        {
            let (_, p1, p2) = self.unfunded.remove(i).expect("found");
            if self.edges.len() >= MAX_EDGES {
                log::warn!("channel graph full ({MAX_EDGES} channels): not routing over {id}");
                return;
            }
            self.insert_edge(id, p1, p2);
        }
        if let Some(e) = self.edges.get_mut(&id) {
            if e.participant1 == participant {
                e.deposit1 = total;
            } else if e.participant2 == participant {
                e.deposit2 = total;
            }
        }
    }

    /// Removes a closed or settled channel.
    pub fn remove(&mut self, id: ChannelId) {
        self.unfunded.retain(|(c, ..)| *c != id);
        if let Some(e) = self.edges.remove(&id) {
            for (a, b) in [
                (e.participant1, e.participant2),
                (e.participant2, e.participant1),
            ] {
                if let Some(s) = self.adjacency.get_mut(&a) {
                    s.remove(&(b, id));
                    if s.is_empty() {
                        self.adjacency.remove(&a);
                    }
                }
            }
        }
    }

    /// The channel, if routable.
    pub fn edge(&self, id: &ChannelId) -> Option<&Edge> {
        self.edges.get(id)
    }

    /// Whether the graph knows the channel (routable or awaiting a deposit).
    pub fn knows(&self, id: &ChannelId) -> bool {
        self.edges.contains_key(id) || self.unfunded.iter().any(|(c, ..)| c == id)
    }

    /// Number of routable channels.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether there are no routable channels.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Fewest-hop path `from … to` (both included) through nodes not in `avoid` and usable
    /// per `usable`, over channels of capacity at least `amount`. Ties break by address order,
    /// so the result is deterministic.
    pub fn shortest_path(
        &self,
        from: Address,
        to: Address,
        amount: TokenAmount,
        avoid: &BTreeSet<Address>,
        usable: impl Fn(&Address) -> bool,
    ) -> Option<Vec<Address>> {
        if from == to {
            return Some(vec![from]);
        }
        let mut prev: BTreeMap<Address, Address> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = BTreeSet::from([from]);
        while let Some(node) = queue.pop_front() {
            for (next, id) in self.adjacency.get(&node).into_iter().flatten() {
                if seen.contains(next) || avoid.contains(next) {
                    continue;
                }
                if self.edges[id].capacity() < amount {
                    continue;
                }
                if *next != to && !usable(next) {
                    continue;
                }
                seen.insert(*next);
                prev.insert(*next, node);
                if *next == to {
                    let mut path = vec![to];
                    let mut cur = to;
                    while let Some(p) = prev.get(&cur) {
                        path.push(*p);
                        cur = *p;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(*next);
            }
        }
        None
    }
}

/// Fixed mediation fees: what we charge, and what we expect others to charge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Our charge per mediated transfer.
    pub default: TokenAmount,
    /// Our charge per token, overriding `default`.
    pub per_token: BTreeMap<Address, TokenAmount>,
    /// Our charge per outgoing channel, overriding the rest.
    pub per_channel: BTreeMap<ChannelId, TokenAmount>,
    /// What we assume another mediator charges when we know nothing better.
    pub assumed_mediator_fee: TokenAmount,
    /// Known charges of other nodes.
    pub known: BTreeMap<Address, TokenAmount>,
}

impl FeeSchedule {
    /// A network where every node charges `fee` and expects the same of others.
    pub fn flat(fee: TokenAmount) -> FeeSchedule {
        FeeSchedule {
            default: fee,
            assumed_mediator_fee: fee,
            ..Default::default()
        }
    }

    /// What we charge to forward `token` over our channel `out`.
    pub fn our_charge(&self, token: &Address, out: &ChannelId) -> TokenAmount {
        self.per_channel
            .get(out)
            .or_else(|| self.per_token.get(token))
            .copied()
            .unwrap_or(self.default)
    }

    /// What we expect `node` to charge as a mediator.
    pub fn expected_charge(&self, node: &Address) -> TokenAmount {
        self.known
            .get(node)
            .copied()
            .unwrap_or(self.assumed_mediator_fee)
    }
}

/// A candidate route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Our channel of the first hop.
    pub channel: ChannelId,
    /// Nodes after us, ending with the target.
    pub path: Vec<Address>,
    /// Fees the mediators on it are expected to charge.
    pub fee: TokenAmount,
}

impl Route {
    /// Number of channels the payment crosses.
    pub fn hops(&self) -> usize {
        self.path.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::H256;

    fn a(i: u8) -> Address {
        Address([i; 20])
    }
    fn c(i: u8) -> ChannelId {
        ChannelId(H256([i; 32]))
    }

    fn seed_graph() -> ChannelGraph {
        let mut g = ChannelGraph::default();
        for (id, x, y, dx, dy) in [
            (12, 1, 2, 200, 100),
            (23, 2, 3, 100, 100),
            (24, 2, 4, 200, 100),
            (45, 4, 5, 100, 100),
        ] {
            g.add(c(id), a(x), a(y), false);
            g.set_deposit(c(id), a(x), TokenAmount::from(dx as u64));
            g.set_deposit(c(id), a(y), TokenAmount::from(dy as u64));
        }
        g
    }

    #[test]
    fn the_seed_topology_routes_1_2_4_5() {
        let g = seed_graph();
        let p = g.shortest_path(
            a(1),
            a(5),
            TokenAmount::from(50u64),
            &BTreeSet::new(),
            |_| true,
        );
        assert_eq!(p, Some(vec![a(1), a(2), a(4), a(5)]));
    }

    #[test]
    fn offline_mediators_low_capacity_and_avoided_nodes_are_skipped() {
        let g = seed_graph();
        let none = BTreeSet::new();
        assert_eq!(
            g.shortest_path(a(1), a(5), TokenAmount::from(50u64), &none, |n| *n != a(4)),
            None
        );
        assert_eq!(
            g.shortest_path(a(1), a(5), TokenAmount::from(201u64), &none, |_| true),
            None
        );
        assert_eq!(
            g.shortest_path(
                a(1),
                a(5),
                TokenAmount::from(1u64),
                &BTreeSet::from([a(2)]),
                |_| true
            ),
            None
        );
        let mut g2 = g.clone();
        g2.remove(c(24));
        assert_eq!(
            g2.shortest_path(a(1), a(5), TokenAmount::from(1u64), &none, |_| true),
            None
        );
    }

    #[test]
    fn unfunded_channels_of_others_are_bounded_and_join_the_graph_on_deposit() {
        let mut g = ChannelGraph::default();
        for i in 0..(MAX_UNFUNDED as u32 + 10) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            g.add(ChannelId(H256(id)), a(1), a(2), false);
        }
        assert_eq!(g.len(), 0, "no deposit yet: nothing routable");
        let oldest = ChannelId(H256([0; 32]));
        assert!(
            !g.knows(&oldest),
            "the oldest unfunded channels are forgotten"
        );
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&(MAX_UNFUNDED as u32 + 9).to_be_bytes());
        g.set_deposit(ChannelId(H256(last)), a(1), TokenAmount::from(5u64));
        assert_eq!(g.len(), 1);
        assert_eq!(
            g.edge(&ChannelId(H256(last))).map(|e| e.capacity()),
            Some(TokenAmount::from(5u64))
        );
    }

    #[test]
    fn our_charge_prefers_channel_then_token_then_default() {
        let mut f = FeeSchedule::flat(TokenAmount::from(3u64));
        f.per_token.insert(a(9), TokenAmount::from(5u64));
        f.per_channel.insert(c(1), TokenAmount::from(7u64));
        assert_eq!(f.our_charge(&a(8), &c(2)), TokenAmount::from(3u64));
        assert_eq!(f.our_charge(&a(9), &c(2)), TokenAmount::from(5u64));
        assert_eq!(f.our_charge(&a(9), &c(1)), TokenAmount::from(7u64));
    }
}
