//! syscalls: the one table of the system calls wwatchd cares about, per architecture.
//!
//! Both directions of the pipeline read it: `kernel_rule` derives the kernel's syscall
//! filter from it, and `file_event` decides from it whether a SYSCALL record is a creation.
//! One table keeps the two from drifting apart (a syscall the kernel reports but userspace
//! ignores would be a silent miss).
//!
//! Numbers from the kernel's arch/x86/entry/syscalls/syscall_64.tbl and syscall_32.tbl.
//! Note that x86_64's 83 is mkdir while i386's 83 is symlink.

/// The syscall ABI of a record or of a kernel rule. On x86_64 an i386 process has its own
/// numbers, and a kernel rule applies to one ABI only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64: `arch=c000003e` on records, `arch=b64` in rules (AUDIT_ARCH_X86_64).
    X86_64,
    /// i386 on x86_64: `arch=40000003` on records, `arch=b32` in rules (AUDIT_ARCH_I386).
    I386,
}

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (include/uapi/linux/audit.h).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// EM_386 | __AUDIT_ARCH_LE.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

impl Arch {
    /// Both ABIs, in the order kernel rules are derived.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::I386];

    /// From a record's `arch=` value.
    pub fn from_audit(v: u64) -> Option<Arch> {
        match u32::try_from(v).ok()? {
            AUDIT_ARCH_X86_64 => Some(Arch::X86_64),
            AUDIT_ARCH_I386 => Some(Arch::I386),
            _ => None,
        }
    }

    /// The AUDIT_ARCH value of a rule's `arch` field.
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::I386 => AUDIT_ARCH_I386,
        }
    }

    /// The name in events (`auditd.data.arch`, as auditd's ENRICHED `ARCH=`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
        }
    }

    /// The name in auditctl rules (`-F arch=b64`).
    pub fn rule_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "b64",
            Arch::I386 => "b32",
        }
    }
}

/// Which argument holds the directory descriptor a syscall's name is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirFd {
    /// The name is relative to the CWD (or absolute).
    None,
    A0,
    A1,
    A2,
}

/// What a syscall does to a name in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Creates a new name: a creation when its PATH record says `nametype=CREATE`. The
    /// open calls are also modifications when they open an existing file for writing.
    Create,
    /// Moves a name: a PATH `DELETE` (old name) and `CREATE` (new name) pair.
    Rename,
    /// Removes a name: a PATH `DELETE`.
    Delete,
    /// Changes an existing file by name (size, mode, owner, extended attributes). The
    /// fd-based variants (ftruncate, fchmod, fchown, fsetxattr) are not listed: the kernel
    /// records no PATH for them, so `dir=`/`path=` rules cannot select them.
    Modify,
}

/// For a syscall an ABI does not have (truncate64, chown32 and lchown32 are i386 only).
pub const NONE: u32 = u32::MAX;

/// One syscall of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: &'static str,
    pub x86_64: u32,
    pub i386: u32,
    pub dirfd: DirFd,
    pub effect: Effect,
}

impl Syscall {
    /// Its number for `arch`.
    pub fn nr(&self, arch: Arch) -> u32 {
        match arch {
            Arch::X86_64 => self.x86_64,
            Arch::I386 => self.i386,
        }
    }
}

const fn create(name: &'static str, x86_64: u32, i386: u32, dirfd: DirFd) -> Syscall {
    Syscall {
        name,
        x86_64,
        i386,
        dirfd,
        effect: Effect::Create,
    }
}

const fn with(effect: Effect, name: &'static str, x86_64: u32, i386: u32, dirfd: DirFd) -> Syscall {
    Syscall {
        name,
        x86_64,
        i386,
        dirfd,
        effect,
    }
}

