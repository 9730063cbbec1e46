//! `/recording/*` for real: corral as PID 1 runs Xvfb and the `recording`
//! program (`corral-api record`, which becomes Debian's ffmpeg) exactly as
//! supervisor.toml does (autostart off, restart never, stop signal INT);
//! the files are checked with ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

/// corral with Xvfb and the recording program; corral-api told where.
/// Gives the environment, corral's probe port (`/readyz`), and the scratch
/// directory of the parameters file (keep it alive with the environment).
fn env_with(min_free_mib: &str) -> (Env, u16, tempfile::TempDir) {
    env_on(min_free_mib, None, None)
}

/// As [`env_with`]; with `tmpfs = Some(size)` the recordings live on a
/// tmpfs of that size (`scratch/recordings`, mounted by a oneshot program
/// inside corral's own mount namespace, so it goes with it): a volume that
/// can really fill up. The test process does not see it; it reads through
/// the API.
/// `display`: what corral-api is told to record (default: Xvfb's).
fn env_on(
    min_free_mib: &str,
    tmpfs: Option<&str>,
    display: Option<&str>,
) -> (Env, u16, tempfile::TempDir) {
    let recorded = display.map(str::to_string);
    let display = free_display();
    let scratch = tempfile::tempdir().unwrap();
    let params = scratch.path().join("recording.json");
    let mut volume = String::new();
    let mut api_extra = Vec::new();
    if let Some(size) = tmpfs {
        let dir = scratch.path().join("recordings");
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.to_string_lossy().into_owned();
        volume = format!(
            "[programs.volume]\ncommand = {m}\noneshot = true\n\n",
            m = argv(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                &dir
            ])
        );
        api_extra = vec!["--recordings-dir".to_string(), dir];
    }
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n\n\
         [programs.recording]\ncommand = {r}\ndepends_on = [\"xvfb\"]\nautostart = false\n\
         restart = \"never\"\nstop_signal = \"INT\"\nstop_timeout = \"10s\"\n\n{volume}",
        x = argv(&[
            "Xvfb",
            &format!(":{display}"),
            "-screen",
            "0",
            &format!("{WIDTH}x{HEIGHT}x24"),
            "-nolisten",
            "tcp"
        ]),
        r = argv(&[api_bin(), "record", "--params", &params.to_string_lossy()]),
    );
    let mut api_args: Vec<String> = vec![
        "--display".into(),
        recorded.unwrap_or_else(|| format!(":{display}")),
        "--recording-params".into(),
        params.to_string_lossy().into(),
        // The scratch volume is whatever /tmp is: a small budget.
        "--recording-min-free-mib".into(),
        min_free_mib.into(),
    ];
    api_args.extend(api_extra);
    // corral's /readyz: a recording that ended must not leave it at 503.
    let probe_port = free_port();
    let env = Env::start(Setup {
        programs,
        api_args,
        supervisor: format!("http = \"127.0.0.1:{probe_port}\""),
        ..Setup::default()
    });
    (env, probe_port, scratch)
}

fn recordings(env: &Env) -> PathBuf {
    env.root.join("recordings")
}

