//! JSON shapes of SPEC §6 and lenient parsing of its inputs (any-case addresses, amounts as
//! integers or decimal strings).

use super::ApiError;
use crate::core::channel::{ChannelState, ChannelStatus};
use crate::primitives::{Address, H256, TokenAmount};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Parses a `0x` address in any case.
pub fn address(s: &str) -> Result<Address, ApiError> {
    s.parse()
        .map_err(|_| ApiError::BadRequest(format!("not an address: {s:?}")))
}

/// Parses a `0x` + 64 hex value.
pub fn hash(s: &str) -> Result<H256, ApiError> {
    s.parse()
        .map_err(|_| ApiError::BadRequest(format!("not a 32-byte hex value: {s:?}")))
}

/// An amount given as a JSON integer or a decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub TokenAmount);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let text = match &v {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) => s.clone(),
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "amount must be a non-negative integer, got {v}"
                )));
            }
        };
        text.parse().map(Amount).map_err(serde::de::Error::custom)
    }
}

/// An amount as a JSON integer when it fits in u128, else a decimal string.
pub fn amount_json(a: TokenAmount) -> Value {
    match a.to_u128() {
        Some(v) => serde_json::json!(v),
        None => Value::String(a.to_string()),
    }
}

/// A channel as SPEC §6 shows it.
#[derive(Serialize)]
pub struct ChannelJson {
    channel_identifier: String,
    open_block_number: u64,
    token_address: String,
    partner_address: String,
    balance: Value,
    partner_balance: Value,
    locked_amount: Value,
    partner_locked_amount: Value,
    state: &'static str,
    settle_timeout: u64,
    reveal_timeout: u64,
    /// Block of the close, while closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_block: Option<u64>,
    /// The contract's `settle_block_number` (close + settle timeout), while closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    settle_block_number: Option<u64>,
}

impl From<&ChannelState> for ChannelJson {
    fn from(c: &ChannelState) -> Self {
        ChannelJson {
            channel_identifier: c.identifier.to_string(),
            open_block_number: c.open_block_number.0,
            token_address: c.token.to_checksum(),
            partner_address: c.partner.address.to_checksum(),
            balance: amount_json(c.our_balance()),
            partner_balance: amount_json(c.partner_balance()),
            locked_amount: amount_json(c.our.locked_amount()),
            partner_locked_amount: amount_json(c.partner.locked_amount()),
            state: match c.status {
                ChannelStatus::Opened => "opened",
                other => other.api_name(),
            },
            settle_timeout: c.settle_timeout.0,
            reveal_timeout: c.reveal_timeout.0,
            closed_block: match c.status {
                ChannelStatus::Closed { closed_block, .. } => Some(closed_block.0),
                _ => None,
            },
            settle_block_number: match c.status {
                ChannelStatus::Closed { closed_block, .. } => {
                    Some(closed_block.plus(c.settle_timeout).0)
                }
                _ => None,
            },
        }
    }
}

/// `PUT /api/1/channels` body.
#[derive(Deserialize)]
pub struct OpenChannelBody {
    /// Partner.
    pub partner_address: String,
    /// Token.
    pub token_address: String,
    /// Initial deposit.
    #[serde(default)]
    pub balance: Option<Amount>,
    /// Settle window in blocks.
    pub settle_timeout: Option<u64>,
}

/// `PATCH /api/1/channels/{id}` body.
#[derive(Deserialize)]
pub struct PatchChannelBody {
    /// Deposit this much more.
    pub balance: Option<Amount>,
    /// `"closed"` or `"settled"`.
    pub state: Option<String>,
    /// With `"closed"`: close unilaterally instead of settling cooperatively.
    #[serde(default)]
    pub force: bool,
}

/// `PUT /api/1/withdraw/{id}` body.
#[derive(Deserialize)]
pub struct WithdrawBody {
    /// How much to take out.
    pub amount: Amount,
}

/// `POST /api/1/transfers/{token}/{target}` body.
#[derive(Deserialize)]
pub struct TransferBody {
    /// What the target receives.
    pub amount: Amount,
    /// Most to pay in fees.
    pub fee: Option<Amount>,
    /// Pay a direct partner without a lock.
    #[serde(default)]
    pub is_direct: bool,
    /// A user-held secret (the transfer waits for `allowrevealsecret`).
    pub secret: Option<String>,
    /// Answer only when the transfer has ended.
    #[serde(default)]
    pub sync: bool,
    /// The caller's payment identifier: a retry with it while the first runs is refused (409
    /// naming the running transfer), so it never pays twice.
    pub identifier: Option<u64>,
}

/// `POST /api/1/transfers/allowrevealsecret` body.
#[derive(Deserialize)]
pub struct SecretHashBody {
    /// The transfer.
    pub lock_secret_hash: String,
    /// Its token.
    pub token_address: String,
}

/// `POST /api/1/registersecret` body.
#[derive(Deserialize)]
pub struct RegisterSecretBody {
    /// The secret.
    pub secret: String,
    /// Its token (informational).
    pub token_address: Option<String>,
}
