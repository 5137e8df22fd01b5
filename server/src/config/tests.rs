use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uwsgi-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn command_line_forms() {
    let config = ServerConfig::from_sources(
        &args(&[
            "--socket",
            "127.0.0.1:0",
            "-s",
            "/tmp/x.sock",
            "--buffer-size=8192",
            "-p4",
            "--master",
            "--vacuum=false",
            "-z",
            "9",
            "--chmod-socket",
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(config.sockets.len(), 2);
    assert_eq!(config.buffer_size, 8192);
    assert_eq!(config.processes, 4);
    assert!(!config.vacuum);
    assert_eq!(config.socket_timeout, Duration::from_secs(9));
    assert_eq!(config.chmod_socket, Some(0o666));
    assert_eq!(config.limits().max_datasize, 8192);
    assert_eq!(config.limits().max_vars, 128);
}

#[test]
fn unknown_and_refused_options_are_errors_naming_them() {
    let err = ServerConfig::from_sources(&args(&["--socket", ":0", "--frobnicate", "1"]), &[])
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown option 'frobnicate'"),
        "{err}"
    );
    assert!(err.to_string().contains("argument 3"), "{err}");

    let err = ServerConfig::from_sources(&args(&["--socket", ":0", "--daemonize", "x.log"]), &[])
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Refused { ref name, .. } if name == "daemonize"),
        "{err}"
    );
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn process_model_options() {
    let config = ServerConfig::from_sources(&args(&["--socket", ":0"]), &[]).unwrap();
    assert!(!config.uses_master());
    let config = ServerConfig::from_sources(
        &args(&[
            "--socket",
            ":0",
            "-M",
            "--workers",
            "3",
            "--max-requests",
            "100",
            "--harakiri",
            "30",
            "--harakiri-verbose",
            "--reload-mercy",
            "5",
            "--worker-reload-mercy",
            "7",
            "--die-on-term",
            "--pidfile2",
            "/tmp/p2",
        ]),
        &[],
    )
    .unwrap();
    assert!(config.master && config.die_on_term && config.harakiri_verbose);
    assert_eq!(config.processes, 3);
    assert_eq!(config.max_requests, 100);
    assert_eq!(config.harakiri, std::time::Duration::from_secs(30));
    assert_eq!(config.reload_mercy, std::time::Duration::from_secs(5));
    assert_eq!(
        config.worker_reload_mercy,
        std::time::Duration::from_secs(7)
    );
    assert_eq!(
        config.pidfile2.as_deref(),
        Some(std::path::Path::new("/tmp/p2"))
    );
    assert!(config.uses_master());
    // Without --master, several processes are threads of one process.
    let config =
        ServerConfig::from_sources(&args(&["--socket", ":0", "--processes", "2"]), &[]).unwrap();
    assert!(!config.uses_master());
    let config =
        ServerConfig::from_sources(&args(&["--socket", ":0", "--max-requests", "9"]), &[]).unwrap();
    assert!(config.uses_master());
}

#[cfg(feature = "python")]
#[test]
fn py_autoreload_implies_the_master_and_keeps_its_ignore_list() {
    let config = ServerConfig::from_sources(
        &args(&[
            "--socket",
            ":0",
            "--py-auto-reload",
            "2",
            "--py-auto-reload-ignore",
            "a",
            "--py-auto-reload-ignore",
            "b.c",
        ]),
        &[],
    )
    .unwrap();
    assert!(config.uses_master());
    assert_eq!(config.python.autoreload, std::time::Duration::from_secs(2));
    assert_eq!(config.python.autoreload_ignore, ["a", "b.c"]);
    // Zero is uWSGI's "off".
    let config =
        ServerConfig::from_sources(&args(&["--socket", ":0", "--py-autoreload", "0"]), &[])
            .unwrap();
    assert!(!config.uses_master());
}

#[test]
fn bad_values_say_what_was_expected() {
    for (option, value) in [
        ("--buffer-size", "70000"),
        ("--processes", "many"),
        ("--chmod-socket", "999"),
        ("--master=maybe", "--vacuum"),
        ("--allowed-modifiers", "0,300"),
        ("--management-allow-from", "10.0.0.0/33"),
        ("--socket", "nowhere"),
        ("--plugins", "php"),
    ] {
        let err =
            ServerConfig::from_sources(&args(&["--socket", ":0", option, value]), &[]).unwrap_err();
        assert!(
            matches!(err, ConfigError::BadValue { .. }),
            "{option}: {err}"
        );
    }
}

#[test]
fn no_socket_is_an_error() {
    let err = ServerConfig::from_sources(&args(&["--master"]), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::NoSocket));
}

