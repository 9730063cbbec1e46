//! Validation of an uploaded zip, entry by entry, before anything is
//! written. The seed project checked path strings only; here an archive is
//! refused (with the entry and the reason) when any entry:
//! - has an absolute name, a ".." component, a NUL or a backslash;
//! - is a device, FIFO or socket, is encrypted, or uses a compression
//!   method other than stored/deflate;
//! - duplicates another entry (also after cleaning: "a//b" == "./a/b");
//! - would pass through a symlink — an existing one in the destination or
//!   a symlink entry of the same archive (in any order), or through a file;
//! - is a symlink whose target is absolute, climbs above the destination,
//!   has a ".." after a name (which a lexical check cannot follow through
//!   symlinks), or passes through an existing symlink of the destination;
//! - would replace an existing directory with a file, or vice versa;
//! - or the archive has too many entries or declares too many bytes.
//!
//! Declared sizes can lie; `unzip` enforces the limits again while
//! decompressing.

use std::collections::HashMap;
use std::io::{Read, Seek};

use hyper::StatusCode;
use nix::sys::stat::SFlag;
use zip::{CompressionMethod, ZipArchive};

use super::confine::Root;
use super::path::RelPath;
use super::unzip::ZipLimits;
use crate::http::ApiError;

/// Longest symlink target accepted (PATH_MAX - 1).
pub const MAX_LINK_TARGET: u64 = 4095;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `exec`: the archive marks it executable (any x bit) → 0755, else 0644.
    File {
        exec: bool,
    },
    Dir,
    Symlink(String),
}

/// One validated entry.
#[derive(Debug)]
pub struct Item {
    pub index: usize,
    pub name: String,
    pub path: RelPath,
    pub kind: Kind,
    /// Declared uncompressed size (files).
    pub size: u64,
}

pub fn bad(i: usize, name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "zip entry #{i} {name:?}: {why}; nothing was extracted"
    ))
}

/// Reads and checks every entry; `dest` is the destination directory as a
/// root of its own (for the checks against what already exists there).
pub fn plan<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    dest: &Root,
    limits: &ZipLimits,
) -> Result<Vec<Item>, ApiError> {
    if archive.len() > limits.max_entries {
        return Err(ApiError::too_large(format!(
            "the zip has {} entries; at most {} are accepted; nothing was extracted",
            archive.len(),
            limits.max_entries
        )));
    }
    if archive.has_duplicate_names() {
        return Err(ApiError::bad_request(
            "the zip has duplicate entry names; nothing was extracted",
        ));
    }
    let mut items = Vec::with_capacity(archive.len());
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let f = archive
            .by_index_raw(i)
            .map_err(|e| ApiError::bad_request(format!("zip entry #{i}: unreadable: {e}")))?;
        let name = f
            .name()
            .map_err(|e| ApiError::bad_request(format!("zip entry #{i}: bad name: {e}")))?
            .into_owned();
        if f.encrypted() {
            return Err(bad(i, &name, "encrypted entries are not supported"));
        }
        if !matches!(
            f.compression(),
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(bad(
                i,
                &name,
                format!("unsupported compression method {}", f.compression()),
            ));
        }
        let path = RelPath::parse_member(&name).map_err(|why| bad(i, &name, why))?;
        let ftype = f.unix_mode().map(|m| m & SFlag::S_IFMT.bits()).unwrap_or(0);
        let kind = if ftype == SFlag::S_IFLNK.bits() {
            if f.size() > MAX_LINK_TARGET {
                return Err(bad(i, &name, "symlink target too long"));
            }
            Kind::Symlink(String::new()) // read below, decompressed
        } else if ftype == SFlag::S_IFDIR.bits() || name.ends_with('/') {
            Kind::Dir
        } else if ftype == 0 || ftype == SFlag::S_IFREG.bits() {
            Kind::File {
                exec: f.unix_mode().is_some_and(|m| m & 0o111 != 0),
            }
        } else {
            return Err(bad(i, &name, "device, FIFO and socket entries are refused"));
        };
        if path.is_root() {
            if kind == Kind::Dir {
                continue; // "./": the destination itself
            }
            return Err(bad(i, &name, "empty name"));
        }
        let size = if matches!(kind, Kind::File { .. }) {
            f.size()
        } else {
            0
        };
        declared = declared.saturating_add(size);
        if declared > limits.max_uncompressed {
            return Err(ApiError::too_large(format!(
                "the zip declares more than {} uncompressed bytes (at entry #{i} {name:?}); nothing was extracted",
                limits.max_uncompressed
            )));
        }
        drop(f);
        let kind = match kind {
            Kind::Symlink(_) => Kind::Symlink(read_target(archive, i, &name)?),
            k => k,
        };
        items.push(Item {
            index: i,
            name,
            path,
            kind,
            size,
        });
    }
    check_tree(&items, dest)?;
    Ok(items)
}

fn read_target<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    i: usize,
    name: &str,
) -> Result<String, ApiError> {
    let f = archive
        .by_index(i)
        .map_err(|e| bad(i, name, format!("unreadable: {e}")))?;
    let mut t = String::new();
    f.take(MAX_LINK_TARGET + 1)
        .read_to_string(&mut t)
        .map_err(|e| bad(i, name, format!("unreadable symlink target: {e}")))?;
    if t.is_empty() || t.len() as u64 > MAX_LINK_TARGET || t.contains('\0') {
        return Err(bad(i, name, "invalid symlink target"));
    }
    Ok(t)
}

