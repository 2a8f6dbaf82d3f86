//! IP privacy modes: the shared Crypto-PAn vectors (`tests/vectors/cryptopan.json`, copied
//! verbatim from the project's shared vectors), prefix preservation, truncation, HMAC pseudonyms,
//! constructor validation, and the promise that the per-record path does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kcpwatch_proto::privacy::{
    CryptoPan, HmacPseudonymizer, IpPrivacy, PrivacyError, PrivateIp, Truncation, MAX_PSEUDONYM_LEN,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// Counts allocations per thread, so tests running in parallel do not disturb each other's count.
thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread local, which itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The key of the sample in the Crypto-PAn reference distribution.
const REFERENCE_KEY: [u8; 32] = [
    21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121,
    121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
];

#[test]
fn shared_cryptopan_vectors() {
    let text = include_str!("vectors/cryptopan.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 6);
    let (mut v4, mut v6) = (0, 0);
    for v in vectors {
        let key = match (v["key_hex"].as_str(), v["key_ascii"].as_str()) {
            (Some(h), None) => hex(h),
            (None, Some(a)) => a.as_bytes().to_vec(),
            _ => panic!("vector without exactly one key: {v}"),
        };
        let input = ip(v["in"].as_str().unwrap());
        let expected = ip(v["out"].as_str().unwrap());
        let mode = IpPrivacy::cryptopan(&key).unwrap();
        assert_eq!(mode.apply(input), PrivateIp::Ip(expected), "vector {v}");
        let cpan = CryptoPan::from_slice(&key).unwrap();
        match (input, expected) {
            (IpAddr::V4(i), IpAddr::V4(o)) => {
                assert_eq!(cpan.anonymize_v4(i), o, "vector {v}");
                v4 += 1;
            }
            (IpAddr::V6(i), IpAddr::V6(o)) => {
                assert_eq!(cpan.anonymize_v6(i), o, "vector {v}");
                v6 += 1;
            }
            _ => panic!("vector changes family: {v}"),
        }
    }
    assert!(v4 > 0 && v6 > 0, "both families are covered");
}

/// Extra known answers from other implementations: the reference distribution's sample trace
/// (`sample_trace_raw.dat` / `sample_trace_sanitized.dat`), and the IPv6 answers that Yawning
/// Angel's Go `cryptopan` gives for the same key. Together with the shared IPv6 vector (from
/// yacryptopan) they tie the 128-bit construction to two independent implementations.
#[test]
fn reference_distribution_sample() {
    let cpan = CryptoPan::new(&REFERENCE_KEY);
    for (input, expected) in [
        ("128.11.68.132", "135.242.180.132"),
        ("129.118.74.4", "134.136.186.123"),
        ("130.132.252.244", "133.68.164.234"),
        ("141.223.7.43", "141.167.8.160"),
        ("141.233.145.108", "141.129.237.235"),
        ("152.163.225.39", "151.140.114.167"),
        ("192.102.249.13", "252.138.62.131"),
        ("205.188.147.153", "242.96.16.101"),
        ("205.188.248.25", "242.96.88.27"),
        ("24.0.250.221", "100.15.198.226"),
        ("4.3.88.225", "124.60.155.63"),
        ("64.14.118.196", "0.255.183.58"),
        ("10.185.25.118", "117.161.29.118"),
        ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
        ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
        ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
        ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
        ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
    ] {
        assert_eq!(cpan.anonymize(ip(input)), ip(expected), "{input}");
    }
}

#[test]
fn cryptopan_treats_mapped_ipv4_as_ipv4() {
    let mode = IpPrivacy::cryptopan(&REFERENCE_KEY).unwrap();
    assert_eq!(
        mode.apply(ip("::ffff:128.11.68.132")),
        PrivateIp::Ip(ip("135.242.180.132"))
    );
}

fn common_prefix_v4(a: u32, b: u32) -> u32 {
    (a ^ b).leading_zeros()
}

fn common_prefix_v6(a: u128, b: u128) -> u32 {
    (a ^ b).leading_zeros()
}

fn anon_v4(cpan: &CryptoPan, a: u32) -> u32 {
    u32::from(cpan.anonymize_v4(Ipv4Addr::from(a)))
}

fn anon_v6(cpan: &CryptoPan, a: u128) -> u128 {
    u128::from(cpan.anonymize_v6(Ipv6Addr::from(a)))
}

/// Random pairs share only a bit or two, so pairs are built to share every prefix length.
#[test]
fn cryptopan_preserves_prefixes_of_every_length() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    let cpan = CryptoPan::new(&key);
    for shared in 0..=32u32 {
        for _ in 0..40 {
            let a: u32 = rng.gen();
            // Keep `shared` bits, flip the next one, randomise the rest.
            let keep = u32::MAX.checked_shl(32 - shared).unwrap_or(0);
            let flip = 1u32.checked_shl(31 - shared.min(31)).unwrap_or(0);
            let b = if shared == 32 {
                a
            } else {
                (a & keep) | ((a ^ flip) & flip) | (rng.gen::<u32>() & !keep & !flip)
            };
            assert_eq!(common_prefix_v4(a, b), shared);
            assert_eq!(
                common_prefix_v4(anon_v4(&cpan, a), anon_v4(&cpan, b)),
                shared,
                "{} {}",
                Ipv4Addr::from(a),
                Ipv4Addr::from(b)
            );
        }
    }
    for shared in 0..=128u32 {
        for _ in 0..8 {
            let a: u128 = rng.gen();
            let keep = u128::MAX.checked_shl(128 - shared).unwrap_or(0);
            let flip = 1u128.checked_shl(127 - shared.min(127)).unwrap_or(0);
            let b = if shared == 128 {
                a
            } else {
                (a & keep) | ((a ^ flip) & flip) | (rng.gen::<u128>() & !keep & !flip)
            };
            assert_eq!(common_prefix_v6(a, b), shared);
            assert_eq!(
                common_prefix_v6(anon_v6(&cpan, a), anon_v6(&cpan, b)),
                shared,
                "{} {}",
                Ipv6Addr::from(a),
                Ipv6Addr::from(b)
            );
        }
    }
}

