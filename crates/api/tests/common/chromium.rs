//! A real Chromium for the `/chromium/*` tests: Xvfb and Chromium (started
//! through `corral-api chromium-launch`, exactly as supervisor.toml does)
//! under corral, corral-api configured with the kept flags file and the
//! extensions directory. What Chromium really runs with is read from the
//! host's /proc (the browser process is the one whose command line names
//! this test's profile and has no `--type=`), independently of what the
//! API says.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// Debian's Chromium as every test here runs it: `--no-sandbox` (tests run
/// as root), no GPU, no background traffic or first-run UI, cookies
/// unencrypted (no keyring). Each test adds its port, profile and page.
pub const CHROMIUM: &[&str] = &[
    "chromium",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
];

/// Xvfb + Chromium (through the launcher) + corral-api configured for
/// kept flags and extensions (in a scratch directory of their own).
pub struct Browser {
    pub env: Env,
    pub cdp: u16,
    pub profile: PathBuf,
    pub flags_file: PathBuf,
    pub ext_dir: PathBuf,
    _profile_dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

pub fn start() -> Browser {
    let cdp = free_port();
    let display = free_display();
    let profile_dir = tempfile::Builder::new()
        .prefix("corral-chromium-it-")
        .tempdir()
        .unwrap();
    let profile = profile_dir.path().to_path_buf();
    // The fs root is made by Env; these paths are fixed before it exists
    // (corral-api and the launcher create what is missing).
    let state = tempfile::Builder::new()
        .prefix("corral-chromium-state-")
        .tempdir()
        .unwrap();
    let scratch = state.path();
    let flags_file = scratch.join("state/chromium-flags.json");
    let ext_dir = scratch.join("extensions");
    let mut launch: Vec<&str> = vec![
        api_bin(),
        "chromium-launch",
        "--flags-file",
        flags_file.to_str().unwrap(),
        "--extensions-dir",
        ext_dir.to_str().unwrap(),
        "--",
    ];
    launch.extend(CHROMIUM);
    let (port_flag, dir_flag) = (
        format!("--remote-debugging-port={cdp}"),
        format!("--user-data-dir={}", profile.display()),
    );
    launch.extend([port_flag.as_str(), dir_flag.as_str(), "about:blank"]);
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n\n\
         [programs.chromium]\ncommand = {c}\nenv = {{ DISPLAY = \":{display}\" }}\nbinds_to = [\"xvfb\"]\n\
         ready = {{ tcp = \"127.0.0.1:{cdp}\", timeout = \"60s\" }}\nstop_signal = \"TERM\"\nstop_timeout = \"15s\"\n\
         backoff = {{ initial = \"100ms\", max = \"1s\" }}\n",
        x = argv(&["Xvfb", &format!(":{display}"), "-screen", "0", "1280x720x24", "-nolisten", "tcp"]),
        c = argv(&launch),
    );
    let env = Env::start(Setup {
        programs,
        api_args: vec![
            "--cdp".into(),
            format!("http://127.0.0.1:{cdp}"),
            "--chromium-flags-file".into(),
            flags_file.to_string_lossy().into(),
            "--chromium-extensions-dir".into(),
            ext_dir.to_string_lossy().into(),
        ],
        ..Setup::default()
    });
    wait_for("Chromium's DevTools", Duration::from_secs(90), || {
        cdp_get(cdp, "/json/version")
    });
    Browser {
        env,
        cdp,
        profile,
        flags_file,
        ext_dir,
        _profile_dir: profile_dir,
        _state: state,
    }
}

pub fn cdp_get(port: u16, path: &str) -> Option<Value> {
    let r = try_request(port, "GET", path, &[], b"").ok()?;
    (r.status == 200).then(|| r.json())
}

impl Browser {
    /// The browser process on the host: (pid, argv).
    pub fn process(&self) -> Option<(i32, Vec<String>)> {
        let needle = format!("--user-data-dir={}", self.profile.display());
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.contains(&needle) && !args.iter().any(|a| a.starts_with("--type=")) {
                // The launcher execs the Debian wrapper, which execs the
                // real binary: only the final binary counts.
                if args[0].contains("chromium") && !args[0].ends_with("corral-api") {
                    return Some((pid, args));
                }
            }
        }
        None
    }

    pub fn browser(&self) -> (i32, Vec<String>) {
        wait_for("the browser process", TIMEOUT, || self.process())
    }

    pub fn patch(&self, body: &Value) -> Resp {
        self.env.json("PATCH", "/chromium/flags", body)
    }
}

pub fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}
