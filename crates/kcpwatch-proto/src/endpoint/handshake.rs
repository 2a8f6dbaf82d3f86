//! Admission: what decides whether a source may open a session, and the secure server's state
//! for a handshake that is not a session yet.

use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{ConfigError, EndpointConfig, Mode};
use crate::events::{ConnectionRef, Direction, UserId};
use crate::limits::{ConnectionCounts, HandshakeRate, LimitHit, Limits, RateHit};
use crate::secure::noise::{HandshakeError, ServerNoise};
use crate::secure::wire::{self, Hello, KcpParams, COOKIE_DATAGRAM_LEN, COOKIE_LEN, KEY_ID_LEN};
use crate::secure::{CookieCheck, CookieJar, StaticKey};
use crate::uid::Uid;

/// Stateless RESETs per second and burst, per source and overall. A restarted server's
/// players each need one; a NAT in front of many players gets them within a few seconds.
const RESET_RATES: Limits = Limits {
    max_per_ip: 0,
    max_per_prefix: 0,
    handshakes_per_ip: 10,
    handshake_burst_per_ip: 20,
    handshakes_global: 1_000,
    handshake_burst_global: 2_000,
};

/// Where a HELLO came from: the address answers go to, the address of ours it reached, and
/// the nonce that names the handshake.
#[derive(Debug, Clone, Copy)]
pub(super) struct HelloFrom {
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) nonce: [u8; 16],
}

/// A client whose HELLO a secure server read and validated: everything needed to write the
/// ACCEPT and open its session.
#[derive(Debug)]
pub(super) struct Validated {
    pub(super) uid: Uid,
    pub(super) conv: u32,
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) nonce: [u8; 16],
    /// The handshake, between reading the HELLO and writing the ACCEPT.
    pub(super) noise: ServerNoise,
    pub(super) key_id: [u8; KEY_ID_LEN],
    /// The client's KCP parameters (its HELLO): usable, and in our stream mode.
    pub(super) client: KcpParams,
    /// The user id the application's answer names ([`super::Endpoint::resolve_auth_as`]).
    pub(super) user: UserId,
}

impl Validated {
    /// Where REJECTs to this client go.
    pub(super) fn reply_to(&self) -> HelloFrom {
        HelloFrom {
            remote: self.remote,
            local: self.local,
            nonce: self.nonce,
        }
    }

    /// The attempt as the records name it (before the application named a user).
    pub(super) fn conn(&self) -> ConnectionRef {
        ConnectionRef {
            uid: self.uid,
            conv: self.conv,
            peer: self.remote,
            local: self.local,
            direction: Direction::Inbound,
            user: UserId::NONE,
        }
    }
}

/// A validated client waiting for the application's answer to its token.
#[derive(Debug)]
struct PendingAuth {
    id: u64,
    /// Extended clock reading after which the answer is too late.
    deadline: u64,
    client: Validated,
}

/// The admission side of the endpoint. It owns what decides whether a source may open a
/// session (the handshake rates, the per-address connection counts, the cookies, the RESET
/// rate) and what a secure server holds for a client before it has a session (the static keys
/// HELLOs name, the authentications waiting for the application, with their ids), because
/// none of it belongs to a session: a source that is refused, or a client that has not been
/// answered, must cost no slot. It also draws the random convs and nonces handshakes carry.
pub(super) struct Handshake {
    limits: Limits,
    cookies: CookieJar,
    /// Session convs and nonces (ChaCha, seeded from `config.secret`).
    rng: StdRng,
    /// First datagrams (raw) and HELLOs without a valid cookie (secure), per source and overall.
    rate: HandshakeRate,
    /// Secure mode, server: the rate of stateless RESETs per source and overall.
    reset_rate: Option<HandshakeRate>,
    /// Live inbound sessions per address and prefix.
    counts: ConnectionCounts,
    pending_auth: Vec<PendingAuth>,
    next_auth_id: u64,
    /// Secure mode, server: the static keys HELLOs name by key id.
    server_keys: Vec<StaticKey>,
    /// Reused for the token a HELLO carries.
    token_buf: Vec<u8>,
    /// Tests only: where handshake ephemerals come from instead of the OS.
    #[cfg(feature = "test-keys")]
    test_ephemerals: Option<StdRng>,
}

