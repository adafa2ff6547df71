//! TokenNetwork on a real anvil chain: open, deposit, withdraw, close, updateBalanceProof(Delegate),
//! settle and cooperativeSettle — success paths, every failing check, and the attacks (replayed
//! nonces, foreign signatures, wrong chain id / open block, overflows, timing windows).
//! Every signature is produced by the core's signing code.

mod contracts_support;

use alloy::primitives::{Address as EthAddress, Bytes, U256};
use contracts_support::*;
use smartraiden::chain::bindings::TokenNetwork;
use smartraiden::chain::client::receipt_events;
use smartraiden::primitives::{BlockNumber, ChainId, H256, Locksroot, TokenAmount};
use smartraiden::proofs::balance_hash;

#[tokio::test]
async fn open_channel_success_and_every_failing_check() {
    let env = Env::new().await;
    let tn = env.tn(&env.c);
    let (a, b) = (env.a.eth(), env.b.eth());

    // Failing checks first, from a third party (anyone may open).
    assert_reverts!(
        env.c
            .client
            .send(tn.openChannel(EthAddress::ZERO, b, SETTLE_TIMEOUT))
            .await,
        E::InvalidParticipants(_)
    );
    assert_reverts!(
        env.c
            .client
            .send(tn.openChannel(a, EthAddress::ZERO, SETTLE_TIMEOUT))
            .await,
        E::InvalidParticipants(_)
    );
    assert_reverts!(
        env.c
            .client
            .send(tn.openChannel(a, a, SETTLE_TIMEOUT))
            .await,
        E::InvalidParticipants(_)
    );
    assert_reverts!(env.c.client.send(tn.openChannel(a, b, 5)).await, E::InvalidSettleTimeout(t) if t.settle_timeout == 5);
    assert_reverts!(
        env.c.client.send(tn.openChannel(a, b, 2_700_001)).await,
        E::InvalidSettleTimeout(t) if t.settle_timeout == 2_700_001
    );

    let receipt = env
        .c
        .client
        .send(tn.openChannel(a, b, SETTLE_TIMEOUT))
        .await
        .unwrap();
    let opened = receipt_events::<TokenNetwork::ChannelOpened>(&receipt);
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].channel_identifier.0,
        env.channel_id().0.0,
        "on-chain id = core's channel_identifier"
    );
    assert_eq!(
        (
            opened[0].participant1,
            opened[0].participant2,
            opened[0].settle_timeout
        ),
        (a, b, SETTLE_TIMEOUT)
    );
    let (settle_block, open_block, state, timeout) = env.channel().await;
    assert_eq!(
        (settle_block, open_block, state, timeout),
        (0, receipt.block_number.unwrap(), 1, SETTLE_TIMEOUT)
    );
    let id = tn.getChannelIdentifier(b, a).call().await.unwrap();
    assert_eq!(id.0, env.channel_id().0.0, "identifier is symmetric");

    // Either order of the pair names the same channel.
    assert_reverts!(
        env.c
            .client
            .send(tn.openChannel(b, a, SETTLE_TIMEOUT))
            .await,
        E::ChannelAlreadyExists(_)
    );
    assert_reverts!(
        env.a
            .client
            .send(
                env.tn(&env.a)
                    .openChannelWithDeposit(a, b, SETTLE_TIMEOUT, U256::from(1))
            )
            .await,
        E::ChannelAlreadyExists(_)
    );
}

#[tokio::test]
async fn open_with_deposit_and_deposit() {
    let env = Env::new().await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn_a = env.tn(&env.a);
    assert_reverts!(
        env.a
            .client
            .send(tn_a.openChannelWithDeposit(a, b, SETTLE_TIMEOUT, U256::ZERO))
            .await,
        E::ZeroAmount(_)
    );
    assert_reverts!(
        env.a
            .client
            .send(tn_a.openChannelWithDeposit(a, b, 1, U256::from(5)))
            .await,
        E::InvalidSettleTimeout(_)
    );
    // Deposit into a channel that does not exist.
    assert_reverts!(
        env.a.client.send(tn_a.deposit(a, b, U256::from(5))).await,
        E::ChannelNotOpen(_)
    );

    let before = env.token_balance(a).await;
    let receipt = env
        .a
        .client
        .send(tn_a.openChannelWithDeposit(a, b, SETTLE_TIMEOUT, U256::from(100)))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelOpenedAndDeposit>(&receipt)[0];
    assert_eq!(
        (ev.participant, ev.partner, ev.participant_deposit),
        (a, b, U256::from(100))
    );
    assert_eq!(env.token_balance(a).await, before - U256::from(100));
    assert_eq!(env.token_balance(env.tn_address).await, U256::from(100));

    // Cumulative deposits, also paid by a third party for a participant.
    let r = env
        .b
        .client
        .send(env.tn(&env.b).deposit(b, a, U256::from(40)))
        .await
        .unwrap();
    assert_eq!(
        receipt_events::<TokenNetwork::ChannelNewDeposit>(&r)[0].total_deposit,
        U256::from(40)
    );
    let r = env
        .c
        .client
        .send(env.tn(&env.c).deposit(a, b, U256::from(7)))
        .await
        .unwrap();
    assert_eq!(
        receipt_events::<TokenNetwork::ChannelNewDeposit>(&r)[0].total_deposit,
        U256::from(107)
    );
    assert_eq!(env.participant(&env.a, &env.b).await.0, U256::from(107));
    assert_eq!(env.participant(&env.b, &env.a).await.0, U256::from(40));
    assert_eq!(env.token_balance(env.tn_address).await, U256::from(147));
    assert_reverts!(
        env.b
            .client
            .send(env.tn(&env.b).deposit(b, a, U256::ZERO))
            .await,
        E::ZeroAmount(_)
    );

    // More than the payer owns: the token refuses, nothing changes.
    let res = env
        .c
        .client
        .send(env.tn(&env.c).deposit(a, b, U256::from(START_TOKENS * 2)))
        .await;
    assert!(
        res.unwrap_err().revert_data().is_some(),
        "token transfer failure reverts"
    );
    assert_eq!(env.participant(&env.a, &env.b).await.0, U256::from(107));

    // A closed channel takes no deposit.
    env.a
        .client
        .send(tn_a.closeChannel(
            b,
            U256::ZERO,
            Default::default(),
            0,
            Default::default(),
            Bytes::new(),
        ))
        .await
        .unwrap();
    assert_reverts!(
        env.a.client.send(tn_a.deposit(a, b, U256::from(1))).await,
        E::ChannelNotOpen(_)
    );
}

