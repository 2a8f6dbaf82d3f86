//! Forward error correction in secure mode (`docs/protocol.md`, "FEC_PARITY"; `docs/fec.md`).
//!
//! The data shards are the session's ordinary sealed datagrams (DATA, KEEPALIVE, DATAGRAM,
//! DISCONNECT), unchanged on the wire. After every `data` of them with consecutive packet
//! numbers the sender seals `parity` FEC_PARITY datagrams, each an ordinary session datagram
//! (own packet number, AEAD, replay window) whose plaintext names the group (the packet number
//! of its first data shard, the counts, the parity's index) and carries the Reed-Solomon parity
//! of the group's shards. A shard is a sealed datagram without the conv and packet number the
//! receiver knows: `length u16 | type | ciphertext and tag`, zero-padded to the group's longest.
//!
//! A receiver that holds `data` of a group's shards rebuilds the missing sealed datagrams and
//! opens each through the normal AEAD and replay-window path, so a forged or corrupt
//! reconstruction is refused like any forged datagram, never applied. Parity is authenticated,
//! so only the peer can make a receiver run Reed-Solomon at all.
//!
//! Memory: a sender with FEC keeps one group (`data` shards of at most the MTU); a receiver
//! keeps nothing until the session's first authentic parity, then a ring of the last
//! [`RING_GROUPS`] groups' shards (at most `RING_GROUPS × MAX_SHARDS` slots of the MTU), made
//! once. The Reed-Solomon code is the raw mode's ([`crate::fec::Codec`]).

use std::sync::Arc;

use thiserror::Error;

use super::wire::{
    SESSION_HEADER_LEN, SESSION_OVERHEAD, TYPE_DATA, TYPE_DATAGRAM, TYPE_DISCONNECT, TYPE_KEEPALIVE,
};
use crate::clock::{diff, Millis};
use crate::fec::{Codec, FecConfig, FecStats, MAX_ENCODE_LATENCY_MS};

/// A parity plaintext's header: first packet number (u64), data shards, parity shards and this
/// parity's index (u8 each).
pub const PARITY_HEADER_LEN: usize = 8 + 1 + 1 + 1;
/// The length field that opens each shard (the sealed datagram's length on the wire).
pub const LENGTH_FIELD: usize = 2;
/// What a shard leaves out of its sealed datagram: the conv and the packet number.
const ELIDED: usize = 4 + 8;
/// How much shorter a shard is than its sealed datagram.
pub const SHARD_SAVING: usize = ELIDED - LENGTH_FIELD;
/// What FEC costs every data datagram of a sender: a parity datagram is the group's longest
/// shard plus the session framing and the parity header, and must fit the MTU, so data
/// datagrams are at most the MTU less this (30 bytes).
pub const OVERHEAD: usize = SESSION_OVERHEAD + PARITY_HEADER_LEN - SHARD_SAVING;
/// The most data + parity shards a secure group has: it bounds the receiver's ring and the
/// decoding matrices cached per shard-count pair.
pub const MAX_SHARDS: usize = 64;
/// Groups a receiver keeps shards of: a group's last parity comes after its data, and
/// reordering may deliver a few of the next group's datagrams first.
pub const RING_GROUPS: usize = 3;
/// Groups with parity a receiver tracks at once.
const GROUPS: usize = RING_GROUPS + 1;
/// Distinct shard-count pairs of peers an endpoint keeps a codec for (a real deployment uses
/// one): each codec caches decoding matrices, so one per session would let a peer pin memory.
pub const PEER_CODECS: usize = 4;
/// The shortest shard: that of a KEEPALIVE, the shortest session datagram.
const MIN_SHARD: usize = SESSION_OVERHEAD - SHARD_SAVING;

/// Why a secure FEC configuration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecureFecConfigError {
    /// A count is zero or the two add up to more than [`MAX_SHARDS`].
    #[error(
        "fec in secure mode needs dataShards >= 1 and parityShards >= 1 with dataShards + parityShards <= 64, got {0} and {1}"
    )]
    Shards(u16, u16),
}

