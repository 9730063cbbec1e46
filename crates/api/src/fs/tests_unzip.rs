//! `upload_zip` against crafted archives: one per attack, each refused
//! with nothing changed anywhere in the test's directory (inside the
//! destination or outside it), and a good archive extracted faithfully.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper::StatusCode;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::confine::Root;
use super::path::RelPath;
use super::unzip::{unpack, Staging, Summary, ZipLimits};
use crate::http::ApiError;

struct Env {
    _t: tempfile::TempDir,
    top: PathBuf,
    root: PathBuf,
}

/// top/outside/secret; top/root/d (the destination) with an existing
/// file, directory, and symlinks pointing outside and inside.
fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let top = t.path().to_path_buf();
    let root = top.join("root");
    std::fs::create_dir_all(top.join("outside")).unwrap();
    std::fs::write(top.join("outside/secret"), b"s").unwrap();
    std::fs::create_dir_all(root.join("d/existing_dir")).unwrap();
    std::fs::write(root.join("d/existing_file"), b"old").unwrap();
    symlink("../../outside", root.join("d/out_link")).unwrap();
    symlink("existing_dir", root.join("d/in_link")).unwrap();
    Env { _t: t, top, root }
}

fn unzip(e: &Env, bytes: &[u8], limits: &ZipLimits) -> Result<Summary, ApiError> {
    let top = Root::new(&e.root)?;
    let dest = top.sub(&RelPath::parse("/d")?, false)?;
    let st = Staging::create(&dest)?;
    let mut f = st.spool()?;
    f.write_all(bytes).unwrap();
    let r = unpack(&dest, &st, f, limits);
    drop(st);
    r
}

/// Everything under `dir`: path → kind, mode and content or target.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for ent in std::fs::read_dir(dir).unwrap() {
            let p = ent.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let v = if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(base, &p, out);
                format!("dir {mode:o}")
            } else {
                format!("file {mode:o} {:?}", std::fs::read(&p).unwrap())
            };
            out.insert(rel, v);
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn opts() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

enum E<'a> {
    F(&'a str, &'a [u8]),
    D(&'a str),
    L(&'a str, &'a str),
    Raw(&'a str, &'a [u8], u32),
}

fn build(entries: &[E<'_>]) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for e in entries {
        match e {
            E::F(n, data) => {
                z.start_file(*n, opts()).unwrap();
                z.write_all(data).unwrap();
            }
            E::D(n) => z.add_directory(*n, opts()).unwrap(),
            E::L(n, t) => z.add_symlink(*n, *t, opts()).unwrap(),
            E::Raw(n, data, attrs) => {
                z.start_file(*n, opts().external_attributes(*attrs << 16))
                    .unwrap();
                z.write_all(data).unwrap();
            }
        }
    }
    z.finish().unwrap().into_inner()
}

/// Refused with `status`, the reason mentioning `why`, and nothing changed.
fn refused(entries: &[E<'_>], status: StatusCode, why: &str) {
    refused_bytes(&build(entries), &ZipLimits::DEFAULT, status, why);
}

fn refused_bytes(bytes: &[u8], limits: &ZipLimits, status: StatusCode, why: &str) {
    let e = env();
    let before = snapshot(&e.top);
    let err = unzip(&e, bytes, limits).unwrap_err();
    assert_eq!(err.status, status, "{}", err.detail);
    assert!(err.detail.contains(why), "{:?} lacks {why:?}", err.detail);
    assert_eq!(
        snapshot(&e.top),
        before,
        "something was written: {}",
        err.detail
    );
}

fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
        i += 1;
    }
    assert!(n > 0);
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;

#[test]
fn fs_unzip_refuses_absolute_and_dotdot() {
    refused(
        &[E::F("ok", b"1"), E::F("/etc/evil", b"x")],
        BAD,
        "absolute path",
    );
    refused(&[E::F("../outside/evil", b"x")], BAD, "\"..\"");
    refused(&[E::F("a/../../evil", b"x")], BAD, "\"..\"");
    refused(&[E::F("a\\..\\evil", b"x")], BAD, "backslash");
}

