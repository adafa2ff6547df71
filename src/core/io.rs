//! What goes into the core and what comes out, named by origin and destination:
//! `Action` (the user), `Receive` (a peer's message), `ChainEvent` (a contract log), `Block`
//! (a tick); `Send` (a message), `ContractCall` (a transaction), `Notification` (an event).

use crate::primitives::{
    Address, BlockCount, BlockNumber, ChannelId, H256, Locksroot, Nonce, Secret, SecretHash,
    Signature, TokenAmount,
};
use crate::proofs::Lock;
use serde::{Deserialize, Serialize};

/// An input to [`super::Core::step`].
#[derive(Clone, Debug)]
pub enum Input {
    /// Wire bytes from any transport; the sender is recovered from the signature.
    Receive(Vec<u8>),
    /// A confirmed contract log. All logs of block `n` come before `Block(n)`.
    ContractReceive(ChainEvent),
    /// The confirmed chain head moved.
    Block(BlockNumber),
    /// The chain follower reached the RPC endpoint and saw the confirmed head at this block;
    /// `Block` inputs up to it may still be on their way. Sent at least every few seconds
    /// while the endpoint answers: the core counts its view stale without it.
    ChainHead(BlockNumber),
    /// The XMPP link came up (true) or went down (false).
    XmppLink(bool),
    /// A transaction the core asked for did not go through (or its fate is unknown).
    ContractFailed {
        /// The call, as the core emitted it.
        call: ContractCall,
        /// Why.
        failure: ContractFailure,
    },
    /// Time passed (the context's `now_ms`): retransmissions fall due.
    Tick,
    /// The node restarted from its persisted state and has followed the chain to the head:
    /// on-chain duties whose transactions may have died with the process are issued again.
    Resume,
    /// What the shell learned from the monitoring service (`--monitor`).
    Monitor(super::MonitorReport),
    /// A peer's reachability changed (presence).
    PeerReachability {
        /// The peer.
        peer: Address,
        /// Whether it is online.
        online: bool,
    },
}

/// Why a transaction failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractFailure {
    /// The contract refused it (during gas estimation or when mined); `error` names the
    /// contract's custom error when known (`BalanceHashMismatch`, `SettleWindowOver`…).
    Reverted {
        /// The contract's error name, or a description.
        error: String,
    },
    /// The endpoint failed or the transaction was not mined in time: it may still go through.
    Unavailable {
        /// What failed.
        reason: String,
    },
}

impl ContractFailure {
    /// The contract's error name, if the contract refused.
    pub fn revert_error(&self) -> Option<&str> {
        match self {
            ContractFailure::Reverted { error } => Some(error),
            ContractFailure::Unavailable { .. } => None,
        }
    }
}

impl std::fmt::Display for ContractFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContractFailure::Reverted { error } => write!(f, "reverted: {error}"),
            ContractFailure::Unavailable { reason } => write!(f, "not confirmed: {reason}"),
        }
    }
}

/// A user's request.
#[derive(Clone, Debug)]
pub enum Action {
    /// Open a channel (with an initial deposit when `deposit > 0`).
    OpenChannel {
        /// The token.
        token: Address,
        /// The partner.
        partner: Address,
        /// Deposit to lock in.
        deposit: TokenAmount,
        /// Settle window in blocks.
        settle_timeout: BlockCount,
    },
    /// Deposit `amount` more into a channel.
    Deposit {
        /// The channel.
        channel: ChannelId,
        /// How much more.
        amount: TokenAmount,
    },
    /// Pay `amount` of `token` to `target`.
    Transfer(TransferRequest),
    /// Stop a transfer whose secret was not revealed yet.
    CancelTransfer {
        /// The transfer.
        secrethash: SecretHash,
    },
    /// Release a transfer that was sent with a user-held secret.
    AllowRevealSecret {
        /// The transfer.
        secrethash: SecretHash,
    },
    /// Close a channel unilaterally with the partner's latest balance proof.
    Close {
        /// The channel.
        channel: ChannelId,
    },
    /// Settle a closed channel after its window.
    Settle {
        /// The channel.
        channel: ChannelId,
    },
    /// Ask the partner to co-sign a withdraw of `amount`, the channel staying open.
    Withdraw {
        /// The channel.
        channel: ChannelId,
        /// How much to take out.
        amount: TokenAmount,
    },
    /// Ask the partner to co-sign a settlement at current balances.
    CooperativeSettle {
        /// The channel.
        channel: ChannelId,
    },
    /// Register a secret on chain.
    RegisterSecret {
        /// The secret.
        secret: Secret,
    },
    /// Switch no-internet mode on or off (`GET /api/1/switch/{bool}`).
    SetNoInternet(bool),
}

