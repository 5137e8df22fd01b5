//! `uwsgi-cli request`: curl for uwsgi servers.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::VarsBuilder;
use uwsgi_protocol::client::{Address, HttpResponse};

use crate::common::{NetOpts, json_line, millis, parse_var, read_value};
use crate::exit::Outcome;
use crate::render;

/// The request-building options, shared with `bench --kind request`.
#[derive(Debug, Clone, Args)]
pub struct RequestOpts {
    /// Method (REQUEST_METHOD).
    #[arg(
        short = 'X',
        long = "request",
        default_value = "GET",
        value_name = "METHOD"
    )]
    pub method: String,
    /// A header, "Name: value" (repeatable): becomes HTTP_NAME, or CONTENT_TYPE /
    /// CONTENT_LENGTH for those two.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body: text, @FILE, or - for stdin. Sets CONTENT_LENGTH.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// An extra var, KEY=VALUE (repeatable); replaces a default var of the same name.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

/// A request ready to send (and to send again: `bench` reuses it).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The vars.
    pub vars: VarsBuilder,
    /// The body.
    pub body: Vec<u8>,
}

impl RequestOpts {
    /// The vars and body for `path` (with an optional `?query`) sent to `address`, in
    /// the order nginx's uwsgi_params sends them.
    pub fn prepare(&self, address: &Address, path: &str) -> Result<Prepared> {
        let body = match &self.data {
            Some(spec) => read_value(spec)?,
            None => Vec::new(),
        };
        let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
        let (server_name, server_port) = match address {
            Address::Tcp { host, port } => (host.clone(), port.to_string()),
            _ => ("localhost".to_owned(), "80".to_owned()),
        };
        let mut vars: Vec<(String, String)> = vec![
            ("QUERY_STRING".into(), query.into()),
            ("REQUEST_METHOD".into(), self.method.clone()),
            ("CONTENT_TYPE".into(), String::new()),
            ("CONTENT_LENGTH".into(), String::new()),
            ("REQUEST_URI".into(), path.into()),
            ("PATH_INFO".into(), path_info.into()),
            ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
            ("REQUEST_SCHEME".into(), "http".into()),
            ("REMOTE_ADDR".into(), "127.0.0.1".into()),
            ("SERVER_NAME".into(), server_name.clone()),
            ("SERVER_PORT".into(), server_port),
            ("HTTP_HOST".into(), server_name),
        ];
        let set = |vars: &mut Vec<(String, String)>, key: String, value: String| match vars
            .iter_mut()
            .find(|(k, _)| *k == key)
        {
            Some(slot) => slot.1 = value,
            None => vars.push((key, value)),
        };
        if !body.is_empty() {
            set(&mut vars, "CONTENT_LENGTH".into(), body.len().to_string());
        }
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("header {header:?} is not \"Name: value\""))?;
            let name = name.trim().to_ascii_uppercase().replace('-', "_");
            let key = match name.as_str() {
                "CONTENT_TYPE" | "CONTENT_LENGTH" => name,
                _ => format!("HTTP_{name}"),
            };
            set(&mut vars, key, value.trim().to_owned());
        }
        for (k, v) in &self.vars {
            set(&mut vars, k.clone(), v.clone());
        }
        // Empty CONTENT_* are left out, as nginx does.
        vars.retain(|(k, v)| !(v.is_empty() && k.starts_with("CONTENT_")));
        let mut builder = VarsBuilder::new();
        for (k, v) in &vars {
            builder.push(k, v)?;
        }
        Ok(Prepared {
            vars: builder,
            body,
        })
    }
}

/// Options of `request`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints the response body (the whole response with -i). Exit code 0 \
    whatever the HTTP status unless -f is given, as with curl.\n\n\
    Examples:\n  \
    uwsgi-cli request 127.0.0.1:3031 /hello?name=x\n  \
    uwsgi-cli request unix:/run/uwsgi.sock /api -X POST -H 'Content-Type: application/json' -d @body.json -i\n  \
    uwsgi-cli request 127.0.0.1:3031 / --var UWSGI_SCHEME=https --json"
)]
pub struct RequestArgs {
    /// Server: host:port, [v6]:port, unix:/path, a path with a '/', or @abstract.
    pub address: Address,
    /// Path and query string.
    #[arg(default_value = "/")]
    pub path: String,
    #[command(flatten)]
    pub request: RequestOpts,
    /// Show the status line and headers too.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Exit with code 1 when the HTTP status is 400 or more.
    #[arg(short = 'f', long)]
    pub fail: bool,
    #[command(flatten)]
    pub net: NetOpts,
}

/// Runs `request`.
pub fn run(args: &RequestArgs, out: &mut dyn Write) -> Result<Outcome> {
    let prepared = args.request.prepare(&args.address, &args.path)?;
    let client = args.net.client(&args.address);
    let start = Instant::now();
    let response = client.request(prepared.vars.as_vars(), &prepared.body)?;
    let elapsed = start.elapsed();
    let http = HttpResponse::parse(&response);
    let failed = args.fail && http.as_ref().is_some_and(|h| h.status >= 400);
    if args.net.json {
        let mut fields = Map::new();
        fields.insert("address".into(), json!(args.address.to_string()));
        fields.insert("time_ms".into(), json!(millis(elapsed)));
        if !render::http_fields(&response, &mut fields) {
            fields.insert("payload".into(), render::bytes_json(&response));
        }
        json_line(out, &Json::Object(fields))?;
    } else {
        match (&http, args.include) {
            (Some(http), false) => out.write_all(http.body)?,
            _ => out.write_all(&response)?,
        }
    }
    if failed {
        if let Some(http) = &http {
            eprintln!("uwsgi-cli: HTTP status {} {}", http.status, http.reason);
        }
    }
    Ok(Outcome::from_bool(!failed))
}
