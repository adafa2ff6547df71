// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./StandardToken.sol";

/// @title Receiver side of approveAndCall (HumanStandardToken style).
interface ApprovalReceiver {
    function receiveApproval(address from, uint256 value, address token, bytes calldata data) external;
}

/// @title ERC-20 test token with approveAndCall: approve and notify the spender in one transaction.
contract ApproveAndCallToken is StandardToken {
    constructor(uint256 initial_supply, string memory token_name, uint8 decimal_units, string memory token_symbol)
        StandardToken(initial_supply, token_name, decimal_units, token_symbol)
    {}

    /// Approves `spender` for `value` and calls its receiveApproval with `extra_data`.
    function approveAndCall(address spender, uint256 value, bytes calldata extra_data) external returns (bool) {
        approve(spender, value);
        ApprovalReceiver(spender).receiveApproval(msg.sender, value, address(this), extra_data);
        return true;
    }
}
