//! The endpoint's live sessions: the slots handles point into, the indexes that find a session
//! from a datagram, the timer queue, and what lived here lately.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::handle::{ConnectionHandle, GENERATION_MASK, MAX_SLOTS};
use crate::events::ConnectionRef;
use crate::metrics::SessionTotals;
use crate::session::Session;
use crate::timer::TimerQueue;

/// How long datagrams for a closed secure session are recognised as its stragglers.
const RECENTLY_CLOSED_MS: u64 = 10_000;
/// Closed convs remembered at most (a burst of closes only shortens how long each is kept).
const RECENTLY_CLOSED_CAP: usize = 1024;

struct Slot {
    generation: u32,
    session: Option<Session>,
    /// The deadline this slot is queued for; older queue entries are stale.
    deadline: Option<u64>,
    /// Who last lived here: a send to a connection that has just closed (the common case of
    /// writing to a player who left) is still logged with that connection's identity.
    last_conn: Option<ConnectionRef>,
}

/// Every session of the endpoint and every way to find one. It owns the slots together with the
/// indexes (by address and conv in raw mode, by conv and by HELLO nonce in secure mode), the
/// timer queue and the live counts because they must change together: [`Sessions::insert`] and
/// [`Sessions::remove`] are the only ways in and out, so no index can name a session that is
/// gone, no queued deadline survives its slot's reuse, and the counts always match the slots.
/// What a session *does* (its engine, its keys) stays in [`Session`]; who may open one stays
/// with the handshake side, and what is recorded about it with the reporter.
#[derive(Default)]
pub(super) struct Sessions {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Secure server sessions whose ACCEPT the client has not confirmed yet (part of `live`).
    unconfirmed: usize,
    /// Raw mode: sessions by (peer address, conv).
    by_key: HashMap<(SocketAddr, u32), ConnectionHandle>,
    /// Secure sessions by conv: they are found by conv alone so they can move address.
    by_conv: HashMap<u32, ConnectionHandle>,
    /// Secure sessions by HELLO nonce: a repeated HELLO gets the same answer, a client's
    /// pending handshake gets its replies.
    by_nonce: HashMap<[u8; 16], ConnectionHandle>,
    timers: TimerQueue,
    /// Secure mode: convs of sessions that closed recently, oldest first, with when.
    recently_closed: VecDeque<(u32, u64)>,
    /// Raw mode: (address, conv) pairs closed for a protocol violation, refused for a while.
    raw_closed: super::raw_closed::RawClosed,
    /// Counters of closed sessions, summed, and the live-session high-water mark (metrics).
    totals: SessionTotals,
}

impl Sessions {
    fn slot(&self, handle: ConnectionHandle) -> Option<&Slot> {
        let slot = self.slots.get(handle.index() as usize)?;
        (slot.generation & GENERATION_MASK == handle.generation() && slot.session.is_some())
            .then_some(slot)
    }

    /// The live session `handle` names.
    pub(super) fn get(&self, handle: ConnectionHandle) -> Option<&Session> {
        self.slot(handle)?.session.as_ref()
    }

    /// The live session `handle` names, to change.
    pub(super) fn get_mut(&mut self, handle: ConnectionHandle) -> Option<&mut Session> {
        self.slot(handle)?;
        self.slots[handle.index() as usize].session.as_mut()
    }

    /// Puts `session` in a free slot, indexed by (address, conv) when `by_key` (raw mode).
    pub(super) fn insert(&mut self, session: Session, by_key: bool) -> ConnectionHandle {
        let key = (session.remote, session.conv);
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    session: None,
                    deadline: None,
                    last_conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.session = Some(session);
        slot.deadline = None;
        let handle = ConnectionHandle::new(index, slot.generation);
        if by_key {
            self.by_key.insert(key, handle);
        }
        self.live += 1;
        self.totals.note_live(self.live);
        handle
    }

