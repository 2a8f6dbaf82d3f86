package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

type closedEvent struct {
	Event    string `json:"event"`
	Remote   string `json:"remote"`
	Conv     uint32 `json:"conv"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
}

type echoServer struct {
	opts   kcpOpts
	idle   time.Duration
	bufLen int

	mu       sync.Mutex
	sessions map[*kcp.UDPSession]struct{}
	closing  bool
	wg       sync.WaitGroup
	outMu    sync.Mutex
}

func runServer(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "address to bind")
	port := fs.Int("port", 0, "UDP port to bind (0 picks a free one)")
	idleMs := fs.Int("idle-ms", 10000, "close a session after this many ms without incoming data")
	stdinEOF := fs.Bool("exit-on-stdin-eof", true, "exit when stdin reaches EOF (set false when started from a shell with stdin at /dev/null)")
	srv := &echoServer{sessions: map[*kcp.UDPSession]struct{}{}}
	srv.opts.register(fs)
	var fec fecOpts
	fec.register(fs)
	var crypt cryptOpts
	crypt.register(fs)
	fs.Parse(args)
	if err := srv.opts.validate(); err != nil {
		usageError("server: %v", err)
	}
	if err := fec.validate(); err != nil {
		usageError("server: %v", err)
	}
	block, err := crypt.block()
	if err != nil {
		usageError("server: %v", err)
	}
	if *idleMs <= 0 {
		usageError("server: --idle-ms must be positive")
	}
	srv.idle = time.Duration(*idleMs) * time.Millisecond
	// A message from the peer may span up to 255 fragments; read it whole.
	srv.bufLen = 255 * srv.opts.mss()

	l, err := kcp.ListenWithOptions(net.JoinHostPort(*host, strconv.Itoa(*port)), block, fec.data, fec.parity)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kcpgo server: %v\n", err)
		os.Exit(1)
	}
	_ = l.SetReadBuffer(4 << 20)
	_ = l.SetWriteBuffer(4 << 20)

	stop := make(chan struct{})
	var stopOnce sync.Once
	shutdown := func() { stopOnce.Do(func() { close(stop) }) }

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; shutdown() }()
	if *stdinEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			shutdown()
		}()
	}

	fmt.Fprintf(os.Stderr, "listening %s\n", l.Addr().String())

	go func() {
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				select {
				case <-stop:
				default:
					fmt.Fprintf(os.Stderr, "kcpgo server: accept: %v\n", err)
					shutdown()
				}
				return
			}
			srv.start(s)
		}
	}()

	<-stop
	srv.mu.Lock()
	srv.closing = true
	for s := range srv.sessions {
		s.Close()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
	l.Close()
	srv.outMu.Lock()
	emit(struct {
		Event string  `json:"event"`
		Snmp  fecSnmp `json:"snmp"`
	}{"stopped", readFecSnmp()})
	srv.outMu.Unlock()
}

func (srv *echoServer) start(s *kcp.UDPSession) {
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		s.Close()
		return
	}
	srv.sessions[s] = struct{}{}
	srv.wg.Add(1)
	srv.mu.Unlock()
	srv.opts.apply(s)
	go srv.serve(s)
}

// serve echoes every read back unchanged until the session idles out or is
// closed. In message mode each Read returns exactly one KCP message.
func (srv *echoServer) serve(s *kcp.UDPSession) {
	defer srv.wg.Done()
	var in, out int64
	buf := make([]byte, srv.bufLen)
	for {
		s.SetReadDeadline(time.Now().Add(srv.idle))
		n, err := s.Read(buf)
		if err != nil {
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, io.ErrClosedPipe) {
				fmt.Fprintf(os.Stderr, "kcpgo server: %s: read: %v\n", s.RemoteAddr(), err)
			}
			break
		}
		in += int64(n)
		w, err := s.Write(buf[:n])
		out += int64(w)
		if err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				fmt.Fprintf(os.Stderr, "kcpgo server: %s: write: %v\n", s.RemoteAddr(), err)
			}
			break
		}
	}
	s.Close()
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
	srv.outMu.Lock()
	emit(closedEvent{Event: "closed", Remote: s.RemoteAddr().String(), Conv: s.GetConv(), BytesIn: in, BytesOut: out})
	srv.outMu.Unlock()
}
