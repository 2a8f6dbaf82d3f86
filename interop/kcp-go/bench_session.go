package main

// One load-generator session of the bench client: dialling (plain UDP, kcp-go, or the secure v2
// client), paced sends, echo matching and the latency of each.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// benchTransport is what a session sends and receives messages on: a kcp-go UDPSession or a
// connected UDP socket.
type benchTransport interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Close() error
}

// benchErr is a session's failure; kind groups them in the report.
type benchErr struct {
	kind string
	msg  string
}

func (e *benchErr) Error() string { return e.msg }

func sessionErr(kind, format string, args ...any) *benchErr {
	return &benchErr{kind, fmt.Sprintf(format, args...)}
}

type inflight struct {
	seq   uint64
	sent  time.Time
	sched time.Time // the pacer's slot (zero in closed loop)
}

// benchSession is one session of a run, owned by one goroutine at a time.
type benchSession struct {
	id  int
	cfg *benchConfig
	t   benchTransport
	pc  *pushConn       // KCP modes
	kcp *kcp.UDPSession // KCP modes

	nextSeq  uint64
	firstSeq uint64 // plain-udp: echoes of earlier (warm-up) numbers are ignored
	out      []inflight
	// plain-udp only: the numbers still awaited (out keeps send order, for expiry)
	waiting map[uint64]struct{}
	acc     []byte // stream mode: bytes received and not yet a whole message
	buf     []byte
	msg     []byte
	want    []byte

	established                       bool // dialed and, with warm-up, echoed once
	sent, completed, lost, lateEchoes uint64
	err                               *benchErr
}

func (b *benchSession) plain() bool { return b.cfg.mode == modePlain }

func (b *benchSession) outstanding() int {
	if b.plain() {
		return len(b.waiting)
	}
	return len(b.out)
}

// sourceIP is the address the session's socket binds to.
func (b *benchSession) sourceIP() net.IP {
	if b.cfg.sourceIPs <= 1 {
		return b.cfg.lip
	}
	return addIPv4(b.cfg.lip, b.id%b.cfg.sourceIPs)
}

// dial opens the session's transport: for secure mode this is the handshake.
func (b *benchSession) dial(deadline time.Time) *benchErr {
	cfg := b.cfg
	b.msg = make([]byte, cfg.size)
	b.want = make([]byte, cfg.size)
	b.buf = make([]byte, max(cfg.size+64, pushBufLen))
	if b.plain() {
		b.waiting = map[uint64]struct{}{}
		c, err := net.DialUDP(udpNetwork(cfg.raddr), &net.UDPAddr{IP: b.sourceIP()}, cfg.raddr)
		if err != nil {
			return sessionErr("socket", "conn %d: socket: %v", b.id, err)
		}
		b.t = c
		return nil
	}
	conn, err := listenFrom(cfg.raddr, b.sourceIP())
	if err != nil {
		return sessionErr("socket", "conn %d: socket: %v", b.id, err)
	}
	pc := &pushConn{conn: conn, server: cfg.raddr}
	conv := randomConv()
	agreedMTU := 0
	if cfg.mode == modeSecure {
		sec := &secureSession{conn: conn, server: cfg.raddr, serverKey: cfg.serverKey}
		// cfg.opts.mtu is already the engine's (the wire MTU minus the framing).
		a, err := sec.handshake(protocolVersion, paramsFor(&cfg.opts, cfg.opts.mtu+sessionOverhead), cfg.token, min(cfg.handshakeTimeout, time.Until(deadline)))
		if err != nil {
			conn.Close()
			var he *handshakeError
			if errors.As(err, &he) {
				return sessionErr("handshake:"+he.reason, "conn %d: %v", b.id, err)
			}
			return sessionErr("socket", "conn %d: handshake: %v", b.id, err)
		}
		sec.establish(a)
		sec.confirm()
		pc.sec = sec
		conv = a.conv
		agreedMTU = a.mtu
	}
	s, err := kcp.NewConn4(conv, cfg.raddr, cfg.block, cfg.fec.data, cfg.fec.parity, true, pc)
	if err != nil {
		pc.Close()
		return sessionErr("socket", "conn %d: kcp session: %v", b.id, err)
	}
	cfg.opts.apply(s)
	if agreedMTU != 0 {
		// The server may have agreed less than we stated.
		s.SetMtu(agreedMTU - sessionOverhead)
	}
	b.t, b.pc, b.kcp = s, pc, s
	return nil
}