impl Handshake {
    /// The admission state of an endpoint with `config`; `derive` makes a key for a label
    /// from the endpoint's secret, `rate_key` keys the rate tables.
    pub(super) fn new(
        config: &EndpointConfig,
        derive: impl Fn(&[u8]) -> [u8; 32],
        rate_key: u64,
    ) -> Result<Self, ConfigError> {
        if config.server_keys.len() > crate::config::MAX_SERVER_KEYS {
            return Err(ConfigError::TooManyServerKeys(config.server_keys.len()));
        }
        let mut server_keys = config.server_keys.clone();
        for (i, key) in server_keys.iter().enumerate() {
            if server_keys[..i].iter().any(|k| k.id() == key.id()) {
                return Err(ConfigError::DuplicateServerKey);
            }
        }
        let server = config.mode == Mode::Secure && config.accept_inbound;
        if server_keys.is_empty() && server {
            // No key configured: one for this endpoint's life, from its secret (the runtime
            // fills that from the OS), so clients must pin its public key each run.
            server_keys.push(StaticKey::from_private(derive(b"kcpwatch v2 static key")));
        }
        Ok(Self {
            limits: config.limits,
            cookies: CookieJar::new(&derive(b"cookies"), config.cookie_slot_ms),
            rng: StdRng::from_seed(derive(b"session rng")),
            rate: HandshakeRate::new(rate_key),
            reset_rate: server.then(|| HandshakeRate::new(rate_key.rotate_left(17))),
            counts: ConnectionCounts::default(),
            pending_auth: Vec::new(),
            next_auth_id: 1,
            server_keys,
            token_buf: Vec::new(),
            #[cfg(feature = "test-keys")]
            test_ephemerals: config.test_ephemeral_seed.map(StdRng::from_seed),
        })
    }

    /// Secure mode, server: the static keys it answers for.
    pub(super) fn server_keys(&self) -> &[StaticKey] {
        &self.server_keys
    }

    /// The server key with `key_id`.
    pub(super) fn server_key(&self, key_id: &[u8; KEY_ID_LEN]) -> Option<&StaticKey> {
        self.server_keys.iter().find(|k| k.id() == *key_id)
    }

    /// Reads a HELLO with the server key it names, decrypting its token into `token`. `None`
    /// if this server holds no such key.
    pub(super) fn read_hello(
        &mut self,
        hello: &Hello<'_>,
        token: &mut Vec<u8>,
    ) -> Option<Result<(ServerNoise, KcpParams), HandshakeError>> {
        let ephemeral = self.test_ephemeral();
        let key = self.server_key(&hello.key_id)?;
        Some(match ephemeral {
            Some(e) => ServerNoise::read_hello_with_ephemeral_for_tests(key, hello, token, &e),
            None => ServerNoise::read_hello(key, hello, token),
        })
    }

    /// A handshake ephemeral private key from the test generator, if a test set one; `None`
    /// (the operating system's random source, through snow) otherwise.
    pub(super) fn test_ephemeral(&mut self) -> Option<[u8; 32]> {
        #[cfg(feature = "test-keys")]
        if let Some(rng) = self.test_ephemerals.as_mut() {
            return Some(rng.gen());
        }
        None
    }

    /// A random conv candidate (the caller checks it is free).
    pub(super) fn random_conv(&mut self) -> u32 {
        self.rng.gen()
    }

    /// A random HELLO nonce.
    pub(super) fn random_nonce(&mut self) -> [u8; 16] {
        self.rng.gen()
    }

    /// Takes a handshake from `ip` out of the handshake rates at `now_extended`.
    pub(super) fn admit_rate(&mut self, ip: IpAddr, now_extended: u64) -> Result<(), RateHit> {
        self.rate.admit(&self.limits, ip, now_extended)
    }

    /// Whether a RESET may go to `ip` now: a server only, within the reset rates.
    pub(super) fn reset_allowed(&mut self, ip: IpAddr, now_extended: u64) -> bool {
        self.reset_rate
            .as_mut()
            .is_some_and(|rate| rate.admit(&RESET_RATES, ip, now_extended).is_ok())
    }

