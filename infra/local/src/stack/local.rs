//! The whole control plane on this machine: moto with the resources of `template.yaml`, the two
//! simulators with their fleets, the SQS event-source mappings running the functions' handlers,
//! the gate schedule, and the HTTP API, all on one [`Clock`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use eucora_aws::consumer::{MessageControl, SqsControl};
use eucora_aws::{DynamoStore, QueueUrls, SqsQueue};
use eucora_domain::Timestamp;
use eucora_domain::cab::Role;
use eucora_service::usecases::Services;
use eucora_service::usecases::gates::{RunLimits, RunReport};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::esm::EventSourceMapping;
use super::moto::Moto;
use super::platforms::{self, Simulators};
use super::provision::{Stack, provision};
use super::template::Template;
use crate::api::gateway::Api;
use crate::api::jwt::{self, LocalIssuer};
use crate::clock::Clock;

/// How the stack runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How much faster than the wall clock the stack's clock runs (1 = real time).
    pub speed: f64,
    /// Where the stack's clock starts (default: the system clock's now). The tests start it at a
    /// fixed time, so that nothing they check depends on the day they run.
    pub start: Option<Timestamp>,
    /// Windows PCs and Macs per ring group in the simulators.
    pub devices: u32,
    /// Runs the gate schedule (`rate(…)` from the template, on the stack's clock). Without it,
    /// gates run only when [`LocalStack::run_gates`] is called.
    pub schedule: bool,
    /// The API's port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The key the stand-in JWT authorizer signs and checks tokens with.
    pub jwt_key: Vec<u8>,
    /// The issuers the stand-in JWT authorizer accepts (default: [`jwt::ISSUER`]).
    pub jwt_issuers: Vec<String>,
    /// The audiences it accepts, as the template's `JwtAudience` list (default:
    /// [`jwt::AUDIENCE`]).
    pub jwt_audiences: Vec<String>,
    /// The template's `Stage` parameter.
    pub stage: String,
    /// The simulators answer as slowly as the real platforms (Graph 100–400 ms, Jamf Cloud
    /// 200 ms a call); off, they answer at once (the system tests).
    pub realistic_latency: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            speed: 1.0,
            start: None,
            devices: 25,
            schedule: true,
            port: 0,
            jwt_key: uuid::Uuid::new_v4().as_bytes().to_vec(),
            jwt_issuers: vec![jwt::ISSUER.to_owned()],
            jwt_audiences: vec![jwt::AUDIENCE.to_owned()],
            stage: "local".into(),
            realistic_latency: true,
        }
    }
}

/// The connectors' `MessageControl`, with retry delays counted on the stack's clock.
#[derive(Debug, Clone)]
struct ClockedControl {
    inner: SqsControl,
    clock: Arc<Clock>,
}

impl MessageControl for ClockedControl {
    async fn delay(&self, receipt_handle: &str, after: Duration) -> Result<(), String> {
        self.inner
            .delay(receipt_handle, self.clock.to_real(after))
            .await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), String> {
        self.inner.dead_letter(body, reason).await
    }
}

/// A running local stack. Stop it with [`LocalStack::shutdown`] (dropping it also stops moto and
/// the simulators).
pub struct LocalStack {
    pub repo: PathBuf,
    pub clock: Arc<Clock>,
    pub sdk: aws_config::SdkConfig,
    pub resources: Stack,
    pub sims: Simulators,
    pub issuer: LocalIssuer,
    /// `http://127.0.0.1:<port>`.
    pub api_url: String,
    pub bucket: String,
    pub schedule_rate: Duration,
    /// The queues the event-source mappings poll, by logical id.
    pub polled_queues: Vec<String>,
    svc: Services<DynamoStore, SqsQueue>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    moto: Moto,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("api_url", &self.api_url)
            .field("moto", &self.moto.endpoint)
            .finish_non_exhaustive()
    }
}

/// The services over the emulator's table and queues, as the HTTP functions build theirs.
pub fn services(sdk: &aws_config::SdkConfig, stack: &Stack) -> Services<DynamoStore, SqsQueue> {
    let url = |id: &str| stack.queues.get(id).map(|q| q.url.clone());
    Services {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), stack.table.clone()),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            QueueUrls {
                scoring: url("ScoringQueue"),
                intune: url("IntuneQueue"),
                jamf: url("JamfQueue"),
            },
        ),
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

/// The scheduled event the gate function receives (the template's schedule Input).
fn schedule_event(stage: &str, now: Timestamp) -> EventBridgeEvent {
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../events/schedule/gate-evaluation.json"
    ))
    .expect("the sample schedule event is JSON");
    v["time"] = now.to_rfc3339().into();
    // Each run its own id, as the Scheduler's execution ids are.
    v["id"] = format!("local-run-{}", now.unix_millis()).into();
    v["resources"][0] = format!(
        "arn:aws:scheduler:{}:{}:schedule/default/eucora-{stage}-gate-evaluation",
        super::provision::REGION,
        super::provision::ACCOUNT
    )
    .into();
    serde_json::from_value(v).expect("the sample schedule event has the EventBridge shape")
}