// send writes the next message (its slot is the pacer's, zero in closed loop).
func (b *benchSession) send(sched time.Time) *benchErr {
	seq := b.nextSeq
	b.nextSeq++
	benchPayload(b.msg, b.id, seq)
	now := time.Now()
	if _, err := b.t.Write(b.msg); err != nil {
		if b.plain() && isTransient(err) {
			// A refused or dropped datagram is a lost message, not a broken session.
			b.out = append(b.out, inflight{seq, now, sched})
			b.waiting[seq] = struct{}{}
			b.sent++
			return nil
		}
		return b.ioErr("write", err)
	}
	b.out = append(b.out, inflight{seq, now, sched})
	if b.plain() {
		b.waiting[seq] = struct{}{}
	}
	b.sent++
	return nil
}

// isTransient is an error of a plain UDP write or read that a later datagram may not have
// (ICMP port unreachable from an earlier datagram, a full buffer).
func isTransient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN)
}

func (b *benchSession) ioErr(op string, err error) *benchErr {
	var pd *peerDisconnectError
	if errors.As(err, &pd) {
		return sessionErr("server_disconnect:"+pd.reason, "conn %d: %v", b.id, err)
	}
	return sessionErr("socket", "conn %d: %s: %v", b.id, op, err)
}

// receive reads once (until the transport's read deadline) and handles every whole message
// it completes: onEcho gets the message's record and the time it came back. It reports a
// timeout as (true, nil).
func (b *benchSession) receive(onEcho func(f inflight, at time.Time)) (timeout bool, err *benchErr) {
	n, rerr := b.t.Read(b.buf)
	at := time.Now()
	if rerr != nil {
		if isTimeout(rerr) {
			return true, nil
		}
		if b.plain() && isTransient(rerr) {
			return false, nil
		}
		return false, b.ioErr("read", rerr)
	}
	data := b.buf[:n]
	switch {
	case b.plain():
		return false, b.plainEcho(data, at, onEcho)
	case b.cfg.opts.stream:
		b.acc = append(b.acc, data...)
		for len(b.acc) >= b.cfg.size {
			if err := b.kcpEcho(b.acc[:b.cfg.size], at, onEcho); err != nil {
				return false, err
			}
			b.acc = b.acc[:copy(b.acc, b.acc[b.cfg.size:])]
		}
		return false, nil
	default:
		return false, b.kcpEcho(data, at, onEcho)
	}
}

// kcpEcho checks a KCP echo: reliable and ordered, so it is the oldest message outstanding.
func (b *benchSession) kcpEcho(got []byte, at time.Time, onEcho func(inflight, time.Time)) *benchErr {
	if len(b.out) == 0 {
		return sessionErr("unexpected_echo", "conn %d: a message of %d bytes with none outstanding", b.id, len(got))
	}
	f := b.out[0]
	benchPayload(b.want, b.id, f.seq)
	if !bytes.Equal(got, b.want) {
		return sessionErr("mismatch", "conn %d: %s", b.id, describeMismatch(int(f.seq), got, b.want))
	}
	b.out = b.out[1:]
	if len(b.out) == 0 {
		b.out = b.out[:0:0] // let the backing array go rather than grow forever
	}
	b.completed++
	if onEcho != nil {
		onEcho(f, at)
	}
	return nil
}

// plainEcho checks a plain UDP echo: any order, possibly duplicated or after its message
// was declared lost (a late echo, counted and ignored).
func (b *benchSession) plainEcho(got []byte, at time.Time, onEcho func(inflight, time.Time)) *benchErr {
	if len(got) != b.cfg.size {
		return sessionErr("mismatch", "conn %d: echo of %d bytes, want %d", b.id, len(got), b.cfg.size)
	}
	seq := binary.BigEndian.Uint64(got)
	benchPayload(b.want, b.id, seq)
	if !bytes.Equal(got, b.want) {
		return sessionErr("mismatch", "conn %d: %s", b.id, describeMismatch(int(seq), got, b.want))
	}
	if seq < b.firstSeq {
		return nil // a warm-up message answered twice
	}
	if _, ok := b.waiting[seq]; !ok {
		b.lateEchoes++
		return nil
	}
	delete(b.waiting, seq)
	b.completed++
	// Find its record; expiry drops answered records at the front.
	for i := range b.out {
		if b.out[i].seq == seq {
			if onEcho != nil {
				onEcho(b.out[i], at)
			}
			break
		}
	}
	b.trimAnswered()
	return nil
}

