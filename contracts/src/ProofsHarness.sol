// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./ChannelProofs.sol";

/// @title Test helper: exposes ChannelProofs (the code TokenNetwork verifies with) as external views,
///        so the node's digest test vectors can be checked against the on-chain layouts.
contract ProofsHarness {
    function balanceProofData(
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) external pure returns (bytes memory) {
        return ChannelProofs.balanceProofData(
            transferred_amount, locksroot, nonce, additional_hash, channel_identifier, open_block_number, chain_id
        );
    }

    function delegationData(
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) external pure returns (bytes memory) {
        return ChannelProofs.delegationData(
            transferred_amount, locksroot, nonce, channel_identifier, open_block_number, chain_id
        );
    }

    function withdrawData(
        address participant,
        uint256 participant_balance,
        uint256 participant_withdraw,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        uint64 expiration
    ) external pure returns (bytes memory) {
        return ChannelProofs.withdrawData(
            participant, participant_balance, participant_withdraw, channel_identifier, open_block_number, chain_id, expiration
        );
    }

    function cooperativeSettleData(
        address participant1,
        uint256 participant1_balance,
        address participant2,
        uint256 participant2_balance,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        uint64 expiration
    ) external pure returns (bytes memory) {
        return ChannelProofs.cooperativeSettleData(
            participant1,
            participant1_balance,
            participant2,
            participant2_balance,
            channel_identifier,
            open_block_number,
            chain_id,
            expiration
        );
    }

    function disposedLockData(
        bytes32 lockhash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        bytes32 additional_hash
    ) external pure returns (bytes memory) {
        return ChannelProofs.disposedLockData(lockhash, channel_identifier, open_block_number, chain_id, additional_hash);
    }

    function unlockDelegationData(
        address delegatee,
        uint256 expiration,
        uint256 amount,
        bytes32 secrethash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) external pure returns (bytes memory) {
        return ChannelProofs.unlockDelegationData(
            delegatee, expiration, amount, secrethash, channel_identifier, open_block_number, chain_id
        );
    }

    function channelIdentifier(address participant1, address participant2, address token_network)
        external
        pure
        returns (bytes32)
    {
        return ChannelProofs.channelIdentifier(participant1, participant2, token_network);
    }

    function ethSignedDigest(bytes calldata data) external pure returns (bytes32) {
        return ChannelProofs.ethSignedDigest(data);
    }

    function recover(bytes32 digest, bytes calldata signature) external pure returns (address) {
        return ChannelProofs.recover(digest, signature);
    }

    function computeLockhash(uint256 expiration, uint256 amount, bytes32 secrethash) external pure returns (bytes32) {
        return ChannelProofs.computeLockhash(expiration, amount, secrethash);
    }

    function merkleRoot(bytes32 leaf, bytes calldata proof) external pure returns (bytes32) {
        return ChannelProofs.merkleRoot(leaf, proof);
    }

    function balanceHash(uint256 transferred_amount, bytes32 locksroot) external pure returns (bytes24) {
        return ChannelProofs.balanceHash(transferred_amount, locksroot);
    }
}
