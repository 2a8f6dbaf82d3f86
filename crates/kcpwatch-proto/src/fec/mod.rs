//! Forward error correction, wire-compatible with kcp-go's FEC layer (v5.7.5 `fec.go`), raw
//! mode only.
//!
//! Every datagram a session writes becomes a *data shard*: kcp-go's 6-byte FEC header (seqid
//! u32 little-endian, type u16 `0xf1`), a u16 size that counts itself, then the KCP datagram.
//! After `data_shards` of them the encoder sends `parity_shards` *parity shards* (type `0xf2`)
//! computed with Reed-Solomon over the data shards from their size field on, each zero-padded
//! to the longest in the group. Seqids count every shard, data and parity, modulo the largest
//! multiple of `data + parity` below 2^32, so `seqid / (data + parity)` names the group and
//! `seqid % (data + parity)` the position in it. Like kcp-go, the encoder never flushes a
//! partial group, and skips the parity of a group whose last data shard came 500 ms or more
//! after the one before (its seqids are still used up).
//!
//! The receiver hands data shards to KCP at once (through the guard) and keeps them, with parity
//! shards, per group; once a group holds `data_shards` shards it rebuilds the missing data
//! shards. At most [`MAX_SETS`] groups are kept per decoder: a group more than
//! [`MAX_SHARD_SETS`] groups behind the newest is dropped (kcp-go's `maxShardSets`), so the
//! memory is bounded by `MAX_SETS × (data + parity) × MAX_SHARD_LEN` per decoder.
//!
//! As in kcp-go, FEC sits below KCP per UDP peer: an endpoint has one [`Encoder`] per remote
//! address, shared by every session to it, and one [`Decoder`] per remote (and local) address;
//! a parity shard names no session, so two seqid sequences must never meet in one decoder.
//!
//! The Reed-Solomon code is `reed-solomon-erasure`'s GF(2^8) codec, which builds the same
//! systematic Vandermonde matrix over the same field as klauspost/reedsolomon (kcp-go's codec);
//! `tests/fec_vectors.rs` checks it against vectors klauspost's encoder produced.

use std::sync::Arc;

use reed_solomon_erasure::galois_8::ReedSolomon;
use thiserror::Error;

use crate::clock::Millis;

/// kcp-go's FEC header: seqid (4 bytes) and type (2 bytes).
pub const HEADER_SIZE: usize = 6;
/// The FEC header and a data shard's size field: what FEC adds to every KCP datagram.
pub const OVERHEAD: usize = HEADER_SIZE + 2;
/// Type of a data shard.
pub const TYPE_DATA: u16 = 0xf1;
/// Type of a parity shard.
pub const TYPE_PARITY: u16 = 0xf2;
/// Type of kcp-go's out-of-band datagrams (unreliable, outside FEC and KCP; not supported).
pub const TYPE_OOB: u16 = 0xf3;
/// kcp-go drops groups more than this many groups behind the newest (`maxShardSets`).
pub const MAX_SHARD_SETS: u32 = 3;
/// Groups a session keeps at once: the newest and the [`MAX_SHARD_SETS`] before it.
pub const MAX_SETS: usize = MAX_SHARD_SETS as usize + 1;
/// The longest shard kept (kcp-go's `maxPacketSize`: no kcp-go peer sends a longer one).
pub const MAX_SHARD_LEN: usize = 1500;
/// The encoder skips a group's parity when its last data shard came this long after the one
/// before (kcp-go's `maxFECEncodeLatency`): parity for data that trickles in arrives too late
/// to beat a retransmission.
pub const MAX_ENCODE_LATENCY_MS: u32 = 500;
/// kcp-go's limit on data + parity shards (GF(2^8) has 256 elements).
pub const MAX_TOTAL_SHARDS: usize = 256;

/// FEC shard counts, the same on both sides (kcp-go's `DialWithOptions(addr, block,
/// dataShards, parityShards)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecConfig {
    /// Data shards per group (1 or more).
    pub data_shards: u16,
    /// Parity shards per group (1 or more); data + parity is at most 256.
    pub parity_shards: u16,
}