impl LocalStack {
    /// Starts everything; returns once the API answers.
    pub async fn start(repo: &Path, opts: Options) -> Result<LocalStack> {
        let template = Template::parse(
            &std::fs::read_to_string(repo.join("template.yaml"))
                .context("reading template.yaml")?,
        )?;
        let start = opts
            .start
            .unwrap_or_else(|| eucora_domain::Clock::now(&eucora_domain::SystemClock));
        let clock = Arc::new(Clock::new(start, opts.speed));
        let moto = Moto::start(repo)?;
        let sdk = moto.sdk().await;
        let resources = provision(&template, &opts.stage, &sdk).await?;
        let sims = platforms::start_simulators(
            opts.devices,
            Arc::clone(&clock) as Arc<dyn eucora_domain::Clock>,
            opts.realistic_latency,
        )
        .await;
        platforms::put_credentials(&sdk, &resources, &sims).await?;
        let bucket = format!("eucora-{}-artifacts", opts.stage);
        platforms::create_bucket(&sdk, &bucket).await?;
        let (intune, jamf) = platforms::connectors(&sdk, &resources, &sims)?;
        let (intune, jamf) = (Arc::new(intune), Arc::new(jamf));
        let schedule_rate = template.schedule_rate("GateEvaluationFunction")?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        // The SQS triggers of the template, each running its function's handler.
        let mut polled_queues = Vec::new();
        for trigger in template.sqs_triggers()? {
            let parts = Parts {
                sdk: &sdk,
                resources: &resources,
                clock: &clock,
                stopped: &stopped,
            };
            tasks.push(parts.trigger(&trigger, &intune, &jamf)?);
            polled_queues.push(trigger.queue.clone());
        }
        if opts.schedule {
            tasks.push(spawn_schedule(
                services(&sdk, &resources),
                Arc::clone(&clock),
                schedule_rate,
                opts.stage.clone(),
                stopped.clone(),
            ));
        }

        // The HTTP API.
        let issuer = LocalIssuer::accepting(&opts.jwt_key, &opts.jwt_issuers, &opts.jwt_audiences);
        let api = Arc::new(Api {
            svc: services(&sdk, &resources),
            issuer: issuer.clone(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", opts.port))?;
        let (addr, server) = crate::api::server::spawn(listener, api, Arc::clone(&clock))?;
        tasks.push(server);

        Ok(LocalStack {
            repo: repo.to_path_buf(),
            svc: services(&sdk, &resources),
            clock,
            sdk,
            resources,
            sims,
            issuer,
            api_url: format!("http://{addr}"),
            bucket,
            schedule_rate,
            polled_queues,
            stop,
            tasks,
            moto,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The table in the emulator, as the functions see it (deployments, audit, the connectors'
    /// ledger and breakers).
    pub fn store(&self) -> DynamoStore {
        self.svc.store.clone()
    }

    /// The emulator's endpoint.
    pub fn aws_endpoint(&self) -> &str {
        &self.moto.endpoint
    }

    /// Jumps the stack's clock (and with it the simulators' fleets) forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// A token for `sub` with `roles`, valid for 30 days on the stack's clock.
    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.issuer
            .token(sub, roles, self.now().unix_seconds(), 30 * 86_400)
    }

    /// An Entra ID-shaped token of person `oid` in tenant `tid` for audience `aud` (its `sub`
    /// pairwise, as Entra ID's), with `roles`, valid for 30 days on the stack's clock. The stack
    /// accepts it when started with [`jwt::entra_issuer`]`(tid)` among its issuers and `aud` among
    /// its audiences.
    pub fn entra_token(&self, tid: &str, oid: &str, aud: &str, roles: &[Role]) -> String {
        self.issuer
            .entra_token(tid, oid, aud, roles, self.now().unix_seconds(), 30 * 86_400)
    }

    /// One run of the gate function, as the schedule triggers it.
    ///
    /// While the background schedule's run holds the lease, this one waits for it to finish
    /// (as the next scheduled run would), then runs.
    pub async fn run_gates(&self) -> Result<RunReport> {
        let started = Instant::now();
        loop {
            let now = self.now();
            let report = gate_evaluation::handler::scheduled_run(
                &self.svc,
                &schedule_event(&self.resources.names.params["Stage"], now),
                now,
                RunLimits::default(),
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
            if report.overlapped.is_none() {
                return Ok(report);
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("another gate run kept the lease for a minute");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Builds the submission's packages and puts them in the artifact bucket (see
    /// [`crate::packages`]).
    pub async fn stage_packages(&self, submission: &mut serde_json::Value) -> Result<()> {
        crate::packages::stage(&platforms::s3(&self.sdk), &self.bucket, submission).await
    }

    async fn depth(&self, queue: &str) -> Result<(u64, u64)> {
        let url = &self
            .resources
            .queues
            .get(queue)
            .ok_or_else(|| anyhow!("no queue {queue}"))?
            .url;
        let out = aws_sdk_sqs::Client::new(&self.sdk)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .with_context(|| format!("reading {queue}'s depth"))?;
        let get = |k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        // A delayed message (sent with DelaySeconds) is still work to come.
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }

    /// Messages in a queue (visible and in flight), by logical id (`IntuneDLQ`, …).
    pub async fn queue_depth(&self, queue: &str) -> Result<u64> {
        let (visible, in_flight) = self.depth(queue).await?;
        Ok(visible + in_flight)
    }

    /// Waits until every polled queue is empty, with nothing in flight (twice in a row).
    pub async fn settle(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        while quiet < 2 {
            let mut busy = 0;
            for q in &self.polled_queues {
                busy += self.queue_depth(q).await?;
            }
            quiet = if busy == 0 { quiet + 1 } else { 0 };
            if Instant::now() > deadline {
                bail!("the queues did not settle within {timeout:?} ({busy} messages left)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Stops the pollers, the schedule and the API, then the simulators and moto.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        drop(self.moto);
    }
}

/// What a trigger's poller is built from.
struct Parts<'a> {
    sdk: &'a aws_config::SdkConfig,
    resources: &'a Stack,
    clock: &'a Arc<Clock>,
    stopped: &'a watch::Receiver<bool>,
}

impl Parts<'_> {
    /// One SQS trigger of the template: its queue polled for its function's handler.
    fn trigger(
        &self,
        trigger: &super::template::Trigger,
        intune: &Arc<platforms::IntuneConnector>,
        jamf: &Arc<platforms::JamfConnector>,
    ) -> Result<JoinHandle<()>> {
        let (sdk, resources) = (self.sdk, self.resources);
        let queue = resources
            .queues
            .get(&trigger.queue)
            .ok_or_else(|| anyhow!("{} is not a queue of the template", trigger.queue))?;
        let dlq_url = queue
            .redrive
            .as_ref()
            .and_then(|(_, dlq)| resources.queues.get(dlq))
            .map(|q| q.url.clone())
            .unwrap_or_default();
        let esm = EventSourceMapping {
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: queue.url.clone(),
            queue_arn: queue.arn.clone(),
            batch_size: trigger.batch_size,
        };
        let control = ClockedControl {
            inner: SqsControl {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: queue.url.clone(),
                dlq_url,
            },
            clock: Arc::clone(self.clock),
        };
        let clock = Arc::clone(self.clock);
        let stopped = self.stopped.clone();
        Ok(match trigger.function.as_str() {
            "RiskScoringFunction" => {
                let svc = Arc::new(services(sdk, resources));
                tokio::spawn(poll(esm, stopped, move |event| {
                    let (svc, clock) = (Arc::clone(&svc), Arc::clone(&clock));
                    async move { risk_scoring::handle_batch(&*svc, event, clock.now()).await }
                }))
            }
            "ConnectorIntuneFunction" => {
                spawn_connector(esm, stopped, Arc::clone(intune), control, clock)
            }
            "ConnectorJamfFunction" => {
                spawn_connector(esm, stopped, Arc::clone(jamf), control, clock)
            }
            other => bail!("the local stack has no handler for {other}"),
        })
    }
}

/// A connector function's poller: its queue's batches through the connector's handler.
fn spawn_connector<P>(
    esm: EventSourceMapping,
    stopped: watch::Receiver<bool>,
    connector: Arc<eucora_connector::execute::Connector<DynamoStore, DynamoStore, DynamoStore, P>>,
    control: ClockedControl,
    clock: Arc<Clock>,
) -> JoinHandle<()>
where
    P: eucora_connector::Platform + Send + Sync + 'static,
{
    tokio::spawn(poll(esm, stopped, move |event| {
        let (connector, control, clock) =
            (Arc::clone(&connector), control.clone(), Arc::clone(&clock));
        async move {
            eucora_aws::connector_lambda::handle_batch(&*connector, &control, event, clock.now())
                .await
        }
    }))
}

/// The gate schedule: the gate function's scheduled run every `rate` on the stack's clock.
fn spawn_schedule(
    svc: Services<DynamoStore, SqsQueue>,
    clock: Arc<Clock>,
    rate: Duration,
    stage: String,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let rate = time::Duration::try_from(rate).unwrap_or(time::Duration::MINUTE);
    tokio::spawn(async move {
        let mut due = clock.now().plus(rate);
        loop {
            let now = clock.now();
            if now >= due {
                let event = schedule_event(&stage, now);
                match gate_evaluation::handler::scheduled_run(
                    &svc,
                    &event,
                    now,
                    RunLimits::default(),
                )
                .await
                {
                    Ok(report) => {
                        tracing::info!(evaluated = report.evaluated.len(), "scheduled gate run");
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled gate run failed"),
                }
                due = now.plus(rate);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stopped.changed() => break,
            }
        }
    })
}

/// An event-source mapping's loop: poll, hand the batch to `handle`, until stopped.
async fn poll<F, Fut>(esm: EventSourceMapping, stopped: watch::Receiver<bool>, handle: F)
where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
{
    while !*stopped.borrow() {
        if let Err(e) = esm.poll_once(Duration::from_secs(1), &handle).await {
            tracing::warn!(queue = %esm.queue_url, error = %format!("{e:#}"), "event-source mapping");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
