//! The monitoring service's decisions, free of I/O: `(state, input) -> (state, calls)`.
//! Chain logs and blocks come in from the follower, delegations from the HTTP API, results of
//! transactions from the sender; contract calls go out. The shell persists the state and the
//! chain cursor together before it sends anything, and re-reads the chain just before sending
//! (so a call re-issued after a crash is skipped when the first one went through).

use crate::core::ChainEvent;
use crate::delegation::{DelegatedProof, DelegatedUnlock, DelegationPackage, PunishEvidence};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChannelId, H256, Locksroot, Nonce, Secret, SecretHash,
    TokenAmount,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where one on-chain duty stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Duty {
    /// Not (yet) asked for.
    #[default]
    Idle,
    /// Handed to the sender at this block; its result has not come back.
    InFlight {
        /// Block at which it was issued.
        since: BlockNumber,
    },
    /// Done: by our transaction, or found already done on chain (`tx` none).
    Done {
        /// Our transaction, if it was ours.
        tx: Option<H256>,
    },
}

impl Duty {
    fn is_done(&self) -> bool {
        matches!(self, Duty::Done { .. })
    }
}

/// The close of a watched channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// Block of the close.
    pub block: BlockNumber,
    /// Who closed (unknown for a delegation that arrived after the close).
    pub by: Option<Address>,
}

/// One delegation being watched, and what was done for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// The latest accepted package.
    pub package: DelegationPackage,
    /// Set once the channel is closed on chain.
    pub closed: Option<Closed>,
    /// The partner's `(transferred_amount, locksroot)` as the chain holds it after the close,
    /// once known (unlocks prove against it and add to the amount).
    pub partner_onchain: Option<(TokenAmount, Locksroot)>,
    /// `updateBalanceProofDelegate`.
    pub update: Duty,
    /// `unlockDelegate`, per lock.
    pub unlocks: BTreeMap<SecretHash, Duty>,
    /// Locks of the delegator the partner unlocked on chain although it had given them back.
    pub obsolete_unlocks: BTreeSet<H256>,
    /// `punishObsoleteUnlock`.
    pub punish: Duty,
    /// `registerSecret`, per lock whose secret nobody registered.
    #[serde(default)]
    pub registrations: BTreeMap<SecretHash, Duty>,
    /// The delegator's `(transferred_amount, locksroot)` as the chain holds it after the close,
    /// once known from the logs (settling needs both sides).
    #[serde(default)]
    pub delegator_onchain: Option<(TokenAmount, Locksroot)>,
    /// The token network's punish window (see [`OnChainFacts::punish_window`]).
    #[serde(default)]
    pub punish_window: BlockCount,
    /// `settleChannel`, once settling is allowed and nobody settled.
    #[serde(default)]
    pub settle: Duty,
    /// Failed attempts, last reason (for the status).
    pub last_failure: Option<String>,
}

impl Watch {
    fn new(package: DelegationPackage) -> Watch {
        Watch {
            package,
            closed: None,
            partner_onchain: None,
            update: Duty::Idle,
            unlocks: BTreeMap::new(),
            obsolete_unlocks: BTreeSet::new(),
            punish: Duty::Idle,
            registrations: BTreeMap::new(),
            delegator_onchain: None,
            punish_window: BlockCount(0),
            settle: Duty::Idle,
            last_failure: None,
        }
    }

    /// The contract's `settle_block_number`, once closed: the last block for updates and
    /// unlocks.
    pub fn settle_block(&self) -> Option<BlockNumber> {
        self.closed
            .map(|c| c.block.plus(self.package.settle_timeout))
    }

    /// First block `settleChannel` may be mined in: after the settle window and the punish
    /// window.
    pub fn settle_from(&self) -> Option<BlockNumber> {
        self.settle_block()
            .map(|s| BlockNumber(s.0 + self.punish_window.0 + 1))
    }

