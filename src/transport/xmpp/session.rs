//! Opening one authenticated, resource-bound XMPP client stream.
//!
//! tokio-xmpp's `Client` retries a rejected login forever without telling anyone and hides
//! disconnects behind its own reconnect loop, so the transport drives the lower-level
//! stream itself: this module does connect → SASL → bind once and says exactly how it failed.

use std::borrow::Cow;
use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
    initiate_stream,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid};
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;

/// An established client stream.
pub type Stream = XmppStream<BufStream<TcpStream>>;

/// The resource every node binds: a second login with the same key replaces the first, so a
/// dead session left on the server after a network cut cannot swallow messages.
pub const RESOURCE: &str = "smartraiden";

/// The id of our resource-binding request.
const BIND_ID: &str = "bind-1";

/// How opening a session failed.
#[derive(Debug)]
pub enum OpenError {
    /// The server rejected the credentials: retrying will not help.
    Rejected(String),
    /// Network or protocol trouble: worth retrying.
    Transient(String),
    /// No route to the server (ENETUNREACH, EHOSTUNREACH): the connection failed at once and
    /// retrying will not help until the network changes.
    NoRoute(String),
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        OpenError::Transient(e.to_string())
    }
}

/// Connects to `server`, logs in as `jid` and binds [`RESOURCE`].
pub async fn open(
    server: SocketAddr,
    jid: &BareJid,
    password: &str,
    timeouts: Timeouts,
) -> Result<(Stream, FullJid), OpenError> {
    let tcp = TcpStream::connect(server)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable => {
                OpenError::NoRoute(e.to_string())
            }
            _ => OpenError::Transient(e.to_string()),
        })?;
    // Protocol messages are small and latency-bound: never wait to coalesce them.
    tcp.set_nodelay(true)?;
    let header = || StreamHeader {
        to: Some(Cow::Owned(jid.domain().to_string())),
        from: None,
        id: None,
    };
    let pending =
        initiate_stream(BufStream::new(tcp), ns::JABBER_CLIENT, header(), timeouts).await?;
    let (features, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| OpenError::Transient(format!("stream features: {e}")))?;
    let username = jid.node().map(|n| n.to_string()).unwrap_or_default();
    let creds = sasl::common::Credentials::default()
        .with_username(username)
        .with_password(password.to_owned())
        .with_channel_binding(sasl::common::ChannelBinding::None);
    let authed = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
        .await
        .map_err(|e| match e {
            tokio_xmpp::Error::Auth(a) => OpenError::Rejected(a.to_string()),
            other => OpenError::Transient(format!("authentication: {other}")),
        })?;
    let (_features, mut stream) = authed
        .send_header(header())
        .await?
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| OpenError::Transient(format!("post-auth features: {e}")))?;
    let bind = Iq::from_set(BIND_ID, BindQuery::new(Some(RESOURCE.to_owned())));
    stream.send(&XmppStreamElement::Stanza(bind.into())).await?;
    let bound = await_bind(&mut stream).await?;
    Ok((stream, bound))
}

/// Reads until the answer to our bind request.
async fn await_bind(stream: &mut Stream) -> Result<FullJid, OpenError> {
    loop {
        let element = match stream.next().await {
            None => return Err(OpenError::Transient("stream closed during bind".into())),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(OpenError::Transient(format!("during bind: {e}"))),
            Some(Ok(FallibleStreamElement::Err(e))) => {
                log::warn!("xmpp: malformed element during bind ignored: {e}");
                continue;
            }
            Some(Ok(FallibleStreamElement::Ok(el))) => el,
        };
        match element {
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Result { id, payload, .. }))
                if id == BIND_ID =>
            {
                let payload =
                    payload.ok_or_else(|| OpenError::Transient("empty bind result".into()))?;
                let resp = BindResponse::try_from(payload)
                    .map_err(|e| OpenError::Transient(format!("bad bind result: {e}")))?;
                return Ok(FullJid::from(resp));
            }
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id, error, .. })) if id == BIND_ID => {
                return Err(OpenError::Transient(format!("bind refused: {error:?}")));
            }
            XmppStreamElement::StreamError(e) => {
                return Err(OpenError::Transient(format!(
                    "stream error during bind: {e:?}"
                )));
            }
            other => log::debug!("xmpp: ignoring {other:?} before bind completed"),
        }
    }
}
