//! Starting the real `strand` binary for integration tests: ephemeral ports, a
//! temporary data directory, a bounded wait for readiness, and a kill by PID when the
//! test is done (or fails), so nothing a test starts outlives it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a broker may take to recover and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub shard_ports: Vec<u16>,
    /// `ADDR:PORT` of the admin HTTP endpoint.
    pub admin: Option<String>,
    /// `ADDR:PORT` of the admin endpoint when it is HTTPS.
    pub admin_https: Option<String>,
    /// The first Kafka listener's port, when there is one.
    pub kafka_port: Option<u16>,
    /// Every listener's port, by name.
    pub listeners: std::collections::HashMap<String, u16>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Broker {
    /// Starts a broker on `data_dir` with kernel-chosen ports and `extra` arguments
    /// (for example `--config FILE` or `--cores 0`).
    pub fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_in(&std::env::temp_dir(), data_dir, extra)
    }

    /// Starts a broker in the working directory `cwd` with `data_dir` as given
    /// (relative paths resolve against `cwd`, as for a user in a shell).
    pub fn start_in(cwd: &Path, data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_with_env(cwd, data_dir, extra, &[])
    }

    /// Starts a broker whose main port is `port` (shard ports follow it), for tests
    /// that restart a broker and need clients to find it at the same address.
    pub fn start_on_port(data_dir: &Path, port: u16, extra: &[&str]) -> Broker {
        let port = port.to_string();
        let mut args = [&["--port", port.as_str(), "--admin-port", "0"][..], extra].concat();
        if !extra.contains(&"--kafka-port") {
            // Not Kafka's default 9092: tests run side by side.
            args.extend(["--kafka-port", "0"]);
        }
        // A broker just killed on these ports may hold them a moment longer: its
        // io_uring rings are torn down after the process is reaped, and the sockets
        // with them. Try again for a while, as a service manager restarting it would.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Broker::try_launch(&std::env::temp_dir(), data_dir, &args, &[], None) {
                Ok(broker) => return broker,
                Err(message) if message.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(message) => panic!("{message}"),
            }
        }
    }

    /// Starts a broker on the ports its `--config` file in `extra` names (no `--port`),
    /// trying again for a while when a broker just killed still holds them.
    pub fn start_as_configured(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::try_as_configured(data_dir, extra, &[]).unwrap_or_else(|message| panic!("{message}"))
    }

    /// `start_as_configured` with extra environment variables; `Err` is the broker's
    /// stderr when it stopped (or did not report ready) for another reason.
    pub fn try_as_configured(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Broker, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Broker::try_launch(&std::env::temp_dir(), data_dir, extra, env, None) {
                Ok(broker) => return Ok(broker),
                Err(message) if message.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(message) => return Err(message),
            }
        }
    }

    /// Starts a broker (kernel-chosen ports) whose descriptor limit, soft and hard, is
    /// `nofile`: for tests of what it does when descriptors run short.
    pub fn start_with_nofile(data_dir: &Path, nofile: u64, extra: &[&str]) -> Broker {
        let args = [&["--port", "0"][..], extra].concat();
        Broker::launch(&std::env::temp_dir(), data_dir, &args, &[], Some(nofile))
    }

    /// `start_in` with extra environment variables (NOTIFY_SOCKET, WATCHDOG_USEC…).
    pub fn start_with_env(cwd: &Path, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Broker {
        let args = [&["--port", "0"][..], extra].concat();
        Broker::launch(cwd, data_dir, &args, env, None)
    }

    fn launch(cwd: &Path, data_dir: &Path, extra: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Broker {
        Broker::try_launch(cwd, data_dir, extra, env, nofile).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Starts the broker; `Err` says why it did not report ready (its stderr).
    fn try_launch(
        cwd: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Result<Broker, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strand"));
        if let Some(nofile) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command.env("RUST_LOG", "warn");
        // An empty value removes the variable.
        for (key, value) in env {
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command
            .current_dir(cwd)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the strand binary");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                text.push_str(&line);
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = tx.send(line.clone());
                line.clear();
            }
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
        });
        let mut broker = Broker {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            port: 0,
            shard_ports: Vec::new(),
            admin: None,
            admin_https: None,
            kafka_port: None,
            listeners: std::collections::HashMap::new(),
            stderr,
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                broker.kill();
                // Its last words reach the stderr reader after it exits.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "the broker did not report ready within {READY_TIMEOUT:?}; stderr:\n{}",
                    broker.stderr()
                ));
            }
        };
        // "strand: serving on 127.0.0.1:PORT (shard ports A, B), N partitions, kafka
        // ADDR:PORT, listener NAME ADDR:PORT SECURITY, …, admin http://ADDR:PORT"
        let address = line.split_whitespace().nth(3).expect("address in the ready line");
        broker.port = address.rsplit(':').next().unwrap().parse().unwrap();
        let ports = line.split("shard ports ").nth(1).unwrap().split(')').next().unwrap();
        broker.shard_ports = ports.split(", ").map(|p| p.trim().parse().unwrap()).collect();
        broker.admin = line.split("admin http://").nth(1).map(|a| a.trim().to_string());
        broker.admin_https = line.split("admin https://").nth(1).map(|a| a.trim().to_string());
        broker.kafka_port = line
            .split(", kafka ")
            .nth(1)
            .map(|rest| rest.split(',').next().unwrap().trim().rsplit(':').next().unwrap().parse().unwrap());
        for entry in line.split(", listener ").skip(1) {
            let mut words = entry.split_whitespace();
            let (name, address) = (words.next().unwrap(), words.next().unwrap());
            broker.listeners.insert(name.to_string(), address.rsplit(':').next().unwrap().parse().unwrap());
        }
        Ok(broker)
    }

    /// `127.0.0.1:PORT` of the Kafka listener.
    pub fn kafka_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port.expect("the Kafka listener is on"))
    }

    /// The port of the listener named `name`.
    pub fn listener_port(&self, name: &str) -> u16 {
        *self.listeners.get(name).unwrap_or_else(|| panic!("no listener {name:?} in {:?}", self.listeners))
    }

    /// `127.0.0.1:PORT` of the main port.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the broker wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The broker's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill with a PID this test started and has not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        // SAFETY: as in `kill`.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() >= deadline {
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `strand` with `args` (a client command), bounded in time; returns status,
/// stdout and stderr.
pub fn strand(args: &[&str], stdin: &str) -> (bool, String, String) {
    run_tool(env!("CARGO_BIN_EXE_strand"), args, stdin)
}