#[tokio::test]
async fn withdraw_success_replay_and_failing_checks() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn = env.tn(&env.c); // anyone may submit a co-signed withdraw
    let binding = env.binding().await;
    // Off chain a paid b 20: a's balance is 80; a withdraws 30.
    let sa = withdraw_sig(&env.a.key, binding, env.a.addr(), 80, 30, FAR);
    let sb = withdraw_sig(&env.b.key, binding, env.a.addr(), 80, 30, FAR);
    let sc = withdraw_sig(&env.c.key, binding, env.a.addr(), 80, 30, FAR);

    // A non-participant's signature in place of the partner's.
    assert_reverts!(
        env.c.client.send(tn.withdraw(a, b, U256::from(80), U256::from(30), FAR, sa.clone(), sc)).await,
        E::InvalidSignature(e) if e.expected == b
    );
    // Signatures swapped (partner's where participant's goes).
    assert_reverts!(
        env.c.client.send(tn.withdraw(a, b, U256::from(80), U256::from(30), FAR, sb.clone(), sa.clone())).await,
        E::InvalidSignature(e) if e.expected == a
    );
    // Signed amounts differ from the submitted ones.
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(
                a,
                b,
                U256::from(80),
                U256::from(31),
                FAR,
                sa.clone(),
                sb.clone()
            ))
            .await,
        E::InvalidSignature(_)
    );
    // Wrong chain id and wrong open block in the signed data.
    let wrong_chain = smartraiden::proofs::ChannelBinding {
        chain_id: ChainId(1),
        ..binding
    };
    let wrong_open = smartraiden::proofs::ChannelBinding {
        open_block_number: BlockNumber(binding.open_block_number.0 - 1),
        ..binding
    };
    for bad in [wrong_chain, wrong_open] {
        let (x, y) = (
            withdraw_sig(&env.a.key, bad, env.a.addr(), 80, 30, FAR),
            withdraw_sig(&env.b.key, bad, env.a.addr(), 80, 30, FAR),
        );
        assert_reverts!(
            env.c
                .client
                .send(tn.withdraw(a, b, U256::from(80), U256::from(30), FAR, x, y))
                .await,
            E::InvalidSignature(_)
        );
    }
    // Co-signed but invalid amounts: zero, more than the balance, a balance above the total (overflow attempt).
    for (balance, withdraw, expect_zero) in [(80u64, 0u64, true), (80, 81, false)] {
        let (x, y) = (
            withdraw_sig(&env.a.key, binding, env.a.addr(), balance, withdraw, FAR),
            withdraw_sig(&env.b.key, binding, env.a.addr(), balance, withdraw, FAR),
        );
        let res = env
            .c
            .client
            .send(tn.withdraw(a, b, U256::from(balance), U256::from(withdraw), FAR, x, y))
            .await;
        if expect_zero {
            assert_reverts!(res, E::ZeroAmount(_));
        } else {
            assert_reverts!(res, E::InvalidWithdraw(_));
        }
    }
    let huge = TokenAmount(U256::MAX);
    let huge_sig = |k| {
        contracts_support::sig(smartraiden::proofs::SignedData::sign(
            &smartraiden::proofs::WithdrawData {
                participant: env.a.addr(),
                participant_balance: huge,
                participant_withdraw: amt(30),
                expiration: BlockNumber(FAR),
                binding,
            },
            k,
        ))
    };
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(
                a,
                b,
                U256::MAX,
                U256::from(30),
                FAR,
                huge_sig(&env.a.key),
                huge_sig(&env.b.key)
            ))
            .await,
        E::InvalidWithdraw(_)
    );

    // Success.
    let before = env.token_balance(a).await;
    let r = env
        .c
        .client
        .send(tn.withdraw(
            a,
            b,
            U256::from(80),
            U256::from(30),
            FAR,
            sa.clone(),
            sb.clone(),
        ))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelWithdraw>(&r)[0];
    assert_eq!(
        (ev.participant1_balance, ev.participant2_balance),
        (U256::from(50), U256::from(70))
    );
    assert_eq!(env.token_balance(a).await, before + U256::from(30));
    assert_eq!(env.participant(&env.a, &env.b).await.0, U256::from(50));
    assert_eq!(env.participant(&env.b, &env.a).await.0, U256::from(70));
    let (_, open_block, state, _) = env.channel().await;
    assert_eq!(
        (open_block, state),
        (r.block_number.unwrap(), 1),
        "withdraw keeps the channel open and resets open_block_number"
    );

    // Replay of the same co-signed withdraw: void, since open_block_number moved.
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(a, b, U256::from(80), U256::from(30), FAR, sa, sb))
            .await,
        E::InvalidSignature(_)
    );
    // A balance proof from before the withdraw is void too.
    let (_, old) = balance_proof(&env.b.key, binding, amt(5), Locksroot::default(), 1, ah(1));
    assert_reverts!(
        env.a
            .client
            .send(env.tn(&env.a).closeChannel(
                b,
                U256::from(5),
                Default::default(),
                1,
                b32(ah(1)),
                old
            ))
            .await,
        E::InvalidSignature(_)
    );
    // Closed channel: no withdraw.
    env.a
        .client
        .send(env.tn(&env.a).closeChannel(
            b,
            U256::ZERO,
            Default::default(),
            0,
            Default::default(),
            Bytes::new(),
        ))
        .await
        .unwrap();
    let nb = env.binding().await;
    let (x, y) = (
        withdraw_sig(&env.a.key, nb, env.a.addr(), 50, 10, FAR),
        withdraw_sig(&env.b.key, nb, env.a.addr(), 50, 10, FAR),
    );
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(a, b, U256::from(50), U256::from(10), FAR, x, y))
            .await,
        E::ChannelNotOpen(_)
    );
}

