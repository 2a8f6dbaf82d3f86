package main

// A client for kcpwatch's secure mode, written from docs/protocol.md alone: the HELLO /
// COOKIE / ACCEPT / REJECT handshake, then a kcp-go low-level engine (kcp.NewKCP) whose every
// output datagram travels in a tagged DATA datagram, with the replay window, keepalives and
// DISCONNECT of the page's "Session datagrams" section.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand"
	"net"
	"os"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// Datagram types (protocol.md, "Datagram types").
const (
	typeHello      = 0x01
	typeCookie     = 0x02
	typeAccept     = 0x03
	typeReject     = 0x04
	typeReset      = 0x05
	typeData       = 0x10
	typeKeepalive  = 0x11
	typeDisconnect = 0x12
)

const (
	protocolVersion = 1
	// helloMinLen is the padded minimum length of a HELLO.
	helloMinLen = 64
	// helloHeaderLen is the HELLO up to the token: type, version, token_len, nonce, cookie.
	helloHeaderLen = 36
	maxTokenLen    = 1024
	cookieLen      = 36
	acceptLen      = 60
	rejectLen      = 20
	// sessionHeaderLen is type (1) + conv (4) + packet number (8).
	sessionHeaderLen = 13
	tagLen           = 8
	// sessionOverhead is what the session framing adds to a KCP datagram; the engine MTU is
	// the wire MTU minus this.
	sessionOverhead = sessionHeaderLen + tagLen
	replayWindowLen = 1024
	// resetLen is a RESET's exact length: type, then the conv, packet number and tag it echoes.
	resetLen = sessionOverhead
	// sentTagsLen is how many of its latest session datagrams the client remembers the tags
	// of, to recognise a RESET answering one of them.
	sentTagsLen = 64
)

// DISCONNECT reasons (protocol.md, "DISCONNECT").
const (
	disconnectLocalClosed = 4
)

var disconnectReasons = map[byte]string{
	1: "idle_timeout",
	2: "dead_link",
	3: "peer_closed",
	4: "local_closed",
	5: "shutdown",
	6: "evicted",
	7: "protocol_violation",
	8: "internal_error",
}

// REJECT reasons (protocol.md, "REJECT").
var rejectReasons = map[byte]string{
	1: "version_mismatch",
	2: "auth_rejected",
	3: "capacity",
	4: "rate_limited",
}

func reasonName(names map[byte]string, code byte) string {
	if name, ok := names[code]; ok {
		return name
	}
	return fmt.Sprintf("unknown_%d", code)
}

var (
	labelC2S = []byte("kcpwatch v1 client to server")
	labelS2C = []byte("kcpwatch v1 server to client")
)

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// deriveKeys returns key_c2s and key_s2c for a session secret.
func deriveKeys(secret []byte) (c2s, s2c []byte) {
	return hmacSHA256(secret, labelC2S), hmacSHA256(secret, labelS2C)
}

// buildHello encodes a HELLO: version, token, nonce and cookie (16 zero bytes for the first
// HELLO), zero-padded to at least 64 bytes.
func buildHello(version byte, nonce, cookie [16]byte, token []byte) []byte {
	n := max(helloHeaderLen+len(token), helloMinLen)
	b := make([]byte, n)
	b[0] = typeHello
	b[1] = version
	binary.LittleEndian.PutUint16(b[2:], uint16(len(token)))
	copy(b[4:20], nonce[:])
	copy(b[20:36], cookie[:])
	copy(b[36:], token)
	return b
}

// acceptInfo is a parsed ACCEPT.
type acceptInfo struct {
	nonce         [16]byte
	conv          uint32
	secret        [32]byte
	idleTimeoutMs uint32
}

// parseCookie returns the nonce and cookie of a COOKIE datagram.
func parseCookie(b []byte) (nonce, cookie [16]byte, ok bool) {
	if len(b) != cookieLen || b[0] != typeCookie || b[1] != protocolVersion {
		return nonce, cookie, false
	}
	copy(nonce[:], b[4:20])
	copy(cookie[:], b[20:36])
	return nonce, cookie, true
}