    /// Takes a session out of its slot and every index (a secure one's conv is remembered as
    /// recently closed at `now_extended`); the handle is stale afterwards, and the slot
    /// remembers who lived there.
    pub(super) fn remove(
        &mut self,
        handle: ConnectionHandle,
        now_extended: u64,
    ) -> Option<Session> {
        let slot = self.slots.get_mut(handle.index() as usize)?;
        if slot.generation & GENERATION_MASK != handle.generation() {
            return None;
        }
        let session = slot.session.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.deadline = None;
        slot.last_conn = Some(session.conn_ref());
        self.free.push(handle.index());
        if self.by_key.get(&(session.remote, session.conv)) == Some(&handle) {
            self.by_key.remove(&(session.remote, session.conv));
        }
        if let Some(secure) = session.secure.as_ref() {
            if self.by_conv.get(&session.conv) == Some(&handle) {
                self.by_conv.remove(&session.conv);
                if self.recently_closed.len() >= RECENTLY_CLOSED_CAP {
                    self.recently_closed.pop_front();
                }
                self.recently_closed.push_back((session.conv, now_extended));
            }
            if self.by_nonce.get(&secure.nonce) == Some(&handle) {
                self.by_nonce.remove(&secure.nonce);
            }
        }
        if session.unconfirmed() {
            self.unconfirmed -= 1;
        }
        self.live -= 1;
        Some(session)
    }

    /// Raw mode: the session of (`remote`, `conv`).
    pub(super) fn by_key(&self, remote: SocketAddr, conv: u32) -> Option<ConnectionHandle> {
        self.by_key.get(&(remote, conv)).copied()
    }

    /// Secure mode: the session of `conv`.
    pub(super) fn by_conv(&self, conv: u32) -> Option<ConnectionHandle> {
        self.by_conv.get(&conv).copied()
    }

    /// Secure mode: the session whose handshake carried `nonce`.
    pub(super) fn by_nonce(&self, nonce: &[u8; 16]) -> Option<ConnectionHandle> {
        self.by_nonce.get(nonce).copied()
    }

    /// Secure mode: finds `handle`'s session by `conv` from now on; the session that had
    /// that conv before, if another.
    pub(super) fn index_conv(
        &mut self,
        conv: u32,
        handle: ConnectionHandle,
    ) -> Option<ConnectionHandle> {
        self.by_conv
            .insert(conv, handle)
            .filter(|&old| old != handle)
    }

    /// Secure mode: finds `handle`'s session by its HELLO `nonce` from now on.
    pub(super) fn index_nonce(&mut self, nonce: [u8; 16], handle: ConnectionHandle) {
        self.by_nonce.insert(nonce, handle);
    }

    /// Secure mode, server: `handle`'s session waits for the client's confirmation until `by`.
    pub(super) fn await_confirmation(
        &mut self,
        handle: ConnectionHandle,
        by: crate::clock::Millis,
    ) {
        if let Some(session) = self.get_mut(handle) {
            session.await_confirmation(by);
            self.unconfirmed += 1;
        }
    }

    /// Secure mode, server: the client confirmed `handle`'s session; it starts now.
    pub(super) fn confirm(
        &mut self,
        handle: ConnectionHandle,
        now: crate::clock::Millis,
        now_extended: u64,
    ) -> Option<&mut Session> {
        self.slot(handle)?;
        self.unconfirmed -= 1;
        let session = self.slots[handle.index() as usize].session.as_mut()?;
        session.confirm(now, now_extended);
        Some(session)
    }

    /// Secure mode: whether `conv` closed less than a few seconds before `now_extended` (its
    /// peer's last datagrams are stragglers, not probes). Forgets what is older.
    pub(super) fn recently_closed(&mut self, conv: u32, now_extended: u64) -> bool {
        while self
            .recently_closed
            .front()
            .is_some_and(|&(_, at)| at + RECENTLY_CLOSED_MS < now_extended)
        {
            self.recently_closed.pop_front();
        }
        self.recently_closed.iter().any(|&(c, _)| c == conv)
    }

    /// Raw mode: refuses openings from (`remote`, `conv`) until `until` (extended clock).
    pub(super) fn block_raw(&mut self, remote: SocketAddr, conv: u32, until: u64) {
        self.raw_closed.insert((remote, conv), until);
    }

    /// Raw mode: whether openings from (`remote`, `conv`) are refused at `now_extended`.
    pub(super) fn raw_blocked(&mut self, remote: SocketAddr, conv: u32, now_extended: u64) -> bool {
        self.raw_closed.blocks(&(remote, conv), now_extended)
    }

