//! corral-live in front of a real x11vnc on a real Xvfb: the viewer with
//! the live token gets the screen, and moves the pointer only while a
//! control lease is current (view-only by default; input stops at the
//! lease's expiry, measured); the view token's viewer gets the screen and
//! its pointer never gets through, lease or not; and x11vnc's own port,
//! which a web page can reach, offers no way in without the password.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_serve::live_lease::{self, Lease};

use corral_testkit::{free_display, free_port, wait_until};
use tungstenite::{ClientRequestBuilder, Message};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Kill(Vec<Child>);

impl Drop for Kill {
    /// Last started first (x11vnc before its Xvfb), with SIGTERM: a
    /// SIGKILLed x11vnc leaves its ~40 MIT-SHM segments in the machine's
    /// table for good.
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            corral_testkit::stop(c, Duration::from_secs(5));
        }
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn mouse_x(display: &str) -> i32 {
    let out = Command::new("xdotool")
        .arg("getmouselocation")
        .env("DISPLAY", display)
        .output()
        .expect("xdotool");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("x:"))
        .and_then(|x| x.parse().ok())
        .expect("x: in xdotool's answer")
}

/// Logs in through corral-live as noVNC does; returns the socket and the
/// ServerInit's width.
fn viewer(
    port: u16,
    token: &str,
) -> (
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    u16,
) {
    let url: tungstenite::http::Uri = format!("ws://127.0.0.1:{port}/websockify?token={token}")
        .parse()
        .unwrap();
    let req = ClientRequestBuilder::new(url).with_sub_protocol("binary");
    let (mut ws, _) = tungstenite::connect(req).expect("upgrade");
    let mut inbox = Vec::new();
    let mut read = |ws: &mut tungstenite::WebSocket<_>, n: usize| -> Vec<u8> {
        while inbox.len() < n {
            if let Message::Binary(b) = ws.read().expect("read") {
                inbox.extend_from_slice(&b);
            }
        }
        inbox.drain(..n).collect()
    };
    assert_eq!(read(&mut ws, 12), b"RFB 003.008\n");
    ws.send(Message::binary(b"RFB 003.008\n".to_vec())).unwrap();
    assert_eq!(read(&mut ws, 2), [1, 1], "one security type: none");
    ws.send(Message::binary(vec![1])).unwrap();
    assert_eq!(read(&mut ws, 4), [0, 0, 0, 0], "security result: ok");
    ws.send(Message::binary(vec![1])).unwrap(); // ClientInit: shared
    let init = read(&mut ws, 24);
    let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
    read(&mut ws, name_len);
    (ws, u16::from_be_bytes([init[0], init[1]]))
}

