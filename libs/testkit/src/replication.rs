//! A PostgreSQL primary and a streaming replica of it, started by a test from the machine's
//! PostgreSQL binaries (Debian's `/usr/lib/postgresql/<n>/bin`): what a replica's readers are
//! tested against. Both are the test's own (the shared server's configuration is not touched),
//! small (`initdb` + `pg_basebackup`, a few seconds) and gone when the pair is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A primary and its hot standby, trust auth, on free ports of 127.0.0.1.
pub struct StreamingPair {
    pub primary_port: u16,
    pub standby_port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    /// `initdb` refuses root: the clusters then belong to the `postgres` user.
    user: Option<&'static str>,
}

fn bindir() -> PathBuf {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_config.into_iter().collect();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    candidates.extend(debian.into_iter().rev());
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists())
        .unwrap_or_else(|| panic!("initdb not found: install the PostgreSQL server"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

impl StreamingPair {
    /// Start the primary, copy it with `pg_basebackup -R`, start the copy as its standby.
    /// Blocking (a few seconds): call it before the services under test start.
    pub fn start() -> StreamingPair {
        let user = is_root().then_some("postgres");
        let dir = std::env::temp_dir().join(format!("sf-replication-{}", uuid::Uuid::new_v4()));
        let pair = StreamingPair {
            primary_port: free_port(),
            standby_port: free_port(),
            dir,
            bindir: bindir(),
            user,
        };
        pair.check(pair.command("mkdir", &["-p", &pair.dir.display().to_string()]));
        pair.run(
            "initdb",
            &[
                "-D",
                &pair.data("primary"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        pair.ctl("primary", pair.primary_port, "start");
        pair.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &pair.data("standby"),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        pair.start_standby();
        pair
    }

    /// `postgres://postgres@127.0.0.1:<primary>/<db>`.
    pub fn primary_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.primary_port)
    }

    /// The standby's URL for `db` (read-only).
    pub fn standby_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.standby_port)
    }

    /// Start the standby (again, after [`Self::stop_standby`]); it catches up by itself.
    pub fn start_standby(&self) {
        self.ctl("standby", self.standby_port, "start");
    }

    /// Stop the standby at once, as a crash would (connections cut, no checkpoint).
    pub fn stop_standby(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data("standby"), "-m", "immediate", "-w", "stop"],
        );
    }

    fn data(&self, which: &str) -> String {
        self.dir.join(which).display().to_string()
    }

    fn ctl(&self, which: &str, port: u16, action: &str) {
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            dir = self.dir.display()
        );
        let log = self.dir.join(format!("{which}.log")).display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(which),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                action,
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        self.check(self.command(&self.bindir.join(program).display().to_string(), args));
    }

    /// `program args` as the clusters' owner (through `runuser` when this is root).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        match self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--", program]).args(args);
                command
            }
            None => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
        }
    }

    fn check(&self, mut command: Command) {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Drop for StreamingPair {
    fn drop(&mut self) {
        for which in ["standby", "primary"] {
            if Path::new(&self.data(which)).join("postmaster.pid").exists() {
                let pg_ctl = self.bindir.join("pg_ctl").display().to_string();
                let data = self.data(which);
                let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
                let _ = self.command(&pg_ctl, &args).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
