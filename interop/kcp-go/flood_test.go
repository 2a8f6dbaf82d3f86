package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// parsedHello is a HELLO as the server reads it (docs/protocol.md, "HELLO" and "What the
// server does with a HELLO"); ok is false for one it drops as malformed.
type parsedHello struct {
	version, suite byte
	keyID          [4]byte
	nonce, cookie  [16]byte
	noise          []byte // the first Noise message: e, then the encrypted token
}

func parseHello(b []byte) (h parsedHello, ok bool) {
	if len(b) < helloMinLen || len(b) > helloMinLen+maxTokenLen || b[0] != typeHello {
		return h, false
	}
	h.version, h.suite = b[1], b[2]
	copy(h.keyID[:], b[4:8])
	copy(h.nonce[:], b[8:24])
	copy(h.cookie[:], b[24:40])
	h.noise = b[40:]
	return h, true
}

func TestParseHelloAgainstTheVectors(t *testing.T) {
	h, ok := parseHello(unhex(t, vecHelloZero))
	if !ok || h.version != 2 || h.suite != 1 || hex.EncodeToString(h.keyID[:]) != vecKeyID || h.nonce != vecNonce || h.cookie != [16]byte{} || len(h.noise) != 57+len("ticket") {
		t.Fatalf("zero-cookie vector: %v %+v", ok, h)
	}
	h, ok = parseHello(unhex(t, vecHelloCookie))
	if !ok || h.cookie != vecCookie {
		t.Fatalf("cookie vector: %v %+v", ok, h)
	}
	if _, ok := parseHello(unhex(t, vecHelloZero)[:helloMinLen-1]); ok {
		t.Error("89-byte HELLO parsed")
	}
	if _, ok := parseHello(make([]byte, 1115)); ok {
		t.Error("1115-byte HELLO parsed")
	}
}

func TestFloodHello(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	buf := bytes.Repeat([]byte{0xee}, maxGarbageLen) // dirty: the builder must clear it
	seen := map[[16]byte]bool{}
	id := keyID(vecServer.Public)
	for range 1000 {
		d := floodHello(rng, id, buf)
		h, ok := parseHello(d)
		if !ok || len(d) != helloMinLen || h.version != protocolVersion || h.suite != suiteNK || h.keyID != id || h.cookie != [16]byte{} {
			t.Fatalf("% x", d)
		}
		// The same header as the client's own HELLO builder (pinned by the vectors).
		a, err := newHelloAttempt(protocolVersion, vecServer.Public, h.nonce, vecParams, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := a.datagram([16]byte{}); !bytes.Equal(d[:helloHeaderLen], want[:helloHeaderLen]) || len(d) != len(want) {
			t.Fatalf("flood HELLO\n% x\nclient HELLO\n% x", d, want)
		}
		if seen[h.nonce] {
			t.Fatal("a nonce repeated")
		}
		seen[h.nonce] = true
	}
}

func TestFloodGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	buf := make([]byte, maxGarbageLen)
	minLen, maxLen := maxGarbageLen, 0
	var firstBytes [256]bool
	for range 20000 {
		d := floodGarbage(rng, buf)
		minLen, maxLen = min(minLen, len(d)), max(maxLen, len(d))
		firstBytes[d[0]] = true
	}
	if minLen < 1 || maxLen > maxGarbageLen || minLen > 5 || maxLen < maxGarbageLen-5 {
		t.Errorf("lengths %d..%d", minLen, maxLen)
	}
	for b, seen := range firstBytes {
		if !seen {
			t.Errorf("first byte %#x never drawn", b)
			break
		}
	}
}

func TestFloodConvIsKCP(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	buf := make([]byte, maxGarbageLen)
	cmds := map[byte]int{}
	for range 2000 {
		d := floodConv(rng, buf)
		conv := binary.LittleEndian.Uint32(d)
		if conv == 0 || len(d) != kcpOverhead+int(binary.LittleEndian.Uint32(d[20:])) {
			t.Fatalf("% x", d)
		}
		cmds[d[4]]++
		// A KCP engine with that conv takes it as a well-formed datagram (it returns < 0 for
		// a wrong conv, a bad length or an unknown command).
		e := kcp.NewKCP(conv, func([]byte, int) {})
		if r := e.Input(d, kcp.IKCP_PACKET_REGULAR, false); r < 0 {
			t.Fatalf("kcp Input %d for % x", r, d)
		}
	}
	for cmd := byte(kcpCmdPush); cmd <= kcpCmdWins; cmd++ {
		if cmds[cmd] == 0 {
			t.Errorf("command %d never drawn", cmd)
		}
	}
}

func TestFloodKinds(t *testing.T) {
	for kind, n := range map[string]int{"hello": 1, "garbage": 1, "conv": 1, "mix": 3} {
		if k, ok := floodKindsFor(kind); !ok || len(k) != n {
			t.Errorf("%s: %v %v", kind, k, ok)
		}
	}
	if _, ok := floodKindsFor("HELLO"); ok {
		t.Error("unknown kind accepted")
	}
}

func TestFloodSourceIP(t *testing.T) {
	base := net.IPv4(10, 0, 0, 7)
	if !floodSourceIP(base, 5, 1).Equal(base) {
		t.Error("one source address: the base")
	}
	if got := floodSourceIP(base, 0, 4); !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("first: %v", got)
	}
	if got := floodSourceIP(base, 300, 400); !got.Equal(net.IPv4(127, 0, 1, 45)) {
		t.Errorf("301st: %v", got)
	}
}

// A short flood against a local socket: the datagrams arrive as HELLOs, and what the target
// answers is counted.
func TestFloodWorkerAndReplies(t *testing.T) {
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	target.SetReadBuffer(1 << 20)
	var hellos, others, answered int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			// Loopback may drop some under load: stop after a quiet 500 ms.
			target.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, from, err := target.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if _, ok := parseHello(buf[:k]); !ok || k != helloMinLen {
				others++
				continue
			}
			hellos++
			if _, err := target.WriteToUDP(make([]byte, cookieLen), from); err == nil { // a COOKIE-sized answer
				answered++
			}
		}
	}()
	raddr := target.LocalAddr().(*net.UDPAddr)
	var socks []*net.UDPConn
	var recv floodReceived
	for range 3 {
		s, err := listenFrom(raddr, nil)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
		go recv.drain(s)
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	kinds, _ := floodKindsFor("hello")
	w := &floodWorker{socks: socks, target: raddr.AddrPort(), quota: 300, kinds: kinds, rng: rand.New(rand.NewPCG(4, 4))}
	w.run(t0, farFuture)
	<-done
	if w.sent != 300 || w.bytes != 300*helloMinLen || w.byKind[floodHelloKind] != 300 {
		t.Errorf("sent %d bytes %d by kind %v", w.sent, w.bytes, w.byKind)
	}
	if hellos < 200 || others != 0 {
		t.Errorf("the target saw %d HELLOs and %d others of 300", hellos, others)
	}
	waitFor(t, func() bool { return recv.datagrams.Load() >= int64(answered)*9/10 })
	if n := recv.datagrams.Load(); recv.bytes.Load() != n*cookieLen || recv.others.Load() != n {
		t.Errorf("received %d datagrams, %d bytes, %d other", n, recv.bytes.Load(), recv.others.Load())
	}
}
