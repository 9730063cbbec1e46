//! The control socket file: mode 0600 in a directory created on demand, a
//! stale socket replaced, a live one (another corral) and a non-socket left
//! alone with corral refusing to start.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::*;

fn config(socket: &Path, program: &str, marker: &str) -> String {
    format!(
        "[supervisor]\ncontrol_socket = {}\n\n[programs.{program}]\ncommand = {}\n",
        q(&socket.to_string_lossy()),
        tp(&["touch", marker, "wait"]),
    )
}

#[test]
fn the_socket_is_0600_in_a_directory_created_for_it() {
    let s = Scratch::new();
    let socket = s.path("run/corral/deeper/control.sock");
    assert!(!s.path("run").exists());
    let mut c = s.start(&config(&socket, "a", &s.p("a-ran")));
    c.wait_event("started", Some("a"), TIMEOUT);

    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode {:o}", meta.mode());
    assert!(s.path("run/corral/deeper").is_dir());
    ctl(&socket, &["status", "a"]).ok();

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn a_stale_socket_is_replaced() {
    let s = Scratch::new();
    // What a killed corral leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(s.socket()).unwrap());
    let stale = std::fs::symlink_metadata(s.socket()).unwrap();
    assert!(stale.file_type().is_socket());
    ctl(&s.socket(), &["status"]).expect(3);

    let mut c = s.start(&config(&s.socket(), "a", &s.p("a-ran")));
    c.wait_event("started", Some("a"), TIMEOUT);
    let fresh = std::fs::symlink_metadata(s.socket()).unwrap();
    assert_eq!(fresh.mode() & 0o7777, 0o600);
    // The same path that refused connections now answers (inode numbers
    // are reused on tmpfs, so they prove nothing).
    let out = s.ctl(&["status"]).ok();
    assert!(out.stdout.contains("RUNNING"), "{out:?}");

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn a_second_corral_on_a_live_socket_refuses_to_start() {
    let s = Scratch::new();
    let mut first = s.start(&config(&s.socket(), "a", &s.p("a-ran")));
    first.wait_event("started", Some("a"), TIMEOUT);
    let inode = std::fs::metadata(s.socket()).unwrap().ino();

    let s2 = Scratch::new();
    let path = s2.write_config(&config(&s.socket(), "b", &s2.p("b-ran")));
    let mut second = Corral::spawn(&path, Options::default());
    assert_ne!(
        second.wait_exit(TIMEOUT),
        0,
        "the second corral must not run"
    );
    second.wait_message("another corral", None, TIMEOUT);
    assert!(second.events_of("started", None).is_empty());
    assert!(
        !s2.path("b-ran").exists(),
        "the second corral started a program"
    );

    // The first one is untouched and still answers on its socket.
    assert_eq!(std::fs::metadata(s.socket()).unwrap().ino(), inode);
    let out = s.ctl(&["status"]).ok();
    assert!(out.stdout.contains("a "), "{out:?}");
    assert!(!out.stdout.contains("b "), "{out:?}");
    s.ctl(&["restart", "a"]).ok();

    first.term();
    assert_eq!(first.wait_exit(TIMEOUT), 0);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let s = Scratch::new();
    std::fs::write(s.socket(), "precious").unwrap();
    let mut c = s.start(&config(&s.socket(), "a", &s.p("a-ran")));
    assert_ne!(c.wait_exit(TIMEOUT), 0, "corral must refuse the path");
    c.wait_message("not a socket", None, TIMEOUT);
    assert_eq!(read(&s.socket()), "precious");
    assert!(!s.path("a-ran").exists(), "no program may start");
}
