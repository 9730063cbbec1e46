//! The gate's framing, by example (every message noVNC sends, as noVNC
//! builds it) and by property: random sequences of valid messages, cut at
//! random places, always come out as exactly the allowed messages; random
//! bytes never panic and give the same answer however they are cut.

use super::*;

use corral_testkit::rng::Rng;

/// One valid client message of each kind noVNC sends (random contents).
fn message(rng: &mut Rng, kind: u8) -> Vec<u8> {
    let mut m = vec![kind];
    match kind {
        0 => m.extend(rng.bytes(19)),
        2 => {
            let n = rng.below(40) as u16;
            m.push(0);
            m.extend(n.to_be_bytes());
            m.extend(rng.bytes(4 * usize::from(n)));
        }
        3 | 150 => m.extend(rng.bytes(9)),
        4 => m.extend(rng.bytes(7)),
        5 => m.extend(rng.bytes(5)),
        6 => {
            let n = rng.below(3000) as i32;
            let extended = rng.below(2) == 0;
            m.extend([0, 0, 0]);
            m.extend(if extended { -n } else { n }.to_be_bytes());
            m.extend(rng.bytes(n as usize));
        }
        248 => {
            let n = rng.below(65) as u8;
            m.extend(rng.bytes(7));
            m.push(n);
            m.extend(rng.bytes(usize::from(n)));
        }
        250 => m.extend([0, 1, 2]),
        251 => {
            let screens = rng.below(4) as u8;
            m.extend(rng.bytes(5));
            m.push(screens);
            m.push(0);
            m.extend(rng.bytes(16 * usize::from(screens)));
        }
        255 => {
            m.push(0);
            m.extend(rng.bytes(10));
        }
        _ => unreachable!(),
    }
    m
}

const KINDS: [u8; 11] = [0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255];

/// Feeds `stream` cut into random pieces; input allowed by `allow`.
fn run(
    rng: &mut Rng,
    stream: &[u8],
    mut allow: impl FnMut() -> bool,
) -> (Result<(), String>, Vec<u8>) {
    let mut gate = Gate::new();
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(64) as u64) as usize;
        if let Err(e) = gate.feed(&rest[..n], &mut out, &mut allow) {
            return (Err(e), out);
        }
        rest = &rest[n..];
    }
    (Ok(()), out)
}

#[test]
fn every_novnc_message_is_framed_and_only_input_is_dropped() {
    let mut rng = Rng::new(7);
    for kind in KINDS {
        let m = message(&mut rng, kind);
        let stream = [&[1u8][..], &m].concat(); // ClientInit, then the message
        let (r, out) = run(&mut rng, &stream, || false);
        r.unwrap();
        if is_input(kind) {
            assert_eq!(out, [1], "type {kind} dropped without control");
        } else {
            assert_eq!(out, stream, "type {kind} passes without control");
        }
        let (r, out) = run(&mut rng, &stream, || true);
        r.unwrap();
        assert_eq!(out, stream, "type {kind} passes with control");
    }
}

