//! Turning decoded packets and marshal values into JSON or human-readable text.

use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::client::HttpResponse;
use uwsgi_protocol::marshal::Value;
use uwsgi_protocol::packet::{Admin, CacheRequest, Packet, RpcRequest};
use uwsgi_protocol::{Array, Reply, Vars};

use crate::input::encode_hex;

/// A byte string as JSON: a string when it is UTF-8, otherwise `{"hex": "..."}`.
pub fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(text) => Json::String(text.to_owned()),
        Err(_) => json!({ "hex": encode_hex(bytes) }),
    }
}

/// A byte string for a terminal: printable ASCII as is, everything else escaped.
pub fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => bytes.escape_ascii().to_string(),
    }
}

fn vars_json(vars: &Vars<'_>) -> Json {
    Json::Array(
        vars.iter()
            .map(|(k, v)| json!([bytes_json(k), bytes_json(v)]))
            .collect(),
    )
}

fn items_json(items: &Array<'_>) -> Json {
    Json::Array(items.iter().map(bytes_json).collect())
}

fn cache_command(request: &CacheRequest<'_>) -> &'static str {
    match request {
        CacheRequest::Get { .. } => "get",
        CacheRequest::Set(_) => "set",
        CacheRequest::Delete { .. } => "del",
        CacheRequest::DictGet { .. } => "dict-get",
        CacheRequest::GetStream { .. } => "get-stream",
        CacheRequest::Dump { .. } => "dump",
        CacheRequest::SyncSet(_) => "sync-set",
        CacheRequest::SyncDelete(_) => "sync-del",
        CacheRequest::Magic(magic) => magic.command().as_str(),
        _ => "other",
    }
}

/// The fields that say what is inside a packet, beyond its header.
fn content(packet: &Packet<'_>, fields: &mut Map<String, Json>) {
    let mut put = |key: &str, value: Json| {
        fields.insert(key.to_owned(), value);
    };
    if let Some(vars) = packet.vars() {
        put("vars", vars_json(&vars));
    }
    if let Some(items) = packet.items() {
        put("items", items_json(&items));
    }
    match packet {
        Packet::Admin(Admin::Get { option }) => put("option", json!(option)),
        Packet::Admin(Admin::Set { option, value }) => {
            put("option", json!(option));
            put("value", json!(value));
        }
        Packet::Marshal(m) => {
            put(
                "payload",
                json!({ "hex": encode_hex(m.payload.as_bytes()) }),
            );
            match uwsgi_protocol::marshal::from_slice(m.payload.as_bytes()) {
                Ok(value) => put("value", marshal_json(&value)),
                Err(err) => put("marshal_error", Json::String(err.to_string())),
            }
        }
        Packet::ClusterAnnounce(m)
        | Packet::Multicast(m)
        | Packet::ClusterLog(m)
        | Packet::ClusterReload(m)
        | Packet::Ping(m)
        | Packet::Echo(m)
        | Packet::Response(m) => put("payload", bytes_json(m.payload.as_bytes())),
        Packet::Legion(l) => {
            put("plaintext_len", json!(l.plaintext_len));
            put(
                "ciphertext",
                json!({ "hex": encode_hex(l.ciphertext.as_bytes()) }),
            );
        }
        Packet::Signal(s) => put("signal", json!(s.number)),
        Packet::Cache(c) => {
            put("command", json!(cache_command(c)));
            match c {
                CacheRequest::Get { key }
                | CacheRequest::Delete { key }
                | CacheRequest::GetStream { key } => {
                    put("key", bytes_json(key.as_bytes()));
                }
                CacheRequest::Dump { cache } => put("cache", bytes_json(cache.as_bytes())),
                CacheRequest::SyncSet(s) => {
                    put("key", bytes_json(s.key()));
                    put("value", bytes_json(s.value()));
                    put("expires", json!(s.expires()));
                }
                CacheRequest::SyncDelete(s) => put("key", bytes_json(s.key())),
                CacheRequest::Other { payload, .. } => {
                    put("payload", bytes_json(payload.as_bytes()))
                }
                _ => {}
            }
        }
        Packet::Rpc(RpcRequest::Call(call)) => put("function", bytes_json(call.function())),
        Packet::Raw(r) => put("payload", bytes_json(r.payload.as_bytes())),
        _ => {}
    }
}

/// One packet as a JSON object.
pub fn packet_json(packet: &Packet<'_>, offset: usize, body_len: u64) -> Json {
    let header = packet.header();
    let mut fields = Map::new();
    fields.insert("offset".into(), json!(offset));
    fields.insert("modifier1".into(), json!(header.modifier1.value()));
    fields.insert("modifier2".into(), json!(header.modifier2));
    fields.insert("datasize".into(), json!(header.datasize));
    fields.insert("kind".into(), json!(packet.kind()));
    content(packet, &mut fields);
    if body_len > 0 || matches!(packet, Packet::Request(_)) {
        fields.insert("body_len".into(), json!(body_len));
    }
    Json::Object(fields)
}

/// One packet as indented text lines.
pub fn packet_text(packet: &Packet<'_>, index: usize, offset: usize, body_len: u64) -> String {
    let header = packet.header();
    let mut out = format!(
        "#{index} @{offset} {kind}: modifier1={m1} modifier2={m2} datasize={size}",
        kind = packet.kind(),
        m1 = header.modifier1.value(),
        m2 = header.modifier2,
        size = header.datasize,
    );
    if body_len > 0 || matches!(packet, Packet::Request(_)) {
        out.push_str(&format!(" body={body_len}"));
    }
    let mut fields = Map::new();
    content(packet, &mut fields);
    if let Some(vars) = packet.vars() {
        fields.remove("vars");
        for (k, v) in vars.iter() {
            out.push_str(&format!("\n    {} = {}", bytes_text(k), bytes_text(v)));
        }
    }
    if let Some(items) = packet.items() {
        fields.remove("items");
        for (i, item) in items.iter().enumerate() {
            out.push_str(&format!("\n    [{i}] {}", bytes_text(item)));
        }
    }
    for (key, value) in fields {
        let shown = match value {
            Json::String(s) => s,
            other => other.to_string(),
        };
        out.push_str(&format!("\n    {key}: {shown}"));
    }
    out
}

/// An HTTP response (what an application request gets) as JSON fields; `None` when the
/// bytes are not an HTTP response.
pub fn http_fields(bytes: &[u8], fields: &mut Map<String, Json>) -> bool {
    let Some(http) = HttpResponse::parse(bytes) else {
        return false;
    };
    fields.insert("version".into(), json!(http.version));
    fields.insert("status".into(), json!(http.status));
    fields.insert("reason".into(), json!(http.reason));
    fields.insert(
        "headers".into(),
        Json::Array(http.headers.iter().map(|(k, v)| json!([k, v])).collect()),
    );
    fields.insert("body".into(), bytes_json(http.body));
    true
}

/// The fields of a reply: `kind` first, then what it carries.
pub fn reply_fields(reply: &Reply<'_>) -> Map<String, Json> {
    let mut fields = Map::new();
    fields.insert("kind".into(), json!(reply.kind()));
    if let Reply::Http(bytes) = reply {
        if http_fields(bytes, &mut fields) {
            return fields;
        }
    }
    let mut put = |key: &str, value: Json| {
        fields.insert(key.to_owned(), value);
    };
    match reply {
        Reply::Closed => {}
        Reply::Pong(m) => put(
            "warning",
            if m.payload.is_empty() {
                Json::Null
            } else {
                bytes_json(m.payload.as_bytes())
            },
        ),
        Reply::Response(m) => {
            put("status", json!(m.modifier2));
            put("ok", json!(m.modifier2 == 1));
        }
        Reply::AdminValue { option, value } => {
            put("option", json!(option));
            put("value", json!(value));
        }
        Reply::RpcResult(data) => put("result", bytes_json(data.as_bytes())),
        Reply::RpcBigResult { data, .. } => put("result", bytes_json(data)),
        Reply::CacheValue(m) => put("value", bytes_json(m.payload.as_bytes())),
        Reply::CacheStream { found, value } => {
            put("found", json!(found));
            put("value", bytes_json(value));
        }
        Reply::CacheMagic { reply, value } => {
            put("status", bytes_json(reply.status()));
            put("value", bytes_json(value));
            if let Some(expires) = reply.expires() {
                put("expires", json!(expires));
            }
        }
        Reply::CacheDump { vars, image } => {
            put("vars", vars_json(vars));
            put("image_len", json!(image.len()));
        }
        Reply::Marshal(m) => {
            put(
                "payload",
                json!({ "hex": encode_hex(m.payload.as_bytes()) }),
            );
            match uwsgi_protocol::marshal::from_slice(m.payload.as_bytes()) {
                Ok(value) => put("value", marshal_json(&value)),
                Err(err) => put("marshal_error", Json::String(err.to_string())),
            }
        }
        Reply::Http(bytes) | Reply::Raw(bytes) => put("payload", bytes_json(bytes)),
        _ => {}
    }
    fields
}

/// A reply as text: its kind on the first line, then one `key: value` line per field;
/// HTTP and raw replies print their bytes (escaped where not printable) instead.
pub fn reply_text(reply: &Reply<'_>) -> String {
    match reply {
        Reply::Http(bytes) | Reply::Raw(bytes) => return bytes_text_multiline(bytes),
        Reply::Closed => return "(connection closed without a reply)".into(),
        _ => {}
    }
    let mut fields = reply_fields(reply);
    let kind = fields
        .remove("kind")
        .and_then(|k| k.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = kind;
    for (key, value) in fields {
        let shown = match value {
            Json::Null => continue,
            Json::String(s) => bytes_text(s.as_bytes()),
            other => other.to_string(),
        };
        out.push_str(&format!("\n    {key}: {shown}"));
    }
    out
}

/// Bytes for a terminal, keeping line breaks and tabs: text as is when it is UTF-8
/// without other control characters, otherwise escaped.
pub fn bytes_text_multiline(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            text.to_owned()
        }
        _ => bytes.escape_ascii().to_string(),
    }
}

