// Command kcpgo is the kcp-go reference peer used by kcpwatch's interop tests
// and benchmarks. It speaks plain KCP (no block crypt, no FEC), so its wire
// format is the one of the original ikcp C implementation; secure-client
// speaks kcpwatch's secure mode (docs/protocol.md) around a kcp-go engine.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"

	kcp "github.com/xtaci/kcp-go/v5"
)

// kcpOverhead is the size of a KCP segment header; mss = mtu - kcpOverhead.
const kcpOverhead = 24

// maxMTU is kcp-go's upper bound for SetMtu (maxPacketSize).
const maxMTU = 1472

// kcpOpts holds the KCP tuning flags shared by every subcommand.
type kcpOpts struct {
	nodelay  int
	interval int
	resend   int
	nc       int
	sndwnd   int
	rcvwnd   int
	mtu      int
	stream   bool
	ackNoDel bool
}

func (o *kcpOpts) register(fs *flag.FlagSet) {
	fs.IntVar(&o.nodelay, "nodelay", 1, "KCP nodelay (0 or 1)")
	fs.IntVar(&o.interval, "interval", 10, "KCP update interval in ms (kcp-go clamps to 10..5000)")
	fs.IntVar(&o.resend, "resend", 2, "KCP fast resend threshold (0 disables)")
	fs.IntVar(&o.nc, "nc", 1, "KCP no congestion control (0 or 1)")
	fs.IntVar(&o.sndwnd, "sndwnd", 256, "KCP send window in segments")
	fs.IntVar(&o.rcvwnd, "rcvwnd", 256, "KCP receive window in segments")
	fs.IntVar(&o.mtu, "mtu", 1200, "KCP MTU in bytes (excluding IP/UDP headers)")
	fs.BoolVar(&o.stream, "stream", false, "KCP stream mode (default: message mode)")
	fs.BoolVar(&o.ackNoDel, "ack-nodelay", false, "flush ACKs immediately on input (kcp-go SetACKNoDelay)")
}

func (o *kcpOpts) validate() error {
	if o.mtu <= kcpOverhead+1 || o.mtu > maxMTU {
		return fmt.Errorf("--mtu must be in %d..%d", kcpOverhead+2, maxMTU)
	}
	if o.sndwnd <= 0 || o.rcvwnd <= 0 {
		return fmt.Errorf("--sndwnd and --rcvwnd must be positive")
	}
	return nil
}

// mss is the largest payload that fits one KCP segment. kcp-go's Write splits
// anything larger into several independent messages, so in message mode a
// message is only kept whole if it is at most mss bytes.
func (o *kcpOpts) mss() int { return o.mtu - kcpOverhead }

func (o *kcpOpts) apply(s *kcp.UDPSession) {
	s.SetStreamMode(o.stream)
	s.SetWriteDelay(false)
	s.SetNoDelay(o.nodelay, o.interval, o.resend, o.nc)
	s.SetWindowSize(o.sndwnd, o.rcvwnd)
	s.SetMtu(o.mtu)
	s.SetACKNoDelay(o.ackNoDel)
}

// fecOpts are kcp-go's FEC shard counts (DialWithOptions / ListenWithOptions
// dataShards, parityShards); 0 and 0 is no FEC.
type fecOpts struct {
	data   int
	parity int
}

func (o *fecOpts) register(fs *flag.FlagSet) {
	fs.IntVar(&o.data, "fec-data", 0, "FEC data shards (kcp-go dataShards; 0: no FEC)")
	fs.IntVar(&o.parity, "fec-parity", 0, "FEC parity shards (kcp-go parityShards; 0: no FEC)")
}

func (o *fecOpts) validate() error {
	if (o.data == 0) != (o.parity == 0) || o.data < 0 || o.parity < 0 || o.data+o.parity > 256 {
		return fmt.Errorf("--fec-data and --fec-parity must both be 0 or both >= 1 with a sum of at most 256")
	}
	return nil
}

// cryptOpts is kcp-go's block cipher (ListenWithOptions / NewConn4 block): none, or AES
// (kcp.NewAESBlockCrypt, AES-256 keyed by SHA-256 of --key) for the benchmarks that compare an
// encrypted kcp-go with kcpwatch's secure mode. kcp-go then prefixes every datagram with a
// 16-byte nonce and a CRC32 and encrypts it in CFB mode.
type cryptOpts struct {
	crypt string
	key   string
}

