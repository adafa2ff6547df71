//! The node's side of third-party delegation: the package a monitoring service needs to defend
//! one of our channels (`GET /api/1/thirdparty/{channel}/{delegate}`).

use super::Core;
use crate::delegation::{DelegatedProof, DelegatedUnlock, DelegationPackage, PunishEvidence};
use crate::primitives::{Address, ChannelId, Signature};
use crate::proofs::{DelegationData, SignedData, UnlockDelegationData};

impl Core {
    /// The delegation package of `channel` for `delegate`, signed by us: the partner's latest
    /// balance proof with our delegation signature, an unlock delegation bound to `delegate` for
    /// every claimable lock whose secret we know, and the partner's statements of locks it gave
    /// back. `None` if we have no such channel.
    pub fn delegation_package(
        &self,
        channel: &ChannelId,
        delegate: Address,
    ) -> Option<DelegationPackage> {
        let ch = self.state.channel(channel)?;
        let binding = ch.binding();
        let balance_proof = ch.partner.latest_proof.map(|p| {
            let bp = p.balance_proof;
            DelegatedProof {
                transferred_amount: bp.transferred_amount,
                locksroot: bp.locksroot,
                nonce: bp.nonce,
                additional_hash: p.additional_hash,
                partner_signature: p.signature,
                delegation_signature: DelegationData {
                    transferred_amount: bp.transferred_amount,
                    locksroot: bp.locksroot,
                    nonce: bp.nonce,
                    binding,
                }
                .sign(&self.key),
            }
        });
        // Only locks of the proof handed over: their Merkle proofs are against its locksroot.
        let unlocks = match balance_proof {
            Some(p) if p.locksroot == ch.partner.locksroot() => ch
                .claimable_locks()
                .filter(|l| ch.partner.secrets.contains_key(&l.secrethash))
                .filter_map(|l| {
                    Some(DelegatedUnlock {
                        expiration: l.expiration,
                        amount: l.amount,
                        secrethash: l.secrethash,
                        merkle_proof: ch.partner.merkle_proof(&l.secrethash)?,
                        signature: UnlockDelegationData {
                            delegatee: delegate,
                            expiration: l.expiration,
                            amount: l.amount,
                            secrethash: l.secrethash,
                            binding,
                        }
                        .sign(&self.key),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let punishes = ch
            .disposed_to_us
            .values()
            .map(|d| PunishEvidence {
                lockhash: d.lock.lockhash(),
                additional_hash: d.additional_hash,
                partner_signature: d.signature,
            })
            .collect();
        let mut package = DelegationPackage {
            chain_id: ch.chain_id,
            token_network: ch.token_network,
            channel_identifier: ch.identifier,
            open_block_number: ch.open_block_number,
            settle_timeout: ch.settle_timeout,
            delegator: self.address(),
            partner: ch.partner.address,
            delegate,
            balance_proof,
            unlocks,
            punishes,
            signature: Signature([0; 65]),
        };
        package.sign(&self.key);
        Some(package)
    }
}