/// Why an FEC configuration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FecConfigError {
    /// A shard count is zero or the two add up to more than 256.
    #[error(
        "fec needs dataShards >= 1 and parityShards >= 1 with dataShards + parityShards <= 256, got {0} and {1}"
    )]
    Shards(u16, u16),
}

impl FecConfig {
    /// Checks the shard counts against kcp-go's limits.
    pub fn validate(&self) -> Result<(), FecConfigError> {
        let (d, p) = (self.data_shards as usize, self.parity_shards as usize);
        if d == 0 || p == 0 || d + p > MAX_TOTAL_SHARDS {
            return Err(FecConfigError::Shards(self.data_shards, self.parity_shards));
        }
        Ok(())
    }
}

/// FEC counters, named after kcp-go's SNMP fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FecStats {
    /// FEC is configured (the counters below mean something).
    pub enabled: bool,
    /// Datagrams rebuilt from parity and used (`FECRecovered`): in raw mode those the guard
    /// accepted and KCP received; in secure mode those that authenticated (AEAD and replay
    /// window), which then count once more as accepted or dropped like any datagram.
    pub recovered: u64,
    /// Recoveries that failed or gave a datagram the guard refused, and shards whose type does
    /// not fit their position (the peer's shard counts differ) (`FECErrs`).
    pub errors: u64,
    /// Rebuilt datagrams the guard refused (part of `errors`; each is also a dropped datagram
    /// with the guard's trigger, so the drop counters include them).
    pub rebuilt_refused: u64,
    /// Parity shards received for a session (`FECParityShards`).
    pub parity_shards: u64,
    /// Data shards of groups dropped before enough shards came to rebuild what was missing
    /// (`FECShortShards`, older kcp-go releases' name for data shards that expired unrecovered).
    pub short_shards: u64,
}

impl FecStats {
    /// Adds another set of counters.
    pub fn add(&mut self, other: &FecStats) {
        self.enabled |= other.enabled;
        self.recovered += other.recovered;
        self.errors += other.errors;
        self.rebuilt_refused += other.rebuilt_refused;
        self.parity_shards += other.parity_shards;
        self.short_shards += other.short_shards;
    }
}

/// What the FEC header of a datagram says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// No FEC header: a plain KCP datagram (its bytes 4..6 are a KCP cmd and frg, which never
    /// read as an FEC type).
    Plain,
    /// A data shard: `shard` is what the decoder keeps (size field and KCP datagram), `kcp` the
    /// KCP datagram.
    Data {
        /// Its seqid.
        seqid: u32,
        /// From the size field on.
        shard: &'a [u8],
        /// The KCP datagram.
        kcp: &'a [u8],
    },
    /// A parity shard.
    Parity {
        /// Its seqid.
        seqid: u32,
        /// The parity bytes.
        shard: &'a [u8],
    },
    /// kcp-go's out-of-band datagram (not supported: dropped).
    Oob,
    /// An FEC type with a length that cannot be right: too short for its header, a data shard
    /// whose size field does not match its length, or a shard longer than any kcp-go sends.
    Malformed,
}

/// Reads the FEC header of `datagram`.
pub fn parse(datagram: &[u8]) -> Packet<'_> {
    if datagram.len() < HEADER_SIZE {
        return Packet::Plain;
    }
    let flag = u16::from_le_bytes([datagram[4], datagram[5]]);
    let seqid = u32::from_le_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]);
    match flag {
        TYPE_DATA => {
            // kcp-go always writes size = the datagram's length past the header; anything else
            // was not written by an FEC encoder.
            if datagram.len() < OVERHEAD || datagram.len() > MAX_SHARD_LEN {
                return Packet::Malformed;
            }
            let size = u16::from_le_bytes([datagram[6], datagram[7]]) as usize;
            if size != datagram.len() - HEADER_SIZE {
                return Packet::Malformed;
            }
            Packet::Data {
                seqid,
                shard: &datagram[HEADER_SIZE..],
                kcp: &datagram[OVERHEAD..],
            }
        }
        TYPE_PARITY => {
            if datagram.len() < OVERHEAD || datagram.len() > MAX_SHARD_LEN {
                return Packet::Malformed;
            }
            Packet::Parity {
                seqid,
                shard: &datagram[HEADER_SIZE..],
            }
        }
        TYPE_OOB => Packet::Oob,
        _ => Packet::Plain,
    }
}

