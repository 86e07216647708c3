//! IPC under hostile input: an oversized frame, garbage CBOR, an unknown request,
//! a wrong protocol version, a peer whose uid the table does not allow and a
//! request the peer table forbids are each refused with an error, while the server
//! keeps serving other clients. Also: request ids multiplex, clients reconnect;
//! `audit.known-secrets` (the vault's values) with malformed values, over the
//! frame cap, or from a sender other than the gateway is refused;
//! `gateway.identity-confirm` from other than the supervisor or the admin
//! page, or of the wrong shape, is refused.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cowork::ipc::{
    self, Client, Component, ComponentRequest, ComponentResponse, ErrorCode, Frame, Health, Hello,
    HelloReply, PROTOCOL_VERSION, Peer, PeerAuth, Role, Service,
};
use tokio::sync::watch;

struct Echo;

impl Service for Echo {
    type Request = ComponentRequest;
    type Response = ComponentResponse;
    fn role(&self) -> Role {
        Role::Audit
    }
    async fn handle(&self, _peer: Peer, req: ComponentRequest) -> ComponentResponse {
        match req {
            ComponentRequest::Ping => ComponentResponse::Pong(Health {
                component: Component::Audit,
                pid: std::process::id(),
                ready: true,
                summary: None,
                stores: Vec::new(),
            }),
            _ => ComponentResponse::Done,
        }
    }
}

fn me() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

/// Starts a server on its own runtime thread; returns the socket path.
fn server(dir: &Path, auth: PeerAuth) -> (PathBuf, watch::Sender<bool>) {
    serve_on(dir.join("audit.sock"), auth, Echo)
}

/// Serves `service` at `path` on its own runtime thread.
fn serve_on<S>(path: PathBuf, auth: PeerAuth, service: S) -> (PathBuf, watch::Sender<bool>)
where
    S: Service<Request = ComponentRequest, Response = ComponentResponse>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let listener = ipc::bind_socket(&p, 0o600).expect("bind");
            ready_tx.send(()).expect("ready");
            ipc::serve(listener, Arc::new(auth), Arc::new(service), stop_rx).await;
        });
    });
    ready_rx.recv().expect("server up");
    (path, stop_tx)
}

fn raw_frame(s: &mut StdStream, body: &[u8]) {
    s.write_all(&(body.len() as u32).to_be_bytes())
        .expect("write len");
    s.write_all(body).expect("write body");
}

