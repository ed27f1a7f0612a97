//! The bucket/prefix allow-list: a queue must not be able to make the worker read arbitrary
//! buckets. A message naming a bucket outside the list is refused as a whole (dead-lettered,
//! nothing read); a key outside an allowed bucket's prefixes is skipped and counted.

use std::collections::HashMap;
use trailhose_config::BucketConfig;
use trailhose_core::notify::ObjectRef;

/// How to read one allowed bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketRule {
    /// Empty = every key.
    pub prefixes: Vec<String>,
    pub role_arn: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    BucketNotAllowed,
    PrefixNotAllowed,
}

#[derive(Debug, Clone, Default)]
pub struct AllowList {
    buckets: HashMap<String, BucketRule>,
}

impl AllowList {
    pub fn new(buckets: &[BucketConfig]) -> Self {
        AllowList {
            buckets: buckets
                .iter()
                .map(|b| {
                    (
                        b.name.clone(),
                        BucketRule {
                            prefixes: b.prefixes.clone(),
                            role_arn: b.role_arn.clone(),
                            region: b.region.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn rule(&self, bucket: &str) -> Option<&BucketRule> {
        self.buckets.get(bucket)
    }

    pub fn admit(&self, bucket: &str, key: &str) -> Admission {
        match self.buckets.get(bucket) {
            None => Admission::BucketNotAllowed,
            Some(r) if r.prefixes.is_empty() || r.prefixes.iter().any(|p| key.starts_with(p)) => {
                Admission::Allowed
            }
            Some(_) => Admission::PrefixNotAllowed,
        }
    }

    /// The distinct buckets of `objects` that are not allowed, in order of appearance.
    pub fn refused_buckets(&self, objects: &[ObjectRef]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for o in objects {
            if !self.buckets.contains_key(&o.bucket) && !out.contains(&o.bucket) {
                out.push(o.bucket.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> AllowList {
        AllowList::new(&[
            BucketConfig {
                name: "trail".into(),
                prefixes: vec![],
                role_arn: None,
                region: None,
            },
            BucketConfig {
                name: "shared".into(),
                prefixes: vec!["AWSLogs/o-1/".into(), "cloudtrail/".into()],
                role_arn: Some("arn:aws:iam::1:role/r".into()),
                region: Some("eu-west-1".into()),
            },
        ])
    }

    fn obj(bucket: &str) -> ObjectRef {
        ObjectRef {
            bucket: bucket.into(),
            key: "k".into(),
            region: None,
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
        }
    }

    #[test]
    fn buckets_and_prefixes() {
        let l = list();
        assert_eq!(l.admit("trail", "anything"), Admission::Allowed);
        assert_eq!(l.admit("shared", "AWSLogs/o-1/x"), Admission::Allowed);
        assert_eq!(l.admit("shared", "cloudtrail/x"), Admission::Allowed);
        assert_eq!(
            l.admit("shared", "AWSLogs/o-2/x"),
            Admission::PrefixNotAllowed
        );
        assert_eq!(
            l.admit("other", "AWSLogs/o-1/x"),
            Admission::BucketNotAllowed
        );
        // Names are exact: no prefix or case games.
        assert_eq!(l.admit("trail2", "x"), Admission::BucketNotAllowed);
        assert_eq!(l.admit("Trail", "x"), Admission::BucketNotAllowed);
        assert_eq!(
            l.rule("shared").and_then(|r| r.region.as_deref()),
            Some("eu-west-1")
        );
    }

    #[test]
    fn refused_buckets_are_listed_once() {
        let l = list();
        let objs = [obj("trail"), obj("evil"), obj("evil"), obj("other")];
        assert_eq!(l.refused_buckets(&objs), vec!["evil", "other"]);
        assert!(l.refused_buckets(&[obj("trail")]).is_empty());
        assert_eq!(
            AllowList::default().refused_buckets(&[obj("trail")]),
            vec!["trail"]
        );
    }
}
