//! `/live`: handing the live view between an agent and a human. The live
//! view (corral-live) is view-only by default; `POST /live/takeover` gives
//! a human its keyboard and mouse for a lease (renewed by calling it again
//! with the lease id, ended by `POST /live/release` or by its expiry);
//! `GET /live` says who holds control. The lease is a file shared with
//! corral-live (`corral_serve::live_lease`), which drops every viewer's
//! input unless the file holds a current lease: the switch is enforced on
//! the server, not by noVNC. While a human holds it, [`human_holder`] is
//! what the computer-use input endpoints ask before moving anything (409
//! `human in control`); CDP stays open (docs/handoff.md says why).

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use corral_serve::live_lease::{self, Lease};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use crate::http::{body_json, ok, ApiError, Req, Resp};
use crate::AppState;

/// A lease's length when none is asked for.
pub const DEFAULT_DURATION_S: u64 = 300;
/// The longest lease (renewals extend it by at most this much from now):
/// a human who walks away gives the agent the browser back within an hour.
pub const MAX_DURATION_S: u64 = 3600;
/// The longest holder name.
pub const MAX_HOLDER: usize = 128;

/// The lease file and the lock that makes take/renew/release atomic.
pub struct Live {
    pub path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(path: PathBuf) -> Live {
        Live {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The current lease, if a human holds control now.
    fn current(&self) -> Option<Lease> {
        match live_lease::read(&self.path) {
            Ok(l) => l.filter(|l| l.active(live_lease::now_ms())),
            Err(e) => {
                tracing::warn!("{e}: treated as no lease");
                None
            }
        }
    }
}

/// Who holds the live view, as agents are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub holder: String,
    /// RFC 3339, UTC, milliseconds.
    pub expires_at: String,
    pub expires_at_ms: u64,
}

impl Holder {
    fn of(l: &Lease) -> Holder {
        Holder {
            holder: l.holder.clone(),
            expires_at: rfc3339_ms(l.expires_at_ms),
            expires_at_ms: l.expires_at_ms,
        }
    }

    /// "alice holds the live view until 2026-…Z".
    pub fn sentence(&self) -> String {
        format!(
            "{} holds the live view until {}",
            self.holder, self.expires_at
        )
    }
}

/// The human holding the live view's keyboard and mouse right now, if any.
/// The computer-use input endpoints answer [`human_in_control`] while this
/// is `Some`.
pub fn human_holder(state: &AppState) -> Option<Holder> {
    state.live.current().map(|l| Holder::of(&l))
}

/// The 409 for an agent's input while a human holds control.
pub fn human_in_control(h: &Holder) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "human in control", h.sentence())
}

fn held_by(l: &Lease) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "live view held",
        format!(
            "{}; renew or release it with its lease_id, or wait for the expiry",
            Holder::of(l).sentence()
        ),
    )
}

fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// What `GET /live` and the lease answers describe.
fn describe(l: Option<&Lease>, now: u64) -> serde_json::Value {
    match l {
        Some(l) => serde_json::json!({
            "control": "human",
            "holder": l.holder,
            "taken_at": rfc3339_ms(l.taken_at_ms),
            "expires_at": rfc3339_ms(l.expires_at_ms),
            "expires_at_ms": l.expires_at_ms,
            "expires_in_ms": l.expires_at_ms.saturating_sub(now),
        }),
        None => serde_json::json!({
            "control": "agent",
            "holder": null,
            "taken_at": null,
            "expires_at": null,
            "expires_at_ms": null,
            "expires_in_ms": null,
        }),
    }
}

/// `GET /live`.
pub async fn status(state: &AppState) -> Result<Resp, ApiError> {
    let now = live_lease::now_ms();
    ok(&describe(state.live.current().as_ref(), now))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Takeover {
    holder: Option<String>,
    duration_s: Option<u64>,
    lease_id: Option<String>,
}

fn check_holder(h: &str) -> Result<(), ApiError> {
    if h.trim().is_empty() || h.chars().count() > MAX_HOLDER || h.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "holder must be 1 to {MAX_HOLDER} printable characters (who takes control: shown to agents)"
        )));
    }
    Ok(())
}

