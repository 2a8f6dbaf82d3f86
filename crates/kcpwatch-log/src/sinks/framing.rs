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
    out.extend_from_slice(itoa::Buffer::new().format(msg.len()).as_bytes());
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

/// The PARAM that marks an RFC 5424 record cut to fit a datagram; its value is the record's
/// size in bytes before the cut.
pub(crate) const TRUNCATED_PARAM: &str = "truncated_from";

/// `msg` cut to at most `max` bytes for one datagram. An RFC 5424 record keeps its header and
/// whole PARAMs of its first SD-ELEMENT, as many as fit, and the element is closed with
/// `truncated_from="<original size>"`; MSG and any later element are left out. So the
/// receiver still parses a valid record, every value in it is exact, and the SIEM sees that
/// it was cut. Anything else (or an RFC 5424 record whose header alone does not fit) is cut
/// at a UTF-8 boundary by [`truncate_utf8`].
pub(crate) fn cut_datagram(msg: &[u8], max: usize) -> std::borrow::Cow<'_, [u8]> {
    if msg.len() <= max {
        return msg.into();
    }
    match cut_rfc5424(msg, max) {
        Some(cut) => cut.into(),
        None => truncate_utf8(msg, max).into(),
    }
}

/// Where the SD of an RFC 5424 record starts: after `<PRI>1` and five more header fields,
/// each ended by one space (RFC 5424 §6: header fields have no spaces).
fn rfc5424_sd_start(msg: &[u8]) -> Option<usize> {
    let close = msg.iter().take(6).position(|&b| b == b'>')?;
    if msg.first() != Some(&b'<')
        || close < 2
        || !msg[1..close].iter().all(u8::is_ascii_digit)
        || msg.get(close + 1..close + 3) != Some(b"1 ")
    {
        return None;
    }
    let mut at = close + 3;
    for _ in 0..5 {
        let sp = msg[at..].iter().position(|&b| b == b' ')?;
        if sp == 0 {
            return None;
        }
        at += sp + 1;
    }
    Some(at)
}

fn cut_rfc5424(msg: &[u8], max: usize) -> Option<Vec<u8>> {
    let sd = rfc5424_sd_start(msg)?;
    if msg.get(sd) != Some(&b'[') {
        return None;
    }
    let id_len = msg[sd + 1..].iter().position(|&b| b == b' ' || b == b']')?;
    let marker = format!(" {TRUNCATED_PARAM}=\"{}\"]", msg.len());
    let mut end = sd + 1 + id_len;
    if end + marker.len() > max {
        return None;
    }
    // Each PARAM is ` NAME="VALUE"`, where VALUE escapes `"`, `\` and `]` with `\`.
    let mut at = end;
    while msg.get(at) == Some(&b' ') {
        let eq = at + msg[at..].iter().position(|&b| b == b'=')?;
        if msg.get(eq + 1) != Some(&b'"') {
            return None;
        }
        let mut i = eq + 2;
        loop {
            match *msg.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let param_end = i + 1;
        if param_end + marker.len() > max {
            break;
        }
        end = param_end;
        at = param_end;
    }
    let mut out = Vec::with_capacity(end + marker.len());
    out.extend_from_slice(&msg[..end]);
    out.extend_from_slice(marker.as_bytes());
    Some(out)
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

    #[test]
    fn rfc5424_is_cut_between_params_and_marked() {
        let rec = br#"<131>1 2025-11-26T15:14:55.812320Z h kcpwatch i kcp:error [kcp@32473 a="1" b="x\"\]\\y" c="long long long"] msg text"#;
        assert_eq!(&*cut_datagram(rec, rec.len()), &rec[..]);
        let n = rec.len();
        let head = r#"<131>1 2025-11-26T15:14:55.812320Z h kcpwatch i kcp:error [kcp@32473 a="1" b="x\"\]\\y""#;
        let want = format!("{head} truncated_from=\"{n}\"]");
        assert_eq!(cut_datagram(rec, want.len()).as_ref(), want.as_bytes());
        let want = format!(
            r#"<131>1 2025-11-26T15:14:55.812320Z h kcpwatch i kcp:error [kcp@32473 a="1" truncated_from="{n}"]"#
        );
        assert_eq!(cut_datagram(rec, want.len() + 5).as_ref(), want.as_bytes());
        // No room for the marker: a plain cut.
        assert_eq!(cut_datagram(rec, 20).len(), 20);
        // Not RFC 5424: a plain cut.
        assert_eq!(&*cut_datagram(b"{\"a\":\"bcdef\"}", 6), b"{\"a\":\"");
    }
}
