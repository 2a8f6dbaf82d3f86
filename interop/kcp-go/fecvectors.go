package main

import (
	"encoding/hex"
	"flag"

	"github.com/klauspost/reedsolomon"
)

// fecVector is one Reed-Solomon encoding by klauspost/reedsolomon, the codec
// kcp-go's FEC layer uses (reedsolomon.New(dataShards, parityShards), default
// options), for kcpwatch's Rust codec to reproduce byte for byte.
type fecVector struct {
	DataShards   int      `json:"data_shards"`
	ParityShards int      `json:"parity_shards"`
	Data         []string `json:"data"`
	Parity       []string `json:"parity"`
}

// fecVectorData is shard i's deterministic content: a small LCG, so the
// vector file can be regenerated and checked by anyone.
func fecVectorData(i, size int, seed uint32) []byte {
	b := make([]byte, size)
	x := seed*2654435761 + uint32(i)*40503 + 1
	for k := range b {
		x = x*1103515245 + 12345
		b[k] = byte(x >> 16)
	}
	return b
}

// runFECVectors prints the vectors as one JSON line:
// {"vectors":[{"data_shards":10,"parity_shards":3,"data":[hex...],"parity":[hex...]},...]}
func runFECVectors(args []string) {
	fs := flag.NewFlagSet("fec-vectors", flag.ExitOnError)
	fs.Parse(args)
	cases := []struct{ d, p, size int }{
		{1, 1, 16}, {2, 1, 9}, {3, 2, 33}, {4, 4, 64}, {10, 3, 100},
		{10, 3, 1392}, {5, 5, 7}, {20, 10, 48}, {32, 8, 24}, {70, 30, 12}, {200, 56, 3},
	}
	var out []fecVector
	for n, c := range cases {
		codec, err := reedsolomon.New(c.d, c.p)
		if err != nil {
			fail("reedsolomon.New(%d, %d): %v", c.d, c.p, err)
		}
		shards := make([][]byte, c.d+c.p)
		v := fecVector{DataShards: c.d, ParityShards: c.p}
		for i := range shards {
			if i < c.d {
				shards[i] = fecVectorData(i, c.size, uint32(n))
				v.Data = append(v.Data, hex.EncodeToString(shards[i]))
			} else {
				shards[i] = make([]byte, c.size)
			}
		}
		if err := codec.Encode(shards); err != nil {
			fail("encode: %v", err)
		}
		for _, s := range shards[c.d:] {
			v.Parity = append(v.Parity, hex.EncodeToString(s))
		}
		out = append(out, v)
	}
	emit(struct {
		Source  string      `json:"source"`
		Vectors []fecVector `json:"vectors"`
	}{"github.com/klauspost/reedsolomon v1.14.2 via kcp-go v5.7.5: reedsolomon.New(dataShards, parityShards).Encode; regenerate with `kcpgo fec-vectors`", out})
}
