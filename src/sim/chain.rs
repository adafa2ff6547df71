//! A model of the contracts for the deterministic simulation and the property tests: the
//! registry, every TokenNetwork and the SecretRegistry of `contracts/src/`, as strict as they are.
//! It keeps the contracts' state, runs their checks in their order (as far as the order decides
//! which error comes out), refuses with their custom error names and reports their logs as the
//! chain follower decodes them (`src/chain/events.rs`). `tests/sim_chain_differential.rs` runs
//! random call sequences on it and on anvil side by side; a difference is a bug here.
//!
//! Not modelled: token balances and allowances (every account is taken to hold and have approved
//! what it deposits), gas, and the entries the core never uses (`updateBalanceProofDelegate`,
//! `unlockDelegate`, ERC-223 `tokenFallback`, `receiveApproval`, `registerSecretBatch`).

use crate::core::{ChainEvent, ContractCall};
use crate::crypto::{address_of, eip191_hash};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, Secret,
    SecretHash, Signature, TokenAmount,
};
use crate::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, DisposedLockData, Lock, SignedData,
    WithdrawData, balance_hash, channel_identifier, merkle_root,
};
use alloy_primitives::U256;
use std::collections::{BTreeMap, BTreeSet};

/// `TokenNetwork.SETTLE_TIMEOUT_MIN`.
const SETTLE_TIMEOUT_MIN: u64 = 6;
/// `TokenNetwork.SETTLE_TIMEOUT_MAX`.
const SETTLE_TIMEOUT_MAX: u64 = 2_700_000;

/// Why a call reverts: the contract's custom error name, as [`crate::chain::ChainError`] names it.
type Revert = &'static str;

/// A Solidity `Panic` (checked arithmetic): the executor names every non-custom revert so.
const PANIC: Revert = "revert";

/// A participant's balance proof as stored: the first 24 bytes of
/// `keccak256(locksroot ‖ transferred_amount)` (zero for the empty proof).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct StoredBalanceHash([u8; 24]);

impl StoredBalanceHash {
    /// `ChannelProofs.balanceHash`.
    fn of(transferred_amount: TokenAmount, locksroot: Locksroot) -> Self {
        let mut prefix = [0u8; 24];
        prefix.copy_from_slice(&balance_hash(transferred_amount, locksroot).0[..24]);
        StoredBalanceHash(prefix)
    }
}

/// `TokenNetwork.Participant`.
#[derive(Clone, Copy, Debug, Default)]
struct ParticipantState {
    balance_hash: StoredBalanceHash,
    nonce: Nonce,
}

/// A channel's state (the contract's 1 and 2; a channel that does not exist or was settled is
/// absent from the model, the contract's 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelState {
    Open,
    Closed,
}

/// `TokenNetwork.Channel`, with its network and the lower address of its pair (the contract
/// knows the pair only through the channel identifier).
#[derive(Clone, Debug)]
struct Channel {
    token_network: Address,
    lower: Address,
    state: ChannelState,
    settle_timeout: BlockCount,
    /// Close block + settle_timeout; zero while open.
    settle_block_number: BlockNumber,
    /// Block of opening or of the last withdraw: part of every signed proof.
    open_block_number: BlockNumber,
    deposit_lower: TokenAmount,
    deposit_higher: TokenAmount,
    /// Who takes the whole channel at settle after a punish.
    punished: Option<Address>,
    participant_lower: ParticipantState,
    participant_higher: ParticipantState,
}

impl Channel {
    /// `_getDeposits(channel, participant, partner)`.
    fn deposits(&self, participant: Address, partner: Address) -> (TokenAmount, TokenAmount) {
        if participant < partner {
            (self.deposit_lower, self.deposit_higher)
        } else {
            (self.deposit_higher, self.deposit_lower)
        }
    }

    /// `_setDeposits(channel, participant, partner, …)`.
    fn set_deposits(
        &mut self,
        participant: Address,
        partner: Address,
        participant_deposit: TokenAmount,
        partner_deposit: TokenAmount,
    ) {
        if participant < partner {
            (self.deposit_lower, self.deposit_higher) = (participant_deposit, partner_deposit);
        } else {
            (self.deposit_lower, self.deposit_higher) = (partner_deposit, participant_deposit);
        }
    }

    fn total_deposit(&self) -> TokenAmount {
        // Below 2^128 by the deposit checks.
        TokenAmount(self.deposit_lower.0 + self.deposit_higher.0)
    }

    /// `channel.participants[who]` of a member of the pair.
    fn participant(&self, who: Address) -> &ParticipantState {
        if who == self.lower {
            &self.participant_lower
        } else {
            &self.participant_higher
        }
    }

    fn participant_mut(&mut self, who: Address) -> &mut ParticipantState {
        if who == self.lower {
            &mut self.participant_lower
        } else {
            &mut self.participant_higher
        }
    }

    fn binding(&self, id: ChannelId, chain_id: ChainId) -> ChannelBinding {
        ChannelBinding {
            channel_identifier: id,
            open_block_number: self.open_block_number,
            chain_id,
        }
    }
}

/// A token network of the model: its immutable punish window.
#[derive(Clone, Copy, Debug)]
struct TokenNetworkInfo {
    punish_window: BlockCount,
}

