//! unlock, unlockDelegate and punishObsoleteUnlock on a real anvil chain, and settlement with
//! pending locks (some unlocked on chain, some not). Locks, locksroots, Merkle proofs and every
//! signature come from the core (`smartraiden::proofs`).

mod contracts_support;

use alloy::primitives::{Bytes, U256};
use contracts_support::*;
use smartraiden::chain::bindings::TokenNetwork;
use smartraiden::chain::client::receipt_events;
use smartraiden::primitives::{BlockNumber, H256, Locksroot, TokenAmount};
use smartraiden::proofs::{Lock, balance_hash};

fn lock(expiration: u64, amount: u64, n: u8) -> Lock {
    Lock {
        expiration: BlockNumber(expiration),
        amount: amt(amount),
        secrethash: secret(n).1,
    }
}

#[tokio::test]
async fn unlock_paths_and_settlement_with_pending_locks() {
    let env = Env::new().await;
    env.open(100, 100).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let now = env.chain.block_number().await.unwrap();
    // a's pending locks toward b: L1 (revealed in time), L2 (revealed after expiry), L3 (never revealed), L4 (unlocked by a delegate).
    let a_locks = [
        lock(now + 40, 5, 1),
        lock(now + 3, 7, 2),
        lock(now + 40, 9, 3),
        lock(now + 40, 11, 4),
    ];
    let a_tree = locks_tree(&a_locks);
    let a_root = a_tree.root();
    // b's pending lock toward a: M1 (revealed in time).
    let b_locks = [lock(now + 40, 6, 5)];
    let b_tree = locks_tree(&b_locks);
    let b_root = b_tree.root();
    let (_, a_bp) = balance_proof(&env.a.key, binding, amt(10), a_root, 5, ah(1));
    let (_, b_bp) = balance_proof(&env.b.key, binding, amt(30), b_root, 3, ah(2));

    for n in [1u8, 4, 5] {
        let r = env
            .c
            .client
            .send(env.secrets(&env.c).registerSecret(b32(secret(n).0)))
            .await
            .unwrap();
        assert!(r.block_number.unwrap() <= now + 40);
    }
    let tn_b = env.tn(&env.b);
    let unlock_by_b = |i: usize, transferred: u64| {
        let l = &a_locks[i];
        tn_b.unlock(
            a,
            U256::from(transferred),
            U256::from(l.expiration.0),
            l.amount.0,
            b32(l.secrethash.0),
            merkle_proof(&a_tree, i),
        )
    };
    // Not closed yet.
    assert_reverts!(
        env.b.client.send(unlock_by_b(0, 10)).await,
        E::ChannelNotClosed(_)
    );

    // L2's secret is registered only after L2 expired.
    env.next_tx_in(now + 4).await;
    let r = env
        .c
        .client
        .send(env.secrets(&env.c).registerSecret(b32(secret(2).0)))
        .await
        .unwrap();
    assert!(r.block_number.unwrap() > now + 3);

    env.b
        .client
        .send(
            env.tn(&env.b)
                .closeChannel(a, U256::from(10), b32(a_root.0), 5, b32(ah(1)), a_bp),
        )
        .await
        .unwrap();
    env.a
        .client
        .send(env.tn(&env.a).updateBalanceProof(
            b,
            U256::from(30),
            b32(b_root.0),
            3,
            b32(ah(2)),
            b_bp,
        ))
        .await
        .unwrap();

    // L1: success.
    let r = env.b.client.send(unlock_by_b(0, 10)).await.unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelUnlocked>(&r)[0];
    assert_eq!(
        (ev.payer_participant, ev.lockhash.0, ev.transferred_amount),
        (a, a_locks[0].lockhash().0, U256::from(15))
    );
    assert!(
        env.tn(&env.c)
            .queryUnlockedLocks(a, b, b32(a_locks[0].lockhash()))
            .call()
            .await
            .unwrap()
    );
    assert_eq!(
        env.participant(&env.a, &env.b).await.1,
        bh24(balance_hash(amt(15), a_root))
    );
    // Double unlock of L1 with the updated transferred amount.
    assert_reverts!(
        env.b.client.send(unlock_by_b(0, 15)).await,
        E::LockAlreadyUnlocked(_)
    );
    // The old transferred amount no longer matches.
    assert_reverts!(
        env.b.client.send(unlock_by_b(0, 10)).await,
        E::BalanceHashMismatch(_)
    );
    // L2: secret revealed after expiration. L3: never revealed.
    assert_reverts!(
        env.b.client.send(unlock_by_b(1, 15)).await,
        E::SecretRevealedAfterExpiration(e) if e.expiration == U256::from(now + 3) && e.reveal_block == U256::from(now + 4)
    );
    assert_reverts!(
        env.b.client.send(unlock_by_b(2, 15)).await,
        E::SecretNotRevealed(_)
    );
    // A lock not in the tree (wrong amount) and a wrong Merkle proof.
    let l = &a_locks[3];
    assert_reverts!(
        env.b
            .client
            .send(tn_b.unlock(
                a,
                U256::from(15),
                U256::from(l.expiration.0),
                U256::from(12),
                b32(l.secrethash.0),
                merkle_proof(&a_tree, 3)
            ))
            .await,
        E::BalanceHashMismatch(_)
    );
    assert_reverts!(
        env.b
            .client
            .send(tn_b.unlock(
                a,
                U256::from(15),
                U256::from(l.expiration.0),
                l.amount.0,
                b32(l.secrethash.0),
                merkle_proof(&a_tree, 0)
            ))
            .await,
        E::BalanceHashMismatch(_)
    );
    assert_reverts!(
        env.b
            .client
            .send(tn_b.unlock(
                a,
                U256::from(15),
                U256::from(l.expiration.0),
                l.amount.0,
                b32(l.secrethash.0),
                Bytes::from(vec![0u8; 33])
            ))
            .await,
        E::MalformedMerkleProof(_)
    );

    // L4 through a delegate (c) with b's unlock delegation naming c.
    let tn_c = env.tn(&env.c);
    let delegate = |sig: Bytes| {
        tn_c.unlockDelegate(
            a,
            b,
            U256::from(15),
            U256::from(l.expiration.0),
            l.amount.0,
            b32(l.secrethash.0),
            merkle_proof(&a_tree, 3),
            sig,
        )
    };
    // Delegation naming another delegatee, and one signed by the payer instead of the payee.
    assert_reverts!(env.c.client.send(delegate(unlock_delegation_sig(&env.b.key, binding, env.a.addr(), l))).await, E::InvalidSignature(e) if e.expected == b);
    assert_reverts!(
        env.c
            .client
            .send(delegate(unlock_delegation_sig(
                &env.a.key,
                binding,
                env.c.addr(),
                l
            )))
            .await,
        E::InvalidSignature(_)
    );
    let r = env
        .c
        .client
        .send(delegate(unlock_delegation_sig(
            &env.b.key,
            binding,
            env.c.addr(),
            l,
        )))
        .await
        .unwrap();
    assert_eq!(
        receipt_events::<TokenNetwork::ChannelUnlocked>(&r)[0].transferred_amount,
        U256::from(26)
    );
    // A third party cannot use the plain unlock (its pair has no channel).
    assert_reverts!(
        env.c
            .client
            .send(tn_c.unlock(
                a,
                U256::from(26),
                U256::from(l.expiration.0),
                l.amount.0,
                b32(l.secrethash.0),
                merkle_proof(&a_tree, 3)
            ))
            .await,
        E::ChannelNotClosed(_)
    );

    // a unlocks M1 in b's proof (a single-lock tree: empty proof).
    let m = &b_locks[0];
    let r = env
        .a
        .client
        .send(env.tn(&env.a).unlock(
            b,
            U256::from(30),
            U256::from(m.expiration.0),
            m.amount.0,
            b32(m.secrethash.0),
            merkle_proof(&b_tree, 0),
        ))
        .await
        .unwrap();
    assert_eq!(
        receipt_events::<TokenNetwork::ChannelUnlocked>(&r)[0].transferred_amount,
        U256::from(36)
    );

    // After the settle window no unlock is accepted (L1 of b's view is irrelevant: any lock).
    let (settle_block, _, _, _) = env.channel().await;
    env.next_tx_in(settle_block + 1).await;
    assert_reverts!(
        env.b.client.send(unlock_by_b(2, 26)).await,
        E::SettleWindowOver(_)
    );

    // Settlement: a = 100 + 36 - 26 = 110, b = 100 + 26 - 36 = 90; L2 (7) and L3 (9) stay with a.
    env.mine_past_settle().await;
    let (ba, bb) = (env.token_balance(a).await, env.token_balance(b).await);
    let r = env
        .settle(&env.c, amt(26), a_root, amt(36), b_root)
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelSettled>(&r)[0];
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(110), U256::from(90))
    );
    assert_eq!(env.token_balance(a).await, ba + U256::from(110));
    assert_eq!(env.token_balance(b).await, bb + U256::from(90));
    // Unlock after settle.
    assert_reverts!(
        env.b.client.send(unlock_by_b(2, 26)).await,
        E::ChannelNotClosed(_)
    );
}