/// Prefix preservation makes the mapping a bijection; a whole /20 must land on a whole /20.
#[test]
fn cryptopan_maps_a_network_onto_a_network() {
    let cpan = CryptoPan::new(&REFERENCE_KEY);
    let base = u32::from(Ipv4Addr::new(198, 51, 96, 0));
    let mut out: Vec<u32> = (0..4096).map(|i| anon_v4(&cpan, base | i)).collect();
    let net = out[0] & 0xffff_f000;
    assert!(out.iter().all(|a| a & 0xffff_f000 == net));
    out.sort_unstable();
    out.dedup();
    assert_eq!(out.len(), 4096);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cryptopan_prefix_property_v4(key in any::<[u8; 32]>(), a in any::<u32>(), b in any::<u32>()) {
        let cpan = CryptoPan::new(&key);
        prop_assert_eq!(
            common_prefix_v4(anon_v4(&cpan, a), anon_v4(&cpan, b)),
            common_prefix_v4(a, b)
        );
    }

    #[test]
    fn cryptopan_prefix_property_v6(key in any::<[u8; 32]>(), a in any::<u128>(), b in any::<u128>()) {
        let cpan = CryptoPan::new(&key);
        prop_assert_eq!(
            common_prefix_v6(anon_v6(&cpan, a), anon_v6(&cpan, b)),
            common_prefix_v6(a, b)
        );
    }
}

#[test]
fn truncate_exact_outputs() {
    let cases: &[(u8, u8, &str, &str)] = &[
        (24, 48, "192.0.2.130", "192.0.2.0"),
        (24, 48, "2001:db8:1234:5678::1", "2001:db8:1234::"),
        (16, 48, "10.1.2.3", "10.1.0.0"),
        (20, 48, "172.16.255.1", "172.16.240.0"),
        (1, 48, "203.0.113.9", "128.0.0.0"),
        (24, 64, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
        (24, 1, "ffff::1", "8000::"),
        (24, 52, "2001:db8:abcd:ffff::", "2001:db8:abcd:f000::"),
        // /0 keeps nothing, the full length keeps everything.
        (0, 0, "198.51.100.7", "0.0.0.0"),
        (0, 0, "2001:db8::7", "::"),
        (32, 128, "198.51.100.7", "198.51.100.7"),
        (32, 128, "2001:db8::7", "2001:db8::7"),
        // Mapped IPv4 takes the IPv4 prefix and comes out as IPv4.
        (24, 48, "::ffff:192.0.2.130", "192.0.2.0"),
        (32, 0, "::ffff:192.0.2.130", "192.0.2.130"),
        (0, 128, "::ffff:192.0.2.130", "0.0.0.0"),
    ];
    for &(v4, v6, input, expected) in cases {
        let mode = IpPrivacy::truncate(v4, v6).unwrap();
        assert_eq!(
            mode.apply(ip(input)),
            PrivateIp::Ip(ip(expected)),
            "/{v4} /{v6} {input}"
        );
    }
}

#[test]
fn truncate_defaults_are_24_and_48() {
    let t = Truncation::default();
    assert_eq!((t.v4_prefix(), t.v6_prefix()), (24, 48));
    let mode = IpPrivacy::Truncate(t);
    assert_eq!(
        mode.apply(ip("192.0.2.255")),
        PrivateIp::Ip(ip("192.0.2.0"))
    );
    assert_eq!(
        mode.apply(ip("2001:db8:ffff:ffff::1")),
        PrivateIp::Ip(ip("2001:db8:ffff::"))
    );
}

const HMAC_KEY: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];