/// A channel as the contract's views report it (`getChannelInfo`, `getParticipantInfo` of both
/// sides in the order asked, `getPunishedBeneficiary`): a settled or unknown channel reads as
/// all zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelView {
    /// 0 none/settled, 1 open, 2 closed.
    pub state: u8,
    /// Settle window (blocks); 0 when none.
    pub settle_timeout: BlockCount,
    /// Last block of the settle window; 0 while open.
    pub settle_block_number: BlockNumber,
    /// Block of opening or of the last withdraw.
    pub open_block_number: BlockNumber,
    /// Each side's (deposit, first 24 bytes of its balance hash, nonce).
    pub participants: [(TokenAmount, [u8; 24], Nonce); 2],
    /// Who settle pays the whole channel after a punish.
    pub punished_beneficiary: Option<Address>,
}

/// The simulated chain.
pub struct SimChain {
    /// Head block (the simulation moves it; [`SimChain::execute`] takes the block explicitly).
    pub block: BlockNumber,
    /// Chain id signatures are bound to.
    pub chain_id: ChainId,
    /// `punish_block_number` of the token networks created from now on (the contract's is
    /// immutable per network).
    pub punish_window: BlockCount,
    /// Tokens paid out to each account by settles, cooperative settles and withdraws.
    pub payouts: BTreeMap<Address, TokenAmount>,
    /// Tokens each account paid in by opening with a deposit and depositing.
    pub paid_in: BTreeMap<Address, TokenAmount>,
    /// Refused transactions: sender, call, the contract's error name.
    pub failed: Vec<(Address, ContractCall, String)>,
    token_networks: BTreeMap<Address, TokenNetworkInfo>,
    channels: BTreeMap<ChannelId, Channel>,
    /// `unlocked_locks`: (channel, open_block_number, payer, lockhash) unlocked on chain. Never
    /// cleared by a settle, like the contract's mapping; the open block keeps epochs apart.
    unlocked_locks: BTreeSet<(ChannelId, BlockNumber, Address, H256)>,
    /// SecretRegistry: secrethash → (secret, block of the first registration).
    secrets: BTreeMap<SecretHash, (Secret, BlockNumber)>,
    next_address: u8,
}

impl Default for SimChain {
    fn default() -> Self {
        Self::new()
    }
}

impl SimChain {
    /// An empty chain at block 1 (chain id 31337, punish window 5 blocks).
    pub fn new() -> SimChain {
        SimChain {
            block: BlockNumber(1),
            chain_id: ChainId(31337),
            punish_window: BlockCount(5),
            payouts: BTreeMap::new(),
            paid_in: BTreeMap::new(),
            failed: Vec::new(),
            token_networks: BTreeMap::new(),
            channels: BTreeMap::new(),
            unlocked_locks: BTreeSet::new(),
            secrets: BTreeMap::new(),
            next_address: 0xa0,
        }
    }

    /// Creates a token and its network at made-up addresses.
    pub fn register_token(&mut self) -> (Address, Address, Vec<ChainEvent>) {
        let token = Address([self.next_address; 20]);
        let tn = Address([self.next_address + 1; 20]);
        self.next_address += 2;
        let events = self.register_token_network(token, tn);
        (token, tn, events)
    }

    /// Creates the network `token_network` of `token` (addresses of a real deployment, so that
    /// channel identifiers and signatures match it), with the current punish window.
    ///
    /// Panics if `token_network` is already registered (a test's setup error).
    pub fn register_token_network(
        &mut self,
        token: Address,
        token_network: Address,
    ) -> Vec<ChainEvent> {
        let info = TokenNetworkInfo {
            punish_window: self.punish_window,
        };
        assert!(
            self.token_networks.insert(token_network, info).is_none(),
            "token network {token_network} registered twice"
        );
        vec![ChainEvent::TokenNetworkCreated {
            token,
            token_network,
            punish_window: self.punish_window,
        }]
    }

    /// Tokens held by the contract for a channel (both deposits), if it exists.
    pub fn channel_deposit(&self, id: &ChannelId) -> Option<TokenAmount> {
        self.channels.get(id).map(Channel::total_deposit)
    }

    /// Tokens a token network holds: the deposits of its channels.
    pub fn token_network_balance(&self, token_network: Address) -> TokenAmount {
        self.channels
            .values()
            .filter(|c| c.token_network == token_network)
            .fold(TokenAmount::ZERO, |sum, c| {
                TokenAmount(sum.0 + c.total_deposit().0)
            })
    }

    /// The channel of `participant1` and `participant2` in `token_network` as the contract's
    /// views show it.
    pub fn channel_view(
        &self,
        token_network: Address,
        participant1: Address,
        participant2: Address,
    ) -> ChannelView {
        let id = channel_identifier(participant1, participant2, token_network);
        let Some(c) = self.channels.get(&id) else {
            return ChannelView {
                state: 0,
                settle_timeout: BlockCount(0),
                settle_block_number: BlockNumber(0),
                open_block_number: BlockNumber(0),
                participants: [(TokenAmount::ZERO, [0; 24], Nonce(0)); 2],
                punished_beneficiary: None,
            };
        };
        let side = |who: Address, partner: Address| {
            let p = c.participant(who);
            (c.deposits(who, partner).0, p.balance_hash.0, p.nonce)
        };
        ChannelView {
            state: match c.state {
                ChannelState::Open => 1,
                ChannelState::Closed => 2,
            },
            settle_timeout: c.settle_timeout,
            settle_block_number: c.settle_block_number,
            open_block_number: c.open_block_number,
            participants: [
                side(participant1, participant2),
                side(participant2, participant1),
            ],
            punished_beneficiary: c.punished,
        }
    }

