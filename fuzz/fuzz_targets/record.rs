//! Fuzz target: one audit record, as an audit.log line and as a netlink datagram's text.
//! Every field is iterated and every value decoded every way the pipeline decodes values;
//! decoded values must re-encode to what the kernel wrote (a soundness check, not only "no
//! panic").
#![no_main]

use libfuzzer_sys::fuzz_target;
use wwatchd_core::record::{Record, Value, split_argv};

/// `true` when `part` lies within `whole` (the record is a zero-copy view).
fn within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    part.is_empty() || (p >= w && p + part.len() <= w + whole.len())
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let t = s
        .iter()
        .position(|&c| c != b'0')
        .map_or(&s[s.len()..], |i| &s[i..]);
    if t.is_empty() { b"0" } else { t }
}

fn check_value(v: Value<'_>) {
    let raw = v.raw;
    match v.decode() {
        Ok(Some(d)) => {
            if let Some(inner) = raw.strip_prefix(b"\"") {
                assert_eq!(Some(&d[..]), inner.strip_suffix(b"\""));
            } else {
                // Hex: two digits per byte, and re-encoding gives the digits back.
                assert_eq!(d.len() * 2, raw.len());
                let re: Vec<u8> = d
                    .iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes())
                    .collect();
                assert!(re.eq_ignore_ascii_case(raw));
            }
            // PROCTITLE's argv: the parts joined by NUL give the title back.
            let parts: Vec<&[u8]> = split_argv(&d).collect();
            let title = d.strip_suffix(b"\0").unwrap_or(&d);
            assert_eq!(parts.join(&0u8), title);
        }
        Ok(None) => assert!(v.is_null()),
        Err(_) => {}
    }
    assert!(within(v.unquoted(), raw));
    if let Ok(n) = v.as_u64() {
        assert_eq!(n.to_string().as_bytes(), strip_zeros(raw));
    }
    if let Ok(n) = v.as_hex_u64() {
        assert!(
            format!("{n:x}")
                .as_bytes()
                .eq_ignore_ascii_case(strip_zeros(raw))
        );
    }
    if let Ok(n) = v.as_octal_u32() {
        assert_eq!(
            format!("{n:o}").as_bytes(),
            strip_zeros(raw),
            "octal {:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

fn check(r: &Record<'_>, input: &[u8]) {
    assert!(within(r.body, input) && within(r.enriched, input));
    if let Some(n) = r.node {
        assert!(within(n, input));
    }
    let mut n = 0usize;
    for (k, v) in r.fields() {
        assert!(within(k, r.body) && within(v.raw, r.body));
        check_value(v);
        // `get` finds the first field of a name.
        if n < 4 {
            let first = r.fields().find(|(k2, _)| *k2 == k).map(|(_, v)| v);
            assert_eq!(r.get(k), first);
        }
        n += 1;
        assert!(n <= r.body.len(), "more fields than bytes");
    }
    for (k, v) in r.enriched_fields() {
        assert!(within(k, r.enriched) && within(v.raw, r.enriched));
        check_value(v);
    }
    let _ = r.stamp.millis();
}

fuzz_target!(|data: &[u8]| {
    let line = Record::from_log_line(data);
    if let Ok(r) = &line {
        check(r, data);
    }
    // The netlink form of the same record: the text from `audit(` on. Without a `node=`
    // prefix, the first " msg=audit(" is the one after `type=NAME`.
    let at = memfind(data, b" msg=audit(").map(|i| i + 5);
    let text = at.map_or(data, |i| &data[i..]);
    let rtype = match &line {
        Ok(r) => r.rtype,
        Err(_) => data.first().map_or(1300, |&b| 1000 + u16::from(b) * 5),
    };
    let nl = Record::from_netlink(rtype, text);
    if let Ok(r) = &nl {
        check(r, text);
        assert!(r.enriched.is_empty() && r.node.is_none());
    }
    if let (Ok(l), Ok(n), None) = (&line, &nl, line.as_ref().ok().and_then(|l| l.node)) {
        // Same stamp; the log line's kernel text is the datagram's up to the ENRICHED part.
        assert_eq!(l.stamp, n.stamp);
        assert!(n.body.starts_with(l.body));
    }
});

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