/// Checks shard counts for secure mode.
pub fn validate(config: &FecConfig) -> Result<(), SecureFecConfigError> {
    let (d, p) = (config.data_shards as usize, config.parity_shards as usize);
    if d == 0 || p == 0 || d + p > MAX_SHARDS {
        return Err(SecureFecConfigError::Shards(
            config.data_shards,
            config.parity_shards,
        ));
    }
    Ok(())
}

/// The largest shard a session whose datagrams are at most `mtu` bytes protects: a parity
/// datagram carrying it must itself fit `mtu`.
pub fn max_shard(mtu: usize) -> usize {
    mtu.saturating_sub(SESSION_OVERHEAD + PARITY_HEADER_LEN)
}

/// A parity datagram's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParityHeader {
    /// The packet number of the group's first data shard.
    pub first: u64,
    /// Data shards in the group.
    pub data: u8,
    /// Parity shards in the group.
    pub parity: u8,
    /// This parity's index, below `parity`.
    pub index: u8,
}

impl ParityHeader {
    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; PARITY_HEADER_LEN] {
        let mut out = [0; PARITY_HEADER_LEN];
        out[..8].copy_from_slice(&self.first.to_le_bytes());
        out[8] = self.data;
        out[9] = self.parity;
        out[10] = self.index;
        out
    }
}

/// Splits a decrypted FEC_PARITY plaintext into its header and parity bytes; `None` if it is
/// shorter than the header.
pub fn parse_parity(plain: &[u8]) -> Option<(ParityHeader, &[u8])> {
    (plain.len() >= PARITY_HEADER_LEN).then(|| {
        let mut first = [0; 8];
        first.copy_from_slice(&plain[..8]);
        (
            ParityHeader {
                first: u64::from_le_bytes(first),
                data: plain[8],
                parity: plain[9],
                index: plain[10],
            },
            &plain[PARITY_HEADER_LEN..],
        )
    })
}

/// Writes the shard of `sealed` (a whole session datagram) into `out`; returns its length.
fn write_shard(sealed: &[u8], out: &mut [u8]) -> usize {
    let len = sealed.len() - SHARD_SAVING;
    out[..2].copy_from_slice(&(sealed.len() as u16).to_le_bytes());
    out[2] = sealed[0];
    out[3..len].copy_from_slice(&sealed[SESSION_HEADER_LEN..]);
    len
}

/// The codecs of an endpoint: its own (when it sends FEC) and a few for its peers' counts.
#[derive(Debug, Default)]
pub struct Codecs {
    own: Option<Arc<Codec>>,
    peers: Vec<Arc<Codec>>,
}

impl Codecs {
    /// The codecs of an endpoint that sends FEC with `own` (or none).
    pub fn new(own: Option<FecConfig>) -> Result<Self, crate::fec::FecConfigError> {
        Ok(Self {
            own: own.map(Codec::new).transpose()?.map(Arc::new),
            peers: Vec::new(),
        })
    }

    /// The codec a sender uses.
    pub fn own(&self) -> Option<&Arc<Codec>> {
        self.own.as_ref()
    }

    /// The codec for a peer's counts; `None` if they are invalid, or if [`PEER_CODECS`] other
    /// pairs are in use by live sessions.
    pub fn for_peer(&mut self, data: u8, parity: u8) -> Option<Arc<Codec>> {
        let config = FecConfig {
            data_shards: data.into(),
            parity_shards: parity.into(),
        };
        validate(&config).ok()?;
        let fits = |c: &Arc<Codec>| {
            (c.data_shards(), c.parity_shards()) == (data as usize, parity as usize)
        };
        if let Some(own) = self.own.as_ref().filter(|c| fits(c)) {
            return Some(own.clone());
        }
        if let Some(found) = self.peers.iter().find(|c| fits(c)) {
            return Some(found.clone());
        }
        let codec = Arc::new(Codec::new(config).ok()?);
        if self.peers.len() < PEER_CODECS {
            self.peers.push(codec.clone());
        } else {
            // Only a codec no session holds any more may go.
            let unused = self.peers.iter().position(|c| Arc::strong_count(c) == 1)?;
            self.peers[unused] = codec.clone();
        }
        Some(codec)
    }
}

