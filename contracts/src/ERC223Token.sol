// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./StandardToken.sol";

/// @title Receiver side of an ERC-223 transfer.
interface ERC223Receiver {
    function tokenFallback(address from, uint256 value, bytes calldata data) external returns (bool);
}

/// @title ERC-223 test token: a transfer to a contract calls its tokenFallback (and fails if it rejects).
contract ERC223Token is StandardToken {
    constructor(uint256 initial_supply, string memory token_name, uint8 decimal_units, string memory token_symbol)
        StandardToken(initial_supply, token_name, decimal_units, token_symbol)
    {}

    /// ERC-223 transfer with data handed to the receiving contract.
    function transfer(address to, uint256 value, bytes calldata data) external returns (bool) {
        _move(msg.sender, to, value);
        if (to.code.length > 0) {
            require(ERC223Receiver(to).tokenFallback(msg.sender, value, data), "tokenFallback refused");
        }
        return true;
    }

    /// ERC-223 semantics for the plain transfer too: a contract receiver is told (with empty data).
    function transfer(address to, uint256 value) public override returns (bool) {
        _move(msg.sender, to, value);
        if (to.code.length > 0) {
            require(ERC223Receiver(to).tokenFallback(msg.sender, value, ""), "tokenFallback refused");
        }
        return true;
    }
}