/// Writes a shard header.
pub fn write_header(out: &mut Vec<u8>, seqid: u32, flag: u16) {
    out.extend_from_slice(&seqid.to_le_bytes());
    out.extend_from_slice(&flag.to_le_bytes());
}

/// The Reed-Solomon codec and shard arithmetic of one configuration, shared by every session
/// of an endpoint.
pub struct Codec {
    rs: ReedSolomon,
    data: usize,
    parity: usize,
    /// data + parity.
    total: u32,
    /// Seqids run modulo this: the largest multiple of `total` that fits a u32 (kcp-go's paws).
    paws: u32,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("data", &self.data)
            .field("parity", &self.parity)
            .finish()
    }
}

impl Codec {
    /// A codec for `config`.
    pub fn new(config: FecConfig) -> Result<Self, FecConfigError> {
        config.validate()?;
        let (data, parity) = (config.data_shards as usize, config.parity_shards as usize);
        let rs = ReedSolomon::new(data, parity)
            .map_err(|_| FecConfigError::Shards(config.data_shards, config.parity_shards))?;
        let total = (data + parity) as u32;
        Ok(Self {
            rs,
            data,
            parity,
            total,
            paws: u32::MAX / total * total,
        })
    }

    /// Data shards per group.
    pub fn data_shards(&self) -> usize {
        self.data
    }

    /// Parity shards per group.
    pub fn parity_shards(&self) -> usize {
        self.parity
    }

    /// Computes `parity` from `data`, every shard the same length (klauspost's `Encode`).
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> bool {
        self.rs.encode_sep(data, parity).is_ok()
    }

    /// Rebuilds the data shards marked absent from the others (klauspost's `ReconstructData`),
    /// every shard the same length; false if too few are present.
    pub fn reconstruct_data(&self, shards: &mut [(&mut [u8], bool)]) -> bool {
        self.rs.reconstruct_data(shards).is_ok()
    }
}

/// The sending side of one UDP peer (shared by its sessions): numbers data shards and emits
/// parity after each full group.
#[derive(Debug)]
pub struct Encoder {
    codec: Arc<Codec>,
    next: u32,
    /// The group's data shards so far, from their size field on, back to back.
    pending: Vec<u8>,
    /// Their lengths.
    lens: Vec<u16>,
    /// When the previous data shard was written.
    last_at: Option<Millis>,
}

/// Where [`Encoder::encode`] put the datagrams it wrote.
pub trait ShardSink {
    /// A datagram of `len` bytes was appended at `start`.
    fn written(&mut self, start: usize, len: usize);
}

impl Encoder {
    /// An encoder whose first seqid is 0 (as kcp-go's).
    pub fn new(codec: Arc<Codec>) -> Self {
        let data = codec.data;
        Self {
            codec,
            next: 0,
            pending: Vec::new(),
            lens: Vec::with_capacity(data),
            last_at: None,
        }
    }

    /// Appends the data shard of the KCP datagram `kcp` to `out` and, when it completes a
    /// group, the group's parity shards; `scratch` is reused for the padded data shards.
    /// Returns the number of parity shards written.
    pub fn encode(
        &mut self,
        now: Millis,
        kcp: &[u8],
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        sink: &mut impl ShardSink,
    ) -> usize {
        let size = (kcp.len() + 2) as u16;
        let start = out.len();
        write_header(out, self.next, TYPE_DATA);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(kcp);
        sink.written(start, out.len() - start);
        self.next = (self.next + 1) % self.codec.paws;
        self.pending.extend_from_slice(&size.to_le_bytes());
        self.pending.extend_from_slice(kcp);
        self.lens.push(size);
        let gap = self
            .last_at
            .map_or(u32::MAX, |at| crate::clock::diff(now, at).max(0) as u32);
        self.last_at = Some(now);
        if self.lens.len() < self.codec.data {
            return 0;
        }
        let max = self.lens.iter().copied().max().unwrap_or(0) as usize;
        let parity = self.codec.parity;
        let written = if gap >= MAX_ENCODE_LATENCY_MS {
            self.next = ((self.next as u64 + parity as u64) % self.codec.paws as u64) as u32;
            0
        } else {
            self.parity(max, scratch, out, sink)
        };
        self.pending.clear();
        self.lens.clear();
        written
    }