/// The sending side of one session: collects each group's shards and computes its parity.
#[derive(Debug)]
pub struct Encoder {
    codec: Arc<Codec>,
    /// The longest shard protected (a longer datagram ends the group without parity).
    slot: usize,
    /// Packet number of the group's first data shard.
    first: u64,
    /// Data shards in the group so far.
    count: usize,
    /// Their lengths.
    lens: Vec<u16>,
    /// The longest of them.
    max: usize,
    /// The group's shards, one per `slot` bytes.
    data: Vec<u8>,
    /// The group's parity plaintexts (header and parity bytes), `ready_len` bytes each.
    parity: Vec<u8>,
    ready: usize,
    ready_len: usize,
    last_at: Option<Millis>,
}

impl Encoder {
    /// An encoder for a session whose datagrams are at most `mtu` bytes; its buffers are made
    /// here, once.
    pub fn new(codec: Arc<Codec>, mtu: usize) -> Self {
        let slot = max_shard(mtu);
        let (d, p) = (codec.data_shards(), codec.parity_shards());
        Self {
            slot,
            first: 0,
            count: 0,
            lens: Vec::with_capacity(d),
            max: 0,
            data: vec![0; d * slot],
            parity: vec![0; p * (PARITY_HEADER_LEN + slot)],
            ready: 0,
            ready_len: 0,
            last_at: None,
            codec,
        }
    }

    /// Takes the sealed datagram `sealed` with packet number `pn` into the group; returns the
    /// number of parity plaintexts ([`Encoder::parity_body`]) to seal now, after it.
    pub fn add(&mut self, now: Millis, pn: u64, sealed: &[u8]) -> usize {
        self.ready = 0;
        let gap = self
            .last_at
            .map_or(u32::MAX, |at| diff(now, at).max(0) as u32);
        self.last_at = Some(now);
        let len = sealed.len().saturating_sub(SHARD_SAVING);
        if sealed.len() < SESSION_OVERHEAD || len > self.slot {
            // Not protectable (longer than a parity datagram can cover): the group ends here.
            self.count = 0;
            return 0;
        }
        if self.count > 0 && Some(pn) != self.first.checked_add(self.count as u64) {
            self.count = 0;
        }
        if self.count == 0 {
            self.first = pn;
            self.max = 0;
            self.lens.clear();
        }
        let at = self.count * self.slot;
        write_shard(sealed, &mut self.data[at..at + len]);
        self.lens.push(len as u16);
        self.max = self.max.max(len);
        self.count += 1;
        if self.count < self.codec.data_shards() {
            return 0;
        }
        self.count = 0;
        if gap >= MAX_ENCODE_LATENCY_MS {
            // As kcp-go: parity of a trickle arrives too late to beat a retransmission.
            return 0;
        }
        self.encode()
    }

    fn encode(&mut self) -> usize {
        let (d, p, slot, max) = (
            self.codec.data_shards(),
            self.codec.parity_shards(),
            self.slot,
            self.max,
        );
        for (i, &len) in self.lens.iter().enumerate() {
            self.data[i * slot + len as usize..i * slot + max].fill(0);
        }
        let body = PARITY_HEADER_LEN + max;
        for (k, chunk) in self.parity[..p * body].chunks_exact_mut(body).enumerate() {
            let header = ParityHeader {
                first: self.first,
                data: d as u8,
                parity: p as u8,
                index: k as u8,
            };
            chunk[..PARITY_HEADER_LEN].copy_from_slice(&header.to_bytes());
        }
        // Borrowed views on the stack: nothing allocated per group.
        let mut data_refs: [&[u8]; MAX_SHARDS] = [&[]; MAX_SHARDS];
        for (i, chunk) in self.data.chunks_exact(slot).take(d).enumerate() {
            data_refs[i] = &chunk[..max];
        }
        let mut parity_refs: [&mut [u8]; MAX_SHARDS] = std::array::from_fn(|_| &mut [][..]);
        for (k, chunk) in self.parity[..p * body].chunks_exact_mut(body).enumerate() {
            parity_refs[k] = &mut chunk[PARITY_HEADER_LEN..];
        }
        if !self.codec.encode(&data_refs[..d], &mut parity_refs[..p]) {
            return 0;
        }
        self.ready = p;
        self.ready_len = body;
        p
    }

