//! Safe unpacking of a submitted `.zip` or `.tar.gz` into the scratch area: every path
//! must stay inside the destination (no absolute path, no `..`), links are never
//! created (one pointing out of the tree rejects the archive), devices and FIFOs are
//! skipped, and the bytes and files written are capped whatever the headers claim.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Most bytes unpacked from one archive.
pub const MAX_BYTES: u64 = 64 << 20;
/// Most files and directories unpacked from one archive.
pub const MAX_ENTRIES: usize = 5000;

/// The archive formats a submission may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Zip,
    TarGz,
}

impl ArchiveKind {
    /// The kind of `path` by its name, and the name without the extension.
    pub fn of(path: &Path) -> Option<(Self, String)> {
        let name = path.file_name()?.to_str()?;
        for (suffix, kind) in [
            (".zip", Self::Zip),
            (".tar.gz", Self::TarGz),
            (".tgz", Self::TarGz),
        ] {
            if let Some(stem) = name.strip_suffix(suffix)
                && !stem.is_empty()
            {
                return Some((kind, stem.to_owned()));
            }
        }
        None
    }
}

/// What is left of the caps while unpacking.
struct Budget {
    bytes: u64,
    entries: usize,
}

impl Budget {
    fn take_entry(&mut self) -> Result<()> {
        if self.entries == 0 {
            bail!("the archive has more than {MAX_ENTRIES} entries");
        }
        self.entries -= 1;
        Ok(())
    }

    /// Writes at most the remaining bytes of `reader` to a new file at `to`.
    fn write_file(&mut self, reader: &mut impl Read, to: &Path) -> Result<()> {
        self.take_entry()?;
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = File::create(to).with_context(|| format!("creating {}", to.display()))?;
        let written = io::copy(&mut reader.take(self.bytes + 1), &mut file)?;
        if written > self.bytes {
            bail!("the archive unpacks to more than {} MiB", MAX_BYTES >> 20);
        }
        self.bytes -= written;
        Ok(())
    }
}

/// Unpacks `archive` into the directory `to` (created; must not exist yet).
pub fn unpack(archive: &Path, kind: ArchiveKind, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    let mut budget = Budget {
        bytes: MAX_BYTES,
        entries: MAX_ENTRIES,
    };
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    match kind {
        ArchiveKind::Zip => unpack_zip(file, to, &mut budget),
        ArchiveKind::TarGz => unpack_tar_gz(file, to, &mut budget),
    }
    .with_context(|| format!("unpacking {}", archive.display()))
}

fn unpack_zip(file: File, to: &Path, budget: &mut Budget) -> Result<()> {
    let mut zip = zip::ZipArchive::new(file)?;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let relative = inside_path(Path::new(entry.name()))?;
        if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry).take(4096).read_to_string(&mut target)?;
            check_link(&relative, Path::new(&target))?;
        } else if entry.is_dir() {
            budget.take_entry()?;
            fs::create_dir_all(to.join(&relative))?;
        } else if entry.is_file() {
            budget.write_file(&mut entry, &to.join(&relative))?;
        }
    }
    Ok(())
}

fn unpack_tar_gz(file: File, to: &Path, budget: &mut Budget) -> Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let relative = inside_path(&entry.path()?)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.unwrap_or_default().into_owned();
            if kind.is_hard_link() {
                // A hard link names a path from the archive's root.
                inside_path(&target)?;
            } else {
                check_link(&relative, &target)?;
            }
        } else if kind.is_dir() {
            budget.take_entry()?;
            fs::create_dir_all(to.join(&relative))?;
        } else if kind.is_file() {
            budget.write_file(&mut entry, &to.join(&relative))?;
        }
    }
    Ok(())
}

/// `path` as a relative path made of plain names only: absolute paths and `..` are
/// refused rather than cleaned, since no honest archive has them.
fn inside_path(path: &Path) -> Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            _ => bail!(
                "refusing the entry `{}`: it points out of the archive",
                path.display()
            ),
        }
    }
    if clean.as_os_str().is_empty() {
        bail!("refusing an entry with an empty path");
    }
    Ok(clean)
}

/// A symbolic link at `link` (relative to the archive's root) to `target` is refused
/// when it resolves outside the archive. Links inside are not created either: only
/// regular files are graded.
fn check_link(link: &Path, target: &Path) -> Result<()> {
    let mut depth: isize = link.components().count() as isize - 1;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => depth = -1,
        }
        if depth < 0 {
            bail!(
                "refusing the link `{}` -> `{}`: it points out of the archive",
                link.display(),
                target.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_inside() {
        assert!(inside_path(Path::new("a/b/c.rs")).is_ok());
        assert!(inside_path(Path::new("./a")).is_ok());
        assert!(inside_path(Path::new("/etc/passwd")).is_err());
        assert!(inside_path(Path::new("a/../../b")).is_err());
        assert!(inside_path(Path::new("a/../b")).is_err());
    }

    #[test]
    fn links_out_of_the_tree_are_refused() {
        assert!(check_link(Path::new("a/link"), Path::new("../b")).is_ok());
        assert!(check_link(Path::new("a/link"), Path::new("../../b")).is_err());
        assert!(check_link(Path::new("link"), Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn archive_kinds_are_known_by_name() {
        assert_eq!(
            ArchiveKind::of(Path::new("x/alice.tar.gz")),
            Some((ArchiveKind::TarGz, "alice".to_owned()))
        );
        assert_eq!(
            ArchiveKind::of(Path::new("bob.zip")),
            Some((ArchiveKind::Zip, "bob".to_owned()))
        );
        assert_eq!(ArchiveKind::of(Path::new("notes.txt")), None);
    }
}
