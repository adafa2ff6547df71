//! The secure XMPP pieces of a testnet: a private certificate authority (made with the
//! `openssl` command) that signs each server's certificate, and the key-bound login verifier
//! (`smartraiden xmpp-auth --http`) as a process of its own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestnetError, io};
use crate::transport::xmpp::{ProsodyOptions, ServerCert};

/// How long the verifier may take to open its port.
const VERIFIER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private CA in a directory: `ca.pem` (give it to nodes as `--xmpp-ca-file`) and its key.
/// rustls refuses a bare self-signed certificate as a server's, so servers get certificates
/// signed by this CA.
#[derive(Debug, Clone)]
pub struct PrivateCa {
    dir: PathBuf,
}

impl PrivateCa {
    /// Makes a fresh CA (EC P-256, valid 30 days) in `dir` (created if missing).
    pub fn create(dir: &Path) -> Result<Self, TestnetError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let ca = PrivateCa {
            dir: dir.to_path_buf(),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=SmartRaiden private test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &path_str(&ca.key_path()),
            "-out",
            &path_str(&ca.cert_path()),
        ])?;
        Ok(ca)
    }

    /// The CA certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// A server certificate for `domain`, signed by this CA, written as `<domain>.pem/.key`.
    pub fn issue(&self, domain: &str) -> Result<ServerCert, TestnetError> {
        let key = self.dir.join(format!("{domain}.key"));
        let csr = self.dir.join(format!("{domain}.csr"));
        let cert = self.dir.join(format!("{domain}.pem"));
        let ext = self.dir.join(format!("{domain}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{domain}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .map_err(io("writing", &ext))?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={domain}"),
            "-keyout",
            &path_str(&key),
            "-out",
            &path_str(&csr),
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path_str(&csr),
            "-CA",
            &path_str(&self.cert_path()),
            "-CAkey",
            &path_str(&self.key_path()),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &path_str(&ext),
            "-out",
            &path_str(&cert),
        ])?;
        Ok(ServerCert {
            cert,
            key,
            ca: Some(self.cert_path()),
        })
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `openssl` with `args`; its output in the error when it fails.
fn openssl(args: &[&str]) -> Result<(), TestnetError> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestnetError::Setup(format!("running openssl: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(TestnetError::Setup(format!(
        "openssl {} failed ({}): {}",
        args.first().unwrap_or(&""),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// `smartraiden xmpp-auth --http` on a loopback port; killed when dropped.
#[derive(Debug)]
pub struct VerifierProcess {
    binary: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
    own_process_group: bool,
}

impl VerifierProcess {
    /// Starts the verifier of `binary` on a free loopback port, logging to `log`.
    pub fn start(binary: &Path, log: &Path) -> Result<Self, TestnetError> {
        Self::start_with(binary, log, false)
    }

    /// As [`VerifierProcess::start`]; `own_process_group`: out of reach of a terminal's Ctrl-C
    /// (a detached testnet).
    pub fn start_with(
        binary: &Path,
        log: &Path,
        own_process_group: bool,
    ) -> Result<Self, TestnetError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| TestnetError::Setup(format!("finding a free port: {e}")))?
            .port();
        let mut v = VerifierProcess {
            binary: binary.to_path_buf(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log: log.to_path_buf(),
            child: None,
            own_process_group,
        };
        v.spawn()?;
        Ok(v)
    }

    /// The URL Prosody's `mod_auth_smartraiden` asks.
    pub fn url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    /// Its process id, while this handle owns it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves it running after this handle is dropped.
    pub fn detach(&mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// Kills the verifier (a crash, or an operator stopping it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Result<(), TestnetError> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), TestnetError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("opening", &self.log))?;
        let log_err = log.try_clone().map_err(io("opening", &self.log))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["xmpp-auth", "--http", &self.addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if self.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(io("starting", &self.binary))?;
        self.child = Some(child);
        let deadline = Instant::now() + VERIFIER_START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(TestnetError::Setup(format!(
                    "xmpp-auth exited during start-up ({status}); see {}",
                    self.log.display()
                )));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(TestnetError::Setup(format!(
                    "xmpp-auth did not open {} within {VERIFIER_START_TIMEOUT:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for VerifierProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private CA with a certificate for each of `domains` and one running verifier under
/// `dir`: the Prosody options (one per domain) for key-bound logins over TLS, and the verifier
/// to keep alive.
pub fn secure_options(
    dir: &Path,
    binary: &Path,
    domains: &[&str],
    detached: bool,
) -> Result<(VerifierProcess, Vec<ProsodyOptions>), TestnetError> {
    let ca = PrivateCa::create(&dir.join("ca"))?;
    let verifier = VerifierProcess::start_with(binary, &dir.join("xmpp-auth.log"), detached)?;
    let mut options = Vec::new();
    for domain in domains {
        options.push(ProsodyOptions {
            key_bound_auth: Some(verifier.url()),
            tls: Some(ca.issue(domain)?),
            ..ProsodyOptions::default()
        });
    }
    Ok((verifier, options))
}

/// Writes `dir/hosts`: `xmpp-a.test` at 127.0.0.2 and `xmpp-b.test` at 127.0.0.3, the two
/// federating servers of a testnet; its path.
pub fn write_federation_hosts(dir: &Path) -> Result<PathBuf, TestnetError> {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.2 xmpp-a.test\n127.0.0.3 xmpp-b.test\n")
        .map_err(io("writing", &hosts))?;
    Ok(hosts)
}
