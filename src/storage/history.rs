//! Transfer history for the REST API: [`TransferRecord`]s derived from the core's
//! [`Notification`]s by the pure function [`records_from`].

use crate::core::Notification;
use crate::primitives::{Address, H256, TokenAmount};
use serde::{Deserialize, Serialize};

/// Where a transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    /// Running.
    Pending,
    /// The payee holds a balance proof paying it (or, received: we hold one).
    Success,
    /// No tokens moved.
    Failed,
    /// Canceled by the user before the secret was revealed.
    Canceled,
}

impl TransferStatus {
    /// Whether the transfer is over.
    pub fn is_final(self) -> bool {
        self != TransferStatus::Pending
    }
}

/// Whether we paid or were paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// We initiated it.
    Sent,
    /// We were its target.
    Received,
}

/// One transfer as the REST API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Secrethash (mediated) or message hash (direct).
    pub id: H256,
    /// Sent or received.
    pub direction: Direction,
    /// The token.
    pub token: Address,
    /// The other end: the target of a sent transfer, the initiator of a received one.
    pub partner: Address,
    /// What the target receives.
    pub amount: TokenAmount,
    /// Fees paid to mediators (sent transfers; zero for received ones).
    pub fee: TokenAmount,
    /// Where it stands.
    pub status: TransferStatus,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// When it started (ms since the Unix epoch).
    pub created_ms: u64,
    /// When its status last changed (ms since the Unix epoch).
    pub updated_ms: u64,
}

/// A change to the history: a new record, or a status change of an existing one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordUpdate {
    /// A transfer to record.
    Create(TransferRecord),
    /// A recorded transfer ended.
    Finish {
        /// The transfer.
        id: H256,
        /// Its final status.
        status: TransferStatus,
        /// The fee actually paid, when the notification says.
        fee: Option<TokenAmount>,
        /// Why, for failures.
        reason: Option<String>,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
}

impl RecordUpdate {
    /// The transfer this update is about.
    pub fn id(&self) -> H256 {
        match self {
            RecordUpdate::Create(r) => r.id,
            RecordUpdate::Finish { id, .. } => *id,
        }
    }

    /// Applies a `Finish` to `record`; refuses to turn one final outcome into another (a
    /// repeat of the same outcome is accepted and changes nothing).
    pub(crate) fn finish(
        record: &mut TransferRecord,
        status: TransferStatus,
        fee: Option<TokenAmount>,
        reason: Option<String>,
        at_ms: u64,
    ) -> Result<(), super::StorageError> {
        if record.status.is_final() {
            if record.status == status {
                return Ok(());
            }
            return Err(super::StorageError::OutcomeChanged {
                id: record.id,
                recorded: record.status,
                new: status,
            });
        }
        record.status = status;
        if let Some(fee) = fee {
            record.fee = fee;
        }
        record.reason = reason;
        record.updated_ms = at_ms;
        Ok(())
    }
}

