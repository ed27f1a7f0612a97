//! CloudTrail Insights events, in the format CloudTrail writes them (see the CloudTrail user
//! guide, "insightDetails element"): top-level `eventVersion`, `eventTime`, `awsRegion`,
//! `eventID`, `eventType: AwsCloudTrailInsight`, `recipientAccountId`, `sharedEventID` (equal
//! on the Start and End records), `insightDetails`, `eventCategory: Insight`; no `eventName`,
//! `eventSource` or `userIdentity` at top level.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InsightType {
    ApiCallRateInsight,
    ApiErrorRateInsight,
}

impl InsightType {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightType::ApiCallRateInsight => "ApiCallRateInsight",
            InsightType::ApiErrorRateInsight => "ApiErrorRateInsight",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InsightState {
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightEvent {
    pub event_version: String,
    pub event_time: String,
    pub aws_region: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_type: String,
    pub recipient_account_id: String,
    #[serde(rename = "sharedEventID")]
    pub shared_event_id: String,
    pub insight_details: InsightDetails,
    pub event_category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightDetails {
    pub state: InsightState,
    pub event_source: String,
    pub event_name: String,
    pub insight_type: InsightType,
    pub insight_context: InsightContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightContext {
    pub statistics: Statistics,
    pub attributions: Vec<Attribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Calls (or errors) per minute over the baseline.
    pub baseline: Average,
    /// Start: the rate at the start of the unusual activity; End: over its whole duration.
    pub insight: Average,
    /// Minutes: on Start, from the start of the activity to its detection; on End, the whole.
    pub insight_duration: u64,
    /// Minutes of baseline, ending at the start of the insight.
    pub baseline_duration: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Average {
    pub average: f64,
}

/// `attribute` is `userIdentityArn`, `userAgent` or `errorCode`; at most five values per list,
/// by descending average. An `errorCode` of `"null"` stands for calls without an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub attribute: String,
    pub insight: Vec<ValueAverage>,
    pub baseline: Vec<ValueAverage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueAverage {
    pub value: String,
    pub average: f64,
}

impl InsightEvent {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and finite numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn state(&self) -> InsightState {
        self.insight_details.state
    }

    pub fn insight_type(&self) -> InsightType {
        self.insight_details.insight_type
    }
}

/// FNV-1a over the parts, twice with different offsets: a deterministic 128-bit id, formatted
/// as a version-4 UUID (event time, not the wall clock, drives everything here).
pub(crate) fn stable_uuid(parts: &[&str]) -> String {
    let h = |seed: u64| {
        let mut h = seed;
        for p in parts {
            for &b in p.as_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let a = h(0xcbf2_9ce4_8422_2325);
    let b = h(0x8422_2325_cbf2_9ce4 ^ a.rotate_left(17));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = stable_uuid(&["x", "y"]);
        assert_eq!(a, stable_uuid(&["x", "y"]));
        assert_ne!(a, stable_uuid(&["xy"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