    fn parity(
        &mut self,
        max: usize,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        sink: &mut impl ShardSink,
    ) -> usize {
        let (data, parity) = (self.codec.data, self.codec.parity);
        scratch.clear();
        scratch.resize(data * max, 0);
        let mut at = 0;
        for (i, &len) in self.lens.iter().enumerate() {
            let len = len as usize;
            scratch[i * max..i * max + len].copy_from_slice(&self.pending[at..at + len]);
            at += len;
        }
        let first = out.len();
        for _ in 0..parity {
            write_header(out, self.next, TYPE_PARITY);
            out.resize(out.len() + max, 0);
            self.next = (self.next + 1) % self.codec.paws;
        }
        // Borrowed views on the stack: no allocation per group.
        let mut data_refs: [&[u8]; MAX_TOTAL_SHARDS] = [&[]; MAX_TOTAL_SHARDS];
        for (i, shard) in scratch.chunks_exact(max).enumerate() {
            data_refs[i] = shard;
        }
        let mut parity_refs: [&mut [u8]; MAX_TOTAL_SHARDS] = std::array::from_fn(|_| &mut [][..]);
        for (k, datagram) in out[first..].chunks_exact_mut(HEADER_SIZE + max).enumerate() {
            parity_refs[k] = &mut datagram[HEADER_SIZE..];
        }
        if !self
            .codec
            .encode(&data_refs[..data], &mut parity_refs[..parity])
        {
            // Cannot happen with equal-length shards; the seqids stay used, as in kcp-go.
            out.truncate(first);
            return 0;
        }
        for k in 0..parity {
            sink.written(first + k * (HEADER_SIZE + max), HEADER_SIZE + max);
        }
        parity
    }
}

/// One group's shards as they came.
#[derive(Debug, Default)]
struct Set {
    /// Group id (seqid / total); meaningful while `live`.
    id: u32,
    live: bool,
    /// Recovered, or every data shard came: later shards of it are ignored.
    done: bool,
    /// Which positions came.
    present: [u64; 4],
    count: usize,
    data_count: usize,
    /// (position, start in `bytes`, length) per shard.
    shards: Vec<(u16, u32, u16)>,
    bytes: Vec<u8>,
}

impl Set {
    fn reset(&mut self, id: u32) {
        self.id = id;
        self.live = true;
        self.done = false;
        self.present = [0; 4];
        self.count = 0;
        self.data_count = 0;
        self.shards.clear();
        self.bytes.clear();
    }

    fn has(&self, position: usize) -> bool {
        self.present[position / 64] & (1 << (position % 64)) != 0
    }
}

/// Reused buffers for recoveries, shared by an endpoint's sessions.
#[derive(Debug, Default)]
pub struct DecodeScratch {
    bytes: Vec<u8>,
    /// (start, length) in `bytes` of each recovered KCP datagram of the last decode.
    recovered: Vec<(u32, u32)>,
}

impl DecodeScratch {
    /// The KCP datagrams the last [`Decoder::decode`] rebuilt (each still to be checked by the
    /// guard: a forged parity shard rebuilds garbage).
    pub fn recovered(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.recovered
            .iter()
            .map(|&(start, len)| &self.bytes[start as usize..(start + len) as usize])
    }

    /// How many [`DecodeScratch::recovered`] holds.
    pub fn recovered_count(&self) -> usize {
        self.recovered.len()
    }
}

/// The receiving side of one UDP peer: every shard it sends, whatever session it carries.
#[derive(Debug)]
pub struct Decoder {
    codec: Arc<Codec>,
    sets: [Set; MAX_SETS],
    /// The newest group seen (kcp-go's newestShardId, which also starts at 0).
    newest: u32,
    /// Shards in a row from groups too far behind to keep.
    stale: u32,
}

impl Decoder {
    /// A decoder with no groups.
    pub fn new(codec: Arc<Codec>) -> Self {
        Self {
            codec,
            sets: Default::default(),
            newest: 0,
            stale: 0,
        }
    }

