package main

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

var farFuture = time.Now().Add(24 * time.Hour)

var gameOpts = kcpOpts{nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256, mtu: 1200}

func testBench(t *testing.T, mode, addr string) *benchConfig {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	opts := gameOpts
	if mode == modeSecure {
		opts.mtu -= sessionOverhead
	}
	return &benchConfig{
		mode: mode, raddr: raddr, lip: sourceIP(raddr), conns: 1, size: 64, window: 4,
		duration: 300 * time.Millisecond, drain: 2 * time.Second, warmup: true,
		establishTimeout: 5 * time.Second, handshakeTimeout: 5 * time.Second,
		lossTimeout: 100 * time.Millisecond, opts: opts, serverKey: vecServer.Public,
	}
}

// startKCPEcho runs a kcp-go echo server (game preset) for the test.
func startKCPEcho(t *testing.T) string {
	t.Helper()
	l, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				return
			}
			opts := gameOpts
			opts.apply(s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				buf := make([]byte, 2048)
				for {
					s.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := s.Read(buf)
					if err != nil {
						return
					}
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// startUDPEcho runs a plain UDP echo server that drops every dropEvery-th datagram (0: none).
func startUDPEcho(t *testing.T, dropEvery int) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for n := 1; ; n++ {
			k, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if dropEvery > 0 && n%dropEvery == 0 {
				continue
			}
			c.WriteToUDP(buf[:k], from)
		}
	}()
	return c.LocalAddr().String()
}

func checkLoad(t *testing.T, rep loadReport) {
	t.Helper()
	if !rep.OK || rep.Errors != 0 || rep.Established != rep.Sessions || rep.Messages == 0 {
		t.Fatalf("%+v", rep)
	}
	if rep.P50Us > rep.P90Us || rep.P90Us > rep.P99Us || rep.P99Us > rep.P999Us || rep.P999Us > rep.MaxUs {
		t.Errorf("percentiles out of order: %+v", rep)
	}
}

func TestBenchRawClosedLoop(t *testing.T) {
	cfg := testBench(t, modeRaw, startKCPEcho(t))
	cfg.conns = 8
	var stderr bytes.Buffer
	rep := runLoad(cfg, &stderr)
	checkLoad(t, rep)
	if stderr.String() != "LOAD 8\n" {
		t.Errorf("stderr %q", stderr.String())
	}
	if rep.Sent != rep.Messages {
		t.Errorf("sent %d, echoed %d", rep.Sent, rep.Messages)
	}
	if rep.LateSends != nil || rep.Lost != nil {
		t.Error("rate or plain-udp fields in a closed-loop KCP report")
	}
}

func TestBenchRawStreamMode(t *testing.T) {
	addr := startKCPEcho(t) // message mode on the server: it echoes whatever a read returns
	cfg := testBench(t, modeRaw, addr)
	cfg.opts.stream = true
	cfg.size = 3000 // several segments per message, reassembled from the stream
	checkLoad(t, runLoad(cfg, io.Discard))
}

func TestBenchRawPaced(t *testing.T) {
	cfg := testBench(t, modeRaw, startKCPEcho(t))
	cfg.conns = 4
	cfg.rate = 50
	cfg.interval = rateInterval(cfg.rate)
	cfg.duration = time.Second
	rep := runLoad(cfg, io.Discard)
	checkLoad(t, rep)
	// 4 sessions × 50/s × 1 s: 200 messages, give or take one per session at the edges.
	if rep.Sent < 196 || rep.Sent > 204 || rep.Messages != rep.Sent {
		t.Errorf("sent %d echoed %d, want about 200", rep.Sent, rep.Messages)
	}
	if rep.OfferedPerS != 200 || rep.SkippedSends == nil || *rep.SkippedSends != 0 || rep.SchedP99Us == nil {
		t.Errorf("%+v", rep)
	}
}

func TestBenchSecureThroughFakeServer(t *testing.T) {
	f := &fakeServer{}
	cfg := testBench(t, modeSecure, startFakeServer(t, f))
	cfg.token = []byte("bench")
	rep := runLoad(cfg, io.Discard)
	checkLoad(t, rep)
	if rep.Mode != modeSecure {
		t.Errorf("mode %q", rep.Mode)
	}
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.disconnect) == 3 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tokens) != 1 || f.tokens[0] != "bench" || !bytes.Equal(f.disconnect, []byte{4, 4, 4}) {
		t.Errorf("tokens %q disconnects %v", f.tokens, f.disconnect)
	}
	for i, p := range f.pns {
		if p != uint64(i) {
			t.Fatalf("packet number %d at position %d", p, i)
		}
	}
}

