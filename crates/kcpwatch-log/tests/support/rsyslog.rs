//! A real rsyslogd on loopback, with its own config, pid file, work directory, ports and
//! output file, all in the test's temp dir; killed when dropped.
//!
//! It listens on UDP (imudp), plain TCP (imptcp, octet-counted framing), TLS (imtcp with the
//! `ossl` driver, anonymous clients) and TLS requiring a client certificate signed by the test
//! CA (`x509/certvalid`). `mmpstrucdata` parses the structured data into `$!rfc5424-sd`, and
//! every message is written as one `jsonmesg` line (every parsed RFC 5424 field plus `$!`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::certs::Certs;
use super::free_port;

const INSTALL: &str = "rsyslogd is needed by the syslog sink tests and was not found: install \
     Debian's packages with `apt-get install -y rsyslog rsyslog-openssl` (`npm test` does this first, on Debian or Ubuntu as root)";

pub struct Rsyslog {
    child: Child,
    bin: PathBuf,
    dir: PathBuf,
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    pub tls_client_auth: u16,
    out: PathBuf,
    log: PathBuf,
}

/// The rsyslogd binary: PATH first, then the sbin directories a non-root PATH may lack.
fn rsyslogd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d: PathBuf| d.join("rsyslogd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{INSTALL}"))
}

fn ossl_driver_installed() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
    ]
    .iter()
    .any(|d| Path::new(d).join("lmnsd_ossl.so").is_file())
}

impl Rsyslog {
    /// Starts rsyslogd and waits until it has written a probe message from each kind of input.
    /// Ports are picked free and rsyslog is restarted on new ones if one was taken meanwhile
    /// (a bounded number of times).
    pub fn start(dir: &Path, certs: &Certs) -> Self {
        let bin = rsyslogd();
        assert!(
            ossl_driver_installed(),
            "rsyslog's TLS driver lmnsd_ossl.so is missing: apt-get install -y rsyslog-openssl"
        );
        let mut last = String::new();
        for attempt in 0..5 {
            let run = dir.join(format!("rsyslog-{attempt}"));
            fs::create_dir_all(run.join("work")).expect("rsyslog dirs");
            let mut r = Self::spawn(&bin, &run, certs);
            match r.ready(Duration::from_secs(15)) {
                Ok(()) => return r,
                Err(e) => {
                    last = format!("{e}; rsyslogd said: {}", r.diagnostics());
                    drop(r);
                }
            }
        }
        panic!("rsyslogd did not come up: {last}");
    }

    fn spawn(bin: &Path, dir: &Path, certs: &Certs) -> Self {
        let (udp, tcp, tls, tls_client_auth) = (
            free_port(true),
            free_port(false),
            free_port(false),
            free_port(false),
        );
        let out = dir.join("out.json");
        let log = dir.join("rsyslogd.log");
        let p = |p: &Path| p.display().to_string();
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imudp")
module(load="imptcp")
module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
module(load="mmpstrucdata")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imptcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" address="127.0.0.1" port="{tls}"
      streamDriver.CAFile="{ca}" streamDriver.CertFile="{cert}" streamDriver.KeyFile="{key}")
input(type="imtcp" address="127.0.0.1" port="{tls_client_auth}" streamDriver.authMode="x509/certvalid"
      streamDriver.CAFile="{ca}" streamDriver.CertFile="{cert}" streamDriver.KeyFile="{key}")
template(name="kcpwatch_json" type="list") {{
    property(name="jsonmesg")
    constant(value="\n")
}}
action(type="mmpstrucdata" sd_name.lowercase="off")
action(type="omfile" file="{out}" template="kcpwatch_json")
"#,
            work = p(&dir.join("work")),
            ca = p(&certs.ca),
            cert = p(&certs.server_cert),
            key = p(&certs.server_key),
            out = p(&out),
        );
        let conf_path = dir.join("rsyslog.conf");
        fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let child = run(bin, dir, &log);
        Self {
            child,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            udp,
            tcp,
            tls,
            tls_client_auth,
            out,
            log,
        }
    }

    fn ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        // Earlier runs' probes are in the same file: this run's carry their own PROCID.
        let nonce = format!(
            "p{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let probe = |n: &str| format!("<13>1 - - probe {nonce} {n} - ready");
        let mut seen_udp = false;
        let mut seen_tcp = false;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("rsyslogd exited: {status}"));
            }
            // Datagrams sent before imudp is up are lost: send again each round.
            if !seen_udp {
                let _ = UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.send_to(probe("udp").as_bytes(), ("127.0.0.1", self.udp)));
            }
            if !seen_tcp {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.tcp)) {
                    let m = probe("tcp");
                    let _ = s.write_all(format!("{} {m}", m.len()).as_bytes());
                }
            }
            for line in self.lines() {
                if line["procid"] != nonce.as_str() {
                    continue;
                }
                match line.get("msgid").and_then(Value::as_str) {
                    Some("udp") => seen_udp = true,
                    Some("tcp") => seen_tcp = true,
                    _ => {}
                }
            }
            let tls_up = [self.tls, self.tls_client_auth]
                .iter()
                .all(|&p| TcpStream::connect(("127.0.0.1", p)).is_ok());
            if seen_udp && seen_tcp && tls_up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "no probe back within {limit:?} (udp {seen_udp}, tcp {seen_tcp})"
        ))
    }

    /// Stops rsyslogd the way an operator does (SIGTERM: it closes its inputs and writes what
    /// it has queued), and waits for it to exit.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts rsyslogd again with the same configuration, ports and output file, and waits
    /// until it is ready.
    pub fn resume(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            self.child = run(&self.bin, &self.dir, &self.log);
            match self.ready(Duration::from_secs(15)) {
                Ok(()) => return,
                Err(e) => {
                    last = format!("{e}; rsyslogd said: {}", self.diagnostics());
                    self.stop();
                }
            }
        }
        panic!("rsyslogd did not come back on the same ports: {last}");
    }

    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let Ok(f) = fs::File::open(&self.out) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            // A line still being written is incomplete JSON: it is read on the next poll.
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// What rsyslogd printed (errors about ports, TLS, config).
    pub fn diagnostics(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn run(bin: &Path, dir: &Path, log: &Path) -> Child {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("rsyslogd log");
    Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log fd"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}. {INSTALL}", bin.display()))
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