    /// The identity of a live connection, or of the one that last closed in the handle's slot.
    pub(super) fn known_conn(&self, handle: ConnectionHandle) -> Option<ConnectionRef> {
        if let Some(session) = self.get(handle) {
            return Some(session.conn_ref());
        }
        let slot = self.slots.get(handle.index() as usize)?;
        let next = handle.generation().wrapping_add(1) & GENERATION_MASK;
        (slot.generation & GENERATION_MASK == next)
            .then_some(slot.last_conn)
            .flatten()
    }

    /// Sessions in slots (those the application knows and unconfirmed ones).
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// Sessions the application was told of.
    pub(super) fn connection_count(&self) -> usize {
        self.live - self.unconfirmed
    }

    /// Whether every handle is in use.
    pub(super) fn is_full(&self) -> bool {
        self.slots.len() >= MAX_SLOTS && self.free.is_empty()
    }

    /// The handles of every live session, in slot order.
    pub(super) fn handles(&self) -> Vec<ConnectionHandle> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.session.is_some())
            .map(|(index, slot)| ConnectionHandle::new(index as u32, slot.generation))
            .collect()
    }

    /// Slots there are (live or free): [`Sessions::handle_at`] takes indices below it.
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The handle of the session in slot `index`, if one lives there.
    pub(super) fn handle_at(&self, index: usize) -> Option<ConnectionHandle> {
        let slot = self.slots.get(index)?;
        slot.session
            .as_ref()
            .map(|_| ConnectionHandle::new(index as u32, slot.generation))
    }

    /// Every live session.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(|slot| slot.session.as_ref())
    }

    /// Adds a closed session's counters to the totals.
    pub(super) fn add_closed(&mut self, summary: &crate::session::ConnectionSummary) {
        self.totals.add(summary);
    }

    /// The closed sessions' totals plus the live ones' counters as of `now_extended`.
    pub(super) fn totals(&self, now_extended: u64) -> SessionTotals {
        let mut totals = self.totals;
        for session in self.iter() {
            totals.add(&session.summary(now_extended));
        }
        totals
    }

    /// Arms `handle`'s timer for `extended` unless an earlier one is armed already.
    pub(super) fn schedule(&mut self, handle: ConnectionHandle, extended: u64) {
        if self.slot(handle).is_none() {
            return;
        }
        let slot = &mut self.slots[handle.index() as usize];
        // A deadline that moves later keeps the earlier timer: that visit finds nothing due and
        // arms the real deadline then. Most reschedules move later (each ACK, each input while
        // idle), so this keeps the heap to about one entry per session instead of one per event.
        if slot.deadline.is_some_and(|armed| armed <= extended) {
            return;
        }
        slot.deadline = Some(extended);
        self.timers
            .schedule(extended, handle.index(), slot.generation);
        if self.timers.len() > 4 * self.live + 64 {
            let slots = &self.slots;
            self.timers.compact(|d, s, g| {
                let slot = &slots[s as usize];
                slot.generation == g && slot.deadline == Some(d)
            });
        }
    }

    /// The earliest armed session deadline (stale queue entries are dropped on the way).
    pub(super) fn next_deadline(&mut self) -> Option<u64> {
        while let Some((deadline, index, generation)) = self.timers.peek() {
            let slot = &self.slots[index as usize];
            if slot.generation == generation
                && slot.deadline == Some(deadline)
                && slot.session.is_some()
            {
                return Some(deadline);
            }
            self.timers.pop();
        }
        None
    }

    /// The next session whose deadline is at or before `now_extended`, disarmed.
    pub(super) fn pop_due(&mut self, now_extended: u64) -> Option<ConnectionHandle> {
        while let Some((deadline, index, generation)) = self.timers.peek() {
            if deadline > now_extended {
                return None;
            }
            self.timers.pop();
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation
                || slot.deadline != Some(deadline)
                || slot.session.is_none()
            {
                continue;
            }
            slot.deadline = None;
            return Some(ConnectionHandle::new(index, generation));
        }
        None
    }
}
