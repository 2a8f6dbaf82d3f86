//! Datagrams waiting to be sent, packed into one reusable buffer so that producing a datagram
//! never allocates (the buffer grows to the largest burst and is then reused).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::exclusive::hold;
use crate::secure::keys::{seal_into, SessionCipher, MAX_PACKET_NUMBER};
use crate::secure::wire::{reset_tag, TAG_LEN, TYPE_DATA, TYPE_FEC_PARITY};

/// A buffer larger than this after a burst is given back when it empties, so one burst does not
/// pin memory forever.
const RETAINED_CAPACITY: usize = 4 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    destination: SocketAddr,
    source: SocketAddr,
    start: u32,
    len: u32,
}

/// One datagram waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The peer it goes to.
    pub destination: SocketAddr,
    /// Our address it must leave from: the one the peer sent to. A socket bound to a wildcard
    /// address has several, and a reply from another one would not reach a peer behind a
    /// stateful firewall or NAT (and would look like a different server). It is unspecified
    /// when the session was opened locally without a known address; the OS picks one then.
    pub source: SocketAddr,
    /// The datagram.
    pub data: &'a [u8],
}

/// The datagrams an endpoint produced since the caller last cleared them.
#[derive(Debug)]
pub struct Transmits {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Raw mode with FEC: the padded data shards of the group being encoded, reused.
    fec_scratch: Vec<u8>,
    /// The endpoint's clock at its current call, for the FEC encoder's gap rule.
    pub(crate) now: crate::clock::Millis,
}

/// Records where an FEC encoder put each datagram.
struct FecEntries<'a> {
    entries: &'a mut Vec<Entry>,
    destination: SocketAddr,
    source: SocketAddr,
}

impl crate::fec::ShardSink for FecEntries<'_> {
    fn written(&mut self, start: usize, len: usize) {
        self.entries.push(Entry {
            destination: self.destination,
            source: self.source,
            start: start as u32,
            len: len as u32,
        });
    }
}

impl Transmits {
    pub(crate) fn new() -> Self {
        Self {
            bytes: Vec::new(),
            entries: Vec::new(),
            fec_scratch: Vec::new(),
            now: 0,
        }
    }

    /// Number of datagrams waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of every datagram waiting.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The datagram at `index`.
    pub fn get(&self, index: usize) -> Option<Transmit<'_>> {
        self.entries.get(index).map(|e| self.view(e))
    }

    /// Every waiting datagram in order.
    pub fn iter(&self) -> impl Iterator<Item = Transmit<'_>> + '_ {
        self.entries.iter().map(|e| self.view(e))
    }

    fn view(&self, e: &Entry) -> Transmit<'_> {
        let start = e.start as usize;
        Transmit {
            destination: e.destination,
            source: e.source,
            data: &self.bytes[start..start + e.len as usize],
        }
    }

    /// Forgets every waiting datagram.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        if self.bytes.capacity() > RETAINED_CAPACITY {
            self.bytes.shrink_to(RETAINED_CAPACITY);
        }
    }

    /// Forgets the first `count` datagrams (those a partial batched send got out).
    pub fn consume(&mut self, count: usize) {
        if count >= self.entries.len() {
            self.clear();
            return;
        }
        let cut = self.entries[count].start;
        self.entries.drain(..count);
        self.bytes.drain(..cut as usize);
        for e in &mut self.entries {
            e.start -= cut;
        }
    }

    pub(crate) fn push(&mut self, destination: SocketAddr, source: SocketAddr, datagram: &[u8]) {
        self.entries.push(Entry {
            destination,
            source,
            start: self.bytes.len() as u32,
            len: datagram.len() as u32,
        });
        self.bytes.extend_from_slice(datagram);
    }

    /// Appends a raw-mode datagram as a kcp-go FEC data shard, and the group's parity shards
    /// when it completes one; returns (datagrams, bytes) appended.
    pub(crate) fn push_fec(
        &mut self,
        destination: SocketAddr,
        source: SocketAddr,
        encoder: &mut crate::fec::Encoder,
        datagram: &[u8],
    ) -> (u64, u64) {
        let (first, start) = (self.entries.len(), self.bytes.len());
        let mut sink = FecEntries {
            entries: &mut self.entries,
            destination,
            source,
        };
        encoder.encode(
            self.now,
            datagram,
            &mut self.fec_scratch,
            &mut self.bytes,
            &mut sink,
        );
        (
            (self.entries.len() - first) as u64,
            (self.bytes.len() - start) as u64,
        )
    }

    /// Appends a secure-mode session datagram of `kind` with `body`, built and sealed in place
    /// by `sealer` with its next packet number (which the caller then advances).
    pub(crate) fn push_sealed(
        &mut self,
        destination: SocketAddr,
        source: SocketAddr,
        sealer: &Sealer,
        kind: u8,
        body: &[u8],
    ) -> usize {
        let start = self.bytes.len() as u32;
        let len = seal_into(
            &mut self.bytes,
            &sealer.key,
            kind,
            sealer.conv,
            sealer.next_packet_number,
            body,
        );
        self.entries.push(Entry {
            destination,
            source,
            start,
            len: len as u32,
        });
        len
    }
}

/// What secure mode wraps around every datagram a session writes.
pub(crate) struct Sealer {
    pub(crate) key: SessionCipher,
    pub(crate) conv: u32,
    pub(crate) next_packet_number: u64,
    /// Secure mode with FEC: every datagram sealed is a data shard of this encoder.
    pub(crate) fec: Option<Box<crate::secure::fec::Encoder>>,
}

