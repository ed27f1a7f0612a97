//! Detection on the stream.
//!
//! - [`pattern`]: CloudWatch Logs filter patterns (`{ $.eventName = ConsoleLogin }`): syntax
//!   tree and a parser with precise errors.
//! - [`engine`]: patterns compiled into one evaluator that reads only what it needs: an index
//!   on key fields, three-valued evaluation on the [`trailhose_core::KeyFields`] the pipeline
//!   already has, and one simd-json pass only when a rule needs a non-key field.
//! - [`rules`]: TOML rule files; the embedded CIS + essentials pack (`config/rules/`).
//! - [`alert`] and [`outputs`]: alerts as JSON, to NDJSON files, stdout, SNS, webhooks.
//! - [`anomaly`]: Insights-style call-rate and error-rate anomaly detection (pure, event-time
//!   driven, persistable).
//! - [`sink`]: the pipeline stage that ties them together.

pub mod alert;
pub mod anomaly;
pub mod engine;
pub mod outputs;
pub mod pattern;
pub mod rules;
pub mod sink;

pub use alert::{AlertKind, AlertMessage};
pub use anomaly::{AnomalyDetector, AnomalyOptions, InsightEvent, Observation};
pub use engine::{Engine, EvalStats, Scratch};
pub use pattern::{FilterPattern, PatternError};
pub use rules::{Rule, RuleSet, RuleSources, Severity};
pub use sink::{DetectSink, DetectStats};
