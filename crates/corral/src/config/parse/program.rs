//! `[programs.NAME]` tables, their nested tables, and the cross-program checks
//! (unknown names, self-dependencies, cycles) that need every name first.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    join, set, Cx, Ref, Val, BACKOFF_KEYS, DEFAULT_RESTART_WINDOW, PROGRAM_KEYS, READY_KEYS,
    RLIMIT_PAIR_KEYS,
};
use crate::config::{
    graph, values, Backoff, ProgramConfig, ReadyCheck, ReadyKind, RestartPolicy, Rlimits,
    SupervisorSettings, DEFAULT_READY_TIMEOUT,
};
use regex_lite::Regex;
use toml::de::DeValue;

impl Cx<'_> {
    /// One program; `None` if anything in it was wrong (already reported).
    /// Its dependency entries go to `refs` either way, so that a broken program
    /// does not also cause "unknown program" errors in the ones naming it.
    pub(super) fn program(
        &mut self,
        name: &str,
        base: &str,
        v: &Val<'_>,
        sup: &SupervisorSettings,
        refs: &mut Vec<Ref>,
    ) -> Option<ProgramConfig> {
        let before = self.diags.len();
        let t = self.table(v, base)?;
        let mut p = ProgramConfig {
            name: name.to_string(),
            command: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            user: None,
            depends_on: Vec::new(),
            binds_to: Vec::new(),
            ready: None,
            restart: RestartPolicy::OnFailure,
            backoff: Backoff::default(),
            critical: false,
            max_restarts: None,
            restart_window: DEFAULT_RESTART_WINDOW,
            rlimits: sup.rlimits.clone(),
            stop_signal: corral_boot::signal::Sig::TERM,
            kill_mode: super::super::KillMode::Group,
            stop_timeout: sup.stop_timeout,
            pre_start: None,
            pre_stop: None,
            autostart: true,
            oneshot: false,
        };
        let mut command = None;
        let mut restart = None;
        let mut depends_on = Vec::new();
        let mut binds_to = Vec::new();
        for (k, v) in t.iter() {
            let key = &join(base, k.get_ref());
            match k.get_ref().as_ref() {
                "command" => command = self.argv(v, key),
                "env" => p.env = self.env_table(v, key),
                "cwd" => p.cwd = self.path(v, key),
                "user" => {
                    p.user = match v.get_ref() {
                        // A numeric uid is as good as a name.
                        DeValue::Integer(_) => {
                            self.uint(v, key, u32::MAX.into()).map(|n| n.to_string())
                        }
                        _ => self.nonempty(v, key),
                    }
                }
                "depends_on" => depends_on = self.names(v, key),
                "binds_to" => binds_to = self.names(v, key),
                "ready" => p.ready = self.ready(v, key),
                "restart" => restart = self.parsed(v, key, values::restart).map(|r| (r, v.span())),
                "backoff" => p.backoff = self.backoff(v, key),
                "critical" => set(&mut p.critical, self.bool(v, key)),
                "max_restarts" => {
                    p.max_restarts = self.uint(v, key, u32::MAX.into()).map(|n| n as u32)
                }
                "restart_window" => set(&mut p.restart_window, self.duration(v, key)),
                "rlimits" => p.rlimits = Rlimits::merged(&sup.rlimits, &self.rlimits(v, key)),
                "stop_signal" => set(&mut p.stop_signal, self.signal(v, key)),
                "kill_mode" => set(&mut p.kill_mode, self.parsed(v, key, values::kill_mode)),
                "stop_timeout" => set(&mut p.stop_timeout, self.duration(v, key)),
                "pre_start" => p.pre_start = self.argv(v, key),
                "pre_stop" => p.pre_stop = self.argv(v, key),
                "autostart" => set(&mut p.autostart, self.bool(v, key)),
                "oneshot" => set(&mut p.oneshot, self.bool(v, key)),
                _ => self.unknown(k, key, PROGRAM_KEYS),
            }
        }

        match command {
            Some(c) => p.command = c,
            // Only complain when it is missing, not when it was present but bad.
            None if t.get("command").is_none() => {
                let msg = "missing required key \"command\"";
                self.err(v.span(), &join(base, "command"), msg);
            }
            None => {}
        }
        // A oneshot that succeeded is done; "always" would contradict that.
        p.restart = match restart {
            Some((RestartPolicy::Always, span)) if p.oneshot => {
                let msg = "a oneshot program cannot use restart = \"always\" (use \"on-failure\" or \"never\")";
                self.err(span, &join(base, "restart"), msg);
                RestartPolicy::Never
            }
            Some((r, _)) => r,
            None if p.oneshot => RestartPolicy::Never,
            None => RestartPolicy::OnFailure,
        };
        for (to, span) in &binds_to {
            if depends_on.iter().any(|(d, _)| d == to) {
                let msg = format!(
                    "{to:?} is in both depends_on and binds_to (binds_to implies depends_on)"
                );
                self.err(span.clone(), &join(base, "binds_to"), msg);
            }
        }
        for (field, list) in [("depends_on", &depends_on), ("binds_to", &binds_to)] {
            for (to, span) in list {
                refs.push(Ref {
                    from: name.to_string(),
                    to: to.clone(),
                    span: span.clone(),
                    key: join(base, field),
                });
            }
        }
        p.depends_on = depends_on.into_iter().map(|(n, _)| n).collect();
        p.binds_to = binds_to.into_iter().map(|(n, _)| n).collect();
        (self.diags.len() == before).then_some(p)
    }

    /// `ready = { KIND = …, timeout = … }` with exactly one KIND.
    fn ready(&mut self, v: &Val<'_>, base: &str) -> Option<ReadyCheck> {
        let t = self.table(v, base)?;
        let mut timeout = DEFAULT_READY_TIMEOUT;
        // Kinds are counted even when their value is bad, so "two kinds" is still reported.
        let mut kinds: Vec<(String, Option<ReadyKind>)> = Vec::new();
        for (k, v) in t.iter() {
            let key = &join(base, k.get_ref());
            let kind = match k.get_ref().as_ref() {
                "timeout" => {
                    match self.duration(v, key) {
                        Some(d) if d.is_zero() => self.err(v.span(), key, "must be greater than 0"),
                        d => set(&mut timeout, d),
                    }
                    continue;
                }
                "tcp" => self
                    .parsed(v, key, |s| values::tcp_target(s).map(|()| s.to_string()))
                    .map(ReadyKind::Tcp),
                "http" => self
                    .parsed(v, key, |s| values::http_url(s).map(|()| s.to_string()))
                    .map(ReadyKind::Http),
                "x11" => self
                    .parsed(v, key, |s| values::x11_display(s).map(|()| s.to_string()))
                    .map(ReadyKind::X11),
                "file" => self.path(v, key).map(ReadyKind::File),
                "log" => self.parsed(v, key, regex).map(ReadyKind::Log),
                "exec" => self.argv(v, key).map(ReadyKind::Exec),
                _ => {
                    self.unknown(k, key, READY_KEYS);
                    continue;
                }
            };
            kinds.push((k.get_ref().to_string(), kind));
        }
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                "needs one of tcp, http, x11, file, log, exec".to_string()
            } else {
                let names: Vec<&str> = kinds.iter().map(|(n, _)| n.as_str()).collect();
                format!(
                    "has {} kinds ({}); give exactly one",
                    names.len(),
                    names.join(", ")
                )
            };
            self.err(v.span(), base, msg);
            return None;
        }
        let kind = kinds.pop()?.1?;
        Some(ReadyCheck { kind, timeout })
    }

    /// `backoff = { initial, max, reset_after }`; missing keys keep their defaults.
    fn backoff(&mut self, v: &Val<'_>, base: &str) -> Backoff {
        let mut b = Backoff::default();
        let Some(t) = self.table(v, base) else {
            return b;
        };
        for (k, v) in t.iter() {
            let key = &join(base, k.get_ref());
            match k.get_ref().as_ref() {
                "initial" => set(&mut b.initial, self.duration(v, key)),
                "max" => set(&mut b.max, self.duration(v, key)),
                "reset_after" => set(&mut b.reset_after, self.duration(v, key)),
                _ => self.unknown(k, key, BACKOFF_KEYS),
            }
        }
        if b.initial > b.max {
            let msg = format!(
                "initial ({}) is longer than max ({})",
                humantime::format_duration(b.initial),
                humantime::format_duration(b.max)
            );
            self.err(v.span(), base, msg);
        }
        b
    }

    /// `rlimits = { RESOURCE = n | "unlimited" | { soft, hard }, … }`.
    pub(super) fn rlimits(&mut self, v: &Val<'_>, base: &str) -> Rlimits {
        let mut out = Rlimits::default();
        let Some(t) = self.table(v, base) else {
            return out;
        };
        for (k, v) in t.iter() {
            let key = &join(base, k.get_ref());
            let resource = match values::rlimit_resource(k.get_ref()) {
                Ok(r) => Some(r),
                Err(msg) => {
                    self.err(k.span(), key, msg);
                    None
                }
            };
            let pair = match v.get_ref() {
                DeValue::Table(pair) => {
                    let mut soft = None;
                    let mut hard = None;
                    for (pk, pv) in pair.iter() {
                        let pkey = &join(key, pk.get_ref());
                        match pk.get_ref().as_ref() {
                            "soft" => soft = self.rlimit_value(pv, pkey),
                            "hard" => hard = self.rlimit_value(pv, pkey),
                            _ => self.unknown(pk, pkey, RLIMIT_PAIR_KEYS),
                        }
                    }
                    match (soft, hard) {
                        (Some(s), Some(h)) if s > h => {
                            let msg = format!("soft limit {s} is above hard limit {h}");
                            self.err(v.span(), key, msg);
                            None
                        }
                        (Some(s), Some(h)) => Some((s, h)),
                        _ if pair.get("soft").is_none() || pair.get("hard").is_none() => {
                            self.err(v.span(), key, "needs both soft and hard");
                            None
                        }
                        _ => None,
                    }
                }
                _ => self.rlimit_value(v, key).map(|n| (n, n)),
            };
            if let (Some(r), Some(pair)) = (resource, pair) {
                out.limits.insert(r, pair);
            }
        }
        out
    }

    /// One limit: an integer or `"unlimited"`.
    fn rlimit_value(&mut self, v: &Val<'_>, key: &str) -> Option<u64> {
        match v.get_ref() {
            DeValue::Integer(_) => self.uint(v, key, u64::MAX - 1),
            DeValue::String(_) => self.parsed(v, key, values::rlimit_word),
            _ => {
                self.type_err(
                    v,
                    key,
                    "an integer, \"unlimited\" or { soft = …, hard = … }",
                );
                None
            }
        }
    }

    /// Unknown names, self-dependencies and cycles, once every program is known.
    pub(super) fn check_refs(&mut self, names: &BTreeSet<String>, refs: &[Ref]) {
        let mut edges: BTreeMap<String, Vec<String>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        let mut where_: BTreeMap<(&str, &str), &Ref> = BTreeMap::new();
        for r in refs {
            if r.to == r.from {
                let msg = format!("program {:?} cannot depend on itself", r.from);
                self.err(r.span.clone(), &r.key, msg);
            } else if !names.contains(&r.to) {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let msg = format!("unknown program {:?} (defined: {})", r.to, known.join(", "));
                self.err(r.span.clone(), &r.key, msg);
            } else {
                edges.entry(r.from.clone()).or_default().push(r.to.clone());
                where_.entry((&r.from, &r.to)).or_insert(r);
            }
        }
        for cycle in graph::find_cycles(&edges) {
            // Report it where the first edge of the cycle is written.
            if let Some(r) = where_.get(&(cycle[0].as_str(), cycle[1].as_str())) {
                let msg = format!("dependency cycle: {}", cycle.join(" -> "));
                self.err(r.span.clone(), &r.key, msg);
            }
        }
    }
}

/// A `ready.log` pattern; only the gist of regex's multi-line error is kept.
fn regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| {
        let text = e.to_string();
        let gist = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| text.replace('\n', " "));
        format!("invalid regex {s:?}: {gist}")
    })
}
