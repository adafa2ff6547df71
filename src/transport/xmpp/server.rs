//! A private Prosody instance for tests and the local testnet.
//!
//! Each [`ProsodyServer`] renders `xmpp-server-config/prosody.cfg.lua.template` into its own
//! temporary directory (config, data, pid file, log) and listens on a free loopback port, so
//! several can run side by side and nothing is assumed to be running already. With
//! [`ProsodyOptions::netns`] it runs inside a network namespace instead, listening on
//! [`ProsodyOptions::interface`] there (the LAN lab of `testnet::netns`).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The single-server Prosody configuration template, with `@NAME@` placeholders.
pub const CONFIG_TEMPLATE: &str =
    include_str!("../../../xmpp-server-config/prosody.cfg.lua.template");

/// Prosody's key-bound login provider (SPEC §4), written next to each rendered config.
pub const AUTH_MODULE: &str =
    include_str!("../../../xmpp-server-config/modules/mod_auth_smartraiden.lua");

/// The federation (s2s) variant, with `@NAME@` placeholders (adds `S2S_PORT`).
pub const FEDERATION_TEMPLATE: &str =
    include_str!("../../../xmpp-server-config/prosody-federation.cfg.lua.template");

/// The project's idempotent installer of external programs.
const DEPS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/deps.sh");

/// How many bytes of the log end a start-up error quotes.
const LOG_TAIL_BYTES: u64 = 4096;

/// Why the Prosody harness failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Prosody is not installed and `integration/deps.sh prosody` could not install it.
    #[error("prosody is not installed and `{script} prosody` failed: {detail}")]
    Install {
        /// The installer that was run.
        script: String,
        /// Its exit status and output.
        detail: String,
    },
    /// A file or process operation failed.
    #[error("prosody harness I/O ({context}): {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Prosody exited before it opened its port.
    #[error("prosody exited during start-up ({status}); log tail:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its log and console output.
        log_tail: String,
    },
    /// Prosody did not open its port before the deadline.
    #[error(
        "prosody did not accept connections on port {port} within {timeout:?}; log tail:\n{log_tail}"
    )]
    StartTimeout {
        /// The port it was told to open.
        port: u16,
        /// How long the harness waited.
        timeout: Duration,
        /// The end of its log and console output.
        log_tail: String,
    },
    /// `prosodyctl register` failed.
    #[error("prosodyctl register {user}@{domain} failed ({status}): {output}")]
    Register {
        /// The user name.
        user: String,
        /// The virtual host.
        domain: String,
        /// Its exit status.
        status: String,
        /// Its output.
        output: String,
    },
}

/// Attaches a description of what was being done to an I/O error.
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Minimum level Prosody logs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Every stanza's top tag and connection detail; slows Prosody down.
    Debug,
    /// Connections, logins and errors.
    Info,
    /// Problems only.
    Warn,
}

impl LogLevel {
    /// Prosody's name for the level.
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
        }
    }
}

/// Says whether a server address accepts connections, from wherever the caller cares about
/// (e.g. from a node's network namespace); see [`ProsodyOptions::ready_probe`].
#[derive(Clone)]
pub struct ReadyProbe(pub Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>);

impl std::fmt::Debug for ReadyProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyProbe(<fn>)")
    }
}

