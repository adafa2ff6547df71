// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Records the block at which each secret was revealed on chain, keyed by sha256(secret).
/// @dev TokenNetwork.unlock accepts a lock only if its secret was registered at or before the
///      lock's expiration block; the first registration counts, later ones change nothing.
contract SecretRegistry {
    /// secrethash = sha256(secret) => block number of the first registration (0: never).
    mapping(bytes32 => uint256) public secrethash_to_block;

    /// A secret was registered for the first time.
    event SecretRevealed(bytes32 indexed secrethash, bytes32 secret);

    /// Registers `secret`; returns false (no change) for the zero secret or one already registered.
    function registerSecret(bytes32 secret) public returns (bool) {
        bytes32 secrethash = sha256(abi.encodePacked(secret));
        if (secret == bytes32(0) || secrethash_to_block[secrethash] > 0) {
            return false;
        }
        secrethash_to_block[secrethash] = block.number;
        emit SecretRevealed(secrethash, secret);
        return true;
    }

    /// Registers several secrets; true only if every one was newly registered.
    function registerSecretBatch(bytes32[] calldata secrets) external returns (bool) {
        bool complete = true;
        for (uint256 i = 0; i < secrets.length; i++) {
            if (!registerSecret(secrets[i])) complete = false;
        }
        return complete;
    }

    /// Block at which the secret hashing to `secrethash` was revealed, 0 if never.
    function getSecretRevealBlockHeight(bytes32 secrethash) external view returns (uint256) {
        return secrethash_to_block[secrethash];
    }
}
