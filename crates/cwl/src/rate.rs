//! Rate control for PutLogEvents. The implementation lives in
//! [`trailhose_pipeline::rate`] so the other batched sinks share it; this path stays for
//! existing users.

pub use trailhose_pipeline::rate::{backoff, Aimd, RateControl};