/// Options for [`ProsodyServer::start_with`].
#[derive(Debug, Clone)]
pub struct ProsodyOptions {
    /// Minimum log level.
    pub log_level: LogLevel,
    /// How long to wait for the port to open.
    pub start_timeout: Duration,
    /// Keep config, data and logs in this directory (created if missing) instead of a
    /// temporary one removed on drop.
    pub dir: Option<PathBuf>,
    /// Run Prosody in its own process group, so a terminal's Ctrl-C or hang-up does not reach it.
    pub own_process_group: bool,
    /// Log every stanza in and out, whole (Prosody's `mod_stanza_debug`; forces the debug
    /// level). For tests that read the bytes crossing the server.
    pub stanza_log: bool,
    /// Run Prosody in this network namespace (`ip netns exec NAME prosody …`); `None`: this one.
    pub netns: Option<String>,
    /// The address Prosody listens on (its `interfaces`); 127.0.0.1 by default.
    pub interface: Ipv4Addr,
    /// How to tell that the port accepts connections (checked every 10 ms during start-up);
    /// `None`: a TCP connection from this process. Set it when this process has no route to
    /// [`ProsodyOptions::interface`] (Prosody in another namespace).
    pub ready_probe: Option<ReadyProbe>,
    /// Key-bound logins (SPEC §4): `mod_auth_smartraiden` asks the verifier at this URL
    /// (`smartraiden xmpp-auth --http`) instead of stored passwords.
    pub key_bound_auth: Option<String>,
    /// STARTTLS with this certificate, and no client login without it.
    pub tls: Option<ServerCert>,
    /// Federate (s2s on port 5269, dialback) with the servers named in this hosts file
    /// (`<ip> <domain>` lines, read by Prosody's lua-unbound resolver instead of DNS).
    pub federation_hosts: Option<PathBuf>,
}

/// A server certificate (PEM) and its private key, for STARTTLS.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA certificate clients verify it with (`--xmpp-ca-file`), when it is a private one.
    pub ca: Option<PathBuf>,
}

impl Default for ProsodyOptions {
    fn default() -> Self {
        // Start-up to open port takes ~0.07 s here; ten seconds absorbs a loaded CI machine.
        ProsodyOptions {
            log_level: LogLevel::Info,
            start_timeout: Duration::from_secs(10),
            dir: None,
            own_process_group: false,
            stanza_log: false,
            netns: None,
            interface: Ipv4Addr::LOCALHOST,
            ready_probe: None,
            key_bound_auth: None,
            tls: None,
            federation_hosts: None,
        }
    }
}

/// A running (or stopped) private Prosody instance; killed when dropped.
#[derive(Debug)]
pub struct ProsodyServer {
    domain: String,
    port: u16,
    options: ProsodyOptions,
    config_path: PathBuf,
    log_path: PathBuf,
    console_path: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    base: PathBuf,
    // Declared last so the directory outlives the process during drop; `None` for a directory
    // the caller chose.
    _temp: Option<tempfile::TempDir>,
}

impl ProsodyServer {
    /// Starts Prosody for `domain` on a free loopback port with default options.
    pub fn start(domain: &str) -> Result<Self, ServerError> {
        Self::start_with(domain, ProsodyOptions::default())
    }

    /// Starts Prosody for `domain` on a free port (on [`ProsodyOptions::interface`], loopback by
    /// default).
    pub fn start_with(domain: &str, options: ProsodyOptions) -> Result<Self, ServerError> {
        ensure_installed()?;
        if options.federation_hosts.is_some() {
            // Prosody reads hosts files only through lua-unbound.
            install(
                "lua-unbound",
                Path::new("/usr/share/lua/5.4/lunbound.lua").exists()
                    || Path::new("/usr/lib/x86_64-linux-gnu/lua/5.4/lunbound.so").exists(),
            )?;
        }
        let (base, temp) = match &options.dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("smartraiden-prosody-")
                    .tempdir()
                    .map_err(io_err("creating the server directory"))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let base = base.as_path();
        let data_dir = base.join("data");
        let cert_dir = base.join("certs");
        for d in [&data_dir, &cert_dir] {
            fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let port = free_port()?;
        let mut server = ProsodyServer {
            domain: domain.to_owned(),
            port,
            config_path: base.join("prosody.cfg.lua"),
            log_path: base.join("prosody.log"),
            console_path: base.join("console.log"),
            data_dir,
            options,
            child: None,
            base: base.to_path_buf(),
            _temp: temp,
        };
        let config = server.render_config(&cert_dir);
        fs::write(&server.config_path, config).map_err(io_err("writing the config"))?;
        server.spawn()?;
        Ok(server)
    }

    /// The XMPP domain (virtual host) accounts live on.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The client-to-server port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client-to-server address ([`ProsodyOptions::interface`]: loopback by default).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.options.interface, self.port))
    }