    /// Parity plaintext `k` of the group [`Encoder::add`] just completed.
    pub fn parity_body(&self, k: usize) -> &[u8] {
        let len = self.ready_len;
        &self.parity[k * len..(k + 1) * len]
    }
}

/// What one ring slot holds.
#[derive(Debug, Clone, Copy, Default)]
struct SlotMeta {
    /// Packet number + 1 of the shard it holds (0: empty).
    pn1: u64,
    len: u16,
    /// A parity shard: of the group starting at `first`, index `index`.
    parity: bool,
    first: u64,
    index: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    first: u64,
    live: bool,
    /// Rebuilt, complete, or given up: nothing more to do.
    done: bool,
}

/// A receiver's memory and what it was sized for ([`Decoder::footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes held ([`Decoder::memory`]).
    pub bytes: usize,
    /// Data shards per group (fixed by the session's first parity).
    pub data: usize,
    /// Parity shards per group.
    pub parity: usize,
    /// The largest session datagram (the agreed MTU) its slots are sized for.
    pub mtu: usize,
}

/// Why an authentic parity datagram is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParityError {
    /// Its header or length cannot be right: counts out of range or not this session's,
    /// an index past the count, a group that does not end before it, parity bytes too short or
    /// too long.
    Malformed,
}

/// The receiving side of one session, made at its first authentic parity.
#[derive(Debug)]
pub struct Decoder {
    codec: Arc<Codec>,
    conv: u32,
    /// The longest shard kept.
    slot: usize,
    slots: usize,
    ring: Vec<u8>,
    meta: Vec<SlotMeta>,
    groups: [Group; GROUPS],
    /// Reused for a recovery: every shard of the group, padded.
    work: Vec<u8>,
    /// The sealed datagrams the last recovery rebuilt, back to back, and where each is.
    rebuilt: Vec<u8>,
    rebuilt_at: Vec<(u32, u32)>,
}

impl Decoder {
    /// A decoder for session `conv`, whose datagrams are at most `mtu` bytes, with the counts
    /// of `codec`; its ring is made here, once.
    pub fn new(codec: Arc<Codec>, conv: u32, mtu: usize) -> Self {
        let slot = max_shard(mtu);
        let (d, total) = (
            codec.data_shards(),
            codec.data_shards() + codec.parity_shards(),
        );
        let slots = RING_GROUPS * total;
        Self {
            codec,
            conv,
            slot,
            slots,
            ring: vec![0; slots * slot],
            meta: vec![SlotMeta::default(); slots],
            groups: [Group::default(); GROUPS],
            // Made here at their largest, so a recovery never allocates.
            work: Vec::with_capacity(total * slot),
            rebuilt: Vec::with_capacity(d * (slot + SHARD_SAVING)),
            rebuilt_at: Vec::with_capacity(d),
        }
    }

    /// Bytes this decoder holds (ring, slot records, reused buffers).
    pub fn memory(&self) -> usize {
        self.ring.capacity()
            + self.meta.capacity() * std::mem::size_of::<SlotMeta>()
            + self.work.capacity()
            + self.rebuilt.capacity()
            + self.rebuilt_at.capacity() * 8
    }

    /// What this decoder holds and was sized for (tests and the fuzz harness check it against
    /// the documented bound).
    pub fn footprint(&self) -> Footprint {
        Footprint {
            bytes: self.memory(),
            data: self.codec.data_shards(),
            parity: self.codec.parity_shards(),
            mtu: self.slot + SESSION_OVERHEAD + PARITY_HEADER_LEN,
        }
    }

    /// Whether this decoder's counts are `data` and `parity`.
    pub fn counts_are(&self, data: u8, parity: u8) -> bool {
        (self.codec.data_shards(), self.codec.parity_shards()) == (data as usize, parity as usize)
    }