/// The KCP engine's output: every `write` is one datagram for the session that is running.
pub(crate) struct TxSink {
    queue: Arc<Mutex<Transmits>>,
    pub(crate) destination: SocketAddr,
    pub(crate) source: SocketAddr,
    /// Secure mode: the session's sending key and packet numbers.
    pub(crate) sealer: Option<Sealer>,
    /// Raw mode with FEC: every datagram leaves as a kcp-go FEC data shard of the encoder the
    /// sessions to this remote share.
    pub(crate) fec: Option<Arc<Mutex<crate::fec::Encoder>>>,
    /// Datagrams and bytes this session wrote, for its summary.
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    /// Secure mode, client: the first bytes of the AEAD tags of the last [`SENT_TAGS`] session
    /// datagrams, by packet number modulo their count (with the packet number + 1, 0 when empty), to recognise a
    /// server's RESET as the answer to one of them.
    pub(crate) sent_tags: Option<Box<SentTags>>,
}

/// Packet number + 1 (0: empty) and tag of a client's latest session datagrams.
pub(crate) type SentTags = [(u64, [u8; TAG_LEN]); SENT_TAGS];

/// Session datagrams a client remembers the tags of. A RESET answering an older one is not
/// recognised; the next datagram gets its own RESET (rate permitting).
pub(crate) const SENT_TAGS: usize = 64;

impl TxSink {
    pub(crate) fn new(
        queue: Arc<Mutex<Transmits>>,
        destination: SocketAddr,
        source: SocketAddr,
    ) -> Self {
        Self {
            queue,
            destination,
            source,
            sealer: None,
            fec: None,
            datagrams: 0,
            bytes: 0,
            sent_tags: None,
        }
    }

    /// Sends a secure-mode datagram of `kind` with `body`; false if the session has no keys.
    pub(crate) fn send_sealed(&mut self, kind: u8, body: &[u8]) -> bool {
        let Some(sealer) = self.sealer.as_mut() else {
            return false;
        };
        if sealer.next_packet_number > MAX_PACKET_NUMBER {
            // Never reuse a nonce: an exhausted session sends nothing more (and idles out).
            return true;
        }
        let len = hold(&self.queue).push_sealed(self.destination, self.source, sealer, kind, body);
        if let Some(tags) = self.sent_tags.as_mut() {
            let queue = hold(&self.queue);
            if let Some(tag) = queue
                .len()
                .checked_sub(1)
                .and_then(|i| queue.get(i))
                .and_then(|sent| reset_tag(sent.data))
            {
                let pn = sealer.next_packet_number;
                tags[(pn % SENT_TAGS as u64) as usize] = (pn + 1, tag);
            }
        }
        let packet_number = sealer.next_packet_number;
        sealer.next_packet_number += 1;
        self.datagrams += 1;
        self.bytes += len as u64;
        if kind != TYPE_FEC_PARITY {
            self.protect(packet_number, len);
        }
        true
    }

    /// Secure mode with FEC: the datagram just sealed (`len` bytes, the last queued) joins the
    /// encoder's group; when it completes one, the group's parity is sealed after it.
    fn protect(&mut self, packet_number: u64, len: usize) {
        let Some(mut fec) = self.sealer.as_mut().and_then(|s| s.fec.take()) else {
            return;
        };
        let parity = {
            let queue = hold(&self.queue);
            let sealed = &queue.bytes[queue.bytes.len() - len..];
            fec.add(queue.now, packet_number, sealed)
        };
        for k in 0..parity {
            self.send_sealed(TYPE_FEC_PARITY, fec.parity_body(k));
        }
        if let Some(sealer) = self.sealer.as_mut() {
            sealer.fec = Some(fec);
        }
    }

    /// Whether a RESET's `packet_number` and `tag` are those of a datagram this session sent
    /// recently (only a client keeps them). The tag comparison is constant-time.
    pub(crate) fn sent(&self, packet_number: u64, tag: &[u8; TAG_LEN]) -> bool {
        let Some(tags) = self.sent_tags.as_ref() else {
            return false;
        };
        let (number, sent) = &tags[(packet_number % SENT_TAGS as u64) as usize];
        let differs = sent.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Stored as the packet number + 1, so an empty entry (0) matches nothing.
        *number != 0 && *number == packet_number.wrapping_add(1) && differs == 0
    }

    /// Sends a datagram that belongs to no session's packet numbering (handshake replies).
    pub(crate) fn send_plain(&mut self, datagram: &[u8]) {
        hold(&self.queue).push(self.destination, self.source, datagram);
        self.datagrams += 1;
        self.bytes += datagram.len() as u64;
    }
}

impl io::Write for TxSink {
    fn write(&mut self, datagram: &[u8]) -> io::Result<usize> {
        if self.send_sealed(TYPE_DATA, datagram) {
            return Ok(datagram.len());
        }
        if let Some(encoder) = self.fec.as_ref() {
            let (datagrams, bytes) = hold(&self.queue).push_fec(
                self.destination,
                self.source,
                &mut hold(encoder),
                datagram,
            );
            self.datagrams += datagrams;
            self.bytes += bytes;
        } else {
            self.send_plain(datagram);
        }
        Ok(datagram.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transmits {
    pub(crate) fn shared() -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self::new()))
    }
}
