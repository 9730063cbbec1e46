//! The RFB (VNC) handshake, done by corral-live on both sides.
//!
//! x11vnc (libvncserver) also answers WebSocket upgrades on its RFB port and
//! checks no Origin, so a web page in the user's browser could open
//! `ws://127.0.0.1:5900/` and drive the screen: `-localhost` stops strangers,
//! not local pages. So x11vnc requires a VNC password that only corral-live
//! knows (a random one, written by `corral-live vnc-passwords` as x11vnc's
//! `pre_start`), and corral-live logs in on the viewer's behalf once the
//! viewer's token has been checked. The viewer is then offered "no
//! authentication": its token was its credential. x11vnc's `-passwdfile`
//! also has view-only passwords: the view token logs in with that one, and
//! x11vnc itself ignores that viewer's keyboard and mouse.

use std::path::Path;

use des::cipher::{BlockEncrypt, KeyInit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The full-control and the view-only password.
#[derive(Clone)]
pub struct Passwords {
    pub control: String,
    pub view: String,
}

const VIEWONLY_MARK: &str = "__BEGIN_VIEWONLY__";

/// Reads an x11vnc `-passwdfile`: the first line is the full-control
/// password, the first after `__BEGIN_VIEWONLY__` the view-only one.
pub fn read_passwords(path: &Path) -> Result<Passwords, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the VNC password file {}: {e}", path.display()))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let control = lines.next().filter(|l| *l != VIEWONLY_MARK);
    let view = lines.skip_while(|l| *l != VIEWONLY_MARK).nth(1);
    match (control, view) {
        (Some(c), Some(v)) => Ok(Passwords {
            control: c.to_string(),
            view: v.to_string(),
        }),
        _ => Err(format!(
            "{}: expected a password, then {VIEWONLY_MARK} and a view-only password",
            path.display()
        )),
    }
}

/// Writes fresh random passwords to `path` (mode 0600, replaced whole:
/// written aside, then renamed), for x11vnc's `-passwdfile` and for us.
pub fn write_passwords(path: &Path) -> Result<(), String> {
    let random = corral_serve::private::random_bytes::<16>()?;
    // RFB uses the first 8 bytes of a password: 8 characters from 64 each.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pick = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b & 63)] as char)
            .collect()
    };
    let text = format!(
        "{}\n{VIEWONLY_MARK}\n{}\n",
        pick(&random[..8]),
        pick(&random[8..])
    );
    corral_serve::private::write(path, text.as_bytes(), corral_serve::private::Place::Replace)
        .map(|_| ())
}

/// VNC authentication's answer to `challenge`: DES with the password (at
/// most 8 bytes, zero-padded, each byte's bits mirrored) as the key.
pub fn vnc_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new_from_slice(&key).expect("8-byte key");
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

fn fail(what: impl std::fmt::Display) -> String {
    format!("VNC handshake with the server: {what}")
}

/// Logs in to the VNC server on `stream` (RFB 3.8) with `password`, or with
/// no authentication when none is given and the server offers that. Returns
/// once the server has accepted: the next bytes are the viewer's ClientInit.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    password: Option<&str>,
) -> Result<(), String> {
    let mut version = [0u8; 12];
    stream.read_exact(&mut version).await.map_err(fail)?;
    if !version.starts_with(b"RFB 003.") {
        return Err(fail("not an RFB server"));
    }
    stream.write_all(b"RFB 003.008\n").await.map_err(fail)?;
    let n = stream.read_u8().await.map_err(fail)?;
    if n == 0 {
        return Err(fail(reason(stream).await));
    }
    let mut types = vec![0u8; usize::from(n)];
    stream.read_exact(&mut types).await.map_err(fail)?;
    match password {
        Some(pw) if types.contains(&2) => {
            stream.write_all(&[2]).await.map_err(fail)?;
            let mut challenge = [0u8; 16];
            stream.read_exact(&mut challenge).await.map_err(fail)?;
            stream
                .write_all(&vnc_response(pw, &challenge))
                .await
                .map_err(fail)?;
        }
        None if types.contains(&1) => stream.write_all(&[1]).await.map_err(fail)?,
        _ => return Err(fail(format!("no usable security type among {types:?}"))),
    }
    if stream.read_u32().await.map_err(fail)? != 0 {
        return Err(fail(format!("refused: {}", reason(stream).await)));
    }
    Ok(())
}

async fn reason<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let Ok(len) = stream.read_u32().await else {
        return "no reason given".into();
    };
    let mut text = vec![0u8; len.min(4096) as usize];
    match stream.read_exact(&mut text).await {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(_) => "no reason given".into(),
    }
}

/// The viewer's side: what corral-live says and expects, in order, to let
/// a viewer in with no further authentication. `Viewer` abstracts the
/// WebSocket so the exchange is testable with bytes.
pub trait Viewer {
    fn send(
        &mut self,
        bytes: &[u8],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    fn recv_exact(
        &mut self,
        n: usize,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send;
}

/// Greets the viewer as an RFB server offering no authentication (3.3,
/// 3.7 and 3.8 viewers). Returns once the viewer may send its ClientInit.
pub async fn greet<V: Viewer>(viewer: &mut V) -> Result<(), String> {
    viewer.send(b"RFB 003.008\n").await?;
    let version = viewer.recv_exact(12).await?;
    let minor = match &version[..] {
        b"RFB 003.008\n" => 8,
        b"RFB 003.007\n" => 7,
        v if v.starts_with(b"RFB 003.") => 3,
        _ => return Err("the viewer did not speak RFB".into()),
    };
    if minor == 3 {
        // 3.3: the server decides; "none" as a 32-bit type.
        return viewer.send(&1u32.to_be_bytes()).await;
    }
    viewer.send(&[1, 1]).await?;
    if viewer.recv_exact(1).await?[0] != 1 {
        return Err("the viewer chose a security type that was not offered".into());
    }
    if minor == 8 {
        viewer.send(&0u32.to_be_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