fn read_raw(s: &mut StdStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn connect(path: &Path, role: Role, protocol: u32) -> (StdStream, HelloReply) {
    let mut s = StdStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    raw_frame(
        &mut s,
        &ipc::encode(&Hello { protocol, role }).expect("hello"),
    );
    let reply: HelloReply = ipc::decode(&read_raw(&mut s).expect("hello reply")).expect("decode");
    (s, reply)
}

fn ping(s: &mut StdStream, id: u64) -> Frame<ComponentResponse> {
    raw_frame(
        s,
        &ipc::encode(&Frame {
            id,
            body: ComponentRequest::Ping,
        })
        .expect("enc"),
    );
    ipc::decode(&read_raw(s).expect("answer")).expect("decode")
}

fn error_code(f: &Frame<ComponentResponse>) -> Option<ErrorCode> {
    match &f.body {
        ComponentResponse::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn hostile_frames_are_refused_and_others_keep_being_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _stop) = server(dir.path(), PeerAuth::SharedUid(me()));
    let (mut good, reply) = connect(&path, Role::Supervisor, PROTOCOL_VERSION);
    assert!(matches!(
        reply,
        HelloReply::Accepted {
            server: Role::Audit
        }
    ));
    assert!(matches!(
        ping(&mut good, 1).body,
        ComponentResponse::Pong(_)
    ));

    // Garbage CBOR inside a well-formed frame: an error, the connection survives.
    let (mut bad, _) = connect(&path, Role::Supervisor, PROTOCOL_VERSION);
    raw_frame(&mut bad, &[0xff, 0xfe, 0x00, 0x42]);
    let answer: Frame<ComponentResponse> =
        ipc::decode(&read_raw(&mut bad).expect("answer")).expect("decode");
    assert_eq!(error_code(&answer), Some(ErrorCode::Malformed));
    assert!(matches!(ping(&mut bad, 2).body, ComponentResponse::Pong(_)));

    // An unknown request variant.
    #[derive(serde::Serialize)]
    enum Evil {
        FormatDisk,
    }
    raw_frame(
        &mut bad,
        &ipc::encode(&Frame {
            id: 3,
            body: Evil::FormatDisk,
        })
        .expect("enc"),
    );
    let answer: Frame<ComponentResponse> =
        ipc::decode(&read_raw(&mut bad).expect("answer")).expect("decode");
    assert_eq!(error_code(&answer), Some(ErrorCode::Malformed));

    // Trailing bytes after a valid request.
    let mut bytes = ipc::encode(&Frame {
        id: 4,
        body: ComponentRequest::Ping,
    })
    .expect("enc");
    bytes.extend_from_slice(b"tail");
    raw_frame(&mut bad, &bytes);
    let answer: Frame<ComponentResponse> =
        ipc::decode(&read_raw(&mut bad).expect("answer")).expect("decode");
    assert_eq!(error_code(&answer), Some(ErrorCode::Malformed));

    // An oversized frame: refused, then the connection is closed.
    bad.write_all(&((ipc::MAX_FRAME_BYTES as u32) + 1).to_be_bytes())
        .expect("len");
    let answer: Frame<ComponentResponse> =
        ipc::decode(&read_raw(&mut bad).expect("answer")).expect("decode");
    assert_eq!(error_code(&answer), Some(ErrorCode::TooLarge));
    assert!(
        read_raw(&mut bad).is_none(),
        "connection must be closed after an oversized frame"
    );

    // A wrong protocol version is refused at hello.
    let (_, reply) = connect(&path, Role::Supervisor, PROTOCOL_VERSION + 1);
    assert!(matches!(reply, HelloReply::Refused { .. }));

    // A request the table forbids for this sender.
    let (mut gw, reply) = connect(&path, Role::Gateway, PROTOCOL_VERSION);
    assert!(matches!(reply, HelloReply::Accepted { .. }));
    assert_eq!(error_code(&ping(&mut gw, 5)), Some(ErrorCode::Forbidden));

    // Through all of it the first client kept being served.
    assert!(matches!(
        ping(&mut good, 6).body,
        ComponentResponse::Pong(_)
    ));
}

fn known_secrets(values: Vec<Vec<u8>>) -> ComponentRequest {
    ComponentRequest::Audit(ipc::AuditRequest::KnownSecrets(ipc::KnownSecrets {
        values: values.into_iter().map(ipc::SecretBytes).collect(),
    }))
}

fn answer_to(s: &mut StdStream, body: &[u8]) -> Frame<ComponentResponse> {
    raw_frame(s, body);
    ipc::decode(&read_raw(s).expect("answer")).expect("decode")
}

#[test]
fn hostile_known_secrets_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _stop) = server(dir.path(), PeerAuth::SharedUid(me()));
    let (mut gw, _) = connect(&path, Role::Gateway, PROTOCOL_VERSION);
    // Well-formed from the gateway: served.
    let ok = ipc::encode(&Frame {
        id: 1,
        body: known_secrets(vec![b"a-vault-value".to_vec()]),
    })
    .expect("enc");
    assert_eq!(error_code(&answer_to(&mut gw, &ok)), None);

    // Values that are text, not byte strings; an audit variant that does not exist.
    #[derive(serde::Serialize)]
    enum Evil {
        Audit(EvilAudit),
    }
    #[derive(serde::Serialize)]
    enum EvilAudit {
        KnownSecrets {
            values: Vec<String>,
        },
        #[allow(dead_code)]
        KnownSecretsMap(std::collections::BTreeMap<String, u8>),
    }
    let text_values = ipc::encode(&Frame {
        id: 2,
        body: Evil::Audit(EvilAudit::KnownSecrets {
            values: vec!["not bytes".into()],
        }),
    })
    .expect("enc");
    assert_eq!(
        error_code(&answer_to(&mut gw, &text_values)),
        Some(ErrorCode::Malformed)
    );
    let map = ipc::encode(&Frame {
        id: 3,
        body: Evil::Audit(EvilAudit::KnownSecretsMap(Default::default())),
    })
    .expect("enc");
    assert_eq!(
        error_code(&answer_to(&mut gw, &map)),
        Some(ErrorCode::Malformed)
    );
    // Truncated: the frame cut in the middle of a value.
    assert_eq!(
        error_code(&answer_to(&mut gw, &ok[..ok.len() - 4])),
        Some(ErrorCode::Malformed)
    );

    // Over the frame cap: the sender cannot even encode it...
    let huge = known_secrets(vec![vec![b'x'; ipc::MAX_FRAME_BYTES]]);
    assert!(ipc::encode(&Frame { id: 4, body: huge }).is_err());
    // ...and a raw length over the cap is refused before reading.
    gw.write_all(&((ipc::MAX_FRAME_BYTES as u32) + 1).to_be_bytes())
        .expect("len");
    let answer: Frame<ComponentResponse> =
        ipc::decode(&read_raw(&mut gw).expect("answer")).expect("decode");
    assert_eq!(error_code(&answer), Some(ErrorCode::TooLarge));

    // Only the gateway may send the vault's values.
    for role in [Role::Supervisor, Role::Sandbox, Role::Admin] {
        let (mut other, _) = connect(&path, role, PROTOCOL_VERSION);
        assert_eq!(
            error_code(&answer_to(&mut other, &ok)),
            Some(ErrorCode::Forbidden),
            "{role:?}"
        );
    }
}

