//! The S3 implementation of [`StateBackend`]: `state_dir = "s3://BUCKET/PREFIX"`.
//!
//! Conditional writes are S3's own (`If-None-Match: *` to create, `If-Match: <etag>` to
//! replace or delete one version; a 412 is [`Put::ConditionFailed`]; documented in
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html> and
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html>). Secret objects are
//! written only with server-side encryption: SSE-S3 (`AES256`) unless `state.kms_key_id`
//! names a KMS key. Requests go through the SDK's standard retry mode (5xx, throttling,
//! timeouts, dropped connections), on a runtime of the backend's own so that the callers,
//! synchronous file-like code, may block on them from anywhere.
//!
//! Owns: the S3 requests, the bucket checks (public access block) and their messages.
//! Does not own: what is stored where (the mirror, the journal, the leases).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::StoreError;
use super::backend::{Condition, Counters, Object, Put, Sensitivity, StateBackend};

/// Attempts per S3 request (the SDK's standard mode: exponential backoff with jitter).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// `s3://BUCKET/PREFIX` and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// `state.kms_key_id`: SSE-KMS with this key instead of SSE-S3.
    pub kms_key_id: Option<String>,
    /// `state.endpoint_url` (an emulator), else AWS.
    pub endpoint_url: Option<String>,
    /// `state.region` (default us-east-1).
    pub region: Option<String>,
    /// Attempts per request.
    pub max_attempts: u32,
}

impl S3Location {
    /// Parses `s3://bucket/prefix`; `None` when `text` is not an S3 URL at all, `Err` with
    /// what is wrong when it is one but malformed.
    pub fn parse(text: &str) -> Option<Result<S3Location, String>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Some(Err(format!(
                "`{text}` names the bucket `{bucket}`; expected an S3 bucket name (3 to 63 lower-case letters, digits, `-` and `.`) as in `s3://my-bucket/brokercert`"
            )));
        }
        let prefix = prefix.trim_matches('/');
        let prefix_ok = prefix.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }) || prefix.is_empty();
        if !prefix_ok {
            return Some(Err(format!(
                "`{text}` has the prefix `{prefix}`; expected path segments of letters, digits, `-`, `_` and `.` (no `..`), as in `s3://my-bucket/brokercert/prod`"
            )));
        }
        Some(Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            kms_key_id: None,
            endpoint_url: None,
            region: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }))
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The object key of a state path such as `renewal/mqtt.json`.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

/// State in an S3 bucket.
#[derive(Debug)]
pub struct S3Backend {
    location: S3Location,
    client: Client,
    /// Always `Some` until dropped (then shut down without waiting: dropping a runtime
    /// inside another one's task would panic).
    rt: Option<tokio::runtime::Runtime>,
    counters: Counters,
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn remote(action: &'static str, url: String, message: String) -> StoreError {
    StoreError::Remote {
        action,
        url,
        message,
    }
}

type SdkError<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

/// The SDK error's own words, with its HTTP status when there is one.
fn describe<E: std::error::Error + 'static>(e: &SdkError<E>) -> String {
    let s = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
    match status(e) {
        Some(code) => format!("{s} (HTTP {code})"),
        None => s,
    }
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl S3Backend {
    /// Connects (credentials from the standard AWS chain); sends nothing yet.
    pub fn connect(location: S3Location) -> Result<S3Backend, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("brokercert-s3")
            .enable_all()
            .build()
            .map_err(|e| remote("start the S3 client for", location.url(), e.to_string()))?;
        let loc = location.clone();
        let client = {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            rt.spawn(async move {
                let region = loc.region.clone().unwrap_or_else(|| "us-east-1".into());
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(aws_config::Region::new(region))
                    .retry_config(
                        RetryConfig::standard().with_max_attempts(loc.max_attempts.max(1)),
                    )
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(10))
                            .operation_attempt_timeout(Duration::from_secs(30))
                            .build(),
                    )
                    .load()
                    .await;
                let mut conf = aws_sdk_s3::config::Builder::from(&shared);
                if let Some(url) = &loc.endpoint_url {
                    conf = conf.endpoint_url(url).force_path_style(true);
                }
                let _ = tx.send(Client::from_conf(conf.build()));
            });
            rx.recv()
        }
        .map_err(|e| remote("start the S3 client for", location.url(), e.to_string()))?;
        Ok(S3Backend {
            location,
            client,
            rt: Some(rt),
            counters: Counters::default(),
        })
    }

    /// Where.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Runs `f` on the backend's runtime and waits for it, from any thread. The answer comes
    /// back over a plain channel: polling a tokio `JoinHandle` from inside another runtime's
    /// task would spend that task's cooperative budget and then spin forever.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if let Some(rt) = &self.rt {
            rt.spawn(async move {
                let _ = tx.send(f.await);
            });
        }
        rx.recv().map_err(|_| {
            remote(
                "reach",
                self.location.url(),
                "the S3 request task ended without an answer".into(),
            )
        })
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.location.bucket)
    }

    /// Refuses a bucket that may be public: its public access block must be on (all four
    /// settings). `Ok(Some(note))` when it cannot be checked (no permission), said once.
    pub fn check_bucket(&self) -> Result<Option<String>, StoreError> {
        Counters::count(&self.counters.other);
        let (client, bucket) = (self.client.clone(), self.location.bucket.clone());
        let got =
            self.run(async move { client.get_public_access_block().bucket(bucket).send().await })?;
        let url = self.location.url();
        let fix = format!(
            "Turn on all four public access block settings: `aws s3api put-public-access-block --bucket {} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true`",
            self.location.bucket
        );
        match got {
            Ok(out) => {
                let c = out.public_access_block_configuration();
                let on = c.is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                });
                if on {
                    Ok(None)
                } else {
                    Err(StoreError::Unsafe {
                        path: url.into(),
                        found: "the bucket's public access block is partly off".into(),
                        expected:
                            "a bucket that can never be made public, since it holds private keys"
                                .into(),
                        fix: format!("{fix}. Nothing was written."),
                    })
                }
            }
            Err(e) => {
                let text = describe(&e);
                if text.contains("NoSuchPublicAccessBlockConfiguration") {
                    Err(StoreError::Unsafe {
                        path: url.into(),
                        found: "the bucket has no public access block".into(),
                        expected:
                            "a bucket that can never be made public, since it holds private keys"
                                .into(),
                        fix: format!("{fix}. Nothing was written."),
                    })
                } else if text.contains("AccessDenied") || status(&e) == Some(403) {
                    Ok(Some(format!(
                        "cannot check the public access block of `{url}` (no s3:GetBucketPublicAccessBlock permission); make sure it is on: the bucket holds private keys"
                    )))
                } else {
                    Err(remote("check the public access block of", url, text))
                }
            }
        }
    }
}