/// A payment request.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    /// The token.
    pub token: Address,
    /// The payee.
    pub target: Address,
    /// What the payee receives.
    pub amount: TokenAmount,
    /// Most the payer will pay in fees (default: the route's fees).
    pub max_fee: Option<TokenAmount>,
    /// Pay a direct partner with a DirectTransfer (no lock).
    pub is_direct: bool,
    /// A user secret: the transfer waits for `AllowRevealSecret` before revealing it.
    pub secret: Option<Secret>,
    /// The caller's payment identifier: while a transfer with it to the same target runs, a
    /// second request with it is refused, so a retry after a timeout never pays twice.
    pub identifier: Option<u64>,
}

/// A contract log the node follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainEvent {
    /// The registry created a token network.
    TokenNetworkCreated {
        /// The token.
        token: Address,
        /// Its network.
        token_network: Address,
        /// Blocks after a channel's settle window reserved for punishment (the network's
        /// `punish_block_number`): settling earlier reverts.
        punish_window: BlockCount,
    },
    /// A channel opened.
    ChannelOpened {
        /// The token network.
        token_network: Address,
        /// The channel.
        channel_identifier: ChannelId,
        /// One participant.
        participant1: Address,
        /// The other.
        participant2: Address,
        /// Settle window.
        settle_timeout: BlockCount,
        /// Block of opening.
        open_block_number: BlockNumber,
    },
    /// A participant's total deposit changed.
    ChannelDeposit {
        /// The channel.
        channel_identifier: ChannelId,
        /// Who.
        participant: Address,
        /// New total.
        total_deposit: TokenAmount,
    },
    /// A co-signed withdraw went through: new deposits, new epoch.
    ChannelWithdraw {
        /// The channel.
        channel_identifier: ChannelId,
        /// First participant.
        participant1: Address,
        /// Its deposit after the withdraw.
        participant1_deposit: TokenAmount,
        /// Second participant.
        participant2: Address,
        /// Its deposit after the withdraw.
        participant2_deposit: TokenAmount,
        /// The new `open_block_number`.
        open_block_number: BlockNumber,
    },
    /// The channel was closed; the closer submitted its partner's balance proof (zero
    /// amounts when it submitted none).
    ChannelClosed {
        /// The channel.
        channel_identifier: ChannelId,
        /// Who closed it.
        closing_participant: Address,
        /// The submitted `transferred_amount` of the closer's partner.
        transferred_amount: TokenAmount,
        /// The submitted locksroot of the closer's partner.
        locksroot: Locksroot,
        /// Block of closing.
        block_number: BlockNumber,
    },
    /// A newer balance proof of `participant` was submitted on chain after the close.
    BalanceProofUpdated {
        /// The channel.
        channel_identifier: ChannelId,
        /// Whose proof.
        participant: Address,
        /// Its `transferred_amount`.
        transferred_amount: TokenAmount,
        /// Its locksroot.
        locksroot: Locksroot,
    },
    /// A lock was unlocked on chain.
    ChannelUnlocked {
        /// The channel.
        channel_identifier: ChannelId,
        /// Who paid the lock.
        payer_participant: Address,
        /// The lock.
        lockhash: H256,
        /// The payer's `transferred_amount` on chain after the unlock (lock included).
        transferred_amount: TokenAmount,
    },
    /// Settled and paid out; the channel is gone.
    ChannelSettled {
        /// The channel.
        channel_identifier: ChannelId,
    },
    /// Cooperatively settled; the channel is gone.
    ChannelCooperativeSettled {
        /// The channel.
        channel_identifier: ChannelId,
    },
    /// A participant who unlocked a disposed lock lost its deposit.
    ObsoleteUnlockPunished {
        /// The channel.
        channel_identifier: ChannelId,
        /// Who gained.
        beneficiary: Address,
        /// Who cheated.
        cheater: Address,
    },
    /// A secret was registered in the SecretRegistry.
    SecretRegistered {
        /// `sha256(secret)`.
        secrethash: SecretHash,
        /// The secret itself.
        secret: Secret,
        /// Block of registration.
        block_number: BlockNumber,
    },
}

