//! The input gate: the viewer's half of the RFB stream (RFC 6143 §7.5),
//! cut into messages so that keyboard, pointer, clipboard and screen-size
//! messages reach the VNC server only while the viewer may give input (a
//! human holds the live view's lease, `crate::lease`). Everything else
//! (pixel format, encodings, update requests, fences, continuous updates)
//! passes, so the screen keeps updating for everyone.
//!
//! This is server-side: a noVNC client with `view_only` switched off, or any
//! hand-written RFB client, is cut the same way. A message type not listed
//! here cannot be framed (RFB messages carry no length), so it ends the
//! connection rather than letting unknown bytes through.
//!
//! Every client message noVNC 1.3 can send (`RFB.messages` in
//! /usr/share/novnc/core/rfb.js) is framed: 0 SetPixelFormat, 2
//! SetEncodings, 3 FramebufferUpdateRequest, 4 KeyEvent, 5 PointerEvent, 6
//! ClientCutText (negative length: extended clipboard), 150
//! EnableContinuousUpdates, 248 ClientFence, 250 xvp, 251 SetDesktopSize,
//! 255/0 QEMU extended key event. The gate streams: only a message's fixed
//! head (at most 20 bytes) is held back until it is complete; bodies flow
//! (or are skipped) as they arrive, whatever their length.
//!
//! Control can end while the human holds a key or a mouse button (the
//! lease expires mid-drag). Dropping the release would leave it held in
//! the X server (auto-repeat, a drag that never ends), so the gate
//! remembers what it let down: the release of a key it let down always
//! passes, and the first pointer event dropped while buttons are down is
//! replaced by a release of every button where the pointer was. Nothing
//! else gets through: a release cannot type or click.

/// Where the gate is in the viewer's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The one-byte ClientInit (shared flag) still to pass.
    ClientInit,
    /// Collecting a message's head.
    Head,
    /// Inside a message's body: `left` bytes to pass on or skip.
    Body { left: u64, forward: bool },
}

/// Cuts the viewer's stream into messages and drops the input ones that
/// are not allowed.
#[derive(Debug, Clone)]
pub struct Gate {
    state: State,
    head: Vec<u8>,
    /// Input messages dropped so far (for the log).
    pub dropped: u64,
    /// Keys let down and not yet released: (message type, key bytes).
    held_keys: std::collections::BTreeSet<(u8, [u8; 8])>,
    /// Pointer buttons let down, and where the pointer was let to.
    buttons: u8,
    at: [u8; 4],
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// Whether a message type is input to the desktop: keys, pointer,
/// clipboard, screen size, xvp (shutdown/reboot), QEMU keys.
pub fn is_input(kind: u8) -> bool {
    matches!(kind, 4 | 5 | 6 | 250 | 251 | 255)
}

/// The length of a message's fixed head, from its first bytes; `Ok(None)`
/// while more bytes are needed to tell.
fn head_len(head: &[u8]) -> Result<Option<usize>, String> {
    let Some(&kind) = head.first() else {
        return Ok(None);
    };
    Ok(Some(match kind {
        0 => 20,
        2 => 4,
        3 => 10,
        4 => 8,
        5 => 6,
        6 => 8,
        150 => 10,
        248 => 9,
        250 => 4,
        251 => 8,
        255 => match head.get(1) {
            None => return Ok(None),
            Some(0) => 12,
            Some(sub) => {
                return Err(format!(
                    "the viewer sent QEMU message {sub}, which the live view does not relay"
                ))
            }
        },
        other => {
            return Err(format!(
                "the viewer sent RFB message type {other}, which the live view does not relay"
            ))
        }
    }))
}

/// The length of the body that follows a complete head.
fn body_len(head: &[u8]) -> u64 {
    let u16_at = |i: usize| u64::from(u16::from_be_bytes([head[i], head[i + 1]]));
    match head[0] {
        2 => 4 * u16_at(2),
        // Negative: extended clipboard, the length is its absolute value.
        6 => u64::from(i32::from_be_bytes([head[4], head[5], head[6], head[7]]).unsigned_abs()),
        248 => u64::from(head[8]),
        251 => 16 * u64::from(head[6]),
        _ => 0,
    }
}

/// A key message's identity and whether it presses: KeyEvent (4: down
/// flag, keysym) and QEMU extended key event (255/0: down, keysym, keycode).
fn key(head: &[u8]) -> Option<(bool, [u8; 8])> {
    let mut id = [0u8; 8];
    match head[0] {
        4 => {
            id[..4].copy_from_slice(&head[4..8]);
            Some((head[1] != 0, id))
        }
        255 => {
            id.copy_from_slice(&head[4..12]);
            Some((head[2] != 0 || head[3] != 0, id))
        }
        _ => None,
    }
}

impl Gate {
    /// Decides on the complete input message in `head`, keeping track of
    /// what is held down; may append a synthesized pointer release.
    fn input(&mut self, allowed: bool, out: &mut Vec<u8>) -> bool {
        let kind = self.head[0];
        if let Some((down, id)) = key(&self.head) {
            if allowed && down {
                self.held_keys.insert((kind, id));
                return true;
            }
            // A release passes if it was let down (even without control).
            return self.held_keys.remove(&(kind, id)) || allowed;
        }
        if kind == 5 {
            if allowed {
                self.buttons = self.head[1];
                self.at.copy_from_slice(&self.head[2..6]);
            } else if self.buttons != 0 {
                out.push(5);
                out.push(0);
                out.extend_from_slice(&self.at);
                self.buttons = 0;
            }
        }
        allowed
    }

    pub fn new() -> Gate {
        Gate {
            state: State::ClientInit,
            head: Vec::with_capacity(20),
            dropped: 0,
            held_keys: Default::default(),
            buttons: 0,
            at: [0; 4],
        }
    }

    /// Feeds the viewer's next bytes: what may reach the VNC server is
    /// appended to `out`. `may_input` is asked once per input message, when
    /// its head is complete. An error means the stream cannot be framed:
    /// close the connection.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        mut may_input: impl FnMut() -> bool,
    ) -> Result<(), String> {
        while !input.is_empty() {
            match &mut self.state {
                State::ClientInit => {
                    out.push(input[0]);
                    input = &input[1..];
                    self.state = State::Head;
                }
                State::Body { left, forward } => {
                    let n = (*left).min(input.len() as u64) as usize;
                    if *forward {
                        out.extend_from_slice(&input[..n]);
                    }
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head;
                    }
                }
                State::Head => {
                    // One byte at a time up to the head's length (heads
                    // are at most 20 bytes; bodies are taken in bulk).
                    let want = head_len(&self.head)?.unwrap_or(self.head.len() + 1);
                    let n = (want - self.head.len()).min(input.len());
                    self.head.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if head_len(&self.head)? != Some(self.head.len()) {
                        continue;
                    }
                    let forward = !is_input(self.head[0]) || self.input(may_input(), out);
                    if forward {
                        out.extend_from_slice(&self.head);
                    } else {
                        self.dropped += 1;
                    }
                    let left = body_len(&self.head);
                    self.head.clear();
                    if left > 0 {
                        self.state = State::Body { left, forward };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