    /// First block `updateBalanceProofDelegate` may be mined in: the second half of the
    /// settle window (`settle_block − settle_timeout / 2 + 1`).
    pub fn update_from(&self) -> Option<BlockNumber> {
        let half = self.package.settle_timeout.0 / 2;
        self.settle_block()
            .map(|s| BlockNumber(s.0.saturating_sub(half) + 1))
    }
}

/// What the shell learned from the chain about a channel when a package came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainFacts {
    /// 0 none/settled, 1 open, 2 closed.
    pub state: u8,
    /// The channel's current epoch.
    pub open_block_number: BlockNumber,
    /// After a close, the last block for updates (0 while open).
    pub settle_block_number: BlockNumber,
    /// The nonce of the partner's proof the chain holds.
    pub partner_nonce: Nonce,
    /// The partner's balance hash the chain holds (see [`stored_balance_hash`]).
    pub partner_balance_hash: [u8; 24],
    /// The confirmed head.
    pub head: BlockNumber,
    /// The token network's `punish_block_number`: settling is allowed only this many blocks
    /// after the settle window.
    pub punish_window: BlockCount,
}

/// The balance hash the contract stores for a proof: the first 24 bytes of
/// `keccak256(locksroot ‖ transferred_amount)` (zero for the empty proof).
pub fn stored_balance_hash(transferred_amount: TokenAmount, locksroot: Locksroot) -> [u8; 24] {
    let mut prefix = [0u8; 24];
    prefix.copy_from_slice(&crate::proofs::balance_hash(transferred_amount, locksroot).0[..24]);
    prefix
}

impl Refusal {
    /// Whether the service (or the chain) already holds this proof or a newer one: for the
    /// delegator, nothing more to hand over.
    pub fn already_held(&self) -> bool {
        matches!(
            self,
            Refusal::NotNewer { .. } | Refusal::ChainHoldsNewer { .. }
        )
    }
}

/// Why a delegation is refused (nothing changes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No balance proof from the partner: nothing to defend.
    #[error("the package carries no balance proof of the partner")]
    NoProof,
    /// Not newer than what the service holds.
    #[error("nonce {offered} is not newer than the stored delegation's nonce {stored}")]
    NotNewer {
        /// Stored.
        stored: Nonce,
        /// Offered.
        offered: Nonce,
    },
    /// Not newer than what the chain holds.
    #[error("nonce {offered} is not newer than the nonce {chain} the chain holds")]
    ChainHoldsNewer {
        /// On chain.
        chain: Nonce,
        /// Offered.
        offered: Nonce,
    },
    /// The channel is settled, or was never opened.
    #[error("channel {0} is not open or closed on chain (settled or unknown)")]
    NoChannel(ChannelId),
    /// The package's epoch is not the chain's.
    #[error("the package is for open block {package}, the channel on chain opened at {chain}")]
    WrongEpoch {
        /// On chain.
        chain: BlockNumber,
        /// In the package.
        package: BlockNumber,
    },
    /// The settle window is over: nothing can be submitted any more.
    #[error("the settle window ended at block {0}")]
    WindowOver(BlockNumber),
    /// The delegator watches as many channels as it may.
    #[error("the delegator already has {0} delegations (the limit)")]
    Quota(usize),
}

