//! The Noise NK handshake of secure mode version 2 (`docs/protocol.md`), run by snow.
//!
//! The client knows the server's static public key in advance (pinned in the game client, or
//! handed out with the ticket). The HELLO carries the first Noise message (`e, es`) with the
//! application token as its encrypted payload; the ACCEPT carries the second (`e, ee`) with the
//! session's conv. The split gives one key per direction; the ephemeral keys of both sides make
//! the session keys forward secret.

use sha2::{Digest, Sha256};
use snow::params::{DHChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::{Builder, HandshakeState};

use super::wire::{
    self, AcceptPayload, Hello, KcpParams, ACCEPT_LEN, ACCEPT_NOISE_AT, ACCEPT_PAYLOAD_LEN,
    AEAD_TAG_LEN, DH_LEN, HELLO_HEADER_LEN, HELLO_PROLOGUE_LEN, KEY_ID_LEN, MAX_TOKEN_LEN,
    NONCE_LEN, PARAMS_LEN, SUITE_NAME,
};

/// The split of a finished handshake: (client → server key, server → client key).
pub type Split = ([u8; 32], [u8; 32]);

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The Noise message did not decrypt: the wrong static key, an altered prologue (version,
    /// key id, nonce), or corruption.
    #[error("the handshake message did not decrypt")]
    Decrypt,
    /// The decrypted payload is not what this message carries.
    #[error("the handshake payload is malformed")]
    Payload,
    /// The key is not a usable X25519 key, or snow refused to build the handshake.
    #[error("the key is not usable: {0}")]
    Key(&'static str),
}

fn params() -> NoiseParams {
    SUITE_NAME.parse().expect("a protocol name snow knows")
}

/// The key id of a server static public key: the first 4 bytes of its SHA-256.
pub fn key_id(public: &[u8; DH_LEN]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::digest(public);
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// A server static key pair. Its `Debug` never shows the private half.
#[derive(Clone)]
pub struct StaticKey {
    private: [u8; DH_LEN],
    public: [u8; DH_LEN],
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl StaticKey {
    /// The key pair of an X25519 private key (any 32 bytes; X25519 clamps them).
    pub fn from_private(private: [u8; DH_LEN]) -> Self {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow is built with Curve25519");
        dh.set(&private);
        let mut public = [0; DH_LEN];
        public.copy_from_slice(dh.pubkey());
        Self {
            private,
            public,
            id: key_id(&public),
        }
    }

    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Result<Self, HandshakeError> {
        let pair = Builder::new(params())
            .generate_keypair()
            .map_err(|_| HandshakeError::Key("no random source"))?;
        let mut private = [0; DH_LEN];
        private.copy_from_slice(&pair.private);
        Ok(Self::from_private(private))
    }

    /// The public half, which clients pin.
    pub fn public(&self) -> &[u8; DH_LEN] {
        &self.public
    }

    /// The private half (for writing a key file; never logged).
    pub fn private(&self) -> &[u8; DH_LEN] {
        &self.private
    }

    /// The key id HELLOs name it by.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }
}

/// A client's handshake in progress: the HELLO to (re)send and the Noise state that reads the
/// ACCEPT.
pub struct ClientNoise {
    state: Box<HandshakeState>,
}

impl std::fmt::Debug for ClientNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientNoise(..)")
    }
}

impl ClientNoise {
    /// Writes the HELLO for an attempt (zero cookie) into `hello` and returns the state that
    /// reads the answer. `kcp` are the client's KCP parameters (its `mtu` the largest
    /// datagram the client accepts); the ephemeral key comes from the operating system.
    pub fn start(
        server_public: &[u8; DH_LEN],
        nonce: &[u8; NONCE_LEN],
        kcp: KcpParams,
        token: &[u8],
        hello: &mut Vec<u8>,
    ) -> Result<Self, HandshakeError> {
        Self::start_with(server_public, nonce, kcp, token, hello, None)
    }

    /// [`ClientNoise::start`] with a fixed ephemeral private key: for the test vectors of
    /// `docs/protocol.md` and deterministic tests only (a reused or predictable ephemeral key
    /// gives up forward secrecy).
    pub fn start_with_ephemeral_for_tests(
        server_public: &[u8; DH_LEN],
        nonce: &[u8; NONCE_LEN],
        kcp: KcpParams,
        token: &[u8],
        hello: &mut Vec<u8>,
        ephemeral: &[u8; DH_LEN],
    ) -> Result<Self, HandshakeError> {
        Self::start_with(server_public, nonce, kcp, token, hello, Some(ephemeral))
    }

    fn start_with(
        server_public: &[u8; DH_LEN],
        nonce: &[u8; NONCE_LEN],
        kcp: KcpParams,
        token: &[u8],
        hello: &mut Vec<u8>,
        ephemeral: Option<&[u8; DH_LEN]>,
    ) -> Result<Self, HandshakeError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(HandshakeError::Payload);
        }
        // The Noise payload is `params ‖ token`: built once per attempt, so one small copy.
        let mut payload = [0u8; PARAMS_LEN + MAX_TOKEN_LEN];
        payload[..PARAMS_LEN].copy_from_slice(&kcp.to_bytes());
        payload[PARAMS_LEN..PARAMS_LEN + token.len()].copy_from_slice(token);
        let payload = &payload[..PARAMS_LEN + token.len()];
        wire::write_hello_header(hello, &key_id(server_public), nonce, None);
        let prologue = wire::prologue(&hello[..HELLO_PROLOGUE_LEN]);
        let mut builder = Builder::new(params())
            .remote_public_key(server_public)
            .and_then(|b| b.prologue(&prologue))
            .map_err(|_| HandshakeError::Key("snow refused the server key"))?;
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut state = builder
            .build_initiator()
            .map_err(|_| HandshakeError::Key("snow refused the server key"))?;
        hello.resize(HELLO_HEADER_LEN + DH_LEN + payload.len() + AEAD_TAG_LEN, 0);
        state
            .write_message(payload, &mut hello[HELLO_HEADER_LEN..])
            .map_err(|_| HandshakeError::Key("snow could not write the HELLO"))?;
        Ok(Self {
            state: Box::new(state),
        })
    }

    /// Reads the ACCEPT's Noise message: the session's conv, the server's idle timeout and its
    /// KCP parameters (with the agreed MTU), and the split. Fails if the server does not hold the static key we pinned.
    pub fn finish(mut self, noise: &[u8]) -> Result<(AcceptPayload, Split), HandshakeError> {
        let mut payload = [0; ACCEPT_LEN];
        let n = self
            .state
            .read_message(noise, &mut payload)
            .map_err(|_| HandshakeError::Decrypt)?;
        let accept = AcceptPayload::from_bytes(&payload[..n]).ok_or(HandshakeError::Payload)?;
        Ok((accept, self.state.dangerously_get_raw_split()))
    }
}

