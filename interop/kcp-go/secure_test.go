package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// The inputs of docs/protocol.md's "Test vectors": secret = 00 01 … 1f, nonce = a0 … af,
// conv = 0x11223344, token "ticket".
var (
	vecSecret = seq(0x00, 32)
	vecNonce  = [16]byte(seq(0xa0, 16))
	vecCookie = [16]byte(seq(0xc0, 16))
	vecToken  = []byte("ticket")
)

const vecConv = 0x11223344

// The expected bytes, copied from docs/protocol.md.
const (
	vecHelloZero   = "01010600a0a1a2a3a4a5a6a7a8a9aaabacadaeaf000000000000000000000000000000007469636b657400000000000000000000000000000000000000000000"
	vecHelloCookie = "01010600a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf7469636b657400000000000000000000000000000000000000000000"
	vecAccept      = "03010000a0a1a2a3a4a5a6a7a8a9aaabacadaeaf44332211000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f30750000"
	vecKeyC2S      = "048726debebcb88ec4f1b0458100d9538f68da603068ee764651a253c32200e8"
	vecKeyS2C      = "a82aff3452ae38505ef2c063bd91024eb5a3715cd0154b8df0e4b938c661f27f"
	vecData        = "104433221100000000000000004b4350f2e95a2ef81c407f"
	vecKeepalive   = "11443322110700000000000000e8ca5d535d9c949c"
	vecDisconnect  = "1244332211080000000000000004ccc10e479b1860df"
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

func TestVectorHelloZeroCookie(t *testing.T) {
	h := buildHello(protocolVersion, vecNonce, [16]byte{}, vecToken)
	if len(h) != 64 {
		t.Errorf("HELLO length %d, want 64 (padded)", len(h))
	}
	checkHex(t, "HELLO, zero cookie", h, vecHelloZero)
}

func TestVectorHelloWithCookie(t *testing.T) {
	checkHex(t, "HELLO, cookie c0..cf", buildHello(protocolVersion, vecNonce, vecCookie, vecToken), vecHelloCookie)
}

func TestHelloPaddingAndLongToken(t *testing.T) {
	if h := buildHello(1, vecNonce, vecCookie, nil); len(h) != 64 || binary.LittleEndian.Uint16(h[2:]) != 0 || !bytes.Equal(h[36:], make([]byte, 28)) {
		t.Errorf("empty-token HELLO: % x", h)
	}
	tok := bytes.Repeat([]byte{'x'}, 1024)
	h := buildHello(1, vecNonce, vecCookie, tok)
	if len(h) != 36+1024 || binary.LittleEndian.Uint16(h[2:]) != 1024 || !bytes.Equal(h[36:], tok) {
		t.Errorf("1024-byte token HELLO: length %d", len(h))
	}
}

func TestVectorAcceptParse(t *testing.T) {
	a, ok := parseAccept(unhex(t, vecAccept))
	if !ok {
		t.Fatal("ACCEPT vector does not parse")
	}
	if a.nonce != vecNonce {
		t.Errorf("nonce % x", a.nonce)
	}
	if a.conv != vecConv {
		t.Errorf("conv %#x, want %#x", a.conv, vecConv)
	}
	if !bytes.Equal(a.secret[:], vecSecret) {
		t.Errorf("secret % x", a.secret)
	}
	if a.idleTimeoutMs != 30000 {
		t.Errorf("idle timeout %d, want 30000", a.idleTimeoutMs)
	}
	// Wrong length, wrong version, conv 0: not an ACCEPT this client takes.
	b := unhex(t, vecAccept)
	if _, ok := parseAccept(b[:59]); ok {
		t.Error("59-byte ACCEPT parsed")
	}
	b[1] = 2
	if _, ok := parseAccept(b); ok {
		t.Error("version-2 ACCEPT parsed")
	}
	b = unhex(t, vecAccept)
	copy(b[20:24], []byte{0, 0, 0, 0})
	if _, ok := parseAccept(b); ok {
		t.Error("ACCEPT with conv 0 parsed")
	}
}

func TestVectorKeys(t *testing.T) {
	c2s, s2c := deriveKeys(vecSecret)
	checkHex(t, "key_c2s", c2s, vecKeyC2S)
	checkHex(t, "key_s2c", s2c, vecKeyS2C)
}

func TestVectorClientData(t *testing.T) {
	c2s, _ := deriveKeys(vecSecret)
	d := sealSession(typeData, vecConv, 0, []byte("KCP"), c2s)
	checkHex(t, "client DATA pn 0", d, vecData)
	typ, pn, body, err := openSession(unhex(t, vecData), vecConv, c2s)
	if err != nil || typ != typeData || pn != 0 || string(body) != "KCP" {
		t.Errorf("open: %v %#x %d %q", err, typ, pn, body)
	}
}

func TestVectorServerKeepalive(t *testing.T) {
	_, s2c := deriveKeys(vecSecret)
	checkHex(t, "server KEEPALIVE pn 7", sealSession(typeKeepalive, vecConv, 7, nil, s2c), vecKeepalive)
	// The client checks it with key_s2c, and the client key does not verify it.
	typ, pn, body, err := openSession(unhex(t, vecKeepalive), vecConv, s2c)
	if err != nil || typ != typeKeepalive || pn != 7 || len(body) != 0 {
		t.Errorf("open: %v %#x %d %q", err, typ, pn, body)
	}
	c2s, _ := deriveKeys(vecSecret)
	if _, _, _, err := openSession(unhex(t, vecKeepalive), vecConv, c2s); err != errBadTag {
		t.Errorf("KEEPALIVE checked with key_c2s: %v, want bad_tag", err)
	}
}

func TestVectorClientDisconnect(t *testing.T) {
	c2s, _ := deriveKeys(vecSecret)
	checkHex(t, "client DISCONNECT pn 8", sealSession(typeDisconnect, vecConv, 8, []byte{disconnectLocalClosed}, c2s), vecDisconnect)
}

func TestOpenSessionRefusals(t *testing.T) {
	c2s, _ := deriveKeys(vecSecret)
	good := unhex(t, vecData)
	for name, tc := range map[string]struct {
		mutate func([]byte) []byte
		conv   uint32
		want   error
	}{
		"every bit of the tag": {func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, vecConv, errBadTag},
		"body":                 {func(b []byte) []byte { b[13] ^= 0x80; return b }, vecConv, errBadTag},
		"packet number":        {func(b []byte) []byte { b[5] = 1; return b }, vecConv, errBadTag},
		"type":                 {func(b []byte) []byte { b[0] = typeKeepalive; return b }, vecConv, errBadTag},
		"other conv":           {func(b []byte) []byte { return b }, vecConv + 1, errWrongConv},
		"truncated":            {func(b []byte) []byte { return b[:20] }, vecConv, errTooShort},
		"handshake type":       {func(b []byte) []byte { b[0] = typeAccept; return b }, vecConv, errNotSession},
		"plain KCP":            {func(b []byte) []byte { b[0] = 0x44; return b }, vecConv, errNotSession},
	} {
		b := tc.mutate(append([]byte(nil), good...))
		if _, _, _, err := openSession(b, tc.conv, c2s); err != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Correctly tagged but of the wrong size for its type.
	for _, d := range [][]byte{
		sealSession(typeData, vecConv, 1, nil, c2s),
		sealSession(typeKeepalive, vecConv, 1, []byte{0}, c2s),
		sealSession(typeDisconnect, vecConv, 1, nil, c2s),
		sealSession(typeDisconnect, vecConv, 1, []byte{4, 4}, c2s),
	} {
		if _, _, _, err := openSession(d, vecConv, c2s); err != errBadLength {
			t.Errorf("% x: %v, want bad_length", d, err)
		}
	}
}

func TestRejectParse(t *testing.T) {
	b := make([]byte, 20)
	b[0], b[1], b[2] = typeReject, 1, 2
	copy(b[4:], vecNonce[:])
	v, reason, n, ok := parseReject(b)
	if !ok || v != 1 || reasonName(rejectReasons, reason) != "auth_rejected" || n != vecNonce {
		t.Errorf("REJECT: %v %d %d % x", ok, v, reason, n)
	}
	if _, _, _, ok := parseReject(b[:19]); ok {
		t.Error("19-byte REJECT parsed")
	}
	if reasonName(rejectReasons, 9) != "unknown_9" {
		t.Error("unknown reason name")
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
}

// fakeServer is a minimal secure-mode echo server written from docs/protocol.md for the
// client's own tests (cookie exchange, retransmission, REJECT, DATA both ways). It is not
// kcpwatch: the ava interop test runs the client against the real one.
type fakeServer struct {
	conn       *net.UDPConn
	dropHellos int           // drop this many first HELLOs (of any kind)
	reject     byte          // REJECT every cookie HELLO with this reason (0: ACCEPT)
	wantToken  string        // when set, REJECT auth_rejected on another token
	idleMs     uint32        // ACCEPT's idle timeout
	mu         sync.Mutex    // guards the fields below
	hellos     []time.Time   // arrival of every HELLO
	tokens     []string      // token of each cookie HELLO
	disconnect []byte        // reasons of the DISCONNECTs received
	pns        []uint64      // packet numbers received
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
	go f.serve()
	t.Cleanup(func() { conn.Close(); <-f.done })
	return conn.LocalAddr().String()
}

func (f *fakeServer) serve() {
	defer close(f.done)
	var (
		secret        = [32]byte(seq(0x40, 32))
		conv   uint32 = 0xdeadbeef
		engine *kcp.KCP
		peer   *net.UDPAddr
		pn     uint64
		nonce  [16]byte
	)
	c2s, s2c := deriveKeys(secret[:])
	cookie := [16]byte(seq(0x70, 16))
	buf := make([]byte, 65536)
	msg := make([]byte, 1<<20)
	for {
		f.conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, from, err := f.conn.ReadFromUDP(buf)
		if err != nil && !isTimeout(err) {
			return
		}
		if engine != nil {
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
			f.mu.Unlock()
			if drop || len(d) < 64 {
				continue
			}
			tl := int(binary.LittleEndian.Uint16(d[2:]))
			var hn, hc [16]byte
			copy(hn[:], d[4:20])
			copy(hc[:], d[20:36])
			reply := make([]byte, 0, 60)
			switch {
			case hc == [16]byte{}:
				reply = append(append(append(reply, typeCookie, 1, 0, 0), hn[:]...), cookie[:]...)
			case hc != cookie:
				continue
			default:
				tok := string(d[36 : 36+tl])
				f.mu.Lock()
				f.tokens = append(f.tokens, tok)
				f.mu.Unlock()
				reason := f.reject
				if f.wantToken != "" && tok != f.wantToken {
					reason = 2
				}
				if reason != 0 {
					reply = append(append(reply, typeReject, 1, reason, 0), hn[:]...)
					break
				}
				nonce, peer = hn, from
				reply = append(append(reply, typeAccept, 1, 0, 0), nonce[:]...)
				reply = binary.LittleEndian.AppendUint32(reply, conv)
				reply = append(reply, secret[:]...)
				reply = binary.LittleEndian.AppendUint32(reply, f.idleMs)
				if engine == nil {
					engine = kcp.NewKCP(conv, func(b []byte, size int) {
						f.conn.WriteToUDP(sealSession(typeData, conv, pn, b[:size], s2c), peer)
						pn++
					})
					engine.NoDelay(1, 10, 2, 1)
					engine.WndSize(256, 256)
					engine.SetMtu(1200 - 21)
				}
			}
			f.conn.WriteToUDP(reply, from)
		default:
			typ, p, body, err := openSession(d, conv, c2s)
			if err != nil {
				continue
			}
			f.mu.Lock()
			f.pns = append(f.pns, p)
			if typ == typeDisconnect {
				f.disconnect = append(f.disconnect, body[0])
			}
			f.mu.Unlock()
			if typ == typeData {
				engine.Input(body, kcp.IKCP_PACKET_REGULAR, false)
				for engine.PeekSize() >= 0 {
					engine.Send(msg[:engine.Recv(msg)])
				}
			}
		}
	}
}

func testConfig(addr string) echoConfig {
	return echoConfig{
		addr: addr, count: 200, minSize: 1, maxSize: 1200, seed: 7, window: 32,
		helloVersion: 1, timeout: 10 * time.Second, handshakeTimeout: 5 * time.Second,
		opts: kcpOpts{nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256, mtu: 1200},
	}
}

func TestEchoThroughFakeServer(t *testing.T) {
	f := &fakeServer{}
	cfg := testConfig(startFakeServer(t, f))
	cfg.token = []byte("ticket")
	res := secureEcho(cfg)
	if !res.OK || res.Received != cfg.count || res.BytesReceived != res.BytesSent {
		t.Fatalf("%+v", res)
	}
	if res.Conv != 0xdeadbeef || res.ServerIdleTimeoutMs != 30000 {
		t.Errorf("conv %#x idle %d", res.Conv, res.ServerIdleTimeoutMs)
	}
	// A HELLO, a HELLO with the cookie; the token read from the second.
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.disconnect) == 3 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hellos) != 2 || len(f.tokens) != 1 || f.tokens[0] != "ticket" {
		t.Errorf("hellos %d tokens %q", len(f.hellos), f.tokens)
	}
	if !bytes.Equal(f.disconnect, []byte{4, 4, 4}) {
		t.Errorf("DISCONNECT reasons %v", f.disconnect)
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

func TestHelloRetransmission(t *testing.T) {
	f := &fakeServer{dropHellos: 3}
	res := secureEcho(testConfig(startFakeServer(t, f)))
	if !res.OK {
		t.Fatalf("%+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Three lost HELLOs (0, 250, 750 ms), the fourth (1750 ms) gets the COOKIE, the cookie
	// HELLO at once.
	if len(f.hellos) != 5 {
		t.Fatalf("%d HELLOs", len(f.hellos))
	}
	for i, want := range []time.Duration{250, 500, 1000, 0} {
		got := f.hellos[i+1].Sub(f.hellos[i])
		if d := got - want*time.Millisecond; d < -5*time.Millisecond || d > 150*time.Millisecond {
			t.Errorf("gap %d: %v, want %v ms", i, got, want)
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	f := &fakeServer{dropHellos: 1 << 30}
	cfg := testConfig(startFakeServer(t, f))
	cfg.handshakeTimeout = 1200 * time.Millisecond
	res := secureEcho(cfg)
	if res.OK || res.Reason != "handshake_timeout" {
		t.Fatalf("%+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hellos) != 3 { // 0, 250, 750 ms; the next would be at 1750
		t.Errorf("%d HELLOs in 1.2 s", len(f.hellos))
	}
}

func TestReject(t *testing.T) {
	for reason, name := range rejectReasons {
		f := &fakeServer{reject: reason}
		res := secureEcho(testConfig(startFakeServer(t, f)))
		if res.OK || res.Reason != name || !strings.Contains(res.Error, name) {
			t.Errorf("reason %d: %+v", reason, res)
		}
	}
}

func TestTokenCheck(t *testing.T) {
	f := &fakeServer{wantToken: "let-me-in"}
	addr := startFakeServer(t, f)
	cfg := testConfig(addr)
	cfg.token = []byte("nope")
	if res := secureEcho(cfg); res.OK || res.Reason != "auth_rejected" {
		t.Errorf("wrong token: %+v", res)
	}
}

func TestKeepalives(t *testing.T) {
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
}

// The RESET answering the client DATA of the test vectors (docs/protocol.md, "RESET").
const vecReset = "05443322110000000000000000f2e95a2ef81c407f"

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
	s := &secureSession{
		conn: conn, server: sink.LocalAddr().(*net.UDPAddr), conv: vecConv,
		keyC2S: unhex(t, vecKeyC2S), keyS2C: unhex(t, vecKeyS2C), dropped: map[string]uint64{},
	}
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
