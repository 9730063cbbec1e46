//! `corral-api chromium-launch --flags-file F --extensions-dir D -- chromium …`:
//! Chromium's command in supervisor.toml. It reads the kept flags and the
//! installed extensions from the volume, merges them into the command it
//! was given, and execs it (no shell; the pid stays the one corral
//! started, so stop signals and `kill_mode` reach Chromium itself).
//!
//! Because it runs on every start — corral's own restarts after a crash,
//! `/chromium/restart`, a container restart — what the API keeps is always
//! applied, and the API never has to edit supervisor.toml.
//!
//! Merging: a kept flag replaces the command's flags of the same name and
//! goes before the first non-switch argument (the start URL). Extensions
//! become one `--load-extension=dir,dir` (joined with any the command
//! already had), plus `DisableLoadExtensionCommandLineSwitch` in
//! `--disable-features`: Chrome 137+ ignores `--load-extension` without it
//! (Debian's Chromium 156 loads them either way; the switch is harmless).
//! A kept flag the API would refuse (the file is on the volume, where
//! `/fs/*` can write it) is dropped with a warning, and an unreadable file
//! means no kept flags: Chromium must still start.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::flags;

/// The feature that, from Chrome 137, makes Chromium ignore `--load-extension`.
pub const LOAD_EXTENSION_FEATURE: &str = "DisableLoadExtensionCommandLineSwitch";

/// Runs the launcher with `args` (after `chromium-launch`); returns only
/// when the exec failed or the arguments are wrong.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut flags_file: Option<PathBuf> = None;
    let mut ext_dir: Option<PathBuf> = None;
    let mut it = args.into_iter();
    let mut command: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--flags-file") => flags_file = it.next().map(PathBuf::from),
            Some("--extensions-dir") => ext_dir = it.next().map(PathBuf::from),
            Some("--") => {
                command = it.map(|a| a.to_string_lossy().into_owned()).collect();
                break;
            }
            _ => {
                eprintln!(
                    "corral-api chromium-launch: unexpected argument {a:?}\n\
                     usage: corral-api chromium-launch [--flags-file F] [--extensions-dir D] -- PROGRAM [ARGS…]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if command.is_empty() {
        eprintln!("corral-api chromium-launch: no command after --");
        return ExitCode::from(2);
    }
    let kept = flags_file.as_deref().map(kept_flags).unwrap_or_default();
    let exts = ext_dir.as_deref().map(extension_dirs).unwrap_or_default();
    let argv = build(&command, &kept, &exts);
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!("corral-api chromium-launch: cannot run {}: {err}", argv[0]);
    ExitCode::from(127)
}

/// The kept flags the API would accept; anything else is reported and left out.
fn kept_flags(file: &Path) -> Vec<String> {
    match flags::read(file) {
        Ok(all) => all
            .into_iter()
            .filter(|f| match flags::refusal(f) {
                None => true,
                Some(why) => {
                    eprintln!(
                        "corral-api chromium-launch: ignoring kept flag from {}: {why}",
                        file.display()
                    );
                    false
                }
            })
            .collect(),
        Err(e) => {
            eprintln!(
                "corral-api chromium-launch: ignoring {}: {e}",
                file.display()
            );
            Vec::new()
        }
    }
}

/// Installed extensions: each directory of `dir` holding a manifest.json,
/// by name (names starting with "." are the API's work in progress).
pub fn extension_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && !n.contains(',') && e.path().join("manifest.json").is_file()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// `command` with the kept flags and extensions merged in.
pub fn build(command: &[String], kept: &[String], exts: &[PathBuf]) -> Vec<String> {
    let (program, rest) = command.split_first().expect("a program");
    let mut loads: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    for a in rest {
        if let Some(v) = a.strip_prefix("--load-extension=") {
            loads.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        } else if !(is_switch(a) && kept.iter().any(|k| flags::name(k) == flags::name(a))) {
            args.push(a.clone());
        }
    }
    loads.extend(exts.iter().map(|p| p.to_string_lossy().into_owned()));
    let mut extra: Vec<String> = kept.to_vec();
    if !loads.is_empty() {
        extra.push(format!("--load-extension={}", loads.join(",")));
        let all = args.iter_mut().chain(extra.iter_mut());
        match all.filter(|a| a.starts_with("--disable-features=")).last() {
            Some(d) if d.split([',', '=']).any(|f| f == LOAD_EXTENSION_FEATURE) => {}
            Some(d) => {
                if !d.ends_with('=') {
                    d.push(',');
                }
                d.push_str(LOAD_EXTENSION_FEATURE);
            }
            None => extra.push(format!("--disable-features={LOAD_EXTENSION_FEATURE}")),
        }
    }
    let at = args
        .iter()
        .position(|a| !is_switch(a))
        .unwrap_or(args.len());
    args.splice(at..at, extra);
    std::iter::once(program.clone()).chain(args).collect()
}

fn is_switch(a: &str) -> bool {
    a.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kept_flags_replace_by_name_before_the_url() {
        let cmd = v(&["chromium", "--no-sandbox", "--lang=en", "about:blank"]);
        assert_eq!(
            build(&cmd, &v(&["--lang=fr", "--kiosk"]), &[]),
            v(&[
                "chromium",
                "--no-sandbox",
                "--lang=fr",
                "--kiosk",
                "about:blank"
            ])
        );
        assert_eq!(build(&cmd, &[], &[]), cmd);
    }

    #[test]
    fn extensions_are_loaded_with_the_feature_switch() {
        let cmd = v(&["chromium", "--load-extension=/a", "about:blank"]);
        let exts = [PathBuf::from("/e/one"), PathBuf::from("/e/two")];
        assert_eq!(
            build(&cmd, &[], &exts),
            v(&[
                "chromium",
                "--load-extension=/a,/e/one,/e/two",
                "--disable-features=DisableLoadExtensionCommandLineSwitch",
                "about:blank"
            ])
        );
        // An existing --disable-features (here a kept one) gets it appended.
        let out = build(&cmd, &v(&["--disable-features=Foo"]), &exts[..1]);
        assert!(
            out.contains(&"--disable-features=Foo,DisableLoadExtensionCommandLineSwitch".into())
        );
        assert_eq!(
            out.iter()
                .filter(|a| a.starts_with("--disable-features"))
                .count(),
            1
        );
    }

    #[test]
    fn extension_dirs_need_a_manifest() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b", "a", ".incoming-x", "nomanifest"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        for n in ["b", "a", ".incoming-x"] {
            std::fs::write(d.path().join(n).join("manifest.json"), "{}").unwrap();
        }
        assert_eq!(
            extension_dirs(d.path()),
            vec![d.path().join("a"), d.path().join("b")]
        );
        assert!(extension_dirs(&d.path().join("missing")).is_empty());
    }
}
