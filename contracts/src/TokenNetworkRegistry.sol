// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TokenNetwork.sol";

/// @title Registry: creates exactly one TokenNetwork per ERC-20 token.
contract TokenNetworkRegistry {
    /// The SecretRegistry every created TokenNetwork uses.
    address public immutable secret_registry;
    /// Punish window (blocks) of every created TokenNetwork.
    uint64 public immutable punish_block_number;
    /// token => its TokenNetwork (zero if none).
    mapping(address => address) public token_to_token_networks;

    /// A TokenNetwork was created for `token_address`.
    event TokenNetworkCreated(address indexed token_address, address indexed token_network_address);

    /// The token already has a TokenNetwork.
    error TokenNetworkExists(address token_network);
    /// A constructor argument is the zero address.
    error ZeroAddress();

    constructor(address secret_registry_address, uint64 punish_blocks) {
        if (secret_registry_address == address(0)) revert ZeroAddress();
        secret_registry = secret_registry_address;
        punish_block_number = punish_blocks;
    }

    /// Creates the TokenNetwork of `token` (reverts if it exists or `token` has no code).
    function createERC20TokenNetwork(address token) external returns (address token_network) {
        address existing = token_to_token_networks[token];
        if (existing != address(0)) revert TokenNetworkExists(existing);
        token_network = address(new TokenNetwork(token, secret_registry, punish_block_number));
        token_to_token_networks[token] = token_network;
        emit TokenNetworkCreated(token, token_network);
    }
}
