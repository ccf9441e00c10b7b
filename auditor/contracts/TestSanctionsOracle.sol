// SPDX-License-Identifier: Apache-2.0
// custody-auditor: a stand-in for the Chainalysis sanctions oracle
// (0x40C57923924B5c5c5455c48D93317139ADDaC8fb) with the same read interface,
// isSanctioned(address) -> bool, for tests and the demo on a dev chain. The
// deployer (the owner) adds and removes addresses, as Chainalysis does.
pragma solidity ^0.8.20;

contract TestSanctionsOracle {
    address public owner;
    mapping(address => bool) private sanctionedAddresses;

    event SanctionedAddress(address indexed addr);
    event NonSanctionedAddress(address indexed addr);
    event SanctionedAddressesAdded(address[] addrs);
    event SanctionedAddressesRemoved(address[] addrs);

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "not the owner");
        _;
    }

    function addToSanctionsList(address[] memory newSanctions) public onlyOwner {
        for (uint256 i = 0; i < newSanctions.length; i++) {
            sanctionedAddresses[newSanctions[i]] = true;
        }
        emit SanctionedAddressesAdded(newSanctions);
    }

    function removeFromSanctionsList(address[] memory removeSanctions) public onlyOwner {
        for (uint256 i = 0; i < removeSanctions.length; i++) {
            sanctionedAddresses[removeSanctions[i]] = false;
        }
        emit SanctionedAddressesRemoved(removeSanctions);
    }

    function isSanctioned(address addr) public view returns (bool) {
        return sanctionedAddresses[addr] == true;
    }

    function isSanctionedVerbose(address addr) public returns (bool) {
        if (isSanctioned(addr)) {
            emit SanctionedAddress(addr);
            return true;
        } else {
            emit NonSanctionedAddress(addr);
            return false;
        }
    }

    function name() external pure returns (string memory) {
        return "Chainalysis sanctions oracle (test stand-in)";
    }
}
