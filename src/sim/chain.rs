//! A small model of the contracts for the simulation: it executes the core's transactions,
//! verifies every signature they carry against the SPEC §2 data, and reports the logs.

use crate::core::{ChainEvent, ContractCall};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, Locksroot, Nonce, Secret, SecretHash,
    TokenAmount,
};
use crate::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, SignedData, WithdrawData,
    channel_identifier, verify_merkle_proof,
};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct OnChainChannel {
    participants: [Address; 2],
    deposits: BTreeMap<Address, TokenAmount>,
    settle_timeout: BlockCount,
    open_block: BlockNumber,
    settle_block: Option<BlockNumber>,
    proofs: BTreeMap<Address, (TokenAmount, Locksroot, Nonce)>,
    unlocked: BTreeMap<Address, TokenAmount>,
}

/// The simulated chain.
pub struct SimChain {
    /// Head block.
    pub block: BlockNumber,
    /// Chain id signatures are bound to.
    pub chain_id: ChainId,
    token_networks: BTreeMap<Address, Address>,
    channels: BTreeMap<ChannelId, OnChainChannel>,
    secrets: BTreeMap<SecretHash, (Secret, BlockNumber)>,
    /// `punish_block_number` of the token networks it creates.
    pub punish_window: BlockCount,
    /// Tokens paid out to each account by settles and withdraws.
    pub payouts: BTreeMap<Address, TokenAmount>,
    /// Refused transactions: sender, call, reason.
    pub failed: Vec<(Address, ContractCall, String)>,
    next_address: u8,
}

impl Default for SimChain {
    fn default() -> Self {
        Self::new()
    }
}

impl SimChain {
    /// An empty chain at block 1.
    pub fn new() -> SimChain {
        SimChain {
            block: BlockNumber(1),
            chain_id: ChainId(31337),
            token_networks: BTreeMap::new(),
            channels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            punish_window: BlockCount(5),
            payouts: BTreeMap::new(),
            failed: Vec::new(),
            next_address: 0xa0,
        }
    }

    /// Creates a token and its network.
    pub fn register_token(&mut self) -> (Address, Address, Vec<ChainEvent>) {
        let token = Address([self.next_address; 20]);
        let tn = Address([self.next_address + 1; 20]);
        self.next_address += 2;
        self.token_networks.insert(tn, token);
        (
            token,
            tn,
            vec![ChainEvent::TokenNetworkCreated {
                token,
                token_network: tn,
                punish_window: self.punish_window,
            }],
        )
    }

    /// Tokens held by the contract for a channel (deposits), if it exists.
    pub fn channel_deposit(&self, id: &ChannelId) -> Option<TokenAmount> {
        self.channels.get(id).map(|c| {
            c.deposits
                .values()
                .fold(TokenAmount::ZERO, |a, d| a.saturating_add(*d))
        })
    }