    /// Prosody's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The rendered configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Account and offline-message storage.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's private base directory.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// Whether logins are key-bound (no accounts to register).
    pub fn key_bound(&self) -> bool {
        self.options.key_bound_auth.is_some()
    }

    /// The private CA clients verify this server's certificate with, if it speaks TLS with one.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.options.tls.as_ref().and_then(|t| t.ca.as_deref())
    }

    /// Whether clients must use TLS.
    pub fn tls(&self) -> bool {
        self.options.tls.is_some()
    }

    /// The process id, while this handle owns a running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves Prosody running after this handle is dropped; returns its process id. Only
    /// meaningful with [`ProsodyOptions::dir`], since a temporary directory goes with the handle.
    pub fn detach(&mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// Whether the Prosody process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Creates (or resets the password of) `user@domain`; works whether or not Prosody runs.
    pub fn register(&self, user: &str, password: &str) -> Result<(), ServerError> {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config_path)
            .args(["register", user, &self.domain, password])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("running prosodyctl register"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(ServerError::Register {
            user: user.to_owned(),
            domain: self.domain.clone(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    /// Stops Prosody in an orderly way (SIGTERM), killing it if it lingers.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std only sends SIGKILL; `kill -TERM` lets Prosody close its streams cleanly.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(io_err("waiting for prosody"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        log::warn!(
            "prosody on port {} ignored SIGTERM for 5 s; killing it",
            self.port
        );
        let _ = child.kill();
        child.wait().map_err(io_err("waiting for prosody"))?;
        Ok(())
    }

    /// Kills Prosody at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> Result<(), ServerError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().map_err(io_err("waiting for prosody"))?;
        }
        Ok(())
    }

    /// Starts Prosody again on the same port, config and data (stopping it first if running).
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        self.spawn()
    }

    /// Starts the process and waits until the port accepts connections.
    fn spawn(&mut self) -> Result<(), ServerError> {
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.console_path)
            .map_err(io_err("opening the console log"))?;
        let console_err = console
            .try_clone()
            .map_err(io_err("opening the console log"))?;
        let mut cmd = match &self.options.netns {
            None => Command::new("prosody"),
            Some(ns) => {
                // `ip netns exec` execs prosody in place: the child's pid is prosody's.
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "prosody"]);
                cmd
            }
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err);
        if self.options.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(io_err("spawning prosody"))?;
        self.child = Some(child);
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(ServerError::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            let ready = match &self.options.ready_probe {
                None => {
                    TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
                }
                Some(probe) => (probe.0)(self.addr()),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                return Err(ServerError::StartTimeout {
                    port: self.port,
                    timeout: self.options.start_timeout,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Fills the template's placeholders for this instance.
    fn render_config(&self, cert_dir: &Path) -> String {
        let level = if self.options.stanza_log {
            LogLevel::Debug
        } else {
            self.options.log_level
        };
        let template = match self.options.federation_hosts {
            Some(_) => FEDERATION_TEMPLATE,
            None => CONFIG_TEMPLATE,
        };
        let config = render_template(
            template,
            &[
                // Peers find each other on the default s2s port (no SRV records here).
                ("S2S_PORT", "5269".into()),
                ("INTERFACE", self.options.interface.to_string()),
                ("C2S_PORT", self.port.to_string()),
                ("DOMAIN", self.domain.clone()),
                ("DATA_DIR", lua_path(&self.data_dir)),
                ("CERT_DIR", lua_path(cert_dir)),
                ("PID_FILE", lua_path(&self.base.join("prosody.pid"))),
                ("LOG_FILE", lua_path(&self.log_path)),
                ("LOG_LEVEL", level.as_str().into()),
            ],
        );
        let config = self.secure_config(config);
        if self.options.stanza_log {
            config.replacen(
                "modules_enabled = {",
                "modules_enabled = {\n    \"stanza_debug\"; -- harness option: log every stanza",
                1,
            )
        } else {
            config
        }
    }

    /// Switches the rendered config to key-bound logins and STARTTLS when asked for.
    fn secure_config(&self, mut config: String) -> String {
        if let Some(url) = &self.options.key_bound_auth {
            let modules = self.base.join("modules");
            let written = fs::create_dir_all(&modules)
                .and_then(|()| fs::write(modules.join("mod_auth_smartraiden.lua"), AUTH_MODULE));
            if let Err(e) = written {
                log::error!("prosody harness: writing the auth module: {e}");
            }
            config = config.replacen(
                "authentication = \"internal_plain\"",
                &format!(
                    "plugin_paths = {{ \"{}\" }}\nauthentication = \"smartraiden\"\nsmartraiden_verifier_url = \"{}\"",
                    lua_path(&modules),
                    url.replace('"', "")
                ),
                1,
            );
        }
        if let Some(hosts) = &self.options.federation_hosts {
            config = config.replacen(
                "\nVirtualHost",
                &format!(
                    "\n-- Peer servers from a private hosts file (lua-unbound), not DNS.\n\
                     unbound = {{ resolvconf = false; hoststxt = \"{}\"; \
                     options = {{ [\"local-zone\"] = \"test. static\" }} }}\n\nVirtualHost",
                    lua_path(hosts)
                ),
                1,
            );
        }
        if let Some(tls) = &self.options.tls {
            config = config
                .replacen(
                    "c2s_require_encryption = false",
                    &format!(
                        "c2s_require_encryption = true\nssl = {{ certificate = \"{}\"; key = \"{}\" }}",
                        lua_path(&tls.cert),
                        lua_path(&tls.key)
                    ),
                    1,
                )
                .replacen(
                    "allow_unencrypted_plain_auth = true",
                    "allow_unencrypted_plain_auth = false",
                    1,
                )
                .replacen(
                    "modules_enabled = {",
                    "modules_enabled = {\n    \"tls\"; -- STARTTLS",
                    1,
                );
        }
        config
    }

    /// The last few kilobytes of the log and console output, for error messages.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for path in [&self.log_path, &self.console_path] {
            out.push_str(&format!("--- {} ---\n", path.display()));
            out.push_str(&tail(path).unwrap_or_else(|e| format!("(unreadable: {e})\n")));
        }
        out
    }
}

impl Drop for ProsodyServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Replaces each `@NAME@` in `template` by its value.
pub fn render_template(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("@{name}@"), value);
    }
    out
}

