package main

// flood: a bounded datagram flood against a kcpwatch server, from many local sockets, to
// measure what the server spends on traffic that never becomes a session and what it sends
// back (a secure-mode server must answer far fewer bytes than it receives).

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxFloodCount   = 5_000_000
	maxFloodSources = 4096
	maxFloodMs      = 600_000
	maxGarbageLen   = 1200
	// KCP commands (ikcp): push, ack, window probe, window size.
	kcpCmdPush = 81
	kcpCmdWins = 84
)

// Kinds of flood datagram.
const (
	floodHelloKind = iota
	floodGarbageKind
	floodConvKind
	floodKinds
)

var floodKindNames = [floodKinds]string{"hello", "garbage", "conv"}

// floodHello writes into buf a well-formed first HELLO (docs/protocol.md): version 2, suite
// 1, the key id given, a random nonce, a zero cookie, and a random first Noise message for an
// empty token (the server reads it only once the cookie verifies), 97 bytes. buf must hold 97
// bytes.
func floodHello(rng *rand.Rand, keyID [4]byte, buf []byte) []byte {
	b := buf[:helloMinLen]
	clear(b)
	b[0], b[1], b[2] = typeHello, protocolVersion, suiteNK
	copy(b[4:8], keyID[:])
	for i := 8; i < 24; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	// Cookie (24..40) zero; the Noise message (e, the encrypted KCP parameters and their tag)
	// random.
	for i := helloHeaderLen; i < helloMinLen; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// floodGarbage writes into buf random bytes of a random length in 1..maxGarbageLen. buf must
// hold maxGarbageLen bytes.
func floodGarbage(rng *rand.Rand, buf []byte) []byte {
	b := buf[:1+rng.IntN(maxGarbageLen)]
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// floodConv writes into buf one KCP segment with a random non-zero conv: a random command
// (push, ack, window probe, window size), random window, timestamp, sn and una, and for a
// push 0..64 random data bytes (len matching). buf must hold 24+64 bytes.
func floodConv(rng *rand.Rand, buf []byte) []byte {
	conv := rng.Uint32()
	for conv == 0 {
		conv = rng.Uint32()
	}
	cmd := byte(kcpCmdPush + rng.IntN(kcpCmdWins-kcpCmdPush+1))
	n := 0
	if cmd == kcpCmdPush {
		n = rng.IntN(65)
	}
	b := buf[:kcpOverhead+n]
	binary.LittleEndian.PutUint32(b[0:], conv)
	b[4] = cmd
	b[5] = 0 // frg
	binary.LittleEndian.PutUint16(b[6:], uint16(rng.Uint32()))
	binary.LittleEndian.PutUint32(b[8:], rng.Uint32())            // ts
	binary.LittleEndian.PutUint32(b[12:], uint32(rng.IntN(1024))) // sn
	binary.LittleEndian.PutUint32(b[16:], uint32(rng.IntN(1024))) // una
	binary.LittleEndian.PutUint32(b[20:], uint32(n))
	for i := kcpOverhead; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// floodKindsFor returns the kinds a --kind value draws from.
func floodKindsFor(kind string) ([]int, bool) {
	switch kind {
	case "hello":
		return []int{floodHelloKind}, true
	case "garbage":
		return []int{floodGarbageKind}, true
	case "conv":
		return []int{floodConvKind}, true
	case "mix":
		return []int{floodHelloKind, floodGarbageKind, floodConvKind}, true
	}
	return nil, false
}

// floodWorker sends its share of the datagrams, round robin over its sockets.
type floodWorker struct {
	socks  []*net.UDPConn
	target netip.AddrPort
	quota  int64
	rate   float64 // datagrams per second for this worker; 0: as fast as possible
	kinds  []int
	rng    *rand.Rand
	// keyID goes in flood HELLOs: the server's (--server-key) earns COOKIEs, another one
	// REJECTs unknown_server_key.
	keyID [4]byte

	sent, bytes, errors int64
	byKind              [floodKinds]int64
	firstErr            string
}

func (w *floodWorker) run(start, stopAt time.Time) {
	buf := make([]byte, maxGarbageLen)
	var gap time.Duration
	if w.rate > 0 {
		gap = time.Duration(float64(time.Second) / w.rate)
	}
	for i := int64(0); i < w.quota; i++ {
		// The clock is read every 64 datagrams when unpaced.
		if w.rate > 0 || i%64 == 0 {
			now := time.Now()
			if !now.Before(stopAt) {
				return
			}
			if w.rate > 0 {
				if due := start.Add(time.Duration(i) * gap); due.After(now) {
					time.Sleep(due.Sub(now))
				}
			}
		}
		k := w.kinds[0]
		if len(w.kinds) > 1 {
			k = w.kinds[w.rng.IntN(len(w.kinds))]
		}
		var d []byte
		switch k {
		case floodHelloKind:
			d = floodHello(w.rng, w.keyID, buf)
		case floodGarbageKind:
			d = floodGarbage(w.rng, buf)
		default:
			d = floodConv(w.rng, buf)
		}
		sock := w.socks[i%int64(len(w.socks))]
		if _, err := sock.WriteToUDPAddrPort(d, w.target); err != nil {
			w.errors++
			if w.firstErr == "" {
				w.firstErr = err.Error()
			}
			continue
		}
		w.sent++
		w.bytes += int64(len(d))
		w.byKind[k]++
	}
}

// floodReceived counts what the server sent back, by the reply's first byte.
type floodReceived struct {
	datagrams, bytes               atomic.Int64
	cookie, accept, reject, others atomic.Int64
}

func (r *floodReceived) drain(sock *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, _, err := sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isTransient(err) {
				continue
			}
			return
		}
		r.datagrams.Add(1)
		r.bytes.Add(int64(n))
		switch {
		case n > 0 && buf[0] == typeCookie:
			r.cookie.Add(1)
		case n > 0 && buf[0] == typeAccept:
			r.accept.Add(1)
		case n > 0 && buf[0] == typeReject:
			r.reject.Add(1)
		default:
			r.others.Add(1)
		}
	}
}

type floodReport struct {
	OK                bool             `json:"ok"`
	Error             string           `json:"error,omitempty"`
	Kind              string           `json:"kind"`
	Sources           int              `json:"sources"`
	SourceIPs         int              `json:"source_ips"`
	Count             int64            `json:"count"`
	StoppedBy         string           `json:"stopped_by"` // count or max_ms
	SentDatagrams     int64            `json:"sent_datagrams"`
	SentBytes         int64            `json:"sent_bytes"`
	SentByKind        map[string]int64 `json:"sent_by_kind"`
	SendErrors        int64            `json:"send_errors"`
	FirstSendError    string           `json:"first_send_error,omitempty"`
	ReceivedDatagrams int64            `json:"received_datagrams"`
	ReceivedBytes     int64            `json:"received_bytes"`
	ReceivedCookies   int64            `json:"received_cookies"`
	ReceivedAccepts   int64            `json:"received_accepts"`
	ReceivedRejects   int64            `json:"received_rejects"`
	ReceivedOther     int64            `json:"received_other"`
	SendMs            int64            `json:"send_ms"`
	ElapsedMs         int64            `json:"elapsed_ms"`
	DatagramsPerSec   float64          `json:"datagrams_per_sec"`
	// received_bytes / sent_bytes: above 1 the server amplifies.
	ByteRatio float64 `json:"byte_ratio"`
}

// floodSourceIP is the i-th of n source addresses: with n = 1 the address the kernel uses
// to reach the target; otherwise 127.0.0.1 onwards through 127.0.0.0/8 (loopback targets).
func floodSourceIP(base net.IP, i, n int) net.IP {
	if n <= 1 {
		return base
	}
	return addIPv4(net.IPv4(127, 0, 0, 1), i)
}

// addIPv4 is the IPv4 address i after base.
func addIPv4(base net.IP, i int) net.IP {
	b4 := base.To4()
	if b4 == nil {
		return base
	}
	v := binary.BigEndian.Uint32(b4) + uint32(i)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func runFlood(args []string) {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	count := fs.Int64("count", 0, fmt.Sprintf("datagrams to send in total (required, 1..%d)", maxFloodCount))
	rate := fs.Float64("rate", 0, "datagrams per second in total (0: as fast as possible)")
	sources := fs.Int("sources", 256, fmt.Sprintf("distinct local UDP sockets (source ports), 1..%d", maxFloodSources))
	sourceIPs := fs.Int("source-ips", 1, "spread the sockets over this many source addresses 127.0.0.1, 127.0.0.2, ... (loopback targets only; 1: the address that reaches --addr); bench-client --bind-ip keeps legitimate clients elsewhere")
	kind := fs.String("kind", "hello", "hello (well-formed HELLO, zero cookie, random nonce), garbage (random bytes, random length 1..1200), conv (KCP segments with random convs) or mix (all three at random)")
	maxMs := fs.Int("max-ms", 10000, fmt.Sprintf("hard bound on the sending time in ms, 1..%d", maxFloodMs))
	lingerMs := fs.Int("linger-ms", 200, "after sending, how long to keep reading replies, in ms (0..10000)")
	workers := fs.Int("workers", 4, "sending goroutines, 1..64")
	seed := fs.Uint64("seed", 0, "random seed (0: a random one)")
	serverKey := fs.String("server-key", "", "hello: the server's public key, whose key id the HELLOs carry (they are then answered with COOKIEs); without it the key id is zero (REJECT unknown_server_key)")
	fs.Parse(args)
	kinds, ok := floodKindsFor(*kind)
	switch {
	case fs.NArg() > 0:
		usageError("flood: unexpected argument %q", fs.Arg(0))
	case *count < 1 || *count > maxFloodCount:
		usageError("flood: --count is required, 1..%d", maxFloodCount)
	case math.IsNaN(*rate) || *rate < 0 || *rate > 1e8:
		usageError("flood: --rate must be in 0..100000000 datagrams per second (0: as fast as possible)")
	case *sources < 1 || *sources > maxFloodSources:
		usageError("flood: --sources must be in 1..%d", maxFloodSources)
	case *sourceIPs < 1 || *sourceIPs > *sources:
		usageError("flood: --source-ips must be in 1..--sources")
	case !ok:
		usageError("flood: --kind must be hello, garbage, conv or mix (got %q)", *kind)
	case *maxMs < 1 || *maxMs > maxFloodMs:
		usageError("flood: --max-ms must be in 1..%d", maxFloodMs)
	case *lingerMs < 0 || *lingerMs > 10000:
		usageError("flood: --linger-ms must be in 0..10000")
	case *workers < 1 || *workers > 64:
		usageError("flood: --workers must be in 1..64")
	}
	var helloKeyID [4]byte
	if *serverKey != "" {
		key, err := parseServerKey(*serverKey)
		if err != nil {
			usageError("flood: --server-key: %v", err)
		}
		helloKeyID = keyID(key)
	}
	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		usageError("flood: --addr %q: %v", *addr, err)
	}
	if *sourceIPs > 1 && (raddr.IP.To4() == nil || !raddr.IP.IsLoopback()) {
		usageError("flood: --source-ips > 1 needs an IPv4 loopback --addr")
	}
	target := raddr.AddrPort()
	target = netip.AddrPortFrom(target.Addr().Unmap(), target.Port())
	if *seed == 0 {
		*seed = rand.Uint64()
	}

	base := sourceIP(raddr)
	socks := make([]*net.UDPConn, *sources)
	var recv floodReceived
	var readers sync.WaitGroup
	for i := range socks {
		s, err := listenFrom(raddr, floodSourceIP(base, i%*sourceIPs, *sourceIPs))
		if err != nil {
			for _, o := range socks[:i] {
				o.Close()
			}
			fail("flood: socket %d of %d: %v", i+1, *sources, err)
		}
		socks[i] = s
		readers.Add(1)
		go func() { defer readers.Done(); recv.drain(s) }()
	}
	nw := min(*workers, *sources)
	ws := make([]*floodWorker, nw)
	for i := range ws {
		w := &floodWorker{target: target, kinds: kinds, rng: rand.New(rand.NewPCG(*seed, uint64(i))), keyID: helloKeyID}
		for j := i; j < len(socks); j += nw {
			w.socks = append(w.socks, socks[j])
		}
		w.quota = *count / int64(nw)
		if int64(i) < *count%int64(nw) {
			w.quota++
		}
		w.rate = *rate / float64(nw)
		ws[i] = w
	}

	start := time.Now()
	stopAt := start.Add(time.Duration(*maxMs) * time.Millisecond)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(start, stopAt) }()
	}
	wg.Wait()
	sendTime := time.Since(start)
	time.Sleep(time.Duration(*lingerMs) * time.Millisecond)
	for _, s := range socks {
		s.Close()
	}
	readers.Wait()
	elapsed := time.Since(start)

	rep := floodReport{Kind: *kind, Sources: *sources, SourceIPs: *sourceIPs, Count: *count,
		SentByKind: map[string]int64{}, SendMs: sendTime.Milliseconds(), ElapsedMs: elapsed.Milliseconds()}
	var errs []string
	for _, w := range ws {
		rep.SentDatagrams += w.sent
		rep.SentBytes += w.bytes
		rep.SendErrors += w.errors
		for k, n := range w.byKind {
			if n > 0 {
				rep.SentByKind[floodKindNames[k]] += n
			}
		}
		if w.firstErr != "" {
			errs = append(errs, w.firstErr)
		}
	}
	if len(errs) > 0 {
		rep.FirstSendError = errs[0]
	}
	rep.StoppedBy = "count"
	if rep.SentDatagrams+rep.SendErrors < *count {
		rep.StoppedBy = "max_ms"
	}
	rep.ReceivedDatagrams, rep.ReceivedBytes = recv.datagrams.Load(), recv.bytes.Load()
	rep.ReceivedCookies, rep.ReceivedAccepts = recv.cookie.Load(), recv.accept.Load()
	rep.ReceivedRejects, rep.ReceivedOther = recv.reject.Load(), recv.others.Load()
	if s := sendTime.Seconds(); s > 0 {
		rep.DatagramsPerSec = math.Round(float64(rep.SentDatagrams) / s)
	}
	if rep.SentBytes > 0 {
		rep.ByteRatio = math.Round(float64(rep.ReceivedBytes)/float64(rep.SentBytes)*1e4) / 1e4
	}
	rep.OK = rep.SentDatagrams > 0
	if !rep.OK {
		rep.Error = "nothing was sent: " + strings.Join(errs, "; ")
	}
	emit(rep)
	if !rep.OK {
		os.Exit(1)
	}
}