#[test]
fn peer_uid_not_in_table_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Production-style table where our uid is the gateway's.
    let (path, _stop) = server(dir.path(), PeerAuth::PerUser(vec![(me(), Role::Gateway)]));
    let (_, reply) = connect(&path, Role::Supervisor, PROTOCOL_VERSION);
    match reply {
        HelloReply::Refused { reason } => {
            assert!(reason.contains("belongs to gateway"), "{reason}")
        }
        other => panic!("expected refusal, got {other:?}"),
    }
    let (mut gw, reply) = connect(&path, Role::Gateway, PROTOCOL_VERSION);
    assert!(matches!(reply, HelloReply::Accepted { .. }));
    assert_eq!(error_code(&ping(&mut gw, 1)), Some(ErrorCode::Forbidden));

    // A table without our uid at all.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (path2, _stop2) = server(
        dir2.path(),
        PeerAuth::PerUser(vec![(me().wrapping_add(4242), Role::Supervisor)]),
    );
    let (_, reply) = connect(&path2, Role::Supervisor, PROTOCOL_VERSION);
    assert!(matches!(reply, HelloReply::Refused { .. }));
}

#[test]
fn client_multiplexes_and_reconnects_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, stop) = server(dir.path(), PeerAuth::SharedUid(me()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let client = Arc::new(Client::<ComponentRequest, ComponentResponse>::new(
            &path,
            Role::Supervisor,
            Duration::from_secs(3),
        ));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let c = Arc::clone(&client);
            set.spawn(async move {
                matches!(
                    c.call(ComponentRequest::Ping).await,
                    Ok(ComponentResponse::Pong(_))
                )
            });
        }
        assert!(set.join_all().await.into_iter().all(|ok| ok));

        // Restart the server on the same path; the same client carries on.
        stop.send(true).expect("stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_path, _stop2) = server(dir.path(), PeerAuth::SharedUid(me()));
        let mut answered = false;
        for _ in 0..3 {
            if let Ok(ComponentResponse::Pong(_)) = client.call(ComponentRequest::Ping).await {
                answered = true;
                break;
            }
        }
        assert!(answered, "client did not reconnect");
    });
}

/// A gateway that answers every owner request it is let through.
struct GatewayEcho;

impl Service for GatewayEcho {
    type Request = ComponentRequest;
    type Response = ComponentResponse;
    fn role(&self) -> Role {
        Role::Gateway
    }
    async fn handle(&self, _peer: Peer, req: ComponentRequest) -> ComponentResponse {
        match req {
            ComponentRequest::Gateway(ipc::GatewayRequest::Access {
                request: ipc::AccessRequest::IdentityConfirm { .. },
                ..
            }) => ComponentResponse::Gateway(ipc::GatewayResponse::Access(
                ipc::AccessResponse::Changed(1),
            )),
            _ => ComponentResponse::Error(ipc::WireError::new(ErrorCode::BadRequest, "unexpected")),
        }
    }
}

