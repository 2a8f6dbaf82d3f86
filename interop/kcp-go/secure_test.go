package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"
	kcp "github.com/xtaci/kcp-go/v5"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The inputs of docs/protocol.md's "Test vectors": server static private key 00 01 … 1f,
// client ephemeral 20 … 3f, server ephemeral 40 … 5f, nonce a0 … af, cookie c0 … cf, token
// "ticket", conv 0x11223344, idle timeout 30000 ms.
var (
	vecServerPrivate = seq(0x00, 32)
	vecClientEph     = seq(0x20, 32)
	vecServerEph     = seq(0x40, 32)
	vecNonce         = [16]byte(seq(0xa0, 16))
	vecCookie        = [16]byte(seq(0xc0, 16))
	vecToken         = []byte("ticket")
)

const (
	vecConv   = 0x11223344
	vecIdleMs = 30000
	vecMTU    = 1200
)

// vecParams are the vectors' KCP parameters, the client's in the HELLO and the server's in
// the ACCEPT (the game preset's: window 256, 64 KiB messages, message mode).
var vecParams = kcpParams{mtu: vecMTU, rcvWnd: 256, maxMessage: 65536}

// The expected bytes, copied from docs/protocol.md.
const (
	vecServerPublic = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
	vecKeyID        = "eedd883d"
	vecHelloZero    = "01020100eedd883da0a1a2a3a4a5a6a7a8a9aaabacadaeaf00000000000000000000000000000000358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662548e635aedcf8e96273ac95df4d35da86101c310507621b189ace09aba77bd86"
	vecCookieDgram  = "02020000a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	vecHelloCookie  = "01020100eedd883da0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662548e635aedcf8e96273ac95df4d35da86101c310507621b189ace09aba77bd86"
	vecAccept       = "03020100a0a1a2a3a4a5a6a7a8a9aaabacadaeaf79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a0e142d2554cbb1d0f07a66317bbfa7fa305bdf6ef81d71cb6355fedb78d48d8058"
	vecKeyC2S       = "bb74860fe000c03af83f8523bbf8c8959cebf3e12abf6cbfc74323b03d4de1ff"
	vecKeyS2C       = "b67bf8f0ace9eae3a1da287d2bb4c15ec3550c0f81152c7097559db0f9d15347"
	vecData         = "104433221100000000000000000e810470b0a77e4e409873909dbf20485916e6"
	vecKeepalive    = "1144332211070000000000000034906a1ffaa27613a3c5f07544cee375"
	vecDisconnect   = "12443322110800000000000000acc3ed2ae78b809d5a67a6159eb457b830b3b472a69f"
	vecReset        = "0544332211000000000000000070b0a77e4e409873"
	vecRejectAuth   = "04020200a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0700"
)

