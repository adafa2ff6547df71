//! CPU cost of the protocol core's hot paths (criterion): a direct transfer and a three-hop
//! mediated transfer end to end between in-memory cores (every signature made and verified),
//! message encode/decode, and signature recovery.

use criterion::{Criterion, criterion_group, criterion_main};
use smartraiden::core::{Action, TransferRequest};
use smartraiden::crypto::{PrivateKey, recover_eip191};
use smartraiden::messages::*;
use smartraiden::primitives::*;
use smartraiden::proofs::Lock;
use smartraiden::sim::Mesh;
use std::hint::black_box;

fn big() -> TokenAmount {
    TokenAmount::from(u128::MAX / 4)
}

fn pay(mesh: &Mesh, target: usize, is_direct: bool) -> Action {
    Action::Transfer(TransferRequest {
        token: mesh.token,
        target: mesh.address(target),
        amount: TokenAmount::from(1u64),
        max_fee: None,
        is_direct,
        secret: None,
        identifier: None,
    })
}

fn transfers(c: &mut Criterion) {
    let mut mesh = Mesh::line(2, big());
    c.bench_function("direct transfer, both sides (DirectTransfer + Ack)", |b| {
        b.iter(|| {
            let a = pay(&mesh, 1, true);
            assert_eq!(mesh.act(0, a), 2);
        })
    });
    let mut mesh = Mesh::line(4, big());
    c.bench_function("mediated transfer over three hops, all four nodes", |b| {
        b.iter(|| {
            let a = pay(&mesh, 3, false);
            // 3 MediatedTransfer, SecretRequest, 4 RevealSecret, 3 Unlock, and an Ack each.
            assert_eq!(mesh.act(0, a), 22);
        })
    });
}

fn codec(c: &mut Criterion) {
    let key = PrivateKey::from_bytes([1; 32]).unwrap();
    let m = Message::MediatedTransfer(MediatedTransfer {
        balance_proof: BalanceProof {
            channel_identifier: ChannelId(H256([1; 32])),
            open_block_number: BlockNumber(7),
            nonce: Nonce(3),
            transferred_amount: TokenAmount::from(150u64),
            locksroot: Locksroot(H256([2; 32])),
        },
        lock: Lock {
            expiration: BlockNumber(99),
            amount: TokenAmount::from(50u64),
            secrethash: SecretHash(H256([3; 32])),
        },
        initiator: key.address(),
        target: Address([5; 20]),
        fee: TokenAmount::from(6u64),
    });
    let chain = ChainId(31337);
    let signed = encode_signed(m.clone(), &key, chain);
    c.bench_function("encode MediatedTransfer body (no signature)", |b| {
        b.iter(|| black_box(encode_body(black_box(&m))))
    });
    c.bench_function("encode + sign MediatedTransfer", |b| {
        b.iter(|| black_box(encode_signed(black_box(m.clone()), &key, chain)))
    });
    c.bench_function("decode + recover signer of MediatedTransfer", |b| {
        b.iter(|| black_box(decode(black_box(&signed.bytes), chain).unwrap()))
    });
    let sig = key.sign_eip191(b"some data");
    c.bench_function("secp256k1 signature recovery (EIP-191)", |b| {
        b.iter(|| black_box(recover_eip191(black_box(b"some data"), &sig).unwrap()))
    });
    c.bench_function("secp256k1 sign (EIP-191)", |b| {
        b.iter(|| black_box(key.sign_eip191(black_box(b"some data"))))
    });
}

criterion_group!(benches, transfers, codec);
criterion_main!(benches);
