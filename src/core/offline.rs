//! No-internet mode (SPEC §4): two nodes on one local network keep paying each other directly
//! while neither the chain nor the XMPP server is reachable.
//!
//! The rules, all decided here:
//! - The mode is on while the user switched it on (`Action::SetNoInternet`), or while neither
//!   link has answered for `chain_stale_after_ms` (automatic). The user's switch ends with
//!   `SetNoInternet(false)`, or when both links come back.
//! - Direct transfers keep working both ways on channels open in our last view.
//! - Mediated transfers are refused at once: a node that cannot reach the chain cannot
//!   register a secret or watch an expiry, so it holds no lock. An incoming one is accepted and
//!   given back at once (AnnounceDisposed), so its payer stops resending and can fail or route
//!   around us; a lock given back is never claimed.
//! - Receiving is safe only while we could still answer a close with an older proof: once the
//!   last word from the chain is older than `offline_share_percent` of a channel's settle
//!   window (at `block_time_ms` per block), incoming payments on it wait, unacknowledged,
//!   until the chain is reachable again.

use super::Core;
use crate::primitives::{BlockNumber, ChannelId};
use serde::{Deserialize, Serialize};

/// How often the time of the last word from the chain is persisted while nothing else changes.
const CHAIN_SEEN_REFRESH_MS: u64 = 60_000;

/// When the node last heard from each link (not persisted except `chain_seen`, which lives in
/// the state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// Whether the XMPP link is up, and since when (core clock) it is in that state.
    xmpp: Option<(bool, u64)>,
}

/// Why the node is in no-internet mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoInternet {
    /// The user switched it on.
    Switched,
    /// Neither the chain nor the XMPP server answered for a while.
    LinksDown,
}

impl NoInternet {
    /// For the API and logs.
    pub fn describe(self) -> &'static str {
        match self {
            NoInternet::Switched => "switched on by the user",
            NoInternet::LinksDown => "neither the chain nor the XMPP server is reachable",
        }
    }
}

impl Core {
    /// Whether the node is in no-internet mode, and why.
    pub fn no_internet(&self) -> Option<NoInternet> {
        self.no_internet_at(self.now_ms)
    }

    /// As [`Core::no_internet`], at time `now_ms` on the core's clock (for queries between
    /// steps).
    pub fn no_internet_at(&self, now_ms: u64) -> Option<NoInternet> {
        if self.state.no_internet_switch {
            return Some(NoInternet::Switched);
        }
        let stale = self.state.config.chain_stale_after_ms;
        // A link never heard from counts from this run's start.
        let silent =
            |since: Option<u64>| now_ms.saturating_sub(since.unwrap_or(self.started_ms)) > stale;
        let xmpp_down = match self.links.xmpp {
            Some((true, _)) => false,
            Some((false, since)) => silent(Some(since)),
            None => silent(None),
        };
        (xmpp_down && silent(self.chain.last_contact_ms())).then_some(NoInternet::LinksDown)
    }

    /// Whether the XMPP link is up, as the transport last said.
    pub fn xmpp_connected(&self) -> bool {
        matches!(self.links.xmpp, Some((true, _)))
    }

    fn both_links_up(&self) -> bool {
        matches!(self.links.xmpp, Some((true, _))) && self.chain_behind().is_none()
    }

    /// The XMPP link went up or down.
    pub(super) fn on_xmpp_link(&mut self, up: bool) {
        let before = self.both_links_up();
        if self.links.xmpp.is_none_or(|(was, _)| was != up) {
            self.links.xmpp = Some((up, self.now_ms));
        }
        self.links_changed(before);
    }

    /// The chain follower reported the head.
    pub(super) fn on_chain_head(&mut self, head: BlockNumber) {
        let before = self.both_links_up();
        self.chain.saw_head(head, self.now_ms);
        // Persisted on a new head, and at least once a minute while the chain answers (an
        // idle chain mines nothing): a node restarted offline knows how old its view is.
        let now = self.now_ms;
        if self
            .state
            .chain_seen
            .is_none_or(|(b, at)| b < head || now.saturating_sub(at) >= CHAIN_SEEN_REFRESH_MS)
        {
            self.state.chain_seen = Some((head, now));
        }
        self.links_changed(before);
    }

    /// Both links back ends a switched-on no-internet mode.
    fn links_changed(&mut self, both_before: bool) {
        if !both_before && self.both_links_up() && self.state.no_internet_switch {
            log::info!("the chain and the XMPP server are reachable again: no-internet mode ends");
            self.state.no_internet_switch = false;
        }
    }

    /// The user switches no-internet mode on or off.
    pub(super) fn switch_no_internet(&mut self, on: bool) {
        if self.state.no_internet_switch != on {
            log::info!(
                "no-internet mode switched {}",
                if on { "on" } else { "off" }
            );
        }
        self.state.no_internet_switch = on;
    }

    /// How long ago (core clock) the node last heard from the chain: this run's follower, or
    /// the newest head persisted by an earlier run. `None` if never.
    pub fn chain_silence_ms(&self) -> Option<u64> {
        self.chain_silence_ms_at(self.now_ms)
    }

    /// As [`Core::chain_silence_ms`], at time `now_ms` on the core's clock.
    pub fn chain_silence_ms_at(&self, now_ms: u64) -> Option<u64> {
        let at = self
            .chain
            .last_contact_ms()
            .into_iter()
            .chain(self.state.chain_seen.map(|(_, at)| at))
            .max()?;
        Some(now_ms.saturating_sub(at))
    }

    /// The longest the chain may stay silent while we still accept payments on `channel`: a
    /// share of its settle window.
    pub fn offline_receive_limit_ms(&self, channel: ChannelId) -> Option<u64> {
        let ch = self.state.channel(&channel)?;
        let config = &self.state.config;
        Some(
            ch.settle_timeout
                .0
                .saturating_mul(config.block_time_ms)
                .saturating_mul(config.offline_share_percent)
                / 100,
        )
    }

    /// Why a payment on `channel` must wait for the chain, if it must.
    pub(super) fn refuse_receiving_offline(&self, channel: ChannelId) -> Option<String> {
        let limit = self.offline_receive_limit_ms(channel)?;
        let silence = self.chain_silence_ms()?;
        (silence > limit).then(|| {
            format!(
                "no word from the chain for {} s, more than the {} s a close of {channel} could go unanswered",
                silence / 1000,
                limit / 1000
            )
        })
    }
}