    /// Keeps a shard (`parity` or data; for data, from its size field on) and rebuilds its
    /// group's missing data shards when it can; what was rebuilt is in
    /// [`DecodeScratch::recovered`], size fields checked and stripped.
    pub fn decode(
        &mut self,
        seqid: u32,
        parity: bool,
        shard: &[u8],
        scratch: &mut DecodeScratch,
        stats: &mut FecStats,
    ) {
        scratch.recovered.clear();
        let total = self.codec.total;
        if seqid >= self.codec.paws || shard.is_empty() || shard.len() > MAX_SHARD_LEN {
            return;
        }
        let position = (seqid % total) as usize;
        if (position < self.codec.data) == parity {
            // kcp-go would start auto-tuning here; kcpwatch expects the configured counts.
            stats.errors += 1;
            return;
        }
        let id = seqid / total;
        // Groups compare on the wrapping seqid line, as kcp-go's _itimediff(id*total, ...).
        let behind = |newest: u32, id: u32| {
            newest
                .wrapping_mul(total)
                .wrapping_sub(id.wrapping_mul(total)) as i32
        };
        let index = match self.sets.iter().position(|s| s.live && s.id == id) {
            Some(index) => index,
            None => {
                if behind(self.newest, id) > (MAX_SHARD_SETS * total) as i32 {
                    // kcp-go would open it and drop it on the same call. A decoder serves a
                    // remote address for as long as any session to it lives, so a peer that
                    // started over there (a new kcp-go session, seqids from 0) sends only such
                    // shards: after more than a window of them in a row, follow it.
                    self.stale += 1;
                    if self.stale <= MAX_SETS as u32 * total {
                        return;
                    }
                    for i in 0..MAX_SETS {
                        if self.sets[i].live {
                            self.retire(i, stats);
                        }
                    }
                }
                if behind(self.newest, id) > (MAX_SHARD_SETS * total) as i32 {
                    self.newest = id;
                }
                if behind(self.newest, id) < 0 {
                    self.newest = id;
                    self.expire(stats);
                }
                let index = match self.sets.iter().position(|s| !s.live) {
                    Some(index) => index,
                    None => {
                        // Only when ids sit beyond the wrapping window's edges; make room
                        // from the oldest.
                        let oldest = (0..MAX_SETS)
                            .max_by_key(|&i| behind(self.newest, self.sets[i].id))
                            .unwrap_or(0);
                        self.retire(oldest, stats);
                        oldest
                    }
                };
                self.sets[index].reset(id);
                index
            }
        };
        self.stale = 0;
        let set = &mut self.sets[index];
        if set.done || set.has(position) {
            return;
        }
        set.present[position / 64] |= 1 << (position % 64);
        set.count += 1;
        if !parity {
            set.data_count += 1;
        }
        set.shards
            .push((position as u16, set.bytes.len() as u32, shard.len() as u16));
        set.bytes.extend_from_slice(shard);
        if set.count < self.codec.data {
            return;
        }
        set.done = true;
        if set.data_count == self.codec.data {
            return;
        }
        self.recover(index, scratch, stats);
    }

    /// Drops groups more than [`MAX_SHARD_SETS`] behind the newest.
    fn expire(&mut self, stats: &mut FecStats) {
        let total = self.codec.total;
        for i in 0..MAX_SETS {
            let set = &self.sets[i];
            if set.live
                && self
                    .newest
                    .wrapping_mul(total)
                    .wrapping_sub(set.id.wrapping_mul(total)) as i32
                    > (MAX_SHARD_SETS * total) as i32
            {
                self.retire(i, stats);
            }
        }
    }

    fn retire(&mut self, index: usize, stats: &mut FecStats) {
        let set = &mut self.sets[index];
        if !set.done {
            stats.short_shards += set.data_count as u64;
        }
        set.live = false;
        set.shards.clear();
        set.bytes.clear();
        // A burst of long shards must not pin its memory for the session's life.
        if set.bytes.capacity() > 64 << 10 {
            set.bytes.shrink_to(0);
        }
    }

