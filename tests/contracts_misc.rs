//! The rest of the on-chain surface on a real anvil chain: the core's digest test vectors checked
//! against the contracts' own proof code, ERC-223 and approveAndCall deposits, the registry, the
//! SecretRegistry, Discovery, and the `smartraiden deploy` subcommand.

mod contracts_support;

use alloy::primitives::{Address as EthAddress, B256, Bytes, U256};
use alloy::sol_types::SolInterface;
use contracts_support::*;
use serde_json::Value;
use smartraiden::chain::bindings::{
    ApproveAndCallToken, Discovery, ERC223Token, ProofsHarness, SecretRegistry, TokenNetwork,
    TokenNetworkRegistry,
};
use smartraiden::chain::client::receipt_events;
use smartraiden::chain::deploy::Deployment;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/digests.json");

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("vector field {k} missing"))
}
fn h(v: &Value, k: &str) -> B256 {
    s(v, k).parse().unwrap()
}
fn ad(v: &Value, k: &str) -> EthAddress {
    s(v, k).parse().unwrap()
}
fn u(v: &Value, k: &str) -> U256 {
    match &v[k] {
        Value::String(x) => x.parse().unwrap(),
        Value::Number(n) => U256::from(n.as_u64().unwrap()),
        _ => panic!("vector field {k} missing"),
    }
}
fn n64(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("vector field {k} not a u64"))
}
fn by(v: &Value, k: &str) -> Bytes {
    s(v, k).parse().unwrap()
}