    fn data_slot(&self, pn: u64) -> Option<usize> {
        let i = (pn % self.slots as u64) as usize;
        let m = &self.meta[i];
        (m.pn1 == pn.wrapping_add(1) && !m.parity).then_some(i)
    }

    fn store(&mut self, pn: u64, meta: SlotMeta, shard_from: impl FnOnce(&mut [u8]) -> usize) {
        let i = (pn % self.slots as u64) as usize;
        let len = shard_from(&mut self.ring[i * self.slot..(i + 1) * self.slot]);
        self.meta[i] = SlotMeta {
            pn1: pn.wrapping_add(1),
            len: len as u16,
            ..meta
        };
    }

    /// Keeps an authentic, fresh session datagram (not a parity) with packet number `pn`, and
    /// rebuilds its group's missing datagrams if it completes one; true if it did (see
    /// [`Decoder::rebuilt`]).
    pub fn data(&mut self, pn: u64, sealed: &[u8], stats: &mut FecStats) -> bool {
        self.rebuilt.clear();
        self.rebuilt_at.clear();
        if sealed.len() < SESSION_OVERHEAD || sealed.len() - SHARD_SAVING > self.slot {
            return false;
        }
        self.store(pn, SlotMeta::default(), |out| write_shard(sealed, out));
        let d = self.codec.data_shards() as u64;
        let group = self
            .groups
            .iter()
            .position(|g| g.live && !g.done && pn >= g.first && pn - g.first < d);
        match group {
            Some(g) => self.recover(g, stats),
            None => false,
        }
    }

    /// Keeps an authentic, fresh parity datagram with packet number `pn` and rebuilds its
    /// group's missing datagrams if it can; `Ok(true)` if it did (see [`Decoder::rebuilt`]).
    pub fn parity(
        &mut self,
        pn: u64,
        header: &ParityHeader,
        bytes: &[u8],
        stats: &mut FecStats,
    ) -> Result<bool, ParityError> {
        self.rebuilt.clear();
        self.rebuilt_at.clear();
        let (d, p) = (header.data as u64, header.parity as u64);
        let ends_before = header.first.checked_add(d).is_some_and(|end| end <= pn);
        if !self.counts_are(header.data, header.parity)
            || u64::from(header.index) >= p
            || !ends_before
            || pn - header.first >= self.slots as u64
            || bytes.len() < MIN_SHARD
            || bytes.len() > self.slot
        {
            return Err(ParityError::Malformed);
        }
        self.store(
            pn,
            SlotMeta {
                parity: true,
                first: header.first,
                index: header.index,
                ..SlotMeta::default()
            },
            |out| {
                out[..bytes.len()].copy_from_slice(bytes);
                bytes.len()
            },
        );
        let g = match self
            .groups
            .iter()
            .position(|g| g.live && g.first == header.first)
        {
            Some(g) => g,
            None => {
                let g = self.groups.iter().position(|g| !g.live).unwrap_or_else(|| {
                    (0..GROUPS)
                        .min_by_key(|&i| self.groups[i].first)
                        .unwrap_or(0)
                });
                self.retire(g, stats);
                self.groups[g] = Group {
                    first: header.first,
                    live: true,
                    done: false,
                };
                g
            }
        };
        Ok(self.recover(g, stats))
    }

    /// Forgets a group; data it never got rebuilt count as short shards.
    fn retire(&mut self, g: usize, stats: &mut FecStats) {
        let group = self.groups[g];
        if group.live && !group.done {
            let d = self.codec.data_shards() as u64;
            let present = (0..d)
                .filter(|&i| self.data_slot(group.first + i).is_some())
                .count();
            stats.short_shards += present as u64;
        }
        self.groups[g].live = false;
    }