#[test]
fn fs_unzip_refuses_paths_through_symlinks() {
    // An existing symlink in the destination (outside- or inside-pointing).
    refused(
        &[E::F("fine", b"1"), E::F("out_link/evil", b"x")],
        BAD,
        "existing symlink",
    );
    refused(&[E::F("in_link/evil", b"x")], BAD, "existing symlink");
    refused(&[E::D("out_link/")], BAD, "existing symlink");
    // An earlier symlink entry of the same archive, even one pointing inside…
    refused(
        &[E::L("s", "sub"), E::D("sub/"), E::F("s/evil", b"x")],
        BAD,
        "passes through symlink entry #0",
    );
    // …or a later one (order must not matter).
    refused(
        &[E::F("s/evil", b"x"), E::L("s", "sub")],
        BAD,
        "passes through symlink entry #1",
    );
    refused(&[E::L("s", "/tmp"), E::F("s/evil", b"x")], BAD, "");
}

#[test]
fn fs_unzip_refuses_symlinks_pointing_outside() {
    refused(&[E::L("l", "../../outside/secret")], BAD, "points outside");
    refused(&[E::L("l", "..")], BAD, "points outside");
    refused(&[E::L("a/b/l", "../../..")], BAD, "points outside");
    refused(&[E::L("l", "/etc/passwd")], BAD, "is absolute");
    // Lexically inside, but ".." after a name could climb through a link.
    refused(
        &[E::L("a/b/up", "../.."), E::L("x", "a/b/up/../y")],
        BAD,
        "after a name",
    );
    // Through an existing symlink of the destination.
    refused(&[E::L("l", "out_link/secret")], BAD, "existing symlink");
}

#[test]
fn fs_unzip_refuses_duplicates_devices_conflicts() {
    let mut z = build(&[E::F("dup1", b"a"), E::F("dup2", b"b")]);
    replace(&mut z, b"dup2", b"dup1");
    refused_bytes(&z, &ZipLimits::DEFAULT, BAD, "duplicate");
    refused(
        &[E::F("a/b", b"1"), E::F("a//b", b"2")],
        BAD,
        "duplicate of entry #0",
    );
    refused(
        &[E::F("a/b", b"1"), E::F("./a/b", b"2")],
        BAD,
        "duplicate of entry #0",
    );
    refused(&[E::Raw("fifo", b"", 0o010644)], BAD, "FIFO");
    refused(&[E::Raw("dev", b"", 0o020644)], BAD, "device");
    refused(&[E::F("f", b"1"), E::F("f/g", b"2")], BAD, "file entry #0");
    refused(
        &[E::F("existing_dir", b"1")],
        StatusCode::CONFLICT,
        "existing directory",
    );
    refused(
        &[E::F("existing_file/x", b"1")],
        StatusCode::CONFLICT,
        "not a directory",
    );
}

#[test]
fn fs_unzip_limits_entries() {
    let names: Vec<String> = (0..10_001).map(|i| format!("d{}/f{i}", i % 50)).collect();
    let entries: Vec<E<'_>> = names.iter().map(|n| E::F(n, b"x")).collect();
    refused(&entries, StatusCode::PAYLOAD_TOO_LARGE, "10001 entries");
    // Exactly the limit passes.
    let e = env();
    let s = unzip(&e, &build(&entries[..10_000]), &ZipLimits::DEFAULT).unwrap();
    assert_eq!((s.entries, s.bytes), (10_000, 10_000));
    assert_eq!(std::fs::read(e.root.join("d/d7/f9957")).unwrap(), b"x");
}

