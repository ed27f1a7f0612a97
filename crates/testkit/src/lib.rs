//! Starts moto's server once per test process on a free port and hands out SDK configs that
//! point at it. Tests that need AWS call [`moto()`]; if `moto_server` is not installed they fail
//! loudly with the install command, never skip. A test that needs a *second*, independent
//! emulator (another account's endpoint, a replacement after an outage) starts its own with
//! [`Moto::start`]; it stops when dropped.
//!
//! [`fault_proxy`] sits between the SDK and moto and injects the failures AWS shows in
//! production (refusals, outages, throttling, a moved endpoint).

pub mod fake_cwl;
pub mod fault_proxy;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    _child: ChildGuard,
}

/// moto's process and the watchdog that stops it if this test process dies first.
struct ChildGuard {
    server: Child,
    watchdog: Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(45123)
}

/// The shared emulator; started on first use. Panics (failing the test) when it cannot start.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(Moto::start)
}

impl Moto {
    /// A new emulator of its own on a free port, with its own empty state; stopped when the
    /// value is dropped (or when this test process exits). Panics (failing the test) when
    /// `moto_server` cannot start.
    pub fn start() -> Moto {
        let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        if Command::new(&bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            panic!(
                "cannot start `{bin}`. The AWS integration tests need moto's server: \
                 pip install \"moto[server]\""
            );
        }
        let port = free_port();
        let mut server = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{bin}`: {e}"));
        // A static emulator is never dropped, so a shell watchdog stops it when this test
        // process exits instead of leaving it running.
        let script = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {m} 2>/dev/null; do sleep 1; done; \
             kill {m} 2>/dev/null",
            parent = std::process::id(),
            m = server.id()
        );
        let watchdog = match Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(w) => w,
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                panic!("cannot start the moto watchdog shell: {e}");
            }
        };
        let mut guard = ChildGuard { server, watchdog };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = guard.server.try_wait() {
                panic!("moto_server exited before listening on {port}: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _child: guard,
        }
    }

    /// An SDK config for the emulator: static test credentials, the given region.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        sdk_config_at(&self.endpoint, region).await
    }

    /// An S3 client for the emulator (path-style: moto serves every bucket on one host).
    pub async fn s3_client(&self, region: &str) -> aws_sdk_s3::Client {
        s3_client_for(&self.sdk_config(region).await)
    }
}

/// An SDK config for any emulated endpoint (moto, or a [`fault_proxy::FaultProxy`] in front
/// of it): static test credentials, the given region.
pub async fn sdk_config_at(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// An S3 client on an emulator config from [`Moto::sdk_config`], path-style addressed.
pub fn s3_client_for(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Every message CloudWatch Logs at `endpoint` holds in the log groups under `prefix`, sorted:
/// what a test compares with the records it shipped.
pub async fn cloudwatch_messages(endpoint: &str, region: &str, prefix: &str) -> Vec<Vec<u8>> {
    let sdk = sdk_config_at(endpoint, region).await;
    let cwl = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let mut out = Vec::new();
    let groups = cwl
        .describe_log_groups()
        .log_group_name_prefix(prefix)
        .send()
        .await
        .expect("describe log groups")
        .log_groups
        .unwrap_or_default();
    for g in groups {
        let group = g.log_group_name.unwrap_or_default();
        let streams = cwl
            .describe_log_streams()
            .log_group_name(&group)
            .send()
            .await
            .expect("describe log streams")
            .log_streams
            .unwrap_or_default();
        for s in streams {
            let stream = s.log_stream_name.unwrap_or_default();
            let mut token: Option<String> = None;
            loop {
                let page = cwl
                    .get_log_events()
                    .log_group_name(&group)
                    .log_stream_name(&stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .expect("get log events");
                let events = page.events.unwrap_or_default();
                let empty = events.is_empty();
                out.extend(
                    events
                        .into_iter()
                        .filter_map(|e| e.message)
                        .map(String::into_bytes),
                );
                let next = page.next_forward_token;
                if empty || next.is_none() || next == token {
                    break;
                }
                token = next;
            }
        }
    }
    out.sort();
    out
}
