//! Transport framing of syslog records: octet counting for streams (RFC 6587 §3.4.1, required
//! for TLS by RFC 5425 §4.3) and one record per datagram for UDP (RFC 5426 §3.1).

/// The record without one trailing line end. The formats end every record with `\n` because
/// files and stdout need it; in syslog the frame delimits the record, and a trailing LF would
/// become part of MSG (rsyslog drops it, other receivers keep it).
pub(crate) fn strip_line_end(record: &[u8]) -> &[u8] {
    let record = record.strip_suffix(b"\n").unwrap_or(record);
    record.strip_suffix(b"\r").unwrap_or(record)
}

/// Appends `MSG-LEN SP SYSLOG-MSG` to `out`.
pub(crate) fn octet_counted(out: &mut Vec<u8>, msg: &[u8]) {
    // MSG-LEN is NONZERO-DIGIT *DIGIT: the sink refuses empty records before they get here.
    debug_assert!(!msg.is_empty());
    let mut digits = [0u8; 20];
    let mut n = msg.len();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(b' ');
    out.extend_from_slice(msg);
}

/// The first at most `max` bytes of `msg`, cut before a UTF-8 continuation byte so that a
/// multi-byte character is never split (a receiver validating UTF-8, or a JSON output behind
/// it, would otherwise reject or mangle the whole record). Only up to 3 bytes are given back,
/// the longest tail of a UTF-8 character, so binary data is cut at `max` as well.
pub(crate) fn truncate_utf8(msg: &[u8], max: usize) -> &[u8] {
    if msg.len() <= max {
        return msg;
    }
    let mut cut = max;
    while cut > 0 && max - cut < 3 && msg[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    if msg[cut] & 0xC0 == 0x80 {
        // Not UTF-8 after all: a plain cut loses less.
        cut = max;
    }
    &msg[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counting_prefixes_the_length_in_bytes() {
        let mut out = Vec::new();
        octet_counted(&mut out, "ü x".as_bytes());
        octet_counted(&mut out, &[b'a'; 1234]);
        assert_eq!(&out[..6], b"4 \xc3\xbc x");
        assert_eq!(&out[6..11], b"1234 ");
        assert_eq!(out.len(), 6 + 5 + 1234);
    }

    #[test]
    fn line_ends_are_not_part_of_the_message() {
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a\n\n"), b"a\n");
        assert_eq!(strip_line_end(b"a"), b"a");
    }

    #[test]
    fn truncation_keeps_utf8_whole() {
        let s = "ab€d".as_bytes(); // € is 3 bytes at 2..5
        assert_eq!(truncate_utf8(s, 10), s);
        assert_eq!(truncate_utf8(s, 5), b"ab\xe2\x82\xac");
        assert_eq!(truncate_utf8(s, 4), b"ab");
        assert_eq!(truncate_utf8(s, 3), b"ab");
        assert_eq!(truncate_utf8(s, 2), b"ab");
        let emoji = "😀😀".as_bytes();
        assert_eq!(truncate_utf8(emoji, 7), "😀".as_bytes());
        let binary = [0x80u8; 10];
        assert_eq!(truncate_utf8(&binary, 6).len(), 6);
    }
}
