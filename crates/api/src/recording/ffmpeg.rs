//! What the supervised `recording` program runs: `corral-api record
//! --params FILE` reads the parameters corral-api wrote for this recording
//! and replaces itself with Debian's ffmpeg (exec, same pid), so corral's
//! stop signal (SIGINT) reaches ffmpeg itself, which then finalises the
//! file. The parameters are data, never a command line: the argv is built
//! here, so whoever can write the file can choose a size or a frame rate,
//! not a program.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One recording's parameters, as corral-api writes them for the program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub id: String,
    /// The X display to capture (`:99`).
    pub display: String,
    /// The mp4 to write; must not exist yet (ffmpeg `-n`).
    pub output: PathBuf,
    pub framerate: u32,
    /// ffmpeg stops by itself after this long (`-t`).
    pub max_duration_s: u64,
    /// ffmpeg stops by itself once the file reaches this size (`-fs`),
    /// computed from the volume's free space minus the budget kept free.
    pub max_bytes: u64,
}

/// ffmpeg's argv (without `ffmpeg` itself) for `p`.
///
/// - x11grab of the whole screen at its size when the recording starts
///   (a resize during a recording is refused by `PATCH /display`);
/// - libx264 `ultrafast` + `zerolatency`: the cheapest CPU per frame, and
///   no B-frames held back, so every fragment is complete when written;
/// - a keyframe every second (`-g` = frame rate) and a fragmented mp4
///   (`frag_keyframe+empty_moov+default_base_moof`): each second is a
///   self-contained fragment, so a SIGKILL or a crash leaves a file that
///   plays up to the last whole second (`-flush_packets 1` writes each
///   fragment out at once);
/// - `crop` to even dimensions, which yuv420p needs (an odd screen loses
///   its last column or row).
pub fn argv(p: &Params) -> Vec<String> {
    let fps = p.framerate.to_string();
    [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-f",
        "x11grab",
        "-draw_mouse",
        "1",
        "-framerate",
        &fps,
        "-i",
        &p.display,
        "-vf",
        "crop=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &fps,
        "-t",
        &p.max_duration_s.to_string(),
        "-fs",
        &p.max_bytes.to_string(),
        "-movflags",
        "+frag_keyframe+empty_moov+default_base_moof",
        // Each fragment reaches the file when it is made: otherwise
        // ffmpeg's 32 KiB write buffer holds seconds of an idle screen,
        // which a SIGKILL would lose (measured: only the ftyp survived).
        "-flush_packets",
        "1",
        "-f",
        "mp4",
        "-n",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(p.output.to_string_lossy().into_owned()))
    .collect()
}

/// Reads the parameters file.
pub fn read_params(path: &Path) -> Result<Params, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `corral-api record --params FILE`: exec ffmpeg; returns only on error
/// (the message to print, exit status 1 or 2).
pub fn record_main(args: &[String]) -> (i32, String) {
    let file = match args {
        [flag, file] if flag == "--params" => file,
        _ => return (2, "usage: corral-api record --params FILE".into()),
    };
    let params = match read_params(Path::new(file)) {
        Ok(p) => p,
        Err(e) => return (2, format!("cannot read the recording parameters: {e}")),
    };
    use std::os::unix::process::CommandExt;
    // `CORRAL_FFMPEG` lets a test or an image point at another build.
    let ffmpeg = std::env::var("CORRAL_FFMPEG").unwrap_or_else(|_| "ffmpeg".into());
    let mut cmd = std::process::Command::new(&ffmpeg);
    cmd.args(argv(&params));
    // ffmpeg has no use for the listeners' tokens in the container's
    // environment (as for commands run through /process/*).
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CORRAL_") && n.ends_with("_TOKEN") {
            cmd.env_remove(&name);
        }
    }
    let e = cmd.exec();
    (1, format!("cannot run {ffmpeg}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argv_bounds_the_recording_and_fragments_the_file() {
        let p = Params {
            id: "r1".into(),
            display: ":42".into(),
            output: "/data/recordings/r1.mp4".into(),
            framerate: 10,
            max_duration_s: 30,
            max_bytes: 1_000_000,
        };
        let a = argv(&p).join(" ");
        assert!(a.contains("-f x11grab"), "{a}");
        assert!(a.contains("-framerate 10 -i :42"), "{a}");
        assert!(a.contains("-t 30 -fs 1000000"), "{a}");
        assert!(a.contains("+frag_keyframe+empty_moov"), "{a}");
        assert!(a.ends_with("-n /data/recordings/r1.mp4"), "{a}");
    }

    #[test]
    fn params_refuse_unknown_fields() {
        let bad = br#"{"id":"x","display":":1","output":"/x","framerate":1,"max_duration_s":1,"max_bytes":1,"argv":["sh"]}"#;
        assert!(serde_json::from_slice::<Params>(bad).is_err());
    }
}
