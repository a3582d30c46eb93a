//! Mailbox server wire format: client commands in, server messages out (JSON objects with a
//! `type`). Parsing never panics: anything malformed becomes a [`ProtocolError`] that the
//! state machine answers with the protocol's `error` message.

use serde_json::{Map, Value, json};

/// A command from a client, validated field by field.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `bind {appid, side}`: must come first.
    Bind {
        /// Application scope of everything the connection does.
        appid: String,
        /// The client's random side id.
        side: String,
    },
    /// `list`: nameplates in use for the appid.
    List,
    /// `allocate`: pick and claim a free nameplate.
    Allocate,
    /// `claim {nameplate}`: claim (create on demand) a nameplate.
    Claim {
        /// The nameplate, e.g. `"4"`.
        nameplate: String,
    },
    /// `release {nameplate?}`.
    Release {
        /// Must match the claimed nameplate when given.
        nameplate: Option<String>,
    },
    /// `open {mailbox}`: subscribe to a mailbox.
    Open {
        /// The mailbox id from `claimed`.
        mailbox: String,
    },
    /// `add {phase, body}`: append a message to the open mailbox.
    Add {
        /// Phase name, e.g. `"pake"`, `"version"`, `"0"`.
        phase: String,
        /// Hex-encoded body (opaque to the server).
        body: String,
    },
    /// `close {mailbox?, mood?}`.
    Close {
        /// Must match the open mailbox when given.
        mailbox: Option<String>,
        /// `happy`, `lonely`, `scary`, `errory` (informational).
        mood: Option<String>,
    },
    /// `ping {ping}`.
    Ping {
        /// Echoed back in `pong`.
        ping: Value,
    },
}

/// A parsed client message: its optional `id` (echoed in `ack`) and the command.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The client's message id, if any.
    pub id: Option<Value>,
    /// The command.
    pub command: Command,
}

/// Why a client message was refused. The `Display` text is what goes into `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not valid JSON.
    #[error("invalid JSON")]
    InvalidJson,
    /// Valid JSON but not an object.
    #[error("message must be a JSON object")]
    NotAnObject,
    /// No string `type` field.
    #[error("missing 'type'")]
    MissingType,
    /// A type the server does not know.
    #[error("unknown type")]
    UnknownType,
    /// A required field is absent or not a string.
    #[error("{command} requires '{field}'")]
    MissingField {
        /// The command's type.
        command: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// The frame is larger than the configured limit.
    #[error("message too large ({size} bytes, limit {limit})")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Parse one text frame. On error also returns what to echo as `orig`.
pub fn parse(text: &str) -> Result<Inbound, (ProtocolError, Value)> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| (ProtocolError::InvalidJson, Value::String(truncate(text))))?;
    let Value::Object(map) = value else {
        return Err((ProtocolError::NotAnObject, value));
    };
    let id = map.get("id").cloned();
    let command = command(&map).map_err(|err| (err, Value::Object(map.clone())))?;
    Ok(Inbound { id, command })
}

fn command(map: &Map<String, Value>) -> Result<Command, ProtocolError> {
    let ty = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or(ProtocolError::MissingType)?;
    let text = |command: &'static str, field: &'static str| {
        map.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ProtocolError::MissingField { command, field })
    };
    let optional = |field: &str| map.get(field).and_then(Value::as_str).map(str::to_owned);
    Ok(match ty {
        "bind" => Command::Bind {
            appid: text("bind", "appid")?,
            side: text("bind", "side")?,
        },
        "list" => Command::List,
        "allocate" => Command::Allocate,
        "claim" => Command::Claim {
            nameplate: text("claim", "nameplate")?,
        },
        "release" => Command::Release {
            nameplate: optional("nameplate"),
        },
        "open" => Command::Open {
            mailbox: text("open", "mailbox")?,
        },
        "add" => Command::Add {
            phase: text("add", "phase")?,
            body: text("add", "body")?,
        },
        "close" => Command::Close {
            mailbox: optional("mailbox"),
            mood: optional("mood"),
        },
        "ping" => Command::Ping {
            ping: map
                .get("ping")
                .cloned()
                .ok_or(ProtocolError::MissingField {
                    command: "ping",
                    field: "ping",
                })?,
        },
        _ => return Err(ProtocolError::UnknownType),
    })
}

/// Keep echoed garbage small: a flood of huge invalid frames must not be amplified.
fn truncate(text: &str) -> String {
    const MAX: usize = 256;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A message from the server to one client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// First message on every connection.
    Welcome {
        /// Message of the day, shown by clients.
        motd: Option<String>,
    },
    /// Immediate receipt of any command.
    Ack {
        /// The command's `id`.
        id: Option<Value>,
    },
    /// Answer to `list`.
    Nameplates {
        /// Nameplate ids.
        nameplates: Vec<String>,
    },
    /// Answer to `allocate`.
    Allocated {
        /// The allocated nameplate.
        nameplate: String,
    },
    /// Answer to `claim`.
    Claimed {
        /// The mailbox the nameplate points to.
        mailbox: String,
    },
    /// Answer to `release`.
    Released,
    /// A mailbox message (stored or new), sent to every opener including its sender.
    Message {
        /// The sender's side.
        side: String,
        /// Phase.
        phase: String,
        /// Hex body.
        body: String,
        /// The `id` of the `add` that created it.
        id: Option<Value>,
        /// When the server received it (Unix seconds).
        server_rx: f64,
    },
    /// Answer to `close`.
    Closed,
    /// Answer to `ping`.
    Pong {
        /// The `ping` value.
        pong: Value,
    },
    /// A refused command or a server-side limit.
    Error {
        /// Human-readable reason.
        error: String,
        /// The offending message (or a truncated copy of unparsable text).
        orig: Value,
    },
}