func seq(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// staticKey is the X25519 key pair of a private key.
func staticKey(private []byte) noise.DHKey {
	k, err := noise.DH25519.GenerateKeypair(bytes.NewReader(private))
	if err != nil {
		panic(err)
	}
	return k
}

// vecServer is the vectors' server static key pair (also the fake server's default).
var vecServer = staticKey(vecServerPrivate)

// vecAttempt is the vectors' HELLO attempt (fixed nonce and client ephemeral).
func vecAttempt(t *testing.T) *helloAttempt {
	t.Helper()
	a, err := newHelloAttempt(protocolVersion, vecServer.Public, vecNonce, vecParams, vecToken, bytes.NewReader(vecClientEph))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// cipherOf is a ChaCha20-Poly1305 cipher of a raw key, as Noise's Split hands it out.
func cipherOf(t *testing.T, key string) noise.Cipher {
	return noise.CipherChaChaPoly.Cipher([32]byte(unhex(t, key)))
}

func TestVectorServerKeyAndKeyID(t *testing.T) {
	pub, err := curve25519.X25519(vecServerPrivate, curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "server static public key", pub, vecServerPublic)
	checkHex(t, "server static public key (flynn/noise)", vecServer.Public, vecServerPublic)
	id := keyID(pub)
	checkHex(t, "key id", id[:], vecKeyID)
	sum := sha256.Sum256(pub)
	checkHex(t, "key id = SHA-256[:4]", sum[:4], vecKeyID)
}

func TestParseServerKey(t *testing.T) {
	pub := unhex(t, vecServerPublic)
	for _, text := range []string{
		vecServerPublic,
		strings.ToUpper(vecServerPublic),
		base64.StdEncoding.EncodeToString(pub), // server.publicKey's form
		base64.RawStdEncoding.EncodeToString(pub),
		base64.URLEncoding.EncodeToString(pub),
		" " + base64.StdEncoding.EncodeToString(pub) + "\n",
	} {
		got, err := parseServerKey(text)
		if err != nil || !bytes.Equal(got, pub) {
			t.Errorf("%q: %x %v", text, got, err)
		}
	}
	for _, text := range []string{"", "abc", vecServerPublic[:62], base64.StdEncoding.EncodeToString(pub[:31])} {
		if _, err := parseServerKey(text); err == nil {
			t.Errorf("%q parsed", text)
		}
	}
}

func TestVectorHellos(t *testing.T) {
	a := vecAttempt(t)
	zero := a.datagram([16]byte{})
	checkHex(t, "HELLO, zero cookie", zero, vecHelloZero)
	if len(zero) != helloMinLen+len(vecToken) {
		t.Errorf("HELLO length %d, want 97 + 6", len(zero))
	}
	// The same Noise message in the HELLO with the cookie: only bytes 24..40 change.
	checkHex(t, "HELLO, cookie c0..cf", a.datagram(vecCookie), vecHelloCookie)
	// The smallest and largest HELLO.
	empty, err := newHelloAttempt(protocolVersion, vecServer.Public, vecNonce, vecParams, nil, nil)
	if err != nil || len(empty.datagram(vecCookie)) != 97 {
		t.Errorf("empty-token HELLO: %v", err)
	}
	full, err := newHelloAttempt(protocolVersion, vecServer.Public, vecNonce, vecParams, bytes.Repeat([]byte{'x'}, 1024), nil)
	if err != nil || len(full.datagram(vecCookie)) != 1121 {
		t.Errorf("1024-byte token HELLO: %v", err)
	}
	if _, err := newHelloAttempt(protocolVersion, vecServer.Public, vecNonce, vecParams, make([]byte, 1025), nil); err == nil {
		t.Error("1025-byte token accepted")
	}
	if _, err := newHelloAttempt(protocolVersion, vecServer.Public, vecNonce, kcpParams{mtu: minMTU - 1, rcvWnd: 256, maxMessage: 65536}, nil, nil); err == nil {
		t.Error("an mtu below the secure minimum accepted")
	}
}

func TestVectorCookie(t *testing.T) {
	checkHex(t, "COOKIE", cookieDatagram(vecNonce, vecCookie), vecCookieDgram)
	n, c, ok := parseCookie(unhex(t, vecCookieDgram))
	if !ok || n != vecNonce || c != vecCookie {
		t.Errorf("parse: %v % x % x", ok, n, c)
	}
	b := unhex(t, vecCookieDgram)
	b[1] = 1
	if _, _, ok := parseCookie(b); ok {
		t.Error("version-1 COOKIE parsed")
	}
	if _, _, ok := parseCookie(unhex(t, vecCookieDgram)[:35]); ok {
		t.Error("35-byte COOKIE parsed")
	}
}

// TestVectorAccept runs the server's side of the vectors (a Noise responder with the static
// key and the server ephemeral 40..5f) to produce the ACCEPT, then the client's.
func TestVectorAccept(t *testing.T) {
	hello := unhex(t, vecHelloCookie)
	r, err := respond(hello, vecServer, bytes.NewReader(vecServerEph))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.token) != "ticket" || r.params != vecParams {
		t.Errorf("token %q params %+v", r.token, r.params)
	}
	accept, c2s, s2c, err := r.accept(vecConv, vecIdleMs, vecMTU)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "ACCEPT", accept, vecAccept)
	checkHex(t, "server key_c2s", c2sKey(c2s), vecKeyC2S)
	checkHex(t, "server key_s2c", c2sKey(s2c), vecKeyS2C)

	a := vecAttempt(t)
	if n, ok := acceptNonce(unhex(t, vecAccept)); !ok || n != vecNonce {
		t.Fatal("ACCEPT vector header")
	}
	info, err := a.readAccept(unhex(t, vecAccept))
	if err != nil {
		t.Fatal(err)
	}
	if info.conv != vecConv || info.idleTimeoutMs != vecIdleMs || info.mtu != vecMTU || info.server != vecParams {
		t.Errorf("conv %#x idle %d mtu %d server %+v", info.conv, info.idleTimeoutMs, info.mtu, info.server)
	}
	checkHex(t, "client key_c2s", info.keyC2S[:], vecKeyC2S)
	checkHex(t, "client key_s2c", info.keyS2C[:], vecKeyS2C)
}

func c2sKey(c *noise.CipherState) []byte { k := c.UnsafeKey(); return k[:] }