    /// Whether `lockhash` of `payer`'s proof is unlocked on chain in its channel with `partner`
    /// (the contract's `queryUnlockedLocks`).
    pub fn lock_unlocked(
        &self,
        token_network: Address,
        payer: Address,
        partner: Address,
        lockhash: H256,
    ) -> bool {
        let id = channel_identifier(payer, partner, token_network);
        let open_block = self
            .channels
            .get(&id)
            .map_or(BlockNumber(0), |c| c.open_block_number);
        self.unlocked_locks
            .contains(&(id, open_block, payer, lockhash))
    }

    /// The secret registered for `secrethash` and the block of its first registration.
    pub fn registered_secret(&self, secrethash: &SecretHash) -> Option<(Secret, BlockNumber)> {
        self.secrets.get(secrethash).copied()
    }

    /// Executes a transaction sent by `from` and mined in `block`; returns its logs, or the
    /// contract's error name (then nothing changed, as after a revert). Refused ones are also
    /// recorded in `failed`.
    pub fn execute(
        &mut self,
        from: Address,
        call: ContractCall,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, String> {
        match self.apply(from, &call, block) {
            Ok(events) => Ok(events),
            Err(reason) => {
                log::debug!("sim chain refused {call:?} from {from:?} in block {block}: {reason}");
                self.failed.push((from, call, reason.to_string()));
                Err(reason.to_string())
            }
        }
    }

    fn apply(
        &mut self,
        from: Address,
        call: &ContractCall,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, Revert> {
        match call {
            ContractCall::RegisterSecret { secret } => Ok(self.register_secret(*secret, block)),
            ContractCall::OpenChannel {
                token_network,
                partner,
                settle_timeout,
                deposit,
            } => {
                self.network(*token_network)?;
                if deposit.is_zero() {
                    self.open_channel(*token_network, from, *partner, *settle_timeout, block)
                } else {
                    self.open_channel_with_deposit(
                        *token_network,
                        from,
                        *partner,
                        *settle_timeout,
                        *deposit,
                        block,
                    )
                }
            }
            ContractCall::Deposit {
                token_network,
                partner,
                amount,
            } => {
                self.network(*token_network)?;
                self.deposit(*token_network, from, *partner, *amount)
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
                self.network(*token_network)?;
                self.withdraw(
                    *token_network,
                    WithdrawTerms {
                        participant: *participant,
                        partner: *partner,
                        participant_balance: *participant_balance,
                        participant_withdraw: *participant_withdraw,
                        expiration: *expiration,
                    },
                    participant_signature,
                    partner_signature,
                    block,
                )
            }
            ContractCall::Close {
                token_network,
                partner,
                balance_proof,
            } => {
                self.network(*token_network)?;
                let id = channel_identifier(from, *partner, *token_network);
                let c = self.channel_in(id, ChannelState::Open, "ChannelNotOpen")?;
                // Nonce 0: no proof (the contract reads neither the proof nor the signature).
                let proof = balance_proof.filter(|p| p.nonce.0 > 0);
                if let Some(p) = &proof {
                    let data = BalanceProofData {
                        transferred_amount: p.transferred_amount,
                        locksroot: p.locksroot,
                        nonce: p.nonce,
                        additional_hash: p.additional_hash,
                        binding: c.binding(id, self.chain_id),
                    };
                    check_signer(*partner, &data, &p.signature)?;
                }
                let c = self.channels.get_mut(&id).expect("checked above");
                c.state = ChannelState::Closed;
                c.settle_block_number = block.plus(c.settle_timeout);
                let (transferred_amount, locksroot) = match proof {
                    Some(p) => {
                        *c.participant_mut(*partner) = ParticipantState {
                            balance_hash: StoredBalanceHash::of(p.transferred_amount, p.locksroot),
                            nonce: p.nonce,
                        };
                        (p.transferred_amount, p.locksroot)
                    }
                    None => (TokenAmount::ZERO, Locksroot::default()),
                };
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
                self.network(*token_network)?;
                let id = channel_identifier(*partner, from, *token_network);
                let c = self.channel_in(id, ChannelState::Closed, "ChannelNotClosed")?;
                if block > c.settle_block_number {
                    return Err("SettleWindowOver");
                }
                if p.nonce <= c.participant(*partner).nonce {
                    return Err("NonceNotHigher");
                }
                let data = BalanceProofData {
                    transferred_amount: p.transferred_amount,
                    locksroot: p.locksroot,
                    nonce: p.nonce,
                    additional_hash: p.additional_hash,
                    binding: c.binding(id, self.chain_id),
                };
                check_signer(*partner, &data, &p.signature)?;
                let c = self.channels.get_mut(&id).expect("checked above");
                *c.participant_mut(*partner) = ParticipantState {
                    balance_hash: StoredBalanceHash::of(p.transferred_amount, p.locksroot),
                    nonce: p.nonce,
                };
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
                transferred_amount,
                lock,
                merkle_proof,
            } => {
                self.network(*token_network)?;
                self.unlock(
                    *token_network,
                    from,
                    *partner,
                    *transferred_amount,
                    lock,
                    merkle_proof,
                    block,
                )
            }
            ContractCall::PunishObsoleteUnlock {
                token_network,
                partner,
                lockhash,
                additional_hash,
                signature,
            } => {
                self.network(*token_network)?;
                let (beneficiary, cheater) = (from, *partner);
                let id = channel_identifier(beneficiary, cheater, *token_network);
                let c = self.channel_in(id, ChannelState::Closed, "ChannelNotClosed")?;
                if c.punished.is_some() {
                    return Err("AlreadyPunished");
                }
                let key = (id, c.open_block_number, beneficiary, *lockhash);
                if !self.unlocked_locks.contains(&key) {
                    return Err("LockNotUnlocked");
                }
                let data = DisposedLockData {
                    lockhash: *lockhash,
                    binding: c.binding(id, self.chain_id),
                    additional_hash: *additional_hash,
                };
                check_signer(cheater, &data, signature)?;
                self.unlocked_locks.remove(&key);
                self.channels.get_mut(&id).expect("checked above").punished = Some(beneficiary);
                Ok(vec![ChainEvent::ObsoleteUnlockPunished {
                    channel_identifier: id,
                    beneficiary,
                    cheater,
                }])
            }
            ContractCall::Settle {
                token_network,
                participant1,
                participant1_transferred_amount,
                participant1_locksroot,
                participant2,
                participant2_transferred_amount,
                participant2_locksroot,
            } => {
                let punish_window = self.network(*token_network)?.punish_window;
                let (p1, p2) = (*participant1, *participant2);
                let id = channel_identifier(p1, p2, *token_network);
                let c = self.channel_in(id, ChannelState::Closed, "ChannelNotClosed")?;
                let first_allowed = c
                    .settle_block_number
                    .plus(punish_window)
                    .plus(BlockCount(1));
                if block < first_allowed {
                    return Err("SettleTooEarly");
                }
                let (deposit1, deposit2) = c.deposits(p1, p2);
                let total = c.total_deposit();
                let (amount1, amount2) = match c.punished {
                    Some(beneficiary) if beneficiary == p1 => (total, TokenAmount::ZERO),
                    Some(_) => (TokenAmount::ZERO, total),
                    None => {
                        if c.participant(p1).balance_hash
                            != StoredBalanceHash::of(
                                *participant1_transferred_amount,
                                *participant1_locksroot,
                            )
                            || c.participant(p2).balance_hash
                                != StoredBalanceHash::of(
                                    *participant2_transferred_amount,
                                    *participant2_locksroot,
                                )
                        {
                            return Err("BalanceHashMismatch");
                        }
                        settlement_amounts(
                            deposit1,
                            *participant1_transferred_amount,
                            deposit2,
                            *participant2_transferred_amount,
                        )
                    }
                };
                self.channels.remove(&id);
                self.credit(p1, amount1);
                self.credit(p2, amount2);
                Ok(vec![ChainEvent::ChannelSettled {
                    channel_identifier: id,
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
                self.network(*token_network)?;
                if block > *expiration {
                    return Err("RequestExpired");
                }
                let (p1, p2) = (*participant1, *participant2);
                let id = channel_identifier(p1, p2, *token_network);
                let c = self.channel_in(id, ChannelState::Open, "ChannelNotOpen")?;
                let data = CooperativeSettleData {
                    participant1: p1,
                    participant1_balance: *participant1_balance,
                    participant2: p2,
                    participant2_balance: *participant2_balance,
                    expiration: *expiration,
                    binding: c.binding(id, self.chain_id),
                };
                check_signer(p1, &data, participant1_signature)?;
                check_signer(p2, &data, participant2_signature)?;
                let total = c.total_deposit();
                if *participant1_balance > total
                    || Some(*participant2_balance) != total.checked_sub(*participant1_balance)
                {
                    return Err("BalancesDoNotSumToDeposits");
                }
                self.channels.remove(&id);
                self.credit(p1, *participant1_balance);
                self.credit(p2, *participant2_balance);
                Ok(vec![ChainEvent::ChannelCooperativeSettled {
                    channel_identifier: id,
                }])
            }
        }
    }

    /// The token network at `token_network` (a call to any other address is a test's mistake;
    /// on a real chain it would do nothing and succeed).
    fn network(&self, token_network: Address) -> Result<TokenNetworkInfo, Revert> {
        self.token_networks
            .get(&token_network)
            .copied()
            .ok_or("no token network at this address (model)")
    }

    /// `SecretRegistry.registerSecret`: the first registration wins; the zero secret and a
    /// repeated one change nothing and log nothing, and do not revert.
    fn register_secret(&mut self, secret: Secret, block: BlockNumber) -> Vec<ChainEvent> {
        let secrethash = secret.hash();
        if secret.0.is_zero() || self.secrets.contains_key(&secrethash) {
            return Vec::new();
        }
        self.secrets.insert(secrethash, (secret, block));
        vec![ChainEvent::SecretRegistered {
            secrethash,
            secret,
            block_number: block,
        }]
    }

    /// `_open` after the settle timeout check: returns the new channel's identifier.
    fn open(
        &mut self,
        token_network: Address,
        participant1: Address,
        participant2: Address,
        settle_timeout: BlockCount,
        block: BlockNumber,
    ) -> Result<ChannelId, Revert> {
        if participant1 == Address::ZERO
            || participant2 == Address::ZERO
            || participant1 == participant2
        {
            return Err("InvalidParticipants");
        }
        let id = channel_identifier(participant1, participant2, token_network);
        if self.channels.contains_key(&id) {
            return Err("ChannelAlreadyExists");
        }
        self.channels.insert(
            id,
            Channel {
                token_network,
                lower: participant1.min(participant2),
                state: ChannelState::Open,
                settle_timeout,
                settle_block_number: BlockNumber(0),
                open_block_number: block,
                deposit_lower: TokenAmount::ZERO,
                deposit_higher: TokenAmount::ZERO,
                punished: None,
                participant_lower: ParticipantState::default(),
                participant_higher: ParticipantState::default(),
            },
        );
        Ok(id)
    }

    /// `openChannel(participant1, participant2, settle_timeout)`.
    fn open_channel(
        &mut self,
        token_network: Address,
        participant1: Address,
        participant2: Address,
        settle_timeout: BlockCount,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, Revert> {
        check_settle_timeout(settle_timeout)?;
        let id = self.open(
            token_network,
            participant1,
            participant2,
            settle_timeout,
            block,
        )?;
        Ok(vec![ChainEvent::ChannelOpened {
            token_network,
            channel_identifier: id,
            participant1,
            participant2,
            settle_timeout,
            open_block_number: block,
        }])
    }

    /// `openChannelWithDeposit(participant, partner, settle_timeout, amount)` sent by `participant`.
    fn open_channel_with_deposit(
        &mut self,
        token_network: Address,
        participant: Address,
        partner: Address,
        settle_timeout: BlockCount,
        amount: TokenAmount,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, Revert> {
        check_settle_timeout(settle_timeout)?;
        if amount.is_zero() {
            return Err("ZeroAmount");
        }
        if amount.0 > U256::from(u128::MAX) {
            return Err("DepositOverflow");
        }
        let id = self.open(token_network, participant, partner, settle_timeout, block)?;
        self.channels
            .get_mut(&id)
            .expect("just opened")
            .set_deposits(participant, partner, amount, TokenAmount::ZERO);
        self.pull(participant, amount);
        Ok(vec![
            ChainEvent::ChannelOpened {
                token_network,
                channel_identifier: id,
                participant1: participant,
                participant2: partner,
                settle_timeout,
                open_block_number: block,
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: id,
                participant,
                total_deposit: amount,
            },
        ])
    }

    /// `deposit(participant, partner, amount)` sent by `participant`.
    fn deposit(
        &mut self,
        token_network: Address,
        participant: Address,
        partner: Address,
        amount: TokenAmount,
    ) -> Result<Vec<ChainEvent>, Revert> {
        if amount.is_zero() {
            return Err("ZeroAmount");
        }
        let id = channel_identifier(participant, partner, token_network);
        let c = self.channel_in(id, ChannelState::Open, "ChannelNotOpen")?;
        let (participant_deposit, partner_deposit) = c.deposits(participant, partner);
        // The contract: amount > uint128.max - participant_deposit - partner_deposit.
        if amount.0 > U256::from(u128::MAX) - participant_deposit.0 - partner_deposit.0 {
            return Err("DepositOverflow");
        }
        let total_deposit = TokenAmount(participant_deposit.0 + amount.0);
        self.channels
            .get_mut(&id)
            .expect("checked above")
            .set_deposits(participant, partner, total_deposit, partner_deposit);
        self.pull(participant, amount);
        Ok(vec![ChainEvent::ChannelDeposit {
            channel_identifier: id,
            participant,
            total_deposit,
        }])
    }

    /// `withdraw(...)` (anyone may send it).
    fn withdraw(
        &mut self,
        token_network: Address,
        terms: WithdrawTerms,
        participant_signature: &Signature,
        partner_signature: &Signature,
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, Revert> {
        let WithdrawTerms {
            participant,
            partner,
            participant_balance,
            participant_withdraw,
            expiration,
        } = terms;
        if block > expiration {
            return Err("RequestExpired");
        }
        let id = channel_identifier(participant, partner, token_network);
        let c = self.channel_in(id, ChannelState::Open, "ChannelNotOpen")?;
        let data = WithdrawData {
            participant,
            participant_balance,
            participant_withdraw,
            expiration,
            binding: c.binding(id, self.chain_id),
        };
        check_signer(participant, &data, participant_signature)?;
        check_signer(partner, &data, partner_signature)?;
        if participant_withdraw.is_zero() {
            return Err("ZeroAmount");
        }
        let total = c.total_deposit();
        if participant_withdraw > participant_balance || participant_balance > total {
            return Err("InvalidWithdraw");
        }
        let partner_balance = TokenAmount(total.0 - participant_balance.0);
        let remaining = TokenAmount(participant_balance.0 - participant_withdraw.0);
        let c = self.channels.get_mut(&id).expect("checked above");
        c.set_deposits(participant, partner, remaining, partner_balance);
        c.open_block_number = block;
        self.credit(participant, participant_withdraw);
        Ok(vec![ChainEvent::ChannelWithdraw {
            channel_identifier: id,
            participant1: participant,
            participant1_deposit: remaining,
            participant2: partner,
            participant2_deposit: partner_balance,
            open_block_number: block,
        }])
    }

    /// `unlock(partner, transferred_amount, lock…, merkle_proof)` sent by `participant`.
    #[allow(clippy::too_many_arguments)]
    fn unlock(
        &mut self,
        token_network: Address,
        participant: Address,
        partner: Address,
        transferred_amount: TokenAmount,
        lock: &Lock,
        merkle_proof: &[H256],
        block: BlockNumber,
    ) -> Result<Vec<ChainEvent>, Revert> {
        let id = channel_identifier(participant, partner, token_network);
        let c = self.channel_in(id, ChannelState::Closed, "ChannelNotClosed")?;
        if block > c.settle_block_number {
            return Err("SettleWindowOver");
        }
        let lockhash = lock.lockhash();
        let locksroot = merkle_root(lockhash, merkle_proof);
        if c.participant(partner).balance_hash
            != StoredBalanceHash::of(transferred_amount, locksroot)
        {
            return Err("BalanceHashMismatch");
        }
        let Some(&(_, reveal_block)) = self.secrets.get(&lock.secrethash) else {
            return Err("SecretNotRevealed");
        };
        if reveal_block > lock.expiration {
            return Err("SecretRevealedAfterExpiration");
        }
        let key = (id, c.open_block_number, partner, lockhash);
        if self.unlocked_locks.contains(&key) {
            return Err("LockAlreadyUnlocked");
        }
        let transferred_amount = transferred_amount.checked_add(lock.amount).ok_or(PANIC)?;
        self.unlocked_locks.insert(key);
        self.channels
            .get_mut(&id)
            .expect("checked above")
            .participant_mut(partner)
            .balance_hash = StoredBalanceHash::of(transferred_amount, locksroot);
        Ok(vec![ChainEvent::ChannelUnlocked {
            channel_identifier: id,
            payer_participant: partner,
            lockhash,
            transferred_amount,
        }])
    }

    /// The channel `id` if it is in `state`, else the contract's `error` for it (a channel that
    /// does not exist has state 0 in the contract, so it fails the same check).
    fn channel_in(
        &self,
        id: ChannelId,
        state: ChannelState,
        error: Revert,
    ) -> Result<&Channel, Revert> {
        self.channels
            .get(&id)
            .filter(|c| c.state == state)
            .ok_or(error)
    }

    fn pull(&mut self, from: Address, amount: TokenAmount) {
        let e = self.paid_in.entry(from).or_default();
        *e = e.saturating_add(amount);
    }

    /// `_push`: only non-zero amounts are transferred (and recorded).
    fn credit(&mut self, to: Address, amount: TokenAmount) {
        if amount.is_zero() {
            return;
        }
        let e = self.payouts.entry(to).or_default();
        *e = e.saturating_add(amount);
    }
}

/// The signed withdraw terms as `withdraw` takes them.
struct WithdrawTerms {
    participant: Address,
    partner: Address,
    participant_balance: TokenAmount,
    participant_withdraw: TokenAmount,
    expiration: BlockNumber,
}

/// The settle timeout check of `openChannel` / `openChannelWithDeposit`.
fn check_settle_timeout(settle_timeout: BlockCount) -> Result<(), Revert> {
    if settle_timeout.0 < SETTLE_TIMEOUT_MIN || settle_timeout.0 > SETTLE_TIMEOUT_MAX {
        return Err("InvalidSettleTimeout");
    }
    Ok(())
}

/// `_settlementAmounts`: participant1 gets `deposit1 + transferred2 − transferred1` bounded to
/// `[0, total]`, participant2 the rest.
fn settlement_amounts(
    deposit1: TokenAmount,
    transferred1: TokenAmount,
    deposit2: TokenAmount,
    transferred2: TokenAmount,
) -> (TokenAmount, TokenAmount) {
    let total = deposit1.0 + deposit2.0;
    let amount1 = if transferred2 >= transferred1 {
        let gain = transferred2.0 - transferred1.0;
        if gain >= deposit2.0 {
            total
        } else {
            deposit1.0 + gain
        }
    } else {
        let loss = transferred1.0 - transferred2.0;
        if loss >= deposit1.0 {
            U256::ZERO
        } else {
            deposit1.0 - loss
        }
    };
    (TokenAmount(amount1), TokenAmount(total - amount1))
}

/// `_checkSigner(expected, digest, signature)` with `ChannelProofs.recover`: a `v` other than
/// 27/28 is malformed; otherwise the EVM's `ecrecover` (which, unlike the node's own
/// verification, accepts a high `s`) must give `expected`, and a failed recovery gives the zero
/// address.
fn check_signer(
    expected: Address,
    data: &impl SignedData,
    signature: &Signature,
) -> Result<(), Revert> {
    let v = signature.0[64];
    if v != 27 && v != 28 {
        return Err("MalformedSignature");
    }
    match ecrecover(&eip191_hash(&data.packed()), signature) {
        Some(signer) if signer == expected && signer != Address::ZERO => Ok(()),
        _ => Err("InvalidSignature"),
    }
}

/// The `ecrecover` precompile for `v ∈ {27, 28}`: `None` where it returns nothing (r or s zero
/// or not below the group order, or no point recovers).
fn ecrecover(digest: &H256, signature: &Signature) -> Option<Address> {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let recid = RecoveryId::from_u8_masked(signature.0[64] - 27);
    let rs = RecoverableSignature::from_compact(&signature.0[..64], recid).ok()?;
    let pk = rs
        .recover_ecdsa(secp256k1::Message::from_digest(digest.0))
        .ok()?;
    Some(address_of(&pk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::io::OnChainBalanceProof;
    use crate::crypto::PrivateKey;
    use crate::proofs::MerkleTree;

    const SETTLE_TIMEOUT: u64 = 10;

    /// A chain with the channel of `a` and `b` opened in block 10 (deposits 100 and 50).
    struct Fixture {
        chain: SimChain,
        tn: Address,
        a: PrivateKey,
        b: PrivateKey,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut chain = SimChain::new();
            let (_, tn, _) = chain.register_token();
            let (a, b) = (key(1), key(2));
            let f = |partner: &PrivateKey, amount: u64| ContractCall::OpenChannel {
                token_network: tn,
                partner: partner.address(),
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                deposit: TokenAmount::from(amount),
            };
            chain
                .execute(a.address(), f(&b, 100), BlockNumber(10))
                .unwrap();
            let deposit = ContractCall::Deposit {
                token_network: tn,
                partner: a.address(),
                amount: TokenAmount::from(50u64),
            };
            chain
                .execute(b.address(), deposit, BlockNumber(10))
                .unwrap();
            Fixture { chain, tn, a, b }
        }

        fn binding(&self) -> ChannelBinding {
            let id = channel_identifier(self.a.address(), self.b.address(), self.tn);
            self.chain.channels[&id].binding(id, self.chain.chain_id)
        }

        /// `payer`'s balance proof.
        fn proof(
            &self,
            payer: &PrivateKey,
            transferred: u64,
            locksroot: Locksroot,
            nonce: u64,
        ) -> OnChainBalanceProof {
            let data = BalanceProofData {
                transferred_amount: TokenAmount::from(transferred),
                locksroot,
                nonce: Nonce(nonce),
                additional_hash: H256([7; 32]),
                binding: self.binding(),
            };
            OnChainBalanceProof {
                transferred_amount: data.transferred_amount,
                locksroot,
                nonce: data.nonce,
                additional_hash: data.additional_hash,
                signature: data.sign(payer),
            }
        }

        fn run(
            &mut self,
            from: &PrivateKey,
            call: ContractCall,
            block: u64,
        ) -> Result<Vec<ChainEvent>, String> {
            self.chain.execute(from.address(), call, BlockNumber(block))
        }

        fn unlock(&self, transferred: u64, lock: Lock, tree: &MerkleTree) -> ContractCall {
            ContractCall::Unlock {
                token_network: self.tn,
                partner: self.a.address(),
                transferred_amount: TokenAmount::from(transferred),
                lock,
                merkle_proof: tree.proof(0).unwrap(),
            }
        }

        /// b closes in block 11 with a's proof paying 10 and locking `lock` (secret registered
        /// in block 11 as well).
        fn closed_with_a_lock(&mut self) -> (Lock, MerkleTree) {
            let secret = Secret(H256([9; 32]));
            let lock = Lock {
                expiration: BlockNumber(30),
                amount: TokenAmount::from(5u64),
                secrethash: secret.hash(),
            };
            let tree = MerkleTree::new(vec![lock.lockhash(), H256([3; 32])]);
            let proof = self.proof(&self.a.clone(), 10, tree.root(), 1);
            let close = ContractCall::Close {
                token_network: self.tn,
                partner: self.a.address(),
                balance_proof: Some(proof),
            };
            let b = self.b.clone();
            self.run(&b, close, 11).unwrap();
            self.run(&b, ContractCall::RegisterSecret { secret }, 11)
                .unwrap();
            (lock, tree)
        }
    }

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes([n; 32]).unwrap()
    }

    #[test]
    fn a_repeated_or_zero_secret_registration_logs_nothing_and_does_not_fail() {
        let mut chain = SimChain::new();
        let secret = Secret(H256([1; 32]));
        let who = key(1).address();
        let register = |secret| ContractCall::RegisterSecret { secret };
        assert_eq!(
            chain
                .execute(who, register(secret), BlockNumber(3))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            chain.execute(who, register(secret), BlockNumber(4)),
            Ok(vec![])
        );
        assert_eq!(
            chain.registered_secret(&secret.hash()),
            Some((secret, BlockNumber(3)))
        );
        let zero = Secret(H256::ZERO);
        assert_eq!(
            chain.execute(who, register(zero), BlockNumber(4)),
            Ok(vec![])
        );
        assert_eq!(chain.registered_secret(&zero.hash()), None);
    }

    #[test]
    fn unlock_needs_the_transferred_amount_on_chain_and_counts_a_lock_once() {
        let mut f = Fixture::new();
        let (lock, tree) = f.closed_with_a_lock();
        let b = f.b.clone();
        assert_eq!(
            f.run(&b, f.unlock(9, lock, &tree), 12),
            Err("BalanceHashMismatch".into())
        );
        let events = f.run(&b, f.unlock(10, lock, &tree), 12).unwrap();
        assert!(matches!(
            events[..],
            [ChainEvent::ChannelUnlocked { transferred_amount, .. }]
                if transferred_amount == TokenAmount::from(15u64)
        ));
        // The proof on chain now pays 15: the old amount no longer matches, the new one finds
        // the lock already unlocked.
        assert_eq!(
            f.run(&b, f.unlock(10, lock, &tree), 13),
            Err("BalanceHashMismatch".into())
        );
        assert_eq!(
            f.run(&b, f.unlock(15, lock, &tree), 13),
            Err("LockAlreadyUnlocked".into())
        );
        // After the settle window (closed in 11, timeout 10) no unlock is accepted.
        assert_eq!(
            f.run(&b, f.unlock(15, lock, &tree), 22),
            Err("SettleWindowOver".into())
        );
        assert_eq!(f.chain.failed.len(), 4);
    }

    #[test]
    fn settle_waits_for_the_punish_window_and_a_punished_cheater_loses_its_deposit() {
        let mut f = Fixture::new();
        let (lock, tree) = f.closed_with_a_lock();
        let (a, b) = (f.a.clone(), f.b.clone());
        f.run(&b, f.unlock(10, lock, &tree), 12).unwrap();
        // b had given the lock back: a punishes with b's disposed-lock signature.
        let disposed = DisposedLockData {
            lockhash: lock.lockhash(),
            binding: f.binding(),
            additional_hash: H256([8; 32]),
        };
        let (tn, cheater, additional_hash) = (f.tn, b.address(), disposed.additional_hash);
        let punish = move |signature| ContractCall::PunishObsoleteUnlock {
            token_network: tn,
            partner: cheater,
            lockhash: lock.lockhash(),
            additional_hash,
            signature,
        };
        assert_eq!(
            f.run(&a, punish(disposed.sign(&a)), 25),
            Err("InvalidSignature".into())
        );
        let events = f.run(&a, punish(disposed.sign(&b)), 25).unwrap();
        assert_eq!(
            events,
            vec![ChainEvent::ObsoleteUnlockPunished {
                channel_identifier: f.binding().channel_identifier,
                beneficiary: a.address(),
                cheater: b.address(),
            }]
        );
        assert_eq!(
            f.run(&a, punish(disposed.sign(&b)), 25),
            Err("AlreadyPunished".into())
        );
        // Settle block 21, punish window 5: settling starts at block 27; the balance proofs
        // no longer matter.
        let settle = ContractCall::Settle {
            token_network: f.tn,
            participant1: b.address(),
            participant1_transferred_amount: TokenAmount::ZERO,
            participant1_locksroot: Locksroot::default(),
            participant2: a.address(),
            participant2_transferred_amount: TokenAmount::from(1u64),
            participant2_locksroot: Locksroot::default(),
        };
        let anyone = key(3);
        assert_eq!(
            f.run(&anyone, settle.clone(), 26),
            Err("SettleTooEarly".into())
        );
        f.run(&anyone, settle, 27).unwrap();
        assert_eq!(
            f.chain.payouts.get(&a.address()),
            Some(&TokenAmount::from(150u64))
        );
        assert_eq!(f.chain.payouts.get(&b.address()), None);
        let id = channel_identifier(a.address(), b.address(), f.tn);
        assert_eq!(f.chain.channel_deposit(&id), None, "settled");
    }

    #[test]
    fn co_signed_terms_expire_after_their_block() {
        let mut f = Fixture::new();
        let (a, b) = (f.a.clone(), f.b.clone());
        let withdraw = |f: &Fixture, expiration: u64| {
            let terms = WithdrawData {
                participant: a.address(),
                participant_balance: TokenAmount::from(100u64),
                participant_withdraw: TokenAmount::from(30u64),
                expiration: BlockNumber(expiration),
                binding: f.binding(),
            };
            ContractCall::Withdraw {
                token_network: f.tn,
                participant: a.address(),
                partner: b.address(),
                participant_balance: terms.participant_balance,
                participant_withdraw: terms.participant_withdraw,
                expiration: terms.expiration,
                participant_signature: terms.sign(&a),
                partner_signature: terms.sign(&b),
            }
        };
        assert_eq!(
            f.run(&a, withdraw(&f, 19), 20),
            Err("RequestExpired".into())
        );
        f.run(&a, withdraw(&f, 20), 20).unwrap();
        assert_eq!(
            f.chain.payouts.get(&a.address()),
            Some(&TokenAmount::from(30u64))
        );
        // Deposits now 70 and 50, in the epoch of block 20.
        let settle = |f: &Fixture, expiration: u64| {
            let terms = CooperativeSettleData {
                participant1: a.address(),
                participant1_balance: TokenAmount::from(70u64),
                participant2: b.address(),
                participant2_balance: TokenAmount::from(50u64),
                expiration: BlockNumber(expiration),
                binding: f.binding(),
            };
            ContractCall::CooperativeSettle {
                token_network: f.tn,
                participant1: a.address(),
                participant1_balance: terms.participant1_balance,
                participant2: b.address(),
                participant2_balance: terms.participant2_balance,
                expiration: terms.expiration,
                participant1_signature: terms.sign(&a),
                participant2_signature: terms.sign(&b),
            }
        };
        assert_eq!(f.run(&b, settle(&f, 24), 25), Err("RequestExpired".into()));
        f.run(&b, settle(&f, 25), 25).unwrap();
        assert_eq!(
            f.chain.payouts.get(&a.address()),
            Some(&TokenAmount::from(100u64))
        );
        assert_eq!(
            f.chain.payouts.get(&b.address()),
            Some(&TokenAmount::from(50u64))
        );
    }
}
