//! System V shared memory that killed X clients left behind.
//!
//! x11vnc polls the screen through MIT-SHM: it makes ~40 private segments
//! (`shmget(IPC_PRIVATE)`, one per tile row and one for the whole screen)
//! and removes them when it exits — unless it is SIGKILLed (with corral's
//! whole PID namespace, by the OOM killer, after a stop timeout). Nothing
//! removes them then: a segment lives until `IPC_RMID`, and the kernel caps
//! their number per IPC namespace (`kernel.shmmni`, 4096). A container's IPC
//! namespace is the pod's (the pause container holds it across container
//! restarts) and a host's lives for ever, so after ~100 such kills every
//! `shmget` fails with ENOSPC and x11vnc exits 1 at once (with `-quiet`
//! saying nothing but a DPMS warning) until someone runs `ipcrm`.
//!
//! `corral prep-x11` (Xvfb's pre_start, so every start after an unclean
//! stop of the stack) therefore removes the segments nobody can use any
//! more: private (key 0, so no other process can look them up), attached
//! nowhere, not already marked for removal, made by a user we are (our
//! effective uid), and whose creator is gone — not alive in our PID
//! namespace, or from another namespace altogether (the kernel then shows
//! pid 0). Segments of a live creator (Chromium's, another client's) and
//! everything with a key are left alone.

use std::io;
use std::path::Path;

/// One row of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: i64,
    pub shmid: i32,
    pub perms: u32,
    pub size: u64,
    /// Creator's pid as our PID namespace sees it (0: not in it).
    pub cpid: i32,
    pub nattch: u64,
    /// Creator's uid.
    pub cuid: u32,
}

/// SHM_DEST in the perms column: marked for removal at the last detach.
const SHM_DEST: u32 = 0o1000;

/// Parses `/proc/sysvipc/shm` (a header line, then one row per segment).
pub fn parse(table: &str) -> Result<Vec<Segment>, String> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("/proc/sysvipc/shm has no {name:?} column"))
    };
    let (key, shmid, perms, size, cpid, nattch, cuid) = (
        col("key")?,
        col("shmid")?,
        col("perms")?,
        col("size")?,
        col("cpid")?,
        col("nattch")?,
        col("cuid")?,
    );
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = |what: &str| format!("/proc/sysvipc/shm row {}: bad {what}: {line:?}", i + 1);
        let get = |n: usize, what: &str| f.get(n).copied().ok_or_else(|| bad(what));
        out.push(Segment {
            key: get(key, "key")?.parse().map_err(|_| bad("key"))?,
            shmid: get(shmid, "shmid")?.parse().map_err(|_| bad("shmid"))?,
            // Printed in octal (%4o).
            perms: u32::from_str_radix(get(perms, "perms")?, 8).map_err(|_| bad("perms"))?,
            size: get(size, "size")?.parse().map_err(|_| bad("size"))?,
            cpid: get(cpid, "cpid")?.parse().map_err(|_| bad("cpid"))?,
            nattch: get(nattch, "nattch")?.parse().map_err(|_| bad("nattch"))?,
            cuid: get(cuid, "cuid")?.parse().map_err(|_| bad("cuid"))?,
        });
    }
    Ok(out)
}

/// The segments nobody can use any more (see the module doc), given our
/// effective uid and a test for a live pid.
pub fn orphans(segments: &[Segment], euid: u32, alive: impl Fn(i32) -> bool) -> Vec<Segment> {
    segments
        .iter()
        .filter(|s| {
            s.key == 0
                && s.nattch == 0
                && s.perms & SHM_DEST == 0
                && s.cuid == euid
                && (s.cpid <= 0 || !alive(s.cpid))
        })
        .cloned()
        .collect()
}

/// Whether `pid` names a process in our PID namespace.
fn alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        // EPERM: it exists (someone else's).
        Err(_) => true,
    }
}

/// Removes the orphaned segments listed in `table` (normally
/// `/proc/sysvipc/shm`); returns the ones removed. A segment that went
/// away meanwhile is skipped; any other failure is an error.
pub fn clear_orphans(table: &Path) -> io::Result<Vec<Segment>> {
    let text = match std::fs::read_to_string(table) {
        Ok(t) => t,
        // A kernel without System V IPC has nothing to clear.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let segments = parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut removed = Vec::new();
    for s in orphans(&segments, nix::unistd::geteuid().as_raw(), alive) {
        // SAFETY: IPC_RMID takes no buffer; shmid is only a number.
        let rc = unsafe { libc::shmctl(s.shmid, libc::IPC_RMID, std::ptr::null_mut()) };
        if rc == 0 {
            removed.push(s);
            continue;
        }
        let e = io::Error::last_os_error();
        // EINVAL/EIDRM: already gone.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EIDRM)) {
            return Err(io::Error::new(
                e.kind(),
                format!("removing shared-memory segment {}: {e}", s.shmid),
            ));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rows as Linux prints them (columns trimmed of atime… swap).
    const TABLE: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime
         0     786432   600                  5120 19125 14458      0     0     0     0     0 1796396296
         0     786433  1600               3686400 19125 14458      0     0     0     0     0 1796396296
         0     786434   600                 16384   300   300      1     0     0     0     0 1796396296
    123456     786435   666                  4096     0     0      0     0     0     0     0 1796396296
         0     786436   600                  4096   400   400      0  1000  1000  1000  1000 1796396296
         0     786437   600                  8192     0    77      0     0     0     0     0 1796396296
         0     786438   600                  8192    42    42      0     0     0     0     0 1796396296
";

    #[test]
    fn parses_the_kernel_table() {
        let s = parse(TABLE).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(
            s[0],
            Segment {
                key: 0,
                shmid: 786432,
                perms: 0o600,
                size: 5120,
                cpid: 19125,
                nattch: 0,
                cuid: 0
            }
        );
        assert_eq!(s[1].perms, 0o1600);
        assert_eq!(s[3].key, 123456);
    }

    #[test]
    fn only_private_unattached_unmarked_ours_with_a_dead_creator() {
        let s = parse(TABLE).unwrap();
        let live = |pid: i32| pid == 42;
        let ids: Vec<i32> = orphans(&s, 0, live).iter().map(|s| s.shmid).collect();
        // 786432: orphan. 786433: already marked. 786434: attached. 786435:
        // has a key. 786436: another user's. 786437: creator in another
        // namespace (pid 0). 786438: creator alive.
        assert_eq!(ids, vec![786432, 786437]);
    }

    #[test]
    fn a_table_without_the_columns_is_an_error() {
        let e = parse("key shmid\n0 1\n").unwrap_err();
        assert!(e.contains("perms"), "{e}");
        let e = parse(&TABLE.replace("786436", "x")).unwrap_err();
        assert!(e.contains("row 5") && e.contains("shmid"), "{e}");
    }
}
