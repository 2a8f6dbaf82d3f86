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
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flynn/noise"
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
	protocolVersion = 2
	// suiteNK is the HELLO's and ACCEPT's suite byte: Noise_NK_25519_ChaChaPoly_BLAKE2s.
	suiteNK = 1
	// helloPrologueLen is the part of the HELLO the Noise prologue covers: type, version,
	// suite, reserved, key id, nonce.
	helloPrologueLen = 24
	// helloHeaderLen is the HELLO up to the Noise message: the prologue part, then the cookie.
	helloHeaderLen = 40
	// noiseKeyLen is an X25519 public key; noiseTagLen a ChaCha20-Poly1305 tag.
	noiseKeyLen = 32
	noiseTagLen = 16
	// paramsLen is the KCP parameters that open the HELLO's payload and close the ACCEPT's:
	// mtu (u16), receive window (u16), max message size (u32), flags (u8; bit 0 stream).
	paramsLen = 9
	// flagStream is the parameters' flags bit of a side in KCP stream mode.
	flagStream = 1
	// maxFragments is the most fragments a KCP message has (its frg byte, and kcpwatch's
	// bound): a message is at most min(maxFragments, the receiver's window) segments.
	maxFragments = 127
	// minMTU is the smallest MTU a session works with: KCP's smallest (50) plus the session
	// framing. A HELLO or ACCEPT stating less is malformed.
	minMTU = 50 + sessionOverhead
	// helloMinLen is a HELLO with an empty token: header, e, the encrypted payload (the KCP
	// parameters).
	helloMinLen = helloHeaderLen + noiseKeyLen + paramsLen + noiseTagLen
	maxTokenLen = 1024
	cookieLen   = 36
	// acceptLen: header (4), nonce (16), e (32), encrypted conv + idle timeout + the server's
	// KCP parameters (17 + 16).
	acceptLen = 85
	// acceptPayloadLen is the ACCEPT's plaintext payload: conv, idle_timeout_ms, parameters.
	acceptPayloadLen = 8 + paramsLen
	rejectLen        = 22
	// rejectShortLen is the version_mismatch REJECT, the prefix every version reads.
	rejectShortLen = 20
	// sessionHeaderLen is type (1) + conv (4) + packet number (8), the associated data.
	sessionHeaderLen = 13
	tagLen           = noiseTagLen
	// sessionOverhead is what the session framing adds to a KCP datagram; the engine MTU is
	// the wire MTU minus this.
	sessionOverhead = sessionHeaderLen + tagLen
	replayWindowLen = 1024
	// tagEchoLen is how much of a datagram's tag a RESET echoes.
	tagEchoLen = 8
	// resetLen is a RESET's exact length: type, then the conv, packet number and tag echo.
	resetLen = sessionHeaderLen + tagEchoLen
	// sentTagsLen is how many of its latest session datagrams the client remembers the tag
	// echoes of, to recognise a RESET answering one of them.
	sentTagsLen = 64
	// maxCloseText is the longest DISCONNECT close text, in bytes of UTF-8.
	maxCloseText = 123
	// disconnectCopies is how many times a DISCONNECT is sent (it is not retransmitted).
	disconnectCopies = 3
)

// noisePrologueLabel starts the Noise prologue; the HELLO's first 24 bytes follow it.
var noisePrologueLabel = []byte("kcpwatch secure v2")

// noiseSuite is Noise_NK_25519_ChaChaPoly_BLAKE2s's cipher suite (with noise.HandshakeNK).
var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// DISCONNECT reasons (protocol.md, "DISCONNECT").
const (
	disconnectIdleTimeout = 1
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
const (
	rejectVersionMismatch = 1
	rejectAuthRejected    = 2
)

var rejectReasons = map[byte]string{
	1: "version_mismatch",
	2: "auth_rejected",
	3: "capacity",
	4: "rate_limited",
	5: "unknown_server_key",
	6: "shutdown",
	7: "malformed",
	8: "stream_mismatch",
}

func reasonName(names map[byte]string, code byte) string {
	if name, ok := names[code]; ok {
		return name
	}
	return fmt.Sprintf("unknown_%d", code)
}

// parseServerKey reads a server public key as src/keys.ts does: 64 hex digits, or base64
// (standard or URL alphabet, padded or not) of 32 bytes.
func parseServerKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if len(text) == 64 {
		if b, err := hex.DecodeString(text); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == noiseKeyLen {
			return b, nil
		}
	}
	return nil, errors.New("a server key is 32 bytes: base64 (44 characters, as server.publicKey prints it) or hex (64 characters)")
}