/// A transaction for the shell to send (after re-reading the chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorCall {
    /// `updateBalanceProofDelegate(partner, delegator, …)`.
    Update {
        /// The channel.
        channel: ChannelId,
        /// The token network.
        token_network: Address,
        /// Whose proof is submitted.
        partner: Address,
        /// Who delegated.
        delegator: Address,
        /// The proof with both signatures.
        proof: DelegatedProof,
    },
    /// `unlockDelegate(partner, delegator, transferred_amount, lock, proof, signature)`.
    Unlock {
        /// The channel.
        channel: ChannelId,
        /// The token network.
        token_network: Address,
        /// The payer of the lock.
        partner: Address,
        /// The payee, who delegated.
        delegator: Address,
        /// The partner's transferred amount as the chain holds it now.
        transferred_amount: TokenAmount,
        /// The nonce of the delegated proof the lock belongs to.
        nonce: Nonce,
        /// Its locksroot.
        locksroot: Locksroot,
        /// The lock, its Merkle proof and the delegation signature.
        unlock: DelegatedUnlock,
    },
    /// `registerSecret(secret)` in the SecretRegistry: nobody registered a delegated lock's
    /// secret, and the unlock needs it registered by the lock's expiration.
    RegisterSecret {
        /// The channel.
        channel: ChannelId,
        /// The secret.
        secret: Secret,
    },
    /// `settleChannel` with both sides as the chain holds them: nobody settled once it was
    /// allowed (the delegator is away, the partner has nothing to gain).
    Settle {
        /// The channel.
        channel: ChannelId,
        /// The token network.
        token_network: Address,
        /// Who delegated, and its `(transferred_amount, locksroot)` on chain.
        delegator: (Address, TokenAmount, Locksroot),
        /// Its partner, likewise.
        partner: (Address, TokenAmount, Locksroot),
    },
    /// `punishObsoleteUnlock(delegator, partner, …)`.
    Punish {
        /// The channel.
        channel: ChannelId,
        /// The token network.
        token_network: Address,
        /// Who gains.
        delegator: Address,
        /// Who unlocked a lock it had given back.
        partner: Address,
        /// The partner's signed statement.
        evidence: PunishEvidence,
    },
}

impl MonitorCall {
    /// The channel concerned.
    pub fn channel(&self) -> ChannelId {
        match self {
            MonitorCall::Update { channel, .. }
            | MonitorCall::Unlock { channel, .. }
            | MonitorCall::RegisterSecret { channel, .. }
            | MonitorCall::Settle { channel, .. }
            | MonitorCall::Punish { channel, .. } => *channel,
        }
    }

    /// Which duty of its watch it carries out.
    pub fn duty(&self) -> DutyKind {
        match self {
            MonitorCall::Update { .. } => DutyKind::Update,
            MonitorCall::Unlock { unlock, .. } => DutyKind::Unlock(unlock.secrethash),
            MonitorCall::RegisterSecret { secret, .. } => DutyKind::Register(secret.hash()),
            MonitorCall::Settle { .. } => DutyKind::Settle,
            MonitorCall::Punish { .. } => DutyKind::Punish,
        }
    }
}

/// Names one duty of a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DutyKind {
    /// The balance-proof update.
    Update,
    /// The unlock of one lock.
    Unlock(SecretHash),
    /// The registration of one lock's secret.
    Register(SecretHash),
    /// The settlement.
    Settle,
    /// The punishment.
    Punish,
}

/// How a call ended, as the sender reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Mined successfully.
    Mined(H256),
    /// Re-reading the chain showed it is not needed (already done by someone).
    NotNeeded,
    /// It did not go through (reverted, or the endpoint failed): tried again later.
    Failed(String),
}

/// An input to [`MonitorState::step`].
#[derive(Clone, Debug)]
pub enum MonitorInput {
    /// A confirmed contract log.
    Chain(ChainEvent),
    /// Confirmed up to this block: duties falling due are issued.
    Block(BlockNumber),
    /// The result of a call issued earlier.
    CallDone {
        /// The channel.
        channel: ChannelId,
        /// The duty.
        duty: DutyKind,
        /// What happened.
        result: CallResult,
    },
}

/// Limits of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorLimits {
    /// Delegations one delegator may hold.
    pub per_delegator: usize,
    /// Unlocks plus punish items per package.
    pub items_per_package: usize,
    /// Blocks after which an issued call without a result is issued again.
    pub resend_after: BlockCount,
    /// Blocks the participants have to settle a channel themselves before the service does
    /// (a node settles at the first allowed block; 20 blocks are minutes on a public chain).
    pub settle_grace: BlockCount,
}

impl Default for MonitorLimits {
    fn default() -> Self {
        MonitorLimits {
            per_delegator: 1_000,
            items_per_package: 64,
            resend_after: BlockCount(20),
            settle_grace: BlockCount(20),
        }
    }
}

