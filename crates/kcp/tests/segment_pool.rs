//! PATCH(12): once an engine has warmed up, sending, receiving, acknowledging and reading
//! messages reuses segment buffers instead of allocating one per message; PATCH(16): a quiet
//! engine gives them back. Counted with a global allocator, so this file is its own test
//! binary. Each test counts its own thread only: the test harness's threads allocate on their
//! own schedule (seen as 4 stray allocations in one run of a loaded machine), and the tests
//! run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Write};

use kcp::Kcp;

struct Counting;

thread_local! {
    // Const initialisers: using them never allocates, so the allocator may.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Datagrams written by an engine, in one preallocated buffer (no allocation per datagram).
struct Wire {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Wire {
    fn new() -> Self {
        Wire {
            bytes: Vec::with_capacity(1 << 20),
            ends: Vec::with_capacity(4096),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(
            self.bytes.len() + buf.len() <= self.bytes.capacity()
                && self.ends.len() < self.ends.capacity()
        );
        self.bytes.extend_from_slice(buf);
        self.ends.push(self.bytes.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Moves every datagram `from` wrote into `to`, through a reused scratch buffer.
fn deliver(from: &mut Kcp<Wire>, to: &mut Kcp<Wire>, scratch: &mut Vec<u8>) {
    let wire = from.output_mut();
    scratch.clear();
    scratch.extend_from_slice(&wire.bytes);
    let mut ends = std::mem::take(&mut wire.ends);
    wire.bytes.clear();
    let mut start = 0;
    for &end in &ends {
        to.input(&scratch[start..end]).expect("input");
        start = end;
    }
    ends.clear();
    from.output_mut().ends = ends;
}

/// One round: `a` sends `burst` messages of 64 bytes, `b` reads them, both sides flush ACKs.
fn round(
    a: &mut Kcp<Wire>,
    b: &mut Kcp<Wire>,
    now: &mut u32,
    burst: u32,
    scratch: &mut Vec<u8>,
    read: &mut [u8],
) -> u32 {
    let mut message = [7u8; 64];
    for i in 0..burst {
        message[..4].copy_from_slice(&i.to_le_bytes());
        a.send(&message).expect("send");
    }
    *now += 10;
    a.update(*now).expect("update");
    deliver(a, b, scratch);
    let mut got = 0;
    while let Ok(n) = b.recv(read) {
        assert_eq!(n, 64);
        got += 1;
    }
    b.update(*now).expect("update");
    b.flush().expect("flush");
    deliver(b, a, scratch);
    got
}

#[test]
fn messages_reuse_segment_buffers_once_warm() {
    let mut a = Kcp::new(1, Wire::new());
    let mut b = Kcp::new(1, Wire::new());
    for k in [&mut a, &mut b] {
        k.set_nodelay(true, 10, 2, true);
        k.set_wndsize(256, 256);
    }
    let mut scratch = Vec::with_capacity(1 << 20);
    let mut read = vec![0u8; 2048];
    let mut now = 0;
    // Warm up: queues, ACK lists and the pool reach their working sizes.
    for _ in 0..50 {
        assert_eq!(
            round(&mut a, &mut b, &mut now, 8, &mut scratch, &mut read),
            8
        );
    }
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let mut delivered = 0;
    for _ in 0..500 {
        delivered += round(&mut a, &mut b, &mut now, 8, &mut scratch, &mut read);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.with(Cell::get);
    assert_eq!(delivered, 4000);
    // Without the pool every message allocates twice (sender's and receiver's segment).
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {delivered} messages"
    );
}

/// PATCH(16): an engine that has gone quiet gives its queues, pool and flush buffer back; idle
/// updates and flushes then allocate nothing, and the next messages flow as before.
#[test]
fn a_quiet_engine_gives_its_buffers_back_and_still_works() {
    let mut a = Kcp::new(1, Wire::new());
    let mut b = Kcp::new(1, Wire::new());
    for k in [&mut a, &mut b] {
        k.set_nodelay(true, 10, 2, true);
        k.set_wndsize(256, 256);
    }
    let mut scratch = Vec::with_capacity(1 << 20);
    let mut read = vec![0u8; 2048];
    let mut now = 0;
    for _ in 0..50 {
        assert_eq!(
            round(&mut a, &mut b, &mut now, 8, &mut scratch, &mut read),
            8
        );
    }
    for k in [&mut a, &mut b] {
        assert!(k.is_quiescent());
        assert!(k.holds_idle_memory(), "a warm engine keeps its buffers");
        k.shrink_idle();
        assert!(!k.holds_idle_memory(), "nothing left to give back");
    }
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    for _ in 0..100 {
        now += 10;
        for k in [&mut a, &mut b] {
            k.update(now).expect("update");
            k.flush().expect("flush");
            k.flush_ack().expect("flush_ack");
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.with(Cell::get);
    assert_eq!(allocations, 0, "{allocations} allocations while idle");
    assert!(!a.holds_idle_memory() && !b.holds_idle_memory());
    for _ in 0..10 {
        assert_eq!(
            round(&mut a, &mut b, &mut now, 8, &mut scratch, &mut read),
            8
        );
    }
    assert_eq!(a.waiting_bytes(), 0);
}
