package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

type benchResult struct {
	lat []time.Duration // one round trip per completed message
	err error
}

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

type inflight struct {
	seq  uint64
	sent time.Time
}

// benchConn runs one session: up to window messages outstanding, sending
// until stopAt, then waiting up to drain for the outstanding echoes.
func benchConn(s *kcp.UDPSession, id, size, window int, stream bool, stopAt time.Time, drain time.Duration) benchResult {
	pending := make(chan inflight, window)
	writeErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(pending)
		m := make([]byte, size)
		for seq := uint64(0); time.Now().Before(stopAt); seq++ {
			select {
			case pending <- inflight{seq, time.Now()}:
			case <-done:
				return
			}
			benchPayload(m, id, seq)
			if _, err := s.Write(m); err != nil {
				writeErr <- err
				return
			}
		}
	}()

	s.SetReadDeadline(stopAt.Add(drain))
	var res benchResult
	buf := make([]byte, size+64)
	want := make([]byte, size)
	for f := range pending {
		got, err := readMessage(s, buf, size, stream)
		if err != nil {
			if isTimeout(err) {
				err = fmt.Errorf("conn %d: no echo for message %d within %v after the run", id, f.seq, drain)
			} else {
				err = fmt.Errorf("conn %d: read: %v", id, err)
			}
			res.err = err
			break
		}
		res.lat = append(res.lat, time.Since(f.sent))
		benchPayload(want, id, f.seq)
		if !bytes.Equal(got, want) {
			res.err = fmt.Errorf("conn %d: %s", id, describeMismatch(int(f.seq), got, want))
			break
		}
	}
	close(done)
	s.Close()
	if res.err == nil {
		select {
		case err := <-writeErr:
			res.err = fmt.Errorf("conn %d: write: %v", id, err)
		default:
		}
	}
	return res
}

func percentile(sorted []time.Duration, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i].Microseconds()
}

func runBench(args []string) {
	fs := flag.NewFlagSet("bench-client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	conns := fs.Int("conns", 100, "concurrent sessions")
	size := fs.Int("size", 64, "message size in bytes (at most mtu-24 in message mode)")
	durationMs := fs.Int("duration-ms", 5000, "how long to send, in ms")
	window := fs.Int("window", 1, "messages outstanding per session")
	drainMs := fs.Int("drain-ms", 5000, "after the run, how long to wait for outstanding echoes")
	var opts kcpOpts
	opts.register(fs)
	fs.Parse(args)
	if err := opts.validate(); err != nil {
		usageError("bench-client: %v", err)
	}
	switch {
	case *conns < 1:
		usageError("bench-client: --conns must be >= 1")
	case *size < 8:
		usageError("bench-client: --size must be >= 8 (each message carries its sequence number)")
	case !opts.stream && *size > opts.mss():
		usageError("bench-client: --size %d exceeds the KCP mss %d (mtu %d - 24)", *size, opts.mss(), opts.mtu)
	case *window < 1:
		usageError("bench-client: --window must be >= 1")
	case *durationMs < 1 || *drainMs < 1:
		usageError("bench-client: --duration-ms and --drain-ms must be positive")
	}

	sessions := make([]*kcp.UDPSession, *conns)
	for i := range sessions {
		s, err := dial(*addr, -1, &opts)
		if err != nil {
			for _, o := range sessions[:i] {
				o.Close()
			}
			fail("dial %s (session %d): %v", *addr, i, err)
		}
		sessions[i] = s
	}

	start := time.Now()
	stopAt := start.Add(time.Duration(*durationMs) * time.Millisecond)
	drain := time.Duration(*drainMs) * time.Millisecond
	results := make([]benchResult, *conns)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = benchConn(s, i, *size, *window, opts.stream, stopAt, drain)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	for _, r := range results {
		if r.err != nil {
			fail("%v", r.err)
		}
		all = append(all, r.lat...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	var maxUs int64
	if len(all) > 0 {
		maxUs = all[len(all)-1].Microseconds()
	}
	secs := elapsed.Seconds()
	emit(struct {
		OK         bool    `json:"ok"`
		Messages   int     `json:"messages"`
		ElapsedMs  int64   `json:"elapsed_ms"`
		MsgsPerSec float64 `json:"msgs_per_sec"`
		P50Us      int64   `json:"p50_us"`
		P99Us      int64   `json:"p99_us"`
		MaxUs      int64   `json:"max_us"`
	}{true, len(all), elapsed.Milliseconds(), math.Round(float64(len(all))/secs*10) / 10, percentile(all, 0.50), percentile(all, 0.99), maxUs})
}
