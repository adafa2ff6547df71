//! The LAN hello: a mutual challenge–response that binds a connection to a proven address.
//!
//! On connect each side sends a [`Challenge`] (its chain id, a fresh random nonce, and the
//! frame rate it accepts, so the other side can pace itself below it). On
//! receiving the other side's challenge it answers with a [`Proof`]: its address, its listen
//! port and a signature over [`proof_digest`] = `keccak256(DOMAIN_TAG ‖ chain_id ‖ address ‖
//! listen_port ‖ the other side's nonce)`. A proof therefore only convinces the side that
//! chose the nonce, on this chain, for this address: it cannot be replayed on another
//! connection, another chain, or as anybody else.
//!
//! Frames in order: both sides send their `Challenge` at once. The accepting side answers the
//! dialler's challenge with its `Proof` straight away; the dialler first checks that proof
//! (and that it proves the address it meant to reach) and only then sends its own. So a
//! dialler that reached the wrong node leaves without having proven anything to it. Any other
//! frame, or a proof from the dialler before the acceptor's challenge was answered by the
//! acceptor, is a protocol violation and the connection is dropped.

use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{FrameError, FrameReader, FrameType, write_frame};
use crate::crypto::{PrivateKey, keccak256, recover_digest};
use crate::primitives::{Address, H256, Signature};

/// Domain separation tag of the hello signature.
pub const DOMAIN_TAG: &[u8] = b"smartraiden-lan-hello-v1";
/// Length of a hello nonce.
pub const NONCE_LEN: usize = 32;
/// Encoded length of a [`Challenge`]: chain id (8), nonce, frame rate limit (4).
pub const CHALLENGE_LEN: usize = 8 + NONCE_LEN + 4;
/// Encoded length of a [`Proof`]: address (20), listen port (2), signature (65).
pub const PROOF_LEN: usize = 20 + 2 + 65;
/// Frame cap while the hello runs (type byte + the larger hello payload): a stranger cannot
/// make us buffer more than this before proving who it is.
pub const MAX_HELLO_FRAME: usize = 1 + PROOF_LEN;

/// Why a hello failed; the connection is dropped and nothing else changes.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// Reading a frame failed (closed, oversized, garbage).
    #[error("hello: {0}")]
    Frame(#[from] FrameError),
    /// Writing failed.
    #[error("hello: socket: {0}")]
    Io(#[from] std::io::Error),
    /// A frame other than the expected hello step.
    #[error("hello: expected a {expected:?} frame, got {got:?}")]
    Unexpected {
        /// The step we were waiting for.
        expected: FrameType,
        /// What came instead.
        got: FrameType,
    },
    /// A hello payload of the wrong size.
    #[error("hello: {what} of {len} bytes")]
    BadLength {
        /// Which step.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The peer runs on another chain.
    #[error("hello: peer is on chain {theirs}, we are on chain {ours}")]
    ChainId {
        /// Our chain id.
        ours: u64,
        /// The peer's chain id.
        theirs: u64,
    },
    /// The signature does not recover the claimed address (forged, or made for another
    /// nonce, chain or port).
    #[error("hello: signature does not prove {claimed:?}")]
    BadSignature {
        /// The address the proof claims.
        claimed: Address,
    },
    /// The peer proved our own address (we dialled ourselves, or a copy of our key).
    #[error("hello: peer proved our own address")]
    OwnAddress,
    /// A dialled peer proved another address than the one we meant to reach.
    #[error("hello: expected {expected:?}, peer proved {proven:?}")]
    WrongPeer {
        /// Whom we dialled.
        expected: Address,
        /// Who answered.
        proven: Address,
    },
    /// The hello did not finish in time.
    #[error("hello: not finished within the handshake timeout")]
    Timeout,
}

/// First hello step: not yet who we are, only which chain, a fresh nonce, and how many
/// frames per second we accept (unauthenticated, used only to pace sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The sender's chain id.
    pub chain_id: u64,
    /// Fresh randomness the other side must sign over.
    pub nonce: [u8; NONCE_LEN],
    /// The sender's `max_frames_per_sec`.
    pub max_frames_per_sec: u32,
}

impl Challenge {
    /// A challenge with a fresh nonce from the operating system's generator.
    pub fn fresh(chain_id: u64, max_frames_per_sec: u32) -> Challenge {
        let mut nonce = [0u8; NONCE_LEN];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        Challenge {
            chain_id,
            nonce,
            max_frames_per_sec,
        }
    }

    /// Wire payload: chain id (u64 big-endian) ‖ nonce ‖ frame limit (u32 big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHALLENGE_LEN);
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.max_frames_per_sec.to_be_bytes());
        out
    }

    /// Parses a challenge payload.
    pub fn decode(payload: &[u8]) -> Result<Challenge, HelloError> {
        if payload.len() != CHALLENGE_LEN {
            return Err(HelloError::BadLength {
                what: "challenge",
                len: payload.len(),
            });
        }
        let mut chain = [0u8; 8];
        chain.copy_from_slice(&payload[..8]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&payload[8..8 + NONCE_LEN]);
        let mut rate = [0u8; 4];
        rate.copy_from_slice(&payload[8 + NONCE_LEN..]);
        Ok(Challenge {
            chain_id: u64::from_be_bytes(chain),
            nonce,
            max_frames_per_sec: u32::from_be_bytes(rate),
        })
    }
}

