//! The MQTT 3.1.1 conversation of the guide's test, over any byte stream:
//! CONNECT → CONNACK, SUBSCRIBE → SUBACK, PUBLISH (QoS 1) → PUBACK and the
//! same message delivered back, DISCONNECT. Packets are encoded and decoded
//! with rumqttc's public `mqttbytes` v4 types.
//!
//! Owns: framing packets on the stream and the order of the exchange.
//! Does not own: connecting (see `connection`), time limits or error wording
//! (see `probe` and `error`). Credentials pass through and are never logged.

use std::io;

use bytes::BytesMut;
use rumqttc::mqttbytes::Error as PacketError;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest packet accepted either way; the probe's packets are tiny.
const MAX_PACKET: usize = 256 * 1024;
/// Keep-alive announced in CONNECT, seconds.
const KEEP_ALIVE_SECS: u16 = 30;
const SUBSCRIBE_PKID: u16 = 1;
const PUBLISH_PKID: u16 = 2;

/// An MQTT client conversation on `S`.
pub(crate) struct Session<S> {
    stream: S,
    buf: BytesMut,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(crate) fn new(stream: S) -> Session<S> {
        Session {
            stream,
            buf: BytesMut::with_capacity(4096),
        }
    }

    async fn send(&mut self, packet: Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, MAX_PACKET)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    async fn recv(&mut self) -> io::Result<Packet> {
        loop {
            match Packet::read(&mut self.buf, MAX_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(PacketError::InsufficientBytes(_)) => {}
                Err(e) => return Err(invalid(format!("malformed MQTT packet: {e}"))),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                ));
            }
        }
    }

    /// CONNECT with a clean session; returns the CONNACK code.
    pub(crate) async fn connect(
        &mut self,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> io::Result<ConnectReturnCode> {
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
        connect.clean_session = true;
        connect.keep_alive = KEEP_ALIVE_SECS;
        if let Some((user, password)) = login {
            connect.set_login(user, password);
        }
        self.send(Packet::Connect(connect)).await?;
        match self.recv().await? {
            Packet::ConnAck(ack) => Ok(ack.code),
            other => Err(invalid(format!(
                "expected CONNACK, the broker sent {}",
                packet_name(&other)
            ))),
        }
    }

    /// SUBSCRIBE at QoS 1; returns whether the broker granted it.
    pub(crate) async fn subscribe(&mut self, topic: &str) -> io::Result<bool> {
        let mut subscribe = Subscribe::new(topic, QoS::AtLeastOnce);
        subscribe.pkid = SUBSCRIBE_PKID;
        self.send(Packet::Subscribe(subscribe)).await?;
        loop {
            match self.recv().await? {
                Packet::SubAck(ack) if ack.pkid == SUBSCRIBE_PKID => {
                    return Ok(ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_))));
                }
                Packet::PingResp => {}
                Packet::Publish(p) => self.ack_foreign(&p).await?,
                other => {
                    return Err(invalid(format!(
                        "expected SUBACK, the broker sent {}",
                        packet_name(&other)
                    )));
                }
            }
        }
    }

    /// PUBLISH `payload` at QoS 1 and wait until both its PUBACK and the same
    /// message (delivered through the subscription) have arrived.
    pub(crate) async fn round_trip(&mut self, topic: &str, payload: &[u8]) -> io::Result<()> {
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
        publish.pkid = PUBLISH_PKID;
        self.send(Packet::Publish(publish)).await?;
        let (mut acked, mut received) = (false, false);
        while !(acked && received) {
            match self.recv().await? {
                Packet::PubAck(ack) if ack.pkid == PUBLISH_PKID => acked = true,
                Packet::Publish(p) => {
                    self.ack_foreign(&p).await?;
                    if p.topic == topic && p.payload.as_ref() == payload {
                        received = true;
                    }
                }
                Packet::PingResp => {}
                other => {
                    return Err(invalid(format!(
                        "expected PUBACK or PUBLISH, the broker sent {}",
                        packet_name(&other)
                    )));
                }
            }
        }
        Ok(())
    }

    async fn ack_foreign(&mut self, p: &Publish) -> io::Result<()> {
        if p.qos == QoS::AtLeastOnce {
            self.send(Packet::PubAck(PubAck::new(p.pkid))).await?;
        }
        Ok(())
    }

    /// DISCONNECT and close the stream (errors ignored: the test is over).
    pub(crate) async fn disconnect(mut self) {
        let _ = self.send(Packet::Disconnect).await;
        let _ = self.stream.shutdown().await;
    }
}

fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{ConnAck, SubAck};

    /// A scripted broker on the other end of an in-memory pipe.
    async fn broker(mut side: tokio::io::DuplexStream, echo: bool) {
        let mut s = Session::new(&mut side);
        let Ok(Packet::Connect(c)) = s.recv().await else {
            return;
        };
        assert!(c.clean_session);
        let _ = s
            .send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            )))
            .await;
        let Ok(Packet::Subscribe(sub)) = s.recv().await else {
            return;
        };
        let _ = s
            .send(Packet::SubAck(SubAck::new(
                sub.pkid,
                vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            )))
            .await;
        let Ok(Packet::Publish(p)) = s.recv().await else {
            return;
        };
        let _ = s.send(Packet::PubAck(PubAck::new(p.pkid))).await;
        if echo {
            let mut back = p.clone();
            back.pkid = 7;
            let _ = s.send(Packet::Publish(back)).await;
            let _ = s.recv().await; // the client's PUBACK
        }
        let _ = s.recv().await;
    }

    #[tokio::test]
    async fn the_exchange_round_trips_through_a_scripted_broker() {
        let (client, server) = tokio::io::duplex(4096);
        let broker = tokio::spawn(broker(server, true));
        let mut s = Session::new(client);
        assert_eq!(
            s.connect("id", Some(("u", "p"))).await.expect("connack"),
            ConnectReturnCode::Success
        );
        assert!(s.subscribe("t/1").await.expect("suback"));
        s.round_trip("t/1", b"hello").await.expect("round trip");
        s.disconnect().await;
        broker.await.expect("broker task");
    }

    #[tokio::test]
    async fn a_missing_delivery_waits_and_a_close_is_an_eof() {
        let (client, server) = tokio::io::duplex(4096);
        let broker = tokio::spawn(broker(server, false));
        let mut s = Session::new(client);
        s.connect("id", None).await.expect("connack");
        s.subscribe("t/1").await.expect("suback");
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            s.round_trip("t/1", b"x"),
        )
        .await;
        assert!(waited.is_err(), "must still be waiting for the delivery");
        drop(s);
        broker.await.expect("broker task");
    }
}