fn entry(env: &Env, id: &str) -> Value {
    let list = env.get("/recording/list").expect(200).json();
    list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

/// corral's `/readyz` status: 200 once every wanted program is ready.
fn readyz(probe: u16) -> u16 {
    try_request(probe, "GET", "/readyz", &[], b"")
        .map(|r| r.status)
        .unwrap_or(0)
}

fn program_state(env: &Env) -> String {
    let list = env.get("/programs").expect(200).json();
    list["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "recording")
        .map(|p| p["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// ffprobe's view of an mp4: (width, height, duration in s, frames decoded).
fn probe(file: &Path) -> (u32, u32, f64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames:format=duration",
        ])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let num = |x: &Value| -> f64 { x.as_str().and_then(|s| s.parse().ok()).unwrap_or(-1.0) };
    (
        s["width"].as_u64().unwrap() as u32,
        s["height"].as_u64().unwrap() as u32,
        num(&v["format"]["duration"]),
        num(&s["nb_read_frames"]) as u64,
    )
}

fn start(env: &Env, body: Value) -> String {
    let r = env.post("/recording/start", &body).expect(200).json();
    assert_eq!(r["state"], "recording", "{r}");
    r["id"].as_str().unwrap().to_string()
}

/// Waits until the recording in progress has run `secs` seconds by its own
/// count (the list's duration) — a real condition, not a sleep.
fn wait_recorded(env: &Env, id: &str, secs: f64) {
    wait_until("the recording to run", Duration::from_secs(60), || {
        entry(env, id)["duration_s"].as_f64().unwrap() >= secs
    });
}

#[test]
fn a_five_second_recording_ends_by_itself_and_decodes_at_the_screen_size() {
    let (env, probe_port, _scratch) = env_with("64");
    let id = start(&env, json!({ "framerate": 10, "max_duration_s": 5 }));
    // ffmpeg stops itself at -t 5; the watcher then stops the program.
    wait_until("the recording to finish", Duration::from_secs(60), || {
        entry(&env, &id)["state"] == "finished"
    });
    let (w, h, duration, frames) = probe(&recordings(&env).join(format!("{id}.mp4")));
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!((duration - 5.0).abs() <= 0.5, "duration {duration}");
    assert!(frames >= 45, "{frames} frames at 10 fps in 5 s");
    // Ended by itself, the program is no longer wanted: corral is ready.
    wait_until("/readyz to answer 200", TIMEOUT, || {
        readyz(probe_port) == 200
    });
    assert!(env.get("/recording/list").expect(200).json()["active"].is_null());
}

#[test]
fn start_stop_list_download_delete_round_trip() {
    let (env, _, _scratch) = env_with("64");
    let t0 = std::time::Instant::now();
    let id = start(&env, json!({}));
    let e = entry(&env, &id);
    assert_eq!(e["framerate"], 10);
    assert_eq!(e["max_duration_s"], 600);
    assert_eq!(env.get("/recording/list").expect(200).json()["active"], id);
    // One at a time; a finished-only file cannot be fetched or deleted yet.
    let v = env.post("/recording/start", &json!({})).expect_error(409);
    assert!(v["detail"].as_str().unwrap().contains(&id), "{v}");
    // x11grab keeps the size it started with: a resize now is a 409 naming
    // the recording, and the screen keeps its size.
    let v = env
        .json("PATCH", "/display", &json!({ "width": 320, "height": 240 }))
        .expect_error(409);
    assert_eq!(v["error"], "recording in progress", "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&id), "{v}");
    let d = env.get("/display").expect(200).json();
    assert_eq!(
        (d["width"].clone(), d["height"].clone()),
        (json!(WIDTH), json!(HEIGHT))
    );
    env.get(&format!("/recording/download?id={id}"))
        .expect_error(409);
    env.post("/recording/delete", &json!({ "id": id }))
        .expect_error(409);
    wait_recorded(&env, &id, 3.0);
    let stopped = env
        .post("/recording/stop", &json!({ "id": id }))
        .expect(200)
        .json();
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(stopped["state"], "finished");
    let took = stopped["duration_s"].as_f64().unwrap();
    assert_eq!(program_state(&env), "STOPPED");
    env.post("/recording/stop", &json!({})).expect_error(409);

    let file = recordings(&env).join(format!("{id}.mp4"));
    let (w, h, duration, _) = probe(&file);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    // The entry gives the video's own duration; the video covers the time
    // between the start and the stop requests but ffmpeg's start-up (opening
    // the display and the encoder) and its finishing.
    assert!(
        (duration - took).abs() < 0.01,
        "video {duration}s, entry {took}s"
    );
    assert!(
        duration <= wall && duration >= wall - 1.5,
        "video {duration}s, {wall:.3}s from the start request to the stop answer"
    );
    let r = env.get(&format!("/recording/download?id={id}")).expect(200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.body, std::fs::read(&file).unwrap());
    assert_eq!(entry(&env, &id)["size_bytes"], r.body.len() as u64);

    env.post("/recording/delete", &json!({ "id": id }))
        .expect(200);
    assert!(!file.exists());
    assert_eq!(
        env.get("/recording/list").expect(200).json()["recordings"],
        json!([])
    );
    env.get(&format!("/recording/download?id={id}"))
        .expect_error(404);
    env.post("/recording/delete", &json!({ "id": id }))
        .expect_error(404);
    // A new recording after the old one: the program starts again.
    let id2 = start(&env, json!({ "framerate": 5 }));
    assert_ne!(id, id2);
    env.post("/recording/stop", &json!({})).expect(200);
}

#[test]
fn a_recording_killed_with_sigkill_still_decodes() {
    let (env, probe_port, _scratch) = env_with("64");
    let id = start(&env, json!({ "framerate": 10 }));
    wait_recorded(&env, &id, 3.0);
    env.ctl(&["signal", "KILL", "recording"]);
    wait_until("the recording to end", TIMEOUT, || {
        entry(&env, &id)["state"] != "recording"
    });
    let (w, h, duration, frames) = probe(&recordings(&env).join(format!("{id}.mp4")));
    assert_eq!((w, h), (WIDTH, HEIGHT));
    // Fragments of one second: all but the one being written survive.
    assert!(duration >= 1.5, "only {duration}s survived");
    assert!(frames >= 15, "{frames} frames");
    assert_eq!(entry(&env, &id)["state"], "finished");
    // Not wanted any more: an EXITED wanted program would keep /readyz at 503.
    wait_until("/readyz to answer 200", TIMEOUT, || {
        readyz(probe_port) == 200
    });
}

#[test]
fn a_recording_is_refused_when_the_disk_budget_is_too_small() {
    // More free space than any test machine has.
    let (env, _, _scratch) = env_with("1000000000");
    let v = env.post("/recording/start", &json!({})).expect_error(507);
    assert!(v["detail"].as_str().unwrap().contains("MiB free"), "{v}");
    assert_eq!(program_state(&env), "STOPPED");
    let dir = recordings(&env);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn bad_ids_and_bodies_are_refused_clearly() {
    let (env, _, _scratch) = env_with("64");
    std::fs::create_dir_all(recordings(&env)).unwrap();
    std::fs::write(env.root.join("secret.mp4"), b"not yours").unwrap();
    for id in ["../secret", "..%2Fsecret", "a%2Fb", "-x", "a.b"] {
        env.get(&format!("/recording/download?id={id}"))
            .expect_error(400);
    }
    env.get("/recording/download").expect_error(400);
    env.get("/recording/download?id=nope").expect_error(404);
    env.post("/recording/delete", &json!({ "id": "../secret" }))
        .expect_error(400);
    env.post("/recording/delete", &json!({})).expect_error(400);
    env.post("/recording/delete", &json!({ "id": "nope" }))
        .expect_error(404);
    assert!(env.root.join("secret.mp4").exists());
    // Planted through the fs root (a zip upload can make symlinks): a
    // recording that is a symlink to a file outside is not served, and
    // metadata naming another id is not listed.
    let meta = |id: &str| {
        json!({ "id": id, "started_at_unix": 1.0, "framerate": 10,
                "max_duration_s": 5, "max_bytes": 1 })
        .to_string()
    };
    std::os::unix::fs::symlink(
        env.outside.join("secret"),
        recordings(&env).join("evil.mp4"),
    )
    .unwrap();
    std::fs::write(recordings(&env).join("evil.json"), meta("evil")).unwrap();
    std::fs::write(
        recordings(&env).join("liar.json"),
        meta("../../outside/secret"),
    )
    .unwrap();
    let r = env.get("/recording/download?id=evil");
    assert!(!r.text().contains("outside the root"), "{}", r.text());
    r.expect_error(403);
    let listed = env.get("/recording/list").expect(200).json();
    let ids: Vec<&str> = listed["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evil"], "{listed}");
    // Deleting it removes the link, not what it points to.
    env.post("/recording/delete", &json!({ "id": "evil" }))
        .expect(200);
    assert!(env.outside.join("secret").exists());
    std::fs::remove_file(recordings(&env).join("liar.json")).unwrap();
    for body in [
        json!({ "framerate": 0 }),
        json!({ "framerate": 31 }),
        json!({ "max_duration_s": 0 }),
        json!({ "max_duration_s": 3601 }),
        json!({ "fps": 10 }),
        json!({ "framerate": "ten" }),
    ] {
        let v = env.post("/recording/start", &body).expect_error(400);
        assert!(v["detail"].is_string(), "{body}: {v}");
    }
    env.post("/recording/stop", &json!({})).expect_error(409);
    env.post("/recording/stop", &json!({ "id": "nope" }))
        .expect_error(404);
    assert_eq!(program_state(&env), "STOPPED");
    assert_eq!(
        std::fs::read_dir(recordings(&env)).unwrap().count(),
        0,
        "a refused start wrote something"
    );
    // A directory where a recording's file goes: deleting it is a 409.
    std::fs::create_dir(recordings(&env).join("odd.mp4")).unwrap();
    std::fs::write(recordings(&env).join("odd.json"), meta("odd")).unwrap();
    env.post("/recording/delete", &json!({ "id": "odd" }))
        .expect_error(409);
    std::fs::remove_dir_all(recordings(&env)).unwrap();
    // A client put a file where the directory goes (it is under the fs
    // root): a clear 409 naming it, for listing and for starting.
    std::fs::write(recordings(&env), b"not a directory").unwrap();
    for v in [
        env.get("/recording/list").expect_error(409),
        env.post("/recording/start", &json!({})).expect_error(409),
    ] {
        assert!(v["detail"].as_str().unwrap().contains("recordings"), "{v}");
    }
    assert_eq!(program_state(&env), "STOPPED");
}

/// A program's state in corral.
fn state_of(env: &Env, name: &str) -> String {
    let list = env.get("/programs").expect(200).json();
    list["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// Runs argv inside corral's namespace (where the tmpfs is) through the API.
fn exec(env: &Env, argv: &[&str]) -> Value {
    let r = env
        .post("/process/exec", &json!({ "argv": argv }))
        .expect(200)
        .json();
    assert_eq!(r["exit_code"], 0, "{argv:?}: {r}");
    r
}

#[test]
fn a_recording_stops_before_the_volume_fills_and_none_starts_on_a_full_one() {
    // 48 MiB volume, 24 MiB kept free: a start needs 24 + 16 MiB free.
    let (env, _, scratch) = env_on("24", Some("48m"), None);
    wait_until("the tmpfs to be mounted", TIMEOUT, || {
        state_of(&env, "volume") == "DONE"
    });
    let dir = scratch.path().join("recordings");
    let dir = dir.to_str().unwrap();
    let id = start(&env, json!({}));
    wait_recorded(&env, &id, 1.0);
    // Someone else fills the volume: 38 MiB leaves about 10 MiB free, under
    // half the budget. The watcher (every 500 ms) stops the recording.
    exec(&env, &["fallocate", "-l", "38M", &format!("{dir}/filler")]);
    wait_until("the recording to be stopped", TIMEOUT, || {
        entry(&env, &id)["state"] == "finished"
    });
    assert!(env.get("/recording/list").expect(200).json()["active"].is_null());
    // What it wrote still decodes (fetched through the API: the tmpfs is
    // only visible inside corral's namespace).
    let body = env
        .get(&format!("/recording/download?id={id}"))
        .expect(200)
        .body;
    let local = env.path("stopped.mp4");
    std::fs::write(&local, body).unwrap();
    let (w, h, duration, _) = probe(&local);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!(duration >= 0.9, "{duration}");
    // And now the volume is under the budget: refused, nothing written.
    let v = env.post("/recording/start", &json!({})).expect_error(507);
    assert!(v["detail"].as_str().unwrap().contains(dir), "{v}");
    let ls = exec(&env, &["ls", dir]);
    let names: Vec<&str> = ls["stdout"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(
        names.len(),
        3,
        "only the filler and one recording: {names:?}"
    );
}

#[test]
fn a_recorder_that_cannot_start_says_why_and_leaves_nothing() {
    // No X server answers on this display: ffmpeg's x11grab fails at once.
    let nowhere = format!(":{}", free_display());
    let (env, probe_port, _scratch) = env_on("64", None, Some(&nowhere));
    let v = env.post("/recording/start", &json!({})).expect_error(500);
    let detail = v["detail"].as_str().unwrap();
    eprintln!("refused as: {detail}");
    // The reason from corral and ffmpeg's own last lines (from corral's log).
    assert!(detail.contains("exited"), "{detail}");
    assert!(detail.contains(&nowhere), "{detail}");
    assert!(env.get("/recording/list").expect(200).json()["recordings"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(std::fs::read_dir(recordings(&env)).unwrap().count(), 0);
    // Not left "wanted" in corral either.
    wait_until("/readyz to answer 200", TIMEOUT, || {
        readyz(probe_port) == 200
    });
}