/// `gateway.identity-confirm` (`coworkctl channels trust`): served from the
/// supervisor (for coworkctl) and the admin page only; a confirmation of
/// the wrong shape (a number as an integer, a field missing, a variant that
/// does not exist, trailing bytes) is malformed.
#[test]
fn identity_confirmations_come_from_the_owner_only_and_hostile_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _stop) = serve_on(
        dir.path().join("gateway.sock"),
        PeerAuth::SharedUid(me()),
        GatewayEcho,
    );

    let confirm = |id: u64| {
        ipc::encode(&Frame {
            id,
            body: ComponentRequest::Gateway(ipc::GatewayRequest::Access {
                actor: "ctl:0".into(),
                request: ipc::AccessRequest::IdentityConfirm {
                    channel: "signal".into(),
                    sender: "7ccae375-cd51-4c82-8b1e-7be3280aa485".into(),
                    safety_number: "1".repeat(60),
                },
            }),
        })
        .expect("enc")
    };
    for role in [Role::Supervisor, Role::Admin] {
        let (mut owner, _) = connect(&path, role, PROTOCOL_VERSION);
        assert_eq!(
            error_code(&answer_to(&mut owner, &confirm(1))),
            None,
            "{role:?}"
        );
    }
    for role in [Role::Gateway, Role::Sandbox, Role::Audit, Role::Ctl] {
        let (mut other, _) = connect(&path, role, PROTOCOL_VERSION);
        assert_eq!(
            error_code(&answer_to(&mut other, &confirm(2))),
            Some(ErrorCode::Forbidden),
            "{role:?}"
        );
    }

    #[derive(serde::Serialize)]
    enum Evil {
        Gateway(EvilGateway),
    }
    #[derive(serde::Serialize)]
    enum EvilGateway {
        Access { actor: String, request: EvilAccess },
    }
    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum EvilAccess {
        IdentityConfirm {
            channel: String,
            sender: String,
            safety_number: u64,
        },
        /// The real variant's name with a field missing.
        #[serde(rename = "IdentityConfirm")]
        Short {
            channel: String,
        },
        ConfirmEveryIdentity,
    }
    let evil = |id: u64, request: EvilAccess| {
        ipc::encode(&Frame {
            id,
            body: Evil::Gateway(EvilGateway::Access {
                actor: "ctl:0".into(),
                request,
            }),
        })
        .expect("enc")
    };
    let (mut owner, _) = connect(&path, Role::Supervisor, PROTOCOL_VERSION);
    let number_as_integer = evil(
        3,
        EvilAccess::IdentityConfirm {
            channel: "signal".into(),
            sender: "x".into(),
            safety_number: 123,
        },
    );
    let missing = evil(
        4,
        EvilAccess::Short {
            channel: "signal".into(),
        },
    );
    for (what, body) in [
        ("a number as an integer", number_as_integer),
        ("a field missing", missing),
        (
            "an unknown variant",
            evil(5, EvilAccess::ConfirmEveryIdentity),
        ),
    ] {
        assert_eq!(
            error_code(&answer_to(&mut owner, &body)),
            Some(ErrorCode::Malformed),
            "{what}"
        );
    }
    let mut trailing = confirm(6);
    trailing.extend_from_slice(b"\x00\x00");
    assert_eq!(
        error_code(&answer_to(&mut owner, &trailing)),
        Some(ErrorCode::Malformed)
    );
    // A huge sender fits no frame.
    let huge = ipc::encode(&Frame {
        id: 7,
        body: ComponentRequest::Gateway(ipc::GatewayRequest::Access {
            actor: "ctl:0".into(),
            request: ipc::AccessRequest::IdentityConfirm {
                channel: "signal".into(),
                sender: "x".repeat(ipc::MAX_FRAME_BYTES),
                safety_number: String::new(),
            },
        }),
    });
    assert!(huge.is_err());
}
