package main

// The wire format of secure mode, version 2 (docs/protocol.md): datagram layouts, the HELLO
// attempt and its Noise message, session sealing and opening, and the replay window.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/flynn/noise"
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
