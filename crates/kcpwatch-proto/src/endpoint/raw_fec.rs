//! Raw mode with kcp-go's FEC (see [`crate::fec`]): data shards go to KCP through the guard at
//! once, like any datagram; parity shards and kept data shards rebuild lost datagrams, which
//! take the same guard path before the engine sees them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{ConnectionHandle, Endpoint};
use crate::clock::Millis;
use crate::fec::{Codec, DecodeScratch, Decoder, Packet};
use crate::lifecycle::DropTrigger;

/// An endpoint's FEC state: the codec its sessions share, their decoders and reused buffers.
pub(super) struct FecState {
    pub(super) codec: Rc<Codec>,
    scratch: DecodeScratch,
    /// Each session's decoder, by slot index, with the slot generation it belongs to;
    /// made at a session's first shard, dropped when it closes.
    decoders: Vec<Option<(u32, Box<Decoder>)>>,
    /// Parity shards carry no conv: the session at an address that last got a data shard
    /// (kcp-go sends a group's parity right after its last data shard).
    route: HashMap<SocketAddr, ConnectionHandle>,
}

impl FecState {
    pub(super) fn new(codec: Codec) -> Self {
        Self {
            codec: Rc::new(codec),
            scratch: DecodeScratch::default(),
            decoders: Vec::new(),
            route: HashMap::new(),
        }
    }

    fn decoder(&mut self, handle: ConnectionHandle) -> &mut Decoder {
        let index = handle.index() as usize;
        if self.decoders.len() <= index {
            self.decoders.resize_with(index + 1, || None);
        }
        let entry = &mut self.decoders[index];
        if entry.as_ref().map(|e| e.0) != Some(handle.generation()) {
            *entry = Some((
                handle.generation(),
                Box::new(Decoder::new(self.codec.clone())),
            ));
        }
        &mut entry.as_mut().expect("just set").1
    }

    /// A session closed: its decoder and route go.
    pub(super) fn forget(&mut self, handle: ConnectionHandle, remote: SocketAddr) {
        if let Some(entry) = self.decoders.get_mut(handle.index() as usize) {
            if entry.as_ref().map(|e| e.0) == Some(handle.generation()) {
                *entry = None;
            }
        }
        if self.route.get(&remote) == Some(&handle) {
            self.route.remove(&remote);
        }
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
        let (seqid, parity, shard, handle) = match crate::fec::parse(datagram) {
            Packet::Plain => return false,
            Packet::Data { seqid, shard, kcp } => {
                // Exactly as if the KCP datagram had come alone; only a datagram the guard
                // accepted is kept for rebuilding others.
                let Some(handle) = self.raw_input(now, remote, local, kcp) else {
                    return true;
                };
                (seqid, false, shard, handle)
            }
            Packet::Parity { seqid, shard } => {
                let Some(handle) = self
                    .fec
                    .as_ref()
                    .and_then(|f| f.route.get(&remote).copied())
                    .filter(|&h| self.session(h).is_some())
                else {
                    self.drop_trigger(
                        remote,
                        local,
                        None,
                        None,
                        DropTrigger::UnknownConnection,
                        "fec_parity_no_session",
                        datagram.len(),
                    );
                    return true;
                };
                (seqid, true, shard, handle)
            }
            Packet::Oob => {
                self.drop_trigger(
                    remote,
                    local,
                    None,
                    None,
                    DropTrigger::BadCmd,
                    "fec_oob_unsupported",
                    datagram.len(),
                );
                return true;
            }
            Packet::Malformed => {
                self.drop_trigger(
                    remote,
                    local,
                    None,
                    None,
                    DropTrigger::BadLength,
                    "fec_bad_size",
                    datagram.len(),
                );
                return true;
            }
        };
        let Some(fec) = self.fec.as_mut() else {
            return true;
        };
        if parity {
            self.stats.fec.parity_shards += 1;
        } else {
            fec.route.insert(remote, handle);
        }
        let mut scratch = std::mem::take(&mut fec.scratch);
        fec.decoder(handle)
            .decode(seqid, parity, shard, &mut scratch, &mut self.stats.fec);
        if scratch.recovered_count() > 0 {
            self.feed_recovered(now, handle, &scratch);
        }
        if let Some(fec) = self.fec.as_mut() {
            fec.scratch = scratch;
        }
        true
    }

    /// Rebuilt datagrams go through the session's guard like received ones: one the guard
    /// refuses (a forged or garbled shard rebuilds garbage) is counted as `FECErrs`, dropped
    /// with the guard's trigger and rule, and never reaches the engine.
    fn feed_recovered(&mut self, now: Millis, handle: ConnectionHandle, scratch: &DecodeScratch) {
        for datagram in scratch.recovered() {
            let Some((remote, local, conv)) =
                self.session(handle).map(|s| (s.remote, s.local, s.conv))
            else {
                return;
            };
            match self.with_session(handle, |s| s.input(now, datagram)) {
                Some(Ok(engine_error)) => {
                    self.stats.fec.recovered += 1;
                    if let Some(error) = engine_error {
                        self.engine_error(handle, error);
                    }
                    self.after_activity(handle, now);
                }
                Some(Err(violation)) => {
                    self.stats.fec.errors += 1;
                    self.stats.fec.rebuilt_refused += 1;
                    let uid = self.session(handle).map(|s| s.uid);
                    self.drop_datagram(remote, local, Some(conv), uid, violation, datagram.len());
                }
                None => return,
            }
        }
    }
}
