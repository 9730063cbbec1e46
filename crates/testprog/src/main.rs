//! `corral-testprog`: a small program whose behaviour is scripted by its argv,
//! used as the supervised program in corral's integration tests and benchmarks.
//!
//! The arguments are a sequence of steps run in order, for example
//! `corral-testprog print hello delay 50 listen 127.0.0.1:7001 wait`.
//! Written with libc only so it starts in well under a millisecond: start-up
//! time of the test program must not hide the supervisor's own latency.
//!
//! Steps:
//! - `print TEXT` / `eprint TEXT`: a line on stdout / stderr
//! - `delay MS`: simulate start-up work (this is the program, not a readiness wait)
//! - `listen ADDR`: bind and listen on a TCP address (accepts happen in `wait`)
//! - `unix PATH`: bind and listen on a unix socket
//! - `touch PATH`: create a file
//! - `append PATH TEXT`: append a line (`$PID` in TEXT becomes the pid)
//! - `limits PATH`: copy /proc/self/limits to PATH
//! - `ignore-term`: ignore SIGTERM
//! - `on-term PATH TEXT`: on SIGTERM append TEXT to PATH and exit 0
//! - `children N`: fork N children that stay in the process group and pause
//! - `orphans N`: double-fork N grandchildren that exit at once (orphans to reap)
//! - `spam BYTES`: write BYTES of output without a newline
//! - `exit CODE`: exit now with CODE
//! - `kill SIG`: send SIG to itself
//! - `wait`: serve accepts on the listeners (or pause) until a signal ends it

use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicPtr, Ordering};

static ON_TERM: AtomicPtr<(CString, Vec<u8>)> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_term(_: libc::c_int) {
    let p = ON_TERM.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the pointer was leaked from a Box and is never freed; open,
        // write and _exit are async-signal-safe.
        unsafe {
            let (path, text) = &*p;
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
                0o644,
            );
            if fd >= 0 {
                libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
            }
        }
    }
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn fail(msg: &str) -> ! {
    eprintln!("corral-testprog: {msg}");
    std::process::exit(100);
}

fn arg(args: &mut impl Iterator<Item = String>, step: &str) -> String {
    args.next()
        .unwrap_or_else(|| fail(&format!("{step} needs an argument")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut listeners: Vec<std::net::TcpListener> = Vec::new();
    let mut unix_listeners: Vec<std::os::unix::net::UnixListener> = Vec::new();
    let pid = std::process::id();
    while let Some(step) = args.next() {
        match step.as_str() {
            "print" => {
                println!("{}", arg(&mut args, "print"));
                let _ = std::io::stdout().flush();
            }
            "eprint" => eprintln!("{}", arg(&mut args, "eprint")),
            "delay" => {
                let ms: u64 = arg(&mut args, "delay")
                    .parse()
                    .unwrap_or_else(|_| fail("delay MS"));
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            "listen" => {
                let addr = arg(&mut args, "listen");
                let l = std::net::TcpListener::bind(&addr)
                    .unwrap_or_else(|e| fail(&format!("listen {addr}: {e}")));
                listeners.push(l);
            }
            "unix" => {
                let path = arg(&mut args, "unix");
                let _ = std::fs::remove_file(&path);
                let l = std::os::unix::net::UnixListener::bind(&path)
                    .unwrap_or_else(|e| fail(&format!("unix {path}: {e}")));
                unix_listeners.push(l);
            }
            "touch" => {
                let path = arg(&mut args, "touch");
                std::fs::write(&path, b"").unwrap_or_else(|e| fail(&format!("touch {path}: {e}")));
            }
            "append" => {
                let path = arg(&mut args, "append");
                let text = arg(&mut args, "append").replace("$PID", &pid.to_string());
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap_or_else(|e| fail(&format!("append {path}: {e}")));
                let _ = writeln!(f, "{text}");
            }
            "limits" => {
                let path = arg(&mut args, "limits");
                let limits = std::fs::read("/proc/self/limits").unwrap_or_default();
                std::fs::write(&path, limits)
                    .unwrap_or_else(|e| fail(&format!("limits {path}: {e}")));
            }
            "ignore-term" => {
                // SAFETY: setting a disposition to SIG_IGN has no preconditions.
                unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            }
            "on-term" => {
                let path = CString::new(arg(&mut args, "on-term")).unwrap();
                let text = format!("{}\n", arg(&mut args, "on-term")).into_bytes();
                ON_TERM.store(Box::into_raw(Box::new((path, text))), Ordering::SeqCst);
                // SAFETY: on_term only calls async-signal-safe functions.
                unsafe {
                    libc::signal(
                        libc::SIGTERM,
                        on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
                    )
                };
            }
            "children" => {
                let n: u32 = arg(&mut args, "children")
                    .parse()
                    .unwrap_or_else(|_| fail("children N"));
                for _ in 0..n {
                    // SAFETY: the child only calls pause/_exit.
                    match unsafe { libc::fork() } {
                        0 => loop {
                            // SAFETY: pause has no preconditions.
                            unsafe { libc::pause() };
                        },
                        -1 => fail("fork failed"),
                        _ => {}
                    }
                }
            }
            "orphans" => {
                let n: u32 = arg(&mut args, "orphans")
                    .parse()
                    .unwrap_or_else(|_| fail("orphans N"));
                for _ in 0..n {
                    // SAFETY: the children only call fork/_exit/waitpid.
                    unsafe {
                        match libc::fork() {
                            0 => {
                                if libc::fork() == 0 {
                                    libc::_exit(0);
                                }
                                libc::_exit(0);
                            }
                            -1 => fail("fork failed"),
                            child => {
                                libc::waitpid(child, std::ptr::null_mut(), 0);
                            }
                        }
                    }
                }
            }
            "spam" => {
                let n: usize = arg(&mut args, "spam")
                    .parse()
                    .unwrap_or_else(|_| fail("spam BYTES"));
                let chunk = vec![b'x'; 64 * 1024];
                let mut out = std::io::stdout().lock();
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if out.write_all(&chunk[..k]).is_err() {
                        break;
                    }
                    left -= k;
                }
                let _ = out.flush();
            }
            "exit" => {
                let code: i32 = arg(&mut args, "exit")
                    .parse()
                    .unwrap_or_else(|_| fail("exit CODE"));
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            "kill" => {
                let sig: i32 = arg(&mut args, "kill")
                    .parse()
                    .unwrap_or_else(|_| fail("kill SIG"));
                // SAFETY: sending a signal to ourselves.
                unsafe { libc::kill(pid as i32, sig) };
            }
            "wait" => serve(listeners, unix_listeners),
            other => fail(&format!("unknown step {other:?}")),
        }
    }
}

/// Accepts and closes connections forever; with nothing to accept, pauses.
fn serve(
    listeners: Vec<std::net::TcpListener>,
    unix_listeners: Vec<std::os::unix::net::UnixListener>,
) -> ! {
    for l in listeners {
        std::thread::spawn(move || loop {
            let _ = l.accept();
        });
    }
    for l in unix_listeners {
        std::thread::spawn(move || loop {
            let _ = l.accept();
        });
    }
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}
