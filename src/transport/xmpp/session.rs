//! Opening one authenticated, resource-bound XMPP client stream.
//!
//! tokio-xmpp's `Client` retries a rejected login forever without telling anyone and hides
//! disconnects behind its own reconnect loop, so the transport drives the lower-level
//! stream itself: this module does connect → SASL → bind once and says exactly how it failed.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
    initiate_stream,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid};
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::starttls;

/// The byte stream under the XML stream: TCP, or TLS over TCP after STARTTLS.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// An established client stream.
pub type Stream = XmppStream<BufStream<Box<dyn Conn>>>;

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

/// Connects to `server`, upgrades to TLS when `tls` is given (STARTTLS, the certificate
/// verified for the JID's domain), logs in as `jid` and binds [`RESOURCE`].
pub async fn open(
    server: SocketAddr,
    jid: &BareJid,
    password: &str,
    timeouts: Timeouts,
    tls: Option<Arc<ClientConfig>>,
    key_bound: bool,
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
    let conn: Box<dyn Conn> = Box::new(tcp);
    let pending =
        initiate_stream(BufStream::new(conn), ns::JABBER_CLIENT, header(), timeouts).await?;
    let (mut features, mut stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| OpenError::Transient(format!("stream features: {e}")))?;
    if let Some(config) = tls {
        if !features.can_starttls() {
            return Err(OpenError::Rejected(
                "the server offers no STARTTLS; refusing plain TCP (pass --xmpp-plaintext to allow it)"
                    .into(),
            ));
        }
        let conn = upgrade(stream, jid.domain().as_str(), config).await?;
        let pending =
            initiate_stream(BufStream::new(conn), ns::JABBER_CLIENT, header(), timeouts).await?;
        (features, stream) = pending
            .recv_features::<FallibleStreamElement>()
            .await
            .map_err(|e| OpenError::Transient(format!("stream features after TLS: {e}")))?;
    }
    let username = jid.node().map(|n| n.to_string()).unwrap_or_default();
    let authed = if key_bound {
        plain_login(stream, &features.sasl_mechanisms, &username, password).await?
    } else {
        let creds = sasl::common::Credentials::default()
            .with_username(username)
            .with_password(password.to_owned())
            .with_channel_binding(sasl::common::ChannelBinding::None);
        tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
            .await
            .map_err(|e| match e {
                tokio_xmpp::Error::Auth(a) => OpenError::Rejected(a.to_string()),
                other => OpenError::Transient(format!("authentication: {other}")),
            })?
    };
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

/// SASL PLAIN with a key-bound password (the verifier needs the signature itself, so no
/// SCRAM); a failure keeps the server's text, which carries the verifier's reason.
async fn plain_login(
    mut stream: Stream,
    mechanisms: &std::collections::BTreeSet<String>,
    username: &str,
    password: &str,
) -> Result<tokio_xmpp::xmlstream::InitiatingStream<BufStream<Box<dyn Conn>>>, OpenError> {
    use xmpp_parsers::sasl::{Auth, Mechanism, Nonza};
    if !mechanisms.contains("PLAIN") {
        return Err(OpenError::Rejected(format!(
            "the server offers no PLAIN login (offers {mechanisms:?}): is it set up for key-bound logins, and is the link encrypted?"
        )));
    }
    let mut data = Vec::with_capacity(username.len() + password.len() + 2);
    data.push(0);
    data.extend_from_slice(username.as_bytes());
    data.push(0);
    data.extend_from_slice(password.as_bytes());
    stream
        .send(&XmppStreamElement::Sasl(Nonza::Auth(Auth {
            mechanism: Mechanism::Plain,
            data,
        })))
        .await?;
    loop {
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Sasl(Nonza::Success(_))))) => {
                return Ok(stream.initiate_reset());
            }
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Sasl(Nonza::Failure(f))))) => {
                let text = f.texts.values().next().cloned().unwrap_or_default();
                return Err(OpenError::Rejected(format!(
                    "{:?}: {}",
                    f.defined_condition,
                    if text.is_empty() {
                        "(no reason given)"
                    } else {
                        &text
                    }
                )));
            }
            Some(Err(ReadError::SoftTimeout)) | Some(Ok(_)) => {}
            Some(Err(e)) => return Err(OpenError::Transient(format!("during login: {e}"))),
            None => return Err(OpenError::Transient("stream closed during login".into())),
        }
    }
}

/// STARTTLS: asks the server to proceed, then runs the TLS handshake on the same TCP
/// connection, verifying the certificate for `domain`. A certificate that does not verify is
/// [`OpenError::Rejected`]: retrying will not make it verify.
async fn upgrade(
    mut stream: Stream,
    domain: &str,
    config: Arc<ClientConfig>,
) -> Result<Box<dyn Conn>, OpenError> {
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await?;
    loop {
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Starttls(
                starttls::Nonza::Proceed(_),
            )))) => break,
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                return Err(OpenError::Transient(format!("STARTTLS refused: {e:?}")));
            }
            Some(Err(ReadError::SoftTimeout)) | Some(Ok(_)) => {}
            Some(Err(e)) => return Err(OpenError::Transient(format!("during STARTTLS: {e}"))),
            None => return Err(OpenError::Transient("stream closed during STARTTLS".into())),
        }
    }
    let tcp = stream.into_inner().into_inner();
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| OpenError::Rejected(format!("XMPP domain {domain:?} as TLS name: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            if e.get_ref().is_some_and(|inner| {
                inner
                    .downcast_ref::<tokio_rustls::rustls::Error>()
                    .is_some()
            }) {
                OpenError::Rejected(format!("TLS with the server for {domain} failed: {e}"))
            } else {
                OpenError::Transient(format!("TLS handshake: {e}"))
            }
        })?;
    Ok(Box::new(tls))
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
