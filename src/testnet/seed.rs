//! The seed article's five-node payment, through the REST API only: open the four channels
//! with the seed's deposits, pay 50 from node 1 to node 5, and show every channel's balances
//! on both ends before and after.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::TestnetError;
use super::client::{ApiClient, balances};

/// The seed's channels: (node a, node b, a's deposit, b's deposit), nodes numbered from 1.
pub const SEED_CHANNELS: [(usize, usize, u64, u64); 4] = [
    (1, 2, 200, 100),
    (2, 3, 100, 100),
    (2, 4, 200, 100),
    (4, 5, 100, 100),
];

/// The seed's payment: node 1 pays node 5 this much.
pub const SEED_AMOUNT: u64 = 50;

/// The seed's table after the payment, per channel (at a, at b): 1–2 150/150, 2–3 100/100,
/// 2–4 150/150, 4–5 50/150, on both ends.
pub const SEED_AFTER: [((u128, u128), (u128, u128)); 4] = [
    ((150, 150), (150, 150)),
    ((100, 100), (100, 100)),
    ((150, 150), (150, 150)),
    ((50, 150), (150, 50)),
];

/// Settle timeout (blocks) of the seed's channels.
const SETTLE_TIMEOUT: u64 = 100;

/// How long both ends of the channels may take to agree after a step.
const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// One channel of the seed, as each end reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    /// Node numbers (from 1).
    pub nodes: (usize, usize),
    /// Channel identifier.
    pub id: String,
    /// (balance, partner balance) at node a.
    pub at_a: (u128, u128),
    /// (balance, partner balance) at node b.
    pub at_b: (u128, u128),
}

impl ChannelView {
    /// Whether both ends report the same split.
    pub fn agrees(&self) -> bool {
        self.at_a == (self.at_b.1, self.at_b.0)
    }
}

/// What the seed payment did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// Each channel after opening and depositing.
    pub before: Vec<ChannelView>,
    /// Each channel once every end agrees again after the payment.
    pub after: Vec<ChannelView>,
    /// The transfer as `POST /transfers` answered it.
    pub transfer: Value,
    /// How long the `sync` transfer call took.
    pub elapsed: Duration,
}

impl SeedReport {
    /// The before/after table, in Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| channel | before (a / b) | after, at a | after, at b |\n|---|---|---|---|\n",
        );
        for (b, a) in self.before.iter().zip(&self.after) {
            out.push_str(&format!(
                "| {}–{} | {} / {} | {} / {} | {} / {} |\n",
                b.nodes.0, b.nodes.1, b.at_a.0, b.at_a.1, a.at_a.0, a.at_a.1, a.at_b.1, a.at_b.0
            ));
        }
        out
    }

    /// Asserts that every channel after the payment shows the seed's table ([`SEED_AFTER`]).
    #[track_caller]
    pub fn assert_seed_table(&self) {
        let after: Vec<_> = self.after.iter().map(|v| (v.at_a, v.at_b)).collect();
        assert_eq!(after, SEED_AFTER, "{}", self.table());
    }
}

/// Opens the seed's channels between `nodes` (node 1 first) on `token`; their identifiers.
pub async fn open_seed_channels(
    nodes: &[ApiClient],
    token: &str,
) -> Result<Vec<String>, TestnetError> {
    if nodes.len() < 5 {
        return Err(TestnetError::Setup(format!(
            "the seed payment needs 5 nodes, the testnet has {}",
            nodes.len()
        )));
    }
    let mut addresses = Vec::new();
    for n in nodes {
        addresses.push(n.address().await?);
    }
    let mut ids = Vec::new();
    for (a, b, da, db) in SEED_CHANNELS {
        let (na, nb) = (&nodes[a - 1], &nodes[b - 1]);
        log::info!("opening channel {a}–{b} with deposits {da} / {db}");
        // The partner learns of the channel from the chain; then it deposits its share.
        let id = na
            .open_funded(
                nb,
                token,
                &addresses[b - 1],
                da,
                db,
                SETTLE_TIMEOUT,
                SETTLE_WAIT,
            )
            .await
            .map_err(|e| TestnetError::Api(format!("channel {a}–{b}: {e}")))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Every seed channel on both ends, once both ends agree and no lock is pending (or after a
/// minute, as they are then).
pub async fn view_channels(
    nodes: &[ApiClient],
    ids: &[String],
) -> Result<Vec<ChannelView>, TestnetError> {
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        let mut views = Vec::new();
        let mut quiet = true;
        for ((a, b, _, _), id) in SEED_CHANNELS.iter().zip(ids) {
            let (_, ca) = nodes[a - 1].get(&format!("channels/{id}")).await?;
            let (_, cb) = nodes[b - 1].get(&format!("channels/{id}")).await?;
            let unlocked = |c: &Value| {
                c["locked_amount"] == json!(0) && c["partner_locked_amount"] == json!(0)
            };
            quiet &= unlocked(&ca) && unlocked(&cb);
            views.push(ChannelView {
                nodes: (*a, *b),
                id: id.clone(),
                at_a: balances(&ca).unwrap_or_default(),
                at_b: balances(&cb).unwrap_or_default(),
            });
        }
        if (quiet && views.iter().all(ChannelView::agrees)) || Instant::now() >= deadline {
            return Ok(views);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The whole seed scenario on a fresh five-node testnet.
pub async fn run_seed_payment(
    nodes: &[ApiClient],
    token: &str,
) -> Result<SeedReport, TestnetError> {
    let ids = open_seed_channels(nodes, token).await?;
    let before = view_channels(nodes, &ids).await?;
    let target = nodes[4].address().await?;
    log::info!("node 1 pays node 5 {SEED_AMOUNT}");
    let started = Instant::now();
    let (status, transfer) = nodes[0]
        .transfer(token, &target, SEED_AMOUNT, json!({ "sync": true }))
        .await?;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(TestnetError::Api(format!(
            "the payment failed with {status}: {transfer}"
        )));
    }
    let after = view_channels(nodes, &ids).await?;
    Ok(SeedReport {
        before,
        after,
        transfer,
        elapsed,
    })
}
