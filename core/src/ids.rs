//! ids: stable identifiers for alerts (`event.id`) and the agent (`agent.id`).
//!
//! `… → alert [event.id] → syslog`
//!
//! An alert's `event.id` is a function of what identifies the detection, never of when or
//! how often it is sent: the host (`host.id`, the machine id, or the host name where the id
//! is unknown), the audit record's own stamp (seconds, milliseconds and serial, which the
//! kernel gives each event once per boot), the rule id and the created path's exact bytes.
//! So the same alert re-sent after a spool replay, a restart or a relay retry carries the
//! same id, and a scan of the log gives the id the daemon sent; two hosts never share one
//! because the host is hashed in. The hash is SHA-256 (an attacker chooses the file name,
//! so the id must not be forgeable to equal another alert's and make a SIEM drop that one
//! as a duplicate), shown as an RFC 9562 version 8 UUID: the first 122 bits of the digest
//! with the version and variant bits set.

#![forbid(unsafe_code)]

/// SHA-256 (FIPS 180-4) of `parts`, each preceded by its length (8 bytes, big-endian), so
/// that no two different lists of parts hash the same bytes.
pub fn digest_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(&(p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finish()
}

/// The first 16 bytes of `d` as a UUID (RFC 9562 version 8, variant 10), lowercase.
pub fn uuid_v8(d: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What an alert's `event.id` is derived from.
pub struct AlertIdentity<'a> {
    /// `host.id` where known, else the host name, else empty.
    pub host: &'a str,
    pub sec: u64,
    pub msec: u16,
    pub serial: u64,
    pub rule_id: &'a str,
    /// The created path's exact bytes (the kernel's name when the path is unresolved).
    pub path: &'a [u8],
}

/// `event.id` of an alert: see the module documentation.
pub fn alert_id(a: &AlertIdentity<'_>) -> String {
    uuid_v8(&digest_parts(&[
        b"wwatchd-alert-1",
        a.host.as_bytes(),
        &a.sec.to_be_bytes(),
        &a.msec.to_be_bytes(),
        &a.serial.to_be_bytes(),
        a.rule_id.as_bytes(),
        a.path,
    ]))
}

/// `event.id` of a budget summary: the host, the rule and the window.
pub fn summary_id(host: &str, rule_id: &str, start_ms: u64, end_ms: u64, phase: &str) -> String {
    // `phase` tells apart the summaries of one window: `closed`, or `started:ACTOR` when
    // an actor's suppression began.
    uuid_v8(&digest_parts(&[
        b"wwatchd-summary-1",
        host.as_bytes(),
        rule_id.as_bytes(),
        &start_ms.to_be_bytes(),
        &end_ms.to_be_bytes(),
        phase.as_bytes(),
    ]))
}

/// `agent.id`: derived from the machine id, so it is stable across restarts and
/// reinstalls, differs between hosts, and does not reveal the machine id itself.
pub fn agent_id(machine_id: &str) -> String {
    uuid_v8(&digest_parts(&[b"wwatchd-agent-1", machine_id.as_bytes()]))
}

/// A small SHA-256 for ids (a few hundred bytes, four blocks, per alert): its compression
/// function is a tenth of an alert's cost, so it is written to be cheap (no moves between
/// rounds, the schedule computed in place).
struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    used: usize,
    len: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    fn new() -> Sha256 {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            used: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.used > 0 {
            let n = (64 - self.used).min(data.len());
            self.block[self.used..self.used + n].copy_from_slice(&data[..n]);
            self.used += n;
            data = &data[n..];
            if self.used < 64 {
                return;
            }
            let b = self.block;
            compress(&mut self.state, &b);
            self.used = 0;
        }
        // Whole blocks straight from the input, without a copy into `block`.
        let (blocks, tail) = data.as_chunks::<64>();
        for b in blocks {
            compress(&mut self.state, b);
        }
        self.block[..tail.len()].copy_from_slice(tail);
        self.used = tail.len();
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        let n = if self.used < 56 {
            56 - self.used
        } else {
            120 - self.used
        };
        pad[n..n + 8].copy_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad[..n + 8]);
        self.len = len;
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

/// One round on the working variables, named in their rotated order, so that no round
/// moves eight values along (the names do it).
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        // Σ1(e) = e⋙6 ⊕ e⋙11 ⊕ e⋙25, nested so that one copy of `e` is live, not three.
        let s1 = (($e.rotate_right(14) ^ $e).rotate_right(5) ^ $e).rotate_right(6);
        let ch = (($f ^ $g) & $e) ^ $g;
        let t1 = $h.wrapping_add(s1).wrapping_add(ch).wrapping_add($kw);
        let s0 = (($a.rotate_right(9) ^ $a).rotate_right(11) ^ $a).rotate_right(2);
        let maj = ($a & $b) | ($c & ($a | $b));
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(s0).wrapping_add(maj);
    };
}

