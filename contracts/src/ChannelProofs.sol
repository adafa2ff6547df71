// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The signed data layouts of SPEC §2, shared byte for byte with the node's off-chain code.
/// @dev Every function builds `abi.encodePacked` data exactly in the SPEC's order; digests are
///      EIP-191 ("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ data). ProofsHarness exposes
///      these same internal functions so tests check the node's digest vectors against them.
library ChannelProofs {
    /// The signature is not 65 bytes or its v is not 27/28.
    error MalformedSignature();
    /// A Merkle proof's length is not a multiple of 32 bytes.
    error MalformedMerkleProof();

    /// Balance proof: transferred_amount, locksroot, nonce, additional_hash, channel_identifier, open_block_number, chain_id.
    function balanceProofData(
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 additional_hash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(
            transferred_amount, locksroot, nonce, additional_hash, channel_identifier, open_block_number, chain_id
        );
    }

    /// Delegation (non-closing participant's consent to a third-party update): the balance proof without additional_hash.
    function delegationData(
        uint256 transferred_amount,
        bytes32 locksroot,
        uint64 nonce,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(transferred_amount, locksroot, nonce, channel_identifier, open_block_number, chain_id);
    }

    /// Withdraw: participant, participant_balance, participant_withdraw, channel_identifier, open_block_number, chain_id,
    /// expiration (the last block at which the contract accepts it).
    function withdrawData(
        address participant,
        uint256 participant_balance,
        uint256 participant_withdraw,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        uint64 expiration
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(
            participant, participant_balance, participant_withdraw, channel_identifier, open_block_number, chain_id, expiration
        );
    }

    /// Cooperative settle: participant1, balance1, participant2, balance2, channel_identifier, open_block_number, chain_id,
    /// expiration (the last block at which the contract accepts it).
    function cooperativeSettleData(
        address participant1,
        uint256 participant1_balance,
        address participant2,
        uint256 participant2_balance,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        uint64 expiration
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(
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

    /// Disposed lock: lockhash, channel_identifier, open_block_number, chain_id, additional_hash.
    function disposedLockData(
        bytes32 lockhash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id,
        bytes32 additional_hash
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(lockhash, channel_identifier, open_block_number, chain_id, additional_hash);
    }

    /// Unlock delegation: delegatee, expiration, amount, secrethash, channel_identifier, open_block_number, chain_id.
    function unlockDelegationData(
        address delegatee,
        uint256 expiration,
        uint256 amount,
        bytes32 secrethash,
        bytes32 channel_identifier,
        uint64 open_block_number,
        uint256 chain_id
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(
            delegatee, expiration, amount, secrethash, channel_identifier, open_block_number, chain_id
        );
    }

    /// channel_identifier = keccak256(lower_address ‖ higher_address ‖ token_network).
    function channelIdentifier(address participant1, address participant2, address token_network)
        internal
        pure
        returns (bytes32)
    {
        return participant1 < participant2
            ? keccak256(abi.encodePacked(participant1, participant2, token_network))
            : keccak256(abi.encodePacked(participant2, participant1, token_network));
    }

    /// EIP-191 digest of `data`: keccak256("\x19Ethereum Signed Message:\n" ‖ decimal(len) ‖ data).
    function ethSignedDigest(bytes memory data) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n", decimal(data.length), data));
    }

    /// Signer of `digest` given `signature` = r ‖ s ‖ v (v ∈ {27, 28}); zero for an invalid signature.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) revert MalformedSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v != 27 && v != 28) revert MalformedSignature();
        return ecrecover(digest, v, r, s);
    }

    /// lockhash = keccak256(expiration ‖ amount ‖ secrethash).
    function computeLockhash(uint256 expiration, uint256 amount, bytes32 secrethash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(expiration, amount, secrethash));
    }

    /// balance_hash = keccak256(locksroot ‖ transferred_amount), zero when both are zero; stored truncated to 24 bytes.
    /// @dev 24 bytes (192 bits against second preimages) let the hash share one storage slot with the nonce.
    function balanceHash(uint256 transferred_amount, bytes32 locksroot) internal pure returns (bytes24) {
        if (transferred_amount == 0 && locksroot == bytes32(0)) return bytes24(0);
        return bytes24(keccak256(abi.encodePacked(locksroot, transferred_amount)));
    }

    /// Merkle root from a leaf and its proof (32-byte siblings, leaf level first); pairs hash as keccak(min ‖ max).
    /// @dev A level where the node was the odd last one has no sibling in the proof: the node moves up unchanged.
    function merkleRoot(bytes32 leaf, bytes calldata proof) internal pure returns (bytes32 node) {
        if (proof.length % 32 != 0) revert MalformedMerkleProof();
        node = leaf;
        for (uint256 i = 0; i < proof.length; i += 32) {
            bytes32 sibling = bytes32(proof[i:i + 32]);
            node = node < sibling
                ? keccak256(abi.encodePacked(node, sibling))
                : keccak256(abi.encodePacked(sibling, node));
        }
    }

    /// Decimal ASCII of `value` (the EIP-191 length prefix).
    function decimal(uint256 value) internal pure returns (bytes memory out) {
        uint256 digits = 1;
        for (uint256 v = value; v >= 10; v /= 10) digits++;
        out = new bytes(digits);
        for (uint256 i = digits; i > 0; i--) {
            out[i - 1] = bytes1(uint8(48 + (value % 10)));
            value /= 10;
        }
    }
}
