//! Dropping to a user, the one way corral (a program's `user`) and
//! corral-api (`/process/*`'s `user`) both do it.
//!
//! [`Identity::resolve`] runs in the parent, where looking things up may
//! allocate and fail politely: a user name, or a uid as digits.
//!
//! - A name or uid with a passwd entry: its uid, primary gid, its groups
//!   from the group database, its home; `USER`/`LOGNAME` its name.
//! - A uid with no passwd entry (common in containers run as an arbitrary
//!   uid): accepted, with the gid equal to the uid, no other groups,
//!   `HOME=/`, and the number as `USER`/`LOGNAME`.
//! - A name with no passwd entry: refused ([`UserError::NoSuchUser`]).
//!
//! [`Dropper::apply`] runs in the child between fork and exec: setgroups,
//! setgid, setuid, nothing else (async-signal-safe, no allocation). When the
//! process already is that uid and gid it changes nothing, so a non-root
//! parent can still run commands as itself.

use std::ffi::CString;
use std::io;

use nix::unistd::{Gid, Uid, User};

/// Why a user could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// A name that has no passwd entry.
    NoSuchUser(String),
    /// The user or group database could not be read.
    Lookup(String),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::NoSuchUser(u) => write!(f, "no such user {u:?}"),
            UserError::Lookup(e) => f.write_str(e),
        }
    }
}

/// Who to run as: resolved before fork, applied after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub home: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
}

impl Identity {
    /// `user` is a name or a uid written as digits (see the module docs).
    pub fn resolve(user: &str) -> Result<Identity, UserError> {
        let lookup = |r: nix::Result<Option<User>>| {
            r.map_err(|e| UserError::Lookup(format!("cannot look up user {user:?}: {e}")))
        };
        let uid = user
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| user.parse::<u32>().ok())
            .flatten();
        let found = match uid {
            Some(uid) => lookup(User::from_uid(Uid::from_raw(uid)))?,
            None => lookup(User::from_name(user))?,
        };
        match (found, uid) {
            (Some(u), _) => {
                let cname = CString::new(u.name.clone())
                    .map_err(|_| UserError::Lookup(format!("user {user:?}: name holds NUL")))?;
                let groups = nix::unistd::getgrouplist(&cname, u.gid)
                    .map_err(|e| UserError::Lookup(format!("cannot list groups of {user:?}: {e}")))?
                    .into_iter()
                    .map(Gid::as_raw)
                    .collect();
                Ok(Identity {
                    home: u.dir.to_string_lossy().into_owned(),
                    name: u.name,
                    uid: u.uid.as_raw(),
                    gid: u.gid.as_raw(),
                    groups,
                })
            }
            (None, Some(uid)) => Ok(Identity {
                name: uid.to_string(),
                home: "/".into(),
                uid,
                gid: uid,
                groups: vec![uid],
            }),
            (None, None) => Err(UserError::NoSuchUser(user.to_string())),
        }
    }

    /// `HOME`, `USER` and `LOGNAME` as a login would set them.
    pub fn env(&self) -> [(&'static str, &str); 3] {
        [
            ("HOME", &self.home),
            ("USER", &self.name),
            ("LOGNAME", &self.name),
        ]
    }

    /// Whether this process already runs as this uid and gid.
    pub fn is_current(&self) -> bool {
        nix::unistd::geteuid().as_raw() == self.uid && nix::unistd::getegid().as_raw() == self.gid
    }

    /// What a `pre_exec` hook needs to drop to this identity, owned so it
    /// can move into the hook; `None` when there is nothing to change.
    pub fn dropper(&self) -> Option<Dropper> {
        (!self.is_current()).then(|| Dropper {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        })
    }
}

/// The prepared switch of [`Identity::dropper`].
#[derive(Debug, Clone)]
pub struct Dropper {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl Dropper {
    /// Switches the calling process to the identity: groups, then gid,
    /// then uid (after setuid the others could no longer change).
    ///
    /// # Safety
    /// Meant for a `pre_exec` hook, between fork and exec: it only makes
    /// async-signal-safe syscalls on memory allocated before the fork.
    pub unsafe fn apply(&self) -> io::Result<()> {
        // SAFETY: plain syscalls on a valid slice.
        unsafe {
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
                || libc::setgid(self.gid) != 0
                || libc::setuid(self.uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_by_name_and_number() {
        let by_name = Identity::resolve("root").unwrap();
        assert_eq!((by_name.uid, by_name.gid), (0, 0));
        assert_eq!(Identity::resolve("0").unwrap(), by_name);
    }

    #[test]
    fn a_uid_without_an_entry_is_its_own_group() {
        let id = Identity::resolve("54321").unwrap();
        assert_eq!(
            (id.uid, id.gid, id.groups.as_slice()),
            (54321, 54321, &[54321][..])
        );
        assert_eq!(id.home, "/");
        assert_eq!(id.env()[1], ("USER", "54321"));
    }

    #[test]
    fn an_unknown_name_is_refused() {
        assert_eq!(
            Identity::resolve("no-such-user-here"),
            Err(UserError::NoSuchUser("no-such-user-here".into()))
        );
        assert!(Identity::resolve("").is_err());
    }
}