fn pseudonym(mode: &IpPrivacy, addr: &str) -> String {
    match mode.apply(ip(addr)) {
        PrivateIp::Pseudonym(p) => p.as_str().to_owned(),
        other => panic!("expected a pseudonym, got {other:?}"),
    }
}

/// Known answers computed independently with Python's `hmac`, `hashlib` and `base64` modules.
#[test]
fn hmac_known_answers() {
    let mode = IpPrivacy::hmac("k2024", &HMAC_KEY).unwrap();
    assert_eq!(
        pseudonym(&mode, "192.0.2.1"),
        "k2024:G3-sb5-4bQu-3lXMBOO0Fg"
    );
    assert_eq!(
        pseudonym(&mode, "2001:db8::1"),
        "k2024:3xNNT04YjJ-XkG1i-w_H9A"
    );
}

#[test]
fn hmac_is_deterministic() {
    let a = IpPrivacy::hmac("k1", &HMAC_KEY).unwrap();
    let b = IpPrivacy::hmac("k1", &HMAC_KEY).unwrap();
    for addr in ["192.0.2.1", "10.0.0.1", "2001:db8::1", "::1"] {
        assert_eq!(pseudonym(&a, addr), pseudonym(&a, addr));
        assert_eq!(pseudonym(&a, addr), pseudonym(&b, addr));
    }
    assert_ne!(pseudonym(&a, "192.0.2.1"), pseudonym(&a, "192.0.2.2"));
}

#[test]
fn hmac_different_keys_give_different_pseudonyms() {
    let mut other_key = HMAC_KEY;
    other_key[0] ^= 1;
    let a = IpPrivacy::hmac("k1", &HMAC_KEY).unwrap();
    let b = IpPrivacy::hmac("k1", &other_key).unwrap();
    for addr in ["192.0.2.1", "2001:db8::1"] {
        assert_ne!(pseudonym(&a, addr), pseudonym(&b, addr));
    }
}

#[test]
fn hmac_key_id_is_part_of_the_text() {
    let a = IpPrivacy::hmac("2024-01", &HMAC_KEY).unwrap();
    let b = IpPrivacy::hmac("2024-02", &HMAC_KEY).unwrap();
    let (pa, pb) = (pseudonym(&a, "192.0.2.1"), pseudonym(&b, "192.0.2.1"));
    assert_ne!(pa, pb);
    assert!(pa.starts_with("2024-01:") && pb.starts_with("2024-02:"));
    // Same key: only the id differs, so the id alone tells which key produced the pseudonym.
    assert_eq!(pa.split_once(':').unwrap().1, pb.split_once(':').unwrap().1);
    match a.apply(ip("192.0.2.1")) {
        PrivateIp::Pseudonym(p) => assert_eq!(p.key_id(), "2024-01"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hmac_mapped_ipv4_equals_ipv4() {
    let mode = IpPrivacy::hmac("k1", &HMAC_KEY).unwrap();
    for (v4, mapped) in [
        ("192.0.2.1", "::ffff:192.0.2.1"),
        ("127.0.0.1", "::ffff:7f00:1"),
    ] {
        assert_eq!(pseudonym(&mode, v4), pseudonym(&mode, mapped));
    }
    // Not mapped: an IPv6 address is hashed over its 16 bytes.
    assert_ne!(
        pseudonym(&mode, "192.0.2.1"),
        pseudonym(&mode, "::192.0.2.1")
    );
}

#[test]
fn hmac_text_holds_no_address() {
    let mode = IpPrivacy::hmac("site_A-1", &HMAC_KEY).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    for i in 0..2_000 {
        let addr = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>()))
        } else {
            IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>()))
        };
        let out = mode.apply(addr);
        assert_eq!(out.ip(), None);
        let text = out.pseudonym().unwrap();
        assert!(text.len() <= MAX_PSEUDONYM_LEN);
        let (id, mac) = text.split_once(':').unwrap();
        assert_eq!(id, "site_A-1");
        assert_eq!(mac.len(), 22);
        assert!(mac
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        for shown in [addr.to_string(), format!("{addr:?}")] {
            assert!(!text.contains(&shown), "{text} contains {shown}");
        }
        if let IpAddr::V4(v4) = addr {
            let [a, b, c, d] = v4.octets();
            assert!(!text.contains(&format!("{a:02x}{b:02x}{c:02x}{d:02x}")));
        }
    }
}

