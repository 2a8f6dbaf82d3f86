package main

// A client for kcpwatch's secure mode, version 2, written from docs/protocol.md alone: the
// HELLO / COOKIE / ACCEPT / REJECT handshake carrying a Noise NK handshake
// (Noise_NK_25519_ChaChaPoly_BLAKE2s, github.com/flynn/noise), then a kcp-go low-level
// engine (kcp.NewKCP) whose every output datagram travels encrypted in a DATA datagram, with
// the replay window, keepalives, RESET and DISCONNECT of the page's "Session datagrams"
// section.

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"github.com/flynn/noise"
	kcp "github.com/xtaci/kcp-go/v5"
)

// handshakeError is a handshake that did not end in ACCEPT; reason is a protocol name
// (auth_rejected, capacity, unknown_server_key, server_auth_failed, handshake_timeout, ...).
type handshakeError struct {
	reason string
	detail string
	// code is an auth_rejected REJECT's application code (0: none).
	code uint16
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
	// serverKey is the server static public key the client pins (32 bytes).
	serverKey []byte
	// rng supplies nonces and ephemeral keys (nil: crypto/rand).
	rng  io.Reader
	wire wireCounters

	conv         uint32
	idleTimeout  time.Duration
	sendC, recvC noise.Cipher
	sendPN       uint64
	replay       replayWindow
	lastSent     time.Time
	// lastValid is when the last authentic datagram arrived (the client's idle clock).
	lastValid  time.Time
	engine     *kcp.KCP
	ackNoDelay bool
	sendErr    error

	// Datagrams dropped after the handshake, by reason.
	dropped map[string]uint64
	// peerDisconnect is why the server ended the session, "" while it has not: a DISCONNECT
	// reason, or "reset".
	peerDisconnect string
	// peerClose is the server's DISCONNECT (its code and text), when one came.
	peerClose     closeInfo
	handshakeTime time.Duration
	// heardServer: an authentic session datagram arrived since the ACCEPT.
	heardServer bool
	// sentTags holds the packet number + 1 (0: empty) and tag echo of the latest session
	// datagrams sent, by packet number modulo sentTagsLen (protocol.md, "RESET").
	sentTags [sentTagsLen]struct {
		pn1  uint64
		echo [tagEchoLen]byte
	}
	keepalivesReceived uint64
	// datagrams is the DATAGRAM receive side (datagram.go).
	datagrams datagramState
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

// Handshake retransmission (protocol.md, "Client timers").
const (
	helloFirstWait = 250 * time.Millisecond
	helloMaxWait   = 2 * time.Second
)

// handshake runs HELLO → (COOKIE → HELLO) → ACCEPT, stating params (params.mtu: the largest
// UDP payload we accept); the ACCEPT's agreed MTU is never larger, and its stream mode is
// ours (a server refuses a mismatch with a REJECT stream_mismatch). It retransmits the current HELLO after
// 250 ms, 500 ms, 1 s, then every 2 s, restarts at 250 ms on a COOKIE, and gives up after
// timeout. A REJECT ends it with the REJECT's reason, an ACCEPT that does not decrypt with
// server_auth_failed. Replies are taken from any source address.
func (s *secureSession) handshake(version byte, params kcpParams, token []byte, timeout time.Duration) (acceptInfo, error) {
	mtu := params.mtu
	start := time.Now()
	giveUp := start.Add(timeout)
	rng := s.rng
	if rng == nil {
		rng = rand.Reader
	}
	var nonce, cookie [16]byte
	if _, err := io.ReadFull(rng, nonce[:]); err != nil {
		return acceptInfo{}, err
	}
	attempt, err := newHelloAttempt(version, s.serverKey, nonce, params, token, rng)
	if err != nil {
		return acceptInfo{}, err
	}
	hello := attempt.datagram(cookie)
	wait := helloFirstWait
	if err := s.write(hello); err != nil {
		return acceptInfo{}, err
	}
	resendAt := time.Now().Add(wait)
	// Every reply has an exact length of at most 85 bytes; a larger datagram, truncated here,
	// is dropped for its length all the same. (bench-client runs thousands of handshakes at
	// once: keep this small.)
	buf := make([]byte, 256)
	for {
		now := time.Now()
		if !now.Before(giveUp) {
			return acceptInfo{}, &handshakeError{reason: "handshake_timeout", detail: fmt.Sprintf("no ACCEPT within %d ms", timeout.Milliseconds())}
		}
		if !now.Before(resendAt) {
			if err := s.write(hello); err != nil {
				return acceptInfo{}, err
			}
			wait = min(2*wait, helloMaxWait)
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
			hello = attempt.datagram(cookie)
			if err := s.write(hello); err != nil {
				return acceptInfo{}, err
			}
			wait = helloFirstWait
			resendAt = time.Now().Add(wait)
		case typeAccept:
			n, ok := acceptNonce(d)
			if !ok || n != nonce {
				continue
			}
			a, err := attempt.readAccept(d)
			if err == errServerAuth {
				return acceptInfo{}, &handshakeError{reason: "server_auth_failed", detail: "the ACCEPT does not decrypt: the server does not hold the pinned key"}
			}
			if err != nil {
				// A conv of 0: the page fails the attempt with the same reason.
				return acceptInfo{}, &handshakeError{reason: "server_auth_failed", detail: err.Error()}
			}
			if a.mtu > mtu {
				return acceptInfo{}, &handshakeError{reason: "malformed", detail: fmt.Sprintf("the ACCEPT agrees mtu %d, above our %d", a.mtu, mtu)}
			}
			if a.server.stream != params.stream {
				return acceptInfo{}, &handshakeError{reason: "stream_mismatch", detail: "the ACCEPT states the other KCP mode (stream on one side only)"}
			}
			a.maxMessage = sendCeiling(params, a.server, a.mtu)
			s.handshakeTime = time.Since(start)
			return a, nil
		case typeReject:
			r, ok := parseReject(d)
			if !ok || !r.answers(attempt.header) {
				continue
			}
			e := &handshakeError{reason: reasonName(rejectReasons, r.reason), code: r.code}
			switch r.reason {
			case rejectVersionMismatch:
				e.detail = fmt.Sprintf("the server speaks version %d", r.version)
			case rejectAuthRejected:
				if r.code != 0 {
					e.detail = fmt.Sprintf("application code %d", r.code)
				}
			}
			return acceptInfo{}, e
		}
	}
}

// establish sets up the session from an ACCEPT: the conv, the ciphers and the keepalive and
// idle clocks. Whatever carries KCP over the session (start's engine for secure-client, a
// kcp-go UDPSession on a pushConn for bench-client) is the caller's.
func (s *secureSession) establish(a acceptInfo) {
	s.conv = a.conv
	s.idleTimeout = time.Duration(a.idleTimeoutMs) * time.Millisecond
	s.sendC, s.recvC = a.send, a.recv
	s.dropped = map[string]uint64{}
	s.lastSent = time.Now()
	s.lastValid = s.lastSent
}

// confirm sends the KEEPALIVE that confirms the ACCEPT: the server announces the connection
// only when an authenticated datagram from us arrives (protocol.md, "Handshake
// confirmation"), so it goes at once, before any DATA, whatever the application does next.
func (s *secureSession) confirm() {
	if err := s.send(typeKeepalive, nil); err != nil && s.sendErr == nil {
		s.sendErr = err
	}
}

// start establishes the session and gives it its own low-level engine (MTU = the agreed MTU
// - 29), whose output leaves in DATA datagrams.
func (s *secureSession) start(a acceptInfo, opts *kcpOpts) {
	s.establish(a)
	s.confirm()
	s.engine = kcp.NewKCP(a.conv, func(buf []byte, size int) {
		// buf is the engine's own buffer, reused after we return: seal (copies) and send now.
		if err := s.send(typeData, buf[:size]); err != nil && s.sendErr == nil {
			s.sendErr = err
		}
	})
	s.engine.NoDelay(opts.nodelay, opts.interval, opts.resend, opts.nc)
	s.engine.WndSize(opts.sndwnd, opts.rcvwnd)
	s.engine.SetMtu(a.mtu - sessionOverhead)
	s.ackNoDelay = opts.ackNoDel
}

// send seals body in a session datagram with the next packet number and sends it.
func (s *secureSession) send(typ byte, body []byte) error {
	d := sealSession(typ, s.conv, s.sendPN, body, s.sendC)
	slot := &s.sentTags[s.sendPN%sentTagsLen]
	slot.pn1 = s.sendPN + 1
	copy(slot.echo[:], d[len(d)-tagLen:])
	s.sendPN++
	s.lastSent = time.Now()
	return s.write(d)
}

// confirmRetry is how often the confirming KEEPALIVE repeats until the server is heard from.
const confirmRetry = 500 * time.Millisecond

// keepaliveEvery is a quarter of the server's idle timeout (0: the server announced none);
// at most confirmRetry until something authentic came from the server, whose confirmation of
// the handshake may be waiting for our lost KEEPALIVE.
func (s *secureSession) keepaliveEvery() time.Duration {
	every := s.idleTimeout / 4
	if !s.heardServer && (every == 0 || every > confirmRetry) {
		return confirmRetry
	}
	return every
}

// receive handles one datagram after the handshake: session datagrams are decrypted, checked
// against the replay window and then acted on; a RESET is checked against the tags sent;
// everything else is dropped (a repeated ACCEPT included: the session already exists). It
// returns the plaintext of a DATA datagram (a slice of d), which the caller feeds to its KCP
// engine, and nil for anything else.
func (s *secureSession) receive(d []byte) (data []byte) {
	if len(d) > 0 && d[0] == typeReset {
		if reason := s.checkReset(d); reason != "" {
			s.dropped[reason]++
		} else {
			s.peerDisconnect = "reset"
		}
		return nil
	}
	typ, pn, body, err := openSession(d, s.conv, s.recvC)
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
	s.lastValid = time.Now()
	s.heardServer = true
	switch typ {
	case typeData:
		if len(body) == 0 {
			s.dropped["empty_data"]++
			return nil
		}
		return body
	case typeKeepalive:
		s.keepalivesReceived++
	case typeDatagram:
		s.onDatagram(pn, body)
	case typeDisconnect:
		s.peerClose = parseDisconnect(body)
		s.peerDisconnect = reasonName(disconnectReasons, s.peerClose.reason)
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
	if slot.pn1 == 0 || slot.pn1 != pn+1 || subtle.ConstantTimeCompare(slot.echo[:], d[13:resetLen]) != 1 {
		return "reset_tag"
	}
	return ""
}

// disconnect sends DISCONNECT three times, each copy with its own packet number (numbers are
// never reused under one key, and the receiver's replay window would refuse a repeat).
func (s *secureSession) disconnect(reason byte, code uint16, text string) {
	body := disconnectBody(reason, code, text)
	for range disconnectCopies {
		s.send(typeDisconnect, body)
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
	serverKey        []byte
	count            int
	minSize, maxSize int
	seed             int64
	token            []byte
	helloVersion     byte
	window           int
	timeout          time.Duration
	handshakeTimeout time.Duration
	// idleTimeout closes the session (DISCONNECT idle_timeout) when nothing authentic
	// arrived for this long (0: never).
	idleTimeout time.Duration
	linger      time.Duration
	// closeCode and closeText go in the client's DISCONNECT.
	closeCode uint16
	closeText string
	opts      kcpOpts
	// rng replaces crypto/rand for the nonce and ephemeral key (tests only).
	rng io.Reader
}

// echoResult is the JSON line of a run, successful or not.
type echoResult struct {
	OK                    bool              `json:"ok"`
	Error                 string            `json:"error,omitempty"`
	Reason                string            `json:"reason,omitempty"`
	RejectCode            uint16            `json:"reject_code,omitempty"`
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
	KeyID                 string            `json:"key_id,omitempty"`
	ServerIdleTimeoutMs   int64             `json:"server_idle_timeout_ms,omitempty"`
	HandshakeMs           int64             `json:"handshake_ms"`
	ElapsedMs             int64             `json:"elapsed_ms"`
	PacketNumbersSent     uint64            `json:"packet_numbers_sent"`
	HighestPacketReceived uint64            `json:"highest_packet_received"`
	KeepalivesReceived    uint64            `json:"keepalives_received"`
	// The server's DISCONNECT, when it ended the session: its reason, code and text.
	PeerReason string `json:"peer_reason,omitempty"`
	CloseCode  uint16 `json:"close_code,omitempty"`
	CloseText  string `json:"close_text,omitempty"`
}

// secureEcho connects, sends cfg.count messages, checks every echo byte for byte, and ends
// the session with DISCONNECT (local_closed, cfg.closeCode, cfg.closeText). On failure the
// result has OK false, Error set and, where the protocol names it, Reason (a REJECT reason,
// server_auth_failed, handshake_timeout, the reason of the server's DISCONNECT, reset,
// idle_timeout, timeout).
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
	s := &secureSession{conn: conn, server: raddr, serverKey: cfg.serverKey, rng: cfg.rng}
	res.Local = conn.LocalAddr().String()
	if len(cfg.serverKey) == noiseKeyLen {
		id := keyID(cfg.serverKey)
		res.KeyID = hex.EncodeToString(id[:])
	}
	defer func() {
		res.ElapsedMs = time.Since(start).Milliseconds()
		res.WireBytesSent, res.WireBytesReceived = s.wire.bytesSent, s.wire.bytesReceived
		res.DatagramsSent, res.DatagramsReceived = s.wire.datagramsSent, s.wire.datagramsReceived
		res.HandshakeMs = s.handshakeTime.Milliseconds()
		res.Conv, res.ServerIdleTimeoutMs = s.conv, s.idleTimeout.Milliseconds()
		res.PacketNumbersSent, res.HighestPacketReceived = s.sendPN, s.replay.highest
		res.KeepalivesReceived = s.keepalivesReceived
		if s.peerDisconnect != "" && s.peerDisconnect != "reset" {
			res.PeerReason = s.peerDisconnect
			res.CloseCode, res.CloseText = s.peerClose.code, s.peerClose.text
		}
		if len(s.dropped) > 0 {
			res.Dropped = s.dropped
		}
		res.OK = res.Error == ""
	}()

	handshakeTimeout := min(cfg.handshakeTimeout, time.Until(deadline))
	accept, err := s.handshake(cfg.helloVersion, paramsFor(&cfg.opts, cfg.opts.mtu), cfg.token, handshakeTimeout)
	if err != nil {
		var he *handshakeError
		if errors.As(err, &he) {
			res.Reason, res.RejectCode = he.reason, he.code
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
	closeReason := byte(disconnectLocalClosed)
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
		case cfg.idleTimeout > 0 && now.Sub(s.lastValid) >= cfg.idleTimeout:
			res.Error = fmt.Sprintf("nothing authentic from the server for %d ms after %d of %d echoes", cfg.idleTimeout.Milliseconds(), res.Received, cfg.count)
			res.Reason = "idle_timeout"
			closeReason = disconnectIdleTimeout
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
			if accept.maxMessage > 0 && len(m) > accept.maxMessage {
				// The server could never receive it (its maxMessageSize or receive window).
				res.Error = fmt.Sprintf("message %d (%d bytes) exceeds the %d bytes the handshake agreed", res.Sent, len(m), accept.maxMessage)
				break
			}
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
		if cfg.idleTimeout > 0 {
			if k := s.lastValid.Add(cfg.idleTimeout); k.Before(wake) {
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
		s.disconnect(closeReason, cfg.closeCode, cfg.closeText)
	}
	return res
}

func runSecureClient(args []string) {
	fs := flag.NewFlagSet("secure-client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	serverKey := fs.String("server-key", "", "the server's static public key (required): base64 as server.publicKey prints it, or 64 hex digits")
	count := fs.Int("count", 1000, "number of messages")
	minSize := fs.Int("min-size", 1, "smallest message size in bytes")
	maxSize := fs.Int("max-size", 1000, "largest message size in bytes (the engine fragments messages larger than its mss)")
	seed := fs.Int64("seed", 1, "seed for message sizes and contents")
	token := fs.String("token", "", "application token carried (encrypted) in the HELLO (at most 1024 bytes)")
	preset := fs.String("preset", "game", "kcpwatch KCP preset for the KCP flags not given (only game is known)")
	timeoutMs := fs.Int("timeout-ms", 30000, "overall timeout in ms")
	handshakeMs := fs.Int("handshake-timeout-ms", 10000, "give up the handshake after this many ms")
	idleMs := fs.Int("idle-ms", 30000, "close the session (idle_timeout) when nothing authentic arrived for this many ms (0: never)")
	window := fs.Int("window", 64, "messages outstanding at once")
	lingerMs := fs.Int("linger-ms", 0, "keep the session open (with keepalives) this long after the last echo before DISCONNECT")
	closeCode := fs.Int("close-code", 0, "application close code in the client's DISCONNECT (0..65535; 0: none)")
	closeText := fs.String("close-text", "", "application close text in the client's DISCONNECT (UTF-8, at most 123 bytes)")
	helloVersion := fs.Int("hello-version", protocolVersion, "version byte of the HELLO (to test version_mismatch)")
	var opts kcpOpts
	opts.register(fs)
	fs.Lookup("mtu").Usage = fmt.Sprintf("largest UDP payload in bytes; the KCP engine's MTU is this minus %d (the session framing)", sessionOverhead)
	fs.Parse(args)
	if fs.NArg() > 0 {
		usageError("secure-client: unexpected argument %q", fs.Arg(0))
	}
	if err := applyPreset(fs, *preset, &opts); err != nil {
		usageError("secure-client: %v", err)
	}
	if err := opts.validate(); err != nil {
		usageError("secure-client: %v", err)
	}
	if *serverKey == "" {
		usageError("secure-client: --server-key is required (the server's public key: server.publicKey)")
	}
	key, err := parseServerKey(*serverKey)
	if err != nil {
		usageError("secure-client: --server-key: %v", err)
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
	case *idleMs < 0:
		usageError("secure-client: --idle-ms must be >= 0")
	case *closeCode < 0 || *closeCode > 65535:
		usageError("secure-client: --close-code must be in 0..65535")
	case len(*closeText) > maxCloseText || !utf8.ValidString(*closeText):
		usageError("secure-client: --close-text must be UTF-8 of at most %d bytes", maxCloseText)
	}
	res := secureEcho(echoConfig{
		addr: *addr, serverKey: key, count: *count, minSize: *minSize, maxSize: *maxSize, seed: *seed,
		token: []byte(*token), helloVersion: byte(*helloVersion), window: *window,
		timeout:          time.Duration(*timeoutMs) * time.Millisecond,
		handshakeTimeout: time.Duration(*handshakeMs) * time.Millisecond,
		idleTimeout:      time.Duration(*idleMs) * time.Millisecond,
		linger:           time.Duration(*lingerMs) * time.Millisecond,
		closeCode:        uint16(*closeCode), closeText: *closeText,
		opts: opts,
	})
	emit(res)
	if !res.OK {
		os.Exit(1)
	}
}