    fn recover(&mut self, g: usize, stats: &mut FecStats) -> bool {
        let (d, p) = (self.codec.data_shards(), self.codec.parity_shards());
        let total = d + p;
        let first = self.groups[g].first;
        // Ring slot of each shard of the group that is here, by position (parity k at d + k).
        let mut at = [usize::MAX; MAX_SHARDS];
        let mut data_present = 0;
        for (i, slot) in at.iter_mut().enumerate().take(d) {
            if let Some(s) = self.data_slot(first + i as u64) {
                *slot = s;
                data_present += 1;
            }
        }
        if data_present == d {
            self.groups[g].done = true;
            return false;
        }
        // Parity comes after the group's data, within the ring.
        let mut parity_len = None;
        let mut parity_present = 0;
        for pn in first + d as u64..first + self.slots as u64 {
            let i = (pn % self.slots as u64) as usize;
            let m = self.meta[i];
            if m.pn1 != pn.wrapping_add(1) || !m.parity || m.first != first {
                continue;
            }
            // Every parity of a group is as long as the group's longest shard.
            if *parity_len.get_or_insert(m.len) != m.len || at[d + m.index as usize] != usize::MAX {
                continue;
            }
            at[d + m.index as usize] = i;
            parity_present += 1;
        }
        if data_present + parity_present < d {
            return false;
        }
        self.groups[g].done = true;
        let max = parity_len.map_or(0, usize::from);
        self.work.clear();
        self.work.resize(total * max, 0);
        for (position, &s) in at.iter().enumerate().take(total) {
            if s == usize::MAX {
                continue;
            }
            let len = self.meta[s].len as usize;
            if len > max {
                // A data shard longer than the group's parity: the peer's parity is wrong.
                stats.errors += 1;
                return false;
            }
            self.work[position * max..position * max + len]
                .copy_from_slice(&self.ring[s * self.slot..s * self.slot + len]);
        }
        let mut shards: [(&mut [u8], bool); MAX_SHARDS] =
            std::array::from_fn(|_| (&mut [][..], false));
        for (i, chunk) in self.work.chunks_exact_mut(max).enumerate() {
            shards[i] = (chunk, at[i] != usize::MAX);
        }
        if !self.codec.reconstruct_data(&mut shards[..total]) {
            stats.errors += 1;
            return false;
        }
        for (i, &s) in at.iter().enumerate().take(d) {
            if s != usize::MAX {
                continue;
            }
            let shard = &self.work[i * max..(i + 1) * max];
            let len = u16::from_le_bytes([shard[0], shard[1]]) as usize;
            let data_type = matches!(
                shard[2],
                TYPE_DATA | TYPE_KEEPALIVE | TYPE_DISCONNECT | TYPE_DATAGRAM
            );
            if len < SESSION_OVERHEAD || len - SHARD_SAVING > max || !data_type {
                // Not a shard a sender wrote (only those four types are data shards): garbage
                // from a parity that does not fit. Never handed on, where a type no session
                // datagram has would be one more drop for the datagram that completed the group.
                stats.errors += 1;
                continue;
            }
            let start = self.rebuilt.len();
            self.rebuilt.push(shard[2]);
            self.rebuilt.extend_from_slice(&self.conv.to_le_bytes());
            self.rebuilt
                .extend_from_slice(&(first + i as u64).to_le_bytes());
            self.rebuilt
                .extend_from_slice(&shard[3..3 + len - SESSION_HEADER_LEN]);
            self.rebuilt_at.push((start as u32, len as u32));
        }
        !self.rebuilt_at.is_empty()
    }

    /// The sealed datagrams the last call rebuilt, each to be opened like a received one.
    pub fn rebuilt(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.rebuilt_at
            .iter()
            .map(|&(at, len)| &self.rebuilt[at as usize..(at + len) as usize])
    }

    /// Takes the rebuilt datagrams out (to open them while the session is borrowed elsewhere);
    /// give them back with [`Decoder::put_back`] so the buffers are reused.
    pub fn take_rebuilt(&mut self) -> (Vec<u8>, Vec<(u32, u32)>) {
        (
            std::mem::take(&mut self.rebuilt),
            std::mem::take(&mut self.rebuilt_at),
        )
    }

    /// Returns the buffers of [`Decoder::take_rebuilt`].
    pub fn put_back(&mut self, buffers: (Vec<u8>, Vec<(u32, u32)>)) {
        (self.rebuilt, self.rebuilt_at) = buffers;
    }
}
