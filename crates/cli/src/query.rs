//! `trailhose query` and `trailhose lookup`: SQL and lookup-events over an archive.

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use trailhose_query::lookup;
use trailhose_query::output::Format;

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The archive an `archive` sink wrote: a directory or s3://bucket/prefix.
    #[arg(long, default_value = "out/archive")]
    pub archive: String,
    /// S3 archives: region and endpoint override (emulators, S3-compatible stores).
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL statement over the table `cloudtrail_logs` (Athena's CloudTrail columns;
    /// partition columns account, region, dt).
    pub sql: String,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// table (aligned, for terminals), json (an array of objects) or csv.
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// AttributeKey=KEY,AttributeValue=VALUE (or the CLI's JSON form); KEY is one of EventId,
    /// EventName, ReadOnly, Username, ResourceType, ResourceName, EventSource, AccessKeyId.
    /// Repeatable: all must match.
    #[arg(long = "lookup-attributes")]
    pub lookup_attributes: Vec<String>,
    /// Events at or after this time (RFC 3339 or YYYY-MM-DD). No 90-day limit.
    #[arg(long)]
    pub start_time: Option<String>,
    /// Events at or before this time.
    #[arg(long)]
    pub end_time: Option<String>,
    /// At most this many events (newest first); all when absent.
    #[arg(long, alias = "max-items")]
    pub max_results: Option<usize>,
    #[command(flatten)]
    pub archive: ArchiveArgs,
}

async fn open(a: &ArchiveArgs) -> Result<trailhose_query::Session> {
    let client = if a.archive.starts_with("s3://") {
        Some(
            trailhose_aws::s3_client(&trailhose_aws::AwsSettings {
                region: a.region.clone(),
                endpoint_url: a.endpoint_url.clone(),
            })
            .await,
        )
    } else {
        None
    };
    Ok(trailhose_query::open(&a.archive, client).await?)
}

pub fn query(args: &QueryArgs) -> Result<ExitCode> {
    let rt = crate::runtime()?;
    let batches = rt.block_on(async {
        let ctx = open(&args.archive).await?;
        trailhose_query::sql(&ctx, &args.sql)
            .await
            .context("query failed")
    })?;
    let text =
        trailhose_query::output::render(&batches, args.format).map_err(anyhow::Error::msg)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub fn lookup(args: &LookupArgs) -> Result<ExitCode> {
    let mut req = lookup::Request {
        max_results: args.max_results,
        ..Default::default()
    };
    for a in &args.lookup_attributes {
        req.attributes
            .extend(lookup::parse_attributes(a).map_err(anyhow::Error::msg)?);
    }
    req.start_ms = args
        .start_time
        .as_deref()
        .map(crate::validate::parse_time)
        .transpose()?;
    req.end_ms = args
        .end_time
        .as_deref()
        .map(crate::validate::parse_time)
        .transpose()?;
    let rt = crate::runtime()?;
    let answer = rt.block_on(lookup_events(&args.archive, &req))?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &answer)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn lookup_events(a: &ArchiveArgs, req: &lookup::Request) -> Result<serde_json::Value> {
    let ctx = open(a).await?;
    let batches = trailhose_query::sql(&ctx, &lookup::to_sql(req))
        .await
        .context("lookup failed")?;
    lookup::events(&batches).map_err(anyhow::Error::msg)
}

/// The brief's query, verbatim.
pub const BRIEF_QUERY: &str = "SELECT eventTime, eventName, userIdentity.username FROM cloudtrail_logs WHERE userIdentity.username = 'admin_user' ORDER BY eventTime DESC LIMIT 10;";

/// `demo`'s last step: the brief's SQL and a lookup over what the demo archived, each checked
/// against the same question asked of the NDJSON output.
pub fn demo_steps(archive: &std::path::Path, ndjson_dir: &std::path::Path) -> Result<()> {
    let a = ArchiveArgs {
        archive: archive.display().to_string(),
        region: None,
        endpoint_url: None,
    };
    let mut admin_times = Vec::new();
    let mut logins = 0usize;
    for f in trailhose_pipeline::dir_source::list_files(ndjson_dir)? {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: not JSON", f.display()))?;
            if v["userIdentity"]["userName"] == "admin_user" {
                admin_times.push(v["eventTime"].as_str().unwrap_or_default().to_owned());
            }
            if v["eventName"] == "ConsoleLogin" {
                logins += 1;
            }
        }
    }
    admin_times.sort_unstable_by(|a, b| b.cmp(a));
    admin_times.truncate(10);

    println!(
        "7. SQL over the archive ({}), as with Athena:",
        archive.display()
    );
    println!("   {BRIEF_QUERY}");
    let rt = crate::runtime()?;
    let batches = rt.block_on(async {
        let ctx = open(&a).await?;
        trailhose_query::sql(&ctx, BRIEF_QUERY)
            .await
            .context("query failed")
    })?;
    let table =
        trailhose_query::output::render(&batches, Format::Table).map_err(anyhow::Error::msg)?;
    for line in table.lines() {
        println!("   {line}");
    }
    let json =
        trailhose_query::output::render(&batches, Format::Json).map_err(anyhow::Error::msg)?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json)?;
    let got: Vec<String> = rows
        .iter()
        .map(|r| r["eventtime"].as_str().unwrap_or_default().to_owned())
        .collect();
    if got != admin_times {
        anyhow::bail!("the archive answered {got:?}, the NDJSON output says {admin_times:?}");
    }
    println!(
        "   ok: the same {} rows as filtering the NDJSON output by hand",
        got.len()
    );

    let req = lookup::Request {
        attributes: lookup::parse_attributes("AttributeKey=EventName,AttributeValue=ConsoleLogin")
            .map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    println!("8. lookup --lookup-attributes AttributeKey=EventName,AttributeValue=ConsoleLogin");
    let answer = rt.block_on(lookup_events(&a, &req))?;
    let events = answer["Events"].as_array().map_or(0, Vec::len);
    if let Some(first) = answer["Events"].get(0) {
        println!(
            "   newest: {} {} by {} ({} events in all)",
            first["EventTime"].as_str().unwrap_or("?"),
            first["EventName"].as_str().unwrap_or("?"),
            first["Username"].as_str().unwrap_or("?"),
            events
        );
    }
    if events != logins {
        anyhow::bail!("lookup found {events} ConsoleLogin events, the NDJSON output has {logins}");
    }
    println!("   ok: {events} events = the ConsoleLogin records in the NDJSON output");
    Ok(())
}
