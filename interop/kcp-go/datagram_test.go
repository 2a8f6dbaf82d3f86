package main

import (
	"testing"
)

// The DATAGRAM vectors of docs/protocol.md ("Test vectors").
const (
	vecDatagramClient = "13443322110900000000000000425cace38fcc6545d2624ef80cd52f866ba4a625e9"
	vecDatagramServer = "134433221108000000000000007484ebf2139a15d053f331c47fba2f94b5e31f11"
)

func TestVectorDatagrams(t *testing.T) {
	c2s, s2c := cipherOf(t, vecKeyC2S), cipherOf(t, vecKeyS2C)
	checkHex(t, "client DATAGRAM pn 9", sealSession(typeDatagram, vecConv, 9, datagramBody(3, true, []byte("pos")), c2s), vecDatagramClient)
	checkHex(t, "server DATAGRAM pn 8", sealSession(typeDatagram, vecConv, 8, datagramBody(0, false, []byte("hi")), s2c), vecDatagramServer)
	typ, pn, body, err := openSession(unhex(t, vecDatagramServer), vecConv, s2c)
	channel, sequenced, payload, ok := parseDatagramBody(body)
	if err != nil || typ != typeDatagram || pn != 8 || !ok || channel != 0 || sequenced || string(payload) != "hi" {
		t.Errorf("open DATAGRAM: %v %#x %d %v %d %v %q", err, typ, pn, ok, channel, sequenced, payload)
	}
	// The type is associated data: the same bytes relabelled DATA do not open.
	d := unhex(t, vecDatagramServer)
	d[0] = typeData
	if _, _, _, err := openSession(d, vecConv, s2c); err != errDecryptFailed {
		t.Errorf("DATAGRAM relabelled DATA: %v", err)
	}
	if _, _, _, ok := parseDatagramBody([]byte{0x02, 0}); ok {
		t.Error("a reserved flag bit must be refused")
	}
	if _, _, _, ok := parseDatagramBody([]byte{0}); ok {
		t.Error("a plaintext shorter than the header must be refused")
	}
}

func TestSequencedDatagramsDropTheStale(t *testing.T) {
	s := &secureSession{}
	for _, pn := range []uint64{5, 3, 7, 6, 9} {
		s.onDatagram(pn, datagramBody(1, true, []byte{byte(pn)}))
		s.onDatagram(pn, datagramBody(2, false, []byte{byte(pn)}))
	}
	var seq, unseq []byte
	for _, d := range s.datagrams.delivered {
		if d.channel == 1 {
			seq = append(seq, d.payload[0])
		} else {
			unseq = append(unseq, d.payload[0])
		}
	}
	if string(seq) != string([]byte{5, 7, 9}) || string(unseq) != string([]byte{5, 3, 7, 6, 9}) || s.datagrams.stale != 2 {
		t.Errorf("sequenced %v, unsequenced %v, stale %d", seq, unseq, s.datagrams.stale)
	}
}