func TestAcceptRefusals(t *testing.T) {
	// Every byte of the Noise part altered: server_auth_failed.
	for i := 20; i < acceptLen; i++ {
		b := unhex(t, vecAccept)
		b[i] ^= 0x01
		if _, err := vecAttempt(t).readAccept(b); err != errServerAuth {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// An ACCEPT made with another static key (an impostor, or a client pinned to an old key).
	r, err := respond(unhex(t, vecHelloCookie), vecServer, bytes.NewReader(vecServerEph))
	if err != nil {
		t.Fatal(err)
	}
	accept, _, _, _ := r.accept(vecConv, vecIdleMs, vecMTU)
	other, err := newHelloAttempt(protocolVersion, staticKey(seq(0x99, 32)).Public, vecNonce, vecParams, vecToken, bytes.NewReader(vecClientEph))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.readAccept(accept); err != errServerAuth {
		t.Errorf("ACCEPT for another key: %v", err)
	}
	// Header checks before the Noise message: length, version, suite.
	for name, mutate := range map[string]func([]byte) []byte{
		"84 bytes":  func(b []byte) []byte { return b[:acceptLen-1] },
		"86 bytes":  func(b []byte) []byte { return append(b, 0) },
		"version 1": func(b []byte) []byte { b[1] = 1; return b },
		"suite 2":   func(b []byte) []byte { b[2] = 2; return b },
	} {
		if _, ok := acceptNonce(mutate(unhex(t, vecAccept))); ok {
			t.Errorf("%s: ACCEPT taken", name)
		}
	}
	// A genuine server's ACCEPT with conv 0: refused, and not as server_auth_failed.
	r, err = respond(unhex(t, vecHelloCookie), vecServer, nil)
	if err != nil {
		t.Fatal(err)
	}
	zero, _, _, err := r.accept(0, vecIdleMs, vecMTU)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vecAttempt(t).readAccept(zero); err == nil || err == errServerAuth {
		t.Errorf("conv 0: %v", err)
	}
	// And one agreeing an MTU below the secure minimum.
	r, err = respond(unhex(t, vecHelloCookie), vecServer, nil)
	if err != nil {
		t.Fatal(err)
	}
	tiny, _, _, err := r.accept(vecConv, vecIdleMs, minMTU-1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vecAttempt(t).readAccept(tiny); err == nil || err == errServerAuth {
		t.Errorf("mtu %d: %v", minMTU-1, err)
	}
}

func TestVectorSessionDatagrams(t *testing.T) {
	c2s, s2c := cipherOf(t, vecKeyC2S), cipherOf(t, vecKeyS2C)
	checkHex(t, "client DATA pn 0", sealSession(typeData, vecConv, 0, []byte("KCP"), c2s), vecData)
	checkHex(t, "server KEEPALIVE pn 7", sealSession(typeKeepalive, vecConv, 7, nil, s2c), vecKeepalive)
	checkHex(t, "client DISCONNECT pn 8", sealSession(typeDisconnect, vecConv, 8, disconnectBody(disconnectLocalClosed, 4000, "bye"), c2s), vecDisconnect)

	// The page's formula with a plain ChaCha20-Poly1305 (x/crypto): nonce = 4 zero bytes ‖
	// pn little endian, associated data = the 13 header bytes.
	aead, err := chacha20poly1305.New(unhex(t, vecKeyS2C))
	if err != nil {
		t.Fatal(err)
	}
	var nonce [12]byte
	binary.LittleEndian.PutUint64(nonce[4:], 7)
	h := sessionHeader(typeKeepalive, vecConv, 7)
	checkHex(t, "KEEPALIVE by the formula", aead.Seal(h[:], nonce[:], nil, h[:]), vecKeepalive)

	typ, pn, body, err := openSession(unhex(t, vecData), vecConv, c2s)
	if err != nil || typ != typeData || pn != 0 || string(body) != "KCP" {
		t.Errorf("open DATA: %v %#x %d %q", err, typ, pn, body)
	}
	typ, pn, body, err = openSession(unhex(t, vecDisconnect), vecConv, c2s)
	if c := parseDisconnect(body); err != nil || typ != typeDisconnect || pn != 8 || c != (closeInfo{4, 4000, "bye"}) {
		t.Errorf("open DISCONNECT: %v %#x %d %+v", err, typ, pn, c)
	}
	// The client reads the server's datagrams with key_s2c; key_c2s does not open them.
	if _, _, _, err := openSession(unhex(t, vecKeepalive), vecConv, c2s); err != errDecryptFailed {
		t.Errorf("KEEPALIVE with key_c2s: %v", err)
	}
}

func TestVectorReject(t *testing.T) {
	checkHex(t, "REJECT auth_rejected code 7", rejectDatagram(vecNonce, rejectAuthRejected, 7), vecRejectAuth)
	r, ok := parseReject(unhex(t, vecRejectAuth))
	if !ok || r.version != 2 || reasonName(rejectReasons, r.reason) != "auth_rejected" || r.code != 7 || r.echo != vecNonce {
		t.Errorf("REJECT: %v %+v", ok, r)
	}
	if !r.answers(vecAttempt(t).header) {
		t.Error("the REJECT does not answer its HELLO")
	}
	// version_mismatch: 20 bytes. Other reasons: 22 bytes only.
	short := unhex(t, vecRejectAuth)[:20]
	if _, ok := parseReject(short); ok {
		t.Error("20-byte auth_rejected parsed")
	}
	short[2] = rejectVersionMismatch
	if r, ok := parseReject(short); !ok || r.code != 0 {
		t.Error("20-byte version_mismatch not parsed")
	}
	if _, ok := parseReject(unhex(t, vecRejectAuth)[:21]); ok {
		t.Error("21-byte REJECT parsed")
	}
	if reasonName(rejectReasons, 9) != "unknown_9" {
		t.Error("unknown reason name")
	}
	// A version 1 server echoes the HELLO's bytes 4..20 (where its nonce was).
	hello := vecAttempt(t).header
	v1 := make([]byte, 20)
	v1[0], v1[1], v1[2] = typeReject, 1, rejectVersionMismatch
	copy(v1[4:], hello[4:20])
	if r, ok := parseReject(v1); !ok || !r.answers(hello) {
		t.Error("a version 1 server's version_mismatch is not recognised")
	}
}

func TestClientReadsItsSessionDatagrams(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &secureSession{conn: conn, server: conn.LocalAddr().(*net.UDPAddr)}
	s.establish(acceptInfo{conv: vecConv, idleTimeoutMs: vecIdleMs, send: cipherOf(t, vecKeyC2S), recv: cipherOf(t, vecKeyS2C)})
	s2c := cipherOf(t, vecKeyS2C)
	if s.receive(unhex(t, vecKeepalive)) != nil || s.keepalivesReceived != 1 || len(s.dropped) != 0 {
		t.Fatalf("KEEPALIVE: %v", s.dropped)
	}
	if s.receive(unhex(t, vecKeepalive)); s.dropped["replayed"] != 1 {
		t.Errorf("replay: %v", s.dropped)
	}
	// Every bit of a genuine datagram flipped, header included: decrypt_failed (the conv
	// bytes: another session).
	good := sealSession(typeData, vecConv, 8, []byte("payload"), s2c)
	for i := range len(good) * 8 {
		b := append([]byte(nil), good...)
		b[i/8] ^= 1 << (i % 8)
		want := "decrypt_failed"
		switch {
		case i < 8 && b[0] >= typeData && b[0] <= typeDisconnect:
		case i < 8:
			want = "not_session"
		case i < 40:
			want = "wrong_conv"
		}
		before := s.dropped[want]
		if s.receive(b) != nil || s.dropped[want] != before+1 {
			t.Fatalf("bit %d: %v", i, s.dropped)
		}
	}
	if body := s.receive(good); string(body) != "payload" {
		t.Errorf("genuine DATA after the forgeries: %q %v", body, s.dropped)
	}
	if s.receive(sealSession(typeData, vecConv, 9, nil, s2c)) != nil || s.dropped["empty_data"] != 1 {
		t.Errorf("empty DATA: %v", s.dropped)
	}
	if s.receive(unhex(t, vecAccept)); s.dropped["late_accept"] != 1 {
		t.Errorf("late ACCEPT: %v", s.dropped)
	}
	// Far below the highest (8): out of the window after a jump.
	s.receive(sealSession(typeKeepalive, vecConv, 5000, nil, s2c))
	if s.receive(sealSession(typeKeepalive, vecConv, 10, nil, s2c)); s.dropped["replayed"] != 2 {
		t.Errorf("below the window: %v", s.dropped)
	}
	// DISCONNECT: code and text; missing fields read as 0 / empty; bad text ignored.
	for _, c := range []struct {
		body []byte
		want closeInfo
	}{
		{disconnectBody(5, 1001, "server restarting"), closeInfo{5, 1001, "server restarting"}},
		{[]byte{4}, closeInfo{4, 0, ""}},
		{[]byte{4, 0x39}, closeInfo{4, 0, ""}},
		{append([]byte{4, 1, 0}, 0xff, 0xfe), closeInfo{4, 1, ""}},
		{append([]byte{4, 1, 0}, bytes.Repeat([]byte{'a'}, 124)...), closeInfo{4, 1, ""}},
		{append([]byte{4, 1, 0}, bytes.Repeat([]byte{'a'}, 123)...), closeInfo{4, 1, strings.Repeat("a", 123)}},
		{nil, closeInfo{}},
	} {
		if got := parseDisconnect(c.body); got != c.want {
			t.Errorf("% x: %+v, want %+v", c.body, got, c.want)
		}
	}
	if b := disconnectBody(4, 1, strings.Repeat("é", 70)); len(b) != 3+122 || !strings.HasSuffix(string(b), "é") {
		t.Errorf("close text cut: %d bytes", len(b))
	}
	s.receive(sealSession(typeDisconnect, vecConv, 5001, disconnectBody(4, 4001, "kicked: cheating"), s2c))
	if s.peerDisconnect != "local_closed" || s.peerClose != (closeInfo{4, 4001, "kicked: cheating"}) {
		t.Errorf("DISCONNECT: %q %+v", s.peerDisconnect, s.peerClose)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	accept := func(n uint64) bool {
		if !w.fresh(n) {
			return false
		}
		w.record(n)
		return true
	}
	if !accept(0) || accept(0) {
		t.Fatal("0 twice")
	}
	if !accept(5) || !accept(3) || accept(3) || accept(5) || !accept(4) {
		t.Fatal("reordering below the highest")
	}
	if !accept(1028) { // highest 1028: 5 is 1023 below (in), 4 is 1024 below (out)
		t.Fatal("jump")
	}
	if w.fresh(4) || w.fresh(3) || w.fresh(0) {
		t.Error("1024 or more below the highest is refused")
	}
	if w.fresh(5) {
		t.Error("5 was seen and is still in the window")
	}
	if !accept(6) || !accept(1027) || accept(1027) {
		t.Error("unseen numbers inside the window")
	}
	// Slots reused after the window slides must not remember their old numbers.
	if !accept(1029) || !accept(2052) || !w.fresh(2051) || w.fresh(1028) {
		t.Error("slide")
	}
	if !accept(1_000_000) || w.fresh(1_000_000) || !w.fresh(1_000_000-1023) || w.fresh(1_000_000-1024) {
		t.Error("long jump")
	}
	// The first authentic datagram is accepted whatever its number.
	var w2 replayWindow
	if !w2.fresh(1 << 40) {
		t.Error("first number refused")
	}
}

// ---- A fake server written from docs/protocol.md, for the client's own tests ----

// cookieDatagram is a COOKIE for nonce.
func cookieDatagram(nonce, cookie [16]byte) []byte {
	b := []byte{typeCookie, protocolVersion, 0, 0}
	return append(append(b, nonce[:]...), cookie[:]...)
}

// rejectDatagram is a 22-byte REJECT (the 20-byte prefix for version_mismatch).
func rejectDatagram(nonce [16]byte, reason byte, code uint16) []byte {
	b := append([]byte{typeReject, protocolVersion, reason, 0}, nonce[:]...)
	if reason == rejectVersionMismatch {
		return b
	}
	return binary.LittleEndian.AppendUint16(b, code)
}

// responder is the server's side of one handshake: the Noise responder after the HELLO.
type responder struct {
	header [helloPrologueLen]byte
	token  []byte
	mtu    int       // the largest datagram the client accepts (its HELLO)
	params kcpParams // the HELLO's KCP parameters (params.mtu == mtu)
	hs     *noise.HandshakeState
}

// respond reads a HELLO's Noise message with the server static key (rng: the server's
// ephemeral key for the ACCEPT, nil for crypto/rand).
func respond(hello []byte, static noise.DHKey, rng *bytes.Reader) (*responder, error) {
	r := &responder{header: [helloPrologueLen]byte(hello[:helloPrologueLen])}
	cfg := noise.Config{
		CipherSuite:   noiseSuite,
		Pattern:       noise.HandshakeNK,
		Prologue:      append(append([]byte(nil), noisePrologueLabel...), r.header[:]...),
		StaticKeypair: static,
	}
	if rng != nil {
		cfg.Random = rng
	}
	hs, err := noise.NewHandshakeState(cfg)
	if err != nil {
		return nil, err
	}
	payload, _, _, err := hs.ReadMessage(nil, hello[helloHeaderLen:])
	if err != nil {
		return nil, err
	}
	if len(payload) < paramsLen {
		return nil, errors.New("HELLO payload shorter than its KCP parameters")
	}
	r.params, r.token = parseParams(payload), payload[paramsLen:]
	r.mtu = r.params.mtu
	r.hs = hs
	return r, nil
}

// serverParams are the fake server's KCP parameters besides the MTU (the game preset's).
var serverParams = kcpParams{rcvWnd: 256, maxMessage: 65536}

// accept writes the ACCEPT agreeing mtu (with serverParams) and returns the split: c2s, s2c.
func (r *responder) accept(conv, idleMs uint32, mtu int) ([]byte, *noise.CipherState, *noise.CipherState, error) {
	p := serverParams
	p.mtu = mtu
	return r.acceptWith(conv, idleMs, p)
}

// acceptWith writes the ACCEPT stating p (p.mtu: the agreed MTU) and returns the split.
func (r *responder) acceptWith(conv, idleMs uint32, p kcpParams) ([]byte, *noise.CipherState, *noise.CipherState, error) {
	b := append([]byte{typeAccept, protocolVersion, suiteNK, 0}, r.header[8:24]...)
	payload := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, conv), idleMs)
	payload = p.appendTo(payload)
	return r.hs.WriteMessage(b, payload)
}

// fakeServer is a minimal secure-mode echo server written from docs/protocol.md (one
// session at a time). It is not kcpwatch: the ava interop test runs the client against the
// real one.
type fakeServer struct {
	conn       *net.UDPConn
	static     noise.DHKey   // its static key (default: the vectors')
	dropHellos int           // drop this many first HELLOs (of any kind)
	dropCookie int           // then drop this many first HELLOs with a cookie
	reject     byte          // REJECT every cookie HELLO with this reason (0: ACCEPT)
	rejectCode uint16        // the REJECT's application code
	wantToken  string        // when set, REJECT auth_rejected on another token
	idleMs     uint32        // ACCEPT's idle timeout
	forgeBit   int           // > 0: flip bit forgeBit-1 of the ACCEPT's Noise part (an impostor)
	v1         bool          // answer like a version 1 server: 20-byte version_mismatch
	forgetAt   int           // > 0: forget the session after this many echoes (RESETs follow)
	kickAt     int           // > 0: DISCONNECT (kickReason, kickCode, kickText) after this many echoes
	kickReason byte          //
	kickCode   uint16        //
	kickText   string        //
	silent     bool          // after the ACCEPT, answer nothing (DISCONNECTs are still read)
	stream     bool          // the ACCEPT states stream mode (a server that ignores a mismatch)
	mu         sync.Mutex    // guards the fields below
	hellos     []time.Time   // arrival of every HELLO
	tokens     []string      // token of each cookie HELLO
	disconnect []byte        // reasons of the DISCONNECTs received
	closes     []closeInfo   // the DISCONNECTs received
	pns        []uint64      // packet numbers received
	resets     int           // RESETs sent
	strays     int           // DISCONNECTs after the session ended
	done       chan struct{} // closed when the server goroutine ends
}

func startFakeServer(t *testing.T, f *fakeServer) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f.conn, f.done = conn, make(chan struct{})
	if f.idleMs == 0 {
		f.idleMs = 30000
	}
	if f.static.Public == nil {
		f.static = vecServer
	}
	go f.serve()
	t.Cleanup(func() { conn.Close(); <-f.done })
	return conn.LocalAddr().String()
}

func (f *fakeServer) serve() {
	defer close(f.done)
	var (
		conv     uint32 = 0xdeadbeef
		engine   *kcp.KCP
		peer     *net.UDPAddr
		pn       uint64
		c2s, s2c noise.Cipher
		accepted []byte // the ACCEPT sent, for a retransmitted HELLO
		echoes   int
		live     bool
	)
	id := keyID(f.static.Public)
	cookie := [16]byte(seq(0x70, 16))
	buf := make([]byte, 65536)
	msg := make([]byte, 1<<20)
	seal := func(typ byte, body []byte) {
		f.conn.WriteToUDP(sealSession(typ, conv, pn, body, s2c), peer)
		pn++
	}
	for {
		f.conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, from, err := f.conn.ReadFromUDP(buf)
		if err != nil && !isTimeout(err) {
			return
		}
		if engine != nil && live {
			engine.Update()
		}
		if err != nil {
			continue
		}
		d := buf[:n]
		switch d[0] {
		case typeHello:
			f.mu.Lock()
			f.hellos = append(f.hellos, time.Now())
			drop := len(f.hellos) <= f.dropHellos
			if !drop && len(d) >= helloHeaderLen && [16]byte(d[24:40]) != [16]byte{} && f.dropCookie > 0 {
				f.dropCookie--
				drop = true
			}
			f.mu.Unlock()
			if drop || len(d) < helloMinLen || len(d) > helloMinLen+maxTokenLen {
				continue
			}
			nonce := [16]byte(d[8:24])
			hc := [16]byte(d[24:40])
			var reply []byte
			switch {
			case f.v1:
				reply = append([]byte{typeReject, 1, rejectVersionMismatch, 0}, d[4:20]...)
			case d[1] != protocolVersion || d[2] != suiteNK:
				reply = rejectDatagram(nonce, rejectVersionMismatch, 0)
			case [4]byte(d[4:8]) != id:
				reply = rejectDatagram(nonce, 5, 0)
			case hc == [16]byte{}:
				reply = cookieDatagram(nonce, cookie)
			case hc != cookie:
				continue
			case accepted != nil && [16]byte(accepted[4:20]) == nonce:
				reply = accepted
			default:
				r, err := respond(d, f.static, nil)
				if err != nil {
					continue // decrypt_failed: the client times out
				}
				f.mu.Lock()
				f.tokens = append(f.tokens, string(r.token))
				f.mu.Unlock()
				reason, code := f.reject, f.rejectCode
				if f.wantToken != "" && string(r.token) != f.wantToken {
					reason = rejectAuthRejected
				}
				if reason != 0 {
					reply = rejectDatagram(nonce, reason, code)
					break
				}
				p := serverParams
				p.mtu, p.stream = min(r.mtu, 1200), f.stream
				a, cs1, cs2, err := r.acceptWith(conv, f.idleMs, p)
				if err != nil {
					continue
				}
				if f.forgeBit > 0 {
					i := 20 + (f.forgeBit-1)/8
					a[i] ^= 1 << ((f.forgeBit - 1) % 8)
				}
				reply, accepted, peer, live = a, a, from, true
				c2s, s2c = cs1.Cipher(), cs2.Cipher()
				engine = kcp.NewKCP(conv, func(b []byte, size int) { seal(typeData, b[:size]) })
				engine.NoDelay(1, 10, 2, 1)
				engine.WndSize(256, 256)
				engine.SetMtu(1200 - sessionOverhead)
			}
			f.conn.WriteToUDP(reply, from)
		case typeData, typeKeepalive, typeDisconnect:
			if !live {
				if d[0] == typeDisconnect {
					f.mu.Lock()
					f.strays++
					f.mu.Unlock()
				}
				// No session: a RESET for DATA and KEEPALIVE (protocol.md, "RESET").
				if d[0] != typeDisconnect && len(d) >= sessionOverhead {
					reset := append([]byte{typeReset}, d[1:sessionHeaderLen]...)
					reset = append(reset, d[len(d)-tagLen:len(d)-tagLen+tagEchoLen]...)
					f.conn.WriteToUDP(reset, from)
					f.mu.Lock()
					f.resets++
					f.mu.Unlock()
				}
				continue
			}
			typ, p, body, err := openSession(d, conv, c2s)
			if err != nil {
				continue
			}
			f.mu.Lock()
			f.pns = append(f.pns, p)
			if typ == typeDisconnect {
				c := parseDisconnect(body)
				f.disconnect = append(f.disconnect, c.reason)
				f.closes = append(f.closes, c)
			}
			f.mu.Unlock()
			if typ != typeData || f.silent {
				continue
			}
			engine.Input(body, kcp.IKCP_PACKET_REGULAR, false)
			for engine.PeekSize() >= 0 {
				engine.Send(msg[:engine.Recv(msg)])
				echoes++
				if echoes == f.forgetAt {
					live = false // as after a restart: the next DATA gets a RESET
				}
				if echoes == f.kickAt {
					engine.Update()
					for range disconnectCopies {
						seal(typeDisconnect, disconnectBody(f.kickReason, f.kickCode, f.kickText))
					}
					live = false
				}
			}
		}
	}
}

func testConfig(addr string) echoConfig {
	return echoConfig{
		addr: addr, serverKey: vecServer.Public, count: 200, minSize: 1, maxSize: 1200, seed: 7, window: 32,
		helloVersion: protocolVersion, timeout: 10 * time.Second, handshakeTimeout: 5 * time.Second,
		idleTimeout: 5 * time.Second,
		opts:        kcpOpts{nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256, mtu: 1200},
	}
}

func TestEchoThroughFakeServer(t *testing.T) {
	f := &fakeServer{}
	cfg := testConfig(startFakeServer(t, f))
	cfg.token = []byte("ticket")
	cfg.closeCode, cfg.closeText = 4000, "bye"
	res := secureEcho(cfg)
	if !res.OK || res.Received != cfg.count || res.BytesReceived != res.BytesSent {
		t.Fatalf("%+v", res)
	}
	if res.Conv != 0xdeadbeef || res.ServerIdleTimeoutMs != 30000 || res.KeyID != vecKeyID {
		t.Errorf("conv %#x idle %d key id %s", res.Conv, res.ServerIdleTimeoutMs, res.KeyID)
	}
	if len(res.Dropped) != 0 {
		t.Errorf("dropped %v", res.Dropped)
	}
	// A HELLO, a HELLO with the cookie; the token read from the second.
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.disconnect) == 3 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hellos) != 2 || len(f.tokens) != 1 || f.tokens[0] != "ticket" {
		t.Errorf("hellos %d tokens %q", len(f.hellos), f.tokens)
	}
	// Three DISCONNECTs, local_closed, with the application's code and text.
	for _, c := range f.closes {
		if c != (closeInfo{disconnectLocalClosed, 4000, "bye"}) {
			t.Errorf("DISCONNECT %+v", c)
		}
	}
	// Packet numbers 0, 1, 2, … without a gap or a repeat, the DISCONNECTs last.
	for i, p := range f.pns {
		if p != uint64(i) {
			t.Fatalf("packet number %d at position %d", p, i)
		}
	}
	if uint64(len(f.pns)) != res.PacketNumbersSent {
		t.Errorf("server saw %d packet numbers, client sent %d", len(f.pns), res.PacketNumbersSent)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

// checkSchedule checks that HELLO i reached the server no earlier than offsets[i] after start
// (the client's timers never fire early, and delivery only adds) and not much later (its
// lateness accumulates over the steps; under load a few ms each).
func checkSchedule(t *testing.T, start time.Time, hellos []time.Time, offsets []time.Duration) {
	t.Helper()
	if len(hellos) != len(offsets) {
		t.Fatalf("%d HELLOs, want %d", len(hellos), len(offsets))
	}
	for i, want := range offsets {
		got := hellos[i].Sub(start)
		if got < want*time.Millisecond || got > want*time.Millisecond+250*time.Millisecond {
			t.Errorf("HELLO %d at %v, want %v ms", i, got, want)
		}
	}
}

func TestHelloRetransmission(t *testing.T) {
	f := &fakeServer{dropHellos: 3}
	cfg := testConfig(startFakeServer(t, f))
	start := time.Now()
	res := secureEcho(cfg)
	if !res.OK {
		t.Fatalf("%+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Three lost HELLOs (0, 250, 750 ms), the fourth (1750 ms) gets the COOKIE, the cookie
	// HELLO at once.
	checkSchedule(t, start, f.hellos, []time.Duration{0, 250, 750, 1750, 1750})
}

// After a COOKIE the wait restarts at 250 ms: the cookie HELLO is dropped, and its
// retransmission comes 250 ms later, not 2 s (where the backoff had got to).
func TestCookieRestartsTheWait(t *testing.T) {
	f := &fakeServer{dropHellos: 3, dropCookie: 1}
	cfg := testConfig(startFakeServer(t, f))
	start := time.Now()
	res := secureEcho(cfg)
	if !res.OK {
		t.Fatalf("%+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Lost: 0, 250, 750 ms; the fourth (1750) gets the COOKIE; the cookie HELLO at once
	// (lost), again 250 ms later (ACCEPT).
	checkSchedule(t, start, f.hellos, []time.Duration{0, 250, 750, 1750, 1750, 2000})
	if gap := f.hellos[5].Sub(f.hellos[4]); gap > time.Second {
		t.Errorf("the cookie HELLO was retransmitted after %v, not 250 ms", gap)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	f := &fakeServer{dropHellos: 1 << 30}
	cfg := testConfig(startFakeServer(t, f))
	cfg.handshakeTimeout = 1200 * time.Millisecond
	start := time.Now()
	res := secureEcho(cfg)
	if res.OK || res.Reason != "handshake_timeout" {
		t.Fatalf("%+v", res)
	}
	if took := time.Since(start); took < 1200*time.Millisecond || took > 2200*time.Millisecond {
		t.Errorf("gave up after %v", took)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hellos) != 3 { // 0, 250, 750 ms; the next would be at 1750
		t.Errorf("%d HELLOs in 1.2 s", len(f.hellos))
	}
}

func TestEveryRejectReason(t *testing.T) {
	for reason, name := range rejectReasons {
		f := &fakeServer{reject: reason, rejectCode: 7}
		res := secureEcho(testConfig(startFakeServer(t, f)))
		if res.OK || res.Reason != name || !strings.Contains(res.Error, name) {
			t.Errorf("reason %d: %+v", reason, res)
		}
		// The application code travels with auth_rejected only (version_mismatch has none).
		wantCode := uint16(7)
		if reason == rejectVersionMismatch {
			wantCode = 0
		}
		if res.RejectCode != wantCode {
			t.Errorf("reason %d: code %d", reason, res.RejectCode)
		}
	}
	f := &fakeServer{reject: 9}
	if res := secureEcho(testConfig(startFakeServer(t, f))); res.Reason != "unknown_9" {
		t.Errorf("unknown reason: %+v", res)
	}
}

// An ACCEPT stating the other KCP mode fails the attempt as stream_mismatch (kcpwatch's
// server refuses a mismatch with a REJECT stream_mismatch, which TestEveryRejectReason covers).
func TestAcceptInTheOtherStreamMode(t *testing.T) {
	f := &fakeServer{stream: true}
	res := secureEcho(testConfig(startFakeServer(t, f)))
	if res.OK || res.Reason != "stream_mismatch" {
		t.Errorf("%+v", res)
	}
}

// The HELLO states the engine's receive window, the largest message it reassembles and its
// mode; the ceiling on what we send follows the server's window and maxMessage.
func TestKcpParams(t *testing.T) {
	opts := kcpOpts{rcvwnd: 32, mtu: 1200}
	p := paramsFor(&opts, 1200)
	if p != (kcpParams{mtu: 1200, rcvWnd: 32, maxMessage: 32 * 1147}) {
		t.Errorf("paramsFor: %+v", p)
	}
	if got := parseParams(p.appendTo(nil)); got != p || len(p.appendTo(nil)) != paramsLen {
		t.Errorf("round trip: %+v", got)
	}
	if b := (kcpParams{stream: true}).appendTo(nil); b[8] != flagStream {
		t.Errorf("stream flag: %x", b)
	}
	own := kcpParams{mtu: 9000, rcvWnd: 256, maxMessage: 100000}
	for _, c := range []struct {
		server kcpParams
		mtu    int
		want   int
	}{
		{kcpParams{rcvWnd: 32, maxMessage: 65536}, 1200, 32 * 1147},  // the server's window
		{kcpParams{rcvWnd: 256, maxMessage: 65536}, 9000, 65536},     // the server's maxMessage
		{kcpParams{rcvWnd: 256, maxMessage: 1 << 20}, 9000, 100000},  // our own
		{kcpParams{rcvWnd: 1000, maxMessage: 1 << 30}, 1200, 100000}, // 127 x 1147 is more
		{kcpParams{rcvWnd: 1000, maxMessage: 1 << 30}, 200, 127 * 147},
	} {
		if got := sendCeiling(own, c.server, c.mtu); got != c.want {
			t.Errorf("sendCeiling(%+v, mtu %d) = %d, want %d", c.server, c.mtu, got, c.want)
		}
	}
}

func TestTokenCheck(t *testing.T) {
	f := &fakeServer{wantToken: "let-me-in", rejectCode: 403}
	addr := startFakeServer(t, f)
	cfg := testConfig(addr)
	cfg.token = []byte("nope")
	if res := secureEcho(cfg); res.OK || res.Reason != "auth_rejected" || res.RejectCode != 403 || !strings.Contains(res.Error, "403") {
		t.Errorf("wrong token: %+v", res)
	}
	cfg.token = []byte("let-me-in")
	cfg.count = 5
	if res := secureEcho(cfg); !res.OK {
		t.Errorf("right token: %+v", res)
	}
}

func TestUnknownServerKeyAndVersionMismatch(t *testing.T) {
	// Pinned to a key the server does not hold: its key id is unknown there.
	f := &fakeServer{}
	cfg := testConfig(startFakeServer(t, f))
	cfg.serverKey = staticKey(seq(0x99, 32)).Public
	if res := secureEcho(cfg); res.Reason != "unknown_server_key" {
		t.Errorf("other key: %+v", res)
	}
	cfg = testConfig(startFakeServer(t, &fakeServer{}))
	cfg.helloVersion = 3
	if res := secureEcho(cfg); res.Reason != "version_mismatch" || !strings.Contains(res.Error, "version 2") {
		t.Errorf("version 3: %+v", res)
	}
	// A version 1 server's REJECT (20 bytes, version 1, its nonce at offset 4).
	cfg = testConfig(startFakeServer(t, &fakeServer{v1: true}))
	if res := secureEcho(cfg); res.Reason != "version_mismatch" || !strings.Contains(res.Error, "version 1") {
		t.Errorf("version 1 server: %+v", res)
	}
}

func TestServerAuthFailed(t *testing.T) {
	// An ACCEPT with one bit changed in its e, in its encrypted payload, in its tag.
	for _, bit := range []int{1, 33 * 8, 56*8 - 1} {
		f := &fakeServer{forgeBit: bit}
		cfg := testConfig(startFakeServer(t, f))
		cfg.handshakeTimeout = 3 * time.Second
		start := time.Now()
		res := secureEcho(cfg)
		if res.OK || res.Reason != "server_auth_failed" {
			t.Errorf("bit %d: %+v", bit, res)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("bit %d: took %v (the attempt fails at once, not at the 3 s timeout)", bit, took)
		}
	}
}

func TestKeepalivesAndIdleTimeout(t *testing.T) {
	f := &fakeServer{idleMs: 200}
	cfg := testConfig(startFakeServer(t, f))
	cfg.count = 1
	cfg.linger = 600 * time.Millisecond
	res := secureEcho(cfg)
	if !res.OK {
		t.Fatalf("%+v", res)
	}
	// Quiet for ~600 ms with a 200 ms idle timeout: a keepalive every 50 ms.
	if ka := res.PacketNumbersSent; ka < 8 {
		t.Errorf("only %d session datagrams sent while lingering", ka)
	}

	// A server that falls silent: the client's own idle timeout ends the session and tells
	// the server why.
	f = &fakeServer{silent: true}
	cfg = testConfig(startFakeServer(t, f))
	cfg.idleTimeout = 300 * time.Millisecond
	start := time.Now()
	res = secureEcho(cfg)
	if res.OK || res.Reason != "idle_timeout" {
		t.Fatalf("%+v", res)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("idle timeout after %v", took)
	}
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.disconnect) == 3 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.disconnect, []byte{disconnectIdleTimeout, disconnectIdleTimeout, disconnectIdleTimeout}) {
		t.Errorf("DISCONNECT reasons %v", f.disconnect)
	}
}

func TestServerDisconnectCodeAndText(t *testing.T) {
	f := &fakeServer{kickAt: 10, kickReason: 4, kickCode: 4001, kickText: "kicked: cheating"}
	cfg := testConfig(startFakeServer(t, f))
	cfg.window = 1
	res := secureEcho(cfg)
	if res.OK || res.Reason != "local_closed" || res.PeerReason != "local_closed" || res.CloseCode != 4001 || res.CloseText != "kicked: cheating" {
		t.Fatalf("%+v", res)
	}
	// The session ended at the DISCONNECT: the client does not answer one.
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.disconnect) != 0 || f.strays != 0 {
		t.Errorf("the client answered a DISCONNECT: %v, %d", f.disconnect, f.strays)
	}
}

func TestResetEndsTheSession(t *testing.T) {
	// A server that forgets the session (as after a restart) answers the next DATA with a
	// RESET: the client ends at once instead of retransmitting until its idle timeout.
	f := &fakeServer{forgetAt: 20}
	cfg := testConfig(startFakeServer(t, f))
	cfg.window = 1
	start := time.Now()
	res := secureEcho(cfg)
	if res.OK || res.Reason != "reset" {
		t.Fatalf("%+v", res)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("ended after %v", took)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resets == 0 {
		t.Error("no RESET sent")
	}
}

func TestResetEndsTheSessionOnlyWhenItEchoesOurDatagram(t *testing.T) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &secureSession{conn: conn, server: sink.LocalAddr().(*net.UDPAddr)}
	s.establish(acceptInfo{conv: vecConv, send: cipherOf(t, vecKeyC2S), recv: cipherOf(t, vecKeyS2C)})
	if err := s.send(typeData, []byte("KCP")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	sink.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := sink.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "the DATA the RESET answers", buf[:n], vecData)

	reset := unhex(t, vecReset)
	forged := func(change func(b []byte) []byte) []byte {
		b := append([]byte(nil), reset...)
		return change(b)
	}
	for _, c := range []struct {
		why   string
		bytes []byte
	}{
		{"reset_tag", forged(func(b []byte) []byte { b[20] ^= 1; return b })},
		{"reset_tag", forged(func(b []byte) []byte { b[13] ^= 0x80; return b })},
		{"reset_tag", forged(func(b []byte) []byte { b[5] = 1; return b })},
		{"reset_tag", forged(func(b []byte) []byte {
			// pn 2^64-1: never sent, and not the empty slot's marker either
			for i := 5; i < 13; i++ {
				b[i] = 0xff
			}
			return b
		})},
		{"no_session", forged(func(b []byte) []byte { b[1] ^= 1; return b })},
		{"reset_length", forged(func(b []byte) []byte { return append(b, 0) })},
		{"reset_length", forged(func(b []byte) []byte { return b[:20] })},
	} {
		s.receive(c.bytes)
		if s.peerDisconnect != "" || s.dropped[c.why] == 0 {
			t.Fatalf("%x: disconnect %q dropped %v", c.bytes, s.peerDisconnect, s.dropped)
		}
	}
	s.receive(reset)
	if s.peerDisconnect != "reset" {
		t.Fatalf("a genuine RESET left the session open: %v", s.dropped)
	}
}