#[tokio::test]
async fn core_digest_vectors_match_the_contracts() {
    let chain = smartraiden::chain::DevChain::start().await.unwrap();
    let client = chain
        .client(smartraiden::chain::DevChain::key(0))
        .await
        .unwrap();
    let (addr, _) = client
        .deploy(ProofsHarness::deploy_builder(client.provider()))
        .await
        .unwrap();
    let p = ProofsHarness::new(addr, client.provider());
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let mut checked = 0;

    // Checks the packed data, the EIP-191 digest and the recovered signer of one signed vector.
    async fn check_signed(
        p: &ProofsHarness::ProofsHarnessInstance<&alloy::providers::DynProvider>,
        v: &Value,
        data: Bytes,
        kind: &str,
    ) {
        assert_eq!(
            data,
            by(v, "data"),
            "{kind}: packed data differs from the core's"
        );
        let digest = p.ethSignedDigest(data).call().await.unwrap();
        assert_eq!(digest, h(v, "digest"), "{kind}: EIP-191 digest differs");
        let signer = p.recover(digest, by(v, "signature")).call().await.unwrap();
        assert_eq!(
            signer,
            ad(v, "signer"),
            "{kind}: contract recovers another signer from the core's signature"
        );
    }

    for v in vectors["balance_proof"].as_array().unwrap() {
        let data = p
            .balanceProofData(
                u(v, "transferred_amount"),
                h(v, "locksroot"),
                n64(v, "nonce"),
                h(v, "additional_hash"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "balance_proof").await;
        let bh = p
            .balanceHash(u(v, "transferred_amount"), h(v, "locksroot"))
            .call()
            .await
            .unwrap();
        assert_eq!(
            bh.as_slice(),
            &h(v, "balance_hash")[..24],
            "balance_hash prefix"
        );
        checked += 1;
    }
    for v in vectors["delegation"].as_array().unwrap() {
        let data = p
            .delegationData(
                u(v, "transferred_amount"),
                h(v, "locksroot"),
                n64(v, "nonce"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "delegation").await;
        checked += 1;
    }
    for v in vectors["withdraw"].as_array().unwrap() {
        let data = p
            .withdrawData(
                ad(v, "participant"),
                u(v, "participant_balance"),
                u(v, "participant_withdraw"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
                n64(v, "expiration"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "withdraw").await;
        checked += 1;
    }
    for v in vectors["cooperative_settle"].as_array().unwrap() {
        let data = p
            .cooperativeSettleData(
                ad(v, "participant1"),
                u(v, "participant1_balance"),
                ad(v, "participant2"),
                u(v, "participant2_balance"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
                n64(v, "expiration"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "cooperative_settle").await;
        checked += 1;
    }
    for v in vectors["disposed_lock"].as_array().unwrap() {
        let data = p
            .disposedLockData(
                h(v, "lockhash"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
                h(v, "additional_hash"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "disposed_lock").await;
        checked += 1;
    }
    for v in vectors["unlock_delegation"].as_array().unwrap() {
        let data = p
            .unlockDelegationData(
                ad(v, "delegatee"),
                u(v, "expiration"),
                u(v, "amount"),
                h(v, "secrethash"),
                h(v, "channel_identifier"),
                n64(v, "open_block_number"),
                u(v, "chain_id"),
            )
            .call()
            .await
            .unwrap();
        check_signed(&p, v, data, "unlock_delegation").await;
        checked += 1;
    }
    for v in vectors["channel_identifier"].as_array().unwrap() {
        let id = p
            .channelIdentifier(
                ad(v, "participant1"),
                ad(v, "participant2"),
                ad(v, "token_network"),
            )
            .call()
            .await
            .unwrap();
        assert_eq!(id, h(v, "channel_identifier"));
        checked += 1;
    }
    for v in vectors["lockhash"].as_array().unwrap() {
        let lh = p
            .computeLockhash(u(v, "expiration"), u(v, "amount"), h(v, "secrethash"))
            .call()
            .await
            .unwrap();
        assert_eq!(lh, h(v, "lockhash"));
        checked += 1;
    }
    for v in vectors["locksroot"].as_array().unwrap() {
        let root = h(v, "root");
        let locks = v["locks"].as_array().unwrap();
        let proofs = v["proofs"].as_array().unwrap();
        assert_eq!(locks.len(), proofs.len());
        for (l, proof) in locks.iter().zip(proofs) {
            let mut bytes = Vec::new();
            for sib in proof.as_array().unwrap() {
                bytes.extend_from_slice(sib.as_str().unwrap().parse::<B256>().unwrap().as_slice());
            }
            let got = p
                .merkleRoot(h(l, "lockhash"), Bytes::from(bytes))
                .call()
                .await
                .unwrap();
            assert_eq!(
                got, root,
                "Merkle proof of a core locksroot vector does not verify on chain"
            );
            checked += 1;
        }
    }
    // secrethash = sha256(secret): the SecretRegistry files the secret under the core's hash.
    let (sr, _) = client
        .deploy(SecretRegistry::deploy_builder(client.provider()))
        .await
        .unwrap();
    let sr = SecretRegistry::new(sr, client.provider());
    for v in vectors["secrethash"].as_array().unwrap() {
        let r = client
            .send(sr.registerSecret(h(v, "secret")))
            .await
            .unwrap();
        let at = sr
            .getSecretRevealBlockHeight(h(v, "secrethash"))
            .call()
            .await
            .unwrap();
        assert_eq!(at, U256::from(r.block_number.unwrap()));
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} vectors checked");
}

#[tokio::test]
async fn erc223_token_fallback_deposits() {
    let env = Env::new().await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let dep = &env.deployer;
    let (token, _) = dep
        .deploy(ERC223Token::deploy_builder(
            dep.provider(),
            U256::from(1_000_000u64),
            "T223".into(),
            0,
            "T223".into(),
        ))
        .await
        .unwrap();
    let registry = TokenNetworkRegistry::new(env.deployment.registry, dep.provider());
    let r = dep
        .send(registry.createERC20TokenNetwork(token))
        .await
        .unwrap();
    let tn_addr =
        receipt_events::<TokenNetworkRegistry::TokenNetworkCreated>(&r)[0].token_network_address;
    let t = ERC223Token::new(token, dep.provider());
    let tn = TokenNetwork::new(tn_addr, dep.provider());

    // 0x01 ‖ participant ‖ partner ‖ settle_timeout: open with deposit, paid by the deployer.
    let mut open = vec![1u8];
    open.extend_from_slice(a.as_slice());
    open.extend_from_slice(b.as_slice());
    open.extend_from_slice(&SETTLE_TIMEOUT.to_be_bytes());
    let r = dep
        .send(t.transfer_1(tn_addr, U256::from(70), Bytes::from(open)))
        .await
        .unwrap();
    assert!(r.status());
    assert_eq!(
        tn.getParticipantInfo(a, b)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        U256::from(70)
    );
    // 0x02 ‖ participant ‖ partner: deposit for b.
    let mut deposit = vec![2u8];
    deposit.extend_from_slice(b.as_slice());
    deposit.extend_from_slice(a.as_slice());
    dep.send(t.transfer_1(tn_addr, U256::from(30), Bytes::from(deposit)))
        .await
        .unwrap();
    assert_eq!(
        tn.getParticipantInfo(b, a)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        U256::from(30)
    );
    assert_eq!(t.balanceOf(tn_addr).call().await.unwrap(), U256::from(100));
    // A plain transfer (empty data) or unknown data is refused, so no token is stranded.
    let res = dep.send(t.transfer_0(tn_addr, U256::from(5))).await;
    assert!(
        res.is_err(),
        "plain ERC-223 transfer to the TokenNetwork must fail"
    );
    let res = dep
        .send(t.transfer_1(tn_addr, U256::from(5), Bytes::from(vec![9u8; 41])))
        .await;
    assert_eq!(
        res.unwrap_err().decode_revert::<E>(),
        Some(E::InvalidCallData(TokenNetwork::InvalidCallData {}))
    );
    assert_eq!(t.balanceOf(tn_addr).call().await.unwrap(), U256::from(100));
    // Only the token may call tokenFallback (else anyone could claim deposits for free).
    assert_reverts!(
        env.a
            .client
            .send(
                TokenNetwork::new(tn_addr, env.a.client.provider()).tokenFallback(
                    a,
                    U256::from(5),
                    Bytes::new()
                )
            )
            .await,
        E::OnlyToken(_)
    );
}

#[tokio::test]
async fn approve_and_call_deposits() {
    let env = Env::new().await;
    let (a, b) = (env.a.eth(), env.b.eth());
    let dep = &env.deployer;
    let (token, _) = dep
        .deploy(ApproveAndCallToken::deploy_builder(
            dep.provider(),
            U256::from(1_000_000u64),
            "TAC".into(),
            0,
            "TAC".into(),
        ))
        .await
        .unwrap();
    let registry = TokenNetworkRegistry::new(env.deployment.registry, dep.provider());
    let r = dep
        .send(registry.createERC20TokenNetwork(token))
        .await
        .unwrap();
    let tn_addr =
        receipt_events::<TokenNetworkRegistry::TokenNetworkCreated>(&r)[0].token_network_address;
    let t = ApproveAndCallToken::new(token, dep.provider());
    let tn = TokenNetwork::new(tn_addr, dep.provider());
    let mut open = vec![1u8];
    open.extend_from_slice(a.as_slice());
    open.extend_from_slice(b.as_slice());
    open.extend_from_slice(&SETTLE_TIMEOUT.to_be_bytes());
    dep.send(t.approveAndCall(tn_addr, U256::from(55), Bytes::from(open.clone())))
        .await
        .unwrap();
    assert_eq!(
        tn.getParticipantInfo(a, b)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        U256::from(55)
    );
    assert_eq!(t.balanceOf(tn_addr).call().await.unwrap(), U256::from(55));
    assert_eq!(tn.getChannelInfo(a, b).call().await.unwrap().state, 1);
    let mut deposit = vec![2u8];
    deposit.extend_from_slice(a.as_slice());
    deposit.extend_from_slice(b.as_slice());
    dep.send(t.approveAndCall(tn_addr, U256::from(5), Bytes::from(deposit)))
        .await
        .unwrap();
    assert_eq!(
        tn.getParticipantInfo(a, b)
            .call()
            .await
            .unwrap()
            .participant_deposit,
        U256::from(60)
    );
    // Open again: the channel exists.
    let res = dep
        .send(t.approveAndCall(tn_addr, U256::from(5), Bytes::from(open)))
        .await;
    assert_eq!(
        res.unwrap_err().decode_revert::<E>(),
        Some(E::ChannelAlreadyExists(
            TokenNetwork::ChannelAlreadyExists {}
        ))
    );
    // Only the token may call receiveApproval (else it would pull approved tokens of anyone).
    assert_reverts!(
        env.a
            .client
            .send(
                TokenNetwork::new(tn_addr, env.a.client.provider()).receiveApproval(
                    a,
                    U256::from(5),
                    token,
                    Bytes::new()
                )
            )
            .await,
        E::OnlyToken(_)
    );
}

#[tokio::test]
async fn registry_secret_registry_and_discovery() {
    let env = Env::new().await;
    let dep = &env.deployer;
    let registry = TokenNetworkRegistry::new(env.deployment.registry, dep.provider());
    // One network per token; the deploy already created the test token's.
    assert_eq!(
        registry
            .token_to_token_networks(env.deployment.token)
            .call()
            .await
            .unwrap(),
        env.tn_address
    );
    let err = dep
        .send(registry.createERC20TokenNetwork(env.deployment.token))
        .await
        .unwrap_err();
    assert_eq!(
        err.decode_revert::<TokenNetworkRegistry::TokenNetworkRegistryErrors>(),
        Some(
            TokenNetworkRegistry::TokenNetworkRegistryErrors::TokenNetworkExists(
                TokenNetworkRegistry::TokenNetworkExists {
                    token_network: env.tn_address
                }
            )
        )
    );
    // A registry without a SecretRegistry is refused at deployment.
    let err = dep
        .deploy(TokenNetworkRegistry::deploy_builder(
            dep.provider(),
            EthAddress::ZERO,
            5,
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        err.decode_revert::<TokenNetworkRegistry::TokenNetworkRegistryErrors>(),
        Some(TokenNetworkRegistry::TokenNetworkRegistryErrors::ZeroAddress(_))
    ));
    // An address without code is no token (the TokenNetwork constructor's error bubbles up).
    let err = dep
        .send(registry.createERC20TokenNetwork(env.c.eth()))
        .await
        .unwrap_err();
    assert_eq!(
        err.decode_revert::<E>(),
        Some(E::InvalidToken(TokenNetwork::InvalidToken {}))
    );
    let tn = env.tn(&env.a);
    assert_eq!(tn.token().call().await.unwrap(), env.deployment.token);
    assert_eq!(
        tn.secret_registry().call().await.unwrap(),
        env.deployment.secret_registry
    );
    assert_eq!(tn.punish_block_number().call().await.unwrap(), PUNISH);
    assert_eq!(tn.chainId().call().await.unwrap(), U256::from(31337));

    // SecretRegistry: first registration counts; again, or zero, changes nothing.
    let sr = env.secrets(&env.a);
    let (secret_value, secrethash) = secret(42);
    assert!(sr.registerSecret(b32(secret_value)).call().await.unwrap());
    let r = env
        .a
        .client
        .send(sr.registerSecret(b32(secret_value)))
        .await
        .unwrap();
    let ev = &receipt_events::<SecretRegistry::SecretRevealed>(&r)[0];
    assert_eq!(
        (ev.secrethash.0, ev.secret.0),
        (secrethash.0.0, secret_value.0)
    );
    let at = U256::from(r.block_number.unwrap());
    assert_eq!(
        sr.getSecretRevealBlockHeight(b32(secrethash.0))
            .call()
            .await
            .unwrap(),
        at
    );
    assert!(!sr.registerSecret(b32(secret_value)).call().await.unwrap());
    let r = env
        .a
        .client
        .send(sr.registerSecret(b32(secret_value)))
        .await
        .unwrap();
    assert!(receipt_events::<SecretRegistry::SecretRevealed>(&r).is_empty());
    assert_eq!(
        sr.getSecretRevealBlockHeight(b32(secrethash.0))
            .call()
            .await
            .unwrap(),
        at
    );
    assert!(!sr.registerSecret(Default::default()).call().await.unwrap());
    let batch = vec![b32(secret(43).0), b32(secret(44).0)];
    assert!(sr.registerSecretBatch(batch.clone()).call().await.unwrap());
    env.a
        .client
        .send(sr.registerSecretBatch(batch.clone()))
        .await
        .unwrap();
    assert!(!sr.registerSecretBatch(batch).call().await.unwrap());
    assert!(
        sr.getSecretRevealBlockHeight(b32(secret(44).1.0))
            .call()
            .await
            .unwrap()
            > U256::ZERO
    );

    // Discovery: an address publishes its JID; re-registering replaces it.
    let disc = Discovery::new(env.deployment.discovery, env.a.client.provider());
    let jid = format!(
        "{}@xmpp.example.org",
        env.a.addr().to_lower_hex().trim_start_matches("0x")
    );
    let r = env
        .a
        .client
        .send(disc.registerEndpoint(jid.clone()))
        .await
        .unwrap();
    let ev = &receipt_events::<Discovery::AddressRegistered>(&r)[0];
    assert_eq!(
        (ev.eth_address, ev.endpoint.as_str()),
        (env.a.eth(), jid.as_str())
    );
    assert_eq!(
        disc.findEndpointByAddress(env.a.eth())
            .call()
            .await
            .unwrap(),
        jid
    );
    assert_eq!(
        disc.findAddressByEndpoint(jid.clone())
            .call()
            .await
            .unwrap(),
        env.a.eth()
    );
    env.a
        .client
        .send(disc.registerEndpoint("other@xmpp2.example.org".into()))
        .await
        .unwrap();
    assert_eq!(
        disc.findEndpointByAddress(env.a.eth())
            .call()
            .await
            .unwrap(),
        "other@xmpp2.example.org"
    );
    assert_eq!(
        disc.findAddressByEndpoint(jid).call().await.unwrap(),
        EthAddress::ZERO,
        "old endpoint released"
    );
    assert_eq!(
        disc.findEndpointByAddress(env.b.eth())
            .call()
            .await
            .unwrap(),
        ""
    );
    let err = env
        .a
        .client
        .send(disc.registerEndpoint(String::new()))
        .await
        .unwrap_err();
    assert!(matches!(
        err.decode_revert::<Discovery::DiscoveryErrors>(),
        Some(Discovery::DiscoveryErrors::EmptyEndpoint(_))
    ));
    let _ = Discovery::DiscoveryErrors::abi_decode; // the decode above relies on SolInterface
}

#[tokio::test]
async fn deploy_subcommand_writes_a_usable_deployment() {
    let chain = smartraiden::chain::DevChain::start().await.unwrap();
    let key = smartraiden::chain::DevChain::key(5);
    chain
        .set_balance(key.address(), U256::from(10u64).pow(U256::from(20u64)))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("smartraiden-deploy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("deployment.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args(["deploy", "--eth-rpc", chain.url(), "--out"])
        .arg(&out)
        .env("SMARTRAIDEN_PRIVATE_KEY", format!("{}", key.to_bytes()))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let d = Deployment::read(&out).unwrap();
    assert_eq!(d.chain_id, 31337);
    let provider = chain.provider();
    use alloy::providers::Provider;
    for a in [
        d.registry,
        d.secret_registry,
        d.discovery,
        d.token,
        d.token_network.unwrap(),
    ] {
        assert!(
            !provider.get_code_at(a).await.unwrap().is_empty(),
            "no code at {a}"
        );
    }
    let registry = TokenNetworkRegistry::new(d.registry, provider);
    assert_eq!(
        registry
            .token_to_token_networks(d.token)
            .call()
            .await
            .unwrap(),
        d.token_network.unwrap()
    );
    assert_eq!(
        registry.secret_registry().call().await.unwrap(),
        d.secret_registry
    );

    // The same from a V3 keystore (the core's format), without creating a token network.
    let core_key = smartraiden::crypto::PrivateKey::from_bytes(key.to_bytes().0).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(7);
    std::fs::write(
        dir.join("key.json"),
        smartraiden::crypto::keystore::encrypt(&core_key, "pw", 4, &mut rng),
    )
    .unwrap();
    std::fs::write(dir.join("pw.txt"), "pw\n").unwrap();
    let out2 = dir.join("deployment2.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args([
            "deploy",
            "--eth-rpc",
            chain.url(),
            "--no-token-network",
            "--keystore",
        ])
        .arg(dir.join("key.json"))
        .arg("--password-file")
        .arg(dir.join("pw.txt"))
        .arg("--out")
        .arg(&out2)
        .env("RUST_LOG", "warn")
        .env_remove("SMARTRAIDEN_PRIVATE_KEY")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let d2 = Deployment::read(&out2).unwrap();
    assert_eq!(d2.token_network, None);
    assert_ne!(d2.registry, d.registry);
    let text = std::fs::read_to_string(&out2).unwrap();
    assert!(
        !text.contains("token_network"),
        "optional field omitted: {text}"
    );

    // With an existing token: no test token is deployed, the given one gets its network.
    let out3 = dir.join("deployment3.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args([
            "deploy",
            "--eth-rpc",
            chain.url(),
            "--token",
            &d.token.to_string(),
            "--out",
        ])
        .arg(&out3)
        .env("SMARTRAIDEN_PRIVATE_KEY", format!("{}", key.to_bytes()))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let d3 = Deployment::read(&out3).unwrap();
    assert_eq!(d3.token, d.token);
    let registry3 = TokenNetworkRegistry::new(d3.registry, provider);
    assert_eq!(
        registry3
            .token_to_token_networks(d.token)
            .call()
            .await
            .unwrap(),
        d3.token_network.unwrap()
    );

    // Bad input gets a clear error and a non-zero exit.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args([
            "deploy",
            "--eth-rpc",
            chain.url(),
            "--private-key",
            "0x1234",
            "--out",
        ])
        .arg(dir.join("x.json"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid hex private key"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn client_nonces_receipts_and_logs() {
    use std::sync::Arc;
    let chain = smartraiden::chain::DevChain::start().await.unwrap();
    let client = Arc::new(
        chain
            .client(smartraiden::chain::DevChain::key(0))
            .await
            .unwrap(),
    );
    let (sr_addr, _) = client
        .deploy(SecretRegistry::deploy_builder(client.provider()))
        .await
        .unwrap();
    let start = client.block_number().await.unwrap();

    // Twenty concurrent sends from one key: the local nonce counter hands out consecutive nonces.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20u8 {
        let client = client.clone();
        tasks.spawn(async move {
            let sr = SecretRegistry::new(sr_addr, client.provider());
            client
                .send(sr.registerSecret(B256::repeat_byte(n + 1)))
                .await
                .map(|r| r.transaction_hash)
        });
    }
    let mut hashes = Vec::new();
    while let Some(res) = tasks.join_next().await {
        hashes.push(res.unwrap().expect("concurrent send succeeds"));
    }
    let mut nonces = Vec::new();
    use alloy::providers::Provider;
    for h in &hashes {
        let tx = client
            .provider()
            .get_transaction_by_hash(*h)
            .await
            .unwrap()
            .unwrap();
        nonces.push(alloy::consensus::Transaction::nonce(&tx));
    }
    nonces.sort();
    assert_eq!(
        nonces,
        (1..=20).collect::<Vec<u64>>(),
        "deploy used nonce 0, then 1..=20 without gaps"
    );

    // Log decoding: every SecretRevealed event of the range, typed.
    let head = client.block_number().await.unwrap();
    let events = client
        .events::<SecretRegistry::SecretRevealed>(sr_addr, start + 1, head)
        .await
        .unwrap();
    assert_eq!(events.len(), 20);
    let mut secrets: Vec<u8> = events.iter().map(|(e, _, _)| e.secret.0[0]).collect();
    secrets.sort();
    assert_eq!(secrets, (1..=20).collect::<Vec<u8>>());
    assert!(
        events
            .iter()
            .all(|(_, block, hash)| *block > start && hashes.contains(hash))
    );

    // Receipt check: a transaction that reverts on chain (gas given, so no estimate catches it) is an error.
    let (d_addr, _) = client
        .deploy(Discovery::deploy_builder(client.provider()))
        .await
        .unwrap();
    let disc = Discovery::new(d_addr, client.provider());
    let err = client
        .send(disc.registerEndpoint(String::new()).gas(100_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, smartraiden::chain::ChainError::Reverted { gas_used, .. } if gas_used > 21_000),
        "{err}"
    );
    // The nonce it used is spent: the next send still goes through.
    client
        .send(disc.registerEndpoint("x@y".into()))
        .await
        .unwrap();
    // A malformed RPC URL is a clear error, before any I/O.
    let bad =
        smartraiden::chain::ChainClient::connect("not a url", smartraiden::chain::DevChain::key(1))
            .await;
    assert!(matches!(
        bad,
        Err(smartraiden::chain::ChainError::InvalidUrl { .. })
    ));
}
