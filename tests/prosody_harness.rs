//! The Prosody harness itself: start, register, stop, restart, and a clear start-up error.

use std::net::TcpStream;
use std::time::Duration;

use smartraiden::transport::xmpp::{ProsodyServer, ServerError};

fn accepts(server: &ProsodyServer) -> bool {
    TcpStream::connect_timeout(&server.addr(), Duration::from_millis(500)).is_ok()
}

#[test]
fn start_stop_restart_keeps_port_and_accounts() {
    let mut server = ProsodyServer::start("harness.test").unwrap();
    assert!(accepts(&server));
    assert!(server.is_running());
    server.register("alice", "secret").unwrap();
    let account = server.data_dir().join("harness%2etest/accounts/alice.dat");
    assert!(account.is_file(), "{} missing", account.display());
    assert!(server.log_path().is_file());

    let port = server.port();
    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(!accepts(&server), "port still open after stop");

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert!(accepts(&server));
    assert!(account.is_file());

    server.kill().unwrap();
    assert!(!accepts(&server), "port still open after kill");
}

#[test]
fn dropping_the_server_kills_prosody() {
    let server = ProsodyServer::start("drop.test").unwrap();
    let addr = server.addr();
    drop(server);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn a_broken_config_fails_with_the_log_tail() {
    // A quote in the domain breaks the Lua config: Prosody must exit, and the error must say why.
    let err = ProsodyServer::start("bad\"domain").expect_err("prosody must refuse the config");
    let text = err.to_string();
    assert!(matches!(err, ServerError::Exited { .. }), "{text}");
    assert!(text.contains("log tail"), "{text}");
    assert!(
        text.contains("prosody.cfg.lua"),
        "log tail should quote the config error: {text}"
    );
}
