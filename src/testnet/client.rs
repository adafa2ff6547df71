//! A small client of a node's REST API (SPEC §6), for the testnet tools and the integration tests.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::TestnetError;

/// How often [`ApiClient::wait_channel`] and [`ApiClient::wait_ready`] poll.
const POLL: Duration = Duration::from_millis(25);

/// A node's REST API at `base` (e.g. `http://127.0.0.1:5001`).
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

/// An answer: HTTP status and JSON body (`null` when the body is not JSON).
pub type Reply = (u16, Value);

impl ApiClient {
    /// A client of the API at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        ApiClient {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method base/api/1/path` with an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, TestnetError> {
        let url = format!("{}/api/1/{}", self.base, path.trim_start_matches('/'));
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| TestnetError::Api(format!("{method} {url}: {e}")))?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| TestnetError::Api(format!("{method} {url}: reading the body: {e}")))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, TestnetError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// The answer of `call`, which must have `status`; its body.
    pub async fn expect(
        &self,
        status: u16,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestnetError> {
        let (got, v) = self.call(method.clone(), path, body).await?;
        if got == status {
            Ok(v)
        } else {
            Err(TestnetError::Api(format!(
                "{method} {}/api/1/{path}: expected {status}, got {got}: {v}",
                self.base
            )))
        }
    }

    /// The node's address, checksummed.
    pub async fn address(&self) -> Result<String, TestnetError> {
        let v = self
            .expect(200, reqwest::Method::GET, "address", None)
            .await?;
        v["our_address"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TestnetError::Api(format!("GET address: no our_address in {v}")))
    }

    /// Waits until the API answers `GET /address`, up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<String, TestnetError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.address().await {
                Ok(a) => return Ok(a),
                Err(e) if Instant::now() >= deadline => {
                    return Err(TestnetError::Api(format!(
                        "{} not ready within {timeout:?}: {e}",
                        self.base
                    )));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Opens a channel with `partner`, depositing `balance`; the channel as the API returns it.
    pub async fn open_channel(
        &self,
        token: &str,
        partner: &str,
        balance: u64,
        settle_timeout: u64,
    ) -> Result<Value, TestnetError> {
        self.expect(
            201,
            reqwest::Method::PUT,
            "channels",
            Some(json!({
                "partner_address": partner,
                "token_address": token,
                "balance": balance,
                "settle_timeout": settle_timeout,
            })),
        )
        .await
    }

    /// Opens a channel with `partner` (whose API is `partner_api`) depositing `ours`, waits up
    /// to `wait` until the partner sees it, and has the partner deposit `theirs` (if any); the
    /// channel id. An error if the partner never sees the channel.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_funded(
        &self,
        partner_api: &ApiClient,
        token: &str,
        partner: &str,
        ours: u64,
        theirs: u64,
        settle_timeout: u64,
        wait: Duration,
    ) -> Result<String, TestnetError> {
        let ch = self
            .open_channel(token, partner, ours, settle_timeout)
            .await?;
        let id = ch["channel_identifier"]
            .as_str()
            .ok_or_else(|| TestnetError::Api(format!("no channel id in {ch}")))?
            .to_owned();
        let seen = partner_api
            .wait_channel(&id, wait, |c| c["channel_identifier"].is_string())
            .await?;
        if !seen["channel_identifier"].is_string() {
            return Err(TestnetError::Api(format!("partner never saw {id}: {seen}")));
        }
        if theirs > 0 {
            partner_api.deposit(&id, theirs).await?;
        }
        Ok(id)
    }

    /// Deposits `amount` more into channel `id`.
    pub async fn deposit(&self, id: &str, amount: u64) -> Result<Value, TestnetError> {
        self.expect(
            200,
            reqwest::Method::PATCH,
            &format!("channels/{id}"),
            Some(json!({ "balance": amount })),
        )
        .await
    }

    /// Closes channel `id` unilaterally (`force`); the channel as the API returns it, an
    /// error unless its state is `closed`.
    pub async fn force_close(&self, id: &str) -> Result<Value, TestnetError> {
        let closed = self
            .expect(
                200,
                reqwest::Method::PATCH,
                &format!("channels/{id}"),
                Some(json!({"state": "closed", "force": true})),
            )
            .await?;
        if closed["state"] != "closed" {
            return Err(TestnetError::Api(format!("{id} not closed: {closed}")));
        }
        Ok(closed)
    }

    /// All our channels.
    pub async fn channels(&self) -> Result<Vec<Value>, TestnetError> {
        let v = self
            .expect(200, reqwest::Method::GET, "channels", None)
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Our channel with `partner` on `token`, if any.
    pub async fn channel_with(
        &self,
        token: &str,
        partner: &str,
    ) -> Result<Option<Value>, TestnetError> {
        Ok(self.channels().await?.into_iter().find(|c| {
            eq_address(&c["partner_address"], partner) && eq_address(&c["token_address"], token)
        }))
    }

    /// Pays `amount` of `token` to `target`; `extra` fields (`is_direct`, `sync`, `fee`,
    /// `secret`…) are merged into the body.
    pub async fn transfer(
        &self,
        token: &str,
        target: &str,
        amount: u64,
        extra: Value,
    ) -> Result<Reply, TestnetError> {
        let mut body = json!({ "amount": amount });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.call(
            reqwest::Method::POST,
            &format!("transfers/{token}/{target}"),
            Some(body),
        )
        .await
    }

    /// The on-chain token balance of `address` (debug endpoint).
    pub async fn onchain_balance(&self, token: &str, address: &str) -> Result<u128, TestnetError> {
        let v = self
            .expect(
                200,
                reqwest::Method::GET,
                &format!("debug/balance/{token}/{address}"),
                None,
            )
            .await?;
        amount(&v["balance"])
            .ok_or_else(|| TestnetError::Api(format!("debug balance: not an amount in {v}")))
    }

    /// Polls `GET /channels/{id}` until `done` holds for it, up to `timeout`; the last answer
    /// either way (callers assert on it, so a failure shows the state reached).
    pub async fn wait_channel(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, TestnetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, ch) = self.get(&format!("channels/{id}")).await?;
            if done(&ch) || Instant::now() >= deadline {
                return Ok(ch);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `GET /status` until `done` holds for it, up to `timeout`; the last answer either
    /// way (callers assert on it).
    pub async fn wait_status(
        &self,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, TestnetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, s) = self.get("status").await?;
            if code != 200 {
                return Err(TestnetError::Api(format!(
                    "GET status answered {code}: {s}"
                )));
            }
            if done(&s) || Instant::now() >= deadline {
                return Ok(s);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A JSON amount: a number or a decimal string.
pub fn amount(v: &Value) -> Option<u128> {
    match v {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `(balance, partner_balance)` of a channel as the API shows it.
pub fn balances(channel: &Value) -> Option<(u128, u128)> {
    Some((
        amount(&channel["balance"])?,
        amount(&channel["partner_balance"])?,
    ))
}

/// Whether a JSON address equals `address`, ignoring case.
fn eq_address(v: &Value, address: &str) -> bool {
    v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(address))
}
