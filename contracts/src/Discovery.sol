// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Discovery: each address publishes how to reach its node (its XMPP JID).
/// @dev Only the address -> endpoint direction is authoritative (an address sets only its own
///      entry). endpoint -> address answers the last address that registered that endpoint; a node
///      must not trust it without checking the reverse mapping.
contract Discovery {
    mapping(address => string) private address_to_endpoint;
    mapping(string => address) private endpoint_to_address;

    /// `eth_address` now publishes `endpoint`.
    event AddressRegistered(address indexed eth_address, string endpoint);

    /// The endpoint is empty.
    error EmptyEndpoint();

    /// Publishes the caller's endpoint (replacing any previous one).
    function registerEndpoint(string calldata endpoint) external {
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        string storage old = address_to_endpoint[msg.sender];
        if (bytes(old).length > 0 && endpoint_to_address[old] == msg.sender) {
            delete endpoint_to_address[old];
        }
        address_to_endpoint[msg.sender] = endpoint;
        endpoint_to_address[endpoint] = msg.sender;
        emit AddressRegistered(msg.sender, endpoint);
    }

    /// The endpoint `eth_address` published ("" if none).
    function findEndpointByAddress(address eth_address) external view returns (string memory) {
        return address_to_endpoint[eth_address];
    }

    /// The last address that registered `endpoint` (zero if none); verify with findEndpointByAddress.
    function findAddressByEndpoint(string calldata endpoint) external view returns (address) {
        return endpoint_to_address[endpoint];
    }
}
