// SPDX-License-Identifier: Apache-2.0
// custody-auditor: a Chainlink AggregatorV3-compatible price feed for tests and
// the demo. Anyone may set the round: it exists to script answers (stale,
// zero, negative) on a dev chain, never to be trusted.
pragma solidity ^0.8.20;

contract TestAggregator {
    uint8 public decimals;
    string public description;
    uint256 public constant version = 4;

    uint80 private _roundId;
    int256 private _answer;
    uint256 private _startedAt;
    uint256 private _updatedAt;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
    }

    function setRound(uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt) external {
        _roundId = roundId;
        _answer = answer;
        _startedAt = startedAt;
        _updatedAt = updatedAt;
        emit AnswerUpdated(answer, roundId, updatedAt);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_roundId, _answer, _startedAt, _updatedAt, _roundId);
    }
}