/// The digest a [`Proof`] signs.
pub fn proof_digest(
    chain_id: u64,
    address: &Address,
    listen_port: u16,
    their_nonce: &[u8; NONCE_LEN],
) -> H256 {
    let mut data = Vec::with_capacity(DOMAIN_TAG.len() + 8 + 20 + 2 + NONCE_LEN);
    data.extend_from_slice(DOMAIN_TAG);
    data.extend_from_slice(&chain_id.to_be_bytes());
    data.extend_from_slice(&address.0);
    data.extend_from_slice(&listen_port.to_be_bytes());
    data.extend_from_slice(their_nonce);
    keccak256(&data)
}

/// Second hello step: the sender's address and port, signed over the other side's nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// The address the sender claims.
    pub address: Address,
    /// Where the sender accepts connections (to dial it back).
    pub listen_port: u16,
    /// Signature by `address` over [`proof_digest`].
    pub signature: Signature,
}

impl Proof {
    /// Our proof in answer to `their_nonce`.
    pub fn sign(
        key: &PrivateKey,
        chain_id: u64,
        listen_port: u16,
        their_nonce: &[u8; NONCE_LEN],
    ) -> Proof {
        let address = key.address();
        let digest = proof_digest(chain_id, &address, listen_port, their_nonce);
        Proof {
            address,
            listen_port,
            signature: key.sign_digest(&digest),
        }
    }

    /// The proven address if the signature was made by `self.address` over `our_nonce`.
    pub fn verify(
        &self,
        chain_id: u64,
        our_nonce: &[u8; NONCE_LEN],
    ) -> Result<Address, HelloError> {
        let digest = proof_digest(chain_id, &self.address, self.listen_port, our_nonce);
        match recover_digest(&digest, &self.signature) {
            Ok(signer) if signer == self.address && signer != Address::ZERO => Ok(signer),
            _ => Err(HelloError::BadSignature {
                claimed: self.address,
            }),
        }
    }

    /// Wire payload: address ‖ listen port (u16 big-endian) ‖ signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROOF_LEN);
        out.extend_from_slice(&self.address.0);
        out.extend_from_slice(&self.listen_port.to_be_bytes());
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Parses a proof payload (without checking the signature).
    pub fn decode(payload: &[u8]) -> Result<Proof, HelloError> {
        if payload.len() != PROOF_LEN {
            return Err(HelloError::BadLength {
                what: "proof",
                len: payload.len(),
            });
        }
        let mut address = [0u8; 20];
        address.copy_from_slice(&payload[..20]);
        let mut signature = [0u8; 65];
        signature.copy_from_slice(&payload[22..]);
        Ok(Proof {
            address: Address(address),
            listen_port: u16::from_be_bytes([payload[20], payload[21]]),
            signature: Signature(signature),
        })
    }
}

/// What a completed hello established about the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The address the peer proved.
    pub peer: Address,
    /// The port the peer listens on.
    pub listen_port: u16,
    /// The frames per second the peer accepts (from its challenge).
    pub max_frames_per_sec: u32,
}

/// Which end of the TCP connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialled, hoping to reach this address (the peer's proof must show it).
    Dialler(Address),
    /// We accepted; anyone may prove who they are.
    Acceptor,
}