/// A server's handshake between reading the HELLO and writing the ACCEPT (while the
/// application checks the token).
pub struct ServerNoise {
    state: Box<HandshakeState>,
}

impl std::fmt::Debug for ServerNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerNoise(..)")
    }
}

impl ServerNoise {
    /// Reads a HELLO's Noise message with `key` (the one its key id names): returns the
    /// client's KCP parameters (not checked here: the caller refuses unusable ones), and the token goes to
    /// `token` (cleared first). This is the first Diffie-Hellman the server does for a client,
    /// only after its cookie verified.
    pub fn read_hello(
        key: &StaticKey,
        hello: &Hello<'_>,
        token: &mut Vec<u8>,
    ) -> Result<(Self, KcpParams), HandshakeError> {
        Self::read_with(key, hello, token, None)
    }

    /// [`ServerNoise::read_hello`] with a fixed ephemeral private key for the ACCEPT: for the
    /// test vectors of `docs/protocol.md` and deterministic tests only.
    pub fn read_hello_with_ephemeral_for_tests(
        key: &StaticKey,
        hello: &Hello<'_>,
        token: &mut Vec<u8>,
        ephemeral: &[u8; DH_LEN],
    ) -> Result<(Self, KcpParams), HandshakeError> {
        Self::read_with(key, hello, token, Some(ephemeral))
    }

    fn read_with(
        key: &StaticKey,
        hello: &Hello<'_>,
        token: &mut Vec<u8>,
        ephemeral: Option<&[u8; DH_LEN]>,
    ) -> Result<(Self, KcpParams), HandshakeError> {
        let prologue = wire::prologue(hello.prologue);
        let mut builder = Builder::new(params())
            .local_private_key(&key.private)
            .and_then(|b| b.prologue(&prologue))
            .map_err(|_| HandshakeError::Key("snow refused the static key"))?;
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut state = builder
            .build_responder()
            .map_err(|_| HandshakeError::Key("snow refused the static key"))?;
        token.clear();
        token.resize(hello.noise.len(), 0);
        let n = state
            .read_message(hello.noise, token)
            .map_err(|_| HandshakeError::Decrypt)?;
        if n < PARAMS_LEN {
            return Err(HandshakeError::Payload);
        }
        let mut bytes = [0; PARAMS_LEN];
        bytes.copy_from_slice(&token[..PARAMS_LEN]);
        let kcp = KcpParams::from_bytes(&bytes);
        // Within the buffer's capacity: a move, no allocation.
        token.copy_within(PARAMS_LEN..n, 0);
        token.truncate(n - PARAMS_LEN);
        Ok((
            Self {
                state: Box::new(state),
            },
            kcp,
        ))
    }

