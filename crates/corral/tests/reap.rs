//! Orphans are reaped: by corral as PID 1, and by corral as a child
//! subreaper when it is not PID 1.

mod common;

use common::*;

fn orphan_maker(s: &Scratch) -> String {
    format!(
        "[programs.parent]\ncommand = {}\n",
        tp(&["orphans", "1000", "touch", &s.p("done"), "wait"])
    )
}

#[test]
fn pid1_reaps_orphans() {
    let s = Scratch::new();
    let mut c = s.start(&orphan_maker(&s));
    wait_until("1000 orphans to be made", TIMEOUT, || {
        s.path("done").exists()
    });
    wait_until("no zombies in the namespace", TIMEOUT, || {
        c.zombies().is_empty()
    });
    // The program that made them is untouched.
    assert!(alive(c.pid_of("parent")));
    assert_eq!(c.events_of("started", Some("parent")).len(), 1);
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// Not PID 1: orphans are re-parented to corral (a child subreaper) and
/// reaped; one still alive at shutdown is killed by corral's final sweep.
#[test]
fn subreaper_adopts_and_reaps_orphans() {
    let s = Scratch::new();
    let orphan_pid = s.p("orphan-pid");
    let cfg = format!(
        "[programs.parent]\ncommand = {}\n",
        sh(&format!(
            "(setsid sleep 1000 & echo $! > {orphan_pid}); exec {} orphans 1000 touch {} wait",
            testprog(),
            s.p("done")
        ))
    );
    let opts = Options {
        pid1: false,
        ..Options::default()
    };
    let mut c = s.start_with(&cfg, opts);
    wait_until("1000 orphans to be made", TIMEOUT, || {
        s.path("done").exists()
    });
    let orphan: i32 = read(&s.path("orphan-pid"))
        .trim()
        .parse()
        .expect("orphan pid");
    assert_eq!(
        ppid(orphan),
        Some(c.pid),
        "the orphan was not adopted by corral"
    );
    wait_until("no zombies under corral", TIMEOUT, || {
        c.zombies().is_empty()
    });
    assert!(alive(c.pid_of("parent")));

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    assert!(
        !alive(orphan),
        "the adopted orphan outlived corral's shutdown"
    );
}
