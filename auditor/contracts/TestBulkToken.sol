// SPDX-License-Identifier: Apache-2.0
// custody-auditor: an ERC-20 whose owner mints to, and moves between, many
// addresses in one transaction (the transfer-ingestion benchmark makes 50,000
// Transfer logs with it). A test token only: the owner can move anyone's coins.
pragma solidity ^0.8.20;

contract TestBulkToken {
    mapping(address => uint256) public balanceOf;
    uint256 public totalSupply;
    uint8 public immutable decimals;
    address public immutable owner;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint8 decimals_) {
        decimals = decimals_;
        owner = msg.sender;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "TestBulkToken: only the owner");
        _;
    }

    function mintMany(address[] calldata to, uint256 amount) external onlyOwner {
        for (uint256 i = 0; i < to.length; i++) {
            balanceOf[to[i]] += amount;
            emit Transfer(address(0), to[i], amount);
        }
        totalSupply += amount * to.length;
    }

    /// Moves `amount` from from[i] to to[i] for every i.
    function moveMany(address[] calldata from, address[] calldata to, uint256 amount) external onlyOwner {
        require(from.length == to.length, "TestBulkToken: lengths differ");
        for (uint256 i = 0; i < from.length; i++) {
            require(balanceOf[from[i]] >= amount, "TestBulkToken: balance too low");
            balanceOf[from[i]] -= amount;
            balanceOf[to[i]] += amount;
            emit Transfer(from[i], to[i], amount);
        }
    }
}
