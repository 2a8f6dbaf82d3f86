package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// pushConn is the net.PacketConn under one bench-client kcp-go session.
//
// kcp-go's own client read loop on Linux keeps 256 receive buffers of 1500 bytes per session
// (384 KB; 3.8 GB at 10,000 sessions). pushConn implements kcp-go's PacketPusher instead:
// one goroutine per session reads into a single small buffer and hands each datagram to the
// session. It also hides the socket's batch interface, so kcp-go sends with WriteTo.
//
// With sec set, pushConn carries the session in kcpwatch's secure mode (docs/protocol.md):
// every datagram kcp-go writes leaves sealed in a DATA datagram; a received datagram is
// verified (tag, replay window) and only a DATA body reaches kcp-go; it sends a KEEPALIVE
// when nothing was sent for a quarter of the server's idle timeout; a DISCONNECT from the
// server becomes a read error of the session; Close sends DISCONNECT (local_closed).
type pushConn struct {
	conn   *net.UDPConn
	server *net.UDPAddr

	mu     sync.Mutex
	sec    *secureSession // nil: raw KCP. Guarded by mu (not safe for concurrent use).
	recv   func(b []byte, addr net.Addr, err error)
	closed bool
}

// peerDisconnectError is a DISCONNECT from the server, as a read error of the session.
type peerDisconnectError struct{ reason string }

func (e *peerDisconnectError) Error() string {
	return fmt.Sprintf("the server disconnected (%s)", e.reason)
}

var errNoReadFrom = errors.New("pushConn delivers datagrams through SetPacketReceiver")

// pushBufLen bounds a received datagram: larger than any MTU kcp-go accepts (1500).
const pushBufLen = 2048

// SetPacketReceiver implements kcp.PacketPusher: kcp-go calls it with the session's input
// function when the session is created, and with nil on Close.
func (c *pushConn) SetPacketReceiver(fn func(b []byte, addr net.Addr, err error)) {
	c.mu.Lock()
	start := c.recv == nil && fn != nil && !c.closed
	c.recv = fn
	c.mu.Unlock()
	if start {
		go c.loop()
	}
}

func (c *pushConn) receiver() func([]byte, net.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recv
}

// loop reads the socket until it is closed. kcp-go's input function is called without mu
// held: it may flush, and the flush writes through WriteTo.
func (c *pushConn) loop() {
	buf := make([]byte, pushBufLen)
	for {
		var keepaliveAt time.Time
		if c.sec != nil {
			c.mu.Lock()
			if every := c.sec.keepaliveEvery(); every > 0 {
				keepaliveAt = c.sec.lastSent.Add(every)
			}
			c.mu.Unlock()
			c.conn.SetReadDeadline(keepaliveAt) // zero: none
		}
		n, from, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			if isTimeout(err) {
				c.keepalive()
				continue
			}
			c.mu.Lock()
			closed, fn := c.closed, c.recv
			c.mu.Unlock()
			if !closed && fn != nil {
				fn(nil, nil, err)
			}
			return
		}
		d := buf[:n]
		var addr net.Addr = from
		disconnect := ""
		if c.sec != nil {
			c.mu.Lock()
			c.sec.wire.datagramsReceived++
			c.sec.wire.bytesReceived += uint64(n)
			d = c.sec.receive(d)
			disconnect = c.sec.peerDisconnect
			c.mu.Unlock()
			// Replies may come from any address; the tag authenticates them.
			addr = c.server
		}
		fn := c.receiver()
		if fn == nil {
			return
		}
		if d != nil {
			fn(d, addr, nil)
		}
		if disconnect != "" {
			fn(nil, nil, &peerDisconnectError{disconnect})
			return
		}
	}
}

// keepalive sends a KEEPALIVE if the session sent nothing for a quarter of the server's
// idle timeout.
func (c *pushConn) keepalive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.sec == nil || c.sec.peerDisconnect != "" {
		return
	}
	if every := c.sec.keepaliveEvery(); every > 0 && time.Since(c.sec.lastSent) >= every {
		c.sec.send(typeKeepalive, nil)
	}
}

// WriteTo sends one datagram of the session (addr is the server's, as kcp-go knows it).
func (c *pushConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.sec == nil {
		return c.conn.WriteToUDP(b, c.server)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if err := c.sec.send(typeData, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close ends the session: DISCONNECT (local_closed) in secure mode unless the server ended
// it, then the socket.
func (c *pushConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.sec != nil && c.sec.peerDisconnect == "" {
		c.sec.disconnect(disconnectLocalClosed, 0, "")
	}
	c.mu.Unlock()
	return c.conn.Close()
}

func (c *pushConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, errNoReadFrom }
func (c *pushConn) LocalAddr() net.Addr                    { return c.conn.LocalAddr() }

// The socket's read deadline belongs to the read loop (keepalives): only writes take one.
func (c *pushConn) SetDeadline(t time.Time) error      { return c.conn.SetWriteDeadline(t) }
func (c *pushConn) SetReadDeadline(time.Time) error    { return nil }
func (c *pushConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