#[tokio::test]
async fn close_with_and_without_proof_and_failing_checks() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn = env.tn(&env.a);
    let binding = env.binding().await;
    let lr = Locksroot(H256([7; 32]));
    let (_, good) = balance_proof(&env.b.key, binding, amt(20), lr, 3, ah(9));
    let snap = env.chain.snapshot().await.unwrap();

    // Signed by a non-participant, by the closer itself, for another chain, for another open block.
    let (_, by_c) = balance_proof(&env.c.key, binding, amt(20), lr, 3, ah(9));
    let (_, by_a) = balance_proof(&env.a.key, binding, amt(20), lr, 3, ah(9));
    let (_, chain1) = balance_proof(
        &env.b.key,
        smartraiden::proofs::ChannelBinding {
            chain_id: ChainId(1),
            ..binding
        },
        amt(20),
        lr,
        3,
        ah(9),
    );
    let (_, open0) = balance_proof(
        &env.b.key,
        smartraiden::proofs::ChannelBinding {
            open_block_number: BlockNumber(binding.open_block_number.0 + 1),
            ..binding
        },
        amt(20),
        lr,
        3,
        ah(9),
    );
    for bad in [by_c, by_a, chain1, open0] {
        assert_reverts!(
            env.a.client.send(tn.closeChannel(b, U256::from(20), b32(lr.0), 3, b32(ah(9)), bad)).await,
            E::InvalidSignature(e) if e.expected == b
        );
    }
    // Submitted values differ from the signed ones.
    assert_reverts!(
        env.a
            .client
            .send(tn.closeChannel(b, U256::from(21), b32(lr.0), 3, b32(ah(9)), good.clone()))
            .await,
        E::InvalidSignature(_)
    );
    // A malformed signature is named as such.
    let res = env
        .a
        .client
        .send(tn.closeChannel(
            b,
            U256::from(20),
            b32(lr.0),
            3,
            b32(ah(9)),
            Bytes::from(vec![1u8; 64]),
        ))
        .await;
    assert_reverts!(res, E::MalformedSignature(_));
    let mut bad_v = good.to_vec();
    bad_v[64] = 29;
    let res = env
        .a
        .client
        .send(tn.closeChannel(
            b,
            U256::from(20),
            b32(lr.0),
            3,
            b32(ah(9)),
            Bytes::from(bad_v),
        ))
        .await;
    assert_reverts!(res, E::MalformedSignature(_));
    // A non-participant cannot close a–b (its pair with b has no channel).
    assert_reverts!(
        env.c
            .client
            .send(env.tn(&env.c).closeChannel(
                b,
                U256::ZERO,
                Default::default(),
                0,
                Default::default(),
                Bytes::new()
            ))
            .await,
        E::ChannelNotOpen(_)
    );

    // Success with proof: the partner's balance hash and nonce are stored.
    let r = env
        .a
        .client
        .send(tn.closeChannel(b, U256::from(20), b32(lr.0), 3, b32(ah(9)), good.clone()))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelClosed>(&r)[0];
    assert_eq!(
        (
            ev.closing_participant,
            ev.transferred_amount,
            ev.locksroot.0
        ),
        (a, U256::from(20), lr.0.0)
    );
    let (settle_block, _, state, _) = env.channel().await;
    assert_eq!(
        (settle_block, state),
        (r.block_number.unwrap() + SETTLE_TIMEOUT, 2)
    );
    let (_, bh, nonce) = env.participant(&env.b, &env.a).await;
    assert_eq!(
        (bh, nonce),
        (bh24(balance_hash(amt(20), lr)), 3),
        "stored balance hash = core's balance_hash (24-byte prefix)"
    );
    // Only once.
    assert_reverts!(
        env.b
            .client
            .send(env.tn(&env.b).closeChannel(
                a,
                U256::ZERO,
                Default::default(),
                0,
                Default::default(),
                Bytes::new()
            ))
            .await,
        E::ChannelNotOpen(_)
    );

    // Success without proof (nonce 0): nothing stored, event reports zeros.
    env.chain.revert(snap).await.unwrap();
    let r = env
        .b
        .client
        .send(env.tn(&env.b).closeChannel(
            a,
            U256::from(99),
            b32(lr.0),
            0,
            b32(ah(9)),
            Bytes::new(),
        ))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelClosed>(&r)[0];
    assert_eq!(
        (
            ev.closing_participant,
            ev.transferred_amount,
            ev.locksroot.0
        ),
        (b, U256::ZERO, [0u8; 32])
    );
    assert_eq!(env.participant(&env.a, &env.b).await.2, 0);
}