// parseAccept decodes an ACCEPT datagram. A conv of 0 is refused: the page says the server
// never chooses it.
func parseAccept(b []byte) (a acceptInfo, ok bool) {
	if len(b) != acceptLen || b[0] != typeAccept || b[1] != protocolVersion {
		return a, false
	}
	copy(a.nonce[:], b[4:20])
	a.conv = binary.LittleEndian.Uint32(b[20:24])
	copy(a.secret[:], b[24:56])
	a.idleTimeoutMs = binary.LittleEndian.Uint32(b[56:60])
	return a, a.conv != 0
}

// parseReject returns the server's version, the reason code and the nonce of a REJECT. The
// version byte is not checked: a version_mismatch REJECT carries the server's own version.
func parseReject(b []byte) (version, reason byte, nonce [16]byte, ok bool) {
	if len(b) != rejectLen || b[0] != typeReject {
		return 0, 0, nonce, false
	}
	copy(nonce[:], b[4:20])
	return b[1], b[2], nonce, true
}

// sealSession encodes a session datagram: type, conv, packet number, body, then the first 8
// bytes of HMAC(key, everything before the tag).
func sealSession(typ byte, conv uint32, pn uint64, body, key []byte) []byte {
	b := make([]byte, sessionHeaderLen+len(body), sessionHeaderLen+len(body)+tagLen)
	b[0] = typ
	binary.LittleEndian.PutUint32(b[1:5], conv)
	binary.LittleEndian.PutUint64(b[5:13], pn)
	copy(b[sessionHeaderLen:], body)
	return append(b, hmacSHA256(key, b)[:tagLen]...)
}

// Reasons a session datagram is dropped (the page's counter names where it has one).
var (
	errNotSession = errors.New("not_session")
	errTooShort   = errors.New("too_short")
	errWrongConv  = errors.New("wrong_conv")
	errBadTag     = errors.New("bad_tag")
	errBadLength  = errors.New("bad_length")
)

// openSession checks a session datagram's type, conv and tag (in constant time) and returns
// its type, packet number and body. It does not look at the replay window.
func openSession(b []byte, conv uint32, key []byte) (typ byte, pn uint64, body []byte, err error) {
	if len(b) == 0 || b[0] < typeData || b[0] > typeDisconnect {
		return 0, 0, nil, errNotSession
	}
	if len(b) < sessionOverhead {
		return 0, 0, nil, errTooShort
	}
	if binary.LittleEndian.Uint32(b[1:5]) != conv {
		return 0, 0, nil, errWrongConv
	}
	end := len(b) - tagLen
	if !hmac.Equal(hmacSHA256(key, b[:end])[:tagLen], b[end:]) {
		return 0, 0, nil, errBadTag
	}
	typ = b[0]
	body = b[sessionHeaderLen:end]
	switch {
	case typ == typeData && len(body) == 0,
		typ == typeKeepalive && len(body) != 0,
		typ == typeDisconnect && len(body) != 1:
		return 0, 0, nil, errBadLength
	}
	return typ, binary.LittleEndian.Uint64(b[5:13]), body, nil
}

// replayWindow remembers the highest packet number accepted and which of the 1024 numbers
// below it were seen.
type replayWindow struct {
	any     bool
	highest uint64
	bits    [replayWindowLen / 64]uint64
}

func (w *replayWindow) bit(n uint64) (word int, mask uint64) {
	i := n % replayWindowLen
	return int(i / 64), 1 << (i % 64)
}

// fresh reports whether n may be accepted: not seen, and less than 1024 below the highest.
func (w *replayWindow) fresh(n uint64) bool {
	if !w.any || n > w.highest {
		return true
	}
	if w.highest-n >= replayWindowLen {
		return false
	}
	word, mask := w.bit(n)
	return w.bits[word]&mask == 0
}

// record marks n as seen; call it only after the tag verified and fresh(n) held.
func (w *replayWindow) record(n uint64) {
	switch {
	case !w.any:
		w.any = true
		w.highest = n
	case n > w.highest:
		if n-w.highest >= replayWindowLen {
			w.bits = [replayWindowLen / 64]uint64{}
		} else {
			// The slots of the numbers skipped over held numbers now out of the window.
			for k := w.highest + 1; k < n; k++ {
				word, mask := w.bit(k)
				w.bits[word] &^= mask
			}
		}
		w.highest = n
	}
	word, mask := w.bit(n)
	w.bits[word] |= mask
}

// handshakeError is a handshake that did not end in ACCEPT; reason is a protocol name
// (auth_rejected, capacity, handshake_timeout, ...).
type handshakeError struct {
	reason string
	detail string
}

