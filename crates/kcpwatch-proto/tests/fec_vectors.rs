//! kcpwatch's Reed-Solomon codec against vectors from klauspost/reedsolomon, the codec of
//! kcp-go's FEC layer (`tests/vectors/fec-reedsolomon.json`, written by
//! `interop/kcp-go/bin/kcpgo fec-vectors`): the same parity, byte for byte, and every data
//! shard rebuilt from any `data_shards` of the shards.

use kcpwatch_proto::fec::{Codec, FecConfig};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Shard counts, data shards, the parity klauspost computed.
type Vector = (FecConfig, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn vectors() -> Vec<Vector> {
    let text = include_str!("vectors/fec-reedsolomon.json");
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    json["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let shards = |key: &str| -> Vec<Vec<u8>> {
                v[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| unhex(s.as_str().unwrap()))
                    .collect()
            };
            let config = FecConfig {
                data_shards: v["data_shards"].as_u64().unwrap() as u16,
                parity_shards: v["parity_shards"].as_u64().unwrap() as u16,
            };
            (config, shards("data"), shards("parity"))
        })
        .collect()
}

#[test]
fn parity_matches_klauspost_reedsolomon_byte_for_byte() {
    let all = vectors();
    assert!(all.len() >= 10, "vector file has {} cases", all.len());
    for (config, data, parity) in all {
        let codec = Codec::new(config).unwrap();
        let len = data[0].len();
        let mut ours = vec![vec![0u8; len]; parity.len()];
        let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity_refs: Vec<&mut [u8]> = ours.iter_mut().map(Vec::as_mut_slice).collect();
        assert!(codec.encode(&data_refs, &mut parity_refs));
        assert_eq!(
            ours, parity,
            "{}+{} shards of {len} bytes",
            config.data_shards, config.parity_shards
        );
    }
}

#[test]
fn lost_data_shards_are_rebuilt_from_the_rest_of_their_group() {
    use kcpwatch_proto::fec::{DecodeScratch, Decoder, FecStats};
    use std::sync::Arc;
    for (config, data, parity) in vectors() {
        let (d, p) = (data.len(), parity.len());
        // Lose the first min(p, d) data shards; give the decoder the rest with the size field
        // the rebuilt shards are checked by: make each data shard a well-formed one.
        let codec = Arc::new(Codec::new(config).unwrap());
        let len = data[0].len();
        if len < 2 + 24 {
            continue;
        }
        // The vectors' data are not size-prefixed, so re-encode shards that are: a size field
        // equal to the shard length, then the vector's bytes.
        let framed: Vec<Vec<u8>> = data
            .iter()
            .map(|s| {
                let mut f = (len as u16).to_le_bytes().to_vec();
                f.extend_from_slice(&s[2..]);
                f
            })
            .collect();
        let mut ours = vec![vec![0u8; len]; p];
        let data_refs: Vec<&[u8]> = framed.iter().map(Vec::as_slice).collect();
        let mut parity_refs: Vec<&mut [u8]> = ours.iter_mut().map(Vec::as_mut_slice).collect();
        assert!(codec.encode(&data_refs, &mut parity_refs));
        let mut decoder = Decoder::new(codec);
        let (mut scratch, mut stats) = (DecodeScratch::default(), FecStats::default());
        let lost = p.min(d);
        let total = (d + p) as u32;
        let mut recovered = Vec::new();
        for (i, shard) in framed.iter().enumerate().skip(lost) {
            decoder.decode(total + i as u32, false, shard, &mut scratch, &mut stats);
            recovered.extend(scratch.recovered().map(<[u8]>::to_vec));
        }
        for (k, shard) in ours.iter().enumerate() {
            decoder.decode(
                total + (d + k) as u32,
                true,
                shard,
                &mut scratch,
                &mut stats,
            );
            recovered.extend(scratch.recovered().map(<[u8]>::to_vec));
        }
        let want: Vec<Vec<u8>> = framed[..lost].iter().map(|f| f[2..].to_vec()).collect();
        assert_eq!(recovered, want, "{d}+{p}");
        assert_eq!(stats.errors, 0);
    }
}
