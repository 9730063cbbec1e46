//! `/live` on the real corral-api under corral as PID 1: who holds the
//! live view, taking it (the lease file corral-live enforces is written
//! whole, 0600), a second taker refused naming the holder, renewal by lease
//! id extends it, release ends it, expiry ends it on time with nobody
//! calling, and every bad input refused with nothing written.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn lease_file(env: &Env) -> Option<serde_json::Value> {
    std::fs::read(env.path("live-lease.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("the lease file is JSON"))
}

#[test]
fn take_renew_release_and_conflicts() {
    let env = Env::start(Setup::default());
    let v = env.get("/live").expect(200).json();
    assert_eq!(v["control"], "agent");
    assert!(v["holder"].is_null() && v["expires_at"].is_null());

    let before = now_ms();
    let t = env
        .post(
            "/live/takeover",
            &json!({"holder": "alice", "duration_s": 60}),
        )
        .expect(200)
        .json();
    assert_eq!(t["control"], "human");
    assert_eq!(t["holder"], "alice");
    assert_eq!(t["renewed"], false);
    assert_eq!(t["duration_s"], 60);
    let id = t["lease_id"].as_str().unwrap().to_string();
    assert!(id.len() >= 32, "a random lease id: {id}");
    let exp = t["expires_at_ms"].as_u64().unwrap();
    assert!(exp >= before + 60_000 && exp <= now_ms() + 60_000);
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));

    // The file corral-live reads: private, whole, the same lease.
    let meta = std::fs::metadata(env.path("live-lease.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let f = lease_file(&env).unwrap();
    assert_eq!(f["holder"], "alice");
    assert_eq!(f["lease_id"], id.as_str());
    assert_eq!(f["expires_at_ms"], exp);

    let g = env.get("/live").expect(200).json();
    assert_eq!(g["control"], "human");
    assert_eq!(g["holder"], "alice");
    assert_eq!(g["expires_at_ms"], exp);
    assert_eq!(g["expires_at"], t["expires_at"]);
    assert!(g["expires_in_ms"].as_u64().unwrap() <= 60_000);
    assert!(
        g.get("lease_id").is_none(),
        "GET /live does not give the lease away"
    );

    // A second taker, or a wrong lease id: 409 naming the holder and the time.
    for body in [
        json!({"holder": "bob"}),
        json!({"holder": "bob", "lease_id": "not-it"}),
    ] {
        let e = env.post("/live/takeover", &body).expect_error(409);
        let detail = e["detail"].as_str().unwrap();
        assert!(
            detail.contains("alice holds the live view until"),
            "{detail}"
        );
        assert!(
            detail.contains(t["expires_at"].as_str().unwrap()),
            "{detail}"
        );
    }
    let e = env
        .post("/live/release", &json!({"lease_id": "not-it"}))
        .expect_error(409);
    assert!(e["detail"].as_str().unwrap().contains("alice"));
    // A renewal cannot change the holder.
    env.post("/live/takeover", &json!({"holder": "bob", "lease_id": id}))
        .expect_error(400);
    assert_eq!(lease_file(&env).unwrap()["expires_at_ms"], exp, "unchanged");

    // Renewal by lease id: extended to duration_s from now, same id and holder.
    let r = env
        .post(
            "/live/takeover",
            &json!({"lease_id": id, "duration_s": 600}),
        )
        .expect(200)
        .json();
    assert_eq!(r["renewed"], true);
    assert_eq!(r["lease_id"], id.as_str());
    assert_eq!(r["holder"], "alice");
    assert_eq!(r["taken_at"], t["taken_at"]);
    assert!(r["expires_at_ms"].as_u64().unwrap() >= exp + 500_000);
    assert_eq!(env.get("/live").json()["expires_at_ms"], r["expires_at_ms"]);

    // Release: the agent has it back, the file is gone, the id is spent.
    let rel = env
        .post("/live/release", &json!({"lease_id": id}))
        .expect(200)
        .json();
    assert_eq!(rel["control"], "agent");
    assert_eq!(rel["released"]["holder"], "alice");
    assert!(lease_file(&env).is_none());
    assert_eq!(env.get("/live").json()["control"], "agent");
    env.post("/live/release", &json!({"lease_id": id}))
        .expect_error(404);
    env.post("/live/takeover", &json!({"lease_id": id}))
        .expect_error(404);
    // Free again: bob may take it.
    env.post("/live/takeover", &json!({"holder": "bob", "duration_s": 1}))
        .expect(200);
}

#[test]
fn a_lease_ends_on_time_by_itself() {
    let env = Env::start(Setup::default());
    let t = env
        .post(
            "/live/takeover",
            &json!({"holder": "carol", "duration_s": 1}),
        )
        .expect(200)
        .json();
    let exp = t["expires_at_ms"].as_u64().unwrap();
    let id = t["lease_id"].as_str().unwrap().to_string();
    // Polled until the API says the agent has it back: never before the
    // expiry, and within a few polls after it.
    let back = wait_for("the lease to end", TIMEOUT, || {
        let v = env.get("/live").json();
        let at = now_ms();
        if v["control"] == "human" {
            assert!(
                at <= exp + 50,
                "still held {} ms after the expiry",
                at - exp
            );
            None
        } else {
            Some(at)
        }
    });
    assert!(back + 5 >= exp, "ended {} ms early", exp - back);
    eprintln!(
        "GET /live said agent {} ms after the expiry",
        back as i64 - exp as i64
    );
    // An expired lease can be neither renewed nor released; a new one can be taken.
    env.post("/live/takeover", &json!({"lease_id": id}))
        .expect_error(404);
    env.post("/live/release", &json!({"lease_id": id}))
        .expect_error(404);
    env.post("/live/takeover", &json!({"holder": "dave"}))
        .expect(200);
}

#[test]
fn bad_inputs_are_refused_with_nothing_written() {
    let env = Env::start(Setup::default());
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (br#"{"holder":"a","duration_s":0}"#, 400, "duration_s"),
        (br#"{"holder":"a","duration_s":3601}"#, 400, "duration_s"),
        (br#"{"holder":"a","duration_s":-5}"#, 400, "invalid JSON"),
        (br#"{"holder":"a","duration_s":1.5}"#, 400, "invalid JSON"),
        (br#"{"duration_s":10}"#, 400, "holder is required"),
        (br#"{"holder":""}"#, 400, "holder"),
        (br#"{"holder":"   "}"#, 400, "holder"),
        (b"{\"holder\":\"a\\nb\"}", 400, "holder"),
        (br#"{"holder":"a","extra":1}"#, 400, "unknown field"),
        (br#"{"holder":5}"#, 400, "invalid JSON"),
        (b"not json", 400, "invalid JSON"),
        (b"", 400, "invalid JSON"),
    ];
    let long = format!(r#"{{"holder":"{}"}}"#, "x".repeat(129));
    let mut all = cases.clone();
    all.push((long.as_bytes(), 400, "holder"));
    for (body, status, says) in all {
        let e = env
            .call(
                "POST",
                "/live/takeover",
                &[("Content-Type", "application/json")],
                body,
            )
            .expect_error(status);
        let text = format!("{} {}", e["error"], e["detail"]);
        assert!(
            text.contains(says),
            "{}: {text}",
            String::from_utf8_lossy(body)
        );
        assert!(lease_file(&env).is_none(), "nothing written");
    }
    for body in [
        &b"{}"[..],
        br#"{"lease_id":5}"#,
        br#"{"lease_id":"x","y":1}"#,
    ] {
        env.call(
            "POST",
            "/live/release",
            &[("Content-Type", "application/json")],
            body,
        )
        .expect_error(400);
    }
    env.post("/live/release", &json!({"lease_id": "nothing"}))
        .expect_error(404);
    // Wrong methods, and the token is required.
    assert_eq!(env.call("DELETE", "/live", &[], b"").status, 405);
    assert_eq!(env.call("GET", "/live/takeover", &[], b"").status, 405);
    assert_eq!(request(env.port, "GET", "/live", &[], b"").status, 401);
    assert_eq!(
        request(
            env.port,
            "POST",
            "/live/takeover",
            &[],
            br#"{"holder":"x"}"#
        )
        .status,
        401
    );
    assert!(lease_file(&env).is_none());
    assert_eq!(env.get("/live").json()["control"], "agent");
}

#[test]
fn a_lease_outlives_a_corral_api_restart() {
    // The file is the lease: corral-live keeps enforcing it while corral-api
    // restarts, and the restarted corral-api still knows it.
    let env = Env::start(Setup::default());
    let t = env
        .post(
            "/live/takeover",
            &json!({"holder": "erin", "duration_s": 120}),
        )
        .expect(200)
        .json();
    env.ctl(&["restart", "api"]);
    env.wait_healthy();
    let g = env.get("/live").expect(200).json();
    assert_eq!(g["holder"], "erin");
    assert_eq!(g["expires_at_ms"], t["expires_at_ms"]);
    env.post("/live/takeover", &json!({"holder": "frank"}))
        .expect_error(409);
    env.post("/live/release", &json!({"lease_id": t["lease_id"]}))
        .expect(200);
    assert!(lease_file(&env).is_none());
}