// keyID is the first 4 bytes of SHA-256 of a server static public key.
func keyID(serverKey []byte) [4]byte {
	sum := sha256.Sum256(serverKey)
	return [4]byte(sum[:4])
}

// helloAttempt is one connection attempt: its nonce and the Noise initiator that wrote the
// first message, written once and carried by every HELLO of the attempt.
type helloAttempt struct {
	header [helloPrologueLen]byte
	msg1   []byte
	hs     *noise.HandshakeState
}

// kcpParams are the KCP parameters a side states in the handshake (protocol.md, "KCP
// parameters"): the client in its HELLO, the server in its ACCEPT.
type kcpParams struct {
	mtu        int    // HELLO: the largest datagram we accept; ACCEPT: the agreed MTU
	rcvWnd     int    // the side's KCP receive window in segments (1..65535)
	maxMessage uint32 // the largest message the side accepts
	stream     bool   // the side runs KCP in stream mode
}

// appendTo appends the parameters' 9 bytes.
func (p kcpParams) appendTo(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(p.mtu))
	b = binary.LittleEndian.AppendUint16(b, uint16(p.rcvWnd))
	b = binary.LittleEndian.AppendUint32(b, p.maxMessage)
	var flags byte
	if p.stream {
		flags |= flagStream
	}
	return append(b, flags)
}

// parseParams reads 9 bytes of parameters (reserved flag bits ignored).
func parseParams(b []byte) kcpParams {
	return kcpParams{
		mtu:        int(binary.LittleEndian.Uint16(b[0:2])),
		rcvWnd:     int(binary.LittleEndian.Uint16(b[2:4])),
		maxMessage: binary.LittleEndian.Uint32(b[4:8]),
		stream:     b[8]&flagStream != 0,
	}
}

// paramsFor are the parameters of a client whose engine runs opts, accepting datagrams of up
// to mtu bytes on the wire: it takes any message its window reassembles at that MTU.
func paramsFor(opts *kcpOpts, mtu int) kcpParams {
	return kcpParams{
		mtu:        mtu,
		rcvWnd:     opts.rcvwnd,
		maxMessage: uint32(min(maxFragments, opts.rcvwnd) * (mtu - sessionOverhead - kcpOverhead)),
		stream:     opts.stream,
	}
}

// sendCeiling is the largest message a side stating own may send to a peer stating peer
// over a session of the agreed MTU: no more than either side's maxMessage, and no more
// fragments than the peer's receive window (and KCP) reassemble. Stream mode keeps no
// messages: 0, no ceiling.
func sendCeiling(own, peer kcpParams, agreedMTU int) int {
	if own.stream {
		return 0
	}
	mss := agreedMTU - sessionOverhead - kcpOverhead
	return min(int(own.maxMessage), int(peer.maxMessage), min(maxFragments, peer.rcvWnd)*mss)
}

// newHelloAttempt starts the Noise initiator for serverKey with the prologue the page fixes
// and writes its first message (e, es) with our KCP parameters (params.mtu: the largest
// datagram we accept) and the token as payload. rng supplies the ephemeral key (nil:
// crypto/rand); tests fix it.
func newHelloAttempt(version byte, serverKey []byte, nonce [16]byte, params kcpParams, token []byte, rng io.Reader) (*helloAttempt, error) {
	mtu := params.mtu
	if len(serverKey) != noiseKeyLen {
		return nil, fmt.Errorf("server key is %d bytes, want %d", len(serverKey), noiseKeyLen)
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("token is %d bytes, at most %d", len(token), maxTokenLen)
	}
	if mtu < minMTU || mtu > 65507 {
		return nil, fmt.Errorf("mtu %d outside %d..65507", mtu, minMTU)
	}
	if params.rcvWnd < 1 || params.rcvWnd > 65535 {
		return nil, fmt.Errorf("receive window %d outside 1..65535", params.rcvWnd)
	}
	a := &helloAttempt{}
	a.header[0], a.header[1], a.header[2], a.header[3] = typeHello, version, suiteNK, 0
	id := keyID(serverKey)
	copy(a.header[4:8], id[:])
	copy(a.header[8:24], nonce[:])
	if rng == nil {
		rng = rand.Reader
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noiseSuite,
		Random:      rng,
		Pattern:     noise.HandshakeNK,
		Initiator:   true,
		Prologue:    append(append([]byte(nil), noisePrologueLabel...), a.header[:]...),
		PeerStatic:  serverKey,
	})
	if err != nil {
		return nil, err
	}
	payload := params.appendTo(make([]byte, 0, paramsLen+len(token)))
	a.msg1, _, _, err = hs.WriteMessage(nil, append(payload, token...))
	if err != nil {
		return nil, err
	}
	a.hs = hs
	return a, nil
}

