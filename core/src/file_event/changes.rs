//! file_event::changes: renames, deletions and modifications (issue 11), built only when a
//! loaded rule can match them; creations are in the parent module.

use super::*;

impl Builder {
    /// The renames, deletions and modifications in `ev` whose kind is in `kinds`, each
    /// handed to `out` (issue 11). Creations stay with [`creations`](Self::creations); an
    /// event is one or the other, never both, except an open for writing, which is a
    /// modification only when it created nothing.
    ///
    /// From the kernel's records: a rename has a `DELETE` (old name) and a `CREATE` (new
    /// name) PATH, after one PARENT per directory (old first); a deletion a `DELETE`; a
    /// modification a `NORMAL` PATH (truncate, chmod, chown, setxattr and their variants,
    /// or an open/openat for writing of an existing file).
    pub fn changes(
        &mut self,
        ev: &Event,
        enrich: &mut dyn Enricher,
        kinds: Kinds,
        out: &mut dyn FnMut(&mut FileEvent<'_>),
    ) {
        let Some(sys) = ev.first(num::SYSCALL) else {
            return;
        };
        let mut arch = None;
        let mut nr = None;
        let mut success = true;
        for (k, v) in sys.fields() {
            match k {
                b"arch" => arch = v.as_hex_u64().ok().and_then(Arch::from_audit),
                b"syscall" => nr = v.as_u64().ok().and_then(|n| u32::try_from(n).ok()),
                b"success" => success = v.raw != b"no",
                _ => {}
            }
        }
        // An unreadable SYSCALL record is counted by `creations`, which sees it first.
        let (Some(arch), Some(nr), true) = (arch, nr, success) else {
            return;
        };
        let Some(sc) = syscalls::lookup(arch, nr) else {
            return;
        };
        let action = match sc.effect {
            Effect::Rename => Action::Rename,
            Effect::Delete => Action::Deletion,
            Effect::Modify => Action::Modification,
            Effect::Create => Action::Modification,
        };
        if !kinds.contains(action) {
            return;
        }
        let sys_line = ev
            .records()
            .find(|(_, r)| r.rtype == num::SYSCALL)
            .map_or(0, |(l, _)| l);
        if sc.effect == Effect::Create && !opens_for_write(&sys, sc.name) {
            return;
        }
        let paths = self.paths(ev);
        if sc.effect == Effect::Create && paths.iter().any(|p| p.nametype == b"CREATE") {
            return;
        }
        let cwd = match ev.first(num::CWD).and_then(|r| r.get(b"cwd")) {
            Some(v) => self.decode(sys_line, "CWD", "cwd", v),
            None => None,
        };
        let arg = |name: &[u8]| {
            fe_arg(&sys, name)
                .map(|v| v & 0xffff_ffff)
                .filter(|&v| v != AT_FDCWD)
        };
        // renameat(olddirfd, old, newdirfd, new); the other *at calls take it in a0.
        let (dirfd_a, dirfd_b) = match sc.dirfd {
            DirFd::None => (None, None),
            _ if action == Action::Rename => (arg(b"a0"), arg(b"a2")),
            DirFd::A0 => (arg(b"a0"), None),
            DirFd::A1 => (arg(b"a1"), None),
            DirFd::A2 => (arg(b"a2"), None),
        };
        let parents: Vec<&PathRec<'_>> = paths.iter().filter(|p| p.nametype == b"PARENT").collect();
        let mut fe = self.base(ev, &sys, sys_line, arch, sc.name, enrich);
        fe.cwd = cwd.clone().map(Text::from_cow);
        fe.action = action;
        match action {
            Action::Rename => {
                let dirfds = (dirfd_a, dirfd_b);
                self.rename(
                    &mut fe,
                    &paths,
                    &parents,
                    dirfds,
                    cwd.as_deref(),
                    enrich,
                    out,
                );
            }
            Action::Deletion => {
                for p in paths.iter().filter(|p| p.nametype == b"DELETE") {
                    let parent = parents.last().copied();
                    if let Some(loc) =
                        self.locate(p, parent, dirfd_a, cwd.as_deref(), fe.pid, enrich)
                    {
                        self.emit(&mut fe, p, loc, out);
                    }
                }
            }
            Action::Modification | Action::Creation => {
                if let Some(p) = paths.iter().find(|p| p.nametype == b"NORMAL") {
                    let parent = parents.last().copied();
                    if let Some(loc) =
                        self.locate(p, parent, dirfd_a, cwd.as_deref(), fe.pid, enrich)
                    {
                        self.emit(&mut fe, p, loc, out);
                    }
                }
            }
        }
    }

    /// A rename's event: the CREATE name in `file.*`, the DELETE name it moved from in
    /// `file.Ext.original.*` (old PARENT first, new PARENT second).
    #[allow(clippy::too_many_arguments)]
    fn rename<'a>(
        &mut self,
        fe: &mut FileEvent<'a>,
        paths: &[PathRec<'a>],
        parents: &[&PathRec<'a>],
        dirfds: (Option<u64>, Option<u64>),
        cwd: Option<&[u8]>,
        enrich: &mut dyn Enricher,
        out: &mut dyn FnMut(&mut FileEvent<'_>),
    ) {
        let Some(new) = paths.iter().find(|p| p.nametype == b"CREATE") else {
            return;
        };
        // An overwriting rename also deletes the victim: the moved name is the
        // DELETE with the new name's inode.
        let old = paths
            .iter()
            .filter(|p| p.nametype == b"DELETE")
            .find(|p| p.inode.is_some() && p.inode == new.inode)
            .or_else(|| paths.iter().find(|p| p.nametype == b"DELETE"));
        let Some(old) = old else {
            return;
        };
        let old_parent = parents.first().copied();
        let new_parent = parents.get(1).or(parents.first()).copied();
        let Some((old_path, _)) = self.locate(old, old_parent, dirfds.0, cwd, fe.pid, enrich)
        else {
            return;
        };
        let Some(loc) = self.locate(new, new_parent, dirfds.1, cwd, fe.pid, enrich) else {
            return;
        };
        let (_, old_base) = split_path(old_path.as_deref().unwrap_or_default());
        fe.original = Some(Box::new(Original {
            name: (!old_base.is_empty()).then(|| Text::from_vec(old_base.to_vec())),
            extension: extension(old_base).map(|e| Text::from_vec(e.to_vec())),
            path: old_path.map(Text::from_vec),
        }));
        self.emit(fe, new, loc, out);
    }

    /// The absolute path of a PATH record's name, as `creations` finds it: absolute, or
    /// joined to the CWD, or for a dirfd call to the directory its PARENT's dev:inode names
    /// (cache, then `/proc/PID/fd/N`). `None` when the record has no name.
    fn locate(
        &mut self,
        p: &PathRec<'_>,
        parent: Option<&PathRec<'_>>,
        dirfd: Option<u64>,
        cwd: Option<&[u8]>,
        pid: Option<u32>,
        enrich: &mut dyn Enricher,
    ) -> Option<Located> {
        let name = p.name.clone()?;
        let name: Cow<'static, [u8]> = Cow::Owned(name.into_owned());
        let (path, origin) = if name.first() == Some(&b'/') {
            (Some(normalize(&name)), PathOrigin::Absolute)
        } else if let Some(fd) = dirfd {
            let cached = parent
                .and_then(dev_ino)
                .and_then(|k| self.dirs.get(&k).map(<[u8]>::to_vec));
            match cached {
                Some(dir) => (Some(join(&dir, &name)), PathOrigin::DirCache),
                None => match pid.and_then(|pid| enrich.fd_path(pid, fd as u32)) {
                    Some(dir) if dir.first() == Some(&b'/') => {
                        (Some(join(&dir, &name)), PathOrigin::ProcFd)
                    }
                    _ => (None, PathOrigin::Unresolved),
                },
            }
        } else {
            match absolute(cwd, &name) {
                Some(abs) => (Some(abs), PathOrigin::Cwd),
                None => (None, PathOrigin::Unresolved),
            }
        };
        Some((path.clone(), (name, origin)))
    }

    /// Fills the file fields of `fe` from one PATH record and hands it to `out`.
    fn emit<'a>(
        &mut self,
        fe: &mut FileEvent<'a>,
        p: &PathRec<'a>,
        (path, (name, origin)): Located,
        out: &mut dyn FnMut(&mut FileEvent<'_>),
    ) {
        if path.is_none() {
            self.stats.unresolved_paths += 1;
        }
        let basis: &[u8] = path.as_deref().unwrap_or(&name);
        let (dir, base) = split_path(basis);
        fe.file_name = (!base.is_empty()).then(|| Text::from_vec(base.to_vec()));
        fe.directory = path.as_ref().and(dir).map(|d| Text::from_vec(d.to_vec()));
        fe.extension = extension(base).map(|e| Text::from_vec(e.to_vec()));
        fe.kernel_name = Text::from_vec(name.into_owned());
        fe.path = path.map(Text::from_vec);
        fe.path_origin = origin;
        fe.mode = p.mode;
        fe.ouid = p.ouid;
        fe.ogid = p.ogid;
        fe.inode = p.inode;
        fe.device = p.dev;
        self.stats.changes += 1;
        out(fe);
    }
}
