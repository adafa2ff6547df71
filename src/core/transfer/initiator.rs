//! The initiator of a mediated transfer: picks a route, locks `amount + fees`, reveals the
//! secret to the target on request, unlocks toward the first hop once it learns the secret
//! came back, re-routes when a lock is disposed, and can be canceled before the reveal.

use super::{Attempt, InitiatorState};
use crate::core::routing::Route;
use crate::core::{ActionError, Core, Notification, TransferRequest};
use crate::messages::{MediatedTransfer, Message, RevealSecret, SecretRequest, SignedMessage};
use crate::primitives::{Address, BlockCount, ChannelId, Secret, SecretHash, TokenAmount};
use crate::proofs::Lock;
use std::collections::BTreeSet;

/// A route chosen for a lock, with the lock's amount (the payee's amount plus the fees) and
/// how many blocks from now it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenRoute {
    /// The route.
    pub route: Route,
    /// Amount plus the mediators' fees.
    pub lock_amount: TokenAmount,
    /// Blocks from now until the lock expires.
    pub timeout: BlockCount,
}

impl Core {
    /// Starts a mediated transfer.
    pub(crate) fn start_mediated(
        &mut self,
        req: &TransferRequest,
        rng: &mut dyn rand_core::RngCore,
    ) -> Result<SecretHash, ActionError> {
        let tn = *self
            .state
            .tokens
            .get(&req.token)
            .ok_or(ActionError::UnknownToken(req.token))?;
        let secret = req.secret.unwrap_or_else(|| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            Secret(crate::primitives::H256(b))
        });
        let h = secret.hash();
        if self.state.initiators.contains_key(&h)
            || self.state.mediators.contains_key(&h)
            || self.state.targets.contains_key(&h)
        {
            return Err(ActionError::DuplicateSecret);
        }
        self.state.initiators.insert(
            h,
            InitiatorState {
                token_network: tn,
                token: req.token,
                target: req.target,
                amount: req.amount,
                max_fee: req.max_fee,
                secret,
                hold_secret: req.secret.is_some(),
                secret_requested: false,
                revealed: false,
                canceled: false,
                current: None,
                tried: BTreeSet::new(),
            },
        );
        match self.initiator_next_route(h) {
            Ok(fee) => {
                self.emit(Notification::TransferStarted {
                    id: h.0,
                    token: req.token,
                    target: req.target,
                    amount: req.amount,
                    fee,
                });
                Ok(h)
            }
            Err(e) => {
                self.state.initiators.remove(&h);
                Err(e)
            }
        }
    }

    /// Sends the lock over the best route not tried yet; returns the fee it pays.
    fn initiator_next_route(&mut self, h: SecretHash) -> Result<TokenAmount, ActionError> {
        let init = self
            .state
            .initiators
            .get(&h)
            .expect("caller checked")
            .clone();
        let chosen = self.choose_route(
            &init.token_network,
            init.target,
            init.amount,
            init.max_fee,
            &h,
            &init.tried,
        )?;
        let ch = self
            .state
            .channel(&chosen.route.channel)
            .expect("route over our channel");
        let lock = Lock {
            expiration: self.state.block.plus(chosen.timeout),
            amount: chosen.lock_amount,
            secrethash: h,
        };
        let mut locks = ch.our.locks.clone();
        locks.push(lock);
        let (transferred, partner, channel) = (
            ch.our.transferred_amount,
            ch.partner.address,
            chosen.route.channel,
        );
        let (us, target, fee) = (self.state.our_address, init.target, chosen.route.fee);
        log::info!(
            "transfer {h:?}: locking {} toward {target:?} via {:?}",
            chosen.lock_amount,
            chosen.route.path
        );
        self.send_balance_proof(channel, transferred, locks, |bp| {
            Message::MediatedTransfer(MediatedTransfer {
                balance_proof: bp,
                lock,
                initiator: us,
                target,
                fee,
            })
        });
        let init = self.state.initiators.get_mut(&h).expect("present");
        init.current = Some(Attempt {
            channel,
            partner,
            lock,
        });
        init.tried.insert(channel);
        Ok(fee)
    }

    /// The route a lock of `amount` (plus fees) toward `target` takes now over a channel not
    /// in `tried`, and what it locks: the one choice both a payment and its preview make.
    pub(crate) fn choose_route(
        &self,
        token_network: &Address,
        target: Address,
        amount: TokenAmount,
        max_fee: Option<TokenAmount>,
        h: &SecretHash,
        tried: &BTreeSet<ChannelId>,
    ) -> Result<ChosenRoute, ActionError> {
        if let Some(mode) = self.no_internet() {
            return Err(ActionError::NoInternet(mode.describe()));
        }
        let routes = self.find_routes(token_network, target, amount, h, tried, &BTreeSet::new());
        if routes.is_empty() {
            return Err(ActionError::NoRoute(target));
        }
        let mut best_available = TokenAmount::ZERO;
        for r in routes {
            if max_fee.is_some_and(|m| r.fee > m) {
                continue;
            }
            let Some(lock_amount) = amount.checked_add(r.fee) else {
                continue;
            };
            let ch = self
                .state
                .channel(&r.channel)
                .expect("route over our channel");
            best_available = best_available.max(ch.our_distributable());
            if ch.our_distributable() < lock_amount {
                continue;
            }
            // Each hop keeps `reveal_timeout` blocks to claim on chain; the target needs one more.
            let timeout = BlockCount(ch.reveal_timeout.0 * (r.hops() as u64 + 1));
            if timeout.0 + ch.reveal_timeout.0 > ch.settle_timeout.0 {
                continue;
            }
            return Ok(ChosenRoute {
                route: r,
                lock_amount,
                timeout,
            });
        }
        Err(ActionError::InsufficientBalance {
            available: best_available.to_string(),
            requested: amount.to_string(),
        })
    }

    /// The target asks for the secret.
    pub(crate) fn on_secret_request(&mut self, msg: &SignedMessage, m: &SecretRequest) {
        let block = self.state.block;
        let Some(init) = self.state.initiators.get_mut(&m.secrethash) else {
            return self.reject(
                Some(msg.sender),
                "SecretRequest",
                "no such transfer of ours",
            );
        };
        if msg.sender != init.target || m.amount != init.amount {
            return self.reject(
                Some(msg.sender),
                "SecretRequest",
                "not from our target or wrong amount",
            );
        }
        if init.canceled || init.current.is_none_or(|a| a.lock.expiration <= block) {
            return self.reject(
                Some(msg.sender),
                "SecretRequest",
                "transfer canceled or its lock expired",
            );
        }
        if init.hold_secret {
            init.secret_requested = true;
            return self.emit(Notification::TransferAwaitingSecretRelease { id: m.secrethash.0 });
        }
        init.revealed = true;
        let (target, secret) = (init.target, init.secret);
        self.send_message(target, Message::RevealSecret(RevealSecret { secret }), None);
    }

    /// The first hop tells us it knows the secret: pay it.
    pub(crate) fn initiator_on_reveal(
        &mut self,
        sender: crate::primitives::Address,
        secret: Secret,
    ) {
        let h = secret.hash();
        let Some(current) = self.state.initiators.get(&h).and_then(|i| i.current) else {
            return;
        };
        if current.partner == sender {
            self.pay_payee(current.channel, secret);
        }
    }

    /// The first hop gave our lock back: try the next route, or fail.
    pub(crate) fn initiator_on_disposed(&mut self, h: SecretHash) {
        let Some(init) = self.state.initiators.get_mut(&h) else {
            return;
        };
        init.current = None;
        if init.revealed || init.canceled {
            self.state.initiators.remove(&h);
            return self.emit(Notification::TransferFailed {
                id: h.0,
                reason: "lock disposed after reveal or cancel".into(),
            });
        }
        if let Err(e) = self.initiator_next_route(h) {
            self.state.initiators.remove(&h);
            self.emit(Notification::TransferFailed {
                id: h.0,
                reason: format!("every route disposed the lock: {e}"),
            });
        }
    }

    /// The user cancels: the secret will never be revealed; the lock expires and is removed.
    pub(crate) fn cancel_transfer(&mut self, h: SecretHash) -> Result<(), ActionError> {
        let init = self
            .state
            .initiators
            .get_mut(&h)
            .ok_or(ActionError::UnknownTransfer(h))?;
        if init.revealed {
            return Err(ActionError::TooLate(h));
        }
        init.canceled = true;
        log::info!("transfer {h:?} canceled; its lock will expire");
        Ok(())
    }

    /// The user releases a transfer sent with its own secret.
    pub(crate) fn allow_reveal_secret(&mut self, h: SecretHash) -> Result<(), ActionError> {
        let init = self
            .state
            .initiators
            .get_mut(&h)
            .ok_or(ActionError::UnknownTransfer(h))?;
        if init.canceled {
            return Err(ActionError::Invalid("transfer was canceled".into()));
        }
        init.hold_secret = false;
        if init.secret_requested && !init.revealed {
            init.revealed = true;
            let (target, secret) = (init.target, init.secret);
            self.send_message(target, Message::RevealSecret(RevealSecret { secret }), None);
        }
        Ok(())
    }
}
