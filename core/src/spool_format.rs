//! spool_format: the disk spool's bytes, with no file access: record framing, checksums,
//! segment names and the two-slot cursor. The daemon's `syslog::spool` does the file I/O;
//! its opening comment draws the directory layout and states the durability limits.
//!
//! ```text
//!  segment = "WWSPOOL1" | record*
//!  record  = A7 57 | kind (1 alert, 2 diagnostic) | 0 | len u32 LE | CRC-32C u32 LE | message
//!  cursor  = slot slot,  slot = "WWCU" | generation u64 | segment u64 | offset u64 | CRC-32C u32
//! ```

use std::path::PathBuf;

use crate::syslog::MessageKind;

/// One formatted syslog message, without transport framing (no octet count, no trailing NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub kind: MessageKind,
    pub bytes: Vec<u8>,
}

/// Where `wwatchd run` spools by default: under systemd's `StateDirectory=wwatchd`.
pub const DEFAULT_DIR: &str = "/var/lib/wwatchd/spool";
/// Default cap: 64 MiB, about 28,000 alerts of the 2.3 KB measured end to end.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Smallest accepted cap.
pub const MIN_MAX_BYTES: u64 = 64 << 10;
pub const MAX_SEGMENT_BYTES: u64 = 4 << 20;
pub const SEGMENT_MAGIC: &[u8; 8] = b"WWSPOOL1";
pub const SEG_HEADER: u64 = SEGMENT_MAGIC.len() as u64;
pub const REC_MAGIC: [u8; 2] = [0xA7, 0x57];
pub const REC_HEADER: usize = 12;
/// Far above any message the sink makes; a larger length field is damage.
pub const MAX_RECORD: usize = 16 << 20;
pub const CURSOR_FILE: &str = "cursor";
pub const LOCK_FILE: &str = "lock";
pub const CURSOR_MAGIC: &[u8; 4] = b"WWCU";
pub const SLOT: usize = 32;

/// Where the spool lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Cap on the files in `dir` together, in bytes.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig {
            dir: PathBuf::from(DEFAULT_DIR),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// The spool cannot be used: the directory is unsafe or unusable, or another daemon holds it.
/// The file name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn kind_code(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::Alert => 1,
        MessageKind::Diagnostic => 2,
    }
}

pub fn kind_from(code: u8) -> Option<MessageKind> {
    match code {
        1 => Some(MessageKind::Alert),
        2 => Some(MessageKind::Diagnostic),
        _ => None,
    }
}

pub fn encode_record(msg: &QueuedMessage) -> Result<Vec<u8>, String> {
    let len = u32::try_from(msg.bytes.len())
        .ok()
        .filter(|&l| l as usize <= MAX_RECORD)
        .ok_or_else(|| format!("a message of {} bytes is too large", msg.bytes.len()))?;
    let mut r = Vec::with_capacity(REC_HEADER + msg.bytes.len());
    r.extend_from_slice(&REC_MAGIC);
    r.push(kind_code(msg.kind));
    r.push(0);
    r.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c(crc32c_update(!0, &r[..8]), &msg.bytes);
    r.extend_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(&msg.bytes);
    Ok(r)
}

/// A record header's kind, payload length and checksum, if its fixed fields are sane.
pub fn parse_header(h: &[u8]) -> Option<(MessageKind, usize, u32)> {
    if h.len() < REC_HEADER || h[..2] != REC_MAGIC || h[3] != 0 {
        return None;
    }
    let kind = kind_from(h[2])?;
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    (len <= MAX_RECORD).then_some((kind, len, crc))
}

/// End offset of the valid record at `off` in `data`, if there is one.
pub fn record_at(data: &[u8], off: usize) -> Option<usize> {
    let h = data.get(off..off + REC_HEADER)?;
    let (_, len, crc) = parse_header(h)?;
    let end = off + REC_HEADER + len;
    let body = data.get(off + REC_HEADER..end)?;
    (crc32c(crc32c_update(!0, &h[..8]), body) == crc).then_some(end)
}

/// Valid records `[start, end)` and unreadable regions of one segment file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<(u64, u64)>,
    pub bad: Vec<(u64, u64)>,
}

/// Walk a segment record by record; after damage, resume at the next offset where a whole valid
/// record starts (its magic, sane fields and checksum must all agree).
pub fn scan_segment(data: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut off = SEG_HEADER as usize;
    while off < data.len() {
        if let Some(end) = record_at(data, off) {
            scan.records.push((off as u64, end as u64));
            off = end;
            continue;
        }
        let mut p = off + 1;
        let resume = loop {
            match memchr::memmem::find(&data[p.min(data.len())..], &REC_MAGIC) {
                None => break data.len(),
                Some(i) if record_at(data, p + i).is_some() => break p + i,
                Some(i) => p += i + 1,
            }
        };
        scan.bad.push((off as u64, resume as u64));
        off = resume;
    }
    scan
}

pub fn encode_slot(generation: u64, seq: u64, off: u64) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..4].copy_from_slice(CURSOR_MAGIC);
    s[4..12].copy_from_slice(&generation.to_le_bytes());
    s[12..20].copy_from_slice(&seq.to_le_bytes());
    s[20..28].copy_from_slice(&off.to_le_bytes());
    let crc = crc32c(!0, &s[..28]);
    s[28..].copy_from_slice(&crc.to_le_bytes());
    s
}

pub fn decode_slot(s: &[u8]) -> Option<(u64, u64, u64)> {
    if s.len() != SLOT || &s[..4] != CURSOR_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(s[28..32].try_into().ok()?);
    if crc32c(!0, &s[..28]) != crc {
        return None;
    }
    let u = |r: std::ops::Range<usize>| s[r].try_into().ok().map(u64::from_le_bytes);
    Some((u(4..12)?, u(12..20)?, u(20..28)?))
}

/// CRC-32C (Castagnoli), reflected, table-driven.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0x82F6_3B78 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continue a CRC-32C over `data` from the raw (un-inverted) state `c`.
pub fn crc32c_update(mut c: u32, data: &[u8]) -> u32 {
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// Finish a CRC-32C: feed `data` into the raw state `c` and invert.
pub fn crc32c(c: u32, data: &[u8]) -> u32 {
    !crc32c_update(c, data)
}