/// Everything the service persists besides its cursor.
#[derive(Clone, Debug, Default)]
pub struct MonitorState {
    /// Watched channels.
    pub watches: BTreeMap<ChannelId, Watch>,
    /// Delegations per delegator (for the quota).
    per_delegator: BTreeMap<Address, usize>,
    /// Blocks at which secrets of watched locks were registered.
    pub registered: BTreeMap<SecretHash, BlockNumber>,
    /// Last block processed.
    pub block: BlockNumber,
    /// Watches changed since the shell last took them (to persist only those).
    dirty: BTreeSet<ChannelId>,
    /// Secrets registered since the shell last took them.
    dirty_secrets: BTreeSet<SecretHash>,
}

/// What changed in a step, for the shell to write in one batch with its cursor.
#[derive(Debug, Default)]
pub struct Changes {
    /// Watches to write (`None`: delete).
    pub watches: Vec<(ChannelId, Option<Watch>)>,
    /// Secret registrations to write (`None`: delete, no watched lock needs it any more).
    pub secrets: Vec<(SecretHash, Option<BlockNumber>)>,
}

/// Whether `package` carries the proof `w` holds with something more (an unlock, punish
/// evidence, a lock the delegator gave back) and keeps everything `w` has, except unlocks of
/// locks it now says were given back. An older package replayed never takes a given-back lock
/// off the list.
fn is_refresh(w: &Watch, package: &DelegationPackage) -> bool {
    let old = &w.package;
    let kept = old.balance_proof.is_some()
        && old.balance_proof == package.balance_proof
        && old
            .unlocks
            .iter()
            .all(|u| package.unlocks.contains(u) || package.given_back.contains(&u.secrethash))
        && old.punishes.iter().all(|p| package.punishes.contains(p))
        && old
            .given_back
            .iter()
            .all(|h| package.given_back.contains(h));
    let more = package.unlocks.iter().any(|u| !old.unlocks.contains(u))
        || package.punishes.len() > old.punishes.len()
        || package.given_back.len() > old.given_back.len();
    kept && more
}

impl MonitorState {
    /// A state restored from persisted watches and registrations at cursor `block`. Calls
    /// that were in flight when the previous run stopped are issued again (the shell's
    /// re-reading of the chain skips those that went through).
    pub fn restore(
        watches: impl IntoIterator<Item = Watch>,
        registered: BTreeMap<SecretHash, BlockNumber>,
        block: BlockNumber,
    ) -> MonitorState {
        let mut s = MonitorState {
            registered,
            block,
            ..MonitorState::default()
        };
        for mut w in watches {
            for d in std::iter::once(&mut w.update)
                .chain(std::iter::once(&mut w.punish))
                .chain(std::iter::once(&mut w.settle))
                .chain(w.unlocks.values_mut())
                .chain(w.registrations.values_mut())
            {
                if matches!(d, Duty::InFlight { .. }) {
                    *d = Duty::Idle;
                }
            }
            *s.per_delegator.entry(w.package.delegator).or_default() += 1;
            s.watches.insert(w.package.channel_identifier, w);
        }
        s
    }

