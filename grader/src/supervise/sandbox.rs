//! The filesystem a test sees: in a mount namespace of its own, the course and the
//! submission are read-only, the grader's directory (hidden tests, rubric) is hidden
//! under an empty tmpfs, and `/tmp` is a private tmpfs. Code under test can neither
//! write into the course nor read the hidden tests' sources. The build of a submission
//! gets a lighter one: the solutions and the grader's directory hidden, so that
//! `include!` cannot compile the reference solution in. Where the system refuses a
//! mount namespace (no `CAP_SYS_ADMIN`, some containers), both run without it and the
//! report says so.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What to do to the filesystem of each test.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sandbox {
    /// Made read-only (bind-mounted onto themselves, then remounted read-only).
    pub read_only: Vec<PathBuf>,
    /// Covered by an empty tmpfs.
    pub hidden: Vec<PathBuf>,
    /// Whether `/tmp` is replaced by a private tmpfs.
    pub private_tmp: bool,
}

/// The C strings and flags the child needs, prepared before `fork` (no allocation is
/// allowed between `fork` and `exec`).
pub struct Prepared {
    read_only: Vec<CString>,
    hidden: Vec<CString>,
    tmp: Option<CString>,
    tmpfs: CString,
    root: CString,
}

impl Sandbox {
    pub fn prepare(&self) -> Prepared {
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("no NUL in paths");
        Prepared {
            read_only: self.read_only.iter().map(|p| c(p)).collect(),
            hidden: self.hidden.iter().map(|p| c(p)).collect(),
            tmp: self.private_tmp.then(|| c(Path::new("/tmp"))),
            tmpfs: c(Path::new("tmpfs")),
            root: c(Path::new("/")),
        }
    }
}

impl Prepared {
    /// Enters a new mount namespace and applies the sandbox. Call only in the child,
    /// between `fork` and `exec`.
    pub fn enter(&self) -> std::io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        let check = |ret: libc::c_int| {
            if ret == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: plain syscalls on NUL-terminated strings prepared before fork.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                null,
                self.root.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for path in &self.read_only {
                check(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    null,
                    path.as_ptr(),
                    null,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
            for path in self.hidden.iter().chain(&self.tmp) {
                check(libc::mount(
                    self.tmpfs.as_ptr(),
                    path.as_ptr(),
                    self.tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=64m".as_ptr().cast(),
                ))?;
            }
        }
        Ok(())
    }
}
