//! The locksroot Merkle tree: leaves are lockhashes in insertion order, each level hashes pairs
//! as `keccak256(min(a,b) ‖ max(a,b))`, an odd last node moves up unchanged, and the empty
//! tree's root is zero.

use crate::crypto::keccak256;
use crate::primitives::{H256, Locksroot};

fn hash_pair(a: &H256, b: &H256) -> H256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut d = [0u8; 64];
    d[..32].copy_from_slice(&lo.0);
    d[32..].copy_from_slice(&hi.0);
    keccak256(d)
}

/// All levels of the tree, leaves first, so proofs need no recomputation.
#[derive(Clone, Debug, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<H256>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (lockhashes in insertion order).
    pub fn new(leaves: Vec<H256>) -> MerkleTree {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().expect("non-empty");
            let next = prev
                .chunks(2)
                .map(|p| {
                    if p.len() == 2 {
                        hash_pair(&p[0], &p[1])
                    } else {
                        p[0]
                    }
                })
                .collect();
            levels.push(next);
        }
        MerkleTree { levels }
    }

    /// The root; zero for no leaves.
    pub fn root(&self) -> Locksroot {
        Locksroot(
            self.levels
                .last()
                .and_then(|l| l.first())
                .copied()
                .unwrap_or(H256::ZERO),
        )
    }

    /// The sibling path from leaf `index` up to the root (levels where it has no sibling are
    /// skipped), or `None` for an index out of range.
    pub fn proof(&self, mut index: usize) -> Option<Vec<H256>> {
        if index >= self.levels.first().map_or(0, |l| l.len()) {
            return None;
        }
        let mut proof = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            if sibling < level.len() {
                proof.push(level[sibling]);
            }
            index /= 2;
        }
        Some(proof)
    }
}

/// The root that `leaf` with `proof` hashes up to (the contract's `merkleRoot`).
pub fn merkle_root(leaf: H256, proof: &[H256]) -> Locksroot {
    Locksroot(proof.iter().fold(leaf, |acc, sib| hash_pair(&acc, sib)))
}

/// Whether `leaf` with `proof` hashes up to `root` (the contract's check).
pub fn verify_merkle_proof(leaf: H256, proof: &[H256], root: Locksroot) -> bool {
    merkle_root(leaf, proof) == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> H256 {
        keccak256([i])
    }

    #[test]
    fn empty_tree_root_is_zero_and_single_leaf_is_its_own_root() {
        assert_eq!(MerkleTree::new(vec![]).root(), Locksroot(H256::ZERO));
        assert_eq!(MerkleTree::new(vec![leaf(1)]).root(), Locksroot(leaf(1)));
    }

    #[test]
    fn odd_node_moves_up_unchanged() {
        let t = MerkleTree::new(vec![leaf(1), leaf(2), leaf(3)]);
        assert_eq!(
            t.root().0,
            hash_pair(&hash_pair(&leaf(1), &leaf(2)), &leaf(3))
        );
    }

    #[test]
    fn every_leaf_proves_against_the_root_for_sizes_1_to_17() {
        for n in 1..=17u8 {
            let leaves: Vec<H256> = (0..n).map(leaf).collect();
            let t = MerkleTree::new(leaves.clone());
            for (i, l) in leaves.iter().enumerate() {
                let p = t.proof(i).unwrap();
                assert!(verify_merkle_proof(*l, &p, t.root()), "n={n} i={i}");
                assert!(!verify_merkle_proof(leaf(200), &p, t.root()));
            }
            assert!(t.proof(n as usize).is_none());
        }
    }
}