// trimAnswered drops answered records from the front of out (plain-udp).
func (b *benchSession) trimAnswered() {
	for len(b.out) > 0 {
		if _, ok := b.waiting[b.out[0].seq]; ok {
			break
		}
		b.out = b.out[1:]
	}
	if len(b.out) == 0 {
		b.out = b.out[:0:0]
	}
}

// expire declares lost the plain UDP messages sent more than lossTimeout before now.
func (b *benchSession) expire(now time.Time) {
	b.trimAnswered()
	for len(b.out) > 0 && !now.Before(b.out[0].sent.Add(b.cfg.lossTimeout)) {
		if _, ok := b.waiting[b.out[0].seq]; ok {
			delete(b.waiting, b.out[0].seq)
			b.lost++
		}
		b.out = b.out[1:]
		b.trimAnswered()
	}
}

// oldestDeadline is when the oldest plain UDP message outstanding is declared lost.
func (b *benchSession) oldestDeadline() (time.Time, bool) {
	b.trimAnswered()
	if len(b.out) == 0 {
		return time.Time{}, false
	}
	return b.out[0].sent.Add(b.cfg.lossTimeout), true
}

// exchange sends one message and waits for its echo until deadline (plain-udp: resending
// every 250 ms, as a datagram may be lost). It is the warm-up that makes the server create
// its session, and the check after a hold.
func (b *benchSession) exchange(deadline time.Time) *benchErr {
	b.t.SetWriteDeadline(deadline)
	base := b.completed
	if b.plain() {
		// Any attempt's echo will do; echoes of earlier exchanges are ignored.
		b.firstSeq = b.nextSeq
	}
	for b.completed == base {
		if err := b.send(time.Time{}); err != nil {
			return err
		}
		wake := deadline
		if b.plain() {
			wake = minTime(deadline, time.Now().Add(250*time.Millisecond))
		}
		for b.completed == base {
			b.t.SetReadDeadline(wake)
			timeout, err := b.receive(nil)
			if err != nil {
				return err
			}
			if timeout {
				break
			}
		}
		if b.completed == base && !time.Now().Before(deadline) {
			return sessionErr("echo_timeout", "conn %d: no echo of message %d by the deadline", b.id, b.nextSeq-1)
		}
	}
	if b.plain() {
		// Later echoes of the attempts that went unanswered are ignored, not late.
		b.firstSeq = b.nextSeq
		b.out = b.out[:0:0]
		clear(b.waiting)
	}
	b.sent, b.completed = 0, 0
	return nil
}

// load runs the session until stopAt, then waits up to drain for the echoes outstanding.
// p is nil in closed loop.
func (b *benchSession) load(stopAt time.Time, p *pacer, hist, schedHist *latHist) *benchErr {
	end := stopAt.Add(b.cfg.drain)
	b.t.SetWriteDeadline(end)
	onEcho := func(f inflight, at time.Time) {
		hist.record(at.Sub(f.sent))
		if p != nil {
			schedHist.record(at.Sub(f.sched))
		}
	}
	for {
		now := time.Now()
		if b.plain() {
			b.expire(now)
		}
		sending := now.Before(stopAt)
		for sending && b.outstanding() < b.cfg.window && (p == nil || p.due(now)) {
			var slot time.Time
			if p != nil {
				slot = p.sent(now)
			}
			if err := b.send(slot); err != nil {
				return err
			}
			now = time.Now()
			sending = now.Before(stopAt)
		}
		if !sending && b.outstanding() == 0 {
			return nil
		}
		if !now.Before(end) {
			if b.plain() {
				b.lost += uint64(len(b.waiting))
				clear(b.waiting)
				return nil
			}
			return sessionErr("echo_timeout", "conn %d: no echo for message %d within %v after the run", b.id, b.out[0].seq, b.cfg.drain)
		}
		wake := end
		if sending {
			wake = stopAt
			if p != nil && b.outstanding() < b.cfg.window {
				wake = minTime(wake, p.next)
			}
		}
		if b.plain() {
			if at, ok := b.oldestDeadline(); ok {
				wake = minTime(wake, at)
			}
		}
		b.t.SetReadDeadline(wake)
		if _, err := b.receive(onEcho); err != nil {
			return err
		}
	}
}

func countEstablished(sessions []*benchSession) (n int) {
	for _, b := range sessions {
		if b.established {
			n++
		}
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