#[tokio::test]
async fn unlock_that_would_overflow_transferred_amount_reverts() {
    let env = Env::new().await;
    env.open(100, 100).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let now = env.chain.block_number().await.unwrap();
    let locks = [lock(now + 40, 5, 7)];
    let tree = locks_tree(&locks);
    let near_max = TokenAmount(U256::MAX - U256::from(2));
    let (_, bp) = balance_proof(&env.a.key, binding, near_max, tree.root(), 1, ah(1));
    env.c
        .client
        .send(env.secrets(&env.c).registerSecret(b32(secret(7).0)))
        .await
        .unwrap();
    env.b
        .client
        .send(
            env.tn(&env.b)
                .closeChannel(a, near_max.0, b32(tree.root().0), 1, b32(ah(1)), bp),
        )
        .await
        .unwrap();
    let l = &locks[0];
    let err = env
        .b
        .client
        .send(env.tn(&env.b).unlock(
            a,
            near_max.0,
            U256::from(l.expiration.0),
            l.amount.0,
            b32(l.secrethash.0),
            merkle_proof(&tree, 0),
        ))
        .await
        .unwrap_err();
    // Solidity's checked arithmetic: Panic(0x11).
    let panic = err.revert_data().expect("revert data");
    assert_eq!(
        &panic[..4],
        &[0x4e, 0x48, 0x7b, 0x71],
        "Panic(uint256) selector"
    );
    assert_eq!(panic[35], 0x11, "arithmetic overflow panic code");
    let _ = b;
}

