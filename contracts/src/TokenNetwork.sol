// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./Token.sol";
import "./SecretRegistry.sol";
import "./ChannelProofs.sol";

/// @title TokenNetwork: every payment channel of one ERC-20 token, and the netting of their balances.
/// @dev Semantics follow SmartRaiden's 2018 contract (see SPEC §2). A channel is keyed by
///      keccak256(lower_address ‖ higher_address ‖ this); state 0 none/settled, 1 open, 2 closed.
///      Checks revert with a custom error naming what failed.
contract TokenNetwork {
    /// One side's balance proof on chain (one storage slot).
    struct Participant {
        // First 24 bytes of keccak256(locksroot ‖ transferred_amount): packed with nonce in one slot.
        bytes24 balance_hash;
        // Nonce of the balance proof stored on chain (a punish leaves it: settle then ignores the proofs).
        uint64 nonce;
    }

    /// One channel: the scalars share one storage slot, both deposits another.
    struct Channel {
        uint64 settle_timeout;
        // Close block + settle_timeout; unlock/update allowed up to it, settle after it + punish_block_number.
        uint64 settle_block_number;
        // Block of opening or of the last withdraw: part of every signed proof, so a withdraw voids older proofs.
        uint64 open_block_number;
        uint8 state;
        // 0: nobody punished; PUNISHED_LOWER / PUNISHED_HIGHER: that address (of the pair) takes the whole channel.
        uint8 punished;
        // Cumulative deposits (after a withdraw: the balances left) of the lower and the higher address.
        // Packed in one slot (a partner's first deposit then costs no new slot); their sum stays below 2^128.
        uint128 deposit_lower;
        uint128 deposit_higher;
        mapping(address => Participant) participants;
    }

    uint8 internal constant STATE_OPEN = 1;
    uint8 internal constant STATE_CLOSED = 2;
    /// Shortest settle timeout accepted (blocks): leaves a non-empty half window for delegates.
    uint64 public constant SETTLE_TIMEOUT_MIN = 6;
    /// Longest settle timeout accepted (blocks), as SmartRaiden's 2018 contract.
    uint64 public constant SETTLE_TIMEOUT_MAX = 2_700_000;
    uint8 internal constant PUNISHED_LOWER = 1;
    uint8 internal constant PUNISHED_HIGHER = 2;
    uint8 internal constant OP_OPEN_WITH_DEPOSIT = 1;
    uint8 internal constant OP_DEPOSIT = 2;

    /// The ERC-20 token of this network.
    Token public immutable token;
    /// Where lock secrets are revealed on chain.
    SecretRegistry public immutable secret_registry;
    /// Blocks after settle_block_number during which a cheating unlock can still be punished.
    uint64 public immutable punish_block_number;

    mapping(bytes32 => Channel) internal channels;
    // keccak256(channel_identifier ‖ open_block_number ‖ payer ‖ lockhash) => unlocked on chain.
    mapping(bytes32 => bool) internal unlocked_locks;

    /// A channel was opened by openChannel.
    event ChannelOpened(bytes32 indexed channel_identifier, address participant1, address participant2, uint64 settle_timeout);
    /// A channel was opened with a first deposit by `participant`.
    event ChannelOpenedAndDeposit(
        bytes32 indexed channel_identifier, address participant, address partner, uint64 settle_timeout, uint256 participant_deposit
    );
    /// `participant`'s cumulative deposit is now `total_deposit`.
    event ChannelNewDeposit(bytes32 indexed channel_identifier, address participant, uint256 total_deposit);
    /// Co-signed withdraw: the balances now held in the channel; open_block_number is the current block.
    event ChannelWithdraw(
        bytes32 indexed channel_identifier, address participant1, uint256 participant1_balance, address participant2, uint256 participant2_balance
    );
    /// Closed by `closing_participant`; locksroot/transferred_amount are the partner's proof (zero if none).
    event ChannelClosed(bytes32 indexed channel_identifier, address closing_participant, bytes32 locksroot, uint256 transferred_amount);
    /// `participant`'s balance proof on chain is now (locksroot, transferred_amount).
    event BalanceProofUpdated(bytes32 indexed channel_identifier, address participant, bytes32 locksroot, uint256 transferred_amount);
    /// A lock of `payer_participant` was unlocked; its transferred amount is now `transferred_amount`.
    event ChannelUnlocked(bytes32 indexed channel_identifier, address payer_participant, bytes32 lockhash, uint256 transferred_amount);
    /// `beneficiary` will receive the whole channel: its partner unlocked a lock it had disposed.
    event ChannelPunished(bytes32 indexed channel_identifier, address beneficiary);
    /// Settled after the settle window; the amounts paid out.
    event ChannelSettled(
        bytes32 indexed channel_identifier, address participant1, uint256 participant1_amount, address participant2, uint256 participant2_amount
    );
    /// Settled at once with both signatures; the amounts paid out.
    event ChannelCooperativeSettled(
        bytes32 indexed channel_identifier, address participant1, uint256 participant1_amount, address participant2, uint256 participant2_amount
    );

    /// The token address has no code.
    error InvalidToken();
    /// settle_timeout outside [SETTLE_TIMEOUT_MIN, SETTLE_TIMEOUT_MAX].
    error InvalidSettleTimeout(uint64 settle_timeout);
    /// A participant is the zero address, or both are the same address.
    error InvalidParticipants();
    /// The pair already has a channel that is not settled.
    error ChannelAlreadyExists();
    /// The channel is not open.
    error ChannelNotOpen();
    /// The channel is not closed.
    error ChannelNotClosed();
    /// A deposit or withdraw of zero.
    error ZeroAmount();
    /// The channel's deposits would sum to 2^128 or more.
    error DepositOverflow();
    /// The channel was already punished.
    error AlreadyPunished();
    /// The token refused a transfer.
    error TokenTransferFailed();
    /// The signature does not come from `expected` (ecrecover gave `recovered`).
    error InvalidSignature(address expected, address recovered);
    /// Withdraw larger than the participant's balance, or a balance larger than the total deposit.
    error InvalidWithdraw();
    /// The balance proof's nonce is not higher than the one on chain.
    error NonceNotHigher(uint64 on_chain, uint64 submitted);
    /// The settle window (up to settle_block_number) is over.
    error SettleWindowOver();
    /// A delegate may update only in the second half of the settle window.
    error DelegateUpdateTooEarly(uint256 first_allowed_block);
    /// The (transferred_amount, locksroot) given do not match the balance hash on chain.
    error BalanceHashMismatch();
    /// The lock's secret was never registered in the SecretRegistry.
    error SecretNotRevealed();
    /// The lock's secret was registered after the lock expired.
    error SecretRevealedAfterExpiration(uint256 reveal_block, uint256 expiration);
    /// The lock was already unlocked on chain.
    error LockAlreadyUnlocked();
    /// The lock was never unlocked on chain by the accused: nothing to punish.
    error LockNotUnlocked();
    /// settleChannel before settle_block_number + punish_block_number.
    error SettleTooEarly(uint256 first_allowed_block);
    /// Co-signed withdraw or cooperative-settle terms submitted after their expiration block.
    error RequestExpired(uint64 expiration);
    /// Cooperative settle balances do not sum to the total deposit.
    error BalancesDoNotSumToDeposits(uint256 total_deposit);
    /// tokenFallback / receiveApproval called by someone other than the token.
    error OnlyToken();
    /// tokenFallback / receiveApproval data is not a known operation.
    error InvalidCallData();

    constructor(address token_address, address secret_registry_address, uint64 punish_blocks) {
        if (token_address.code.length == 0) revert InvalidToken();
        token = Token(token_address);
        secret_registry = SecretRegistry(secret_registry_address);
        punish_block_number = punish_blocks;
    }

    modifier settleTimeoutValid(uint64 settle_timeout) {
        if (settle_timeout < SETTLE_TIMEOUT_MIN || settle_timeout > SETTLE_TIMEOUT_MAX) {
            revert InvalidSettleTimeout(settle_timeout);
        }
        _;
    }

    // ------------------------------------------------------------------ open / deposit

    /// Opens a channel between two distinct non-zero addresses (anyone may call).
    function openChannel(address participant1, address participant2, uint64 settle_timeout)
        external
        settleTimeoutValid(settle_timeout)
    {
        bytes32 channel_identifier = _open(participant1, participant2, settle_timeout);
        emit ChannelOpened(channel_identifier, participant1, participant2, settle_timeout);
    }

    /// Opens a channel and deposits `amount` tokens (from the caller) for `participant`.
    function openChannelWithDeposit(address participant, address partner, uint64 settle_timeout, uint256 amount)
        external
        settleTimeoutValid(settle_timeout)
    {
        _openWithDeposit(participant, partner, settle_timeout, amount, msg.sender, true);
    }

    /// Adds `amount` tokens (from the caller) to `participant`'s cumulative deposit in an open channel.
    function deposit(address participant, address partner, uint256 amount) external {
        _deposit(participant, partner, amount, msg.sender, true);
    }

    /// ERC-223 entry: the token has already credited this contract with `value`.
    /// @param data 0x01 ‖ participant ‖ partner ‖ settle_timeout(u64) to open with deposit, or 0x02 ‖ participant ‖ partner to deposit.
    function tokenFallback(address from, uint256 value, bytes calldata data) external returns (bool) {
        if (msg.sender != address(token)) revert OnlyToken();
        _dispatch(from, value, data, false);
        return true;
    }

    /// approveAndCall entry: pulls the approved `value` from `from`; `data` as for tokenFallback.
    function receiveApproval(address from, uint256 value, address token_address, bytes calldata data) external {
        if (msg.sender != address(token) || token_address != address(token)) revert OnlyToken();
        _dispatch(from, value, data, true);
    }

    function _dispatch(address from, uint256 value, bytes calldata data, bool need_transfer) internal {
        if (data.length == 49 && uint8(data[0]) == OP_OPEN_WITH_DEPOSIT) {
            uint64 settle_timeout = uint64(bytes8(data[41:49]));
            if (settle_timeout < SETTLE_TIMEOUT_MIN || settle_timeout > SETTLE_TIMEOUT_MAX) {
                revert InvalidSettleTimeout(settle_timeout);
            }
            _openWithDeposit(
                address(bytes20(data[1:21])), address(bytes20(data[21:41])), settle_timeout, value, from, need_transfer
            );
        } else if (data.length == 41 && uint8(data[0]) == OP_DEPOSIT) {
            _deposit(address(bytes20(data[1:21])), address(bytes20(data[21:41])), value, from, need_transfer);
        } else {
            revert InvalidCallData();
        }
    }

    function _open(address participant1, address participant2, uint64 settle_timeout)
        internal
        returns (bytes32 channel_identifier)
    {
        if (participant1 == address(0) || participant2 == address(0) || participant1 == participant2) {
            revert InvalidParticipants();
        }
        channel_identifier = getChannelIdentifier(participant1, participant2);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != 0) revert ChannelAlreadyExists();
        // One SSTORE for all four fields (settle_block_number is zero while open).
        channel.settle_timeout = settle_timeout;
        channel.open_block_number = uint64(block.number);
        channel.state = STATE_OPEN;
    }

    function _openWithDeposit(
        address participant,
        address partner,
        uint64 settle_timeout,
        uint256 amount,
        address from,
        bool need_transfer
    ) internal {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert DepositOverflow();
        bytes32 channel_identifier = _open(participant, partner, settle_timeout);
        _setDeposits(channels[channel_identifier], participant, partner, amount, 0);
        if (need_transfer) _pull(from, amount);
        emit ChannelOpenedAndDeposit(channel_identifier, participant, partner, settle_timeout, amount);
    }

    function _deposit(address participant, address partner, uint256 amount, address from, bool need_transfer) internal {
        // A zero deposit would succeed in transferFrom but mean nothing.
        if (amount == 0) revert ZeroAmount();
        bytes32 channel_identifier = getChannelIdentifier(participant, partner);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_OPEN) revert ChannelNotOpen();
        (uint256 participant_deposit, uint256 partner_deposit) = _getDeposits(channel, participant, partner);
        // Invariant: the sum of both deposits is below 2^128, so the subtraction cannot underflow.
        if (amount > type(uint128).max - participant_deposit - partner_deposit) revert DepositOverflow();
        uint256 total_deposit = participant_deposit + amount;
        _setDeposits(channel, participant, partner, total_deposit, partner_deposit);
        if (need_transfer) _pull(from, amount);
        emit ChannelNewDeposit(channel_identifier, participant, total_deposit);
    }

    // ------------------------------------------------------------------ withdraw (channel stays open)

    /// Withdraws `participant_withdraw` to `participant` while the channel stays open; both sign terms
    /// valid up to block `expiration` inclusive.
    /// @dev Balances become (participant_balance - participant_withdraw, total - participant_balance) and
    ///      open_block_number moves to this block, voiding every proof signed before. The expiration keeps
    ///      a partner from holding our signature and submitting stale terms later in the epoch.
    function withdraw(
        address participant,
        address partner,
        uint256 participant_balance,
        uint256 participant_withdraw,
        uint64 expiration,
        bytes calldata participant_signature,
        bytes calldata partner_signature
    ) external {
        if (block.number > expiration) revert RequestExpired(expiration);
        bytes32 channel_identifier = getChannelIdentifier(participant, partner);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_OPEN) revert ChannelNotOpen();
        bytes32 digest = ChannelProofs.ethSignedDigest(
            ChannelProofs.withdrawData(
                participant,
                participant_balance,
                participant_withdraw,
                channel_identifier,
                channel.open_block_number,
                block.chainid,
                expiration
            )
        );
        _checkSigner(participant, digest, participant_signature);
        _checkSigner(partner, digest, partner_signature);
        if (participant_withdraw == 0) revert ZeroAmount();

        (uint256 participant_deposit, uint256 partner_deposit) = _getDeposits(channel, participant, partner);
        uint256 total_deposit = participant_deposit + partner_deposit;
        if (participant_withdraw > participant_balance || participant_balance > total_deposit) revert InvalidWithdraw();
        uint256 partner_balance;
        unchecked {
            partner_balance = total_deposit - participant_balance;
            participant_balance -= participant_withdraw;
        }
        _setDeposits(channel, participant, partner, participant_balance, partner_balance);
        channel.open_block_number = uint64(block.number);
        _push(participant, participant_withdraw);
        emit ChannelWithdraw(channel_identifier, participant, participant_balance, partner, partner_balance);
    }

    // ------------------------------------------------------------------ close / update

    /// Closes the channel (caller is a participant), optionally with the partner's latest balance proof (nonce > 0).
    function closeChannel(
        address partner,
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash,
        bytes calldata signature
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(msg.sender, partner);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_OPEN) revert ChannelNotOpen();
        channel.state = STATE_CLOSED;
        channel.settle_block_number = channel.settle_timeout + uint64(block.number);
        // Nonce 0: the closer never received a transfer, or chooses not to show it (and loses it).
        if (nonce > 0) {
            _checkSigner(
                partner,
                _balanceProofDigest(channel_identifier, channel.open_block_number, transferred_amount, locksroot, nonce, additional_hash),
                signature
            );
            Participant storage partner_state = channel.participants[partner];
            partner_state.balance_hash = ChannelProofs.balanceHash(transferred_amount, locksroot);
            partner_state.nonce = nonce;
        } else {
            // Report what is on chain: no proof.
            transferred_amount = 0;
            locksroot = bytes32(0);
        }
        emit ChannelClosed(channel_identifier, msg.sender, locksroot, transferred_amount);
    }

    /// A participant (closer or not) submits a newer balance proof of its partner, up to settle_block_number.
    function updateBalanceProof(
        address partner,
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash,
        bytes calldata partner_signature
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(partner, msg.sender);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_CLOSED) revert ChannelNotClosed();
        if (block.number > channel.settle_block_number) revert SettleWindowOver();
        Participant storage partner_state = channel.participants[partner];
        if (nonce <= partner_state.nonce) revert NonceNotHigher(partner_state.nonce, nonce);
        _checkSigner(
            partner,
            _balanceProofDigest(channel_identifier, channel.open_block_number, transferred_amount, locksroot, nonce, additional_hash),
            partner_signature
        );
        partner_state.balance_hash = ChannelProofs.balanceHash(transferred_amount, locksroot);
        partner_state.nonce = nonce;
        emit BalanceProofUpdated(channel_identifier, partner, locksroot, transferred_amount);
    }

    /// Anyone (a monitoring service) submits `partner`'s balance proof on behalf of `participant`,
    /// who signed the delegation; only in the second half of the settle window, so the participant goes first.
    function updateBalanceProofDelegate(
        address partner,
        address participant,
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash,
        bytes calldata partner_signature,
        bytes calldata participant_signature
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(partner, participant);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_CLOSED) revert ChannelNotClosed();
        uint64 settle_block_number = channel.settle_block_number;
        if (block.number > settle_block_number) revert SettleWindowOver();
        uint256 first_allowed = settle_block_number - channel.settle_timeout / 2 + 1;
        if (block.number < first_allowed) revert DelegateUpdateTooEarly(first_allowed);
        Participant storage partner_state = channel.participants[partner];
        if (nonce <= partner_state.nonce) revert NonceNotHigher(partner_state.nonce, nonce);
        uint64 open_block_number = channel.open_block_number;
        _checkSigner(
            partner,
            _balanceProofDigest(channel_identifier, open_block_number, transferred_amount, locksroot, nonce, additional_hash),
            partner_signature
        );
        _checkSigner(
            participant,
            ChannelProofs.ethSignedDigest(
                ChannelProofs.delegationData(transferred_amount, locksroot, nonce, channel_identifier, open_block_number, block.chainid)
            ),
            participant_signature
        );
        partner_state.balance_hash = ChannelProofs.balanceHash(transferred_amount, locksroot);
        partner_state.nonce = nonce;
        emit BalanceProofUpdated(channel_identifier, partner, locksroot, transferred_amount);
    }

    // ------------------------------------------------------------------ unlock / punish

    /// The caller unlocks a lock in `partner`'s balance proof: the lock's amount joins partner's transferred_amount.
    /// @param merkle_proof the lock's Merkle proof (32-byte siblings) against the locksroot of that proof.
    function unlock(
        address partner,
        uint256 transferred_amount,
        uint256 expiration,
        uint256 amount,
        bytes32 secret_hash,
        bytes calldata merkle_proof
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(msg.sender, partner);
        _unlock(channel_identifier, channels[channel_identifier], partner, transferred_amount, expiration, amount, secret_hash, merkle_proof);
    }

    /// Anyone (the delegatee named in `participant_signature`) unlocks for `participant` a lock in `partner`'s proof.
    function unlockDelegate(
        address partner,
        address participant,
        uint256 transferred_amount,
        uint256 expiration,
        uint256 amount,
        bytes32 secret_hash,
        bytes calldata merkle_proof,
        bytes calldata participant_signature
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(participant, partner);
        Channel storage channel = channels[channel_identifier];
        _checkSigner(
            participant,
            ChannelProofs.ethSignedDigest(
                ChannelProofs.unlockDelegationData(
                    msg.sender, expiration, amount, secret_hash, channel_identifier, channel.open_block_number, block.chainid
                )
            ),
            participant_signature
        );
        _unlock(channel_identifier, channel, partner, transferred_amount, expiration, amount, secret_hash, merkle_proof);
    }

    function _unlock(
        bytes32 channel_identifier,
        Channel storage channel,
        address partner,
        uint256 transferred_amount,
        uint256 expiration,
        uint256 amount,
        bytes32 secret_hash,
        bytes calldata merkle_proof
    ) internal {
        if (channel.state != STATE_CLOSED) revert ChannelNotClosed();
        // Unlocks end with the settle window, leaving the punish window for the payer's answer.
        if (block.number > channel.settle_block_number) revert SettleWindowOver();
        bytes32 lockhash = ChannelProofs.computeLockhash(expiration, amount, secret_hash);
        bytes32 locksroot = ChannelProofs.merkleRoot(lockhash, merkle_proof);
        Participant storage partner_state = channel.participants[partner];
        if (partner_state.balance_hash != ChannelProofs.balanceHash(transferred_amount, locksroot)) {
            revert BalanceHashMismatch();
        }
        uint256 reveal_block = secret_registry.getSecretRevealBlockHeight(secret_hash);
        if (reveal_block == 0) revert SecretNotRevealed();
        if (reveal_block > expiration) revert SecretRevealedAfterExpiration(reveal_block, expiration);
        bytes32 key = _unlockKey(channel_identifier, channel.open_block_number, partner, lockhash);
        if (unlocked_locks[key]) revert LockAlreadyUnlocked();
        unlocked_locks[key] = true;
        // Checked addition: a lock that would overflow transferred_amount reverts.
        transferred_amount += amount;
        partner_state.balance_hash = ChannelProofs.balanceHash(transferred_amount, locksroot);
        emit ChannelUnlocked(channel_identifier, partner, lockhash, transferred_amount);
    }

    /// `cheater` unlocked on chain a lock of `beneficiary` that it had signed as disposed: its whole deposit
    /// goes to `beneficiary`, which settleChannel then pays the whole channel whatever the balance proofs.
    /// @dev Allowed while the channel is closed, i.e. also in the punish window after settle_block_number.
    function punishObsoleteUnlock(
        address beneficiary,
        address cheater,
        bytes32 lockhash,
        bytes32 additional_hash,
        bytes calldata cheater_signature
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(beneficiary, cheater);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_CLOSED) revert ChannelNotClosed();
        if (channel.punished != 0) revert AlreadyPunished();
        uint64 open_block_number = channel.open_block_number;
        bytes32 key = _unlockKey(channel_identifier, open_block_number, beneficiary, lockhash);
        if (!unlocked_locks[key]) revert LockNotUnlocked();
        _checkSigner(
            cheater,
            ChannelProofs.ethSignedDigest(
                ChannelProofs.disposedLockData(lockhash, channel_identifier, open_block_number, block.chainid, additional_hash)
            ),
            cheater_signature
        );
        delete unlocked_locks[key];
        // A flag in the channel's own slot instead of moving deposits and freezing proofs: one SSTORE.
        channel.punished = beneficiary < cheater ? PUNISHED_LOWER : PUNISHED_HIGHER;
        emit ChannelPunished(channel_identifier, beneficiary);
    }

    // ------------------------------------------------------------------ settle

    /// Pays out a closed channel after settle_block_number + punish_block_number (anyone may call).
    /// @dev participant1 gets deposit1 + transferred2 - transferred1 bounded to [0, total]; participant2 the rest.
    ///      After a punish the beneficiary gets the total and the balance proofs are not looked at.
    function settleChannel(
        address participant1,
        uint256 participant1_transferred_amount,
        bytes32 participant1_locksroot,
        address participant2,
        uint256 participant2_transferred_amount,
        bytes32 participant2_locksroot
    ) external {
        bytes32 channel_identifier = getChannelIdentifier(participant1, participant2);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_CLOSED) revert ChannelNotClosed();
        uint256 first_allowed = uint256(channel.settle_block_number) + punish_block_number + 1;
        if (block.number < first_allowed) revert SettleTooEarly(first_allowed);
        (uint256 deposit1, uint256 deposit2) = _getDeposits(channel, participant1, participant2);
        uint256 amount1;
        uint256 amount2;
        uint8 punished = channel.punished;
        if (punished != 0) {
            if ((punished == PUNISHED_LOWER) == (participant1 < participant2)) amount1 = deposit1 + deposit2;
            else amount2 = deposit1 + deposit2;
        } else {
            if (
                channel.participants[participant1].balance_hash
                    != ChannelProofs.balanceHash(participant1_transferred_amount, participant1_locksroot)
                    || channel.participants[participant2].balance_hash
                        != ChannelProofs.balanceHash(participant2_transferred_amount, participant2_locksroot)
            ) revert BalanceHashMismatch();
            (amount1, amount2) =
                _settlementAmounts(deposit1, participant1_transferred_amount, deposit2, participant2_transferred_amount);
        }
        delete channel.participants[participant1];
        delete channel.participants[participant2];
        delete channels[channel_identifier];
        if (amount1 > 0) _push(participant1, amount1);
        if (amount2 > 0) _push(participant2, amount2);
        emit ChannelSettled(channel_identifier, participant1, amount1, participant2, amount2);
    }

    /// Settles an open channel at once with final balances both participants signed, valid up to block
    /// `expiration` inclusive.
    function cooperativeSettle(
        address participant1,
        uint256 participant1_balance,
        address participant2,
        uint256 participant2_balance,
        uint64 expiration,
        bytes calldata participant1_signature,
        bytes calldata participant2_signature
    ) external {
        if (block.number > expiration) revert RequestExpired(expiration);
        bytes32 channel_identifier = getChannelIdentifier(participant1, participant2);
        Channel storage channel = channels[channel_identifier];
        if (channel.state != STATE_OPEN) revert ChannelNotOpen();
        bytes32 digest = ChannelProofs.ethSignedDigest(
            ChannelProofs.cooperativeSettleData(
                participant1,
                participant1_balance,
                participant2,
                participant2_balance,
                channel_identifier,
                channel.open_block_number,
                block.chainid,
                expiration
            )
        );
        _checkSigner(participant1, digest, participant1_signature);
        _checkSigner(participant2, digest, participant2_signature);
        (uint256 deposit1, uint256 deposit2) = _getDeposits(channel, participant1, participant2);
        uint256 total_deposit = deposit1 + deposit2;
        // Written so that no sum can overflow: balance1 <= total, balance2 == total - balance1.
        if (participant1_balance > total_deposit || participant2_balance != total_deposit - participant1_balance) {
            revert BalancesDoNotSumToDeposits(total_deposit);
        }
        delete channel.participants[participant1];
        delete channel.participants[participant2];
        delete channels[channel_identifier];
        if (participant1_balance > 0) _push(participant1, participant1_balance);
        if (participant2_balance > 0) _push(participant2, participant2_balance);
        emit ChannelCooperativeSettled(channel_identifier, participant1, participant1_balance, participant2, participant2_balance);
    }

    // ------------------------------------------------------------------ views

    /// keccak256(lower_address ‖ higher_address ‖ this).
    function getChannelIdentifier(address participant1, address participant2) public view returns (bytes32) {
        return ChannelProofs.channelIdentifier(participant1, participant2, address(this));
    }

    /// Channel of the pair: identifier, settle_block_number, open_block_number, state, settle_timeout.
    function getChannelInfo(address participant1, address participant2)
        external
        view
        returns (bytes32 channel_identifier, uint64 settle_block_number, uint64 open_block_number, uint8 state, uint64 settle_timeout)
    {
        channel_identifier = getChannelIdentifier(participant1, participant2);
        Channel storage channel = channels[channel_identifier];
        return (channel_identifier, channel.settle_block_number, channel.open_block_number, channel.state, channel.settle_timeout);
    }

    /// Channel by identifier: settle_block_number, open_block_number, state, settle_timeout.
    function getChannelInfoByChannelIdentifier(bytes32 channel_identifier)
        external
        view
        returns (uint64 settle_block_number, uint64 open_block_number, uint8 state, uint64 settle_timeout)
    {
        Channel storage channel = channels[channel_identifier];
        return (channel.settle_block_number, channel.open_block_number, channel.state, channel.settle_timeout);
    }

    /// `participant`'s side of its channel with `partner`: deposit, balance hash (24 bytes) and nonce.
    function getParticipantInfo(address participant, address partner)
        external
        view
        returns (uint256 participant_deposit, bytes24 balance_hash, uint64 nonce)
    {
        Channel storage channel = channels[getChannelIdentifier(participant, partner)];
        (participant_deposit,) = _getDeposits(channel, participant, partner);
        Participant storage state = channel.participants[participant];
        return (participant_deposit, state.balance_hash, state.nonce);
    }

    /// The participant that settleChannel will pay the whole channel after a punish (zero if none).
    function getPunishedBeneficiary(address participant1, address participant2) external view returns (address) {
        uint8 punished = channels[getChannelIdentifier(participant1, participant2)].punished;
        if (punished == 0) return address(0);
        bool lower_wins = punished == PUNISHED_LOWER;
        return (participant1 < participant2) == lower_wins ? participant1 : participant2;
    }

    /// Whether `lockhash` of `payer`'s balance proof was unlocked on chain in its channel with `partner`.
    function queryUnlockedLocks(address payer, address partner, bytes32 lockhash) external view returns (bool) {
        bytes32 channel_identifier = getChannelIdentifier(payer, partner);
        return unlocked_locks[_unlockKey(channel_identifier, channels[channel_identifier].open_block_number, payer, lockhash)];
    }

    /// The chain id every proof must be signed for.
    function chainId() external view returns (uint256) {
        return block.chainid;
    }

    // ------------------------------------------------------------------ internal helpers

    function _balanceProofDigest(
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash
    ) internal view returns (bytes32) {
        return ChannelProofs.ethSignedDigest(
            ChannelProofs.balanceProofData(
                transferred_amount, locksroot, nonce, additional_hash, channel_identifier, open_block_number, block.chainid
            )
        );
    }

    function _checkSigner(address expected, bytes32 digest, bytes calldata signature) internal pure {
        address recovered = ChannelProofs.recover(digest, signature);
        if (recovered != expected || recovered == address(0)) revert InvalidSignature(expected, recovered);
    }

    function _unlockKey(bytes32 channel_identifier, uint64 open_block_number, address payer, bytes32 lockhash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(channel_identifier, open_block_number, payer, lockhash));
    }

    function _settlementAmounts(uint256 deposit1, uint256 transferred1, uint256 deposit2, uint256 transferred2)
        internal
        pure
        returns (uint256 amount1, uint256 amount2)
    {
        uint256 total = deposit1 + deposit2;
        // Bounded netting without overflow, whatever the (signed) transferred amounts are.
        unchecked {
            if (transferred2 >= transferred1) {
                uint256 gain = transferred2 - transferred1;
                amount1 = gain >= deposit2 ? total : deposit1 + gain;
            } else {
                uint256 loss = transferred1 - transferred2;
                amount1 = loss >= deposit1 ? 0 : deposit1 - loss;
            }
            amount2 = total - amount1;
        }
    }

    function _getDeposits(Channel storage channel, address participant, address partner)
        internal
        view
        returns (uint256 participant_deposit, uint256 partner_deposit)
    {
        return participant < partner
            ? (uint256(channel.deposit_lower), uint256(channel.deposit_higher))
            : (uint256(channel.deposit_higher), uint256(channel.deposit_lower));
    }

    /// @dev Callers guarantee participant_deposit + partner_deposit < 2^128.
    function _setDeposits(
        Channel storage channel,
        address participant,
        address partner,
        uint256 participant_deposit,
        uint256 partner_deposit
    ) internal {
        (uint128 lower, uint128 higher) = participant < partner
            ? (uint128(participant_deposit), uint128(partner_deposit))
            : (uint128(partner_deposit), uint128(participant_deposit));
        channel.deposit_lower = lower;
        channel.deposit_higher = higher;
    }

    function _pull(address from, uint256 amount) internal {
        if (!token.transferFrom(from, address(this), amount)) revert TokenTransferFailed();
    }

    function _push(address to, uint256 amount) internal {
        if (!token.transfer(to, amount)) revert TokenTransferFailed();
    }
}
