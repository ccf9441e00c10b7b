// SPDX-License-Identifier: Apache-2.0
// custody-auditor: a contract that moves ETH itself (internal transfers) for the
// transfer-ingestion tests: plain calls, a call inside a reverted frame, a created
// child funded at creation and a selfdestruct paying a beneficiary.
pragma solidity ^0.8.20;

contract TestForwarderChild {
    constructor() payable {}

    function close(address payable to) external {
        selfdestruct(to);
    }
}

contract TestForwarder {
    receive() external payable {}

    /// Sends amounts[i] to to[i] from this contract's balance.
    function forward(address payable[] calldata to, uint256[] calldata amounts) external payable {
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok, ) = to[i].call{value: amounts[i]}("");
            require(ok, "TestForwarder: send failed");
        }
    }

    /// Sends to `to` inside a frame that then reverts: the transaction succeeds, nothing moves.
    function forwardReverted(address payable to, uint256 amount) external {
        try this.sendThenRevert(to, amount) {} catch {}
    }

    function sendThenRevert(address payable to, uint256 amount) external {
        require(msg.sender == address(this), "TestForwarder: internal");
        (bool ok, ) = to.call{value: amount}("");
        require(ok, "TestForwarder: send failed");
        revert("TestForwarder: reverted on purpose");
    }

    /// Funds a new child with `amount`, then the child pays everything to `to` by selfdestruct.
    function createAndClose(address payable to, uint256 amount) external returns (address) {
        TestForwarderChild child = new TestForwarderChild{value: amount}();
        child.close(to);
        return address(child);
    }
}