#[tokio::test]
async fn update_balance_proof_nonces_and_window() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let lr = Locksroot::default();
    let (_, b3) = balance_proof(&env.b.key, binding, amt(20), lr, 3, ah(1));
    let (_, b4) = balance_proof(&env.b.key, binding, amt(25), lr, 4, ah(2));
    let (_, a2) = balance_proof(&env.a.key, binding, amt(7), lr, 2, ah(3));
    let (_, a1) = balance_proof(&env.a.key, binding, amt(5), lr, 1, ah(4));
    // Not closed yet.
    assert_reverts!(
        env.b
            .client
            .send(env.tn(&env.b).updateBalanceProof(
                a,
                U256::from(7),
                b32(lr.0),
                2,
                b32(ah(3)),
                a2.clone()
            ))
            .await,
        E::ChannelNotClosed(_)
    );

    env.a
        .client
        .send(
            env.tn(&env.a)
                .closeChannel(b, U256::from(20), b32(lr.0), 3, b32(ah(1)), b3.clone()),
        )
        .await
        .unwrap();
    // The non-closer submits the closer's proof.
    let r = env
        .b
        .client
        .send(env.tn(&env.b).updateBalanceProof(
            a,
            U256::from(7),
            b32(lr.0),
            2,
            b32(ah(3)),
            a2.clone(),
        ))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::BalanceProofUpdated>(&r)[0];
    assert_eq!((ev.participant, ev.transferred_amount), (a, U256::from(7)));
    assert_eq!(env.participant(&env.a, &env.b).await.2, 2);
    // Replay of an older nonce and of the same nonce.
    assert_reverts!(
        env.b.client.send(env.tn(&env.b).updateBalanceProof(a, U256::from(5), b32(lr.0), 1, b32(ah(4)), a1)).await,
        E::NonceNotHigher(n) if n.on_chain == 2 && n.submitted == 1
    );
    assert_reverts!(
        env.b
            .client
            .send(
                env.tn(&env.b)
                    .updateBalanceProof(a, U256::from(7), b32(lr.0), 2, b32(ah(3)), a2)
            )
            .await,
        E::NonceNotHigher(_)
    );
    // The closer may update too, with a newer proof; an older one is refused.
    assert_reverts!(
        env.a
            .client
            .send(env.tn(&env.a).updateBalanceProof(
                b,
                U256::from(20),
                b32(lr.0),
                3,
                b32(ah(1)),
                b3
            ))
            .await,
        E::NonceNotHigher(_)
    );
    // A non-participant's signature.
    let (_, c5) = balance_proof(&env.c.key, binding, amt(30), lr, 5, ah(5));
    assert_reverts!(
        env.a
            .client
            .send(env.tn(&env.a).updateBalanceProof(
                b,
                U256::from(30),
                b32(lr.0),
                5,
                b32(ah(5)),
                c5
            ))
            .await,
        E::InvalidSignature(_)
    );
    // A third party cannot use updateBalanceProof (its pair has no closed channel).
    let (_, b6) = balance_proof(&env.b.key, binding, amt(30), lr, 6, ah(6));
    assert_reverts!(
        env.c
            .client
            .send(env.tn(&env.c).updateBalanceProof(
                b,
                U256::from(30),
                b32(lr.0),
                6,
                b32(ah(6)),
                b6
            ))
            .await,
        E::ChannelNotClosed(_)
    );

    // Last allowed block: settle_block_number itself.
    let (settle_block, _, _, _) = env.channel().await;
    env.next_tx_in(settle_block).await;
    env.a
        .client
        .send(
            env.tn(&env.a)
                .updateBalanceProof(b, U256::from(25), b32(lr.0), 4, b32(ah(2)), b4),
        )
        .await
        .unwrap();
    assert_eq!(env.participant(&env.b, &env.a).await.2, 4);
    // After the window.
    let (_, b7) = balance_proof(&env.b.key, binding, amt(31), lr, 7, ah(7));
    assert_reverts!(
        env.a
            .client
            .send(env.tn(&env.a).updateBalanceProof(
                b,
                U256::from(31),
                b32(lr.0),
                7,
                b32(ah(7)),
                b7
            ))
            .await,
        E::SettleWindowOver(_)
    );
}

