//! file_event::paths: absolute paths from CWD and directory descriptors, and the cache of
//! directories known by dev:inode.

use std::collections::{HashMap, VecDeque};

/// Directories known by `(dev, inode)`, learnt from PARENT records of earlier events and
/// from created directories. Bounded: the oldest entry goes first.
#[derive(Debug)]
pub(super) struct DirCache {
    cap: usize,
    map: HashMap<(u64, u64), Vec<u8>>,
    order: VecDeque<(u64, u64)>,
}

impl DirCache {
    pub(super) fn new(cap: usize) -> Self {
        DirCache {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn learn(&mut self, k: (u64, u64), path: &[u8]) {
        if let Some(p) = self.map.get_mut(&k) {
            if p.as_slice() != path {
                p.clear();
                p.extend_from_slice(path);
            }
            return;
        }
        if self.map.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(k, path.to_vec());
        self.order.push_back(k);
    }

    pub(super) fn get(&self, k: &(u64, u64)) -> Option<&[u8]> {
        self.map.get(k).map(Vec::as_slice)
    }
}

/// Join `name` to `cwd` unless it is absolute, then fold `.` and `..`.
pub(super) fn absolute(cwd: Option<&[u8]>, name: &[u8]) -> Option<Vec<u8>> {
    if name.first() == Some(&b'/') {
        return Some(normalize(name));
    }
    let cwd = cwd.filter(|c| c.first() == Some(&b'/'))?;
    Some(join(cwd, name))
}

pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(dir.len() + 1 + name.len());
    v.extend_from_slice(dir);
    v.push(b'/');
    v.extend_from_slice(name);
    normalize(&v)
}

/// Lexically fold `//`, `.` and `..` of an absolute path. `..` at the root stays at the root,
/// as the kernel resolves it. The result starts with `/` and has no trailing `/` (but `/`).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// (directory, basename) of a path; the directory is `None` for a bare name.
pub(super) fn split_path(p: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match p.iter().rposition(|&c| c == b'/') {
        Some(0) => (Some(&b"/"[..]), &p[1..]),
        Some(i) => (Some(&p[..i]), &p[i + 1..]),
        None => (None, p),
    }
}

/// ECS `file.extension`: after the last dot, not for dot-files, without the dot.
pub(super) fn extension(base: &[u8]) -> Option<&[u8]> {
    let dot = base.iter().rposition(|&c| c == b'.')?;
    (dot > 0 && dot + 1 < base.len()).then(|| &base[dot + 1..])
}