/// The history changes that `notifications` (one step's, in order) imply at `now_ms`.
/// Notifications about anything but our own payments (mediation, channels, rejected
/// messages) leave the history alone.
pub fn records_from<'a>(
    notifications: impl IntoIterator<Item = &'a Notification>,
    now_ms: u64,
) -> Vec<RecordUpdate> {
    let finish = |id: H256, status, fee, reason| RecordUpdate::Finish {
        id,
        status,
        fee,
        reason,
        at_ms: now_ms,
    };
    notifications
        .into_iter()
        .filter_map(|n| match n {
            Notification::TransferStarted {
                id,
                token,
                target,
                amount,
                fee,
            } => Some(RecordUpdate::Create(TransferRecord {
                id: *id,
                direction: Direction::Sent,
                token: *token,
                partner: *target,
                amount: *amount,
                fee: *fee,
                status: TransferStatus::Pending,
                reason: None,
                created_ms: now_ms,
                updated_ms: now_ms,
            })),
            Notification::TransferSucceeded { id, fee } => {
                Some(finish(*id, TransferStatus::Success, Some(*fee), None))
            }
            Notification::TransferFailed { id, reason } => Some(finish(
                *id,
                TransferStatus::Failed,
                None,
                Some(reason.clone()),
            )),
            Notification::TransferCanceled { id } => {
                Some(finish(*id, TransferStatus::Canceled, None, None))
            }
            Notification::PaymentReceived {
                id,
                token,
                initiator,
                amount,
            } => Some(RecordUpdate::Create(TransferRecord {
                id: *id,
                direction: Direction::Received,
                token: *token,
                partner: *initiator,
                amount: *amount,
                fee: TokenAmount::ZERO,
                status: TransferStatus::Success,
                reason: None,
                created_ms: now_ms,
                updated_ms: now_ms,
            })),
            Notification::TransferAwaitingSecretRelease { .. }
            | Notification::MediationCompleted { .. }
            | Notification::ChannelChanged { .. }
            | Notification::MessageRejected { .. }
            | Notification::ChannelRequestRefused { .. }
            | Notification::TransactionFailed { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> H256 {
        H256([b; 32])
    }

    #[test]
    fn a_started_then_succeeded_transfer_is_created_pending_then_finished_with_its_real_fee() {
        let ns = [
            Notification::TransferStarted {
                id: h(1),
                token: Address([2; 20]),
                target: Address([3; 20]),
                amount: TokenAmount::from(50u64),
                fee: TokenAmount::from(6u64),
            },
            Notification::MediationCompleted {
                id: h(9),
                fee: TokenAmount::from(3u64),
            },
            Notification::TransferSucceeded {
                id: h(1),
                fee: TokenAmount::from(3u64),
            },
        ];
        let u = records_from(&ns, 7);
        assert_eq!(u.len(), 2, "mediation is not part of our history: {u:?}");
        let RecordUpdate::Create(mut r) = u[0].clone() else {
            panic!("first update creates: {u:?}")
        };
        assert_eq!(
            (r.direction, r.status, r.partner, r.created_ms),
            (
                Direction::Sent,
                TransferStatus::Pending,
                Address([3; 20]),
                7
            )
        );
        let RecordUpdate::Finish {
            status,
            fee,
            reason,
            at_ms,
            ..
        } = u[1].clone()
        else {
            panic!("second update finishes: {u:?}")
        };
        RecordUpdate::finish(&mut r, status, fee, reason, at_ms).unwrap();
        assert_eq!(r.status, TransferStatus::Success);
        assert_eq!(r.fee, TokenAmount::from(3u64), "the fee actually paid wins");
    }

    #[test]
    fn a_received_payment_is_recorded_as_a_success_from_its_initiator() {
        let u = records_from(
            &[Notification::PaymentReceived {
                id: h(4),
                token: Address([2; 20]),
                initiator: Address([5; 20]),
                amount: TokenAmount::from(9u64),
            }],
            11,
        );
        let [RecordUpdate::Create(r)] = u.as_slice() else {
            panic!("one record: {u:?}")
        };
        assert_eq!(
            (r.direction, r.status, r.partner, r.amount),
            (
                Direction::Received,
                TransferStatus::Success,
                Address([5; 20]),
                TokenAmount::from(9u64)
            )
        );
    }

    #[test]
    fn failures_and_cancels_finish_with_their_status_and_reason() {
        let u = records_from(
            &[
                Notification::TransferFailed {
                    id: h(1),
                    reason: "no route".into(),
                },
                Notification::TransferCanceled { id: h(2) },
            ],
            3,
        );
        assert_eq!(
            u,
            vec![
                RecordUpdate::Finish {
                    id: h(1),
                    status: TransferStatus::Failed,
                    fee: None,
                    reason: Some("no route".into()),
                    at_ms: 3
                },
                RecordUpdate::Finish {
                    id: h(2),
                    status: TransferStatus::Canceled,
                    fee: None,
                    reason: None,
                    at_ms: 3
                }
            ]
        );
    }

    #[test]
    fn a_final_outcome_cannot_be_rewritten_but_may_be_repeated() {
        let mut r = TransferRecord {
            id: h(1),
            direction: Direction::Sent,
            token: Address([2; 20]),
            partner: Address([3; 20]),
            amount: TokenAmount::from(1u64),
            fee: TokenAmount::ZERO,
            status: TransferStatus::Failed,
            reason: Some("expired".into()),
            created_ms: 1,
            updated_ms: 2,
        };
        let before = r.clone();
        RecordUpdate::finish(&mut r, TransferStatus::Failed, None, None, 9).unwrap();
        assert_eq!(r, before, "a repeat changes nothing");
        let err = RecordUpdate::finish(&mut r, TransferStatus::Success, None, None, 9).unwrap_err();
        assert!(matches!(
            err,
            super::super::StorageError::OutcomeChanged { .. }
        ));
        assert_eq!(r, before);
    }
}