#[tokio::test]
async fn update_balance_proof_delegate_second_half_only() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let lr = Locksroot(H256([3; 32]));
    // b closes without a's proof; a, offline, delegated its defence to c with a's proof from b... the
    // other way round: a closes, b is offline and c defends b by submitting a's proof to b.
    let (bp, a_sig) = balance_proof(&env.a.key, binding, amt(40), lr, 9, ah(1));
    let b_delegation = delegation(&env.b.key, &bp);
    let r = env
        .a
        .client
        .send(env.tn(&env.a).closeChannel(
            b,
            U256::ZERO,
            Default::default(),
            0,
            Default::default(),
            Bytes::new(),
        ))
        .await
        .unwrap();
    let close_block = r.block_number.unwrap();
    let settle_block = close_block + SETTLE_TIMEOUT;
    let first_allowed = settle_block - SETTLE_TIMEOUT / 2 + 1;
    let tn = env.tn(&env.c);
    let call = |ps: Bytes, ds: Bytes, nonce: u64| {
        tn.updateBalanceProofDelegate(a, b, U256::from(40), b32(lr.0), nonce, b32(ah(1)), ps, ds)
    };

    // First half of the window: refused.
    env.next_tx_in(first_allowed - 1).await;
    assert_reverts!(
        env.c.client.send(call(a_sig.clone(), b_delegation.clone(), 9)).await,
        E::DelegateUpdateTooEarly(e) if e.first_allowed_block == U256::from(first_allowed)
    );
    env.next_tx_in(first_allowed).await;
    // Delegation not signed by the defended participant (signed by c, or by a).
    assert_reverts!(env.c.client.send(call(a_sig.clone(), delegation(&env.c.key, &bp), 9)).await, E::InvalidSignature(e) if e.expected == b);
    assert_reverts!(
        env.c
            .client
            .send(call(a_sig.clone(), delegation(&env.a.key, &bp), 9))
            .await,
        E::InvalidSignature(_)
    );
    // Balance proof not signed by the partner.
    let (_, c_sig) = balance_proof(&env.c.key, binding, amt(40), lr, 9, ah(1));
    assert_reverts!(env.c.client.send(call(c_sig, b_delegation.clone(), 9)).await, E::InvalidSignature(e) if e.expected == a);
    // Success in the second half.
    let r = env
        .c
        .client
        .send(call(a_sig.clone(), b_delegation.clone(), 9))
        .await
        .unwrap();
    assert_eq!(r.block_number.unwrap(), first_allowed);
    let (_, bh, nonce) = env.participant(&env.a, &env.b).await;
    assert_eq!((bh, nonce), (bh24(balance_hash(amt(40), lr)), 9));
    // Replay: same nonce refused.
    assert_reverts!(
        env.c.client.send(call(a_sig, b_delegation, 9)).await,
        E::NonceNotHigher(_)
    );
    // After the window.
    let (bp10, a10) = balance_proof(&env.a.key, binding, amt(41), lr, 10, ah(1));
    let d10 = delegation(&env.b.key, &bp10);
    env.next_tx_in(settle_block + 1).await;
    assert_reverts!(
        env.c
            .client
            .send(tn.updateBalanceProofDelegate(
                a,
                b,
                U256::from(41),
                b32(lr.0),
                10,
                b32(ah(1)),
                a10,
                d10
            ))
            .await,
        E::SettleWindowOver(_)
    );
}