func (e *handshakeError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("handshake failed: %s (%s)", e.reason, e.detail)
	}
	return "handshake failed: " + e.reason
}

// wireCounters counts every UDP datagram and byte of the client's socket.
type wireCounters struct {
	datagramsSent, datagramsReceived uint64
	bytesSent, bytesReceived         uint64
}

// secureSession is the client side of one secure-mode connection. Everything runs on the
// goroutine that owns it; nothing here is safe for concurrent use.
type secureSession struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	wire   wireCounters

	conv           uint32
	idleTimeout    time.Duration
	keyC2S, keyS2C []byte
	sendPN         uint64
	replay         replayWindow
	lastSent       time.Time
	engine         *kcp.KCP
	ackNoDelay     bool
	sendErr        error

	// Datagrams dropped after the handshake, by reason.
	dropped map[string]uint64
	// peerDisconnect is the reason of a DISCONNECT from the server, "" while none came.
	peerDisconnect string
	handshakeTime  time.Duration
	// sentTags holds the packet number + 1 (0: empty) and tag of the latest session datagrams
	// sent, by packet number modulo sentTagsLen (protocol.md, "RESET").
	sentTags [sentTagsLen]struct {
		pn1 uint64
		tag [tagLen]byte
	}
	// keepalivesReceived counts the server's KEEPALIVEs. The client does not time the server
	// out by itself: protocol.md does not say when (or whether) a server sends keepalives to a
	// quiet client, so silence is not proof of a dead session; --timeout-ms bounds a run.
	keepalivesReceived uint64
}

func (s *secureSession) write(b []byte) error {
	if _, err := s.conn.WriteToUDP(b, s.server); err != nil {
		return err
	}
	s.wire.datagramsSent++
	s.wire.bytesSent += uint64(len(b))
	return nil
}

// read waits for one datagram until deadline. It returns (nil, nil) on a timeout.
func (s *secureSession) read(buf []byte, deadline time.Time) ([]byte, error) {
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	n, _, err := s.conn.ReadFromUDP(buf)
	if err != nil {
		if isTimeout(err) {
			return nil, nil
		}
		return nil, err
	}
	s.wire.datagramsReceived++
	s.wire.bytesReceived += uint64(n)
	return buf[:n], nil
}

// handshake runs HELLO → (COOKIE → HELLO) → ACCEPT. It retransmits the current HELLO after
// 250 ms, 500 ms, 1 s, then every 2 s, restarts at 250 ms on a COOKIE, and gives up after
// timeout. A REJECT ends it with the REJECT's reason.
func (s *secureSession) handshake(version byte, token []byte, timeout time.Duration) (acceptInfo, error) {
	start := time.Now()
	giveUp := start.Add(timeout)
	var nonce, cookie [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return acceptInfo{}, err
	}
	hello := buildHello(version, nonce, cookie, token)
	const firstWait, maxWait = 250 * time.Millisecond, 2 * time.Second
	wait := firstWait
	if err := s.write(hello); err != nil {
		return acceptInfo{}, err
	}
	resendAt := time.Now().Add(wait)
	// Every reply has an exact length of at most 60 bytes; a larger datagram, truncated here,
	// is dropped for its length all the same. (bench-client runs thousands of handshakes at
	// once: keep this small.)
	buf := make([]byte, 2048)
	for {
		now := time.Now()
		if !now.Before(giveUp) {
			return acceptInfo{}, &handshakeError{reason: "handshake_timeout", detail: fmt.Sprintf("no ACCEPT within %d ms", timeout.Milliseconds())}
		}
		if !now.Before(resendAt) {
			if err := s.write(hello); err != nil {
				return acceptInfo{}, err
			}
			wait = min(2*wait, maxWait)
			resendAt = now.Add(wait)
		}
		deadline := resendAt
		if giveUp.Before(deadline) {
			deadline = giveUp
		}
		d, err := s.read(buf, deadline)
		if err != nil {
			return acceptInfo{}, err
		}
		if len(d) == 0 {
			continue
		}
		// Replies whose nonce is not ours are ignored, as are malformed ones.
		switch d[0] {
		case typeCookie:
			n, c, ok := parseCookie(d)
			if !ok || n != nonce {
				continue
			}
			cookie = c
			hello = buildHello(version, nonce, cookie, token)
			if err := s.write(hello); err != nil {
				return acceptInfo{}, err
			}
			wait = firstWait
			resendAt = time.Now().Add(wait)
		case typeAccept:
			a, ok := parseAccept(d)
			if !ok || a.nonce != nonce {
				continue
			}
			s.handshakeTime = time.Since(start)
			return a, nil
		case typeReject:
			v, reason, n, ok := parseReject(d)
			if !ok || n != nonce {
				continue
			}
			e := &handshakeError{reason: reasonName(rejectReasons, reason)}
			if reason == 1 {
				e.detail = fmt.Sprintf("the server speaks version %d", v)
			}
			return acceptInfo{}, e
		}
	}
}

