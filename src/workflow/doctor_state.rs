//! `doctor`'s checks of remote state (`state_dir = "s3://…"`): the bucket answers, its
//! public access block is on, and a conditional write is honoured (a second create-only
//! write is refused), which the leases need. The probe object is `leases/doctor-<random>`,
//! deleted again at once.
//!
//! Owns: these checks and their fixes. Does not own: the S3 requests (`store::s3`), the
//! other checks (`workflow::doctor`).

use crate::config::Settings;
use crate::store::backend::{Condition, Put, Sensitivity, StateBackend};
use crate::store::s3::S3Backend;
use crate::workflow::doctor_report::{Check, Status};

fn line(name: &str, status: Status, evidence: String, fix: Option<String>) -> Check {
    Check {
        section: "state",
        name: name.into(),
        status,
        evidence,
        fix,
    }
}

/// The checks, none for local state. Blocking (S3 requests): call from a blocking context.
pub fn state_checks(settings: &Settings) -> Vec<Check> {
    let Some(remote) = &settings.state_remote else {
        return Vec::new();
    };
    let url = remote.location.url();
    let backend = match S3Backend::connect(remote.location.clone()) {
        Ok(b) => b,
        Err(e) => return vec![line("bucket", Status::Fail, e.to_string(), None)],
    };
    let mut out = Vec::new();
    match backend.list("") {
        Ok(keys) => out.push(line(
            "bucket",
            Status::Pass,
            format!("{url} answers ({} objects)", keys.len()),
            None,
        )),
        Err(e) => {
            out.push(line("bucket", Status::Fail, e.to_string(), None));
            return out;
        }
    }
    out.push(match backend.check_bucket() {
        Ok(None) => line(
            "public access block",
            Status::Pass,
            "all four settings on".into(),
            None,
        ),
        Ok(Some(note)) => line("public access block", Status::Warn, note, None),
        Err(e) => line("public access block", Status::Fail, e.to_string(), None),
    });
    out.push(conditional_write(&backend, &url));
    out
}

fn conditional_write(backend: &S3Backend, url: &str) -> Check {
    let key = format!("leases/doctor-{:08x}", rand::random::<u32>());
    let first = backend.put(&key, b"doctor", Condition::Absent, Sensitivity::Public);
    let second = backend.put(&key, b"doctor", Condition::Absent, Sensitivity::Public);
    if let Ok(Put::Written(etag)) = &first {
        let _ = backend.delete(&key, Some(etag));
    }
    match (first, second) {
        (Ok(Put::Written(_)), Ok(Put::ConditionFailed)) => line(
            "conditional write",
            Status::Pass,
            "a second create-only write (If-None-Match: *) was refused, as leases need".into(),
            None,
        ),
        (Ok(_), Ok(Put::Written(_))) => line(
            "conditional write",
            Status::Fail,
            format!("{url} accepted a second create-only write (If-None-Match: *): two runners could both hold a lease"),
            Some("Use Amazon S3 (conditional writes since 2024) or an emulator that implements them, e.g. moto 5.2.6 or newer".into()),
        ),
        (Err(e), _) | (_, Err(e)) => line("conditional write", Status::Fail, e.to_string(), None),
        (Ok(Put::ConditionFailed), _) => line(
            "conditional write",
            Status::Fail,
            format!("the probe `{key}` already existed in {url}"),
            Some("Run doctor again".into()),
        ),
    }
}