func (o *cryptOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.crypt, "crypt", "none", "kcp-go block cipher: none or aes (kcp.NewAESBlockCrypt, AES-256 keyed by SHA-256 of --key)")
	fs.StringVar(&o.key, "key", "kcpwatch-bench", "--crypt aes: the passphrase both sides derive the key from")
}

// block is the kcp.BlockCrypt to pass to kcp-go (nil: none).
func (o *cryptOpts) block() (kcp.BlockCrypt, error) {
	switch o.crypt {
	case "none":
		return nil, nil
	case "aes":
		k := sha256.Sum256([]byte(o.key))
		return kcp.NewAESBlockCrypt(k[:])
	}
	return nil, fmt.Errorf("--crypt must be none or aes, got %q", o.crypt)
}

// fecSnmp is kcp-go's FEC counters (per process), printed at the end of a
// client's JSON line and of the server's closing summary.
type fecSnmp struct {
	FECRecovered    uint64 `json:"FECRecovered"`
	FECErrs         uint64 `json:"FECErrs"`
	FECParityShards uint64 `json:"FECParityShards"`
	FECFullShardSet uint64 `json:"FECFullShardSet"`
	FECShardSet     uint64 `json:"FECShardSet"`
}

func readFecSnmp() fecSnmp {
	s := kcp.DefaultSnmp.Copy()
	return fecSnmp{s.FECRecovered, s.FECErrs, s.FECParityShards, s.FECFullShardSet, s.FECShardSet}
}

// emit writes v as one JSON line to stdout.
func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	b = append(b, '\n')
	os.Stdout.Write(b)
}

// fail prints {"ok":false,"error":...} and exits 1.
func fail(format string, args ...any) {
	emit(struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}{false, fmt.Sprintf(format, args...)})
	os.Exit(1)
}

// usageError reports a bad command line on stderr and exits 2.
func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kcpgo: "+format+"\n", args...)
	os.Exit(2)
}

// localUDP opens an unconnected UDP socket for a client session. It binds to
// the source IP the kernel would use to reach raddr, so LocalAddr reports the
// same ip:port the server sees (kcp-go needs an unconnected socket: it uses
// WriteTo).
func localUDP(raddr *net.UDPAddr) (*net.UDPConn, error) {
	return listenFrom(raddr, sourceIP(raddr))
}

// sourceIP is the local IP the kernel picks to reach raddr (nil if it cannot tell).
func sourceIP(raddr *net.UDPAddr) net.IP {
	probe, err := net.DialUDP(udpNetwork(raddr), nil, raddr)
	if err != nil {
		return nil
	}
	defer probe.Close()
	return probe.LocalAddr().(*net.UDPAddr).IP
}

// listenFrom opens an unconnected UDP socket on lip (any port) of raddr's family.
func listenFrom(raddr *net.UDPAddr, lip net.IP) (*net.UDPConn, error) {
	return net.ListenUDP(udpNetwork(raddr), &net.UDPAddr{IP: lip})
}

func udpNetwork(raddr *net.UDPAddr) string {
	if raddr.IP.To4() == nil {
		return "udp6"
	}
	return "udp4"
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: kcpgo <command> [flags]

commands:
  server        echo server (prints "listening HOST:PORT" to stderr)
  client        send deterministic messages, verify the echoes
  bench-client  many concurrent echo sessions (raw KCP, secure mode or plain UDP), closed loop
                or paced, latency percentiles; or hold sessions open and idle
  secure-client like client, against a kcpwatch server in secure mode (docs/protocol.md)
  secure-datagram sends unreliable datagrams (DATAGRAM, docs/protocol.md) to a secure server and prints what comes back
  flood         a bounded handshake / garbage / KCP-looking datagram flood
  fec-vectors   Reed-Solomon test vectors from klauspost/reedsolomon (kcp-go's FEC codec)

Run "kcpgo <command> -h" for the flags of a command.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "server":
		runServer(args)
	case "client":
		runClient(args)
	case "bench-client":
		runBench(args)
	case "secure-client":
		runSecureClient(args)
	case "secure-datagram":
		runSecureDatagram(args)
	case "flood":
		runFlood(args)
	case "fec-vectors":
		runFECVectors(args)
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "kcpgo: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}