/// Runs `program` with `args` and `stdin`, for at most a minute: whether it succeeded,
/// its stdout and its stderr.
pub fn run_tool(program: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    run_tool_within(program, args, stdin, Duration::from_secs(60))
}

/// `run_tool`, for at most `limit`.
pub fn run_tool_within(program: &str, args: &[&str], stdin: &str, limit: Duration) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {program} (scripts/test installs it): {error}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.success(), stdout.join().unwrap(), stderr.join().unwrap())
}

/// Writes `bytes` to a new connection to `port` and reads until the broker closes it
/// (None if it stays open past 5 s).
pub fn send_raw(port: u16, bytes: &[u8], close_write: bool) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.write_all(bytes);
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

/// A native frame with correlation id 77.
pub fn frame(api_key: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(12 + payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&0x5354u16.to_le_bytes());
    out.push(1);
    out.push(flags);
    out.extend_from_slice(&api_key.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&77u32.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Ports for a broker that restarts at the same address on both protocols: a main
/// port whose shard ports follow it, and the Kafka port right after those, all free
/// together (racy only as `free_ports` is).
pub fn free_ports_with_kafka() -> (u16, String) {
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get()) as u16;
    let port = free_ports(shards + 1);
    (port, (port + shards + 1).to_string())
}

/// A main port whose next `shards` ports are free too (a broker's shard ports follow
/// its main port), found by binding them. The run is taken below the kernel's
/// ephemeral range (`ip_local_port_range`), where no port the kernel gives out (a
/// client connection's, another broker's `port = 0`) can take it while a test's
/// broker is down between a stop and a restart; racy only against another test
/// choosing the same run at the same moment.
pub fn free_ports(shards: u16) -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (first, last) = (10_000u16, low.saturating_sub(shards + 1).max(10_001));
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), first..last);
        let run: Vec<_> = (0..=shards).map(|i| std::net::TcpListener::bind(("127.0.0.1", port + i))).collect();
        if run.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no run of free ports found below {low}");
}

/// A `strand` client command left running (a following consumer), its stdout lines
/// and stderr collected as they come; killed by PID when dropped.
pub struct Running {
    child: Child,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the strand binary");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (sink, out) = (lines.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (sink, err) = (stderr.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running { child, lines, stderr }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then a bounded wait.
    pub fn stop(&mut self) {
        // SAFETY: a signal to a child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded by `limit`) until `done`, panicking with `what` otherwise.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}
pub mod clients;
pub mod kafka;
pub mod pki;

/// One HTTP/1.1 exchange; returns the status code and the body.
pub fn http(address: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub fn get(address: &str, path: &str) -> (u16, String) {
    http(address, &format!("GET {path} HTTP/1.1\r\nHost: strand\r\nConnection: close\r\n\r\n"))
}

/// The sum of a metric's samples (over shards and labels) on the admin endpoint.
pub fn metric(admin: &str, name: &str) -> f64 {
    let (_, body) = get(admin, "/metrics");
    body.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
