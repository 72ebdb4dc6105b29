//! A broker started by the benchmark (`--spawn-broker`): `strand serve` from the same
//! build, on its own cores, with a data directory the run owns, stopped by its PID
//! when the run ends.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The longest a spawned broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker this run started; SIGTERM and reaped when dropped.
pub struct SpawnedBroker {
    child: Child,
    /// `host:port` of its main listener.
    pub bootstrap: String,
    /// `host:port` of its Kafka listener, when on.
    pub kafka: Option<String>,
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub cores: Vec<usize>,
}

/// `strand` next to the running executable (`target/release/strand` beside
/// `target/release/strand-bench`).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("strand"))
}

impl SpawnedBroker {
    /// Starts `binary serve` on `cores` with a fresh `dir`, the settings of `config`
    /// (a `strand.toml` table; the data directory, cores and port are the run's).
    pub fn start(binary: &Path, dir: &Path, cores: &[usize], config: &toml::Table) -> anyhow::Result<SpawnedBroker> {
        anyhow::ensure!(
            binary.exists(),
            "{} not found: build it with `cargo build --release --workspace`, or name it with --broker-binary",
            binary.display()
        );
        anyhow::ensure!(!cores.is_empty(), "the broker needs at least one core");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)
            .map_err(|error| anyhow::anyhow!("cannot create the broker's data directory {}: {error}", dir.display()))?;
        let config_path = dir.with_extension("toml");
        std::fs::write(&config_path, toml::to_string(config)?)?;
        let cores_arg = cores.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let mut command = Command::new(binary);
        command
            .args(["serve", "--port", "0", "--cores", &cores_arg, "--data-dir"])
            .arg(dir)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        tie_to_this_run(&mut command);
        let mut child =
            command.spawn().map_err(|error| anyhow::anyhow!("cannot start {}: {error}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = sender.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining, so the broker never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(error)) => {
                stop(&mut child);
                anyhow::bail!("reading the broker's ready line: {error}");
            }
            Err(_) => {
                stop(&mut child);
                anyhow::bail!("the broker printed no ready line in {READY_TIMEOUT:?}");
            }
        };
        // `strand: serving on ADDR:PORT (shard ports …), N partitions`
        let Some(address) = line.strip_prefix("strand: serving on ").and_then(|rest| rest.split_whitespace().next())
        else {
            let status = child.try_wait().ok().flatten();
            stop(&mut child);
            match status {
                Some(status) => anyhow::bail!("the broker did not start ({status}); its messages are above"),
                None => anyhow::bail!("the broker did not start: {line:?}"),
            }
        };
        // `…, kafka ADDR:PORT, admin …` when the Kafka listener is on.
        let kafka = line.split(", kafka ").nth(1).and_then(|rest| rest.split(',').next()).map(|a| a.trim().to_string());
        Ok(SpawnedBroker {
            child,
            bootstrap: address.to_string(),
            kafka,
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            cores: cores.to_vec(),
        })
    }

    /// The PID of the broker process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// SIGTERM, then SIGKILL after 30 s; reaps the child.
fn stop(child: &mut Child) {
    // SAFETY: a signal to the child this process started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..300 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("toml"));
    }
}

/// Makes a broker `command` starts die with this process (SIGTERM when it dies first,
/// so a killed run never leaves one running) and free to run on every core (it pins
/// its own shards), whatever core the spawning thread is pinned to (`strand-bench
/// broker` and `cluster` pin themselves to their load core).
pub fn tie_to_this_run(command: &mut Command) {
    // SAFETY: prctl and sched_setaffinity in the forked child before exec, both
    // async-signal-safe system calls on plain data.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            let mut every: libc::cpu_set_t = std::mem::zeroed();
            for cpu in 0..libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut every);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &every);
            Ok(())
        });
    }
}
