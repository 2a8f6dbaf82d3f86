package main

// Unreliable datagrams in secure mode, from docs/protocol.md ("DATAGRAM") alone: a session
// datagram of type 0x13 whose plaintext is flags (bit 0: sequenced) ‖ channel ‖ payload, sealed
// like DATA, never retransmitted and never given to the KCP engine. A sequenced one is
// delivered only if its packet number is higher than the newest delivered on its channel.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

const (
	typeDatagram = 0x13
	// datagramHeaderLen is flags ‖ channel, before the payload.
	datagramHeaderLen = 2
	flagSequenced     = 0x01
	// datagramOverhead is what a DATAGRAM adds around its payload on the wire.
	datagramOverhead = sessionOverhead + datagramHeaderLen
)

// datagramBody is a DATAGRAM's plaintext.
func datagramBody(channel byte, sequenced bool, payload []byte) []byte {
	flags := byte(0)
	if sequenced {
		flags = flagSequenced
	}
	return append([]byte{flags, channel}, payload...)
}

// parseDatagramBody splits a decrypted DATAGRAM plaintext; ok is false for one shorter than
// its header or with a reserved flag bit set (the page says: drop it).
func parseDatagramBody(b []byte) (channel byte, sequenced bool, payload []byte, ok bool) {
	if len(b) < datagramHeaderLen || b[0]&^flagSequenced != 0 {
		return 0, false, nil, false
	}
	return b[1], b[0]&flagSequenced != 0, b[2:], true
}

// receivedDatagram is one datagram delivered to the application.
type receivedDatagram struct {
	channel byte
	payload []byte
}

// datagramState is a session's receive side: the newest packet number delivered per
// sequenced channel, and what was delivered.
type datagramState struct {
	newest    map[byte]uint64
	delivered []receivedDatagram
	stale     uint64
	malformed uint64
}

// onDatagram handles an authentic DATAGRAM (its tag and packet number already checked).
func (s *secureSession) onDatagram(pn uint64, body []byte) {
	d := &s.datagrams
	channel, sequenced, payload, ok := parseDatagramBody(body)
	if !ok {
		d.malformed++
		return
	}
	if sequenced {
		if d.newest == nil {
			d.newest = map[byte]uint64{}
		}
		if newest, seen := d.newest[channel]; seen && pn <= newest {
			d.stale++
			return
		}
		d.newest[channel] = pn
	}
	d.delivered = append(d.delivered, receivedDatagram{channel, append([]byte(nil), payload...)})
}

var errDatagramTooLarge = errors.New("datagram larger than one datagram carries (mtu - 31)")

// sendDatagram seals payload as one DATAGRAM (at most mtu - 31 bytes, mtu the agreed one)
// and sends it.
func (s *secureSession) sendDatagram(mtu int, channel byte, sequenced bool, payload []byte) error {
	if len(payload) > mtu-datagramOverhead {
		return errDatagramTooLarge
	}
	return s.send(typeDatagram, datagramBody(channel, sequenced, payload))
}

// datagramResult is the JSON line of a `secure-datagram` run.
type datagramResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Sent      int    `json:"sent"`
	Received  int    `json:"received"`
	InOrder   bool   `json:"in_order"`
	Stale     uint64 `json:"stale"`
	Malformed uint64 `json:"malformed"`
	// Payloads received, as text, in arrival order.
	Payloads []string `json:"payloads"`
	Channels []int    `json:"channels"`
}

// runSecureDatagram connects, sends --count datagrams ("<prefix><i>", sequenced on --channel)
// one every --interval-ms, keeps reading until --wait-ms after the last, prints what came back
// and disconnects.
func runSecureDatagram(args []string) {
	fs := flag.NewFlagSet("secure-datagram", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4000", "server address HOST:PORT")
	serverKey := fs.String("server-key", "", "the server's static public key (required)")
	count := fs.Int("count", 30, "datagrams to send")
	channel := fs.Int("channel", 1, "channel id 0..255")
	sequenced := fs.Bool("sequenced", true, "ask the receiver for sequenced delivery")
	intervalMs := fs.Int("interval-ms", 33, "between two datagrams")
	waitMs := fs.Int("wait-ms", 1000, "keep reading this long after the last one")
	prefix := fs.String("prefix", "go-", "payload prefix")
	mtu := fs.Int("mtu", 1200, "largest UDP payload")
	fs.Parse(args)
	key, err := parseServerKey(*serverKey)
	if err != nil {
		usageError("secure-datagram: --server-key: %v", err)
	}
	if *channel < 0 || *channel > 255 {
		usageError("secure-datagram: --channel must be 0..255")
	}
	res := datagramResult{InOrder: true, Payloads: []string{}, Channels: []int{}}
	defer func() {
		res.OK = res.Error == ""
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
		if !res.OK {
			os.Exit(1)
		}
	}()
	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		res.Error = err.Error()
		return
	}
	conn, err := localUDP(raddr)
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer conn.Close()
	s := &secureSession{conn: conn, server: raddr, serverKey: key}
	// The engine answers the DATA the server may send; datagrams never go through it.
	opts := kcpOpts{mtu: *mtu, nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256}
	accept, err := s.handshake(protocolVersion, paramsFor(&opts, *mtu), nil, 10*time.Second)
	if err != nil {
		res.Error = err.Error()
		return
	}
	s.start(accept, &opts)
	buf := make([]byte, 65536)
	next := time.Now()
	var end time.Time
	for {
		now := time.Now()
		if res.Sent < *count && !now.Before(next) {
			payload := []byte(fmt.Sprintf("%s%d", *prefix, res.Sent))
			if err := s.sendDatagram(accept.mtu, byte(*channel), *sequenced, payload); err != nil {
				res.Error = err.Error()
				return
			}
			res.Sent++
			next = next.Add(time.Duration(*intervalMs) * time.Millisecond)
			if res.Sent == *count {
				end = now.Add(time.Duration(*waitMs) * time.Millisecond)
			}
		}
		if !end.IsZero() && !now.Before(end) {
			break
		}
		if untilCheck(s.engine) == 0 {
			s.engine.Update()
		}
		wake := next
		if !end.IsZero() {
			wake = end
		}
		if k := now.Add(max(untilCheck(s.engine), time.Millisecond)); k.Before(wake) {
			wake = k
		}
		d, err := s.read(buf, wake)
		if err != nil {
			res.Error = err.Error()
			return
		}
		if d == nil {
			continue
		}
		if body := s.receive(d); body != nil {
			s.engine.Input(body, kcp.IKCP_PACKET_REGULAR, true)
		}
		if s.peerDisconnect != "" {
			res.Error = "the server disconnected: " + s.peerDisconnect
			return
		}
	}
	last := map[byte]int{}
	for _, d := range s.datagrams.delivered {
		res.Payloads = append(res.Payloads, string(d.payload))
		res.Channels = append(res.Channels, int(d.channel))
		var n int
		if _, err := fmt.Sscanf(string(d.payload[len(*prefix):]), "%d", &n); err == nil {
			if prev, seen := last[d.channel]; seen && n <= prev {
				res.InOrder = false
			}
			last[d.channel] = n
		}
	}
	res.Received = len(s.datagrams.delivered)
	res.Stale, res.Malformed = s.datagrams.stale, s.datagrams.malformed
	s.disconnect(disconnectLocalClosed, 0, "")
}