/// A path as a Lua string body (the template quotes it).
fn lua_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Runs the installer when `prosody` is not on the PATH.
fn ensure_installed() -> Result<(), ServerError> {
    install("prosody", on_path("prosody") && on_path("prosodyctl"))
}

/// Runs `integration/deps.sh <dep>` unless `present`.
fn install(dep: &str, present: bool) -> Result<(), ServerError> {
    if present {
        return Ok(());
    }
    let out = Command::new("bash")
        .args([DEPS_SCRIPT, dep])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ServerError::Install {
            script: DEPS_SCRIPT.into(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ServerError::Install {
        script: DEPS_SCRIPT.into(),
        detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
    })
}

/// Whether an executable named `name` is on the PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// A loopback port free now (see [`crate::transport::ports::free_loopback_port`]).
fn free_port() -> Result<u16, ServerError> {
    crate::transport::ports::free_loopback_port().map_err(io_err("finding a free port"))
}

/// The last [`LOG_TAIL_BYTES`] of a file.
fn tail(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_without_leftover_placeholders() {
        let values: Vec<(&str, String)> = [
            "INTERFACE",
            "C2S_PORT",
            "S2S_PORT",
            "DOMAIN",
            "DATA_DIR",
            "CERT_DIR",
            "PID_FILE",
            "LOG_FILE",
            "LOG_LEVEL",
        ]
        .iter()
        .map(|n| (*n, "x".to_string()))
        .collect();
        for template in [CONFIG_TEMPLATE, FEDERATION_TEMPLATE] {
            let out = render_template(template, &values);
            let code: Vec<&str> = out
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect();
            assert!(
                code.iter().all(|l| !l.contains('@')),
                "placeholder left: {code:?}"
            );
            assert!(out.contains("nagle = false"));
            assert!(out.contains("VirtualHost \"x\""));
        }
    }
}