fn pointer(ws: &mut Ws, x: u16, y: u16) {
    let mut msg = vec![5, 0];
    msg.extend_from_slice(&x.to_be_bytes());
    msg.extend_from_slice(&y.to_be_bytes());
    ws.send(Message::binary(msg)).unwrap();
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// Waits until x11vnc has handled everything this viewer sent before: a
/// FramebufferUpdateRequest for one pixel (not input: the gate passes it),
/// answered in order after the messages before it. With no SetEncodings
/// sent, every rectangle is raw, 32 bits a pixel (x11vnc may add the
/// regions that changed meanwhile); bells and cut text are skipped.
fn barrier(ws: &mut Ws) {
    ws.send(Message::binary(vec![3, 0, 0, 0, 0, 0, 0, 1, 0, 1]))
        .unwrap();
    let mut inbox = Vec::new();
    let mut read = |ws: &mut Ws, n: usize| -> Vec<u8> {
        while inbox.len() < n {
            if let Message::Binary(b) = ws.read().expect("read") {
                inbox.extend_from_slice(&b);
            }
        }
        inbox.drain(..n).collect()
    };
    loop {
        match read(ws, 1)[0] {
            0 => {
                let h = read(ws, 3);
                for _ in 0..u16::from_be_bytes([h[1], h[2]]) {
                    let r = read(ws, 12);
                    let (w, h) = (
                        u16::from_be_bytes([r[4], r[5]]) as usize,
                        u16::from_be_bytes([r[6], r[7]]) as usize,
                    );
                    assert_eq!(&r[8..12], &[0, 0, 0, 0], "raw encoding");
                    read(ws, w * h * 4);
                }
                return;
            }
            2 => {}
            3 => {
                let h = read(ws, 7);
                read(ws, u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize);
            }
            t => panic!("unexpected server message {t}"),
        }
    }
}

fn lease(path: &std::path::Path, expires_at_ms: u64) {
    live_lease::write(
        path,
        &Lease {
            holder: "tester".into(),
            lease_id: "l-1".into(),
            taken_at_ms: live_lease::now_ms(),
            expires_at_ms,
        },
    )
    .unwrap();
}

#[test]
fn live_and_view_tokens_through_a_password_protected_x11vnc() {
    let n = free_display();
    let display = format!(":{n}");
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("x11vnc.pass");
    let lease_file = dir.path().join("live-lease.json");
    let (vnc_port, live_port) = (free_port(), free_port());
    let mut kids = Kill(Vec::new());
    kids.0.push(spawn(Command::new("Xvfb").args([
        display.as_str(),
        "-screen",
        "0",
        "640x480x24",
        "-nolisten",
        "tcp",
    ])));
    wait_until("Xvfb", TIMEOUT, || {
        std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
    });
    let status = Command::new(env!("CARGO_BIN_EXE_corral-live"))
        .args(["vnc-passwords", passwd.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    kids.0.push(spawn(Command::new("x11vnc").args([
        "-display",
        &display,
        "-rfbport",
        &vnc_port.to_string(),
        "-localhost",
        "-forever",
        "-shared",
        "-passwdfile",
        passwd.to_str().unwrap(),
        "-quiet",
        "-noxdamage",
    ])));
    wait_until("x11vnc", TIMEOUT, || listening(vnc_port));

    // What a web page reaches directly (x11vnc answers WebSockets there too):
    // the only way in is the VNC password.
    let mut raw = TcpStream::connect(("127.0.0.1", vnc_port)).unwrap();
    raw.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut banner = [0u8; 12];
    raw.read_exact(&mut banner).unwrap();
    raw.write_all(b"RFB 003.008\n").unwrap();
    let mut count = [0u8; 1];
    raw.read_exact(&mut count).unwrap();
    let mut types = vec![0u8; count[0] as usize];
    raw.read_exact(&mut types).unwrap();
    assert_eq!(
        types,
        [2],
        "x11vnc offers VNC authentication only, never none"
    );

    kids.0.push(spawn(
        Command::new(env!("CARGO_BIN_EXE_corral-live"))
            .args([
                "--listen",
                &format!("127.0.0.1:{live_port}"),
                "--web",
                "/usr/share/novnc",
            ])
            .args([
                "--upstream",
                &format!("127.0.0.1:{vnc_port}"),
                "--vnc-password-file",
                passwd.to_str().unwrap(),
                "--live-lease-file",
                lease_file.to_str().unwrap(),
            ])
            .env("CORRAL_LIVE_TOKEN", "live-token")
            .env("CORRAL_LIVE_VIEW_TOKEN", "view-token"),
    ));
    wait_until("corral-live", TIMEOUT, || listening(live_port));

    let (mut control, width) = viewer(live_port, "live-token");
    assert_eq!(width, 640, "the screen's own size");
    let x0 = mouse_x(&display);
    assert_ne!(x0, 100);
    // View-only by default: no lease, the control viewer's pointer is dropped.
    pointer(&mut control, 100, 100);
    barrier(&mut control);
    assert_eq!(mouse_x(&display), x0, "no lease: the pointer did not move");

    // A lease: the same connection's pointer gets through.
    lease(&lease_file, live_lease::now_ms() + 60_000);
    pointer(&mut control, 100, 100);
    wait_until(
        "the live viewer's pointer to move the X pointer",
        TIMEOUT,
        || mouse_x(&display) == 100,
    );

    // The view token never gets input, lease or not.
    let (mut view, width) = viewer(live_port, "view-token");
    assert_eq!(width, 640);
    pointer(&mut view, 300, 300);
    barrier(&mut view);
    assert_eq!(
        mouse_x(&display),
        100,
        "the view-only viewer's pointer was dropped"
    );

    // A lease about to end: the pointer follows until the expiry, and is
    // dropped from the first event sent after it.
    let expires = live_lease::now_ms() + 1_500;
    lease(&lease_file, expires);
    let mut x = 100u16;
    let (mut last_followed, mut first_dropped) = (0u64, None);
    while first_dropped.is_none() {
        x = if x == 100 { 200 } else { 100 };
        let sent = live_lease::now_ms();
        pointer(&mut control, x, 100);
        barrier(&mut control);
        if mouse_x(&display) == i32::from(x) {
            last_followed = sent;
        } else {
            first_dropped = Some(sent);
        }
        assert!(
            sent < expires + 5_000,
            "input still followed 5 s after the expiry"
        );
    }
    let first_dropped = first_dropped.unwrap();
    eprintln!(
        "lease expiry at {expires}: last input followed sent at {} ms before, first dropped sent {} ms after",
        expires as i64 - last_followed as i64,
        first_dropped as i64 - expires as i64
    );
    assert!(
        last_followed < expires,
        "no input after the expiry got through"
    );
    assert!(
        last_followed + 100 >= expires,
        "input was followed until (nearly) the expiry"
    );
    assert!(first_dropped >= expires - 100);
    // Released (the file removed): still dropped.
    live_lease::remove(&lease_file).unwrap();
    pointer(&mut control, 300, 100);
    barrier(&mut control);
    assert_ne!(mouse_x(&display), 300);

    // No token: refused before any byte of RFB.
    let url = format!("ws://127.0.0.1:{live_port}/websockify");
    match tungstenite::connect(url) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}
