//! The handshake pieces with bytes; tests/x11vnc.rs runs them against a
//! real x11vnc.

use super::*;

#[test]
fn password_files_round_trip_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/x11vnc.pass");
    write_passwords(&path).unwrap();
    let p = read_passwords(&path).unwrap();
    assert_eq!(p.control.len(), 8);
    assert_eq!(p.view.len(), 8);
    assert_ne!(p.control, p.view);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    write_passwords(&path).unwrap();
    assert_ne!(
        read_passwords(&path).unwrap().control,
        p.control,
        "fresh each time"
    );
    std::fs::write(&path, "only-one\n").unwrap();
    assert!(read_passwords(&path).is_err());
}

#[test]
fn the_vnc_response_is_des_with_mirrored_key_bits() {
    // The key for "\x80" is 0x01 00.. (bit 7 mirrored to bit 0): DES with
    // an all-zero-but-parity key and the same key are identical, so a
    // password of "\x80"-free ASCII must not equal the zero-key result.
    let challenge = [7u8; 16];
    let a = vnc_response("secret", &challenge);
    let b = vnc_response("secret", &challenge);
    assert_eq!(a, b);
    assert_ne!(a, vnc_response("secreT", &challenge));
    assert_eq!(&a[..8], &a[8..], "ECB: equal blocks give equal answers");
    // Only the first 8 characters count, as in RFB.
    assert_eq!(
        vnc_response("12345678", &challenge),
        vnc_response("123456789", &challenge)
    );
}

/// A viewer played from a script of bytes.
struct Scripted {
    incoming: Vec<u8>,
    sent: Vec<u8>,
}

impl Viewer for Scripted {
    fn send(
        &mut self,
        bytes: &[u8],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send {
        self.sent.extend_from_slice(bytes);
        std::future::ready(Ok(()))
    }
    fn recv_exact(
        &mut self,
        n: usize,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send {
        let r = if self.incoming.len() >= n {
            Ok(self.incoming.drain(..n).collect())
        } else {
            Err("closed".into())
        };
        std::future::ready(r)
    }
}

#[tokio::test]
async fn viewers_of_each_version_are_let_in_without_a_password() {
    let mut v38 = Scripted {
        incoming: b"RFB 003.008\n\x01".to_vec(),
        sent: vec![],
    };
    greet(&mut v38).await.unwrap();
    assert_eq!(v38.sent, b"RFB 003.008\n\x01\x01\x00\x00\x00\x00");
    let mut v37 = Scripted {
        incoming: b"RFB 003.007\n\x01".to_vec(),
        sent: vec![],
    };
    greet(&mut v37).await.unwrap();
    assert_eq!(v37.sent, b"RFB 003.008\n\x01\x01");
    let mut v33 = Scripted {
        incoming: b"RFB 003.003\n".to_vec(),
        sent: vec![],
    };
    greet(&mut v33).await.unwrap();
    assert_eq!(v33.sent, b"RFB 003.008\n\x00\x00\x00\x01");
    let mut wrong = Scripted {
        incoming: b"RFB 003.008\n\x02".to_vec(),
        sent: vec![],
    };
    assert!(greet(&mut wrong).await.is_err(), "VNC auth was not offered");
    let mut http = Scripted {
        incoming: b"GET / HTTP/1.1\r\n".to_vec(),
        sent: vec![],
    };
    assert!(greet(&mut http).await.is_err());
}

#[tokio::test]
async fn login_answers_the_challenge_and_reports_a_refusal() {
    let (mut ours, mut server) = tokio::io::duplex(1024);
    let srv = tokio::spawn(async move {
        server.write_all(b"RFB 003.008\n").await.unwrap();
        let mut v = [0u8; 12];
        server.read_exact(&mut v).await.unwrap();
        server.write_all(&[1, 2]).await.unwrap();
        assert_eq!(server.read_u8().await.unwrap(), 2);
        let challenge = [42u8; 16];
        server.write_all(&challenge).await.unwrap();
        let mut answer = [0u8; 16];
        server.read_exact(&mut answer).await.unwrap();
        let ok = answer == vnc_response("pw", &challenge);
        if ok {
            server.write_u32(0).await.unwrap();
        } else {
            server.write_u32(1).await.unwrap();
            server.write_u32(4).await.unwrap();
            server.write_all(b"nope").await.unwrap();
        }
        ok
    });
    login(&mut ours, Some("pw")).await.unwrap();
    assert!(srv.await.unwrap());
    let (mut ours, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        server.write_all(b"RFB 003.008\n\x01\x02").await.unwrap();
        let mut rest = [0u8; 12 + 1];
        server.read_exact(&mut rest).await.unwrap();
    });
    let e = login(&mut ours, None).await.unwrap_err();
    assert!(e.contains("no usable security type"), "{e}");
}