    /// What changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let watches = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|c| (c, self.watches.get(&c).cloned()))
            .collect();
        let secrets = std::mem::take(&mut self.dirty_secrets)
            .into_iter()
            .map(|h| (h, self.registered.get(&h).copied()))
            .collect();
        Changes { watches, secrets }
    }

    /// Delegations held for `delegator`.
    pub fn delegations_of(&self, delegator: &Address) -> usize {
        self.per_delegator.get(delegator).copied().unwrap_or(0)
    }

    /// Accepts a package whose signatures were verified, given what the chain holds, or
    /// refuses it without changing anything. `registered` are the reveal blocks of its locks'
    /// secrets already on chain.
    pub fn submit(
        &mut self,
        package: DelegationPackage,
        chain: OnChainFacts,
        registered: &[(SecretHash, BlockNumber)],
        limits: &MonitorLimits,
    ) -> Result<(), Refusal> {
        let channel = package.channel_identifier;
        let Some(proof) = package.balance_proof else {
            return Err(Refusal::NoProof);
        };
        if chain.state != 1 && chain.state != 2 {
            return Err(Refusal::NoChannel(channel));
        }
        if chain.open_block_number != package.open_block_number {
            return Err(Refusal::WrongEpoch {
                chain: chain.open_block_number,
                package: package.open_block_number,
            });
        }
        if chain.state == 2 && chain.head >= chain.settle_block_number {
            return Err(Refusal::WindowOver(chain.settle_block_number));
        }
        // After the close the chain may hold exactly this proof already (the delegator closed
        // with it, or updated itself): nothing to update, but its registered locks are still to
        // be unlocked and an obsolete unlock still punished.
        let chain_holds_this = chain.state == 2
            && proof.nonce == chain.partner_nonce
            && chain.partner_balance_hash
                == stored_balance_hash(proof.transferred_amount, proof.locksroot)
            && !(package.unlocks.is_empty() && package.punishes.is_empty());
        // More unlocks or punish items for the proof we hold and the chain holds, whose balance
        // hash has moved since with the locks already unlocked on chain.
        let refresh_of_onchain = self.watches.get(&channel).is_some_and(|w| {
            proof.nonce == chain.partner_nonce
                && is_refresh(w, &package)
                && w.partner_onchain
                    .is_some_and(|(_, root)| root == proof.locksroot)
        });
        if proof.nonce <= chain.partner_nonce && !chain_holds_this && !refresh_of_onchain {
            return Err(Refusal::ChainHoldsNewer {
                chain: chain.partner_nonce,
                offered: proof.nonce,
            });
        }
        match self.watches.get(&channel) {
            Some(w) => {
                let stored = w.package.nonce();
                if proof.nonce < stored || (proof.nonce == stored && !is_refresh(w, &package)) {
                    return Err(Refusal::NotNewer {
                        stored,
                        offered: proof.nonce,
                    });
                }
            }
            None => {
                let held = self.delegations_of(&package.delegator);
                if held >= limits.per_delegator {
                    return Err(Refusal::Quota(held));
                }
                *self.per_delegator.entry(package.delegator).or_default() += 1;
            }
        }
        let old = self.watches.remove(&channel);
        let mut w = Watch::new(package);
        if let Some(old) = old {
            // What the chain did stays true for the new package; what we did for the old
            // proof is redone for the newer one.
            w.closed = old.closed;
            w.partner_onchain = old.partner_onchain;
            w.delegator_onchain = old.delegator_onchain;
            w.settle = old.settle;
            w.obsolete_unlocks = old.obsolete_unlocks;
            w.punish = old.punish;
            if old.package.balance_proof == w.package.balance_proof {
                w.update = old.update;
                w.unlocks = old.unlocks;
                w.registrations = old.registrations;
            }
        }
        w.punish_window = chain.punish_window;
        // A lock the delegator gave back is never unlocked nor registered for it.
        {
            let given_back = &w.package.given_back;
            w.unlocks.retain(|h, _| !given_back.contains(h));
            w.registrations.retain(|h, _| !given_back.contains(h));
        }
        if w.closed.is_none() && chain.state == 2 {
            w.closed = Some(Closed {
                block: BlockNumber(
                    chain
                        .settle_block_number
                        .0
                        .saturating_sub(w.package.settle_timeout.0),
                ),
                by: None,
            });
        }
        if chain_holds_this {
            w.update = Duty::Done { tx: None };
            w.partner_onchain = Some((proof.transferred_amount, proof.locksroot));
        }
        for u in &w.package.unlocks {
            w.unlocks.entry(u.secrethash).or_default();
        }
        for (h, b) in registered {
            if w.unlocks.contains_key(h) && self.registered.insert(*h, *b).is_none() {
                self.dirty_secrets.insert(*h);
            }
        }
        self.watches.insert(channel, w);
        self.dirty.insert(channel);
        Ok(())
    }

    /// Records locks of the delegator's punish items that the partner had already unlocked on
    /// chain when the delegation came in (their logs went by before it): punished at the next
    /// block.
    pub fn obsolete_unlocks_found(&mut self, channel: &ChannelId, lockhashes: &[H256]) {
        let Some(w) = self.watches.get_mut(channel) else {
            return;
        };
        for h in lockhashes {
            if w.package.punishes.iter().any(|p| p.lockhash == *h) && w.obsolete_unlocks.insert(*h)
            {
                self.dirty.insert(*channel);
            }
        }
    }

    /// Forgets a delegation at its delegator's request; false if there was none.
    pub fn withdraw(&mut self, channel: &ChannelId, delegator: Address) -> bool {
        match self.watches.get(channel) {
            Some(w) if w.package.delegator == delegator => {
                self.forget(channel);
                true
            }
            _ => false,
        }
    }

    fn forget(&mut self, channel: &ChannelId) {
        if let Some(w) = self.watches.remove(channel) {
            let d = w.package.delegator;
            if let Some(n) = self.per_delegator.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    self.per_delegator.remove(&d);
                }
            }
            for h in w.unlocks.keys() {
                let shared = self.watches.values().any(|o| o.unlocks.contains_key(h));
                if !shared && self.registered.remove(h).is_some() {
                    self.dirty_secrets.insert(*h);
                }
            }
            self.dirty.insert(*channel);
        }
    }

    /// Applies one input; returns the calls to send once the new state is persisted.
    pub fn step(&mut self, input: MonitorInput, limits: &MonitorLimits) -> Vec<MonitorCall> {
        match input {
            MonitorInput::Chain(event) => {
                self.on_event(event);
                Vec::new()
            }
            MonitorInput::Block(b) => {
                self.block = self.block.max(b);
                self.due_calls(limits)
            }
            MonitorInput::CallDone {
                channel,
                duty,
                result,
            } => {
                self.on_call_done(channel, duty, result);
                Vec::new()
            }
        }
    }

    fn watch_mut(&mut self, channel: &ChannelId) -> Option<&mut Watch> {
        let w = self.watches.get_mut(channel)?;
        self.dirty.insert(*channel);
        Some(w)
    }

    fn on_event(&mut self, event: ChainEvent) {
        match event {
            ChainEvent::ChannelClosed {
                channel_identifier,
                closing_participant,
                transferred_amount,
                locksroot,
                block_number,
            } => {
                let Some(w) = self.watch_mut(&channel_identifier) else {
                    return;
                };
                w.closed = Some(Closed {
                    block: block_number,
                    by: Some(closing_participant),
                });
                // The closer submits its partner's proof: the delegator's close carries the
                // partner's; the partner's close leaves the partner's side empty.
                let submitted = Some((transferred_amount, locksroot));
                let empty = Some((TokenAmount::ZERO, Locksroot::default()));
                if closing_participant == w.package.delegator {
                    (w.partner_onchain, w.delegator_onchain) = (submitted, empty);
                } else {
                    (w.partner_onchain, w.delegator_onchain) = (empty, submitted);
                }
            }
            ChainEvent::BalanceProofUpdated {
                channel_identifier,
                participant,
                transferred_amount,
                locksroot,
            } => {
                let Some(w) = self.watch_mut(&channel_identifier) else {
                    return;
                };
                if participant == w.package.delegator {
                    w.delegator_onchain = Some((transferred_amount, locksroot));
                    return;
                }
                if participant != w.package.partner {
                    return;
                }
                w.partner_onchain = Some((transferred_amount, locksroot));
                if let Some(p) = &w.package.balance_proof
                    && p.transferred_amount == transferred_amount
                    && p.locksroot == locksroot
                    && !w.update.is_done()
                {
                    // Ours or the node's own: either way the chain holds our proof.
                    if !matches!(w.update, Duty::InFlight { .. }) {
                        w.update = Duty::Done { tx: None };
                    }
                }
            }
            ChainEvent::ChannelUnlocked {
                channel_identifier,
                payer_participant,
                lockhash,
                transferred_amount,
            } => {
                let Some(w) = self.watch_mut(&channel_identifier) else {
                    return;
                };
                if payer_participant == w.package.partner {
                    let unlocked = w
                        .package
                        .unlocks
                        .iter()
                        .find(|u| u.lock().lockhash() == lockhash)
                        .map(|u| u.secrethash);
                    match (&mut w.partner_onchain, &w.package.balance_proof) {
                        (Some((t, _)), _) => *t = transferred_amount,
                        // One of our locks unlocked: the chain holds our proof.
                        (None, Some(p)) if unlocked.is_some() => {
                            w.partner_onchain = Some((transferred_amount, p.locksroot));
                        }
                        _ => {}
                    }
                    if let Some(h) = unlocked
                        && let Some(d) = w.unlocks.get_mut(&h)
                        && !matches!(d, Duty::InFlight { .. })
                    {
                        *d = Duty::Done { tx: None };
                    }
                } else if payer_participant == w.package.delegator {
                    if let Some((t, _)) = &mut w.delegator_onchain {
                        *t = transferred_amount;
                    }
                    if w.package.punishes.iter().any(|p| p.lockhash == lockhash) {
                        w.obsolete_unlocks.insert(lockhash);
                    }
                }
            }
            ChainEvent::ObsoleteUnlockPunished {
                channel_identifier,
                beneficiary,
                ..
            } => {
                if let Some(w) = self.watch_mut(&channel_identifier)
                    && beneficiary == w.package.delegator
                    && !matches!(w.punish, Duty::InFlight { .. })
                {
                    w.punish = Duty::Done { tx: None };
                }
            }
            ChainEvent::SecretRegistered {
                secrethash,
                block_number,
                ..
            } => {
                let watched = self
                    .watches
                    .values()
                    .any(|w| w.unlocks.contains_key(&secrethash));
                if watched && !self.registered.contains_key(&secrethash) {
                    self.registered.insert(secrethash, block_number);
                    self.dirty_secrets.insert(secrethash);
                }
                let mut ours = Vec::new();
                for (channel, w) in self.watches.iter_mut() {
                    if let Some(d) = w.registrations.get_mut(&secrethash)
                        && !matches!(d, Duty::InFlight { .. })
                    {
                        *d = Duty::Done { tx: None };
                        ours.push(*channel);
                    }
                }
                self.dirty.extend(ours);
            }
            ChainEvent::ChannelSettled { channel_identifier }
            | ChainEvent::ChannelCooperativeSettled { channel_identifier }
            | ChainEvent::ChannelWithdraw {
                channel_identifier, ..
            } => self.forget(&channel_identifier),
            _ => {}
        }
    }

    fn on_call_done(&mut self, channel: ChannelId, duty: DutyKind, result: CallResult) {
        let Some(w) = self.watch_mut(&channel) else {
            return;
        };
        let d = match duty {
            DutyKind::Update => &mut w.update,
            DutyKind::Punish => &mut w.punish,
            DutyKind::Settle => &mut w.settle,
            DutyKind::Unlock(h) => match w.unlocks.get_mut(&h) {
                Some(d) => d,
                None => return,
            },
            DutyKind::Register(h) => match w.registrations.get_mut(&h) {
                Some(d) => d,
                None => return,
            },
        };
        *d = match result {
            CallResult::Mined(tx) => Duty::Done { tx: Some(tx) },
            CallResult::NotNeeded => Duty::Done { tx: None },
            CallResult::Failed(reason) => {
                w.last_failure = Some(reason);
                Duty::Idle
            }
        };
    }

    /// The calls due at the current block: each duty is issued when its window is open and
    /// issued again if its result has not come back after `resend_after` blocks.
    fn due_calls(&mut self, limits: &MonitorLimits) -> Vec<MonitorCall> {
        let now = self.block;
        // A transaction sent now is mined in a later block.
        let next = BlockNumber(now.0 + 1);
        let stale = |d: &Duty| match d {
            Duty::Idle => true,
            Duty::InFlight { since } => now.0 >= since.0 + limits.resend_after.0,
            Duty::Done { .. } => false,
        };
        let mut calls = Vec::new();
        for (channel, w) in self.watches.iter_mut() {
            let (Some(settle_block), Some(update_from)) = (w.settle_block(), w.update_from())
            else {
                continue;
            };
            let p = &w.package;
            let Some(proof) = p.balance_proof else {
                continue;
            };
            let mut issue = |d: &mut Duty, call: MonitorCall, calls: &mut Vec<MonitorCall>| {
                *d = Duty::InFlight { since: now };
                calls.push(call);
                self.dirty.insert(*channel);
            };
            let in_window = next <= settle_block;
            // The chain holds our proof: seen in a log, or (for a delegation that arrived after
            // the close, whose logs came before it) known because the update is done; the
            // shell compares the on-chain balance hash and nonce with the proof before sending.
            let holds_ours = match w.partner_onchain {
                Some((_, root)) => root == proof.locksroot,
                None => w.update.is_done(),
            };
            if in_window && next >= update_from && stale(&w.update) {
                let call = MonitorCall::Update {
                    channel: *channel,
                    token_network: p.token_network,
                    partner: p.partner,
                    delegator: p.delegator,
                    proof,
                };
                issue(&mut w.update, call, &mut calls);
            }
            // One unlock at a time: each changes the transferred amount the next proves with.
            let unlocking = w
                .unlocks
                .values()
                .any(|d| matches!(d, Duty::InFlight { .. }) && !stale(d));
            if in_window && holds_ours && !unlocking {
                let transferred = w
                    .partner_onchain
                    .map_or(proof.transferred_amount, |(t, _)| t);
                let ready = p.unlocks.iter().find(|u| {
                    w.unlocks.get(&u.secrethash).is_some_and(stale)
                        && self
                            .registered
                            .get(&u.secrethash)
                            .is_some_and(|b| *b <= u.expiration)
                });
                if let Some(u) = ready {
                    let call = MonitorCall::Unlock {
                        channel: *channel,
                        token_network: p.token_network,
                        partner: p.partner,
                        delegator: p.delegator,
                        transferred_amount: transferred,
                        nonce: proof.nonce,
                        locksroot: proof.locksroot,
                        unlock: u.clone(),
                    };
                    let d = w.unlocks.get_mut(&u.secrethash).expect("checked above");
                    issue(d, call, &mut calls);
                }
            }
            // A delegated lock's secret nobody registered: registered while the unlock can still
            // count it (a registration after the lock's expiration does not).
            if in_window {
                for u in &p.unlocks {
                    let Some(secret) = u.secret else { continue };
                    if next > u.expiration || self.registered.contains_key(&u.secrethash) {
                        continue;
                    }
                    let d = w.registrations.entry(u.secrethash).or_default();
                    if stale(d) {
                        let call = MonitorCall::RegisterSecret {
                            channel: *channel,
                            secret,
                        };
                        issue(d, call, &mut calls);
                    }
                }
            }
            // Nobody settled once it was allowed: settle, after a grace for the participants,
            // and never before a due punishment went through (a settle would void it).
            let punish_due = !w.obsolete_unlocks.is_empty() && !w.punish.is_done();
            if let (Some(from), Some(ours), Some(theirs)) =
                (w.settle_from(), w.delegator_onchain, w.partner_onchain)
                && next.0 >= from.0 + limits.settle_grace.0
                && stale(&w.settle)
                && !unlocking
                && !punish_due
            {
                let call = MonitorCall::Settle {
                    channel: *channel,
                    token_network: p.token_network,
                    delegator: (p.delegator, ours.0, ours.1),
                    partner: (p.partner, theirs.0, theirs.1),
                };
                issue(&mut w.settle, call, &mut calls);
            }
            if stale(&w.punish)
                && let Some(e) = p
                    .punishes
                    .iter()
                    .find(|e| w.obsolete_unlocks.contains(&e.lockhash))
            {
                let call = MonitorCall::Punish {
                    channel: *channel,
                    token_network: p.token_network,
                    delegator: p.delegator,
                    partner: p.partner,
                    evidence: *e,
                };
                issue(&mut w.punish, call, &mut calls);
            }
        }
        calls
    }
}
