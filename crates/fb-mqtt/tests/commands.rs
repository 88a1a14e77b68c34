//! The command publisher against the Mosquitto broker on 127.0.0.1:1883 (a topic prefix of its
//! own per run): a subscriber sees the command as the machine would.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use uuid::Uuid;

use fb_app::energy::CommandSink;
use fb_core::energy::{MachineCommand, RecommendationId};
use fb_core::plant::MachineId;
use fb_mqtt::{CommandOptions, CommandPublisher};

#[tokio::test]
async fn a_subscriber_observes_the_command_on_the_machines_cmd_topic() {
    let prefix = format!("fbtest-{}", Uuid::now_v7().simple());
    let topic = format!("{prefix}/plant-a/press-01/cmd");

    let mut sub = MqttOptions::new(format!("{prefix}-machine"), "127.0.0.1", 1883);
    sub.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(sub, 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    // Wait until the broker confirms the subscription, so the command cannot go by unseen.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("the subscription confirmed within 20 s");

    let publisher = CommandPublisher::start(&CommandOptions {
        host: "127.0.0.1".into(),
        port: 1883,
        client_id: format!("{prefix}-server"),
        username: None,
        password: None,
        tls_ca_file: None,
        topic_prefix: prefix.clone(),
    })
    .unwrap();
    let command = MachineCommand {
        id: Uuid::now_v7(),
        recommendation: RecommendationId(Uuid::now_v7()),
        site: "plant-a".into(),
        machine: MachineId("press-01".into()),
        command: "standby".into(),
        reason: "running but idle".into(),
        issued_at: time::macros::datetime!(2027-01-15 08:00 UTC),
    };
    publisher.submit(&command).await.unwrap();

    let message = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("the command within 20 s");
    assert_eq!(message.topic, topic);
    let json: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(json["id"], command.id.to_string());
    assert_eq!(json["command"], "standby");
    assert_eq!(json["reason"], "running but idle");
    assert_eq!(json["issued_at"], "2027-01-15T08:00:00Z");
    publisher.stop().await;
}