    /// Writes the ACCEPT answering `nonce` with `payload`; returns the split.
    pub fn accept(
        mut self,
        nonce: &[u8; NONCE_LEN],
        payload: AcceptPayload,
        out: &mut [u8; ACCEPT_LEN],
    ) -> Result<Split, HandshakeError> {
        wire::write_accept_header(out, nonce);
        let bytes: [u8; ACCEPT_PAYLOAD_LEN] = payload.to_bytes();
        self.state
            .write_message(&bytes, &mut out[ACCEPT_NOISE_AT..])
            .map_err(|_| HandshakeError::Key("snow could not write the ACCEPT"))?;
        Ok(self.state.dangerously_get_raw_split())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtu(mtu: u16) -> KcpParams {
        KcpParams {
            mtu,
            ..KcpParams::default()
        }
    }

    #[test]
    fn a_handshake_agrees_on_the_split_and_carries_token_and_conv() {
        let server = StaticKey::from_private([7; 32]);
        let mut hello = Vec::new();
        let client =
            ClientNoise::start(server.public(), &[1; 16], mtu(1200), b"ticket", &mut hello)
                .unwrap();
        assert!(!hello.windows(6).any(|w| w == b"ticket"));
        let parsed = wire::parse_hello(&hello).unwrap();
        assert_eq!(parsed.key_id, server.id());
        let mut token = Vec::new();
        let (noise, params) = ServerNoise::read_hello(&server, &parsed, &mut token).unwrap();
        assert_eq!((token.as_slice(), params), (&b"ticket"[..], mtu(1200)));
        let mut accept = [0; ACCEPT_LEN];
        let payload = AcceptPayload {
            conv: 9,
            idle_timeout_ms: 30_000,
            params: mtu(1200),
        };
        let split = noise.accept(&[1; 16], payload, &mut accept).unwrap();
        let (_, body) = wire::parse_accept(&accept).unwrap();
        let (got, client_split) = client.finish(body).unwrap();
        assert_eq!((got, client_split), (payload, split));
    }

    #[test]
    fn the_wrong_server_key_fails_both_ways() {
        let server = StaticKey::from_private([7; 32]);
        let impostor = StaticKey::from_private([8; 32]);
        let mut hello = Vec::new();
        let client =
            ClientNoise::start(server.public(), &[1; 16], mtu(1200), b"", &mut hello).unwrap();
        let parsed = wire::parse_hello(&hello).unwrap();
        let mut token = Vec::new();
        assert_eq!(
            ServerNoise::read_hello(&impostor, &parsed, &mut token).unwrap_err(),
            HandshakeError::Decrypt
        );
        // An impostor that answers anyway (a fresh handshake of its own) is refused.
        let mut other = Vec::new();
        let _ =
            ClientNoise::start(impostor.public(), &[1; 16], mtu(1200), b"", &mut other).unwrap();
        let (theirs, _) =
            ServerNoise::read_hello(&impostor, &wire::parse_hello(&other).unwrap(), &mut token)
                .unwrap();
        let mut accept = [0; ACCEPT_LEN];
        let payload = AcceptPayload {
            conv: 9,
            idle_timeout_ms: 1,
            params: mtu(1200),
        };
        theirs.accept(&[1; 16], payload, &mut accept).unwrap();
        assert_eq!(
            client.finish(&accept[ACCEPT_NOISE_AT..]).unwrap_err(),
            HandshakeError::Decrypt
        );
    }

    #[test]
    fn an_altered_prologue_fails_the_hello() {
        let server = StaticKey::from_private([7; 32]);
        let mut hello = Vec::new();
        ClientNoise::start(server.public(), &[1; 16], mtu(1200), b"t", &mut hello).unwrap();
        hello[10] ^= 1; // a nonce byte
        let parsed = wire::parse_hello(&hello).unwrap();
        let mut token = Vec::new();
        assert!(ServerNoise::read_hello(&server, &parsed, &mut token).is_err());
    }
}