    /// Whether one more inbound session from `ip` fits the per-address limits.
    pub(super) fn counts_admit(&self, ip: IpAddr) -> Result<(), LimitHit> {
        self.counts.admits(&self.limits, ip)
    }

    /// An inbound session from `ip` opened (or moved to it).
    pub(super) fn inbound_opened(&mut self, ip: IpAddr) {
        self.counts.add(ip);
    }

    /// An inbound session from `ip` closed (or moved away from it).
    pub(super) fn inbound_closed(&mut self, ip: IpAddr) {
        self.counts.remove(ip);
    }

    /// Live inbound sessions from `ip`.
    pub(super) fn inbound_from(&self, ip: IpAddr) -> u32 {
        self.counts.for_ip(ip)
    }

    /// Writes into `reply` the COOKIE datagram answering a HELLO from `remote` with `nonce`.
    pub(super) fn cookie_reply(
        &mut self,
        unix_ms: u64,
        remote: SocketAddr,
        nonce: &[u8; 16],
        reply: &mut [u8; COOKIE_DATAGRAM_LEN],
    ) {
        let cookie = self.cookies.mint(unix_ms, remote, nonce);
        wire::write_cookie(reply, nonce, &cookie);
    }

    /// Checks the cookie a HELLO from `remote` with `nonce` brought back.
    pub(super) fn check_cookie(
        &mut self,
        unix_ms: u64,
        remote: SocketAddr,
        nonce: &[u8; 16],
        cookie: &[u8; COOKIE_LEN],
    ) -> CookieCheck {
        self.cookies.check(unix_ms, remote, nonce, cookie)
    }

    /// The buffer HELLO tokens are decrypted into; hand it back with
    /// [`Handshake::put_token_buf`].
    pub(super) fn take_token_buf(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.token_buf)
    }

    /// Returns the token buffer, keeping its allocation for the next HELLO.
    pub(super) fn put_token_buf(&mut self, token: Vec<u8>) {
        self.token_buf = token;
    }

    /// Authentications waiting for the application.
    pub(super) fn pending_count(&self) -> usize {
        self.pending_auth.len()
    }

    /// Whether a client with `nonce` waits for the application.
    pub(super) fn pending_nonce(&self, nonce: &[u8; 16]) -> bool {
        self.pending_auth.iter().any(|p| p.client.nonce == *nonce)
    }

    /// Whether a waiting client was given `conv`.
    pub(super) fn pending_conv(&self, conv: u32) -> bool {
        self.pending_auth.iter().any(|p| p.client.conv == conv)
    }

    /// Holds `client` until the application answers or `deadline` (extended clock) passes;
    /// the id the answer names.
    pub(super) fn await_auth(&mut self, client: Validated, deadline: u64) -> u64 {
        let id = self.next_auth_id;
        self.next_auth_id += 1;
        self.pending_auth.push(PendingAuth {
            id,
            deadline,
            client,
        });
        id
    }

    /// Names the user of waiting request `id`.
    pub(super) fn name_user(&mut self, id: u64, user: UserId) {
        if let Some(pending) = self.pending_auth.iter_mut().find(|p| p.id == id) {
            pending.client.user = user;
        }
    }

    /// Takes waiting request `id` out, to answer it.
    pub(super) fn take_auth(&mut self, id: u64) -> Option<Validated> {
        let index = self.pending_auth.iter().position(|p| p.id == id)?;
        Some(self.pending_auth.swap_remove(index).client)
    }

    /// Takes every waiting request out.
    pub(super) fn take_all_auth(&mut self) -> impl Iterator<Item = Validated> {
        std::mem::take(&mut self.pending_auth)
            .into_iter()
            .map(|p| p.client)
    }

    /// The id of a request whose answer is due at `now_extended` and has not come.
    pub(super) fn overdue_auth(&self, now_extended: u64) -> Option<u64> {
        self.pending_auth
            .iter()
            .find(|p| p.deadline <= now_extended)
            .map(|p| p.id)
    }

    /// The earliest deadline of a waiting request.
    pub(super) fn next_auth_deadline(&self) -> Option<u64> {
        self.pending_auth.iter().map(|p| p.deadline).min()
    }
}
