//! What a payment would do if it started now (route, fees, amount locked), answered by the
//! same checks and the same route choice the payment itself runs, without changing anything.

use crate::core::{ActionError, Core, TransferRequest};
use crate::primitives::{Address, ChannelId, H256, SecretHash, TokenAmount};
use std::collections::BTreeSet;

/// The outcome a payment started now would have at its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferPreview {
    /// Our channel of the first hop.
    pub channel: ChannelId,
    /// Nodes after us, ending with the target.
    pub path: Vec<Address>,
    /// Fees the mediators on the route are expected to charge (zero for a direct transfer).
    pub fee: TokenAmount,
    /// What leaves our channel: the amount plus the fees.
    pub total: TokenAmount,
    /// A DirectTransfer (no lock) rather than a mediated one.
    pub direct: bool,
}

impl Core {
    /// The checks every transfer request passes before anything is sent (the shared gate of
    /// [`Action::Transfer`](crate::core::Action::Transfer) and of the preview).
    pub(crate) fn check_transfer(&self, req: &TransferRequest) -> Result<(), ActionError> {
        if req.amount.is_zero() {
            return Err(ActionError::Invalid("amount must be positive".into()));
        }
        if req.target == self.state.our_address {
            return Err(ActionError::Invalid("cannot pay ourselves".into()));
        }
        if !self.state.tokens.contains_key(&req.token) {
            return Err(ActionError::UnknownToken(req.token));
        }
        if let Some(n) = req.identifier
            && let Some((id, _)) = self
                .state
                .running_identifiers
                .iter()
                .find(|(_, v)| **v == (req.target, n))
        {
            return Err(ActionError::DuplicateTransfer(*id));
        }
        if req.is_direct {
            return Ok(());
        }
        if let Some(mode) = self.no_internet() {
            return Err(ActionError::NoInternet(mode.describe()));
        }
        // A lock's expiration is judged against our block: not while it trails.
        if let Some(why) = self.chain_behind() {
            return Err(ActionError::ChainBehind(why));
        }
        if let Some(secret) = req.secret
            && self.state.registered_secrets.contains_key(&secret.hash())
        {
            return Err(ActionError::Invalid(
                "this secret is already registered on chain: anyone could claim the lock".into(),
            ));
        }
        Ok(())
    }

    /// Our open channel with the target of a direct transfer that can carry its amount.
    pub(crate) fn direct_channel(&self, req: &TransferRequest) -> Result<ChannelId, ActionError> {
        let ch = self
            .state
            .channel_with(&req.token, &req.target)
            .ok_or_else(|| {
                ActionError::Invalid(format!("no direct channel with {}", req.target))
            })?;
        if !ch.can_transfer() {
            return Err(ActionError::ChannelState(ch.status.api_name()));
        }
        let available = ch.our_distributable();
        if req.amount > available {
            return Err(ActionError::InsufficientBalance {
                available: available.to_string(),
                requested: req.amount.to_string(),
            });
        }
        Ok(ch.identifier)
    }

    /// What [`Action::Transfer`](crate::core::Action::Transfer) with `req` would do now: the
    /// same refusal, or the route it would take and the fees it would pay. Changes nothing.
    pub fn preview_transfer(&self, req: &TransferRequest) -> Result<TransferPreview, ActionError> {
        self.check_transfer(req)?;
        if req.is_direct {
            let channel = self.direct_channel(req)?;
            return Ok(TransferPreview {
                channel,
                path: vec![req.target],
                fee: TokenAmount::ZERO,
                total: req.amount,
                direct: true,
            });
        }
        let tn = self.state.tokens[&req.token];
        // A fresh payment's secrethash is random, so no partner gave its lock back yet.
        let h = req.secret.map_or(SecretHash(H256([0; 32])), |s| s.hash());
        let chosen = self.choose_route(
            &tn,
            req.target,
            req.amount,
            req.max_fee,
            &h,
            &BTreeSet::new(),
        )?;
        Ok(TransferPreview {
            channel: chosen.route.channel,
            path: chosen.route.path,
            fee: chosen.route.fee,
            total: chosen.lock_amount,
            direct: false,
        })
    }
}
