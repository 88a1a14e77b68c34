//! Closing a connection rumqttd gives no call for: connect with the same client id, which makes
//! the broker drop the older connection (session take-over, MQTT 3.1.1 §3.1.4), then disconnect.
//! Blocking I/O with short time-outs, run on a thread of its own; rumqttd's own codec writes
//! and reads the packets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use rand::RngCore;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{
    ConnAck, Connect, ConnectReturnCode, Disconnect, DisconnectReasonCode, Login, Packet, Protocol,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A CONNACK is 4 bytes; anything longer is not one.
const MAX_ANSWER: usize = 64;

/// A fresh secret for the take-over user, known only to this process.
pub(crate) fn generate_password() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn take_over(
    addr: SocketAddr,
    client_id: &str,
    user: &str,
    password: &str,
) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let connect = Packet::Connect(
        Connect {
            keep_alive: 10,
            client_id: client_id.to_owned(),
            clean_session: true,
        },
        None,
        None,
        None,
        Some(Login {
            username: user.to_owned(),
            password: password.to_owned(),
        }),
    );
    send(&mut stream, connect)?;
    let mut buffer = BytesMut::new();
    let mut chunk = [0u8; MAX_ANSWER];
    let answer = loop {
        match V4.read_mut(&mut buffer, MAX_ANSWER) {
            Ok(packet) => break packet,
            Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("unreadable answer: {e:?}")),
        }
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the broker closed the connection".to_owned());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    match answer {
        Packet::ConnAck(
            ConnAck {
                code: ConnectReturnCode::Success,
                ..
            },
            _,
        ) => {}
        other => return Err(format!("the broker answered {other:?}")),
    }
    send(
        &mut stream,
        Packet::Disconnect(
            Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            },
            None,
        ),
    )
}

fn send(stream: &mut TcpStream, packet: Packet) -> Result<(), String> {
    let mut out = BytesMut::new();
    V4.write(packet, &mut out)
        .map_err(|e| format!("cannot encode: {e:?}"))?;
    stream.write_all(&out).map_err(|e| e.to_string())
}