#[test]
fn fs_unzip_limits_bytes_honest_and_lying() {
    let small = ZipLimits {
        max_uncompressed: 1 << 20,
        ..ZipLimits::DEFAULT
    };
    let big = vec![0u8; 600 << 10];
    // Honest headers: the declared total is refused before anything runs.
    let z = build(&[E::F("a", &big), E::F("b", &big)]);
    refused_bytes(
        &z,
        &small,
        StatusCode::PAYLOAD_TOO_LARGE,
        "declares more than",
    );
    // Lying headers: 2 MiB of zeros declared as 100 bytes, after a good file.
    let bomb = vec![0u8; 2 << 20];
    let mut z = build(&[E::F("good", b"fine"), E::F("bomb", &bomb)]);
    let declared = (bomb.len() as u32).to_le_bytes();
    let n = patch_sizes(&mut z, &declared, &100u32.to_le_bytes());
    assert_eq!(n, 2, "local and central header patched");
    refused_bytes(
        &z,
        &small,
        StatusCode::PAYLOAD_TOO_LARGE,
        "its header declares",
    );
    refused_bytes(
        &z,
        &ZipLimits::DEFAULT,
        StatusCode::PAYLOAD_TOO_LARGE,
        "its header declares",
    );
}

#[test]
fn fs_unzip_limits_entries_from_the_directory_record() {
    // The end-of-central-directory record claims 60,000 entries: refused
    // before the zip crate parses (and allocates for) them.
    let mut z = build(&[E::F("a", b"1")]);
    let at = z.windows(4).rposition(|w| w == [0x50, 0x4b, 5, 6]).unwrap();
    z[at + 8..at + 12].copy_from_slice(&[0x60, 0xea, 0x60, 0xea]);
    refused_bytes(
        &z,
        &ZipLimits::DEFAULT,
        StatusCode::PAYLOAD_TOO_LARGE,
        "60000 entries",
    );
}

/// Rewrites the uncompressed-size fields equal to `from` in local (offset
/// 22) and central (offset 24) headers.
fn patch_sizes(z: &mut [u8], from: &[u8; 4], to: &[u8; 4]) -> usize {
    let mut n = 0;
    for i in 0..z.len().saturating_sub(30) {
        let off = match &z[i..i + 4] {
            [0x50, 0x4b, 3, 4] => 22,
            [0x50, 0x4b, 1, 2] => 24,
            _ => continue,
        };
        if &z[i + off..i + off + 4] == from {
            z[i + off..i + off + 4].copy_from_slice(to);
            n += 1;
        }
    }
    n
}

#[test]
fn fs_unzip_good_archive() {
    let e = env();
    let z = build(&[
        E::D("a/"),
        E::F("a/b/c.txt", b"hello"),
        E::Raw("a/run.sh", b"#!/bin/sh\n", 0o100755),
        E::Raw("a/suid", b"x", 0o104777),
        E::L("a/link", "b/c.txt"),
        E::L("top", "a/b"),
        E::L("a/b/up", "../run.sh"),
        E::F("existing_file", b"new"),
        E::F("existing_dir/inner", b"merged"),
        E::D("./"),
    ]);
    let s = unzip(&e, &z, &ZipLimits::DEFAULT).unwrap();
    assert_eq!(s.entries, 9);
    let d = e.root.join("d");
    assert_eq!(std::fs::read(d.join("a/b/c.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(d.join("a/link")).unwrap(), b"hello");
    assert_eq!(std::fs::read(d.join("top/c.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(d.join("a/b/up")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(std::fs::read_link(d.join("top")).unwrap(), Path::new("a/b"));
    assert_eq!(std::fs::read(d.join("existing_file")).unwrap(), b"new");
    assert_eq!(
        std::fs::read(d.join("existing_dir/inner")).unwrap(),
        b"merged"
    );
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("a/b/c.txt"), 0o644);
    assert_eq!(mode("a/run.sh"), 0o755);
    assert_eq!(mode("a/suid"), 0o755, "no setuid from an archive");
    assert_eq!(mode("a"), 0o755);
    assert_eq!(mode("a/b"), 0o755);
    assert_eq!(s.bytes, 5 + 10 + 1 + 3 + 6);
    // No staging directory left behind.
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".corral"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn fs_unzip_refuses_garbage() {
    refused_bytes(
        b"not a zip at all",
        &ZipLimits::DEFAULT,
        BAD,
        "not a valid zip",
    );
}
