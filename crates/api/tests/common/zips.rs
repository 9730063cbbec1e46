//! Crafted zip archives for the `/fs` tests: entries written exactly as
//! given (absolute names, `..`, symlinks — whatever an attacker would), the
//! sizes an archive declares rewritten at will, and the upload call.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

use super::{enc, Env, Resp};

pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Exec(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

/// A zip of these entries, in this order, names exactly as given (the zip
/// crate writes whatever name it is handed: absolute, `..`, anything).
pub fn zip_of(entries: &[E]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for e in entries {
        match e {
            E::File(name, data) => {
                w.start_file(*name, opts.unix_permissions(0o644)).unwrap();
                w.write_all(data).unwrap();
            }
            E::Exec(name, data) => {
                w.start_file(*name, opts.unix_permissions(0o755)).unwrap();
                w.write_all(data).unwrap();
            }
            E::Dir(name) => w.add_directory(*name, opts).unwrap(),
            E::Link(name, target) => w.add_symlink(*name, *target, opts).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

/// Offsets of every local (`PK\3\4`) and central (`PK\1\2`) header.
pub fn headers(z: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let find = |sig: &[u8]| -> Vec<usize> {
        z.windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sig)
            .map(|(i, _)| i)
            .collect()
    };
    (find(b"PK\x03\x04"), find(b"PK\x01\x02"))
}

/// Rewrites the declared uncompressed size of the entries from `first` on
/// (local and central headers): the sizes an archive claims are the
/// attacker's to pick.
pub fn declare_sizes(mut z: Vec<u8>, first: usize, size: u32) -> Vec<u8> {
    let (locals, centrals) = headers(&z);
    for l in locals.into_iter().skip(first) {
        z[l + 22..l + 26].copy_from_slice(&size.to_le_bytes());
    }
    for c in centrals.into_iter().skip(first) {
        z[c + 24..c + 28].copy_from_slice(&size.to_le_bytes());
    }
    z
}

pub fn upload_zip(env: &Env, dest: &str, zip: &[u8]) -> Resp {
    env.call(
        "POST",
        &format!("/fs/upload_zip?dest={}", enc(dest)),
        &[("Content-Type", "application/zip")],
        zip,
    )
}
