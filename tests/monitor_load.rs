//! A monitor watching many channels: how many delegations per second it accepts over HTTP
//! (each checked signature by signature and against the chain), and what a thousand cost in
//! memory (RSS of the process). Real anvil, our contracts, the real `smartraiden monitor`.
//! The figures go to stdout (`cargo test --test monitor_load -- --nocapture`); the README
//! quotes one run. Also: a withdraw needs the delegator's signature; oversized bodies are refused (400, "length limit").

use std::time::{Duration, Instant};

use futures::StreamExt;
use smartraiden::chain::bindings::TokenNetwork;
use smartraiden::chain::convert::{address, eth_address};
use smartraiden::chain::{DeployOptions, DevChain, deploy::deploy};
use smartraiden::crypto::PrivateKey;
use smartraiden::delegation::{DelegatedProof, DelegationPackage};
use smartraiden::monitor::api::withdraw_bytes;
use smartraiden::primitives::{
    BlockCount, BlockNumber, ChainId, H256, Locksroot, Nonce, Signature, TokenAmount,
};
use smartraiden::proofs::{
    BalanceProofData, ChannelBinding, DelegationData, SignedData, channel_identifier,
};
use smartraiden::testnet::monitor::MonitorProcess;

const CHANNELS: usize = 2_000;
const SETTLE_TIMEOUT: u64 = 40;
const CONCURRENT_REQUESTS: usize = 8;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_accepts_thousands_of_delegations_and_reports_its_rate_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let chain = DevChain::start().await.unwrap();
    let deployer = chain.client(DevChain::key(0)).await.unwrap();
    let deployment = deploy(&deployer, &DeployOptions::default()).await.unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.write(&deployment_file).unwrap();
    let token_network = deployment.token_network.unwrap();
    let monitor_signer = DevChain::key(9);
    chain
        .set_balance(
            monitor_signer.address(),
            alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(21u64)),
        )
        .await
        .unwrap();
    let monitor_address = address(monitor_signer.address());
    let monitor = MonitorProcess::start(
        env!("CARGO_BIN_EXE_smartraiden").as_ref(),
        &dir.path().join("monitor"),
        chain.url(),
        &deployment_file,
        &hex::encode(monitor_signer.to_bytes()),
        &["--max-per-delegator", "100000"],
    )
    .await
    .unwrap();

    // One delegator with a channel to each of many partners (anyone may open for anyone).
    let delegator = PrivateKey::from_bytes([1; 32]).unwrap();
    let tn = TokenNetwork::new(token_network, deployer.provider());
    let mut channels = Vec::with_capacity(CHANNELS);
    for i in 0..CHANNELS {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        let partner = PrivateKey::from_bytes(seed).unwrap();
        let receipt = deployer
            .send(tn.openChannel(
                eth_address(delegator.address()),
                eth_address(partner.address()),
                SETTLE_TIMEOUT,
            ))
            .await
            .unwrap();
        channels.push((partner, BlockNumber(receipt.block_number.unwrap())));
    }

    let chain_id = ChainId(deployment.chain_id);
    let packages: Vec<DelegationPackage> = channels
        .iter()
        .map(|(partner, open_block)| {
            let id = channel_identifier(
                delegator.address(),
                partner.address(),
                address(token_network),
            );
            let binding = ChannelBinding {
                channel_identifier: id,
                open_block_number: *open_block,
                chain_id,
            };
            let (transferred_amount, locksroot, nonce) =
                (TokenAmount::from(10u64), Locksroot::default(), Nonce(3));
            let bp = BalanceProofData {
                transferred_amount,
                locksroot,
                nonce,
                additional_hash: H256([3; 32]),
                binding,
            };
            let mut p = DelegationPackage {
                chain_id,
                token_network: address(token_network),
                channel_identifier: id,
                open_block_number: *open_block,
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                delegator: delegator.address(),
                partner: partner.address(),
                delegate: monitor_address,
                balance_proof: Some(DelegatedProof {
                    transferred_amount,
                    locksroot,
                    nonce,
                    additional_hash: bp.additional_hash,
                    partner_signature: bp.sign(partner),
                    delegation_signature: DelegationData {
                        transferred_amount,
                        locksroot,
                        nonce,
                        binding,
                    }
                    .sign(&delegator),
                }),
                unlocks: vec![],
                punishes: vec![],
                given_back: vec![],
                signature: Signature([0; 65]),
            };
            p.sign(&delegator);
            p
        })
        .collect();

    let pid = monitor.pid().unwrap();
    let rss_before = rss_kib(pid);
    let http = reqwest::Client::new();
    let url = format!("{}/api/1/monitor/delegations", monitor.api.base());
    let started = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(packages.iter())
        .map(|p| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(&url)
                    .json(p)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 201), "{:?}", &statuses[..10]);
    let (_, info) = monitor.api.get("monitor/info").await.unwrap();
    assert_eq!(
        info["delegations"].as_u64(),
        Some(CHANNELS as u64),
        "{info}"
    );
    let rss_after = rss_kib(pid);

    let per_second = CHANNELS as f64 / elapsed.as_secs_f64();
    let kib_per_thousand = (rss_after.saturating_sub(rss_before)) * 1000 / CHANNELS as u64;
    println!(
        "monitor load: {CHANNELS} delegations accepted in {:.2} s = {per_second:.0}/s \
         ({CONCURRENT_REQUESTS} concurrent requests); RSS {rss_before} KiB -> {rss_after} KiB = \
         {kib_per_thousand} KiB per 1,000 delegations",
        elapsed.as_secs_f64()
    );
    // A withdraw must carry the delegator's signature over the monitor, chain, channel and nonce.
    let first = &packages[0];
    let path = format!("monitor/delegations/{}/withdraw", first.channel_identifier);
    let signed = |key: &PrivateKey| {
        let bytes = withdraw_bytes(
            monitor_address,
            chain_id,
            first.channel_identifier,
            Nonce(3),
        );
        serde_json::json!({"signature": key.sign_eip191(&bytes).to_string()})
    };
    let (status, body) = monitor
        .api
        .call(
            reqwest::Method::POST,
            &path,
            Some(signed(&PrivateKey::from_bytes([5; 32]).unwrap())),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "a stranger's withdraw: {body}");
    let (status, body) = monitor
        .api
        .call(reqwest::Method::POST, &path, Some(signed(&delegator)))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = monitor
        .api
        .get(&format!("monitor/delegations/{}", first.channel_identifier))
        .await
        .unwrap();
    assert_eq!(status, 404, "withdrawn");
    let (_, info) = monitor.api.get("monitor/info").await.unwrap();
    assert_eq!(
        info["delegations"].as_u64(),
        Some(CHANNELS as u64 - 1),
        "{info}"
    );
    // An oversized body is refused (SPEC §6 error shape) before it is parsed.
    let huge = http
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 400);
    let body: serde_json::Value = huge.json().await.unwrap();
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("length limit"),
        "{body}"
    );

    // Generous bounds: a regression by an order of magnitude fails.
    assert!(per_second > 20.0, "{per_second}/s");
    assert!(
        kib_per_thousand < 50_000,
        "{kib_per_thousand} KiB per 1,000"
    );
    assert!(elapsed < Duration::from_secs(300));
}