#[tokio::test]
async fn settle_pays_per_spec_transfers_both_ways() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let lr = Locksroot::default();
    // a paid b 30 in total, b paid a 10.
    let (_, a_bp) = balance_proof(&env.a.key, binding, amt(30), lr, 4, ah(1));
    let (_, b_bp) = balance_proof(&env.b.key, binding, amt(10), lr, 2, ah(2));
    assert_reverts!(
        env.settle(&env.c, amt(0), lr, amt(0), lr).await,
        E::ChannelNotClosed(_)
    );
    env.a
        .client
        .send(
            env.tn(&env.a)
                .closeChannel(b, U256::from(10), b32(lr.0), 2, b32(ah(2)), b_bp),
        )
        .await
        .unwrap();
    env.b
        .client
        .send(
            env.tn(&env.b)
                .updateBalanceProof(a, U256::from(30), b32(lr.0), 4, b32(ah(1)), a_bp),
        )
        .await
        .unwrap();

    // Too early: up to settle_block_number + punish window inclusive.
    let (settle_block, _, _, _) = env.channel().await;
    env.next_tx_in(settle_block + PUNISH).await;
    assert_reverts!(
        env.settle(&env.c, amt(30), lr, amt(10), lr).await,
        E::SettleTooEarly(e) if e.first_allowed_block == U256::from(settle_block + PUNISH + 1)
    );
    // A failed estimate mines nothing: move one block on.
    env.chain.mine(1).await.unwrap();
    // Values not matching the balance hashes on chain.
    assert_reverts!(
        env.settle(&env.c, amt(29), lr, amt(10), lr).await,
        E::BalanceHashMismatch(_)
    );
    assert_reverts!(
        env.settle(&env.c, amt(30), lr, amt(10), Locksroot(H256([1; 32])))
            .await,
        E::BalanceHashMismatch(_)
    );

    let (ba, bb) = (env.token_balance(a).await, env.token_balance(b).await);
    let r = env.settle(&env.c, amt(30), lr, amt(10), lr).await.unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelSettled>(&r)[0];
    // a: 100 + 10 - 30 = 80; b: 50 + 30 - 10 = 70.
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(80), U256::from(70))
    );
    assert_eq!(env.token_balance(a).await, ba + U256::from(80));
    assert_eq!(env.token_balance(b).await, bb + U256::from(70));
    assert_eq!(env.token_balance(env.tn_address).await, U256::ZERO);
    assert_eq!(
        env.channel().await,
        (0, 0, 0, 0),
        "settled channel is deleted"
    );
    assert_eq!(
        env.participant(&env.a, &env.b).await,
        (U256::ZERO, Default::default(), 0)
    );
    // Twice: nothing left to settle.
    assert_reverts!(
        env.settle(&env.c, amt(30), lr, amt(10), lr).await,
        E::ChannelNotClosed(_)
    );
    // The pair can open again, and old proofs do not apply to the new channel.
    env.open(10, 0).await;
    let (_, old) = balance_proof(&env.b.key, binding, amt(10), lr, 2, ah(2));
    assert_reverts!(
        env.a
            .client
            .send(
                env.tn(&env.a)
                    .closeChannel(b, U256::from(10), b32(lr.0), 2, b32(ah(2)), old)
            )
            .await,
        E::InvalidSignature(_)
    );
}

#[tokio::test]
async fn settle_bounds_overflowing_transferred_amounts() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let binding = env.binding().await;
    let lr = Locksroot::default();
    let max = TokenAmount(U256::MAX);
    // b signed a transferred amount of 2^256-1; a only 5: a takes the whole channel, b gets 0, no overflow.
    let (_, b_bp) = balance_proof(&env.b.key, binding, max, lr, 1, ah(1));
    let (_, a_bp) = balance_proof(&env.a.key, binding, amt(5), lr, 1, ah(2));
    env.a
        .client
        .send(
            env.tn(&env.a)
                .closeChannel(b, U256::MAX, b32(lr.0), 1, b32(ah(1)), b_bp),
        )
        .await
        .unwrap();
    env.b
        .client
        .send(
            env.tn(&env.b)
                .updateBalanceProof(a, U256::from(5), b32(lr.0), 1, b32(ah(2)), a_bp),
        )
        .await
        .unwrap();
    env.mine_past_settle().await;
    let r = env.settle(&env.c, amt(5), lr, max, lr).await.unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelSettled>(&r)[0];
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(150), U256::ZERO)
    );

    // Both huge: only the difference counts (a paid MAX, b paid MAX-60: a loses 60).
    env.open(100, 50).await;
    let binding = env.binding().await;
    let (_, b_bp) = balance_proof(
        &env.b.key,
        binding,
        TokenAmount(U256::MAX - U256::from(60)),
        lr,
        1,
        ah(1),
    );
    let (_, a_bp) = balance_proof(&env.a.key, binding, max, lr, 1, ah(2));
    env.a
        .client
        .send(env.tn(&env.a).closeChannel(
            b,
            U256::MAX - U256::from(60),
            b32(lr.0),
            1,
            b32(ah(1)),
            b_bp,
        ))
        .await
        .unwrap();
    env.b
        .client
        .send(
            env.tn(&env.b)
                .updateBalanceProof(a, U256::MAX, b32(lr.0), 1, b32(ah(2)), a_bp),
        )
        .await
        .unwrap();
    env.mine_past_settle().await;
    let r = env
        .settle(&env.c, max, lr, TokenAmount(U256::MAX - U256::from(60)), lr)
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelSettled>(&r)[0];
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(40), U256::from(110))
    );
}

