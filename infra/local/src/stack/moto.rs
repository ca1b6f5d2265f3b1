//! moto in server mode on loopback, from the project's venv (`infra/scripts/venv`).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto's server from the venv (through `infra/scripts/moto_server.py`, which isolates
    /// DynamoDB transactions as AWS does) on a free loopback port and waits until it answers.
    ///
    /// The port is free when chosen, but another process (a test running beside this one) may
    /// take it before moto binds it: then moto exits, and it is started again on another port.
    pub fn start(repo: &Path) -> Result<Moto> {
        let python = repo.join(".venv/bin/python3");
        if !repo.join(".venv/bin/moto_server").exists() {
            bail!(
                "{} is missing: run infra/scripts/venv first",
                repo.join(".venv/bin/moto_server").display()
            );
        }
        let server = repo.join("infra/scripts/moto_server.py");
        let mut last = None;
        for _ in 0..5 {
            match Moto::try_start(&python, &server)? {
                Ok(moto) => return Ok(moto),
                Err(why) => last = Some(why),
            }
        }
        bail!(
            "moto did not start: {}",
            last.unwrap_or_else(|| "no attempt".into())
        )
    }

    /// One attempt: the server, or why this port did not work.
    fn try_start(python: &Path, server: &Path) -> Result<std::result::Result<Moto, String>> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(python)
            .arg(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        // A loaded 2-core machine can take a while to start Python.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Err(format!("moto exited ({status}) on port {port}")));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Listening, and still ours (it did not exit for want of the port).
                std::thread::sleep(Duration::from_millis(100));
                if child.try_wait()?.is_none() {
                    return Ok(Ok(Moto {
                        child,
                        endpoint: format!("http://127.0.0.1:{port}"),
                    }));
                }
                continue;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Err(format!("no answer on port {port} within 90 s")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SDK configuration pointing at this emulator (static local credentials, us-east-1).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(crate::stack::provision::REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "eucora-local",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