/// A float as JSON; JSON has no NaN or infinities, so those become strings.
fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or_else(
        || {
            Json::String(
                if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .into(),
            )
        },
        Json::Number,
    )
}

/// Integers beyond ±2^53 are not exact in most JSON readers: they become decimal strings.
const EXACT_JSON_INT: i64 = 1 << 53;

/// A marshal value as JSON (mapping documented in docs/cli.md).
pub fn marshal_json(value: &Value) -> Json {
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) if (-EXACT_JSON_INT..=EXACT_JSON_INT).contains(i) => json!(i),
        Value::Int(i) => Json::String(i.to_string()),
        Value::BigInt(big) => Json::String(big.to_string()),
        Value::Float(f) => float_json(*f),
        Value::Complex { re, im } => json!({ "complex": [float_json(*re), float_json(*im)] }),
        Value::Bytes(b) => json!({ "bytes": encode_hex(b) }),
        Value::Str(s) => Json::String(s.clone()),
        Value::Tuple(items) | Value::List(items) => {
            Json::Array(items.iter().map(marshal_json).collect())
        }
        Value::Dict(pairs) => json!({
            "dict": pairs.iter().map(|(k, v)| json!([marshal_json(k), marshal_json(v)])).collect::<Vec<_>>()
        }),
        Value::Set(items) | Value::FrozenSet(items) => json!({
            "set": items.iter().map(marshal_json).collect::<Vec<_>>()
        }),
        Value::StopIteration => json!({ "builtin": "StopIteration" }),
        Value::Ellipsis => json!({ "builtin": "Ellipsis" }),
    }
}