#[tokio::test]
async fn cooperative_settle_success_and_attacks() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn = env.tn(&env.c);
    let binding = env.binding().await;
    let (pa, pb) = (env.a.addr(), env.b.addr());
    let both = |b1: TokenAmount, b2: TokenAmount| {
        (
            coop_sig(&env.a.key, binding, pa, b1, pb, b2, FAR),
            coop_sig(&env.b.key, binding, pa, b1, pb, b2, FAR),
        )
    };
    // Balances not summing to the deposits: less, more, and an overflowing pair whose sum wraps to 150.
    for (b1, b2) in [
        (amt(60), amt(80)),
        (amt(90), amt(70)),
        (TokenAmount(U256::MAX), amt(151)),
    ] {
        let (sa, sb) = both(b1, b2);
        assert_reverts!(
            env.c.client.send(tn.cooperativeSettle(a, b1.0, b, b2.0, FAR, sa, sb)).await,
            E::BalancesDoNotSumToDeposits(e) if e.total_deposit == U256::from(150)
        );
    }
    // A non-participant's signature, and a signature for another chain.
    let (sa, _) = both(amt(90), amt(60));
    let sc = coop_sig(&env.c.key, binding, pa, amt(90), pb, amt(60), FAR);
    assert_reverts!(env.c.client.send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), FAR, sa.clone(), sc)).await, E::InvalidSignature(e) if e.expected == b);
    let other = smartraiden::proofs::ChannelBinding {
        chain_id: ChainId(5),
        ..binding
    };
    let sb5 = coop_sig(&env.b.key, other, pa, amt(90), pb, amt(60), FAR);
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), FAR, sa.clone(), sb5))
            .await,
        E::InvalidSignature(_)
    );

    let (sa, sb) = both(amt(90), amt(60));
    let (ba, bb) = (env.token_balance(a).await, env.token_balance(b).await);
    let r = env
        .c
        .client
        .send(tn.cooperativeSettle(
            a,
            U256::from(90),
            b,
            U256::from(60),
            FAR,
            sa.clone(),
            sb.clone(),
        ))
        .await
        .unwrap();
    let ev = &receipt_events::<TokenNetwork::ChannelCooperativeSettled>(&r)[0];
    assert_eq!(
        (ev.participant1_amount, ev.participant2_amount),
        (U256::from(90), U256::from(60))
    );
    assert_eq!(env.token_balance(a).await, ba + U256::from(90));
    assert_eq!(env.token_balance(b).await, bb + U256::from(60));
    assert_eq!(env.channel().await.2, 0);
    // Replay after the pair reopened: the open block differs, so the old signatures fail.
    env.open(100, 50).await;
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), FAR, sa, sb))
            .await,
        E::InvalidSignature(_)
    );
    // Not on a closed channel.
    env.a
        .client
        .send(env.tn(&env.a).closeChannel(
            b,
            U256::ZERO,
            Default::default(),
            0,
            Default::default(),
            Bytes::new(),
        ))
        .await
        .unwrap();
    let nb = env.binding().await;
    let (sa, sb) = (
        coop_sig(&env.a.key, nb, pa, amt(90), pb, amt(60), FAR),
        coop_sig(&env.b.key, nb, pa, amt(90), pb, amt(60), FAR),
    );
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), FAR, sa, sb))
            .await,
        E::ChannelNotOpen(_)
    );
}

#[tokio::test]
async fn deposits_above_2_pow_128_are_refused() {
    let env = Env::new().await;
    let dep = &env.deployer;
    let (a, b) = (env.a.eth(), env.b.eth());
    // A token whose supply allows deposits beyond what the contract stores (2^128 - 1 in total per channel).
    let supply = U256::MAX;
    let (token, _) = dep
        .deploy(smartraiden::chain::bindings::StandardToken::deploy_builder(
            dep.provider(),
            supply,
            "Big".into(),
            0,
            "BIG".into(),
        ))
        .await
        .unwrap();
    let registry = smartraiden::chain::bindings::TokenNetworkRegistry::new(
        env.deployment.registry,
        dep.provider(),
    );
    let r = dep
        .send(registry.createERC20TokenNetwork(token))
        .await
        .unwrap();
    let tn_addr = receipt_events::<
        smartraiden::chain::bindings::TokenNetworkRegistry::TokenNetworkCreated,
    >(&r)[0]
        .token_network_address;
    let t = smartraiden::chain::bindings::StandardToken::new(token, dep.provider());
    dep.send(t.approve(tn_addr, U256::MAX)).await.unwrap();
    let tn = TokenNetwork::new(tn_addr, dep.provider());
    let limit = U256::from(u128::MAX);
    assert_reverts!(
        dep.send(tn.openChannelWithDeposit(a, b, SETTLE_TIMEOUT, limit + U256::from(1)))
            .await,
        E::DepositOverflow(_)
    );
    dep.send(tn.openChannelWithDeposit(a, b, SETTLE_TIMEOUT, limit - U256::from(10)))
        .await
        .unwrap();
    // The partner's deposit counts towards the same limit; an amount that would wrap uint256 too.
    assert_reverts!(
        dep.send(tn.deposit(b, a, U256::from(11))).await,
        E::DepositOverflow(_)
    );
    assert_reverts!(
        dep.send(tn.deposit(a, b, U256::MAX)).await,
        E::DepositOverflow(_)
    );
    dep.send(tn.deposit(b, a, U256::from(10))).await.unwrap();
    assert_eq!(
        tn.getParticipantInfo(b, a)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        U256::from(10)
    );
    assert_eq!(
        tn.getParticipantInfo(a, b)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        limit - U256::from(10)
    );
    assert_eq!(t.balanceOf(tn_addr).call().await.unwrap(), limit);
}

