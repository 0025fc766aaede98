//! file_event::text: bytes from records as text that keeps the exact bytes, and how a
//! path was found.

use std::borrow::Cow;

/// Text that came as bytes: `text` is what rules match and what JSON shows. When the bytes
/// are not valid UTF-8, `text` replaces the bad sequences with U+FFFD and `raw` keeps the
/// exact bytes, which alerts carry as hex under `wwatchd.raw.<field>`; so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a> {
    pub text: Cow<'a, str>,
    pub raw: Option<Vec<u8>>,
}

impl<'a> Text<'a> {
    pub fn from_cow(b: Cow<'a, [u8]>) -> Text<'a> {
        match b {
            Cow::Borrowed(s) => match std::str::from_utf8(s) {
                Ok(t) => Text {
                    text: Cow::Borrowed(t),
                    raw: None,
                },
                Err(_) => Text {
                    text: Cow::Owned(String::from_utf8_lossy(s).into_owned()),
                    raw: Some(s.to_vec()),
                },
            },
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(t) => Text {
                    text: Cow::Owned(t),
                    raw: None,
                },
                Err(e) => {
                    let v = e.into_bytes();
                    Text {
                        text: Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
                        raw: Some(v),
                    }
                }
            },
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Text<'static> {
        Text::from_cow(Cow::Owned(v))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.text.as_bytes())
    }
}

/// How the created file's absolute path was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathOrigin {
    /// The kernel's name was absolute.
    Absolute,
    /// Joined to the CWD record.
    Cwd,
    /// Joined to the dirfd's directory, found by the PARENT's dev:inode.
    DirCache,
    /// Joined to the dirfd's directory, read from `/proc/PID/fd/N`.
    ProcFd,
    /// A dirfd-relative name whose directory is unknown: no `file.path`.
    Unresolved,
}

impl PathOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            PathOrigin::Absolute => "absolute",
            PathOrigin::Cwd => "cwd",
            PathOrigin::DirCache => "dirfd-inode",
            PathOrigin::ProcFd => "dirfd-proc",
            PathOrigin::Unresolved => "unresolved",
        }
    }
}
