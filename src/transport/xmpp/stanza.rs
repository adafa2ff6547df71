//! Mapping between protocol messages/addresses and XMPP stanzas/JIDs.
//!
//! One `<message type="chat">` carries one protocol message, its bytes base64 (standard
//! alphabet, padded) in the `<body>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Lang, Message, MessageType};

use crate::primitives::Address;

/// The JID a node with `address` logs in as on `domain`.
pub fn jid_for(address: &Address, domain: &str) -> Result<BareJid, String> {
    let s = format!("{}@{}", address.to_lower_hex(), domain);
    BareJid::new(&s).map_err(|e| format!("invalid JID {s:?}: {e}"))
}

/// The address a JID's local part names, if it is 40 hex digits.
pub fn address_of(jid: &Jid) -> Option<Address> {
    let node = jid.node()?;
    let hex = node.as_str();
    if hex.len() != 40 {
        return None;
    }
    hex.parse().ok()
}

/// A chat message to `to` carrying `bytes`.
pub fn encode_message(to: BareJid, bytes: &[u8]) -> Message {
    // No xml:lang: the empty key is "no language", which every server passes on.
    Message::chat(Some(Jid::from(to))).with_body(Lang::from(""), B64.encode(bytes))
}

/// Why an incoming message was not a protocol message.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The message has no body (chat states, receipts and the like).
    NoBody,
    /// The body is not valid base64.
    NotBase64(String),
    /// The body decodes to nothing.
    Empty,
}

/// The protocol bytes carried by an incoming message.
pub fn decode_message(message: &Message) -> Result<Vec<u8>, DecodeError> {
    if !matches!(message.type_, MessageType::Chat | MessageType::Normal) {
        return Err(DecodeError::NoBody);
    }
    // Prosody adds xml:lang="en" to bodies, so look at the first body whatever its language.
    let body = message.bodies.values().next().ok_or(DecodeError::NoBody)?;
    let bytes = B64
        .decode(body.trim())
        .map_err(|e| DecodeError::NotBase64(e.to_string()))?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        Address([b; 20])
    }

    #[test]
    fn jid_round_trips_address() {
        let a = addr(0xab);
        let jid = jid_for(&a, "node.test").unwrap();
        assert_eq!(jid.to_string(), format!("{}@node.test", "ab".repeat(20)));
        assert_eq!(address_of(&Jid::from(jid)), Some(a));
    }

    #[test]
    fn non_address_jids_are_rejected() {
        assert_eq!(address_of(&Jid::new("alice@node.test").unwrap()), None);
        assert_eq!(address_of(&Jid::new("node.test").unwrap()), None);
        let short = format!("{}@node.test", "ab".repeat(19));
        assert_eq!(address_of(&Jid::new(&short).unwrap()), None);
    }

    #[test]
    fn message_round_trips_bytes() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let msg = encode_message(jid_for(&addr(1), "d").unwrap(), &bytes);
        assert_eq!(decode_message(&msg).unwrap(), bytes);
    }

    #[test]
    fn body_in_any_language_is_read() {
        let mut msg = Message::chat(None);
        msg.bodies.insert(Lang::from("en"), B64.encode([1, 2, 3]));
        assert_eq!(decode_message(&msg).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn garbage_bodies_are_errors() {
        let with = |body: &str| Message::chat(None).with_body(Lang::from(""), body.to_string());
        assert!(matches!(
            decode_message(&with("not base64!")),
            Err(DecodeError::NotBase64(_))
        ));
        assert_eq!(decode_message(&with("")), Err(DecodeError::Empty));
        assert_eq!(
            decode_message(&Message::chat(None)),
            Err(DecodeError::NoBody)
        );
        let mut err = with("AQID");
        err.type_ = MessageType::Error;
        assert_eq!(decode_message(&err), Err(DecodeError::NoBody));
    }
}