#[test]
fn ini_with_placeholders_magic_variables_and_sections() {
    let dir = temp_dir("ini");
    let path = dir.join("myapp.ini");
    std::fs::write(
        &path,
        "\
[uwsgi]
base = /srv/%n
socket = %(base)/app.sock
socket = 127.0.0.1:0
pidfile = %d%n.pid
master = true
processes = $(WORKERS)
plugins = python3
spooler = %(base)/spool
cache2 = name=main,items=100
logto = %(logdir)/%n.log

[prod]
socket = :0
buffer-size = 32768
",
    )
    .unwrap();
    let env = vec![
        ("WORKERS".to_owned(), "3".to_owned()),
        ("UWSGI_LOGDIR".to_owned(), "/var/log/app".to_owned()),
    ];
    let config =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &env).unwrap();
    assert_eq!(
        config.sockets[0],
        ListenAddr::Unix("/srv/myapp/app.sock".into())
    );
    let dir_abs = std::path::absolute(&dir).unwrap();
    assert_eq!(config.pidfile, Some(dir_abs.join("myapp.pid")));
    assert_eq!(config.processes, 3);
    assert_eq!(config.spoolers, [PathBuf::from("/srv/myapp/spool")]);
    assert_eq!(config.cache2, ["name=main,items=100"]);
    assert_eq!(config.logto, Some(PathBuf::from("/var/log/app/myapp.log")));

    let prod = format!("{}:prod", path.display());
    let config = ServerConfig::from_sources(&args(&[&prod]), &[]).unwrap();
    assert_eq!(config.buffer_size, 32768);
    assert_eq!(config.sockets.len(), 1);

    let err =
        ServerConfig::from_sources(&args(&[&format!("{}:nope", path.display())]), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::MissingSection { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `%x` in an ini value is the same table `uwsgi.magic_table` shows: every letter uWSGI
/// derives from the file or the process, `%0`…`%9` empty past the directory's depth, and
/// a letter uWSGI does not define refused.
#[test]
fn ini_magic_variables_are_the_magic_table() {
    let dir = std::path::absolute(temp_dir("ini_magic")).unwrap();
    let path = dir.join("site.app.ini");
    // Each letter goes into a repeated option the config keeps as written (`import`).
    let letters = "opsdcenijbvhVkugUG0";
    let mut text = String::from("[uwsgi]\nsocket = :0\n");
    for letter in letters.chars() {
        text.push_str(&format!("import = %{letter}\n"));
    }
    text.push_str("import = [%9]\n");
    std::fs::write(&path, &text).unwrap();
    let config =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &[]).unwrap();
    let table: std::collections::HashMap<char, String> = config.magic_table().into_iter().collect();
    for (letter, expanded) in letters.chars().zip(&config.python.imports) {
        assert_eq!(Some(expanded), table.get(&letter), "%{letter}");
    }
    assert_eq!(table[&'n'], "site.app");
    assert_eq!(table[&'e'], "ini");
    assert_eq!(config.python.imports.last().map(String::as_str), Some("[]"));

    std::fs::write(&path, "[uwsgi]\nsocket = :0\nprocname = %y\n").unwrap();
    let err =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &[]).unwrap_err();
    assert!(err.to_string().contains("%y is not supported"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ini_errors_name_file_and_line() {
    let dir = temp_dir("errors");
    let path = dir.join("bad.ini");
    std::fs::write(&path, "[uwsgi]\nsocket = :0\nunknown-thing = 1\n").unwrap();
    let err =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("bad.ini:3") && text.contains("unknown-thing"),
        "{text}"
    );

    std::fs::write(&path, "[uwsgi]\nsocket = %(nothing)/x.sock\n").unwrap();
    let err =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError::UndefinedPlaceholder { .. }),
        "{err}"
    );

    // An ini including itself stops at the nesting limit instead of looping.
    std::fs::write(&path, format!("[uwsgi]\nini = {}\n", path.display())).unwrap();
    let err =
        ServerConfig::from_sources(&args(&["--ini", path.to_str().unwrap()]), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::TooDeep { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn environment_variables_are_options() {
    let env = vec![
        ("UWSGI_SOCKET".to_owned(), "127.0.0.1:0".to_owned()),
        ("UWSGI_BUFFER_SIZE".to_owned(), "16384".to_owned()),
        // Not an option: ignored, since uWSGI and test harnesses set such variables.
        ("UWSGI_RELOADS".to_owned(), "0".to_owned()),
    ];
    let config = ServerConfig::from_sources(&args(&["--buffer-size", "8192"]), &env).unwrap();
    // The command line comes after the environment, so it wins.
    assert_eq!(config.buffer_size, 8192);
    assert_eq!(config.sockets.len(), 1);
}

#[test]
fn peer_rules() {
    let loopback = PeerRule::parse("127.0.0.0/8").unwrap();
    assert!(loopback.matches(Some("127.0.0.5".parse().unwrap())));
    assert!(loopback.matches(Some("::ffff:127.0.0.1".parse().unwrap())));
    assert!(!loopback.matches(Some("10.0.0.1".parse().unwrap())));
    assert!(!loopback.matches(None));
    assert!(PeerRule::parse("unix").unwrap().matches(None));
    let host = PeerRule::parse("::1").unwrap();
    assert!(host.matches(Some("::1".parse().unwrap())));
    assert!(
        PeerRule::parse("0.0.0.0/0")
            .unwrap()
            .matches(Some("8.8.8.8".parse().unwrap()))
    );
}

#[test]
fn ini_text_goes_through_the_same_checks() {
    let config = ServerConfig::from_ini_text(
        "[uwsgi]\nsocket = 127.0.0.1:0\nbuffer-size = 8192\n",
        Path::new("/etc/app.ini"),
        "uwsgi",
        &[],
    )
    .unwrap();
    assert_eq!(config.buffer_size, 8192);
    let err = ServerConfig::from_ini_text("[uwsgi]\nbogus = 1\n", Path::new("a.ini"), "uwsgi", &[])
        .unwrap_err();
    assert!(err.to_string().contains("a.ini:2"), "{err}");
    // Odd input is an error, never a panic.
    for text in [
        "[",
        "[uwsgi]\n=",
        "[uwsgi]\nsocket=%(",
        "[uwsgi]\nx=%",
        "[uwsgi]\ns=$(",
        "\u{0}[uwsgi]",
    ] {
        let _ = ServerConfig::from_ini_text(text, Path::new("f.ini"), "uwsgi", &[]);
    }
}

#[test]
fn snmp_options() {
    let parse = |list: &[&str]| {
        let mut all = vec!["--socket", ":0"];
        all.extend_from_slice(list);
        ServerConfig::from_sources(&args(&all), &[])
    };
    // Without the options there is no agent and no table.
    let config = parse(&[]).unwrap();
    assert!(!config.snmp);
    assert!(config.state_config().unwrap().snmp.is_none());
    // `--snmp` alone: the agent answers on --udp sockets only.
    let config = parse(&["--snmp", "--master"]).unwrap();
    assert!(config.snmp && config.master);
    assert_eq!(config.snmp_addr, None);
    assert_eq!(config.snmp_community, None);
    let state = config.state_config().unwrap();
    assert_eq!(state.snmp.unwrap().community, None);
    // With an address, in every form.
    for list in [
        &["--snmp=127.0.0.1:2222"][..],
        &["--snmp", "127.0.0.1:2222"],
        &["--snmp", "127.0.0.1:2222", "--snmp-community", "public"],
    ] {
        let config = parse(list).unwrap();
        assert!(config.snmp, "{list:?}");
        assert_eq!(config.snmp_addr, Some("127.0.0.1:2222".parse().unwrap()));
    }
    // A bare ini file after `--snmp` is an ini file, not an address.
    let dir = temp_dir("snmp-ini");
    let ini = dir.join("snmp.ini");
    std::fs::write(&ini, "[uwsgi]\nsnmp-community = fromini\n").unwrap();
    let config = parse(&["--snmp", ini.to_str().unwrap()]).unwrap();
    assert!(config.snmp && config.snmp_addr.is_none());
    assert_eq!(config.snmp_community.as_deref(), Some(&b"fromini"[..]));
    // The community alone enables the agent, as in uWSGI.
    let config = parse(&["--snmp-community", "public"]).unwrap();
    assert!(config.snmp);
    assert_eq!(config.snmp_community.as_deref(), Some(&b"public"[..]));
    assert_eq!(
        config.state_config().unwrap().snmp.unwrap().community,
        Some(b"public".to_vec())
    );
    // 72 bytes at most: a cut community would never match, so it is refused.
    assert!(parse(&["--snmp-community", &"c".repeat(72)]).is_ok());
    let err = parse(&["--snmp-community", &"c".repeat(73)]).unwrap_err();
    assert!(matches!(err, ConfigError::BadValue { .. }), "{err}");
    let err = parse(&["--snmp=nowhere"]).unwrap_err();
    assert!(matches!(err, ConfigError::BadValue { .. }), "{err}");
    let err = parse(&["--snmp-community"]).unwrap_err();
    assert!(matches!(err, ConfigError::MissingValue { .. }), "{err}");
    // Ini: a bare key or `true` has no address.
    let config = ServerConfig::from_ini_text(
        "[uwsgi]\nsocket = :0\nsnmp\nsnmp-community = x\n",
        Path::new("t.ini"),
        "uwsgi",
        &[],
    )
    .unwrap();
    assert!(config.snmp && config.snmp_addr.is_none());
    let config = ServerConfig::from_ini_text(
        "[uwsgi]\nsocket = :0\nsnmp = 127.0.0.1:9\n",
        Path::new("t.ini"),
        "uwsgi",
        &[],
    )
    .unwrap();
    assert_eq!(config.snmp_addr, Some("127.0.0.1:9".parse().unwrap()));
}

#[test]
fn request_log_options() {
    let dir = temp_dir("logformat");
    let path = dir.join("app.ini");
    let text = "[uwsgi]\nsocket = :0\nprefix = web\nlog-format = %(prefix) %(addr) \"%(method) %(uri)\" %(status) %(var.HTTP_X_ID) %(mine)\ndisable-logging = true\nlog-4xx = true\nlog-slow = 250\nlog-big = 1000\nlog-micros = yes\nlog-x-forwarded-for = 1\n";
    let config = ServerConfig::from_ini_text(text, &path, "uwsgi", &[]).unwrap();
    let log = &config.request_log;
    let expected = crate::reqlog::LogFormat::parse(
        "web %(addr) \"%(method) %(uri)\" %(status) %(var.HTTP_X_ID) %(mine)",
    )
    .unwrap();
    assert_eq!(log.format.as_ref(), Some(&expected));
    assert!(log.filters.disabled && log.filters.log_4xx && !log.filters.log_5xx);
    assert!(log.micros && log.x_forwarded_for);
    assert_eq!((log.filters.slow_ms, log.filters.big), (250, 1000));

    for refused in ["--log-sendfile=1", "--log-ioerror=1", "--log-date"] {
        let err = ServerConfig::from_sources(&args(&["--socket", ":0", refused]), &[]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Refused { .. }),
            "{refused}: {err}"
        );
    }
    let err = ServerConfig::from_sources(
        &args(&["--socket", ":0", "--logformat", "%(metric.x)"]),
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("metrics"), "{err}");
}

#[test]
fn multicast_options_take_uwsgi_forms() {
    let parse = |list: &[&str]| {
        let mut all = vec!["--socket", ":0"];
        all.extend_from_slice(list);
        ServerConfig::from_sources(&args(&all), &[]).map(|c| c.multicast)
    };
    // uWSGI's defaults: TTL 1, loop on, any interface.
    assert_eq!(parse(&[]).unwrap(), crate::listen::Multicast::default());
    assert!(parse(&[]).unwrap().loop_back);
    for (list, expected) in [
        (&["--multicast-loop", "1"][..], true),
        (&["--multicast-loop", "0"], false),
        (&["--multicast-loop=0"], false),
        (&["--multicast-loop", "2"], true),
        (&["--multicast-loop", "--master"], true),
        (&["--multicast-loop=false"], false),
        (&["--multicast-loop", "off"], false),
    ] {
        assert_eq!(parse(list).unwrap().loop_back, expected, "{list:?}");
    }
    assert!(parse(&["--multicast-loop", "maybe"]).is_err());
    let config = parse(&["--multicast-ttl", "0", "--multicast-interface", "127.0.0.1"]).unwrap();
    assert_eq!(config.ttl, 0);
    assert_eq!(config.interface, Some(std::net::Ipv4Addr::LOCALHOST));
    assert!(parse(&["--multicast-interface", "lo"]).is_err());
    // In an ini file, uWSGI's number form.
    let ini = ServerConfig::from_ini_text(
        "[uwsgi]\nsocket = :0\nmulticast-loop = 0\n",
        Path::new("f.ini"),
        "uwsgi",
        &[],
    )
    .unwrap();
    assert!(!ini.multicast.loop_back);
}

#[test]
fn magic_table_describes_the_last_config_file_and_capitals_the_first() {
    // uWSGI's config_magic_table_fill: `d` is the config file's directory (with its
    // slash), `0`-`9` the directory's components; capitals keep the first file's.
    let dir = temp_dir("magic_table");
    let dir = std::path::absolute(&dir).unwrap();
    let inner = dir.join("inner.cfg.ini");
    std::fs::write(&inner, "[uwsgi]\nprocesses = 2\n").unwrap();
    let outer = dir.join("outer.ini");
    std::fs::write(
        &outer,
        "[uwsgi]\nsocket = 127.0.0.1:0\nini = inner.cfg.ini\n",
    )
    .unwrap();
    let config =
        ServerConfig::from_sources(&args(&["--ini", outer.to_str().unwrap()]), &[]).unwrap();
    let table: std::collections::HashMap<char, String> = config.magic_table().into_iter().collect();
    let dir_text = format!("{}/", dir.display());
    assert_eq!(table[&'d'], dir_text);
    assert_eq!(table[&'p'], inner.display().to_string());
    assert_eq!(table[&'s'], "inner.cfg.ini");
    assert_eq!(table[&'n'], "inner.cfg");
    assert_eq!(table[&'e'], "ini");
    assert_eq!(table[&'c'], dir.file_name().unwrap().to_string_lossy());
    assert_eq!(table[&'S'], "outer.ini");
    assert_eq!(table[&'N'], "outer");
    assert_eq!(table[&'D'], dir_text);
    let first = dir.components().nth(1).unwrap();
    assert_eq!(table[&'0'], first.as_os_str().to_string_lossy());
    assert_eq!(
        table[&'v'],
        std::env::current_dir().unwrap().display().to_string()
    );
    assert!(table.contains_key(&'i') && table.contains_key(&'h') && table.contains_key(&'t'));
    assert_eq!(table[&'j'].len(), 8);
    assert_ne!(table[&'j'], table[&'J'], "two files, two hashes");

    // Without a config file: only the instance-wide entries, and no `d`.
    let plain = ServerConfig::from_sources(&args(&["--socket", "127.0.0.1:0"]), &[]).unwrap();
    let keys: String = plain.magic_table().into_iter().map(|(k, _)| k).collect();
    // (`U`/`G` only where the user and group have names.)
    assert_eq!(keys.replace(['U', 'G'], ""), "vhtTVkug%([");
}

#[test]
#[cfg(target_endian = "little")]
fn path_hash_is_uwsgis_djb33x_in_memory_order() {
    // Known answer from uWSGI 2.0 itself (target/peers): `print = %j` in
    // /tmp/h2magic/sub/my.app.ini printed 68C7D106 on a little-endian machine.
    assert_eq!(super::path_hash(b"/tmp/h2magic/sub/my.app.ini"), "68C7D106");
}