/// The checks that need every entry at once, and the destination.
fn check_tree(items: &[Item], dest: &Root) -> Result<(), ApiError> {
    let mut seen: HashMap<&RelPath, &Item> = HashMap::with_capacity(items.len());
    for it in items {
        if let Some(prev) = seen.insert(&it.path, it) {
            return Err(bad(
                it.index,
                &it.name,
                format!("duplicate of entry #{} {:?}", prev.index, prev.name),
            ));
        }
    }
    let mut existing = Existing {
        dest,
        cache: HashMap::new(),
    };
    for it in items {
        let n = it.path.components().len();
        // Every ancestor must be a directory: not a file or symlink entry
        // of this archive (wherever it sits in the archive), and not an
        // existing symlink or non-directory in the destination.
        for k in 1..n {
            let pre = it.path.prefix(k);
            match seen.get(&pre).map(|p| &p.kind) {
                Some(Kind::Symlink(_)) => {
                    let p = seen[&pre];
                    return Err(bad(
                        it.index,
                        &it.name,
                        format!("passes through symlink entry #{} {:?}", p.index, p.name),
                    ));
                }
                Some(Kind::File { .. }) => {
                    let p = seen[&pre];
                    return Err(bad(
                        it.index,
                        &it.name,
                        format!("its parent is the file entry #{} {:?}", p.index, p.name),
                    ));
                }
                _ => {}
            }
        }
        let mut all_parents_exist = true;
        for k in 1..n {
            let pre = it.path.prefix(k);
            match existing.kind(&pre)? {
                None => {
                    all_parents_exist = false;
                    break;
                }
                Some(SFlag::S_IFDIR) => {}
                Some(SFlag::S_IFLNK) => {
                    return Err(bad(
                        it.index,
                        &it.name,
                        format!("passes through the existing symlink {}", dest.show(&pre)),
                    ));
                }
                Some(_) => {
                    return Err(conflict(
                        it,
                        format!("{} exists and is not a directory", dest.show(&pre)),
                    ));
                }
            }
        }
        if all_parents_exist {
            match (&it.kind, existing.kind(&it.path)?) {
                (_, None) | (Kind::Dir, Some(SFlag::S_IFDIR)) => {}
                (Kind::Dir, Some(SFlag::S_IFLNK)) => {
                    return Err(bad(
                        it.index,
                        &it.name,
                        format!("{} is an existing symlink", dest.show(&it.path)),
                    ));
                }
                (Kind::Dir, Some(_)) => {
                    return Err(conflict(
                        it,
                        format!("{} exists and is not a directory", dest.show(&it.path)),
                    ));
                }
                (_, Some(SFlag::S_IFDIR)) => {
                    return Err(conflict(
                        it,
                        format!("{} is an existing directory", dest.show(&it.path)),
                    ));
                }
                _ => {} // a file or symlink is replaced, never followed
            }
        }
        if let Kind::Symlink(target) = &it.kind {
            check_target(it, target, &seen, &mut existing)?;
        }
    }
    Ok(())
}

/// A symlink's target must stay inside the destination, checked without
/// trusting lexical ".." after a name: only leading ".." are accepted, and
/// they only climb through the link's own parents, which `check_tree` has
/// proven to be real directories. The names after them must not pass
/// through an existing symlink (which could point anywhere); symlink
/// entries of the archive are fine, since each is held to this same rule.
fn check_target(
    it: &Item,
    target: &str,
    seen: &HashMap<&RelPath, &Item>,
    existing: &mut Existing<'_>,
) -> Result<(), ApiError> {
    if target.starts_with('/') {
        return Err(bad(
            it.index,
            &it.name,
            format!("symlink target {target:?} is absolute"),
        ));
    }
    let mut ups = 0;
    let mut names: Vec<&str> = Vec::new();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if names.is_empty() => ups += 1,
            ".." => {
                return Err(bad(
                    it.index,
                    &it.name,
                    format!("symlink target {target:?} has \"..\" after a name"),
                ))
            }
            c => names.push(c),
        }
    }
    let depth = it.path.components().len() - 1;
    if ups > depth {
        return Err(bad(
            it.index,
            &it.name,
            format!("symlink target {target:?} points outside the destination"),
        ));
    }
    let base = it.path.prefix(depth - ups);
    let mut cur = base;
    for n in names {
        cur = cur.child(n);
        if seen.contains_key(&cur) {
            continue;
        }
        match existing.kind(&cur)? {
            None => break,
            Some(SFlag::S_IFLNK) => {
                return Err(bad(
                    it.index,
                    &it.name,
                    format!(
                        "symlink target {target:?} passes through the existing symlink {}",
                        existing.dest.show(&cur)
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn conflict(it: &Item, why: String) -> ApiError {
    ApiError::conflict(format!(
        "zip entry #{} {:?}: {why}; nothing was extracted",
        it.index, it.name
    ))
}

/// `lstat` of destination paths, cached (10,000 entries share parents).
/// Callers check prefixes shortest first, so by the time a longer path is
/// looked up its parents are known to be real directories.
struct Existing<'a> {
    dest: &'a Root,
    cache: HashMap<RelPath, Option<SFlag>>,
}

impl Existing<'_> {
    fn kind(&mut self, p: &RelPath) -> Result<Option<SFlag>, ApiError> {
        if let Some(k) = self.cache.get(p) {
            return Ok(*k);
        }
        let k = match self.dest.lstat(p) {
            Ok(st) => st.map(|st| super::confine::kind(&st)),
            // A parent that is missing, or is a file: nothing there.
            Err(e) if matches!(e.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST) => None,
            Err(e) => return Err(e),
        };
        self.cache.insert(p.clone(), k);
        Ok(k)
    }
}