// nonce is the attempt's nonce.
func (a *helloAttempt) nonce() [16]byte { return [16]byte(a.header[8:24]) }

// datagram is the HELLO with cookie (16 zero bytes for the first HELLO).
func (a *helloAttempt) datagram(cookie [16]byte) []byte {
	b := make([]byte, 0, helloHeaderLen+len(a.msg1))
	b = append(b, a.header[:]...)
	b = append(b, cookie[:]...)
	return append(b, a.msg1...)
}

// acceptInfo is a verified ACCEPT: the session's conv, the server's idle timeout, the agreed
// MTU (the largest datagram either side sends) and the server's other KCP parameters, and the
// two directions' ciphers from the Noise split.
type acceptInfo struct {
	conv          uint32
	idleTimeoutMs uint32
	mtu           int
	server        kcpParams // the ACCEPT's parameters (server.mtu == mtu)
	// maxMessage is the largest message we may send (sendCeiling; 0 in stream mode), set by
	// handshake.
	maxMessage int
	send, recv noise.Cipher
	// keyC2S and keyS2C are the split's keys, for the test vectors only.
	keyC2S, keyS2C [32]byte
}

// errServerAuth is an ACCEPT that does not decrypt: whoever answered does not hold the
// pinned static key, or the ACCEPT was altered.
var errServerAuth = errors.New("server_auth_failed")

