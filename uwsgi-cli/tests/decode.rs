//! `uwsgi-cli decode` and `encode` run as a user runs them: the real binary, real
//! vectors, checking stdout, stderr and exit codes.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use uwsgi_tests::{marshal_cases, nginx_requests, to_hex, uwsgi_replies};

fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uwsgi-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn nginx_vectors_as_json() {
    for v in nginx_requests() {
        let out = cli(&["decode", "--hex", "--json"], v.request_hex.as_bytes());
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 1, "{}", v.name);
        let p = &lines[0];
        assert_eq!(p["kind"], "request", "{}", v.name);
        let bytes = v.request();
        assert_eq!(p["modifier1"], json!(bytes[0]));
        assert_eq!(p["modifier2"], json!(bytes[3]));
        assert_eq!(
            p["datasize"],
            json!(u16::from_le_bytes([bytes[1], bytes[2]]))
        );
        let body_len = p["body_len"].as_u64().unwrap();
        assert_eq!(
            4 + p["datasize"].as_u64().unwrap() + body_len,
            bytes.len() as u64,
            "{}",
            v.name
        );
        let vars = p["vars"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|pair| pair == &json!(["HTTP_USER_AGENT", "capture-client/1.0"]))
        );
        // key order as documented
        let keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "offset",
                "modifier1",
                "modifier2",
                "datasize",
                "kind",
                "vars",
                "body_len"
            ]
        );
    }
}

#[test]
fn spec_example_in_text_and_json() {
    let hex = "00230000 0e00524551554553545f4d4554484f44 0300474554 0900504154485f494e464f 01002f";
    let out = cli(&["decode", "--hex", "--json"], hex.as_bytes());
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"offset": 0, "modifier1": 0, "modifier2": 0, "datasize": 35, "kind": "request",
                    "vars": [["REQUEST_METHOD", "GET"], ["PATH_INFO", "/"]], "body_len": 0})
        ]
    );
    let out = cli(&["decode", "--hex"], hex.as_bytes());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("#1 @0 request: modifier1=0 modifier2=0 datasize=35 body=0"),
        "{text}"
    );
    assert!(text.contains("REQUEST_METHOD = GET") && text.contains("PATH_INFO = /"));
}

#[test]
fn every_uwsgi_request_vector_decodes_or_fails_with_exit_5() {
    let mut stream = Vec::new();
    for v in uwsgi_replies() {
        let out = cli(
            &["decode", "--hex", "--json", "--buffer-size", "4096"],
            v.request_hex.as_bytes(),
        );
        if v.name.starts_with("malformed") || v.name == "rpc_trailing_empty_arg" {
            assert_eq!(out.status.code(), Some(5), "{}", v.name);
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.contains("byte 0"), "{}: {err}", v.name);
            assert!(
                err.contains("offset") || err.contains("datasize") || err.contains("more byte"),
                "{}: {err}",
                v.name
            );
        } else {
            let lines = json_lines(&out);
            assert_eq!(lines.len(), 1, "{}", v.name);
            stream.extend(v.request());
        }
    }
    // All valid requests back to back: one JSON line each, offsets increasing.
    let out = cli(&["decode", "--json"], &stream);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 30);
    let kinds: Vec<_> = lines
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"rpc".into())
            && kinds.contains(&"cache".into())
            && kinds.contains(&"spool".into())
    );
    let rpc = lines
        .iter()
        .find(|l| l["kind"] == "rpc" && l["items"].as_array().is_some_and(|i| i.len() == 4))
        .unwrap();
    assert_eq!(rpc["items"], json!(["hello", "a", "bb", "ccc"]));
    let magic = lines
        .iter()
        .find(|l| l["command"] == "set" && l["body_len"] == json!(5))
        .unwrap();
    assert_eq!(magic["modifier2"], 17);
}

#[test]
fn binary_strings_become_hex_objects() {
    let out = cli(&["decode", "--json"], b"\x65\x03\x00\x00\xff\x00\x80");
    assert_eq!(json_lines(&out)[0]["payload"], json!({"hex": "ff0080"}));
}

#[test]
fn truncated_and_bad_input_exit_5_with_the_cause() {
    let out = cli(&["decode", "--hex"], b"0064000001004105003132333435");
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("at least 90 more byte(s)"), "{err}");

    let out = cli(&["decode", "--hex"], b"00 zz");
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("invalid hex character")
    );

    let out = cli(&["decode", "--marshal"], b"c\x00\x00");
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("invalid marshal data")
    );

    // Missing body bytes are reported too.
    let out = cli(
        &["decode", "--hex"],
        b"00130000 0e00434f4e54454e545f4c454e475448 0100 35 6869",
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("2 of 5 body bytes")
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        cli(&["decode", "--no-such-flag"], b"").status.code(),
        Some(2)
    );
    assert_eq!(cli(&["frobnicate"], b"").status.code(), Some(2));
    assert_eq!(
        cli(&["decode", "/no/such/file"], b"").status.code(),
        Some(2)
    );
}

#[test]
fn marshal_vectors_map_to_json() {
    let want = |name: &str| -> Value {
        match name {
            "none" => json!(null),
            "true" => json!(true),
            "int_small" => json!(300),
            "int_2pow63" => json!("9223372036854775808"),
            "bigint_neg_2pow100" => json!("-1267650600228229401496703205376"),
            "float_1_5" => json!(1.5),
            "float_inf" => json!("Infinity"),
            "complex_1_m2_5" => json!({"complex": [1.0, -2.5]}),
            "bytes_binary" => json!({"bytes": "616200ff80"}),
            "str_unicode" => json!("héllo ☃ 😀"),
            "tuple_mixed" => json!([1, "a", {"bytes": "62"}, null]),
            "list_nested" => json!([1, [2, [3, []]]]),
            "dict_simple" => json!({"dict": [["a", 1], ["b", [1, 2]], [3, null]]}),
            "frozenset_ints" => json!({"set": [10, 20]}),
            _ => Value::Null,
        }
    };
    let mut checked = 0;
    for case in marshal_cases() {
        let expected = want(&case.name);
        if expected.is_null() && case.name != "none" {
            continue;
        }
        let out = cli(
            &["decode", "--marshal", "--hex", "--json"],
            case.hex.as_bytes(),
        );
        let lines = json_lines(&out);
        assert_eq!(lines[0], expected, "{} v{}", case.name, case.version);
        checked += 1;
    }
    assert_eq!(checked, 14 * 5);
}

#[test]
fn encode_then_decode_round_trips() {
    let out = cli(
        &[
            "encode",
            "request",
            "--var",
            "REQUEST_METHOD=POST",
            "--var",
            "PATH_INFO=/x",
            "--body",
            "hello",
        ],
        b"",
    );
    assert!(out.status.success());
    let bytes = out.stdout;
    assert!(bytes.ends_with(b"hello"));
    let lines = json_lines(&cli(&["decode", "--json"], &bytes));
    assert_eq!(
        lines[0]["vars"],
        json!([
            ["REQUEST_METHOD", "POST"],
            ["PATH_INFO", "/x"],
            ["CONTENT_LENGTH", "5"]
        ])
    );
    assert_eq!(lines[0]["body_len"], 5);

    let out = cli(&["encode", "rpc", "hello", "a", "b", "--hex"], b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "ad0d000005006865 6c6c6f0100610100 62".replace(' ', "")
    );
    let out = cli(&["encode", "signal", "17", "--hex"], b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        to_hex(&[0x6e, 0, 0, 17])
    );
    let out = cli(&["encode", "request", "-1", "100"], b"");
    assert_eq!(out.status.code(), Some(2));
}