// establish sets up the session from an ACCEPT: the conv, the keys and the keepalive clock.
// Whatever carries KCP over the session (start's engine for secure-client, a kcp-go
// UDPSession on a pushConn for bench-client) is the caller's.
func (s *secureSession) establish(a acceptInfo) {
	s.conv = a.conv
	s.idleTimeout = time.Duration(a.idleTimeoutMs) * time.Millisecond
	s.keyC2S, s.keyS2C = deriveKeys(a.secret[:])
	s.dropped = map[string]uint64{}
	s.lastSent = time.Now()
}

// start establishes the session and gives it its own low-level engine (MTU = wire MTU - 21),
// whose output leaves in DATA datagrams.
func (s *secureSession) start(a acceptInfo, opts *kcpOpts) {
	s.establish(a)
	s.engine = kcp.NewKCP(a.conv, func(buf []byte, size int) {
		// buf is the engine's own buffer, reused after we return: seal (copies) and send now.
		if err := s.send(typeData, buf[:size]); err != nil && s.sendErr == nil {
			s.sendErr = err
		}
	})
	s.engine.NoDelay(opts.nodelay, opts.interval, opts.resend, opts.nc)
	s.engine.WndSize(opts.sndwnd, opts.rcvwnd)
	s.engine.SetMtu(opts.mtu - sessionOverhead)
	s.ackNoDelay = opts.ackNoDel
}

// send seals body in a session datagram with the next packet number and sends it.
func (s *secureSession) send(typ byte, body []byte) error {
	d := sealSession(typ, s.conv, s.sendPN, body, s.keyC2S)
	slot := &s.sentTags[s.sendPN%sentTagsLen]
	slot.pn1 = s.sendPN + 1
	copy(slot.tag[:], d[len(d)-tagLen:])
	s.sendPN++
	s.lastSent = time.Now()
	return s.write(d)
}

// keepaliveEvery is a quarter of the server's idle timeout (0: the server announced none).
func (s *secureSession) keepaliveEvery() time.Duration { return s.idleTimeout / 4 }

// receive handles one datagram after the handshake: session datagrams are verified, checked
// against the replay window and then acted on; everything else is dropped (a repeated ACCEPT
// included: the session already exists). It returns the body of a DATA datagram (a slice of
// d), which the caller feeds to its KCP engine, and nil for anything else.
func (s *secureSession) receive(d []byte) (data []byte) {
	if len(d) > 0 && d[0] == typeReset {
		if reason := s.checkReset(d); reason != "" {
			s.dropped[reason]++
		} else {
			s.peerDisconnect = "reset"
		}
		return nil
	}
	typ, pn, body, err := openSession(d, s.conv, s.keyS2C)
	if err != nil {
		if err == errNotSession && len(d) > 0 && d[0] == typeAccept {
			err = errors.New("late_accept")
		}
		s.dropped[err.Error()]++
		return nil
	}
	if !s.replay.fresh(pn) {
		s.dropped["replayed"]++
		return nil
	}
	s.replay.record(pn)
	switch typ {
	case typeData:
		return body
	case typeKeepalive:
		s.keepalivesReceived++
	case typeDisconnect:
		s.peerDisconnect = reasonName(disconnectReasons, body[0])
	}
	return nil
}

// checkReset says why a RESET does not end the session ("" if it does): it must have the
// exact length, our conv, and echo the packet number and tag of one of our latest datagrams
// (compared in constant time), which only someone who saw that datagram knows.
func (s *secureSession) checkReset(d []byte) string {
	if len(d) != resetLen {
		return "reset_length"
	}
	if binary.LittleEndian.Uint32(d[1:5]) != s.conv {
		return "no_session"
	}
	pn := binary.LittleEndian.Uint64(d[5:13])
	slot := &s.sentTags[pn%sentTagsLen]
	if slot.pn1 == 0 || slot.pn1 != pn+1 || !hmac.Equal(slot.tag[:], d[13:]) {
		return "reset_tag"
	}
	return ""
}