impl ServerMessage {
    /// Serialize with `server_tx`, as the reference server does.
    pub fn to_json(&self, server_tx: f64) -> String {
        let mut value = match self {
            ServerMessage::Welcome { motd } => {
                let mut welcome = Map::new();
                if let Some(motd) = motd {
                    welcome.insert("motd".into(), Value::String(motd.clone()));
                }
                json!({"type": "welcome", "welcome": welcome})
            }
            ServerMessage::Ack { id } => json!({"type": "ack", "id": id}),
            ServerMessage::Nameplates { nameplates } => {
                let list: Vec<Value> = nameplates.iter().map(|id| json!({"id": id})).collect();
                json!({"type": "nameplates", "nameplates": list})
            }
            ServerMessage::Allocated { nameplate } => {
                json!({"type": "allocated", "nameplate": nameplate})
            }
            ServerMessage::Claimed { mailbox } => json!({"type": "claimed", "mailbox": mailbox}),
            ServerMessage::Released => json!({"type": "released"}),
            ServerMessage::Message {
                side,
                phase,
                body,
                id,
                server_rx,
            } => json!({
                "type": "message", "side": side, "phase": phase, "body": body,
                "id": id, "server_rx": server_rx,
            }),
            ServerMessage::Closed => json!({"type": "closed"}),
            ServerMessage::Pong { pong } => json!({"type": "pong", "pong": pong}),
            ServerMessage::Error { error, orig } => {
                json!({"type": "error", "error": error, "orig": orig})
            }
        };
        if let Value::Object(map) = &mut value {
            map.insert("server_tx".into(), json!(server_tx));
        }
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_command() {
        let cases = [
            (r#"{"type":"bind","appid":"a","side":"s","id":"1"}"#, "bind"),
            (r#"{"type":"list"}"#, "list"),
            (r#"{"type":"allocate"}"#, "allocate"),
            (r#"{"type":"claim","nameplate":"4"}"#, "claim"),
            (r#"{"type":"release"}"#, "release"),
            (r#"{"type":"open","mailbox":"m"}"#, "open"),
            (r#"{"type":"add","phase":"pake","body":"00"}"#, "add"),
            (r#"{"type":"close","mood":"happy"}"#, "close"),
            (r#"{"type":"ping","ping":7}"#, "ping"),
        ];
        for (text, name) in cases {
            assert!(parse(text).is_ok(), "{name}");
        }
        assert_eq!(
            parse(r#"{"type":"bind","appid":"a","side":"s","id":"1"}"#)
                .expect("bind")
                .id,
            Some(json!("1"))
        );
    }

    #[test]
    fn malformed_input_is_typed() {
        assert_eq!(parse("{").map_err(|e| e.0), Err(ProtocolError::InvalidJson));
        assert_eq!(
            parse("[1]").map_err(|e| e.0),
            Err(ProtocolError::NotAnObject)
        );
        assert_eq!(
            parse("{}").map_err(|e| e.0),
            Err(ProtocolError::MissingType)
        );
        assert_eq!(
            parse(r#"{"type":"bogus"}"#).map_err(|e| e.0),
            Err(ProtocolError::UnknownType)
        );
        assert_eq!(
            parse(r#"{"type":"claim","nameplate":4}"#).map_err(|e| e.0),
            Err(ProtocolError::MissingField {
                command: "claim",
                field: "nameplate"
            })
        );
    }

    #[test]
    fn server_messages_carry_type_and_server_tx() {
        let text = ServerMessage::Error {
            error: "unknown type".into(),
            orig: json!({"type": "bogus"}),
        }
        .to_json(12.5);
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["type"], "error");
        assert_eq!(value["server_tx"], 12.5);
        assert_eq!(value["orig"]["type"], "bogus");
    }

    #[test]
    fn long_garbage_is_truncated_in_orig() {
        let garbage = "é".repeat(1000);
        let (_, orig) = parse(&garbage).expect_err("garbage");
        assert!(orig.as_str().expect("string").len() < 300);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_objects(
            ty in prop::sample::select(vec!["bind", "list", "allocate", "claim", "release",
                "open", "add", "close", "ping", "x"]),
            key in "[a-z]{1,9}",
            val in prop_oneof![Just(json!(null)), Just(json!(1)), Just(json!("s")), Just(json!([]))],
        ) {
            let text = json!({"type": ty, key: val}).to_string();
            let _ = parse(&text);
        }
    }
}