// readAccept reads an ACCEPT of this attempt (length, version, suite and nonce already
// checked) with the initiator: errServerAuth if the Noise message does not decrypt, an
// error naming the problem if its payload is not a conv (never 0) and an idle timeout.
func (a *helloAttempt) readAccept(b []byte) (acceptInfo, error) {
	payload, c2s, s2c, err := a.hs.ReadMessage(nil, b[20:acceptLen])
	if err != nil {
		return acceptInfo{}, errServerAuth
	}
	if len(payload) != acceptPayloadLen || c2s == nil || s2c == nil {
		return acceptInfo{}, fmt.Errorf("ACCEPT payload of %d bytes, want %d", len(payload), acceptPayloadLen)
	}
	info := acceptInfo{
		conv:          binary.LittleEndian.Uint32(payload[0:4]),
		idleTimeoutMs: binary.LittleEndian.Uint32(payload[4:8]),
		server:        parseParams(payload[8:]),
		send:          c2s.Cipher(),
		recv:          s2c.Cipher(),
		keyC2S:        c2s.UnsafeKey(),
		keyS2C:        s2c.UnsafeKey(),
	}
	info.mtu = info.server.mtu
	if info.conv == 0 {
		return acceptInfo{}, errors.New("ACCEPT with conv 0")
	}
	if info.server.rcvWnd < 1 {
		return acceptInfo{}, errors.New("ACCEPT with a receive window of 0")
	}
	if info.mtu < minMTU {
		return acceptInfo{}, fmt.Errorf("ACCEPT with mtu %d, below %d", info.mtu, minMTU)
	}
	return info, nil
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

// acceptNonce returns the nonce of a well-formed ACCEPT (exact length, version 2, suite 1).
func acceptNonce(b []byte) (nonce [16]byte, ok bool) {
	if len(b) != acceptLen || b[0] != typeAccept || b[1] != protocolVersion || b[2] != suiteNK {
		return nonce, false
	}
	return [16]byte(b[4:20]), true
}

// rejectInfo is a parsed REJECT.
type rejectInfo struct {
	version byte
	reason  byte
	code    uint16
	// echo is bytes 4..20: the HELLO's nonce (a version 1 server: HELLO bytes 4..20).
	echo [16]byte
}

// parseReject reads a REJECT: 22 bytes, or 20 for version_mismatch (the form every version
// reads; a version 1 server sends it with version byte 1). The version byte is not checked.
func parseReject(b []byte) (r rejectInfo, ok bool) {
	switch {
	case len(b) == 0 || b[0] != typeReject:
		return r, false
	case len(b) == rejectShortLen && b[2] == rejectVersionMismatch:
	case len(b) == rejectLen:
		r.code = binary.LittleEndian.Uint16(b[20:22])
	default:
		return r, false
	}
	r.version, r.reason = b[1], b[2]
	copy(r.echo[:], b[4:20])
	return r, true
}

// answers reports whether a REJECT answers the attempt whose HELLO starts with header: it
// echoes the nonce, or (a version 1 server, which reads its nonce at offset 4) the HELLO's
// bytes 4..20.
func (r rejectInfo) answers(header [helloPrologueLen]byte) bool {
	if r.echo == [16]byte(header[8:24]) {
		return true
	}
	return r.version == 1 && r.reason == rejectVersionMismatch && r.echo == [16]byte(header[4:20])
}

// sessionHeader writes a session datagram's clear header, the associated data.
func sessionHeader(typ byte, conv uint32, pn uint64) (h [sessionHeaderLen]byte) {
	h[0] = typ
	binary.LittleEndian.PutUint32(h[1:5], conv)
	binary.LittleEndian.PutUint64(h[5:13], pn)
	return h
}

// sealSession encodes a session datagram: the header in the clear, then the body encrypted
// with the packet number as nonce and the header as associated data, then the tag.
func sealSession(typ byte, conv uint32, pn uint64, body []byte, c noise.Cipher) []byte {
	h := sessionHeader(typ, conv, pn)
	out := make([]byte, 0, sessionOverhead+len(body))
	out = append(out, h[:]...)
	return c.Encrypt(out, pn, h[:], body)
}

// disconnectBody is a DISCONNECT's plaintext: reason, application code, close text (cut to
// 123 bytes at a character boundary).
func disconnectBody(reason byte, code uint16, text string) []byte {
	for len(text) > maxCloseText {
		_, size := utf8.DecodeLastRuneInString(text)
		text = text[:len(text)-size]
	}
	b := []byte{reason, 0, 0}
	binary.LittleEndian.PutUint16(b[1:3], code)
	return append(b, text...)
}

// closeInfo is a DISCONNECT's plaintext as read: fields missing read as 0 / empty, a text
// that is not UTF-8 or longer than 123 bytes is ignored.
type closeInfo struct {
	reason byte
	code   uint16
	text   string
}

func parseDisconnect(body []byte) (c closeInfo) {
	if len(body) >= 1 {
		c.reason = body[0]
	}
	if len(body) >= 3 {
		c.code = binary.LittleEndian.Uint16(body[1:3])
	}
	if len(body) > 3 {
		if t := body[3:]; len(t) <= maxCloseText && utf8.Valid(t) {
			c.text = string(t)
		}
	}
	return c
}

// Reasons a session datagram is dropped (the page's counter names where it has one).
var (
	errNotSession    = errors.New("not_session")
	errTooShort      = errors.New("too_short")
	errWrongConv     = errors.New("wrong_conv")
	errDecryptFailed = errors.New("decrypt_failed")
)

// openSession checks a session datagram's type, length and conv, then decrypts it (which
// authenticates the header, the packet number and the body) in place, and returns its type,
// packet number and plaintext (a slice of b). It does not look at the replay window.
func openSession(b []byte, conv uint32, c noise.Cipher) (typ byte, pn uint64, body []byte, err error) {
	if len(b) == 0 || b[0] < typeData || b[0] > typeDatagram {
		return 0, 0, nil, errNotSession
	}
	if len(b) < sessionOverhead {
		return 0, 0, nil, errTooShort
	}
	if binary.LittleEndian.Uint32(b[1:5]) != conv {
		return 0, 0, nil, errWrongConv
	}
	pn = binary.LittleEndian.Uint64(b[5:13])
	body, err = c.Decrypt(b[sessionHeaderLen:sessionHeaderLen], pn, b[:sessionHeaderLen], b[sessionHeaderLen:])
	if err != nil {
		return 0, 0, nil, errDecryptFailed
	}
	return b[0], pn, body, nil
}

// replayWindow remembers the highest packet number accepted and which of the 1024 numbers
// up to it were seen.
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

// record marks n as seen; call it only after the datagram decrypted and fresh(n) held.
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