impl StateBackend for S3Backend {
    fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        Counters::count(&self.counters.get);
        let (client, bucket, k) = (
            self.client.clone(),
            self.location.bucket.clone(),
            self.location.key(key),
        );
        let url = self.url(&k);
        self.run(async move {
            match client.get_object().bucket(bucket).key(&k).send().await {
                Ok(out) => {
                    let etag = out.e_tag().unwrap_or_default().to_string();
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| remote("read", url.clone(), e.to_string()))?
                        .into_bytes()
                        .to_vec();
                    Ok(Some(Object { bytes, etag }))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(remote("read", url, describe(&e))),
            }
        })?
    }

    fn put(
        &self,
        key: &str,
        bytes: &[u8],
        condition: Condition,
        sensitivity: Sensitivity,
    ) -> Result<Put, StoreError> {
        Counters::count(&self.counters.put);
        let (client, bucket, k) = (
            self.client.clone(),
            self.location.bucket.clone(),
            self.location.key(key),
        );
        let url = self.url(&k);
        let kms = self.location.kms_key_id.clone();
        let body = bytes.to_vec();
        self.run(async move {
            let mut req = client
                .put_object()
                .bucket(bucket)
                .key(&k)
                .body(ByteStream::from(body));
            req = match condition {
                Condition::None => req,
                Condition::Absent => req.if_none_match("*"),
                Condition::Unchanged(etag) => req.if_match(etag),
            };
            // Every object is encrypted at rest; a secret never without it, and with the
            // configured KMS key when there is one.
            req = match (&kms, sensitivity) {
                (Some(id), _) => req
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(id),
                (None, _) => req.server_side_encryption(ServerSideEncryption::Aes256),
            };
            match req.send().await {
                Ok(out) => Ok(Put::Written(out.e_tag().unwrap_or_default().to_string())),
                // 412: the condition did not hold; 409: a concurrent conditional write won.
                Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(Put::ConditionFailed),
                // If-Match on an object that is gone.
                Err(e) if status(&e) == Some(404) => Ok(Put::ConditionFailed),
                Err(e) => Err(remote("write", url, describe(&e))),
            }
        })?
    }

    fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StoreError> {
        Counters::count(&self.counters.delete);
        let (client, bucket, k) = (
            self.client.clone(),
            self.location.bucket.clone(),
            self.location.key(key),
        );
        let url = self.url(&k);
        let if_match = if_match.map(str::to_string);
        self.run(async move {
            let mut req = client.delete_object().bucket(bucket).key(&k);
            if let Some(etag) = if_match {
                req = req.if_match(etag);
            }
            match req.send().await {
                Ok(_) => Ok(()),
                // Someone else's version now, or already gone: not ours to delete.
                Err(e) if matches!(status(&e), Some(412 | 404)) => Ok(()),
                Err(e) => Err(remote("delete", url, describe(&e))),
            }
        })?
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let full = self.location.key(prefix);
        let strip = if self.location.prefix.is_empty() {
            0
        } else {
            self.location.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            Counters::count(&self.counters.list);
            let (client, bucket, p, t) = (
                self.client.clone(),
                self.location.bucket.clone(),
                full.clone(),
                token.clone(),
            );
            let url = self.url(&full);
            let page = self.run(async move {
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(p)
                    .set_continuation_token(t)
                    .send()
                    .await
                    .map_err(|e| remote("list", url, describe(&e)))
            })??;
            for o in page.contents() {
                if let Some(k) = o.key().and_then(|k| k.get(strip..)) {
                    out.push((k.to_string(), o.e_tag().unwrap_or_default().to_string()));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.location.url()
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let l = S3Location::parse("s3://my-bucket/brokercert/prod/")
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("my-bucket", "brokercert/prod")
        );
        assert_eq!(l.key("renewal/a.json"), "brokercert/prod/renewal/a.json");
        assert_eq!(l.url(), "s3://my-bucket/brokercert/prod");
        assert!(S3Location::parse("/var/lib/brokercert").is_none());
        let e = S3Location::parse("s3://My_Bucket/x").unwrap().unwrap_err();
        assert!(e.contains("expected an S3 bucket name"), "{e}");
        let e = S3Location::parse("s3://bucket/a/../b")
            .unwrap()
            .unwrap_err();
        assert!(e.contains("no `..`"), "{e}");
        let l = S3Location::parse("s3://bucket").unwrap().unwrap();
        assert_eq!(l.key("live/x"), "live/x");
    }
}
