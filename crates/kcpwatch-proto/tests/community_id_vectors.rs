//! Reproduces the shared Community ID test vectors (`tests/vectors/community-id.json`, copied
//! verbatim from the project's shared vectors).

use std::net::{IpAddr, SocketAddr};

use kcpwatch_proto::community_id::community_id;

#[test]
fn shared_vectors() {
    let text = include_str!("vectors/community-id.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for v in vectors {
        let ip = |k: &str| v[k].as_str().unwrap().parse::<IpAddr>().unwrap();
        let port = |k: &str| v[k].as_u64().unwrap() as u16;
        let src = SocketAddr::new(ip("saddr"), port("sport"));
        let dst = SocketAddr::new(ip("daddr"), port("dport"));
        let id = community_id(
            v["proto"].as_u64().unwrap() as u8,
            src,
            dst,
            v["seed"].as_u64().unwrap() as u16,
        )
        .unwrap();
        assert_eq!(id.as_str(), v["id"].as_str().unwrap(), "vector {v}");
    }
}