    /// Executes a transaction from `from` and returns its logs, or the contract's error
    /// name; refused ones are also recorded in `failed`.
    pub fn execute(
        &mut self,
        from: Address,
        call: ContractCall,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, String> {
        match self.try_execute(from, &call, block) {
            Ok(events) => Ok(events),
            Err(reason) => {
                log::warn!("sim chain refused {call:?} from {from:?}: {reason}");
                self.failed.push((from, call, reason.clone()));
                Err(reason)
            }
        }
    }

    /// The secret registered for `secrethash` and the block of its registration.
    pub fn registered_secret(&self, secrethash: &SecretHash) -> Option<(Secret, BlockNumber)> {
        self.secrets.get(secrethash).copied()
    }

    fn binding(&self, id: ChannelId, c: &OnChainChannel) -> ChannelBinding {
        ChannelBinding {
            channel_identifier: id,
            open_block_number: c.open_block,
            chain_id: self.chain_id,
        }
    }

    fn try_execute(
        &mut self,
        from: Address,
        call: &ContractCall,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, String> {
        let id_of = |tn: &Address, partner: &Address| channel_identifier(from, *partner, *tn);
        match call {
            ContractCall::OpenChannel {
                token_network,
                partner,
                settle_timeout,
                deposit,
            } => {
                let id = id_of(token_network, partner);
                if self.channels.contains_key(&id) {
                    return Err("channel exists".into());
                }
                let mut deposits =
                    BTreeMap::from([(from, TokenAmount::ZERO), (*partner, TokenAmount::ZERO)]);
                deposits.insert(from, *deposit);
                self.channels.insert(
                    id,
                    OnChainChannel {
                        participants: [from, *partner],
                        deposits,
                        settle_timeout: *settle_timeout,
                        open_block: block,
                        settle_block: None,
                        proofs: BTreeMap::new(),
                        unlocked: BTreeMap::new(),
                    },
                );
                let mut ev = vec![ChainEvent::ChannelOpened {
                    token_network: *token_network,
                    channel_identifier: id,
                    participant1: from,
                    participant2: *partner,
                    settle_timeout: *settle_timeout,
                    open_block_number: block,
                }];
                if !deposit.is_zero() {
                    ev.push(ChainEvent::ChannelDeposit {
                        channel_identifier: id,
                        participant: from,
                        total_deposit: *deposit,
                    });
                }
                Ok(ev)
            }
            ContractCall::Deposit {
                token_network,
                partner,
                amount,
            } => {
                let id = id_of(token_network, partner);
                let c = self.channels.get_mut(&id).ok_or("no channel")?;
                if c.settle_block.is_some() {
                    return Err("closed".into());
                }
                let total = c.deposits[&from].checked_add(*amount).ok_or("overflow")?;
                c.deposits.insert(from, total);
                Ok(vec![ChainEvent::ChannelDeposit {
                    channel_identifier: id,
                    participant: from,
                    total_deposit: total,
                }])
            }
            ContractCall::RegisterSecret { secret } => {
                let h = secret.hash();
                if self.secrets.contains_key(&h) {
                    return Ok(Vec::new());
                }
                self.secrets.insert(h, (*secret, block));
                Ok(vec![ChainEvent::SecretRegistered {
                    secrethash: h,
                    secret: *secret,
                    block_number: block,
                }])
            }
            ContractCall::Close {
                token_network,
                partner,
                balance_proof,
            } => {
                let id = id_of(token_network, partner);
                let binding = self.binding(id, self.channels.get(&id).ok_or("no channel")?);
                let c = self.channels.get_mut(&id).expect("checked");
                if c.settle_block.is_some() {
                    return Err("already closed".into());
                }
                if let Some(p) = balance_proof {
                    let data = BalanceProofData {
                        transferred_amount: p.transferred_amount,
                        locksroot: p.locksroot,
                        nonce: p.nonce,
                        additional_hash: p.additional_hash,
                        binding,
                    };
                    if data.signer(&p.signature).ok() != Some(*partner) {
                        return Err("close: balance proof not signed by the partner".into());
                    }
                    c.proofs
                        .insert(*partner, (p.transferred_amount, p.locksroot, p.nonce));
                }
                c.settle_block = Some(block.plus(c.settle_timeout));
                let (transferred_amount, locksroot, _) =
                    c.proofs.get(partner).copied().unwrap_or_default();
                Ok(vec![ChainEvent::ChannelClosed {
                    channel_identifier: id,
                    closing_participant: from,
                    transferred_amount,
                    locksroot,
                    block_number: block,
                }])
            }
            ContractCall::UpdateBalanceProof {
                token_network,
                partner,
                balance_proof: p,
            } => {
                let id = id_of(token_network, partner);
                let binding = self.binding(id, self.channels.get(&id).ok_or("no channel")?);
                let c = self.channels.get_mut(&id).expect("checked");
                let settle_block = c.settle_block.ok_or("not closed")?;
                if block > settle_block {
                    return Err("update after the window".into());
                }
                if c.proofs.get(partner).is_some_and(|(_, _, n)| *n >= p.nonce) {
                    return Err("not a newer nonce".into());
                }
                let data = BalanceProofData {
                    transferred_amount: p.transferred_amount,
                    locksroot: p.locksroot,
                    nonce: p.nonce,
                    additional_hash: p.additional_hash,
                    binding,
                };
                if data.signer(&p.signature).ok() != Some(*partner) {
                    return Err("update: not signed by the partner".into());
                }
                c.proofs
                    .insert(*partner, (p.transferred_amount, p.locksroot, p.nonce));
                Ok(vec![ChainEvent::BalanceProofUpdated {
                    channel_identifier: id,
                    participant: *partner,
                    transferred_amount: p.transferred_amount,
                    locksroot: p.locksroot,
                }])
            }
            ContractCall::Unlock {
                token_network,
                partner,
                lock,
                merkle_proof,
                ..
            } => {
                let id = id_of(token_network, partner);
                let registered = self.secrets.get(&lock.secrethash).map(|(_, b)| *b);
                let c = self.channels.get_mut(&id).ok_or("no channel")?;
                c.settle_block.ok_or("not closed")?;
                if registered.is_none_or(|b| b > lock.expiration) {
                    return Err("secret not registered before expiration".into());
                }
                let (_, root, _) = c
                    .proofs
                    .get(partner)
                    .copied()
                    .ok_or("no proof of the partner")?;
                if !verify_merkle_proof(lock.lockhash(), merkle_proof, root) {
                    return Err("merkle proof fails".into());
                }
                let e = c.unlocked.entry(*partner).or_default();
                *e = e.checked_add(lock.amount).ok_or("overflow")?;
                let base = c.proofs.get(partner).map(|x| x.0).unwrap_or_default();
                // As the contract: the payer's transferred amount on chain, lock included.
                Ok(vec![ChainEvent::ChannelUnlocked {
                    channel_identifier: id,
                    payer_participant: *partner,
                    lockhash: lock.lockhash(),
                    transferred_amount: base.saturating_add(*e),
                }])
            }
            ContractCall::Settle {
                token_network,
                participant1,
                participant2,
                participant1_transferred_amount,
                participant1_locksroot,
                participant2_transferred_amount,
                participant2_locksroot,
            } => {
                if from != *participant1 && from != *participant2 {
                    return Err("not a participant".into());
                }
                let id = channel_identifier(*participant1, *participant2, *token_network);
                let c = self.channels.get(&id).ok_or("no channel")?;
                let settle_block = c.settle_block.ok_or("not closed")?;
                if block <= settle_block {
                    return Err("settle too early".into());
                }
                let t = |p: &Address| {
                    let base = c.proofs.get(p).map(|x| x.0).unwrap_or_default();
                    base.saturating_add(c.unlocked.get(p).copied().unwrap_or_default())
                };
                let root = |p: &Address| c.proofs.get(p).map(|x| x.1).unwrap_or_default();
                // As the contract: the given amounts and roots must be the balance hashes held.
                if (t(participant1), root(participant1))
                    != (*participant1_transferred_amount, *participant1_locksroot)
                    || (t(participant2), root(participant2))
                        != (*participant2_transferred_amount, *participant2_locksroot)
                {
                    return Err("BalanceHashMismatch".into());
                }
                let total = c
                    .deposits
                    .values()
                    .fold(TokenAmount::ZERO, |a, d| a.saturating_add(*d));
                let [p1, p2] = c.participants;
                let p1_gets = c.deposits[&p1]
                    .saturating_add(t(&p2))
                    .saturating_sub(t(&p1))
                    .min(total);
                self.credit(p1, p1_gets);
                self.credit(p2, total.saturating_sub(p1_gets));
                self.channels.remove(&id);
                Ok(vec![ChainEvent::ChannelSettled {
                    channel_identifier: id,
                }])
            }
            ContractCall::Withdraw {
                token_network,
                participant,
                partner,
                participant_balance,
                participant_withdraw,
                expiration,
                participant_signature,
                partner_signature,
            } => {
                if block > *expiration {
                    return Err("RequestExpired".into());
                }
                let id = channel_identifier(*participant, *partner, *token_network);
                let c = self.channels.get(&id).ok_or("no channel")?;
                if c.settle_block.is_some() {
                    return Err("closed".into());
                }
                let data = WithdrawData {
                    participant: *participant,
                    participant_balance: *participant_balance,
                    participant_withdraw: *participant_withdraw,
                    expiration: *expiration,
                    binding: self.binding(id, c),
                };
                if data.signer(participant_signature).ok() != Some(*participant)
                    || data.signer(partner_signature).ok() != Some(*partner)
                {
                    return Err("withdraw signatures".into());
                }
                let total = c
                    .deposits
                    .values()
                    .fold(TokenAmount::ZERO, |a, d| a.saturating_add(*d));
                let partner_balance = total
                    .checked_sub(*participant_balance)
                    .ok_or("balance above total")?;
                let remaining = participant_balance
                    .checked_sub(*participant_withdraw)
                    .ok_or("withdraw above balance")?;
                let c = self.channels.get_mut(&id).expect("checked");
                c.deposits.insert(*participant, remaining);
                c.deposits.insert(*partner, partner_balance);
                c.open_block = block;
                self.credit(*participant, *participant_withdraw);
                Ok(vec![ChainEvent::ChannelWithdraw {
                    channel_identifier: id,
                    participant1: *participant,
                    participant1_deposit: remaining,
                    participant2: *partner,
                    participant2_deposit: partner_balance,
                    open_block_number: block,
                }])
            }
            ContractCall::CooperativeSettle {
                token_network,
                participant1,
                participant1_balance,
                participant2,
                participant2_balance,
                expiration,
                participant1_signature,
                participant2_signature,
            } => {
                if block > *expiration {
                    return Err("RequestExpired".into());
                }
                let id = channel_identifier(*participant1, *participant2, *token_network);
                let c = self.channels.get(&id).ok_or("no channel")?;
                let data = CooperativeSettleData {
                    participant1: *participant1,
                    participant1_balance: *participant1_balance,
                    participant2: *participant2,
                    participant2_balance: *participant2_balance,
                    expiration: *expiration,
                    binding: self.binding(id, c),
                };
                if data.signer(participant1_signature).ok() != Some(*participant1)
                    || data.signer(participant2_signature).ok() != Some(*participant2)
                {
                    return Err("cooperative settle signatures".into());
                }
                let total = c
                    .deposits
                    .values()
                    .fold(TokenAmount::ZERO, |a, d| a.saturating_add(*d));
                if participant1_balance.checked_add(*participant2_balance) != Some(total) {
                    return Err("balances do not sum to the deposits".into());
                }
                self.credit(*participant1, *participant1_balance);
                self.credit(*participant2, *participant2_balance);
                self.channels.remove(&id);
                Ok(vec![ChainEvent::ChannelCooperativeSettled {
                    channel_identifier: id,
                }])
            }
            ContractCall::PunishObsoleteUnlock { .. } => {
                Err("punish is not modelled by the simulation".into())
            }
        }
    }

    fn credit(&mut self, who: Address, amount: TokenAmount) {
        let e = self.payouts.entry(who).or_default();
        *e = e.saturating_add(amount);
    }
}
