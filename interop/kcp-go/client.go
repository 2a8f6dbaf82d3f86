package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// dial opens a client session to addr on its own UDP socket. conv < 0 picks
// a random conversation id (as kcp-go's DialWithOptions does); otherwise the
// given id is used. Unlike DialWithOptions, the socket is bound to the source
// IP that reaches addr, so LocalAddr is the ip:port the server sees.
func dial(addr string, conv int64, opts *kcpOpts, fec ...fecOpts) (*kcp.UDPSession, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	id := randomConv()
	if conv >= 0 {
		id = uint32(conv)
	}
	conn, err := localUDP(raddr)
	if err != nil {
		return nil, err
	}
	var f fecOpts
	if len(fec) > 0 {
		f = fec[0]
	}
	// As DialWithOptions(addr, nil, f.data, f.parity), on a socket bound to the source IP.
	s, err := kcp.NewConn4(id, raddr, nil, f.data, f.parity, true, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	opts.apply(s)
	return s, nil
}

// message builds message i: its size and bytes come from rng, and its first
// bytes hold i (big-endian uint32, truncated for messages under 4 bytes), so
// a reordered, lost or duplicated message never matches.
func message(rng *mrand.Rand, i, minSize, maxSize int) []byte {
	size := minSize + rng.Intn(maxSize-minSize+1)
	m := make([]byte, size)
	rng.Read(m)
	var idx [4]byte
	binary.BigEndian.PutUint32(idx[:], uint32(i))
	copy(m, idx[:])
	return m
}

// readMessage reads one echoed message. In message mode one Read returns one
// KCP message; in stream mode exactly len(want) bytes are read.
func readMessage(s *kcp.UDPSession, buf []byte, want int, stream bool) ([]byte, error) {
	if stream {
		_, err := io.ReadFull(s, buf[:want])
		return buf[:want], err
	}
	n, err := s.Read(buf)
	return buf[:n], err
}

func describeMismatch(i int, got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("message %d: got %d bytes, want %d", i, len(got), len(want))
	}
	for k := range got {
		if got[k] != want[k] {
			return fmt.Sprintf("message %d (%d bytes): first difference at byte %d (got 0x%02x, want 0x%02x)", i, len(want), k, got[k], want[k])
		}
	}
	return fmt.Sprintf("message %d differs", i)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func runClient(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	count := fs.Int("count", 1000, "number of messages")
	minSize := fs.Int("min-size", 1, "smallest message size in bytes")
	maxSize := fs.Int("max-size", 1000, "largest message size in bytes (at most mtu-24 in message mode)")
	seed := fs.Int64("seed", 1, "seed for message sizes and contents")
	conv := fs.Int64("conv", -1, "KCP conversation id (negative: random)")
	timeoutMs := fs.Int("timeout-ms", 30000, "overall timeout in ms")
	window := fs.Int("window", 64, "messages outstanding at once")
	lingerMs := fs.Int("linger-ms", 0, "keep the session open this long after the last echo, so its ACKs leave before Close (kcp-go's Close closes the socket before queued ACKs are written)")
	var opts kcpOpts
	opts.register(fs)
	var fec fecOpts
	fec.register(fs)
	fs.Parse(args)
	if err := opts.validate(); err != nil {
		usageError("client: %v", err)
	}
	if err := fec.validate(); err != nil {
		usageError("client: %v", err)
	}
	mss := opts.mss()
	if fec.data > 0 {
		// kcp-go's SetMtu leaves 8 bytes of each datagram to the FEC header.
		mss -= 8
	}
	switch {
	case *count < 0:
		usageError("client: --count must be >= 0")
	case *minSize < 1:
		usageError("client: --min-size must be >= 1 (kcp-go ignores empty writes)")
	case *maxSize < *minSize:
		usageError("client: --max-size must be >= --min-size")
	case !opts.stream && *maxSize > mss:
		usageError("client: --max-size %d exceeds the KCP mss %d (mtu %d - 24, - 8 with FEC); kcp-go would split it into several messages", *maxSize, mss, opts.mtu)
	case *window < 1:
		usageError("client: --window must be >= 1")
	case *conv > 0xffffffff:
		usageError("client: --conv must fit in 32 bits")
	}

	start := time.Now()
	s, err := dial(*addr, *conv, &opts, fec)
	if err != nil {
		fail("dial %s: %v", *addr, err)
	}
	deadline := start.Add(time.Duration(*timeoutMs) * time.Millisecond)
	s.SetDeadline(deadline)

	// pending carries every sent message to the reader, in order; its
	// capacity bounds the messages in flight.
	pending := make(chan []byte, *window)
	writeErr := make(chan error, 1)
	done := make(chan struct{})
	var bytesSent int64
	go func() {
		defer close(pending)
		rng := mrand.New(mrand.NewSource(*seed))
		for i := 0; i < *count; i++ {
			m := message(rng, i, *minSize, *maxSize)
			select {
			case pending <- m:
			case <-done:
				return
			}
			if _, err := s.Write(m); err != nil {
				writeErr <- err
				return
			}
			bytesSent += int64(len(m))
		}
	}()

	buf := make([]byte, *maxSize+64)
	received := 0
	var bytesReceived int64
	var failure string
	for want := range pending {
		got, err := readMessage(s, buf, len(want), opts.stream)
		if err != nil {
			if isTimeout(err) {
				failure = fmt.Sprintf("timeout after %d ms: %d of %d echoes received", *timeoutMs, received, *count)
			} else {
				failure = fmt.Sprintf("read after %d of %d echoes: %v", received, *count, err)
			}
			break
		}
		if !bytes.Equal(got, want) {
			failure = describeMismatch(received, got, want)
			break
		}
		received++
		bytesReceived += int64(len(got))
	}
	close(done)
	if failure == "" {
		select {
		case err := <-writeErr:
			failure = fmt.Sprintf("write after %d messages: %v", received, err)
		default:
		}
	}
	elapsed := time.Since(start)
	if failure == "" && *lingerMs > 0 {
		time.Sleep(time.Duration(*lingerMs) * time.Millisecond)
	}
	local := s.LocalAddr().String()
	cid := s.GetConv()
	s.Close()
	if failure != "" {
		fail("%s", failure)
	}
	// Read after Close, which flushes: these are every UDP byte this process's only session
	// sent and received (kcp-go's counters are per process).
	snmp := kcp.DefaultSnmp.Copy()
	emit(struct {
		OK                bool    `json:"ok"`
		Sent              int     `json:"sent"`
		Received          int     `json:"received"`
		BytesSent         int64   `json:"bytes_sent"`
		BytesReceived     int64   `json:"bytes_received"`
		WireBytesSent     uint64  `json:"wire_bytes_sent"`
		WireBytesReceived uint64  `json:"wire_bytes_received"`
		Local             string  `json:"local"`
		Conv              uint32  `json:"conv"`
		ElapsedMs         int64   `json:"elapsed_ms"`
		Snmp              fecSnmp `json:"snmp"`
	}{true, *count, received, bytesSent, bytesReceived, snmp.OutBytes, snmp.InBytes, local, cid, elapsed.Milliseconds(), readFecSnmp()})
}

// randomConv returns a random 32-bit conversation id.
func randomConv() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}
