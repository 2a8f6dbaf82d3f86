//! Port of upstream kcp 0.6.0 `tests/kcp.rs` (the latency simulator echo test).
//!
//! Differences from upstream, so that the test needs no dev-dependencies and
//! runs fast and deterministically: a virtual millisecond clock instead of
//! `time` + `sleep(1ms)`, and a small xorshift PRNG instead of `rand`. The clock
//! starts just below 2^32 so every run also crosses the u32 wrap.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::rc::Rc;

use kcp::Kcp;

struct Rng(u64);

impl Rng {
    fn next_u32(&mut self) -> u32 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn range(&mut self, n: usize) -> usize {
        self.next_u32() as usize % n
    }
}

struct DelayPacket {
    buf: Vec<u8>,
    ts: u32,
}

/// Random sequence without repetition within a window of `size` draws (upstream `Random`).
struct Random {
    seeds: Vec<u32>,
    size: usize,
}

impl Random {
    fn new(size: usize) -> Random {
        Random {
            seeds: vec![0u32; size],
            size: 0,
        }
    }

    fn random(&mut self, rng: &mut Rng) -> u32 {
        if self.seeds.is_empty() {
            return 0;
        }
        if self.size == 0 {
            for (i, e) in self.seeds.iter_mut().enumerate() {
                *e = i as u32;
            }
            self.size = self.seeds.len();
        }
        let i = rng.range(self.size);
        let x = self.seeds[i];
        self.size -= 1;
        self.seeds[i] = self.seeds[self.size];
        x
    }
}

struct LatencySimulator {
    lostrate: u32,
    rttmin: u32,
    rttmax: u32,
    nmax: usize,
    clock: Rc<Cell<u32>>,
    p12: VecDeque<DelayPacket>,
    p21: VecDeque<DelayPacket>,
    r12: Random,
    r21: Random,
    rng: Rng,
}

impl LatencySimulator {
    fn new(clock: Rc<Cell<u32>>, lostrate: u32, rttmin: u32, rttmax: u32, nmax: usize) -> Self {
        LatencySimulator {
            lostrate: lostrate / 2,
            rttmin: rttmin / 2,
            rttmax: rttmax / 2,
            nmax,
            clock,
            p12: VecDeque::new(),
            p21: VecDeque::new(),
            r12: Random::new(100),
            r21: Random::new(100),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn send(&mut self, peer: u32, data: &[u8]) -> usize {
        let (r, q) = if peer == 0 {
            (&mut self.r12, &self.p12)
        } else {
            (&mut self.r21, &self.p21)
        };
        if r.random(&mut self.rng) < self.lostrate || q.len() >= self.nmax {
            return data.len();
        }

        let mut delay = self.rttmin;
        if self.rttmax > self.rttmin {
            delay += self.rng.next_u32() % (self.rttmax - self.rttmin);
        }
        let pkg = DelayPacket {
            buf: data.to_vec(),
            ts: self.clock.get().wrapping_add(delay),
        };
        if peer == 0 {
            self.p12.push_back(pkg);
        } else {
            self.p21.push_back(pkg);
        }
        data.len()
    }

    fn recv(&mut self, peer: u32) -> Option<Vec<u8>> {
        let q = if peer == 0 {
            &mut self.p12
        } else {
            &mut self.p21
        };
        let ready = match q.front() {
            Some(pkg) => (self.clock.get().wrapping_sub(pkg.ts) as i32) >= 0,
            None => false,
        };
        if ready {
            q.pop_front().map(|p| p.buf)
        } else {
            None
        }
    }
}

struct KcpOutput {
    sim: Rc<RefCell<LatencySimulator>>,
    peer: u32,
}

impl Write for KcpOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Ok(self.sim.borrow_mut().send(self.peer, data))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
enum TestMode {
    Default,
    Normal,
    Fast,
}

fn run(mode: TestMode, msgcount: u32, lostrate: u32) {
    let clock = Rc::new(Cell::new(0xFFFF_C000u32));
    // Rtt 60ms ~ 125ms
    let vnet = Rc::new(RefCell::new(LatencySimulator::new(
        clock.clone(),
        lostrate,
        60,
        125,
        1000,
    )));

    let mut kcp1 = Kcp::new(
        0x11223344,
        KcpOutput {
            sim: vnet.clone(),
            peer: 0,
        },
    );
    let mut kcp2 = Kcp::new(
        0x11223344,
        KcpOutput {
            sim: vnet.clone(),
            peer: 1,
        },
    );

    let mut slap = clock.get().wrapping_add(20);
    let mut index = 0u32;
    let mut next = 0u32;

    kcp1.set_wndsize(128, 128);
    kcp2.set_wndsize(128, 128);

    match mode {
        TestMode::Default => {
            kcp1.set_nodelay(false, 10, 0, false);
            kcp2.set_nodelay(false, 10, 0, false);
        }
        TestMode::Normal => {
            kcp1.set_nodelay(false, 10, 0, true);
            kcp2.set_nodelay(false, 10, 0, true);
        }
        TestMode::Fast => {
            kcp1.set_nodelay(true, 10, 2, true);
            kcp2.set_nodelay(true, 10, 2, true);
            kcp1.set_rx_minrto(10);
            kcp2.set_fast_resend(1);
        }
    }

    let mut buf = [0u8; 2000];
    let mut steps = 0u32;
    while next <= msgcount {
        steps += 1;
        assert!(steps < 2_000_000, "{mode:?}: no progress");
        clock.set(clock.get().wrapping_add(1));
        let current = clock.get();
        kcp1.update(current).unwrap();
        kcp2.update(current).unwrap();

        // kcp1 sends a packet every 20ms
        while (current.wrapping_sub(slap) as i32) >= 0 {
            let mut m = [0u8; 8];
            m[..4].copy_from_slice(&index.to_le_bytes());
            m[4..].copy_from_slice(&current.to_le_bytes());
            index += 1;
            kcp1.send(&m).unwrap();
            slap = slap.wrapping_add(20);
        }

        // vnet p1 -> p2
        loop {
            let pkt = vnet.borrow_mut().recv(1);
            match pkt {
                Some(p) => {
                    kcp2.input(&p).unwrap();
                }
                None => break,
            }
        }
        // vnet p2 -> p1
        loop {
            let pkt = vnet.borrow_mut().recv(0);
            match pkt {
                Some(p) => {
                    kcp1.input(&p).unwrap();
                }
                None => break,
            }
        }

        // kcp2 echoes back
        while let Ok(n) = kcp2.recv(&mut buf) {
            kcp2.send(&buf[..n]).unwrap();
        }

        // kcp1 checks the responses from kcp2
        while let Ok(n) = kcp1.recv(&mut buf) {
            assert_eq!(n, 8);
            let sn = u32::from_le_bytes(buf[..4].try_into().unwrap());
            assert_eq!(sn, next, "{mode:?}: received out of order");
            next += 1;
        }
    }
}

#[test]
fn kcp_default() {
    run(TestMode::Default, 1000, 10);
}

#[test]
fn kcp_normal() {
    run(TestMode::Normal, 1000, 10);
}

#[test]
fn kcp_fast() {
    run(TestMode::Fast, 1000, 10);
}

#[test]
fn kcp_massive_lost_default() {
    run(TestMode::Default, 1000, 50);
}

#[test]
fn kcp_massive_lost_normal() {
    run(TestMode::Normal, 1000, 50);
}

#[test]
fn kcp_massive_lost_fast() {
    run(TestMode::Fast, 1000, 50);
}