    fn recover(&mut self, index: usize, scratch: &mut DecodeScratch, stats: &mut FecStats) {
        let (data, total) = (self.codec.data, self.codec.total as usize);
        let set = &self.sets[index];
        let max = set.shards.iter().map(|s| s.2 as usize).max().unwrap_or(0);
        scratch.bytes.clear();
        scratch.bytes.resize(total * max, 0);
        for &(position, start, len) in &set.shards {
            let (start, len, at) = (start as usize, len as usize, position as usize * max);
            scratch.bytes[at..at + len].copy_from_slice(&set.bytes[start..start + len]);
        }
        let mut shards: [(&mut [u8], bool); MAX_TOTAL_SHARDS] =
            std::array::from_fn(|_| (&mut [][..], false));
        for (i, chunk) in scratch.bytes.chunks_exact_mut(max).enumerate() {
            shards[i] = (chunk, set.has(i));
        }
        if self
            .codec
            .rs
            .reconstruct_data(&mut shards[..total])
            .is_err()
        {
            stats.errors += 1;
            return;
        }
        for (i, (shard, present)) in shards[..data].iter().enumerate() {
            if *present {
                continue;
            }
            // kcp-go's check of a rebuilt size field: at least itself, at most the shard.
            let size = u16::from_le_bytes([shard[0], shard[1]]) as usize;
            if size < 2 + crate::segment::KCP_HEADER_LEN || size > shard.len() {
                stats.errors += 1;
                continue;
            }
            scratch
                .recovered
                .push(((i * max + 2) as u32, (size - 2) as u32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(usize, usize)>);
    impl ShardSink for Collect {
        fn written(&mut self, start: usize, len: usize) {
            self.0.push((start, len));
        }
    }

    fn kcp_datagram(i: u8, len: usize) -> Vec<u8> {
        let mut d = vec![i; len];
        d[4] = 81; // a PUSH, so bytes 4..6 never read as an FEC type
        d[5] = 0;
        d
    }

    #[test]
    fn a_lost_data_shard_is_rebuilt_byte_for_byte() {
        let codec = Arc::new(
            Codec::new(FecConfig {
                data_shards: 4,
                parity_shards: 2,
            })
            .unwrap(),
        );
        let mut enc = Encoder::new(codec.clone());
        let mut dec = Decoder::new(codec);
        let (mut scratch, mut out, mut sink) = (Vec::new(), Vec::new(), Collect(Vec::new()));
        let sent: Vec<Vec<u8>> = (0..4)
            .map(|i| kcp_datagram(i, 30 + i as usize * 7))
            .collect();
        for (t, d) in sent.iter().enumerate() {
            enc.encode(t as u32, d, &mut scratch, &mut out, &mut sink);
        }
        assert_eq!(sink.0.len(), 6, "4 data + 2 parity");
        let datagrams: Vec<&[u8]> = sink.0.iter().map(|&(s, l)| &out[s..s + l]).collect();
        let (mut ds, mut stats) = (DecodeScratch::default(), FecStats::default());
        // Lose data shards 1 and 2.
        for (n, d) in datagrams.iter().enumerate() {
            if n == 1 || n == 2 {
                continue;
            }
            match parse(d) {
                Packet::Data { seqid, shard, kcp } => {
                    assert_eq!(kcp, &sent[n][..]);
                    dec.decode(seqid, false, shard, &mut ds, &mut stats)
                }
                Packet::Parity { seqid, shard } => {
                    dec.decode(seqid, true, shard, &mut ds, &mut stats)
                }
                other => panic!("{other:?}"),
            }
        }
        let got: Vec<&[u8]> = ds.recovered().collect();
        assert_eq!(got, vec![&sent[1][..], &sent[2][..]]);
        assert_eq!(stats.errors, 0);
    }

    #[test]
    fn parity_is_skipped_after_a_long_gap_and_seqids_still_advance() {
        let codec = Arc::new(
            Codec::new(FecConfig {
                data_shards: 2,
                parity_shards: 1,
            })
            .unwrap(),
        );
        let mut enc = Encoder::new(codec);
        let (mut scratch, mut out, mut sink) = (Vec::new(), Vec::new(), Collect(Vec::new()));
        enc.encode(0, &kcp_datagram(1, 24), &mut scratch, &mut out, &mut sink);
        enc.encode(600, &kcp_datagram(2, 24), &mut scratch, &mut out, &mut sink);
        assert_eq!(sink.0.len(), 2);
        enc.encode(700, &kcp_datagram(3, 24), &mut scratch, &mut out, &mut sink);
        let (s, l) = sink.0[2];
        assert!(matches!(
            parse(&out[s..s + l]),
            Packet::Data { seqid: 3, .. }
        ));
    }

    #[test]
    fn groups_far_behind_are_dropped_and_counted_as_short() {
        let codec = Arc::new(
            Codec::new(FecConfig {
                data_shards: 3,
                parity_shards: 1,
            })
            .unwrap(),
        );
        let mut dec = Decoder::new(codec);
        let (mut ds, mut stats) = (DecodeScratch::default(), FecStats::default());
        let shard = [30u8, 0, 1, 2];
        dec.decode(0, false, &shard, &mut ds, &mut stats);
        dec.decode(1, false, &shard, &mut ds, &mut stats);
        // Group 4 is more than 3 groups ahead of group 0.
        dec.decode(16, false, &shard, &mut ds, &mut stats);
        assert_eq!(stats.short_shards, 2);
        assert_eq!(dec.sets.iter().filter(|s| s.live).count(), 1);
        // A shard of a group that far behind is not kept.
        dec.decode(2, false, &shard, &mut ds, &mut stats);
        assert_eq!(dec.sets.iter().filter(|s| s.live).count(), 1);
    }

    #[test]
    fn a_peer_that_restarts_its_seqids_is_followed_after_a_window_of_old_shards() {
        let codec = Arc::new(
            Codec::new(FecConfig {
                data_shards: 2,
                parity_shards: 1,
            })
            .unwrap(),
        );
        let mut enc = Encoder::new(codec.clone());
        let mut dec = Decoder::new(codec);
        let (mut ds, mut stats) = (DecodeScratch::default(), FecStats::default());
        let shard = [30u8, 0, 1, 2];
        dec.decode(3 * 1000, false, &shard, &mut ds, &mut stats);
        // The peer starts over at seqid 0: 4 groups of 3 shards in a row are ignored...
        let (mut scratch, mut out, mut sink) = (Vec::new(), Vec::new(), Collect(Vec::new()));
        for t in 0..20 {
            enc.encode(
                t,
                &kcp_datagram(t as u8, 30),
                &mut scratch,
                &mut out,
                &mut sink,
            );
        }
        let mut rebuilt = 0;
        for (n, &(s, l)) in sink.0.iter().enumerate() {
            // ...then, losing the first data shard of every group, its groups are rebuilt.
            if n % 3 == 0 {
                continue;
            }
            match parse(&out[s..s + l]) {
                Packet::Data { seqid, shard, .. } => {
                    dec.decode(seqid, false, shard, &mut ds, &mut stats)
                }
                Packet::Parity { seqid, shard } => {
                    dec.decode(seqid, true, shard, &mut ds, &mut stats)
                }
                other => panic!("{other:?}"),
            }
            rebuilt += ds.recovered_count();
        }
        assert_eq!(stats.errors, 0);
        // Two shards arrive per group: groups 0-5 are the 12 ignored, the decoder follows at
        // group 6's first, and groups 6-9 are rebuilt.
        assert_eq!(rebuilt, 4);
    }

    #[test]
    fn a_shard_of_the_wrong_type_for_its_position_is_an_error() {
        let codec = Arc::new(
            Codec::new(FecConfig {
                data_shards: 3,
                parity_shards: 1,
            })
            .unwrap(),
        );
        let mut dec = Decoder::new(codec);
        let (mut ds, mut stats) = (DecodeScratch::default(), FecStats::default());
        dec.decode(3, false, &[4, 0, 0, 0], &mut ds, &mut stats);
        dec.decode(0, true, &[4, 0, 0, 0], &mut ds, &mut stats);
        assert_eq!(stats.errors, 2);
    }

    #[test]
    fn parse_refuses_inconsistent_sizes() {
        let mut d = vec![0u8; 40];
        d[4] = 0xf1;
        d[6] = 10;
        assert_eq!(parse(&d), Packet::Malformed);
        d[6] = 34;
        assert!(matches!(parse(&d), Packet::Data { .. }));
        d[4] = 0xf3;
        assert_eq!(parse(&d), Packet::Oob);
        d[4] = 81;
        assert_eq!(parse(&d), Packet::Plain);
    }
}