/// Runs both hello steps on a fresh connection (the caller bounds it with a timeout and
/// creates `reader` with the [`MAX_HELLO_FRAME`] cap).
pub async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    key: &PrivateKey,
    chain_id: u64,
    listen_port: u16,
    max_frames_per_sec: u32,
    role: Role,
) -> Result<Hello, HelloError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ours = Challenge::fresh(chain_id, max_frames_per_sec);
    write_frame(writer, FrameType::Challenge, &ours.encode()).await?;
    let theirs = Challenge::decode(&expect(reader, FrameType::Challenge).await?)?;
    if theirs.chain_id != chain_id {
        return Err(HelloError::ChainId {
            ours: chain_id,
            theirs: theirs.chain_id,
        });
    }
    let our_proof = Proof::sign(key, chain_id, listen_port, &theirs.nonce);
    if role == Role::Acceptor {
        write_frame(writer, FrameType::Proof, &our_proof.encode()).await?;
    }
    let proof = Proof::decode(&expect(reader, FrameType::Proof).await?)?;
    let peer = proof.verify(chain_id, &ours.nonce)?;
    if peer == key.address() {
        return Err(HelloError::OwnAddress);
    }
    if let Role::Dialler(expected) = role {
        if peer != expected {
            return Err(HelloError::WrongPeer {
                expected,
                proven: peer,
            });
        }
        write_frame(writer, FrameType::Proof, &our_proof.encode()).await?;
    }
    Ok(Hello {
        peer,
        listen_port: proof.listen_port,
        max_frames_per_sec: theirs.max_frames_per_sec,
    })
}

/// The payload of the next frame if it has type `expected`.
async fn expect<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    expected: FrameType,
) -> Result<Vec<u8>, HelloError> {
    let frame = reader.next_frame().await?;
    if frame.kind != expected {
        return Err(HelloError::Unexpected {
            expected,
            got: frame.kind,
        });
    }
    Ok(frame.payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PrivateKey {
        PrivateKey::from_bytes([i; 32]).unwrap()
    }

    #[test]
    fn proof_binds_nonce_chain_port_and_address() {
        let nonce = [7u8; NONCE_LEN];
        let p = Proof::sign(&key(1), 5, 4000, &nonce);
        assert_eq!(p.verify(5, &nonce).unwrap(), key(1).address());
        assert!(p.verify(5, &[8u8; NONCE_LEN]).is_err(), "other nonce");
        assert!(p.verify(6, &nonce).is_err(), "other chain");
        let mut port = p;
        port.listen_port = 4001;
        assert!(port.verify(5, &nonce).is_err(), "other port");
        let mut claim = p;
        claim.address = key(2).address();
        assert!(claim.verify(5, &nonce).is_err(), "other address");
        assert_eq!(Proof::decode(&p.encode()).unwrap(), p);
        let c = Challenge::fresh(9, 100);
        assert_eq!(Challenge::decode(&c.encode()).unwrap(), c);
        assert_ne!(Challenge::fresh(9, 100).nonce, c.nonce);
    }

    #[tokio::test]
    async fn both_sides_prove_themselves() {
        let (a, b) = tokio::io::duplex(4096);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, mut bw) = tokio::io::split(b);
        let mut ar = FrameReader::new(ar, 1024);
        let mut br = FrameReader::new(br, 1024);
        let (ka, kb) = (key(1), key(2));
        let (x, y) = tokio::join!(
            handshake(
                &mut ar,
                &mut aw,
                &ka,
                3,
                10,
                100,
                Role::Dialler(kb.address())
            ),
            handshake(&mut br, &mut bw, &kb, 3, 20, 200, Role::Acceptor)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            (x.peer, x.listen_port, x.max_frames_per_sec),
            (kb.address(), 20, 200)
        );
        assert_eq!(
            (y.peer, y.listen_port, y.max_frames_per_sec),
            (ka.address(), 10, 100)
        );
    }

    #[tokio::test]
    async fn a_dialler_that_reached_someone_else_proves_nothing() {
        let (a, b) = tokio::io::duplex(4096);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, mut bw) = tokio::io::split(b);
        let mut ar = FrameReader::new(ar, 1024);
        let mut br = FrameReader::new(br, 1024);
        let (ka, kb) = (key(1), key(2));
        let (x, y) = tokio::join!(
            async move {
                let other = Role::Dialler(key(3).address());
                let r = handshake(&mut ar, &mut aw, &ka, 3, 10, 100, other).await;
                drop((ar, aw)); // the dialler hangs up
                r
            },
            handshake(&mut br, &mut bw, &kb, 3, 20, 200, Role::Acceptor)
        );
        assert!(matches!(x, Err(HelloError::WrongPeer { .. })), "{x:?}");
        assert!(
            matches!(y, Err(HelloError::Frame(_))),
            "acceptor got no proof: {y:?}"
        );
    }
}
