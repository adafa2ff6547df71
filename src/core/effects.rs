//! The core's ways of affecting the world: sign and queue messages, acknowledge, submit
//! transactions, notify. Everything lands in the step's output list.

use super::channel::SignedProof;
use super::{ContractCall, Core, Notification, Output};
use crate::messages::{Ack, BalanceProof, Message, SignedMessage, encode_signed};
use crate::primitives::{Address, ChannelId, TokenAmount};
use crate::proofs::Lock;

impl Core {
    /// Tells the user (and forgets the caller identifier of a transfer that ended).
    pub(super) fn emit(&mut self, n: Notification) {
        if let Notification::TransferSucceeded { id, .. }
        | Notification::TransferFailed { id, .. }
        | Notification::TransferCanceled { id } = &n
        {
            self.state.running_identifiers.remove(id);
        }
        self.out.push(Output::Event(n));
    }

    /// Asks the shell to submit a transaction.
    pub(super) fn contract(&mut self, call: ContractCall) {
        log::info!("submit {call:?}");
        self.out.push(Output::ContractSend(call));
    }

    /// Logs and reports a refused message; the state is untouched.
    pub(super) fn reject(
        &mut self,
        from: Option<Address>,
        kind: &'static str,
        reason: impl std::fmt::Display,
    ) {
        log::warn!("refused {kind} from {from:?}: {reason}");
        self.emit(Notification::MessageRejected {
            from,
            kind,
            reason: reason.to_string(),
        });
    }

    /// Acknowledges a processed message (acks are not themselves acknowledged or queued).
    pub(super) fn ack(&mut self, msg: &SignedMessage) {
        let ack = encode_signed(
            Message::Ack(Ack { echo: msg.hash }),
            &self.key,
            self.state.config.chain_id,
        );
        self.out.push(Output::Send {
            to: msg.sender,
            bytes: ack.bytes,
        });
    }

    /// Signs `m` and queues it for reliable delivery to `to`.
    pub(super) fn send_message(
        &mut self,
        to: Address,
        m: Message,
        channel: Option<ChannelId>,
    ) -> SignedMessage {
        let signed = encode_signed(m, &self.key, self.state.config.chain_id);
        log::debug!(
            "send {} to {:?} ({:?})",
            signed.message.kind(),
            to,
            signed.hash
        );
        if let Some(out) = self.state.delivery.enqueue(
            to,
            signed.hash,
            signed.bytes.clone(),
            channel,
            self.now_ms,
            &self.state.config.retry,
        ) {
            self.out.push(out);
        }
        signed
    }

    /// Builds our next balance proof on `channel` with the given totals and locks, wraps it
    /// in the message `make` builds, signs, applies it to our end and queues it.
    pub(super) fn send_balance_proof(
        &mut self,
        channel: ChannelId,
        transferred_amount: TokenAmount,
        locks: Vec<Lock>,
        make: impl FnOnce(BalanceProof) -> Message,
    ) -> Option<SignedMessage> {
        let ch = self.state.channel(&channel)?;
        let partner = ch.partner.address;
        let bp = ch.our_next_proof(transferred_amount, &locks);
        let signed = self.send_message(partner, make(bp), Some(channel));
        let proof = SignedProof {
            balance_proof: bp,
            additional_hash: signed.hash,
            signature: signed.signature,
        };
        self.state
            .channel_mut(&channel)
            .expect("looked up above")
            .our
            .apply(proof, locks);
        Some(signed)
    }
}
