//! CloudTrail `ListPublicKeys`: the Region's public keys valid in a time range, straight into
//! a [`KeyRing`] (what aws-cli's validator does when talking to AWS). Keys are per Region, so
//! the caller asks every Region whose digests it validates.

use crate::pubkey::KeyRing;
use aws_sdk_cloudtrail::primitives::DateTime;

/// CloudTrail's launch: no key is older, so "all history" starts here.
pub const CLOUDTRAIL_EPOCH_MS: i64 = 1_383_264_000_000; // 2013-11-01T00:00:00Z

/// Adds every key `ListPublicKeys` returns for `[start_ms, end_ms]` (pages followed) to
/// `ring`; returns how many were added. Without a start time the API would return only the
/// current key, so the start defaults to CloudTrail's launch.
pub async fn add_listed_keys(
    client: &aws_sdk_cloudtrail::Client,
    region: &str,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    ring: &mut KeyRing,
) -> Result<usize, String> {
    let start = DateTime::from_millis(start_ms.unwrap_or(CLOUDTRAIL_EPOCH_MS));
    let end = end_ms.map(DateTime::from_millis);
    let mut token: Option<String> = None;
    let mut added = 0;
    loop {
        let page = client
            .list_public_keys()
            .start_time(start)
            .set_end_time(end)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ListPublicKeys in {region}: {}",
                    aws_sdk_cloudtrail::error::DisplayErrorContext(&e)
                )
            })?;
        for k in page.public_key_list() {
            let (Some(value), Some(fp)) = (k.value(), k.fingerprint()) else {
                continue;
            };
            ring.add_listed(
                fp.to_ascii_lowercase(),
                value.as_ref().to_vec(),
                format!("ListPublicKeys {region}"),
            );
            added += 1;
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(added);
        }
    }
}
