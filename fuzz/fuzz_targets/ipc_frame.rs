//! IPC frames: the u32 length prefix and the CBOR body of every message enum
//! of every channel. The first byte picks the message type; with its top bit
//! set the rest is one frame body, else a byte stream read frame by frame with
//! `read_frame` as a server does. Asserts decode∘encode: whatever decodes
//! re-encodes, the encoding decodes, and encoding that again gives the same bytes.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cowork::ipc::{self, FrameError};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(body: &[u8]) {
    let Ok(value) = ipc::decode::<T>(body) else {
        return;
    };
    let once = match ipc::encode(&value) {
        Ok(b) => b,
        Err(FrameError::TooLarge { .. }) => return,
        Err(e) => panic!(
            "a decoded {} does not encode: {e}",
            std::any::type_name::<T>()
        ),
    };
    let back: T = ipc::decode(&once).unwrap_or_else(|e| {
        panic!(
            "a re-encoded {} does not decode: {e}",
            std::any::type_name::<T>()
        )
    });
    let twice = ipc::encode(&back).expect("encodes twice");
    assert_eq!(
        once,
        twice,
        "{} changed in a round trip",
        std::any::type_name::<T>()
    );
}

fn check(kind: u8, body: &[u8]) {
    use ipc::Frame as F;
    match kind % 20 {
        0 => round_trip::<ipc::Hello>(body),
        1 => round_trip::<ipc::HelloReply>(body),
        2 => round_trip::<F<ipc::ComponentRequest>>(body),
        3 => round_trip::<F<ipc::ComponentResponse>>(body),
        4 => round_trip::<F<ipc::AdminRequest>>(body),
        5 => round_trip::<F<ipc::AdminResponse>>(body),
        6 => round_trip::<F<ipc::AuditRequest>>(body),
        7 => round_trip::<F<ipc::AuditResponse>>(body),
        8 => round_trip::<F<ipc::GatewayRequest>>(body),
        9 => round_trip::<F<ipc::GatewayResponse>>(body),
        10 => round_trip::<F<ipc::AgentRequest>>(body),
        11 => round_trip::<F<ipc::AgentResponse>>(body),
        12 => round_trip::<F<ipc::AccessRequest>>(body),
        13 => round_trip::<F<ipc::AccessResponse>>(body),
        14 => round_trip::<F<ipc::SettingsRequest>>(body),
        15 => round_trip::<F<ipc::SettingsResponse>>(body),
        16 => round_trip::<F<ipc::SandboxRequest>>(body),
        17 => round_trip::<F<ipc::SandboxResponse>>(body),
        18 => round_trip::<F<ipc::ControlRequest>>(body),
        _ => round_trip::<F<ipc::ControlResponse>>(body),
    }
}

/// Polls a future over an in-memory reader, which is always ready.
fn now<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("reading from memory is never pending"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind & 0x80 != 0 {
        check(kind, rest);
        return;
    }
    let mut stream = rest;
    while let Ok(Some(body)) = now(ipc::read_frame(&mut stream)) {
        assert!(body.len() <= ipc::MAX_FRAME_BYTES);
        check(kind, &body);
    }
});
