//! Raw mode with kcp-go's FEC (see [`crate::fec`]): data shards go to KCP through the guard at
//! once, like any datagram; parity shards and kept data shards rebuild lost datagrams, which
//! take the same guard path before the engine sees them.
//!
//! FEC sits below KCP, per UDP peer, as in kcp-go (one session per socket pair there): every
//! session to a remote address shares one encoder, so the shards this endpoint sends there form
//! one seqid sequence, and the shards from a remote address (to one of our addresses) go to one
//! decoder. A parity shard names no conv, so it must never meet data shards of another seqid
//! sequence: with an encoder per session, several connections on one socket interleaved their
//! groups and parity rebuilt one connection's bytes from another's datagrams. A rebuilt
//! datagram is routed by its own conv, never assumed to belong to a session.

use super::Dropped;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::Endpoint;
use crate::clock::Millis;
use crate::events::DropRule;
use crate::fec::{Codec, DecodeScratch, Decoder, Encoder, Packet};
use crate::lifecycle::DropTrigger;

/// The FEC state of one remote address; it lives while a session to it does.
struct Peer {
    /// Shared by every session to this remote: one seqid sequence on the wire.
    encoder: Arc<Mutex<Encoder>>,
    /// One decoder per our address the remote sends to (each is a separate sequence at a
    /// kcpwatch peer); made at the first shard. Nearly always one.
    decoders: Vec<(SocketAddr, Box<Decoder>)>,
    /// Live sessions to this remote.
    sessions: u32,
}

/// An endpoint's FEC state: the codec, the per-remote encoders and decoders, reused buffers.
pub(super) struct FecState {
    codec: Arc<Codec>,
    scratch: DecodeScratch,
    peers: HashMap<SocketAddr, Peer>,
}

impl FecState {
    pub(super) fn new(codec: Codec) -> Self {
        Self {
            codec: Arc::new(codec),
            scratch: DecodeScratch::default(),
            peers: HashMap::new(),
        }
    }

    /// A session to `remote` opened: the encoder it writes through, shared with every other
    /// session to `remote`.
    pub(super) fn attach(&mut self, remote: SocketAddr) -> Arc<Mutex<Encoder>> {
        let codec = &self.codec;
        let peer = self.peers.entry(remote).or_insert_with(|| Peer {
            encoder: Arc::new(Mutex::new(Encoder::new(codec.clone()))),
            decoders: Vec::new(),
            sessions: 0,
        });
        peer.sessions += 1;
        peer.encoder.clone()
    }

    /// A session to `remote` closed: the remote's encoder and decoders go with its last one.
    pub(super) fn forget(&mut self, remote: SocketAddr) {
        if let Some(peer) = self.peers.get_mut(&remote) {
            peer.sessions = peer.sessions.saturating_sub(1);
            if peer.sessions == 0 {
                self.peers.remove(&remote);
            }
        }
    }

    /// The decoder for shards from `remote` to our `local`; `None` with no session to `remote`.
    fn decoder(&mut self, remote: SocketAddr, local: SocketAddr) -> Option<&mut Decoder> {
        let peer = self.peers.get_mut(&remote)?;
        let index = match peer.decoders.iter().position(|d| d.0 == local) {
            Some(index) => index,
            None => {
                peer.decoders
                    .push((local, Box::new(Decoder::new(self.codec.clone()))));
                peer.decoders.len() - 1
            }
        };
        Some(&mut peer.decoders[index].1)
    }
}

impl Endpoint {
    /// Raw mode with FEC: handles `datagram` if it carries an FEC header; false for a plain
    /// KCP datagram (kcp-go accepts both, and so does kcpwatch).
    pub(super) fn handle_fec_datagram(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let (seqid, parity, shard) = match crate::fec::parse(datagram) {
            Packet::Plain => return false,
            Packet::Data { seqid, shard, kcp } => {
                // Exactly as if the KCP datagram had come alone; only a datagram the guard
                // accepted is kept for rebuilding others.
                if self.raw_input(now, remote, local, kcp).is_none() {
                    return true;
                }
                (seqid, false, shard)
            }
            Packet::Parity { seqid, shard } => {
                if !self
                    .fec
                    .as_ref()
                    .is_some_and(|f| f.peers.contains_key(&remote))
                {
                    self.drop_trigger(
                        Dropped::new(remote, local, datagram.len()),
                        DropTrigger::UnknownConnection,
                        DropRule::FecParityNoSession,
                    );
                    return true;
                }
                (seqid, true, shard)
            }
            Packet::Oob => {
                self.drop_trigger(
                    Dropped::new(remote, local, datagram.len()),
                    DropTrigger::BadCmd,
                    DropRule::FecOobUnsupported,
                );
                return true;
            }
            Packet::Malformed => {
                self.drop_trigger(
                    Dropped::new(remote, local, datagram.len()),
                    DropTrigger::BadLength,
                    DropRule::FecBadSize,
                );
                return true;
            }
        };
        let Some(fec) = self.fec.as_mut() else {
            return true;
        };
        let mut scratch = std::mem::take(&mut fec.scratch);
        // The data shard's session may have closed on it (and with it the remote's state).
        let decoded = match fec.decoder(remote, local) {
            Some(decoder) => {
                if parity {
                    self.reporter.stats.fec.parity_shards += 1;
                }
                decoder.decode(
                    seqid,
                    parity,
                    shard,
                    &mut scratch,
                    &mut self.reporter.stats.fec,
                );
                true
            }
            None => false,
        };
        if decoded && scratch.recovered_count() > 0 {
            self.feed_recovered(now, remote, local, &scratch);
        }
        if let Some(fec) = self.fec.as_mut() {
            fec.scratch = scratch;
        }
        true
    }

    /// Rebuilt datagrams go, by their own conv, the way a received datagram goes: to the
    /// session of `remote` with that conv (or one it may open) through its guard. One the guard
    /// or the endpoint refuses (a forged or garbled shard rebuilds garbage) is counted as
    /// `FECErrs`, dropped with the trigger and rule a received one would get, and never reaches
    /// an engine.
    fn feed_recovered(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        scratch: &DecodeScratch,
    ) {
        for datagram in scratch.recovered() {
            let dropped = self.reporter.stats.dropped_total();
            if self
                .raw_deliver(now, remote, local, datagram, true)
                .is_none()
                && self.reporter.stats.dropped_total() > dropped
            {
                self.reporter.stats.fec.errors += 1;
                self.reporter.stats.fec.rebuilt_refused += 1;
            }
        }
    }
}
