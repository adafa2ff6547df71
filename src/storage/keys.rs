//! The on-disk layout: column family names and key encodings. Every layout change bumps
//! [`FORMAT`] so an older or newer build refuses the directory instead of misreading it.

use super::history::Direction;
use crate::primitives::H256;

/// The storage format this build reads and writes.
///
/// 2: withdraw and cooperative-settle terms carry an expiration, channels their punish
/// window and on-chain lock tree, and the `secrets` family indexes every secret registered
/// on chain. A format-1 directory is refused: settle its channels with the build that wrote
/// it, or start from a new data directory.
pub const FORMAT: u32 = 2;

/// The latest `NodeState` snapshot (one key).
pub const CF_STATE: &str = "state";
/// Transfer history records, keyed by direction then insertion sequence.
pub const CF_TRANSFERS: &str = "transfers";
/// Transfer id → its key in [`CF_TRANSFERS`].
pub const CF_TRANSFER_INDEX: &str = "transfer_index";
/// Format, owner account, last processed chain block, next history sequence number.
pub const CF_META: &str = "meta";
/// Every secret the SecretRegistry holds, as the chain follower saw them: secrethash →
/// secret ‖ registration block (8 bytes, big-endian). The core keeps only the registrations
/// that concern its locks; this index answers for a lock that arrives after its secret was
/// registered.
pub const CF_SECRETS: &str = "secrets";
/// Every column family, for opening.
pub const ALL_CFS: [&str; 5] = [
    CF_STATE,
    CF_TRANSFERS,
    CF_TRANSFER_INDEX,
    CF_META,
    CF_SECRETS,
];

/// The snapshot's key in [`CF_STATE`].
pub const STATE_KEY: &[u8] = b"node";
/// [`FORMAT`] as 4 big-endian bytes.
pub const META_FORMAT: &[u8] = b"format";
/// The owner's 20-byte address.
pub const META_ADDRESS: &[u8] = b"address";
/// The last processed chain block, 8 big-endian bytes.
pub const META_CHAIN_BLOCK: &[u8] = b"chain_block";
/// LAN peers the user gave (`POST /api/1/updatenodes`): 20-byte address then a UTF-8
/// `ip:port`, each entry prefixed by its length as one byte.
pub const META_LAN_PEERS: &[u8] = b"lan_peers";
/// The next history sequence number, 8 big-endian bytes.
pub const META_NEXT_SEQ: &[u8] = b"next_seq";

/// Length of a key in [`CF_TRANSFERS`].
pub const TRANSFER_KEY_LEN: usize = 9;

/// Direction byte first so each direction is one contiguous range; the big-endian sequence
/// after it makes byte order equal insertion order.
pub fn transfer_key(direction: Direction, seq: u64) -> [u8; TRANSFER_KEY_LEN] {
    let mut k = [0u8; TRANSFER_KEY_LEN];
    k[0] = direction_byte(direction);
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The first key byte of a direction's range.
pub fn direction_byte(direction: Direction) -> u8 {
    match direction {
        Direction::Sent => 0,
        Direction::Received => 1,
    }
}

/// A transfer's key in [`CF_TRANSFER_INDEX`].
pub fn index_key(id: &H256) -> [u8; 32] {
    id.0
}

/// Decodes an 8-byte big-endian counter.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_keys_sort_by_direction_then_sequence_across_byte_boundaries() {
        let mut keys = vec![
            transfer_key(Direction::Received, 1),
            transfer_key(Direction::Sent, 256),
            transfer_key(Direction::Sent, 255),
            transfer_key(Direction::Sent, 1),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                transfer_key(Direction::Sent, 1),
                transfer_key(Direction::Sent, 255),
                transfer_key(Direction::Sent, 256),
                transfer_key(Direction::Received, 1),
            ]
        );
    }
}
