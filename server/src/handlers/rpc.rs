//! RPC requests (modifier1 173, spec §3.4), on the server's function registry.

use std::io::{self, Write};

use uwsgi_protocol::VarsBuilder;
use uwsgi_protocol::packet::{Payload, Reply, RpcRequest};

use crate::app::write_head;
use crate::dispatch::Outcome;
use crate::state::rpc::RpcRegistry;

/// Answers one RPC request. As uWSGI 2.0 does: an unknown function, a failing one or an
/// empty result closes the connection without reply; results over 65535 bytes use the
/// modifier2 5 form.
pub fn answer(
    request: &RpcRequest<'_>,
    out: &mut dyn Write,
    registry: &RpcRegistry,
    log: &dyn Fn(std::fmt::Arguments<'_>),
) -> io::Result<Outcome> {
    match request {
        RpcRequest::Call(call) => {
            let args: Vec<&[u8]> = call.args().collect();
            let result = match registry.call(call.function(), &args) {
                Ok(result) if !result.is_empty() => result,
                Ok(_) => return Ok(Outcome::Closed("RPC function returned nothing")),
                Err(err) => {
                    log(format_args!(
                        "rpc {}: {err}",
                        String::from_utf8_lossy(call.function())
                    ));
                    return Ok(Outcome::Closed("RPC call failed"));
                }
            };
            if !call.wants_framed_reply() {
                out.write_all(&result)?;
            } else if let Ok(payload) = Payload::new(&result) {
                super::send::reply(out, &Reply::RpcResult(payload))?;
            } else {
                let mut vars = VarsBuilder::new();
                vars.push("CONTENT_LENGTH", result.len().to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let reply = Reply::RpcBigResult {
                    vars: vars.as_vars(),
                    data: &result,
                };
                super::send::reply(out, &reply)?;
            }
            Ok(Outcome::Replied)
        }
        RpcRequest::Http { vars } => {
            let [path, accept] = vars.get_many([b"PATH_INFO".as_slice(), b"HTTP_ACCEPT"]);
            // `/function/arg1/arg2`: empty segments are dropped, as uWSGI splits.
            let mut parts = path
                .unwrap_or_default()
                .split(|b| *b == b'/')
                .filter(|part| !part.is_empty());
            let function = parts.next().unwrap_or_default();
            let args: Vec<&[u8]> = parts.collect();
            match registry.call(function, &args) {
                Ok(result) => {
                    let content_type = match accept {
                        Some(accept)
                            if !accept.is_empty() && accept != b"*" && accept != b"*/*" =>
                        {
                            accept
                        }
                        _ => b"application/binary",
                    };
                    let length = result.len().to_string();
                    write_head(
                        out,
                        b"HTTP/1.0",
                        "200 OK",
                        &[
                            ("Content-Length", length.as_bytes()),
                            ("Content-Type", content_type),
                        ],
                    )?;
                    out.write_all(&result)?;
                }
                Err(_) => {
                    write_head(out, b"HTTP/1.0", "404 Not Found", &[])?;
                }
            }
            Ok(Outcome::Replied)
        }
        // uWSGI answers XML-RPC only in builds with libxml2; ours has none.
        RpcRequest::XmlRpc { .. } => Ok(Outcome::Closed("XML-RPC is not supported")),
        _ => Ok(Outcome::Closed("unknown RPC form")),
    }
}