/// A balance proof as submitted on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnChainBalanceProof {
    /// Cumulative amount paid.
    pub transferred_amount: TokenAmount,
    /// Pending locks' root.
    pub locksroot: Locksroot,
    /// Sequence number.
    pub nonce: Nonce,
    /// `keccak256` of the message body.
    pub additional_hash: H256,
    /// The signer's signature over the SPEC §2 data.
    pub signature: Signature,
}

/// A transaction the core asks the shell to submit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractCall {
    /// `openChannelWithDeposit` (or `openChannel` when `deposit` is zero).
    OpenChannel {
        /// Token network.
        token_network: Address,
        /// Partner.
        partner: Address,
        /// Settle window.
        settle_timeout: BlockCount,
        /// Initial deposit.
        deposit: TokenAmount,
    },
    /// `deposit`.
    Deposit {
        /// Token network.
        token_network: Address,
        /// Partner.
        partner: Address,
        /// Amount added.
        amount: TokenAmount,
    },
    /// `closeChannel` with the partner's latest proof (or none).
    Close {
        /// Token network.
        token_network: Address,
        /// Partner.
        partner: Address,
        /// The partner's latest proof, if it ever sent one.
        balance_proof: Option<OnChainBalanceProof>,
    },
    /// `updateBalanceProof` with the partner's newer proof.
    UpdateBalanceProof {
        /// Token network.
        token_network: Address,
        /// Partner.
        partner: Address,
        /// The newer proof.
        balance_proof: OnChainBalanceProof,
    },
    /// `unlock` of a partner's lock toward us whose secret is registered.
    Unlock {
        /// Token network.
        token_network: Address,
        /// Partner (the lock's payer).
        partner: Address,
        /// The partner's transferred amount on chain.
        transferred_amount: TokenAmount,
        /// The lock.
        lock: Lock,
        /// Its Merkle proof against the partner's locksroot.
        merkle_proof: Vec<H256>,
    },
    /// `settleChannel`.
    Settle {
        /// Token network.
        token_network: Address,
        /// Us.
        participant1: Address,
        /// Our transferred amount.
        participant1_transferred_amount: TokenAmount,
        /// Our locksroot.
        participant1_locksroot: Locksroot,
        /// Partner.
        participant2: Address,
        /// Partner's transferred amount.
        participant2_transferred_amount: TokenAmount,
        /// Partner's locksroot.
        participant2_locksroot: Locksroot,
    },
    /// `registerSecret` in the SecretRegistry.
    RegisterSecret {
        /// The secret.
        secret: Secret,
    },
    /// `withDraw` with both signatures.
    Withdraw {
        /// Token network.
        token_network: Address,
        /// Who withdraws.
        participant: Address,
        /// Partner.
        partner: Address,
        /// Its balance before.
        participant_balance: TokenAmount,
        /// Amount out.
        participant_withdraw: TokenAmount,
        /// Last block the terms are valid.
        expiration: BlockNumber,
        /// Participant's signature.
        participant_signature: Signature,
        /// Partner's signature.
        partner_signature: Signature,
    },
    /// `punishObsoleteUnlock`: the partner unlocked on chain a lock it had given back to us.
    PunishObsoleteUnlock {
        /// Token network.
        token_network: Address,
        /// The cheater.
        partner: Address,
        /// The disposed lock's hash.
        lockhash: H256,
        /// `keccak256` of the AnnounceDisposed body.
        additional_hash: H256,
        /// The partner's signature over the disposed-lock data.
        signature: Signature,
    },
    /// `cooperativeSettle` with both signatures.
    CooperativeSettle {
        /// Token network.
        token_network: Address,
        /// First participant.
        participant1: Address,
        /// Its payout.
        participant1_balance: TokenAmount,
        /// Second participant.
        participant2: Address,
        /// Its payout.
        participant2_balance: TokenAmount,
        /// Last block the terms are valid.
        expiration: BlockNumber,
        /// First participant's signature.
        participant1_signature: Signature,
        /// Second participant's signature.
        participant2_signature: Signature,
    },
}