/// The compression function (FIPS 180-4 6.2.2): the schedule first, then the rounds eight
/// at a time over fixed-size chunks (no bounds checks, no moves between rounds).
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 64];
    for (x, c) in w.iter_mut().zip(block.as_chunks::<4>().0) {
        *x = u32::from_be_bytes(*c);
    }
    for i in 16..64 {
        let (w15, w2) = (w[i - 15], w[i - 2]);
        let s0 = (w15.rotate_right(11) ^ w15).rotate_right(7) ^ (w15 >> 3);
        let s1 = (w2.rotate_right(2) ^ w2).rotate_right(17) ^ (w2 >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (k, w) in K.as_chunks::<8>().0.iter().zip(w.as_chunks::<8>().0) {
        round!(a, b, c, d, e, f, g, h, k[0].wrapping_add(w[0]));
        round!(h, a, b, c, d, e, f, g, k[1].wrapping_add(w[1]));
        round!(g, h, a, b, c, d, e, f, k[2].wrapping_add(w[2]));
        round!(f, g, h, a, b, c, d, e, k[3].wrapping_add(w[3]));
        round!(e, f, g, h, a, b, c, d, k[4].wrapping_add(w[4]));
        round!(d, e, f, g, h, a, b, c, k[5].wrapping_add(w[5]));
        round!(c, d, e, f, g, h, a, b, k[6].wrapping_add(w[6]));
        round!(b, c, d, e, f, g, h, a, k[7].wrapping_add(w[7]));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(data);
        h.finish().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The compression function as it was first written (FIPS 180-4 6.2.2 line by line):
    /// the reference the unrolled one must agree with.
    fn reference_compress(state: &mut [u32; 8], block: &[u8; 64]) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    proptest::proptest! {
        #[test]
        fn compress_agrees_with_the_reference(
            block in proptest::array::uniform32(proptest::num::u8::ANY),
            block2 in proptest::array::uniform32(proptest::num::u8::ANY),
            state in proptest::array::uniform8(proptest::num::u32::ANY),
        ) {
            let mut b = [0u8; 64];
            b[..32].copy_from_slice(&block);
            b[32..].copy_from_slice(&block2);
            let (mut x, mut y) = (state, state);
            compress(&mut x, &b);
            reference_compress(&mut y, &b);
            proptest::prop_assert_eq!(x, y);
        }

        #[test]
        fn split_updates_agree_with_one(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let mut one = Sha256::new();
            one.update(&data);
            let mut split = Sha256::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                split.update(&data[at..c]);
                at = c;
            }
            proptest::prop_assert_eq!(one.finish(), split.finish());
        }
    }

    /// FIPS 180-4 / NIST CAVP vectors, including the two-block padding cases.
    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha(&[b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        // Split updates give the same digest as one.
        let mut h = Sha256::new();
        for c in b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".chunks(7) {
            h.update(c);
        }
        let split: String = h.finish().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            split,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn ids_are_uuid_v8_and_depend_on_every_part() {
        let base = AlertIdentity {
            host: "4c4c4544",
            sec: 1_795_833_032,
            msec: 600,
            serial: 481,
            rule_id: "r",
            path: b"/tmp/x",
        };
        let id = alert_id(&base);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id, alert_id(&base), "stable");
        let variants = [
            AlertIdentity {
                host: "other",
                ..base
            },
            AlertIdentity { sec: 1, ..base },
            AlertIdentity { msec: 601, ..base },
            AlertIdentity {
                serial: 482,
                ..base
            },
            AlertIdentity {
                rule_id: "s",
                ..base
            },
            AlertIdentity {
                path: b"/tmp/y",
                ..base
            },
        ];
        for v in &variants {
            assert_ne!(alert_id(v), id);
        }
        // Length prefixes: moving bytes between parts changes the id.
        assert_ne!(
            alert_id(&AlertIdentity {
                host: "ab",
                rule_id: "c",
                ..base
            }),
            alert_id(&AlertIdentity {
                host: "a",
                rule_id: "bc",
                ..base
            })
        );
        assert_ne!(
            summary_id("h", "r", 1, 2, "closed"),
            summary_id("h", "r", 1, 3, "closed")
        );
        // The summary of an actor's start and the window's closing one differ.
        assert_ne!(
            summary_id("h", "r", 1, 2, "closed"),
            summary_id("h", "r", 1, 2, "started:nobody (65534)")
        );
        assert_ne!(agent_id("a"), agent_id("b"));
    }
}