func TestBenchSecureRejected(t *testing.T) {
	f := &fakeServer{reject: 3}
	rep := runLoad(testBench(t, modeSecure, startFakeServer(t, f)), io.Discard)
	if rep.OK || rep.Errors != 1 || rep.Established != 0 || rep.ErrorKinds["handshake:capacity"] != 1 {
		t.Fatalf("%+v", rep)
	}
}

func TestBenchPlainUDPLosses(t *testing.T) {
	cfg := testBench(t, modePlain, startUDPEcho(t, 5))
	cfg.conns = 3
	cfg.window = 2
	start := time.Now()
	rep := runLoad(cfg, io.Discard)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v: losses held the run up", took)
	}
	checkLoad(t, rep)
	if rep.Lost == nil || *rep.Lost == 0 || rep.Messages+*rep.Lost != rep.Sent {
		t.Errorf("sent %d echoed %d lost %v", rep.Sent, rep.Messages, rep.Lost)
	}
}

func TestBenchPlainUDPNoServer(t *testing.T) {
	// Nobody answers: the warm-up fails by its timeout, nothing hangs.
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	addr := c.LocalAddr().String()
	c.Close()
	cfg := testBench(t, modePlain, addr)
	cfg.establishTimeout = 600 * time.Millisecond
	rep := runLoad(cfg, io.Discard)
	if rep.OK || rep.Errors != 1 || rep.ErrorKinds["echo_timeout"] != 1 {
		t.Fatalf("%+v", rep)
	}
}

// syncWriter collects stderr lines and signals HOLDING.
type syncWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	holding chan struct{}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "HOLDING") && w.holding != nil {
		close(w.holding)
		w.holding = nil
	}
	return len(p), nil
}

func TestHoldUntilStdinEOF(t *testing.T) {
	cfg := testBench(t, modeRaw, startKCPEcho(t))
	cfg.conns = 20
	cfg.idle, cfg.untilEOF, cfg.hold, cfg.holdVerify = true, true, time.Minute, true
	cfg.holdKeepalive = 100 * time.Millisecond
	stdinR, stdinW := io.Pipe()
	holding := make(chan struct{})
	stderr := &syncWriter{holding: holding}
	res := make(chan holdReport, 1)
	go func() { res <- runHold(cfg, stdinR, stderr) }()
	select {
	case <-holding:
	case <-time.After(10 * time.Second):
		t.Fatal("no HOLDING line")
	}
	if got := stderr.buf.String(); got != "HOLDING 20\n" {
		t.Errorf("stderr %q", got)
	}
	time.Sleep(400 * time.Millisecond)
	stdinW.Close()
	rep := <-res
	if !rep.OK || rep.Established != 20 || rep.ReleasedBy != "stdin_eof" || rep.HoldMs < 400 {
		t.Fatalf("%+v", rep)
	}
	if rep.AliveAfterHold == nil || *rep.AliveAfterHold != 20 {
		t.Errorf("alive after hold: %v", rep.AliveAfterHold)
	}
	if rep.HoldKeepalives == nil || *rep.HoldKeepalives < 40 {
		t.Errorf("keepalives %v", rep.HoldKeepalives)
	}
}

func TestHoldSecureByTime(t *testing.T) {
	f := &fakeServer{idleMs: 200}
	cfg := testBench(t, modeSecure, startFakeServer(t, f))
	cfg.idle, cfg.hold, cfg.holdVerify = true, 500*time.Millisecond, true
	rep := runHold(cfg, strings.NewReader(""), io.Discard)
	if !rep.OK || rep.Established != 1 || rep.ReleasedBy != "hold_ms" || rep.AliveAfterHold == nil || *rep.AliveAfterHold != 1 {
		t.Fatalf("%+v", rep)
	}
	// Idle for 500 ms with a 200 ms idle timeout: the protocol's keepalives every 50 ms.
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pns) < 8 {
		t.Errorf("only %d session datagrams while holding", len(f.pns))
	}
}

func TestBenchSourceIPs(t *testing.T) {
	cfg := testBench(t, modePlain, startUDPEcho(t, 0))
	cfg.conns, cfg.sourceIPs, cfg.lip = 6, 3, net.IPv4(127, 0, 0, 1)
	var got []string
	r := newBenchRun(cfg)
	for _, b := range r.sessions {
		got = append(got, b.sourceIP().String())
	}
	if strings.Join(got, " ") != "127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.1 127.0.0.2 127.0.0.3" {
		t.Errorf("%v", got)
	}
	checkLoad(t, runLoad(cfg, io.Discard))
}
