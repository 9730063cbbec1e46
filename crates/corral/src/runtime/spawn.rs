//! Starting a process the way an init must: its own process group, a clean
//! signal state, the program's rlimits, and the program's user.
//!
//! Everything that can allocate or fail in a friendly way (user lookup, argv,
//! env) happens in the parent; the `pre_exec` hook between fork and exec only
//! makes async-signal-safe syscalls.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use corral_boot::user::Identity;
use nix::unistd::Pid;

use crate::config::{ProgramConfig, RlimitResource, Rlimits};

/// What to start.
pub struct SpawnSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
    pub user: Option<&'a str>,
    pub rlimits: &'a Rlimits,
    /// Pipe stdout/stderr back to corral (else they go to /dev/null).
    pub capture: bool,
}

impl<'a> SpawnSpec<'a> {
    /// `argv` run the way `cfg`'s program runs: its environment, directory,
    /// user and rlimits (the program itself, its pre_start and pre_stop, an
    /// exec readiness check).
    pub fn like(cfg: &'a ProgramConfig, argv: &'a [String], capture: bool) -> SpawnSpec<'a> {
        SpawnSpec {
            argv,
            env: &cfg.env,
            cwd: cfg.cwd.as_deref(),
            user: cfg.user.as_deref(),
            rlimits: &cfg.rlimits,
            capture,
        }
    }
}

/// A started process: its pid (= its process group id) and output pipes.
pub struct Started {
    pub pid: Pid,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

fn resource(r: RlimitResource) -> libc::__rlimit_resource_t {
    use RlimitResource::*;
    match r {
        Nofile => libc::RLIMIT_NOFILE,
        Nproc => libc::RLIMIT_NPROC,
        Core => libc::RLIMIT_CORE,
        Memlock => libc::RLIMIT_MEMLOCK,
        Stack => libc::RLIMIT_STACK,
        As => libc::RLIMIT_AS,
        Fsize => libc::RLIMIT_FSIZE,
        Cpu => libc::RLIMIT_CPU,
        Data => libc::RLIMIT_DATA,
        Rss => libc::RLIMIT_RSS,
        Msgqueue => libc::RLIMIT_MSGQUEUE,
        Nice => libc::RLIMIT_NICE,
        Rtprio => libc::RLIMIT_RTPRIO,
        Sigpending => libc::RLIMIT_SIGPENDING,
    }
}

/// Starts `spec` in a new process group. The caller records the pid before
/// the reaper can run again (both live on the runtime's one thread).
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<Started, String> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| "empty command".to_string())?;
    // The same resolution as corral-api's (`corral_boot::user`): a name or
    // uid with a passwd entry, or a bare uid without one.
    let identity = spec
        .user
        .map(Identity::resolve)
        .transpose()
        .map_err(|e| e.to_string())?;

    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    if let Some(id) = &identity {
        // What a login would set; the program's own `env` still wins below.
        cmd.envs(id.env());
    }
    cmd.envs(spec.env);
    if let Some(cwd) = spec.cwd {
        cmd.current_dir(cwd);
    }
    if spec.capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }

    let limits: Vec<(libc::__rlimit_resource_t, libc::rlimit)> = spec
        .rlimits
        .limits
        .iter()
        .map(|(r, (soft, hard))| {
            (
                resource(*r),
                libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                },
            )
        })
        .collect();
    let drop_to = identity.as_ref().and_then(Identity::dropper);

    // SAFETY: the hook runs in the child between fork and exec and only makes
    // async-signal-safe syscalls on data prepared above; it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            reset_signals();
            for (res, lim) in &limits {
                if libc::setrlimit(*res, lim) != 0 {
                    // Raising past the inherited hard limit needs
                    // CAP_SYS_RESOURCE, which containers usually drop. The
                    // point of a configured limit is to cap a huge one, so
                    // settle for the inherited hard limit as the ceiling.
                    let mut cur = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(*res, &mut cur);
                    let clamped = libc::rlimit {
                        rlim_cur: lim.rlim_cur.min(cur.rlim_max),
                        rlim_max: lim.rlim_max.min(cur.rlim_max),
                    };
                    if libc::setrlimit(*res, &clamped) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            if let Some(d) = &drop_to {
                d.apply()?;
            }
            Ok(())
        });
    }

    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    let pid = Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // Dropping a std Child neither waits nor kills: the reaper owns its status.
    drop(child);
    Ok(Started {
        pid,
        stdout,
        stderr,
    })
}

/// Default dispositions and an empty mask, so nothing corral (or tokio, or
/// whoever started corral) set up leaks into the program: ignored signals
/// survive exec.
///
/// The raw `rt_sigaction` syscall, not libc's `sigaction`: glibc refuses to
/// touch its reserved signals 32 and 33, yet an ignored 32 inherited from
/// corral's parent would otherwise reach every program.
///
/// Safety: only called in a freshly forked child, before exec.
unsafe fn reset_signals() {
    // The kernel's `struct sigaction`: handler, flags, restorer (x86) and an
    // 8-byte mask. All zero = SIG_DFL with no flags and an empty mask; on
    // architectures without the restorer field the trailing zeros are unread.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid pointer to a zeroed kernel sigaction; EINVAL for
        // signals the kernel does not have is harmless and ignored.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    // SAFETY: sigprocmask with a valid, emptied set.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}
