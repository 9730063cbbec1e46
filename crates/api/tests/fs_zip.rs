//! `/fs/upload_zip` and `/fs/download_dir_zip` over HTTP against the real
//! corral-api under corral, with `--fs-root` set: every zip attack (a
//! crafted archive each) and every zip bomb, after which the whole scratch
//! directory — the fs root and a sibling directory outside it — must be
//! unchanged byte for byte; and a directory's round trip through both.

mod common;

use std::io::{Cursor, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::*;

/// The tree every archive attack runs against: `root/dest` holds a file,
/// a directory, a symlink to it, and a symlink leading outside the root.
fn zip_world() -> Env {
    let env = Env::start(Setup::default());
    let dest = env.root.join("dest");
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::write(dest.join("keep.txt"), "keep\n").unwrap();
    std::fs::write(dest.join("sub/inner.txt"), "inner\n").unwrap();
    symlink("sub", dest.join("inlink")).unwrap();
    symlink("../../outside", dest.join("out")).unwrap();
    symlink(&env.outside, dest.join("absout")).unwrap();
    env
}

/// Posts `zip`, expects `status`, and checks nothing changed anywhere.
#[track_caller]
fn rejected(env: &Env, what: &str, dest: &str, zip: &[u8], status: u16) -> String {
    let before = world(env);
    let r = upload_zip(env, dest, zip);
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let v = r.expect_error(status);
    let after = world(env);
    assert_eq!(
        after, before,
        "{what}: a rejected archive changed the files"
    );
    v["detail"].as_str().unwrap().to_string()
}

#[test]
fn fs_zip_attacks_are_refused_and_write_nothing() {
    let env = zip_world();
    let ok = E::File("ok.txt", b"a valid entry before the bad one\n");
    let secret_path = format!("{}/pwn", env.outside.display());
    let cases: Vec<(&str, Vec<E>)> = vec![
        (
            "absolute path",
            vec![E::File("ok.txt", b"x"), E::File("/abs.txt", b"pwn")],
        ),
        ("absolute path outside", vec![E::File(&secret_path, b"pwn")]),
        (
            "dot-dot",
            vec![
                E::File("ok.txt", b"x"),
                E::File("../../outside/pwn", b"pwn"),
            ],
        ),
        ("dot-dot after a name", vec![E::File("a/../../pwn", b"pwn")]),
        ("dot-dot inside", vec![E::File("a/../b.txt", b"pwn")]),
        ("backslash", vec![E::File("..\\..\\pwn", b"pwn")]),
        (
            "through an existing symlink out",
            vec![E::File("ok.txt", b"x"), E::File("out/pwn", b"pwn")],
        ),
        (
            "through an existing absolute symlink",
            vec![E::File("absout/pwn", b"pwn")],
        ),
        (
            "through an existing symlink in",
            vec![E::File("inlink/pwn", b"pwn")],
        ),
        (
            "through an earlier symlink entry",
            vec![E::Dir("d/"), E::Link("l", "d"), E::File("l/pwn", b"pwn")],
        ),
        (
            "through a later symlink entry",
            vec![E::File("l/pwn", b"pwn"), E::Dir("d/"), E::Link("l", "d")],
        ),
        (
            "through an earlier symlink entry out",
            vec![E::Link("l", "../../outside"), E::File("l/pwn", b"pwn")],
        ),
        (
            "symlink to an absolute path",
            vec![ok, E::Link("s", "/etc/passwd")],
        ),
        (
            "symlink climbing out",
            vec![E::Link("s", "../../outside/secret")],
        ),
        ("symlink climbing above dest", vec![E::Link("s", "../x")]),
        (
            "symlink with .. after a name",
            vec![E::Dir("a/"), E::Link("s", "a/../../x")],
        ),
        (
            "symlink through an existing symlink",
            vec![E::Link("s", "out/secret")],
        ),
        (
            "a file through a file",
            vec![E::File("f", b"x"), E::File("f/pwn", b"pwn")],
        ),
        (
            "duplicate names",
            vec![E::File("a.txt", b"1"), E::File("./a.txt", b"2")],
        ),
    ];
    for (what, entries) in &cases {
        let detail = rejected(&env, what, "dest", &zip_of(entries), 400);
        assert!(detail.contains("nothing was extracted"), "{what}: {detail}");
    }
    // Clashes with what is there: 409.
    let clashes: Vec<(&str, Vec<E>)> = vec![
        (
            "a file through an existing file",
            vec![E::File("ok.txt", b"x"), E::File("keep.txt/pwn", b"pwn")],
        ),
        (
            "a file over an existing directory",
            vec![E::File("ok.txt", b"x"), E::File("sub", b"pwn")],
        ),
        (
            "a directory over an existing file",
            vec![E::File("ok.txt", b"x"), E::Dir("keep.txt/")],
        ),
    ];
    for (what, entries) in &clashes {
        let detail = rejected(&env, what, "dest", &zip_of(entries), 409);
        assert!(detail.contains("nothing was extracted"), "{what}: {detail}");
    }
    // The same into a destination that does not exist yet: the directories
    // made for it go again.
    rejected(
        &env,
        "new dest",
        "new/deeper",
        &zip_of(&[E::File("ok", b"x"), E::File("/abs", b"y")]),
        400,
    );
    // A destination that is itself a way out.
    rejected(
        &env,
        "dest through a symlink",
        "dest/out",
        &zip_of(&[E::File("pwn", b"x")]),
        403,
    );
    rejected(
        &env,
        "dest with ..",
        "../outside",
        &zip_of(&[E::File("pwn", b"x")]),
        403,
    );
    // Not a zip; a wrong media type.
    rejected(&env, "not a zip", "dest", b"this is not a zip archive", 400);
    let before = world(&env);
    let r = env.call(
        "POST",
        "/fs/upload_zip?dest=dest",
        &[("Content-Type", "text/plain")],
        &zip_of(&[E::File("a", b"b")]),
    );
    r.expect_error(415);
    assert_eq!(world(&env), before);
    assert_eq!(
        std::fs::read_to_string(env.outside.join("secret")).unwrap(),
        "outside the root\n"
    );
}

#[test]
fn fs_zip_bombs_are_refused_and_write_nothing() {
    let env = zip_world();
    // More entries than the limit (10 000).
    let names: Vec<String> = (0..10_001).map(|i| format!("f{i}")).collect();
    let entries: Vec<E> = names.iter().map(|n| E::File(n, b"")).collect();
    let detail = rejected(&env, "too many entries", "dest", &zip_of(&entries), 413);
    assert!(detail.contains("10000"), "{detail}");
    // Declared sizes above the limit (4 GiB in all): two entries claiming
    // 3.75 GiB each.
    let z = declare_sizes(
        zip_of(&[E::File("a", b"aa"), E::File("b", b"bb")]),
        0,
        0xF000_0000,
    );
    rejected(&env, "declared bytes", "dest", &z, 413);
    // Declared sizes that lie: 1 KiB claimed, 64 MiB of zeros inside. The
    // extraction stops at the declared size and throws everything away.
    let zeros = vec![0u8; 64 << 20];
    let z = declare_sizes(
        zip_of(&[E::File("ok.txt", b"fine"), E::File("bomb", &zeros)]),
        1,
        1024,
    );
    assert!(z.len() < 1 << 20, "the bomb is small: {}", z.len());
    rejected(&env, "lying sizes", "dest", &z, 413);
    // No staging directory left behind anywhere.
    let leftovers: Vec<_> = world(&env)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".corral-unzip"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn fs_zip_upload_and_download_round_trip() {
    let env = zip_world();
    let z = zip_of(&[
        E::Dir("pkg/"),
        E::File("pkg/a.txt", b"alpha\n"),
        E::Exec("pkg/run.sh", b"#!/bin/sh\necho hi\n"),
        E::File("pkg/deep/er/b.bin", &[0, 1, 2, 255]),
        E::Link("pkg/link", "a.txt"),
        E::Link("pkg/deep/up", "../a.txt"),
    ]);
    let v = upload_zip(&env, "dest/unpacked", &z).expect(200).json();
    assert_eq!(v["entries"], 6, "{v}");
    assert_eq!(v["bytes"], 6 + 18 + 4, "{v}");
    let base = env.root.join("dest/unpacked/pkg");
    assert_eq!(std::fs::read(base.join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(
        std::fs::read(base.join("deep/er/b.bin")).unwrap(),
        [0, 1, 2, 255]
    );
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&base.join("a.txt")), 0o644);
    assert_eq!(mode(&base.join("run.sh")), 0o755);
    assert_eq!(mode(&base.join("deep")), 0o755);
    assert_eq!(
        std::fs::read_link(base.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(
        std::fs::read_to_string(base.join("deep/up")).unwrap(),
        "alpha\n"
    );

    // Download it again as a zip and compare.
    let r = env
        .get("/fs/download_dir_zip?path=/dest/unpacked/pkg")
        .expect(200);
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"pkg.zip\"")
    );
    let mut a = zip::ZipArchive::new(Cursor::new(r.body)).expect("a valid zip");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..a.len() {
        let mut f = a.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    assert_eq!(
        files.get("a.txt").map(Vec::as_slice),
        Some(&b"alpha\n"[..]),
        "{:?}",
        files.keys()
    );
    assert_eq!(
        files.get("deep/er/b.bin").map(Vec::as_slice),
        Some(&[0u8, 1, 2, 255][..])
    );
    assert!(files.contains_key("run.sh"));
    // A second upload of the same archive over it: files are replaced.
    upload_zip(&env, "dest/unpacked", &z).expect(200);
    // Downloading a file, a missing dir, or an escape.
    env.get("/fs/download_dir_zip?path=/dest/keep.txt")
        .expect_error(400);
    env.get("/fs/download_dir_zip?path=/missing")
        .expect_error(404);
    env.get("/fs/download_dir_zip?path=/dest/out")
        .expect_error(403);
}