/// Numbers checked against `ausyscall x86_64|i386 NAME` (audit 3.0.9). fchmodat2 (452,
/// Linux 6.6) is left out: that auditctl does not know its name, so a rules file naming it
/// would not load.
///
/// The syscalls wwatchd derives kernel rules for. Creation (the list the project decided
/// on: open, openat, openat2, creat, mkdir(at), mknod(at), link(at), symlink(at)), then
/// rename, deletion and modification (issue 11), which only rules that can match those
/// events ask for.
pub const SYSCALLS: &[Syscall] = &[
    create("open", 2, 5, DirFd::None),
    create("creat", 85, 8, DirFd::None),
    create("link", 86, 9, DirFd::None),
    create("mknod", 133, 14, DirFd::None),
    create("mkdir", 83, 39, DirFd::None),
    create("symlink", 88, 83, DirFd::None),
    create("openat", 257, 295, DirFd::A0),
    create("mkdirat", 258, 296, DirFd::A0),
    create("mknodat", 259, 297, DirFd::A0),
    create("linkat", 265, 303, DirFd::A2),
    create("symlinkat", 266, 304, DirFd::A1),
    create("openat2", 437, 437, DirFd::A0),
    with(Effect::Rename, "rename", 82, 38, DirFd::None),
    with(Effect::Rename, "renameat", 264, 302, DirFd::A0),
    with(Effect::Rename, "renameat2", 316, 353, DirFd::A0),
    with(Effect::Delete, "unlink", 87, 10, DirFd::None),
    with(Effect::Delete, "rmdir", 84, 40, DirFd::None),
    with(Effect::Delete, "unlinkat", 263, 301, DirFd::A0),
    with(Effect::Modify, "truncate", 76, 92, DirFd::None),
    with(Effect::Modify, "truncate64", NONE, 193, DirFd::None),
    with(Effect::Modify, "chmod", 90, 15, DirFd::None),
    with(Effect::Modify, "fchmodat", 268, 306, DirFd::A0),
    with(Effect::Modify, "chown", 92, 182, DirFd::None),
    with(Effect::Modify, "lchown", 94, 16, DirFd::None),
    with(Effect::Modify, "chown32", NONE, 212, DirFd::None),
    with(Effect::Modify, "lchown32", NONE, 198, DirFd::None),
    with(Effect::Modify, "fchownat", 260, 298, DirFd::A0),
    with(Effect::Modify, "setxattr", 188, 226, DirFd::None),
    with(Effect::Modify, "lsetxattr", 189, 227, DirFd::None),
    with(Effect::Modify, "removexattr", 197, 235, DirFd::None),
    with(Effect::Modify, "lremovexattr", 198, 236, DirFd::None),
];

/// The table entry for syscall `nr` of `arch`.
pub fn lookup(arch: Arch, nr: u32) -> Option<&'static Syscall> {
    if nr == NONE {
        return None;
    }
    SYSCALLS.iter().find(|s| s.nr(arch) == nr)
}

/// The numbers of the syscalls with `effect` for `arch`, ascending: a kernel rule's `-S` list.
pub fn numbers(arch: Arch, effect: Effect) -> Vec<u32> {
    let mut v: Vec<u32> = SYSCALLS
        .iter()
        .filter(|s| s.effect == effect)
        .map(|s| s.nr(arch))
        .filter(|&nr| nr != NONE)
        .collect();
    v.sort_unstable();
    v
}

/// The name auditctl prints for syscall `nr` of `arch`, if it is in the table.
pub fn name(arch: Arch, nr: u32) -> Option<&'static str> {
    lookup(arch, nr).map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_per_arch_and_names_unique() {
        for arch in Arch::ALL {
            let mut nrs: Vec<u32> = SYSCALLS
                .iter()
                .map(|s| s.nr(arch))
                .filter(|&n| n != NONE)
                .collect();
            let n = nrs.len();
            nrs.sort_unstable();
            nrs.dedup();
            assert_eq!(nrs.len(), n, "{arch:?}");
        }
        let mut names: Vec<&str> = SYSCALLS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SYSCALLS.len());
    }

    #[test]
    fn eighty_three_differs_by_arch() {
        assert_eq!(name(Arch::X86_64, 83), Some("mkdir"));
        assert_eq!(name(Arch::I386, 83), Some("symlink"));
        assert_eq!(lookup(Arch::I386, 295).map(|s| s.dirfd), Some(DirFd::A0));
        assert_eq!(name(Arch::X86_64, 82), Some("rename"));
        assert_eq!(
            lookup(Arch::X86_64, 82).map(|s| s.effect),
            Some(Effect::Rename)
        );
        assert_eq!(name(Arch::I386, 38), Some("rename"));
        // x86_64's 198 is lremovexattr, i386's 198 is lchown32.
        assert_eq!(name(Arch::X86_64, 198), Some("lremovexattr"));
        assert_eq!(name(Arch::I386, 198), Some("lchown32"));
        assert_eq!(numbers(Arch::X86_64, Effect::Delete), [84, 87, 263]);
        assert_eq!(numbers(Arch::I386, Effect::Delete), [10, 40, 301]);
        assert!(!numbers(Arch::X86_64, Effect::Modify).contains(&NONE));
    }

    #[test]
    fn arch_round_trips() {
        for arch in Arch::ALL {
            assert_eq!(Arch::from_audit(u64::from(arch.audit_arch())), Some(arch));
        }
        assert_eq!(
            Arch::from_audit(0xc000_00b7),
            None,
            "aarch64 is not handled"
        );
    }
}
