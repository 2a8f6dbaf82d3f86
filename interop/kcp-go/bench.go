package main

// bench-client: many concurrent echo sessions against one server, in one of three modes
// (raw KCP through kcp-go, kcpwatch's secure mode around kcp-go, or plain UDP datagrams), and
// in one of two shapes: a load (closed loop, or paced at --rate messages per second per
// session, both bounded by --window outstanding) or a hold (--idle: establish the sessions,
// then keep them open and quiet while the server's memory is measured).

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// Bounds of the command line, so that a typo cannot start an unbounded run.
const (
	maxBenchConns    = 20000
	maxBenchMs       = 600_000   // --duration-ms, --drain-ms, timeouts
	maxHoldMs        = 3_600_000 // --hold-ms
	defaultHoldCapMs = 600_000   // --hold-until-stdin-eof without --hold-ms
	maxBenchWindow   = 65536
	maxBenchRate     = 100_000 // messages per second per session
	maxPlainSize     = 65507   // largest IPv4 UDP payload
)

const (
	modeRaw    = "raw"
	modeSecure = "secure"
	modePlain  = "plain-udp"
)

// benchPayload fills m with a per-connection pattern and the sequence number,
// so a wrong or reordered echo is caught.
func benchPayload(m []byte, conn int, seq uint64) {
	for k := range m {
		m[k] = byte(conn + k)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	copy(m, b[:])
}

type benchConfig struct {
	mode             string
	raddr            *net.UDPAddr
	lip              net.IP // the first source address (nil: the kernel's choice)
	sourceIPs        int    // sessions spread over this many consecutive source addresses
	conns            int
	size             int
	window           int
	duration         time.Duration
	drain            time.Duration
	rate             float64       // messages per second per session; 0: closed loop
	interval         time.Duration // 1/rate
	dialRate         float64       // sessions per second; 0: all at once
	warmup           bool
	establishTimeout time.Duration
	handshakeTimeout time.Duration
	token            []byte
	serverKey        []byte         // secure mode: the server static public key the client pins
	lossTimeout      time.Duration  // plain-udp: an echo later than this is lost
	opts             kcpOpts        // the KCP engine's (secure: MTU already minus the framing)
	block            kcp.BlockCrypt // raw KCP: kcp-go's block cipher (nil: none)
	fec              fecOpts        // raw KCP: kcp-go's FEC shards (0, 0: none)

	idle          bool
	hold          time.Duration // the hold's length, or its cap with untilEOF
	untilEOF      bool
	holdKeepalive time.Duration // raw: one echo per session this often while holding
	holdInterval  int           // KCP update interval (ms) while holding; 0: opts.interval
	holdVerify    bool
}

// benchRun is the state of one bench-client run.
type benchRun struct {
	cfg      *benchConfig
	sessions []*benchSession
	start    time.Time // the first dial
}

func newBenchRun(cfg *benchConfig) *benchRun {
	r := &benchRun{cfg: cfg, sessions: make([]*benchSession, cfg.conns), start: time.Now()}
	for i := range r.sessions {
		r.sessions[i] = &benchSession{id: i, cfg: cfg}
	}
	return r
}

// establish dials every session (paced by --dial-rate) and, with warm-up, exchanges one
// message on each. perSession runs on the session's goroutine after that (whether or not it
// worked); establish returns once every perSession has returned.
func (r *benchRun) establish(perSession func(b *benchSession)) {
	cfg := r.cfg
	var wg sync.WaitGroup
	r.start = time.Now()
	for i, b := range r.sessions {
		if cfg.dialRate > 0 {
			if d := time.Until(r.start.Add(time.Duration(float64(i) / cfg.dialRate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(cfg.establishTimeout)
			b.err = b.dial(deadline)
			if b.err == nil && cfg.warmup {
				b.err = b.exchange(deadline)
			}
			b.established = b.err == nil
			perSession(b)
		}()
	}
	wg.Wait()
}

// failures counts the sessions that failed, by kind, and returns the first error.
func (r *benchRun) failures() (n int, kinds map[string]int, first string) {
	kinds = map[string]int{}
	for _, b := range r.sessions {
		if b.err != nil {
			n++
			kinds[b.err.kind]++
			if first == "" {
				first = b.err.msg
			}
		}
	}
	if n == 0 {
		kinds = nil
	}
	return n, kinds, first
}

// clientResources is what the client process itself uses (for the orchestrator to tell a
// client limit from a server one).
type clientResources struct {
	RSSMB      float64 `json:"client_rss_mb"`
	PeakRSSMB  float64 `json:"client_peak_rss_mb"`
	Goroutines int     `json:"client_goroutines"`
}

func readClientResources() clientResources {
	res := clientResources{Goroutines: runtime.NumGoroutine()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return res
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			continue
		}
		mb := math.Round(kb/1024*10) / 10
		if k == "VmRSS" {
			res.RSSMB = mb
		} else {
			res.PeakRSSMB = mb
		}
	}
	return res
}

// sessionsReport opens the JSON line of a load or hold run: how the sessions fared.
type sessionsReport struct {
	OK          bool           `json:"ok"`
	Error       string         `json:"error,omitempty"`
	Mode        string         `json:"mode"`
	Sessions    int            `json:"sessions"`
	Established int            `json:"established"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	EstablishMs int64          `json:"establish_ms"`
}

// loadReport is the JSON line of a load run.
type loadReport struct {
	sessionsReport
	Messages   uint64  `json:"messages"`
	Sent       uint64  `json:"sent"`
	ElapsedMs  int64   `json:"elapsed_ms"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Us      int64   `json:"p50_us"`
	P90Us      int64   `json:"p90_us"`
	P99Us      int64   `json:"p99_us"`
	P999Us     int64   `json:"p999_us"`
	MaxUs      int64   `json:"max_us"`
	// --rate only: the per-session rate, what all sessions together were asked for, sends
	// that left more than one interval after their slot, slots skipped, and the latency
	// measured from the slot instead of the send.
	Rate         float64 `json:"rate,omitempty"`
	OfferedPerS  float64 `json:"offered_msgs_per_sec,omitempty"`
	LateSends    *int64  `json:"late_sends,omitempty"`
	SkippedSends *int64  `json:"skipped_sends,omitempty"`
	SchedP99Us   *int64  `json:"sched_p99_us,omitempty"`
	SchedMaxUs   *int64  `json:"sched_max_us,omitempty"`
	// plain-udp only: messages without an echo within --loss-timeout-ms (or by the end of the
	// drain), and echoes that came after their message was declared lost.
	Lost       *uint64 `json:"lost,omitempty"`
	LateEchoes *uint64 `json:"late_echoes,omitempty"`
	clientResources
}

// holdReport is the JSON line of a hold run (--idle).
type holdReport struct {
	sessionsReport
	HoldMs     int64  `json:"hold_ms"`
	ReleasedBy string `json:"released_by"` // hold_ms, stdin_eof, signal
	// Secure mode: sessions the server ended while they were held, by reason.
	ServerClosed map[string]int `json:"server_closed,omitempty"`
	// --hold-keepalive-ms: keepalive messages sent, and those without an echo by the next one.
	HoldKeepalives  *uint64         `json:"hold_keepalives,omitempty"`
	HoldUnanswered  *uint64         `json:"hold_keepalives_unanswered,omitempty"`
	AliveAfterHold  *int            `json:"alive_after_hold,omitempty"` // --hold-verify
	CloseMs         int64           `json:"close_ms"`
	ClientAtHolding clientResources `json:"client_at_holding"`
	clientResources
}

func runBench(args []string) {
	fs := flag.NewFlagSet("bench-client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	conns := fs.Int("conns", 100, fmt.Sprintf("concurrent sessions (at most %d; each has its own UDP socket)", maxBenchConns))
	size := fs.Int("size", 64, "message size in bytes (at least 8; KCP message mode: at most the mss)")
	durationMs := fs.Int("duration-ms", 5000, "how long to send, in ms")
	window := fs.Int("window", 1, "messages outstanding per session")
	drainMs := fs.Int("drain-ms", 5000, "after the run, how long to wait for outstanding echoes")
	rate := fs.Float64("rate", 0, "messages per second per session, paced (0: closed loop, as fast as the echoes allow)")
	dialRate := fs.Float64("dial-rate", 0, "sessions dialed per second (0: all at once)")
	warmup := fs.Bool("warmup", true, "before the load, one echo per session (creates the server's session; not measured)")
	establishMs := fs.Int("establish-timeout-ms", 15000, "per session: dial, handshake and warm-up echo within this many ms")
	secure := fs.Bool("secure", false, "speak kcpwatch's secure mode (docs/protocol.md) on every session")
	token := fs.String("token", "", "--secure: application token carried (encrypted) in the HELLO")
	serverKey := fs.String("server-key", "", "--secure (required): the server's static public key, base64 as server.publicKey prints it, or 64 hex digits")
	handshakeMs := fs.Int("handshake-timeout-ms", 10000, "--secure: give up a handshake after this many ms")
	plainUDP := fs.Bool("plain-udp", false, "plain UDP datagrams (message = payload, no KCP), for a plain echo server")
	lossMs := fs.Int("loss-timeout-ms", 1000, "--plain-udp: a message without an echo after this many ms is lost (its window slot is freed)")
	idle := fs.Bool("idle", false, "hold mode: establish the sessions, then hold them open and idle (needs --hold-ms or --hold-until-stdin-eof)")
	holdMs := fs.Int("hold-ms", 0, "hold mode: how long to hold, in ms (with --hold-until-stdin-eof: the longest hold, default 600000)")
	untilEOF := fs.Bool("hold-until-stdin-eof", false, "hold mode: hold until stdin reaches EOF (or --hold-ms)")
	holdKeepaliveMs := fs.Int("hold-keepalive-ms", 0, "hold mode, raw KCP: one echo per session this often while holding, so the server's idle timeout does not close them (0: none; secure mode sends the protocol's keepalives by itself)")
	holdIntervalMs := fs.Int("hold-interval-ms", 1000, "hold mode: the sessions' KCP update interval while holding, with ACKs sent at once (kcp-go updates idle sessions every --interval: 10,000 of them at 10 ms cost the client most of a core); 0 keeps --interval")
	holdVerify := fs.Bool("hold-verify", false, "hold mode: after the hold, one echo per session (alive_after_hold), waiting up to --drain-ms")
	bindIP := fs.String("bind-ip", "", "source address of the sessions (default: the one the kernel uses to reach --addr); e.g. 127.0.200.1 to keep legitimate clients apart from a flood's 127.0.0.x")
	sourceIPs := fs.Int("source-ips", 1, "spread the sessions over this many consecutive source addresses from --bind-ip (IPv4 loopback only), e.g. to stay under a server's per-address limits")
	var opts kcpOpts
	opts.register(fs)
	var crypt cryptOpts
	crypt.register(fs)
	var fec fecOpts
	fec.register(fs)
	fs.Lookup("mtu").Usage = fmt.Sprintf("KCP MTU in bytes; with --secure the largest UDP payload (the engine's MTU is this minus %d)", sessionOverhead)
	fs.Parse(args)
	if fs.NArg() > 0 {
		usageError("bench-client: unexpected argument %q", fs.Arg(0))
	}
	if err := opts.validate(); err != nil {
		usageError("bench-client: %v", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := fec.validate(); err != nil {
		usageError("bench-client: %v", err)
	}
	block, err := crypt.block()
	if err != nil {
		usageError("bench-client: %v", err)
	}
	if (block != nil || fec.data != 0) && (*secure || *plainUDP) {
		usageError("bench-client: --crypt and --fec-data/--fec-parity are kcp-go's own layers, for raw KCP only")
	}

	cfg := &benchConfig{
		block: block, fec: fec,
		mode: modeRaw, conns: *conns, size: *size, window: *window, rate: *rate, dialRate: *dialRate,
		warmup: *warmup, token: []byte(*token), opts: opts,
		duration:         time.Duration(*durationMs) * time.Millisecond,
		drain:            time.Duration(*drainMs) * time.Millisecond,
		establishTimeout: time.Duration(*establishMs) * time.Millisecond,
		handshakeTimeout: time.Duration(*handshakeMs) * time.Millisecond,
		lossTimeout:      time.Duration(*lossMs) * time.Millisecond,
		idle:             *idle, untilEOF: *untilEOF, holdVerify: *holdVerify,
		hold:          time.Duration(*holdMs) * time.Millisecond,
		holdKeepalive: time.Duration(*holdKeepaliveMs) * time.Millisecond,
		holdInterval:  *holdIntervalMs,
	}
	mss := opts.mss()
	switch {
	case *secure && *plainUDP:
		usageError("bench-client: --secure and --plain-udp exclude each other")
	case *secure:
		cfg.mode = modeSecure
		cfg.opts.mtu -= sessionOverhead
		if *serverKey != "" {
			key, err := parseServerKey(*serverKey)
			if err != nil {
				usageError("bench-client: --server-key: %v", err)
			}
			cfg.serverKey = key
		}
		mss = cfg.opts.mss()
	case *plainUDP:
		cfg.mode = modePlain
	}
	inMs := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			usageError("bench-client: --%s must be in %d..%d", name, lo, hi)
		}
	}
	switch {
	case *sourceIPs < 1 || *sourceIPs > 65536:
		usageError("bench-client: --source-ips must be in 1..65536")
	case *conns < 1 || *conns > maxBenchConns:
		usageError("bench-client: --conns must be in 1..%d", maxBenchConns)
	case *size < 8:
		usageError("bench-client: --size must be >= 8 (each message carries its sequence number)")
	case cfg.mode == modePlain && *size > maxPlainSize:
		usageError("bench-client: --size must be at most %d with --plain-udp", maxPlainSize)
	case cfg.mode != modePlain && !opts.stream && *size > mss:
		usageError("bench-client: --size %d exceeds the KCP mss %d (%s)", *size, mss, map[bool]string{false: "mtu - 24", true: fmt.Sprintf("mtu - %d - 24", sessionOverhead)}[*secure])
	case cfg.mode == modeSecure && mss < 1:
		usageError("bench-client: --mtu too small for the session framing")
	case *window < 1 || *window > maxBenchWindow:
		usageError("bench-client: --window must be in 1..%d", maxBenchWindow)
	case math.IsNaN(*rate) || *rate < 0 || *rate > maxBenchRate:
		usageError("bench-client: --rate must be in 0..%d messages per second per session (0: closed loop)", maxBenchRate)
	case math.IsNaN(*dialRate) || *dialRate < 0 || *dialRate > 1e6:
		usageError("bench-client: --dial-rate must be in 0..1000000 sessions per second (0: all at once)")
	case len(*token) > maxTokenLen:
		usageError("bench-client: --token is longer than %d bytes", maxTokenLen)
	case set["token"] && !*secure, set["handshake-timeout-ms"] && !*secure, set["server-key"] && !*secure:
		usageError("bench-client: --token, --server-key and --handshake-timeout-ms need --secure")
	case *secure && *serverKey == "":
		usageError("bench-client: --secure needs --server-key (the server's public key: server.publicKey)")
	case set["loss-timeout-ms"] && !*plainUDP:
		usageError("bench-client: --loss-timeout-ms needs --plain-udp")
	}
	inMs("duration-ms", *durationMs, 1, maxBenchMs)
	inMs("drain-ms", *drainMs, 1, maxBenchMs)
	inMs("establish-timeout-ms", *establishMs, 1, maxBenchMs)
	inMs("handshake-timeout-ms", *handshakeMs, 1, maxBenchMs)
	inMs("loss-timeout-ms", *lossMs, 1, maxBenchMs)
	hold := *idle || set["hold-ms"] || *untilEOF || set["hold-keepalive-ms"] || *holdVerify || set["hold-interval-ms"]
	if hold {
		switch {
		case !*idle:
			usageError("bench-client: --hold-ms, --hold-until-stdin-eof, --hold-keepalive-ms, --hold-interval-ms and --hold-verify need --idle (hold mode)")
		case !set["hold-ms"] && !*untilEOF:
			usageError("bench-client: --idle needs --hold-ms or --hold-until-stdin-eof")
		case cfg.mode == modePlain:
			usageError("bench-client: --idle holds KCP sessions; --plain-udp has none (a plain UDP server keeps no state)")
		case !*warmup:
			usageError("bench-client: --idle needs the warm-up echo (it is what creates the server's sessions)")
		case *holdKeepaliveMs != 0 && cfg.mode != modeRaw:
			usageError("bench-client: --hold-keepalive-ms is for raw KCP (secure mode sends the protocol's keepalives)")
		case set["rate"], set["duration-ms"], set["window"]:
			usageError("bench-client: --rate, --duration-ms and --window are load flags; --idle sends nothing while holding")
		}
		if !set["hold-ms"] {
			*holdMs = defaultHoldCapMs
			cfg.hold = defaultHoldCapMs * time.Millisecond
		}
		inMs("hold-ms", *holdMs, 1, maxHoldMs)
		if *holdKeepaliveMs != 0 {
			inMs("hold-keepalive-ms", *holdKeepaliveMs, 10, maxBenchMs)
		}
		if *holdIntervalMs != 0 {
			inMs("hold-interval-ms", *holdIntervalMs, 10, 5000)
		}
	}
	if *rate > 0 {
		cfg.interval = rateInterval(*rate)
	}

	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		usageError("bench-client: --addr %q: %v", *addr, err)
	}
	cfg.raddr, cfg.lip, cfg.sourceIPs = raddr, sourceIP(raddr), *sourceIPs
	if *bindIP != "" {
		ip := net.ParseIP(*bindIP)
		switch {
		case ip == nil:
			usageError("bench-client: --bind-ip %q is not an IP address", *bindIP)
		case (ip.To4() == nil) != (raddr.IP.To4() == nil):
			usageError("bench-client: --bind-ip and --addr must be of the same family")
		}
		cfg.lip = ip
	}
	if *sourceIPs > 1 && (cfg.lip.To4() == nil || !cfg.lip.IsLoopback() || !addIPv4(cfg.lip, *sourceIPs-1).IsLoopback()) {
		usageError("bench-client: --source-ips > 1 needs IPv4 loopback addresses (a loopback --addr, or --bind-ip 127.x.y.z)")
	}

	var ok bool
	if hold {
		rep := runHold(cfg, os.Stdin, os.Stderr)
		emit(rep)
		ok = rep.OK
	} else {
		rep := runLoad(cfg, os.Stderr)
		emit(rep)
		ok = rep.OK
	}
	if !ok {
		os.Exit(1)
	}
}

// runLoad establishes the sessions, writes "LOAD n" to stderr (n sessions established; the
// load starts now), runs the load on all of them at once and reports.
func runLoad(cfg *benchConfig, stderr io.Writer) loadReport {
	r := newBenchRun(cfg)
	var ready sync.WaitGroup
	ready.Add(cfg.conns)
	begin := make(chan struct{})
	var stopAt, loadStart time.Time
	var hist, schedHist latHist
	pacers := make([]*pacer, cfg.conns)
	var done sync.WaitGroup
	done.Add(cfg.conns)
	go r.establish(func(b *benchSession) {
		defer done.Done()
		ready.Done()
		if b.err != nil {
			if b.t != nil {
				b.t.Close()
			}
			return
		}
		<-begin
		b.err = b.load(stopAt, pacers[b.id], &hist, &schedHist)
		b.t.Close()
	})
	ready.Wait()
	establishMs := time.Since(r.start).Milliseconds()
	atPeak := readClientResources()
	fmt.Fprintf(stderr, "LOAD %d\n", countEstablished(r.sessions))
	loadStart = time.Now()
	stopAt = loadStart.Add(cfg.duration)
	if cfg.rate > 0 {
		// Spread the sessions' slots over one interval, so they do not all send at once.
		for i := range pacers {
			phase := time.Duration(int64(cfg.interval) * int64(i) / int64(cfg.conns))
			pacers[i] = newPacer(loadStart.Add(phase), cfg.interval, cfg.window)
		}
	}
	close(begin)
	done.Wait()
	elapsed := time.Since(loadStart)

	rep := loadReport{sessionsReport: sessionsReport{Mode: cfg.mode, Sessions: cfg.conns, EstablishMs: establishMs}, ElapsedMs: elapsed.Milliseconds()}
	rep.Errors, rep.ErrorKinds, rep.Error = r.failures()
	var lost, late uint64
	for _, b := range r.sessions {
		if b.established {
			rep.Established++
		}
		rep.Sent += b.sent
		lost += b.lost
		late += b.lateEchoes
	}
	rep.Messages = hist.count()
	rep.MsgsPerSec = math.Round(float64(rep.Messages)/elapsed.Seconds()*10) / 10
	rep.P50Us, rep.P90Us, rep.P99Us, rep.P999Us = hist.percentile(0.50), hist.percentile(0.90), hist.percentile(0.99), hist.percentile(0.999)
	rep.MaxUs = hist.maxUs()
	if cfg.rate > 0 {
		var lateSends, skipped int64
		for _, p := range pacers {
			lateSends += p.late
			skipped += p.skipped
		}
		sp99, smax := schedHist.percentile(0.99), schedHist.maxUs()
		rep.Rate, rep.OfferedPerS = cfg.rate, cfg.rate*float64(rep.Established)
		rep.LateSends, rep.SkippedSends, rep.SchedP99Us, rep.SchedMaxUs = &lateSends, &skipped, &sp99, &smax
	}
	if cfg.mode == modePlain {
		rep.Lost, rep.LateEchoes = &lost, &late
	}
	end := readClientResources()
	rep.clientResources = atPeak
	rep.PeakRSSMB = end.PeakRSSMB
	rep.OK = rep.Errors == 0
	return rep
}

// runHold establishes the sessions, writes "HOLDING n" to stderr, holds them until the hold
// ends (--hold-ms, stdin's EOF with --hold-until-stdin-eof, SIGINT or SIGTERM), then closes
// them and reports.
func runHold(cfg *benchConfig, stdin io.Reader, stderr io.Writer) holdReport {
	r := newBenchRun(cfg)
	r.establish(func(*benchSession) {})
	rep := holdReport{sessionsReport: sessionsReport{Mode: cfg.mode, Sessions: cfg.conns, EstablishMs: time.Since(r.start).Milliseconds()}}
	rep.Errors, rep.ErrorKinds, rep.Error = r.failures()
	var held []*benchSession
	for _, b := range r.sessions {
		if b.err == nil {
			held = append(held, b)
		}
	}
	rep.Established = len(held)
	// kcp-go flushes every session every interval even when it has nothing to send: 10,000
	// idle sessions at 10 ms cost the client most of a core, taken from the server it is
	// measuring. While holding, update less often and send ACKs at once instead of at the
	// next update (so an echo of --hold-keepalive-ms is not retransmitted by the server).
	o := cfg.opts
	if cfg.holdInterval > 0 {
		for _, b := range held {
			b.kcp.SetNoDelay(o.nodelay, cfg.holdInterval, o.resend, o.nc)
			b.kcp.SetACKNoDelay(true)
		}
	}
	runtime.GC()
	rep.ClientAtHolding = readClientResources()
	fmt.Fprintf(stderr, "HOLDING %d\n", len(held))

	holdStart := time.Now()
	release := make(chan string, 3)
	timer := time.AfterFunc(cfg.hold, func() { release <- "hold_ms" })
	defer timer.Stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	released := make(chan struct{})
	defer close(released)
	go func() {
		select {
		case <-sigs:
			release <- "signal"
		case <-released:
		}
	}()
	if cfg.untilEOF {
		go func() {
			io.Copy(io.Discard, stdin)
			release <- "stdin_eof"
		}()
	}
	var keepalives, unanswered uint64
	stopKeepalive := make(chan struct{})
	keepaliveDone := make(chan struct{})
	if cfg.holdKeepalive > 0 {
		go func() {
			defer close(keepaliveDone)
			keepalives, unanswered = holdKeepalives(held, cfg.holdKeepalive, stopKeepalive)
		}()
	} else {
		close(keepaliveDone)
	}
	rep.ReleasedBy = <-release
	rep.HoldMs = time.Since(holdStart).Milliseconds()
	close(stopKeepalive)
	<-keepaliveDone
	if cfg.holdKeepalive > 0 {
		rep.HoldKeepalives, rep.HoldUnanswered = &keepalives, &unanswered
	}

	if cfg.holdInterval > 0 {
		for _, b := range held {
			b.kcp.SetNoDelay(o.nodelay, o.interval, o.resend, o.nc)
			b.kcp.SetACKNoDelay(o.ackNoDel)
		}
	}
	if cfg.mode == modeSecure {
		for _, b := range held {
			b.pc.mu.Lock()
			if reason := b.pc.sec.peerDisconnect; reason != "" {
				if rep.ServerClosed == nil {
					rep.ServerClosed = map[string]int{}
				}
				rep.ServerClosed[reason]++
			}
			b.pc.mu.Unlock()
		}
	}
	if cfg.holdVerify {
		var alive int
		var mu sync.Mutex
		var wg sync.WaitGroup
		deadline := time.Now().Add(cfg.drain)
		for _, b := range held {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Echoes of unanswered keepalives may still be on their way: wait for
				// those first (they are ordered before the check's own).
				for len(b.out) > 0 {
					b.t.SetReadDeadline(deadline)
					if timeout, err := b.receive(nil); timeout || err != nil {
						return
					}
				}
				if b.exchange(deadline) == nil {
					mu.Lock()
					alive++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		rep.AliveAfterHold = &alive
	}
	rep.clientResources = readClientResources()
	closeStart := time.Now()
	for _, b := range r.sessions {
		if b.t != nil {
			b.t.Close()
		}
	}
	rep.CloseMs = time.Since(closeStart).Milliseconds()
	rep.OK = rep.Errors == 0 && rep.Established > 0
	if rep.Established == 0 && rep.Error == "" {
		rep.Error = "no session was established"
	}
	return rep
}

// holdKeepalives sends one message on every held session each period (spread over the
// period) until stop, and collects the echoes. It returns the messages sent and how many had
// no echo by the time their session's next one was due.
func holdKeepalives(held []*benchSession, period time.Duration, stop <-chan struct{}) (sent, unanswered uint64) {
	if len(held) == 0 {
		<-stop
		return 0, 0
	}
	step := period / time.Duration(len(held))
	next := time.Now().Add(period)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for i := 0; ; {
		select {
		case <-stop:
			return sent, unanswered
		case <-timer.C:
		}
		// Every session whose turn came (one timer wake-up serves many: steps are short).
		for now := time.Now(); !next.After(now); next = next.Add(step) {
			b := held[i]
			i = (i + 1) % len(held)
			// Collect what came back since the last round, without waiting.
			b.t.SetReadDeadline(now)
			for len(b.out) > 0 {
				if timeout, err := b.receive(nil); timeout || err != nil {
					break
				}
			}
			if len(b.out) > 0 {
				unanswered++
				continue // the session owes an echo: do not pile more up
			}
			if b.send(time.Time{}) == nil {
				sent++
			}
		}
		timer.Reset(time.Until(next))
	}
}