#[tokio::test]
async fn withdraw_terms_expire_after_their_expiration_block() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn = env.tn(&env.c);
    let binding = env.binding().await;
    let expiration = env.chain.block_number().await.unwrap() + 3;
    let sa = withdraw_sig(&env.a.key, binding, env.a.addr(), 80, 30, expiration);
    let sb = withdraw_sig(&env.b.key, binding, env.a.addr(), 80, 30, expiration);

    // The expiration is part of the signed data: another one does not verify.
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(
                a,
                b,
                U256::from(80),
                U256::from(30),
                expiration + 1,
                sa.clone(),
                sb.clone()
            ))
            .await,
        E::InvalidSignature(_)
    );

    let before_expiry = env.chain.snapshot().await.unwrap();
    env.next_tx_in(expiration + 1).await;
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(a, b, U256::from(80), U256::from(30), expiration, sa.clone(), sb.clone()))
            .await,
        E::RequestExpired(e) if e.expiration == expiration
    );
    // Checked first: expired terms fail as expired whatever else is wrong with them.
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(
                a,
                b,
                U256::from(80),
                U256::from(31),
                expiration,
                sb.clone(),
                sa.clone()
            ))
            .await,
        E::RequestExpired(_)
    );
    assert_reverts!(
        env.c
            .client
            .send(tn.withdraw(
                a,
                env.c.eth(),
                U256::from(80),
                U256::from(30),
                expiration,
                sa.clone(),
                sb.clone()
            ))
            .await,
        E::RequestExpired(_)
    );
    assert_eq!(env.participant(&env.a, &env.b).await.0, U256::from(100));

    // At the expiration block itself the terms still go through.
    env.chain.revert(before_expiry).await.unwrap();
    env.next_tx_in(expiration).await;
    let before = env.token_balance(a).await;
    let r = env
        .c
        .client
        .send(tn.withdraw(a, b, U256::from(80), U256::from(30), expiration, sa, sb))
        .await
        .unwrap();
    assert_eq!(r.block_number, Some(expiration));
    assert_eq!(env.token_balance(a).await, before + U256::from(30));
    assert_eq!(env.participant(&env.a, &env.b).await.0, U256::from(50));
}

#[tokio::test]
async fn cooperative_settle_terms_expire_after_their_expiration_block() {
    let env = Env::new().await;
    env.open(100, 50).await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let tn = env.tn(&env.c);
    let binding = env.binding().await;
    let (pa, pb) = (env.a.addr(), env.b.addr());
    let expiration = env.chain.block_number().await.unwrap() + 3;
    let s1 = coop_sig(&env.a.key, binding, pa, amt(90), pb, amt(60), expiration);
    let s2 = coop_sig(&env.b.key, binding, pa, amt(90), pb, amt(60), expiration);

    // The expiration is part of the signed data: another one does not verify.
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(
                a,
                U256::from(90),
                b,
                U256::from(60),
                expiration + 1,
                s1.clone(),
                s2.clone()
            ))
            .await,
        E::InvalidSignature(_)
    );

    let before_expiry = env.chain.snapshot().await.unwrap();
    env.next_tx_in(expiration + 1).await;
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), expiration, s1.clone(), s2.clone()))
            .await,
        E::RequestExpired(e) if e.expiration == expiration
    );
    // Checked first: before the signatures and the balances.
    assert_reverts!(
        env.c
            .client
            .send(tn.cooperativeSettle(
                a,
                U256::from(91),
                b,
                U256::from(60),
                expiration,
                s2.clone(),
                s1.clone()
            ))
            .await,
        E::RequestExpired(_)
    );
    assert_eq!(env.channel().await.2, 1, "the channel stays open");

    // At the expiration block itself the terms still go through.
    env.chain.revert(before_expiry).await.unwrap();
    env.next_tx_in(expiration).await;
    let (ba, bb) = (env.token_balance(a).await, env.token_balance(b).await);
    let r = env
        .c
        .client
        .send(tn.cooperativeSettle(a, U256::from(90), b, U256::from(60), expiration, s1, s2))
        .await
        .unwrap();
    assert_eq!(r.block_number, Some(expiration));
    assert_eq!(env.token_balance(a).await, ba + U256::from(90));
    assert_eq!(env.token_balance(b).await, bb + U256::from(60));
    assert_eq!(env.channel().await.2, 0);
}
