//! Reading Server-Sent Events streams (process output, logs).

use super::*;

#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub data: String,
}

struct SseLog {
    events: Vec<Event>,
    ended: bool,
}

/// An open SSE stream whose events a thread collects as they arrive.
/// Dropping it closes the connection.
pub struct Sse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    shared: Arc<(Mutex<SseLog>, Condvar)>,
    stream: Option<TcpStream>,
    /// The body of a non-200 answer.
    pub error: Vec<u8>,
}

impl Sse {
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut h = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        let (status, headers, mut body) =
            send(port, "GET", path, &h, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let shared = Arc::new((
            Mutex::new(SseLog {
                events: Vec::new(),
                ended: false,
            }),
            Condvar::new(),
        ));
        if status != 200 {
            let mut error = Vec::new();
            let _ = body.read_to_end(&mut error);
            shared.0.lock().unwrap().ended = true;
            return Sse {
                status,
                headers,
                shared,
                stream: None,
                error,
            };
        }
        let stream = body.r.get_ref().try_clone().ok();
        let s2 = shared.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(body);
            let (mut event, mut data): (String, Vec<String>) = (String::new(), Vec::new());
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let l = line.strip_suffix('\n').unwrap_or(&line);
                if l.is_empty() {
                    if !data.is_empty() || !event.is_empty() {
                        let ev = Event {
                            event: if event.is_empty() {
                                "message".into()
                            } else {
                                event.clone()
                            },
                            data: data.join("\n"),
                        };
                        s2.0.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .events
                            .push(ev);
                        s2.1.notify_all();
                    }
                    event.clear();
                    data.clear();
                } else if let Some(v) = l.strip_prefix("event:") {
                    event = v.trim_start().to_string();
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
                // Comments (":keepalive") and other fields are ignored.
            }
            s2.0.lock().unwrap_or_else(|p| p.into_inner()).ended = true;
            s2.1.notify_all();
        });
        Sse {
            status,
            headers,
            shared,
            stream,
            error: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<Event> {
        self.shared.0.lock().unwrap().events.clone()
    }

    pub fn ended(&self) -> bool {
        self.shared.0.lock().unwrap().ended
    }

    /// Waits until `pick` finds something in the events so far.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&[Event]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.0.lock().unwrap();
        loop {
            if let Some(v) = pick(&log.events) {
                return v;
            }
            let now = Instant::now();
            assert!(
                now < deadline && !log.ended,
                "{} waiting for {what}; events so far: {:?}",
                if log.ended {
                    "stream ended"
                } else {
                    "timed out"
                },
                log.events
            );
            log = self.shared.1.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits for an event named `event` whose data is `data`.
    pub fn wait_data(&self, event: &str, data: &str, timeout: Duration) {
        self.wait(&format!("{event}: {data:?}"), timeout, |evs| {
            evs.iter()
                .any(|e| e.event == event && e.data == data)
                .then_some(())
        })
    }

    /// The data of every `event` event so far, concatenated (for process
    /// output, whose chunks end with the line end that was read).
    pub fn output(&self, event: &str) -> String {
        concat(&self.events(), event)
    }

    /// Waits until the concatenated `event` data contains `needle`.
    pub fn wait_output(&self, event: &str, needle: &str, timeout: Duration) {
        self.wait(&format!("{event} output {needle:?}"), timeout, |evs| {
            concat(evs, event).contains(needle).then_some(())
        })
    }

    /// Waits until the server ends the stream; returns every event.
    pub fn wait_end(&self, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.0.lock().unwrap();
        while !log.ended {
            let now = Instant::now();
            assert!(
                now < deadline,
                "the stream did not end; events: {:?}",
                log.events
            );
            log = self.shared.1.wait_timeout(log, deadline - now).unwrap().0;
        }
        log.events.clone()
    }
}

/// The data of the events named `event`, concatenated.
pub fn concat(events: &[Event], event: &str) -> String {
    events
        .iter()
        .filter(|e| e.event == event)
        .map(|e| e.data.as_str())
        .collect()
}

impl Drop for Sse {
    fn drop(&mut self) {
        if let Some(s) = &self.stream {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