fn random_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .map_err(|e| ApiError::internal(format!("cannot read /dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// `POST /live/takeover {"holder", "duration_s"?, "lease_id"?}`: takes
/// control (no `lease_id`) or renews the caller's lease (its `lease_id`).
pub async fn takeover(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let t: Takeover = body_json(req).await?;
    let duration = t.duration_s.unwrap_or(DEFAULT_DURATION_S);
    if !(1..=MAX_DURATION_S).contains(&duration) {
        return Err(ApiError::bad_request(format!(
            "duration_s must be 1 to {MAX_DURATION_S} seconds (default {DEFAULT_DURATION_S}); renew before it ends to keep control"
        )));
    }
    if let Some(h) = &t.holder {
        check_holder(h)?;
    }
    let live = &state.live;
    let _guard = live.lock.lock().await;
    let now = live_lease::now_ms();
    let current = live.current();
    let (lease, renewed) = match (current, &t.lease_id) {
        (Some(l), Some(id)) if *id == l.lease_id => {
            if t.holder.as_ref().is_some_and(|h| *h != l.holder) {
                return Err(ApiError::bad_request(format!(
                    "this lease is held by {:?}: a renewal cannot change the holder",
                    l.holder
                )));
            }
            (
                Lease {
                    expires_at_ms: now + duration * 1000,
                    ..l
                },
                true,
            )
        }
        (Some(l), _) => return Err(held_by(&l)),
        (None, Some(id)) => {
            return Err(ApiError::not_found(format!(
                "no current lease {id:?}: it expired or was released; take control again without lease_id"
            )))
        }
        (None, None) => {
            let Some(holder) = t.holder else {
                return Err(ApiError::bad_request(
                    "holder is required to take control (who takes it: shown to agents)",
                ));
            };
            (
                Lease {
                    holder,
                    lease_id: random_id()?,
                    taken_at_ms: now,
                    expires_at_ms: now + duration * 1000,
                },
                false,
            )
        }
    };
    live_lease::write(&live.path, &lease).map_err(ApiError::internal)?;
    tracing::info!(holder = %lease.holder, renewed, duration_s = duration, "live view: a human holds control");
    let mut body = describe(Some(&lease), now);
    body["lease_id"] = lease.lease_id.clone().into();
    body["duration_s"] = duration.into();
    body["renewed"] = renewed.into();
    ok(&body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    lease_id: String,
}

/// `POST /live/release {"lease_id"}`: gives control back to the agent.
pub async fn release(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let r: Release = body_json(req).await?;
    let live = &state.live;
    let _guard = live.lock.lock().await;
    match live.current() {
        Some(l) if l.lease_id == r.lease_id => {
            live_lease::remove(&live.path).map_err(ApiError::internal)?;
            tracing::info!(holder = %l.holder, "live view: control released");
            let mut body = describe(None, live_lease::now_ms());
            body["released"] = serde_json::json!({ "holder": l.holder });
            ok(&body)
        }
        Some(l) => Err(held_by(&l)),
        None => Err(ApiError::not_found(format!(
            "no current lease {:?}: it expired or was already released",
            r.lease_id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_named_and_bounded() {
        assert!(check_holder("alice@example.com").is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(MAX_HOLDER + 1)] {
            assert!(check_holder(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_conflict_names_the_holder_and_the_time() {
        let h = Holder::of(&Lease {
            holder: "alice".into(),
            lease_id: "x".into(),
            taken_at_ms: 0,
            expires_at_ms: 1_796_000_000_123,
        });
        let e = human_in_control(&h);
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.error, "human in control");
        assert_eq!(
            e.detail,
            "alice holds the live view until 2026-11-30T00:53:20.123Z"
        );
    }
}
