//! enrich: local look-ups that the records cannot give (names, /proc), at the OS edge.
//!
//! `netlink → record → event → [file_event + enrich] → rule → alert → syslog`
//!
//! Used live and by `scan --resolve-names`. A log from another host must not get this host's
//! names, so events that carry a `node=` other than this host's name are left alone.

use std::collections::HashMap;

use wwatchd_core::file_event::Enricher;

/// Bounded caches, so a uid storm cannot grow memory without limit.
const MAX_CACHED: usize = 4096;

/// Names from the local user database (through `uzers`), the host name, and live `/proc`.
pub struct LocalEnricher {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    host: Option<String>,
    /// Read `/proc/PID/fd/N` and the parent's `/proc/PID/{comm,exe}` (live mode only: in a
    /// scan the process is long gone, and a pid reused since would give a wrong answer).
    proc_fd: bool,
    parents: ParentCache,
}

impl LocalEnricher {
    pub fn new(proc_fd: bool) -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        LocalEnricher {
            users: HashMap::new(),
            groups: HashMap::new(),
            host,
            proc_fd,
            parents: ParentCache::new(),
        }
    }

    pub fn local_host_name(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

fn cached(
    map: &mut HashMap<u32, Option<String>>,
    id: u32,
    look: impl FnOnce(u32) -> Option<String>,
) -> Option<String> {
    if let Some(v) = map.get(&id) {
        return v.clone();
    }
    if map.len() >= MAX_CACHED {
        map.clear();
    }
    let v = look(id);
    map.insert(id, v.clone());
    v
}

impl Enricher for LocalEnricher {
    fn user_name(&mut self, uid: u32) -> Option<String> {
        cached(&mut self.users, uid, |u| {
            uzers::get_user_by_uid(u).and_then(|x| x.name().to_str().map(str::to_owned))
        })
    }

    fn group_name(&mut self, gid: u32) -> Option<String> {
        cached(&mut self.groups, gid, |g| {
            uzers::get_group_by_gid(g).and_then(|x| x.name().to_str().map(str::to_owned))
        })
    }

    fn fd_path(&mut self, pid: u32, fd: u32) -> Option<Vec<u8>> {
        if !self.proc_fd {
            return None;
        }
        use std::os::unix::ffi::OsStringExt;
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .ok()
            .map(|p| p.into_os_string().into_vec())
    }

    fn host_name(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn parent(&mut self, ppid: u32) -> (Option<String>, Option<String>) {
        if !self.proc_fd {
            return (None, None);
        }
        self.parents.lookup(ppid)
    }
}

/// A parent process's name and executable, read from `/proc/PID/{comm,exe}` (live mode only).
/// Best effort: a short-lived parent may be gone, and a pid reused since gives another
/// process, so entries live only a few seconds.
pub struct ParentCache {
    map: HashMap<u32, (std::time::Instant, Option<String>, Option<String>)>,
}

/// How long a cached parent is trusted.
const PARENT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for ParentCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ParentCache {
    pub fn new() -> Self {
        ParentCache {
            map: HashMap::new(),
        }
    }

    /// `(name, executable)` of process `pid`.
    pub fn lookup(&mut self, pid: u32) -> (Option<String>, Option<String>) {
        let now = std::time::Instant::now();
        if let Some((at, n, e)) = self.map.get(&pid)
            && now.duration_since(*at) < PARENT_TTL
        {
            return (n.clone(), e.clone());
        }
        if self.map.len() >= MAX_CACHED {
            self.map.clear();
        }
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_owned())
            .filter(|s| !s.is_empty());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|p| p.into_os_string().into_string().ok());
        self.map.insert(pid, (now, name.clone(), exe.clone()));
        (name, exe)
    }
}