#[test]
fn full_and_omit() {
    for addr in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
        assert_eq!(IpPrivacy::Full.apply(ip(addr)), PrivateIp::Ip(ip(addr)));
        let omitted = IpPrivacy::Omit.apply(ip(addr));
        assert_eq!(omitted, PrivateIp::Omitted);
        assert!(omitted.is_omitted() && omitted.ip().is_none() && omitted.pseudonym().is_none());
    }
    assert!(matches!(IpPrivacy::default(), IpPrivacy::Full));
}

#[test]
fn mode_names_and_prefix_keeping() {
    let modes = [
        (IpPrivacy::Full, "full", true),
        (IpPrivacy::truncate(24, 48).unwrap(), "truncate", true),
        (IpPrivacy::hmac("k1", &HMAC_KEY).unwrap(), "hmac", false),
        (
            IpPrivacy::cryptopan(&REFERENCE_KEY).unwrap(),
            "cryptopan",
            true,
        ),
        (IpPrivacy::Omit, "omit", false),
    ];
    for (mode, name, keeps) in modes {
        assert_eq!(mode.mode_name(), name);
        assert_eq!(mode.keeps_prefixes(), keeps, "{name}");
    }
}

#[test]
fn constructors_validate() {
    use PrivacyError::*;
    assert_eq!(
        IpPrivacy::truncate(33, 48).unwrap_err(),
        V4PrefixTooLong(33)
    );
    assert_eq!(
        IpPrivacy::truncate(24, 129).unwrap_err(),
        V6PrefixTooLong(129)
    );
    assert!(IpPrivacy::truncate(32, 128).is_ok());
    assert!(IpPrivacy::truncate(0, 0).is_ok());

    let key16 = [9u8; 16];
    let hmac_err = |id: &str, key: &[u8]| IpPrivacy::hmac(id, key).unwrap_err();
    assert_eq!(hmac_err("", &key16), KeyIdLength { len: 0 });
    assert_eq!(hmac_err(&"k".repeat(33), &key16), KeyIdLength { len: 33 });
    assert_eq!(hmac_err("k 1", &key16), KeyIdCharacter { index: 1 });
    assert_eq!(hmac_err("k:1", &key16), KeyIdCharacter { index: 1 });
    assert_eq!(hmac_err("clé", &key16), KeyIdCharacter { index: 2 });
    assert_eq!(hmac_err("k1", &key16[..15]), HmacKeyTooShort { len: 15 });
    assert_eq!(hmac_err("k1", &[]), HmacKeyTooShort { len: 0 });
    assert!(IpPrivacy::hmac(&"k".repeat(32), &key16).is_ok());
    assert!(IpPrivacy::hmac("A-z_09", &key16).is_ok());
    assert!(HmacPseudonymizer::new("k1", &[1u8; 64]).is_ok());

    for len in [0, 16, 31, 33, 64] {
        assert_eq!(
            IpPrivacy::cryptopan(&vec![0u8; len]).unwrap_err(),
            CryptoPanKeyLength { len }
        );
    }
    assert!(IpPrivacy::cryptopan(&[0u8; 32]).is_ok());

    // Messages are safe to log: no key material.
    let secret = [0x5au8; 15];
    let text = hmac_err("k1", &secret).to_string();
    assert!(!text.contains("90") && !text.contains("5a"), "{text}");
}

#[test]
fn apply_does_not_allocate() {
    let modes = [
        IpPrivacy::Full,
        IpPrivacy::truncate(24, 48).unwrap(),
        IpPrivacy::hmac(&"k".repeat(32), &HMAC_KEY).unwrap(),
        IpPrivacy::cryptopan(&REFERENCE_KEY).unwrap(),
        IpPrivacy::Omit,
    ];
    let addrs = [ip("192.0.2.1"), ip("::ffff:192.0.2.1"), ip("2001:db8::1")];
    let before = allocations();
    let mut seen = 0usize;
    for mode in &modes {
        for &addr in &addrs {
            match mode.apply(addr) {
                PrivateIp::Pseudonym(p) => seen += p.as_str().len(),
                PrivateIp::Ip(_) => seen += 1,
                PrivateIp::Omitted => {}
            }
        }
    }
    assert_eq!(allocations(), before, "apply allocated");
    assert!(seen > 0);
    // The counter is live: an allocation on this thread is seen.
    std::hint::black_box(Box::new(seen));
    assert!(allocations() > before);
}

#[test]
fn modes_can_move_to_the_log_thread() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<IpPrivacy>();
    assert_send_sync::<PrivateIp>();
}