// disconnect sends DISCONNECT three times, each copy with its own packet number (numbers are
// never reused under one key, and the receiver's replay window would refuse a repeat).
func (s *secureSession) disconnect(reason byte) {
	for range 3 {
		s.send(typeDisconnect, []byte{reason})
	}
}

// kcpClock reads kcp-go's millisecond clock, the one Check answers in. kcp-go does not export
// it, but Check on an engine never updated returns it.
var kcpClock = kcp.NewKCP(0, func([]byte, int) {})

// untilCheck is how long until the engine wants Update again.
func untilCheck(e *kcp.KCP) time.Duration {
	d := int32(e.Check() - kcpClock.Check())
	if d < 0 {
		d = 0
	}
	return time.Duration(d) * time.Millisecond
}

// applyPreset fills the KCP flags the command line did not set from a kcpwatch preset. Only
// "game" is known here (protocol.md documents it; the flags' defaults are its values).
func applyPreset(fs *flag.FlagSet, preset string, opts *kcpOpts) error {
	if preset != "game" {
		return fmt.Errorf("unknown --preset %q (known: game)", preset)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	game := kcpOpts{nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256, mtu: 1200}
	for name, apply := range map[string]func(){
		"nodelay":  func() { opts.nodelay = game.nodelay },
		"interval": func() { opts.interval = game.interval },
		"resend":   func() { opts.resend = game.resend },
		"nc":       func() { opts.nc = game.nc },
		"sndwnd":   func() { opts.sndwnd = game.sndwnd },
		"rcvwnd":   func() { opts.rcvwnd = game.rcvwnd },
		"mtu":      func() { opts.mtu = game.mtu },
		"stream":   func() { opts.stream = false },
	} {
		if !set[name] {
			apply()
		}
	}
	return nil
}

// echoConfig is what a secure-client run does.
type echoConfig struct {
	addr             string
	count            int
	minSize, maxSize int
	seed             int64
	token            []byte
	helloVersion     byte
	window           int
	timeout          time.Duration
	handshakeTimeout time.Duration
	linger           time.Duration
	opts             kcpOpts
}

// echoResult is the JSON line of a run, successful or not.
type echoResult struct {
	OK                    bool              `json:"ok"`
	Error                 string            `json:"error,omitempty"`
	Reason                string            `json:"reason,omitempty"`
	Mode                  string            `json:"mode"`
	Sent                  int               `json:"sent"`
	Received              int               `json:"received"`
	BytesSent             int64             `json:"bytes_sent"`
	BytesReceived         int64             `json:"bytes_received"`
	WireBytesSent         uint64            `json:"wire_bytes_sent"`
	WireBytesReceived     uint64            `json:"wire_bytes_received"`
	DatagramsSent         uint64            `json:"datagrams_sent"`
	DatagramsReceived     uint64            `json:"datagrams_received"`
	Dropped               map[string]uint64 `json:"dropped,omitempty"`
	Local                 string            `json:"local,omitempty"`
	Conv                  uint32            `json:"conv,omitempty"`
	ServerIdleTimeoutMs   int64             `json:"server_idle_timeout_ms,omitempty"`
	HandshakeMs           int64             `json:"handshake_ms"`
	ElapsedMs             int64             `json:"elapsed_ms"`
	PacketNumbersSent     uint64            `json:"packet_numbers_sent"`
	HighestPacketReceived uint64            `json:"highest_packet_received"`
	KeepalivesReceived    uint64            `json:"keepalives_received"`
}

// secureEcho connects, sends cfg.count messages, checks every echo byte for byte, and ends
// the session with DISCONNECT (local_closed). On failure the result has OK false, Error set
// and, where the protocol names it, Reason (a REJECT reason, handshake_timeout, the reason of
// the server's DISCONNECT, timeout).
func secureEcho(cfg echoConfig) (res echoResult) {
	start := time.Now()
	res.Mode = "secure"
	deadline := start.Add(cfg.timeout)
	raddr, err := net.ResolveUDPAddr("udp", cfg.addr)
	if err != nil {
		res.Error = fmt.Sprintf("resolve %s: %v", cfg.addr, err)
		return res
	}
	conn, err := localUDP(raddr)
	if err != nil {
		res.Error = fmt.Sprintf("socket for %s: %v", cfg.addr, err)
		return res
	}
	defer conn.Close()
	s := &secureSession{conn: conn, server: raddr}
	res.Local = conn.LocalAddr().String()
	defer func() {
		res.ElapsedMs = time.Since(start).Milliseconds()
		res.WireBytesSent, res.WireBytesReceived = s.wire.bytesSent, s.wire.bytesReceived
		res.DatagramsSent, res.DatagramsReceived = s.wire.datagramsSent, s.wire.datagramsReceived
		res.HandshakeMs = s.handshakeTime.Milliseconds()
		res.Conv, res.ServerIdleTimeoutMs = s.conv, s.idleTimeout.Milliseconds()
		res.PacketNumbersSent, res.HighestPacketReceived = s.sendPN, s.replay.highest
		res.KeepalivesReceived = s.keepalivesReceived
		if len(s.dropped) > 0 {
			res.Dropped = s.dropped
		}
		res.OK = res.Error == ""
	}()

	handshakeTimeout := min(cfg.handshakeTimeout, time.Until(deadline))
	accept, err := s.handshake(cfg.helloVersion, cfg.token, handshakeTimeout)
	if err != nil {
		var he *handshakeError
		if errors.As(err, &he) {
			res.Reason = he.reason
		}
		res.Error = err.Error()
		return res
	}
	s.start(accept, &cfg.opts)

	// One goroutine, one loop: queue messages while fewer than cfg.window are outstanding,
	// Update the engine when Check says so, keep the session alive, and wait for the socket
	// until the earliest of those.
	rng := mrand.New(mrand.NewSource(cfg.seed))
	var pending [][]byte
	buf := make([]byte, 65536)
	msg := make([]byte, 256*cfg.opts.mtu)
	var lingerUntil time.Time
	for res.Error == "" {
		now := time.Now()
		switch {
		case s.sendErr != nil:
			res.Error = fmt.Sprintf("send after %d of %d echoes: %v", res.Received, cfg.count, s.sendErr)
			continue
		case s.peerDisconnect != "":
			res.Error = fmt.Sprintf("the server disconnected (%s) after %d of %d echoes", s.peerDisconnect, res.Received, cfg.count)
			res.Reason = s.peerDisconnect
			continue
		case !now.Before(deadline):
			res.Error = fmt.Sprintf("timeout after %d ms: %d of %d echoes received", cfg.timeout.Milliseconds(), res.Received, cfg.count)
			res.Reason = "timeout"
			continue
		}
		if res.Received == cfg.count {
			if lingerUntil.IsZero() {
				lingerUntil = now.Add(cfg.linger)
			}
			if !now.Before(lingerUntil) {
				break
			}
		}
		for res.Sent < cfg.count && len(pending) < cfg.window {
			m := message(rng, res.Sent, cfg.minSize, cfg.maxSize)
			if r := s.engine.Send(m); r < 0 {
				res.Error = fmt.Sprintf("kcp send of message %d (%d bytes) refused: %d", res.Sent, len(m), r)
				break
			}
			pending = append(pending, m)
			res.Sent++
			res.BytesSent += int64(len(m))
		}
		if untilCheck(s.engine) == 0 {
			s.engine.Update()
		}
		every := s.keepaliveEvery()
		if every > 0 && time.Since(s.lastSent) >= every {
			if err := s.send(typeKeepalive, nil); err != nil && s.sendErr == nil {
				s.sendErr = err
			}
		}

		wake := time.Now().Add(max(untilCheck(s.engine), time.Millisecond))
		if every > 0 {
			if k := s.lastSent.Add(every); k.Before(wake) {
				wake = k
			}
		}
		if !lingerUntil.IsZero() && lingerUntil.Before(wake) {
			wake = lingerUntil
		}
		if deadline.Before(wake) {
			wake = deadline
		}
		d, err := s.read(buf, wake)
		if err != nil {
			res.Error = fmt.Sprintf("socket: %v", err)
			break
		}
		if d == nil {
			continue
		}
		if body := s.receive(d); body != nil && s.engine.Input(body, kcp.IKCP_PACKET_REGULAR, s.ackNoDelay) < 0 {
			s.dropped["kcp_input"]++
		}
		for res.Error == "" {
			size := s.engine.PeekSize()
			if size < 0 {
				break
			}
			if size > len(msg) {
				msg = make([]byte, size)
			}
			got := msg[:s.engine.Recv(msg)]
			switch {
			case len(pending) == 0:
				res.Error = fmt.Sprintf("unexpected message of %d bytes after %d echoes", len(got), res.Received)
			case !bytes.Equal(got, pending[0]):
				res.Error = describeMismatch(res.Received, got, pending[0])
			default:
				pending = pending[1:]
				res.Received++
				res.BytesReceived += int64(len(got))
			}
		}
	}
	if s.peerDisconnect == "" {
		// Flush what the engine owes (the ACKs of the last echoes), then say goodbye.
		s.engine.Update()
		s.disconnect(disconnectLocalClosed)
	}
	return res
}

func runSecureClient(args []string) {
	fs := flag.NewFlagSet("secure-client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	count := fs.Int("count", 1000, "number of messages")
	minSize := fs.Int("min-size", 1, "smallest message size in bytes")
	maxSize := fs.Int("max-size", 1000, "largest message size in bytes (the engine fragments messages larger than its mss)")
	seed := fs.Int64("seed", 1, "seed for message sizes and contents")
	token := fs.String("token", "", "application token carried in the HELLO (at most 1024 bytes)")
	preset := fs.String("preset", "game", "kcpwatch KCP preset for the KCP flags not given (only game is known)")
	timeoutMs := fs.Int("timeout-ms", 30000, "overall timeout in ms")
	handshakeMs := fs.Int("handshake-timeout-ms", 10000, "give up the handshake after this many ms")
	window := fs.Int("window", 64, "messages outstanding at once")
	lingerMs := fs.Int("linger-ms", 0, "keep the session open (with keepalives) this long after the last echo before DISCONNECT")
	helloVersion := fs.Int("hello-version", protocolVersion, "version byte of the HELLO (to test version_mismatch)")
	var opts kcpOpts
	opts.register(fs)
	fs.Lookup("mtu").Usage = "largest UDP payload in bytes; the KCP engine's MTU is this minus 21 (the session framing)"
	fs.Parse(args)
	if err := applyPreset(fs, *preset, &opts); err != nil {
		usageError("secure-client: %v", err)
	}
	if err := opts.validate(); err != nil {
		usageError("secure-client: %v", err)
	}
	mss := opts.mtu - sessionOverhead - kcpOverhead
	switch {
	case opts.stream:
		usageError("secure-client: --stream is not supported (kcp-go's low-level engine exports no stream-mode switch)")
	case mss < 1:
		usageError("secure-client: --mtu too small for the session framing")
	case *count < 0:
		usageError("secure-client: --count must be >= 0")
	case *minSize < 1:
		usageError("secure-client: --min-size must be >= 1 (an empty KCP send is refused)")
	case *maxSize < *minSize:
		usageError("secure-client: --max-size must be >= --min-size")
	case (*maxSize+mss-1)/mss >= min(opts.rcvwnd, 256):
		usageError("secure-client: --max-size %d needs too many fragments for mss %d and --rcvwnd %d", *maxSize, mss, opts.rcvwnd)
	case *window < 1:
		usageError("secure-client: --window must be >= 1")
	case len(*token) > maxTokenLen:
		usageError("secure-client: --token is longer than %d bytes", maxTokenLen)
	case *helloVersion < 0 || *helloVersion > 255:
		usageError("secure-client: --hello-version must fit in a byte")
	case *handshakeMs < 1 || *timeoutMs < 1:
		usageError("secure-client: --handshake-timeout-ms and --timeout-ms must be positive")
	}
	res := secureEcho(echoConfig{
		addr: *addr, count: *count, minSize: *minSize, maxSize: *maxSize, seed: *seed,
		token: []byte(*token), helloVersion: byte(*helloVersion), window: *window,
		timeout:          time.Duration(*timeoutMs) * time.Millisecond,
		handshakeTimeout: time.Duration(*handshakeMs) * time.Millisecond,
		linger:           time.Duration(*lingerMs) * time.Millisecond,
		opts:             opts,
	})
	emit(res)
	if !res.OK {
		os.Exit(1)
	}
}