#[test]
fn the_decision_is_per_message_when_its_head_is_complete() {
    // Key down allowed, then control is lost: a clipboard message is
    // skipped whole, the update request passes.
    let key_down = [4, 1, 0, 0, 0, 0, 0, 0x61];
    let cut = [6, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c'];
    let other_down = [4, 1, 0, 0, 0, 0, 0, 0x62];
    let update = [3, 1, 0, 0, 0, 0, 0, 10, 0, 10];
    let stream = [&[1u8][..], &key_down, &cut, &other_down, &update].concat();
    let mut answers = [true, false, false].into_iter();
    let mut gate = Gate::new();
    let mut out = Vec::new();
    gate.feed(&stream, &mut out, || answers.next().unwrap())
        .unwrap();
    assert_eq!(out, [&[1u8][..], &key_down, &update].concat());
    assert_eq!(gate.dropped, 2);
}

#[test]
fn what_was_let_down_is_let_up_after_control_ends() {
    let a_down = [4, 1, 0, 0, 0, 0, 0, 0x61];
    let a_up = [4, 0, 0, 0, 0, 0, 0, 0x61];
    let b_up = [4, 0, 0, 0, 0, 0, 0, 0x62];
    let q_down = [255, 0, 0, 1, 0, 0, 0, 0x63, 0, 0, 0, 0x2e];
    let q_up = [255, 0, 0, 0, 0, 0, 0, 0x63, 0, 0, 0, 0x2e];
    let press = [5, 1, 0, 10, 0, 20]; // button 1 down at (10, 20)
    let drag = [5, 1, 0, 90, 0, 90];
    let stream = [
        &[1u8][..],
        &a_down,
        &q_down,
        &press,
        &drag,
        &a_up,
        &b_up,
        &q_up,
        &a_up,
    ]
    .concat();
    // Control for the first three input messages only.
    let mut n = 0;
    let mut gate = Gate::new();
    let mut out = Vec::new();
    gate.feed(&stream, &mut out, || {
        n += 1;
        n <= 3
    })
    .unwrap();
    let release = [5, 0, 0, 10, 0, 20]; // every button up, where it was
    assert_eq!(
        out,
        [&[1u8][..], &a_down, &q_down, &press, &release, &a_up, &q_up].concat(),
        "the drag became a release; a and the QEMU key come up once; b (never let down) and the second a-up are dropped"
    );
    // Once released, nothing more is synthesized.
    out.clear();
    gate.feed(&drag, &mut out, || false).unwrap();
    assert!(out.is_empty());
}

#[test]
fn unknown_types_end_the_connection() {
    for stream in [&[1u8, 7][..], &[1, 253, 0, 0], &[1, 255, 1, 0, 0]] {
        let mut out = Vec::new();
        let err = Gate::new().feed(stream, &mut out, || true).unwrap_err();
        assert!(err.contains("does not relay"), "{err}");
    }
    // A known message cut before its type is known is just incomplete.
    let mut gate = Gate::new();
    let mut out = Vec::new();
    gate.feed(&[1, 255], &mut out, || true).unwrap();
    assert_eq!(out, [1]);
    gate.feed(&[0; 11], &mut out, || true).unwrap();
    assert_eq!(out.len(), 13);
}

#[test]
fn a_huge_clipboard_is_skipped_without_being_held() {
    // i32::MIN as an extended-clipboard length: 2 GiB announced; the gate
    // skips what arrives and keeps nothing.
    let mut gate = Gate::new();
    let mut out = Vec::new();
    let mut head = vec![1u8, 6, 0, 0, 0];
    head.extend(i32::MIN.to_be_bytes());
    gate.feed(&head, &mut out, || false).unwrap();
    for _ in 0..100 {
        gate.feed(&[0u8; 65536], &mut out, || false).unwrap();
    }
    assert_eq!(out, [1]);
    assert!(gate.head.capacity() <= 20);
}

/// The gate's rules over whole messages (no framing): the reference the
/// streaming gate is checked against.
#[derive(Default)]
struct Model {
    keys: std::collections::BTreeSet<(u8, Vec<u8>)>,
    buttons: u8,
    at: Vec<u8>,
}

impl Model {
    fn message(&mut self, m: &[u8], allowed: bool, out: &mut Vec<u8>) {
        let key = match m[0] {
            4 => Some((m[1] != 0, m[4..8].to_vec())),
            255 => Some((m[2] != 0 || m[3] != 0, m[4..12].to_vec())),
            _ => None,
        };
        let pass = match key {
            Some((true, id)) if allowed => {
                self.keys.insert((m[0], id));
                true
            }
            Some((_, id)) => self.keys.remove(&(m[0], id)) || allowed,
            None if m[0] == 5 && allowed => {
                self.buttons = m[1];
                self.at = m[2..6].to_vec();
                true
            }
            None if m[0] == 5 && self.buttons != 0 => {
                out.extend([5, 0]);
                out.extend(&self.at);
                self.buttons = 0;
                false
            }
            None => allowed,
        };
        if pass {
            out.extend(m);
        }
    }
}

#[test]
fn property_random_message_streams_cut_anywhere() {
    let mut rng = Rng::new(0x5eed);
    for _ in 0..2000 {
        let count = 1 + rng.below(30);
        let mut stream = vec![rng.below(2) as u8];
        let mut decisions = Vec::new();
        let mut model = Model::default();
        let mut want = stream.clone();
        for _ in 0..count {
            let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
            let mut m = message(&mut rng, kind);
            if kind == 4 || kind == 255 {
                // Few distinct keys, so presses and releases meet.
                let k = rng.below(3) as u8;
                m[4..8].copy_from_slice(&[0, 0, 0, k]);
            }
            if kind == 255 {
                m[8..12].copy_from_slice(&[0, 0, 0, 0]);
            }
            if is_input(kind) {
                let d = rng.below(2) == 0;
                decisions.push(d);
                model.message(&m, d, &mut want);
            } else {
                want.extend(&m);
            }
            stream.extend(m);
        }
        let mut asked = decisions.clone().into_iter();
        let (r, out) = run(&mut rng, &stream, || asked.next().expect("asked too often"));
        r.unwrap();
        assert_eq!(asked.next(), None, "asked once per input message");
        assert_eq!(out, want);
    }
}

#[test]
fn fuzz_random_bytes_never_panic_and_cutting_changes_nothing() {
    let mut rng = Rng::new(42);
    for _ in 0..5000 {
        let len = rng.below(200) as usize;
        let mut bytes = rng.bytes(len);
        // Bias towards known types so framing goes deep.
        for b in bytes.iter_mut().step_by(7) {
            *b = KINDS[usize::from(*b) % KINDS.len()];
        }
        let allow = rng.below(2) == 0;
        let mut whole = Gate::new();
        let mut out_whole = Vec::new();
        let r_whole = whole.feed(&bytes, &mut out_whole, || allow);
        let (r_cut, out_cut) = run(&mut rng, &bytes, || allow);
        assert_eq!(r_whole.is_ok(), r_cut.is_ok());
        if r_whole.is_ok() {
            assert_eq!(out_whole, out_cut);
            if allow {
                // All but an unfinished head at the end, held back.
                assert!(
                    bytes.starts_with(&out_whole),
                    "with control bytes pass as they are"
                );
                assert!(bytes.len() - out_whole.len() < 20);
            }
        }
        assert!(out_whole.len() <= bytes.len());
    }
}
