// SPDX-License-Identifier: Apache-2.0
// custody-auditor: a minimal, independently written contract that is
// ABI-compatible with the read-only part of Multicall3 (aggregate3 and the
// block/balance helpers), so a dev chain can serve the auditor's batched reads
// at the canonical address 0xcA11bde05977b3631167028862bE2a173976CA11.
pragma solidity ^0.8.20;

contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// Runs every call in order; a failing call reverts the whole batch
    /// unless that call allows failure.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        uint256 n = calls.length;
        results = new Result[](n);
        for (uint256 i = 0; i < n; ++i) {
            Call3 calldata c = calls[i];
            (bool ok, bytes memory data) = c.target.call(c.callData);
            if (!ok && !c.allowFailure) {
                revert("Multicall3: call failed");
            }
            results[i] = Result(ok, data);
        }
    }

    function getEthBalance(address addr) external view returns (uint256 balance) {
        balance = addr.balance;
    }

    function getBlockNumber() external view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    function getBlockHash(uint256 blockNumber) external view returns (bytes32 blockHash) {
        blockHash = blockhash(blockNumber);
    }

    function getCurrentBlockTimestamp() external view returns (uint256 timestamp) {
        timestamp = block.timestamp;
    }
}