#[tokio::test]
async fn punish_obsolete_unlock() {
    let env = Env::new().await;
    env.open(100, 60).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let now = env.chain.block_number().await.unwrap();
    // a locked 20 toward b (nonce 1); b could not route it and disposed it (signed); a's next proof (nonce 2) drops it.
    let locks = [lock(now + 40, 20, 9)];
    let tree = locks_tree(&locks);
    let l = &locks[0];
    let (_, old_bp) = balance_proof(&env.a.key, binding, amt(0), tree.root(), 1, ah(1));
    let disposed = disposed_sig(&env.b.key, binding, l.lockhash(), ah(7));
    let tn_a = env.tn(&env.a);
    let punish = |s: Bytes| tn_a.punishObsoleteUnlock(a, b, b32(l.lockhash()), b32(ah(7)), s);
    assert_reverts!(
        env.a.client.send(punish(disposed.clone())).await,
        E::ChannelNotClosed(_)
    );

    // b cheats: closes with the obsolete proof, reveals the secret and unlocks the disposed lock.
    env.b
        .client
        .send(
            env.tn(&env.b)
                .closeChannel(a, U256::ZERO, b32(tree.root().0), 1, b32(ah(1)), old_bp),
        )
        .await
        .unwrap();
    // Punishing an honest participant (nothing unlocked yet) fails.
    assert_reverts!(
        env.a.client.send(punish(disposed.clone())).await,
        E::LockNotUnlocked(_)
    );
    env.b
        .client
        .send(env.secrets(&env.b).registerSecret(b32(secret(9).0)))
        .await
        .unwrap();
    env.b
        .client
        .send(env.tn(&env.b).unlock(
            a,
            U256::ZERO,
            U256::from(l.expiration.0),
            l.amount.0,
            b32(l.secrethash.0),
            merkle_proof(&tree, 0),
        ))
        .await
        .unwrap();
    // A disposal signed by someone else than the cheater (c, or the beneficiary itself) proves nothing.
    assert_reverts!(env.a.client.send(punish(disposed_sig(&env.c.key, binding, l.lockhash(), ah(7)))).await, E::InvalidSignature(e) if e.expected == b);
    assert_reverts!(
        env.a
            .client
            .send(punish(disposed_sig(
                &env.a.key,
                binding,
                l.lockhash(),
                ah(7)
            )))
            .await,
        E::InvalidSignature(_)
    );
    // Another lock (never unlocked) is no ground either.
    let other = lock(now + 40, 21, 9).lockhash();
    assert_reverts!(
        env.a
            .client
            .send(tn_a.punishObsoleteUnlock(
                a,
                b,
                b32(other),
                b32(ah(7)),
                disposed_sig(&env.b.key, binding, other, ah(7))
            ))
            .await,
        E::LockNotUnlocked(_)
    );

    // Punish in the punish window, after settle_block_number (anyone may submit it; c does).
    let (settle_block, _, _, _) = env.channel().await;
    env.next_tx_in(settle_block + 2).await;
    let r = env
        .c
        .client
        .send(env.tn(&env.c).punishObsoleteUnlock(
            a,
            b,
            b32(l.lockhash()),
            b32(ah(7)),
            disposed.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        receipt_events::<TokenNetwork::ChannelPunished>(&r)[0].beneficiary,
        a
    );
    assert_eq!(
        env.tn(&env.c)
            .getPunishedBeneficiary(b, a)
            .call()
            .await
            .unwrap(),
        a
    );
    // Not twice.
    assert_reverts!(
        env.a.client.send(punish(disposed)).await,
        E::AlreadyPunished(_)
    );

    // Settle: a takes the whole channel, whatever the balance proofs say (b's unlock raised a's transferred amount to 20).
    env.mine_past_settle().await;
    let ba = env.token_balance(a).await;
    let r = env
        .settle(
            &env.c,
            TokenAmount::default(),
            Locksroot::default(),
            amt(0),
            Locksroot(H256::ZERO),
        )
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelSettled>(&r)[0];
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(160), U256::ZERO)
    );
    assert_eq!(env.token_balance(a).await, ba + U256::from(160));
}
