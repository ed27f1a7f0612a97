//! An `object_store::ObjectStore` over the AWS SDK's S3 client, so `query`/`lookup` read
//! `s3://` archives with the same client (credential chain, region, endpoint override,
//! roles) as the rest of trailhose, instead of object_store's own AWS stack. Read-only:
//! GetObject (ranged, as Parquet readers ask for footers and column chunks), HeadObject and
//! ListObjectsV2; writes answer `NotSupported`.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use chrono::{DateTime, Utc};
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    self, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use futures::stream::{self, BoxStream, StreamExt};
use std::fmt;

const STORE: &str = "trailhose-s3";

#[derive(Debug)]
pub struct SdkObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl SdkObjectStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        SdkObjectStore { client, bucket }
    }
}

impl fmt::Display for SdkObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3(s3://{})", self.bucket)
    }
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: e.into(),
    }
}

fn read_only(op: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{op}: the archive is read-only to queries").into(),
    }
}

fn sdk_error<E>(e: aws_sdk_s3::error::SdkError<E>, path: &Path) -> object_store::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    let msg = DisplayErrorContext(&e).to_string();
    if matches!(code, "NoSuchKey" | "NotFound")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
    {
        object_store::Error::NotFound {
            path: path.to_string(),
            source: msg.into(),
        }
    } else {
        generic(msg)
    }
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

fn range_header(r: &GetRange) -> String {
    match r {
        GetRange::Bounded(r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
        GetRange::Offset(o) => format!("bytes={o}-"),
        GetRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// `bytes 0-99/1234` → (0..100, 1234).
fn parse_content_range(s: &str) -> Option<(std::ops::Range<u64>, u64)> {
    let rest = s.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total) = (
        a.parse::<u64>().ok()?,
        b.parse::<u64>().ok()?,
        total.parse().ok()?,
    );
    Some((a..b + 1, total))
}

#[async_trait]
impl ObjectStore for SdkObjectStore {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("put_multipart"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let key = location.as_ref();
        if options.head {
            let h = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| sdk_error(e, location))?;
            let size = h.content_length().unwrap_or(0).max(0) as u64;
            let meta = ObjectMeta {
                location: location.clone(),
                last_modified: to_chrono(h.last_modified()),
                size,
                e_tag: h.e_tag().map(str::to_owned),
                version: None,
            };
            options.check_preconditions(&meta)?;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                meta,
                range: 0..size,
                attributes: Default::default(),
            });
        }
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(r) = &options.range {
            req = req.range(range_header(r));
        }
        let out = req.send().await.map_err(|e| sdk_error(e, location))?;
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        let (range, size) = match out.content_range().and_then(parse_content_range) {
            Some((r, total)) => (r, total),
            None => (0..len, len),
        };
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: to_chrono(out.last_modified()),
            size,
            e_tag: out.e_tag().map(str::to_owned),
            version: None,
        };
        options.check_preconditions(&meta)?;
        let body = out.body;
        let chunks = stream::unfold(Some(body), |state| async move {
            let mut body = state?;
            match body.try_next().await {
                Ok(Some(b)) => Some((Ok(b), Some(body))),
                Ok(None) => None,
                // Stop after the first error: the reader sees it once.
                Err(e) => Some((Err(generic(e.to_string())), None)),
            }
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(chunks.boxed()),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = prefix.map(|p| format!("{p}/")).filter(|p| p != "/");
        let pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(prefix)
            .into_paginator()
            .send();
        stream::unfold(Some(pages), |state| async move {
            let mut pages = state?;
            match pages.next().await {
                None => None,
                Some(Ok(page)) => {
                    let metas: Vec<object_store::Result<ObjectMeta>> = page
                        .contents()
                        .iter()
                        .filter_map(object_meta)
                        .map(Ok)
                        .collect();
                    Some((stream::iter(metas), Some(pages)))
                }
                Some(Err(e)) => Some((
                    stream::iter(vec![Err(generic(DisplayErrorContext(&e).to_string()))]),
                    None,
                )),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = prefix.map(|p| format!("{p}/")).filter(|p| p != "/");
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| generic(DisplayErrorContext(&e).to_string()))?;
            for p in page.common_prefixes() {
                if let Some(p) = p.prefix() {
                    result
                        .common_prefixes
                        .push(Path::from(p.trim_end_matches('/')));
                }
            }
            result
                .objects
                .extend(page.contents().iter().filter_map(object_meta));
        }
        Ok(result)
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}

fn object_meta(o: &aws_sdk_s3::types::Object) -> Option<ObjectMeta> {
    let key = o.key()?;
    Some(ObjectMeta {
        location: Path::from(key),
        last_modified: to_chrono(o.last_modified()),
        size: o.size().unwrap_or(0).max(0) as u64,
        e_tag: o.e_tag().map(str::to_owned),
        version: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_header(&GetRange::Bounded(10..20)), "bytes=10-19");
        assert_eq!(range_header(&GetRange::Offset(5)), "bytes=5-");
        assert_eq!(range_header(&GetRange::Suffix(8)), "bytes=-8");
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10..20, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
