//! `PUT /fs/delete_directory` and `PUT /fs/set_file_permissions`
//! (kernel-images' names), confined like every `/fs` call.
//!
//! `delete_directory {path, recursive?}`: the path must be a directory
//! itself, not a symlink to one (400: a symlink is never followed, so it
//! cannot lead a recursive delete out of the root; `delete_file` removes
//! the link). Non-empty without `recursive` is 409; the root is 403. The
//! recursive walk is `ops::remove_tree` (`O_NOFOLLOW` all the way down).
//!
//! `set_file_permissions {path, mode?, owner?, group?}` (at least one of
//! the three): `mode` as for `chmod` (octal string or number, setuid,
//! setgid and sticky refused); `owner`/`group` a name or a numeric id (a
//! number or a string of digits); an unknown name is 400. A final symlink
//! is followed beneath the root, like chmod(1) and chown(1); one that
//! leads outside is 403.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use serde::Deserialize;
use serde_json::{json, Value};

use super::confine::{errno_err, kind, Root};
use super::path::RelPath;
use super::{blocking, meta, ops, Fs};
use crate::http::{body_json, ok, ApiError, Req, Resp};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteDir {
    path: String,
    #[serde(default)]
    recursive: bool,
}

/// `PUT /fs/delete_directory {path, recursive?}`.
pub async fn delete_directory(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: DeleteDir = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    let (root, p2) = (fs.root.clone(), p.clone());
    blocking(move || {
        let r = Root::new(&root)?;
        if p2.is_root() {
            return Err(ApiError::forbidden("cannot delete the root itself"));
        }
        let st = r
            .lstat(&p2)?
            .ok_or_else(|| ApiError::not_found(format!("{p2}: no such directory")))?;
        match kind(&st) {
            SFlag::S_IFDIR => ops::delete(&r, &p2, b.recursive),
            SFlag::S_IFLNK => Err(ApiError::bad_request(format!(
                "{p2} is a symlink, not a directory (it is not followed); delete it with delete_file"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "{p2} is not a directory; use delete_file"
            ))),
        }
    })
    .await?;
    ok(&json!({ "path": p.display(), "deleted": true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPerms {
    path: String,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default)]
    owner: Option<Value>,
    #[serde(default)]
    group: Option<Value>,
}

/// A numeric id: a JSON number or a string of digits.
fn numeric(v: &Value) -> Option<Result<u32, ()>> {
    match v {
        Value::Number(n) => Some(n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or(())),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse::<u32>().map_err(|_| ()))
        }
        _ => None,
    }
}

fn resolve_owner(v: &Value) -> Result<u32, ApiError> {
    match numeric(v) {
        Some(Ok(n)) if n != u32::MAX => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "owner {v} is not a valid uid"
        ))),
        None => {
            let name = v
                .as_str()
                .filter(|s| !s.is_empty() && !s.contains('\0'))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("owner {v} is not a user name or uid"))
                })?;
            match nix::unistd::User::from_name(name) {
                Ok(Some(u)) => Ok(u.uid.as_raw()),
                Ok(None) => Err(ApiError::bad_request(format!("no user named {name:?}"))),
                Err(e) => Err(ApiError::internal(format!("looking up user {name:?}: {e}"))),
            }
        }
    }
}

fn resolve_group(v: &Value) -> Result<u32, ApiError> {
    match numeric(v) {
        Some(Ok(n)) if n != u32::MAX => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "group {v} is not a valid gid"
        ))),
        None => {
            let name = v
                .as_str()
                .filter(|s| !s.is_empty() && !s.contains('\0'))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("group {v} is not a group name or gid"))
                })?;
            match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Ok(g.gid.as_raw()),
                Ok(None) => Err(ApiError::bad_request(format!("no group named {name:?}"))),
                Err(e) => Err(ApiError::internal(format!(
                    "looking up group {name:?}: {e}"
                ))),
            }
        }
    }
}

/// `PUT /fs/set_file_permissions {path, mode?, owner?, group?}`.
pub async fn set_file_permissions(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: SetPerms = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    if b.mode.is_none() && b.owner.is_none() && b.group.is_none() {
        return Err(ApiError::bad_request(
            "give at least one of mode, owner and group",
        ));
    }
    // Everything is validated before anything is changed.
    let m = b.mode.as_ref().map(meta::parse_mode).transpose()?;
    let uid = b.owner.as_ref().map(resolve_owner).transpose()?;
    let gid = b.group.as_ref().map(resolve_group).transpose()?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let st = blocking(move || {
        let r = Root::new(&root)?;
        // Opened first, so a missing or escaping path changes nothing.
        let fd = r.open(&p2, OFlag::O_PATH)?;
        if uid.is_some() || gid.is_some() {
            // SAFETY: fchownat on our own O_PATH descriptor with an empty
            // path (AT_EMPTY_PATH): it names exactly the opened inode.
            let rc = unsafe {
                libc::fchownat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    uid.unwrap_or(u32::MAX),
                    gid.unwrap_or(u32::MAX),
                    libc::AT_EMPTY_PATH,
                )
            };
            if rc != 0 {
                return Err(errno_err(&p2.display(), Errno::last()));
            }
        }
        // After chown: the kernel clears setuid/setgid bits on chown, and
        // the mode asked for must be what remains.
        match m {
            Some(m) => ops::chmod(&r, &p2, m),
            None => nix::sys::stat::fstat(&fd).map_err(|e| errno_err(&p2.display(), e)),
        }
    })
    .await?;
    ok(&json!({
        "path": p.display(),
        "mode": format!("{:04o}", st.st_mode & 0o7777),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }))
}
