//! A private ejabberd (Debian's 23.01) whose logins are checked by `smartraiden xmpp-auth
//! --extauth` (ejabberd's `auth_method: external`), for tests. It renders
//! `xmpp-server-config/ejabberd.yml.template` into a temporary directory the `ejabberd` system
//! user can read (ejabberdctl runs the server as that user), with a copy of the node binary as
//! the extauth program there.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestnetError, io};
use crate::transport::xmpp::server::render_template;

/// The ejabberd configuration template, with `@NAME@` placeholders.
pub const EJABBERD_TEMPLATE: &str = include_str!("../../xmpp-server-config/ejabberd.yml.template");

/// The project's idempotent installer of external programs.
const DEPS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/deps.sh");

/// Erlang takes a few seconds to start; generous for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private ejabberd; stopped (its whole process group) when dropped.
#[derive(Debug)]
pub struct EjabberdServer {
    domain: String,
    addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl EjabberdServer {
    /// Installs ejabberd if missing (`integration/deps.sh ejabberd`) and starts it for
    /// `domain` on a free loopback port, logins checked by `binary xmpp-auth --extauth`.
    pub fn start(domain: &str, binary: &Path) -> Result<Self, TestnetError> {
        if !Path::new("/usr/sbin/ejabberdctl").exists() {
            let status = Command::new("bash")
                .args([DEPS_SCRIPT, "ejabberd"])
                .stdin(Stdio::null())
                .status()
                .map_err(|e| TestnetError::Setup(format!("running deps.sh ejabberd: {e}")))?;
            if !status.success() {
                return Err(TestnetError::Setup(format!(
                    "deps.sh ejabberd failed: {status}"
                )));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("smartraiden-ejabberd-")
            .tempdir()
            .map_err(|e| TestnetError::Setup(format!("temporary directory: {e}")))?;
        let base = dir.path();
        // ejabberdctl runs the server as the `ejabberd` user: it must read the config, run the
        // extauth program and write its spool and logs.
        let program = base.join("smartraiden");
        std::fs::copy(binary, &program).map_err(io("copying", binary))?;
        for sub in ["spool", "logs"] {
            std::fs::create_dir_all(base.join(sub)).map_err(io("creating", base))?;
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| TestnetError::Setup(format!("finding a free port: {e}")))?
            .port();
        let config = render_template(
            EJABBERD_TEMPLATE,
            &[
                ("DOMAIN", domain.to_owned()),
                ("C2S_PORT", port.to_string()),
                ("INTERFACE", "127.0.0.1".into()),
                (
                    "EXTAUTH_PROGRAM",
                    format!("{} xmpp-auth --extauth", program.display()),
                ),
            ],
        );
        let config_path = base.join("ejabberd.yml");
        std::fs::write(&config_path, config).map_err(io("writing", &config_path))?;
        let chown = Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(base)
            .status()
            .map_err(|e| TestnetError::Setup(format!("chown: {e}")))?;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(base, mode).map_err(io("chmod", base))?;
        if !chown.success() {
            return Err(TestnetError::Setup(format!(
                "chown {}: {chown}",
                base.display()
            )));
        }
        let log = std::fs::File::create(base.join("console.log")).map_err(io("creating", base))?;
        let log_err = log.try_clone().map_err(io("opening", base))?;
        // Our own ejabberdctl.cfg: Debian's sets EJABBERD_CONFIG_PATH to /etc/ejabberd/… and
        // would override --config.
        let ctl = ctl_path(base);
        std::fs::write(&ctl, "ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\n")
            .map_err(io("writing", &ctl))?;
        let mut cmd = Command::new("/usr/sbin/ejabberdctl");
        cmd.arg("--config-dir")
            .arg(base)
            .arg("--ctl-config")
            .arg(&ctl)
            .arg("--config")
            .arg(&config_path)
            .arg("--spool")
            .arg(base.join("spool"))
            .arg("--logs")
            .arg(base.join("logs"))
            .args(["--node", &format!("srtest{port}@localhost"), "foreground"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(io("starting", Path::new("ejabberdctl")))?;
        let mut server = EjabberdServer {
            domain: domain.to_owned(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child: Some(child),
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The XMPP domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The client port's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its private directory (config, logs, spool).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn wait_ready(&mut self) -> Result<(), TestnetError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let console = std::fs::read_to_string(self.dir.path().join("console.log"))
                    .unwrap_or_default();
                let log = std::fs::read_to_string(self.dir.path().join("logs/ejabberd.log"))
                    .unwrap_or_default();
                self.stop();
                return Err(TestnetError::Setup(format!(
                    "ejabberd did not open {} ({exited:?}):\n{console}\n{log}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server: ejabberdctl, and the Erlang VM it started as the `ejabberd` user (in
    /// a session of its own, found by this instance's unique node name).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let node = format!("srtest{}@localhost", self.addr.port());
            for pid in super::network::processes_with_arg(Path::new(&node)) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EjabberdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ctl_path(base: &Path) -> PathBuf {
    base.join("ejabberdctl.cfg")
}