/// Something the user or the shell should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A transfer we initiated started; `id` is its secrethash (or, for a direct transfer, the
    /// message hash).
    TransferStarted {
        /// Identifier.
        id: H256,
        /// Token.
        token: Address,
        /// Payee.
        target: Address,
        /// Amount the payee receives.
        amount: TokenAmount,
        /// Fee paid to mediators.
        fee: TokenAmount,
    },
    /// A transfer we initiated completed: the payee holds a balance proof paying it.
    TransferSucceeded {
        /// Identifier.
        id: H256,
        /// Fees actually paid (the route may have changed since `TransferStarted`).
        fee: TokenAmount,
    },
    /// A transfer we initiated failed; no tokens moved.
    TransferFailed {
        /// Identifier.
        id: H256,
        /// Why.
        reason: String,
    },
    /// A transfer we initiated was canceled before its secret was revealed.
    TransferCanceled {
        /// Identifier.
        id: H256,
    },
    /// The transfer waits for `AllowRevealSecret` (its secret is the user's).
    TransferAwaitingSecretRelease {
        /// Identifier.
        id: H256,
    },
    /// We received a payment.
    PaymentReceived {
        /// Identifier.
        id: H256,
        /// Token.
        token: Address,
        /// Payer (initiator).
        initiator: Address,
        /// Amount.
        amount: TokenAmount,
    },
    /// A mediated transfer through us ended with the payer paying us; `fee` is what it left
    /// us: the fee, or the payer's whole lock when we never had to pay onward.
    MediationCompleted {
        /// Secrethash.
        id: H256,
        /// Fee earned.
        fee: TokenAmount,
    },
    /// A channel changed on chain (opened, deposit, closed, settled, withdraw).
    ChannelChanged {
        /// Which.
        channel: ChannelId,
        /// What happened.
        what: &'static str,
    },
    /// A peer's message was refused; nothing changed.
    MessageRejected {
        /// Who sent it (if recoverable).
        from: Option<Address>,
        /// Message kind.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// A transaction failed; the node retries what it still needs (see the log).
    TransactionFailed {
        /// The call.
        call: ContractCall,
        /// Why.
        reason: String,
    },
    /// A withdraw or cooperative settle request was refused by us or by the partner.
    ChannelRequestRefused {
        /// Which channel.
        channel: ChannelId,
        /// Why.
        reason: String,
    },
}

/// What the shell must do, in order, after persisting the transition that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send signed wire bytes to a peer (over whatever transport reaches it).
    Send {
        /// Recipient.
        to: Address,
        /// Wire bytes.
        bytes: Vec<u8>,
    },
    /// Submit a transaction.
    ContractSend(ContractCall),
    /// A lock with this secrethash reached us: if the SecretRegistry holds its secret from
    /// before (the core keeps only registrations that concern its locks), feed that
    /// registration back as `ContractReceive(SecretRegistered)`; otherwise do nothing.
    WatchSecret(SecretHash),
    /// Hand this delegation package to the monitoring service, and report
    /// `Input::Monitor(MonitorReport::Holds)` with `print` once it holds it (or newer). A newer
    /// package of the same channel replaces one not yet handed over.
    Delegate {
        /// What it carries, in brief.
        print: super::DelegationPrint,
        /// The signed package.
        package: Box<crate::delegation::DelegationPackage>,
    },
    /// Tell the user.
    Event(Notification),
}
