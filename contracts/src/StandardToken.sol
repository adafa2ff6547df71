// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./Token.sol";

/// @title Plain ERC-20 test token: the whole supply goes to the deployer.
/// @dev An allowance of type(uint256).max is never decremented (as OpenZeppelin's ERC20 does),
///      which saves an SSTORE per deposit for users who approve once.
contract StandardToken is Token {
    /// Token name (display only).
    string public name;
    /// Token symbol (display only).
    string public symbol;
    /// Decimals (display only).
    uint8 public decimals;
    uint256 public override totalSupply;
    mapping(address => uint256) internal balances;
    mapping(address => mapping(address => uint256)) internal allowed;

    error InsufficientBalance(uint256 available, uint256 required);
    error InsufficientAllowance(uint256 available, uint256 required);

    constructor(uint256 initial_supply, string memory token_name, uint8 decimal_units, string memory token_symbol) {
        balances[msg.sender] = initial_supply;
        totalSupply = initial_supply;
        name = token_name;
        decimals = decimal_units;
        symbol = token_symbol;
        emit Transfer(address(0), msg.sender, initial_supply);
    }

    function balanceOf(address owner) external view override returns (uint256) {
        return balances[owner];
    }

    function allowance(address owner, address spender) external view override returns (uint256) {
        return allowed[owner][spender];
    }

    function transfer(address to, uint256 value) public virtual override returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        uint256 allowance_ = allowed[from][msg.sender];
        if (allowance_ != type(uint256).max) {
            if (allowance_ < value) revert InsufficientAllowance(allowance_, value);
            unchecked {
                allowed[from][msg.sender] = allowance_ - value;
            }
        }
        _move(from, to, value);
        return true;
    }

    function approve(address spender, uint256 value) public override returns (bool) {
        allowed[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function _move(address from, address to, uint256 value) internal {
        uint256 balance = balances[from];
        if (balance < value) revert InsufficientBalance(balance, value);
        unchecked {
            // Cannot overflow: the sum of all balances is totalSupply.
            balances[from] = balance - value;
            balances[to] += value;
        }
        emit Transfer(from, to, value);
    }
}
