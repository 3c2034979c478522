//! Bulk Data Access 2.0 `$export`: an asynchronous kick-off (GET or POST, system or `Patient`
//! level) answered 202 with `Content-Location`; the status URL answers 202 with `X-Progress` and
//! `Retry-After` while the export runs, then the manifest; `DELETE` cancels. The export runs in
//! the background through `ketcare_app::fhir::export` as the user who asked, writing one NDJSON
//! file per type into a private folder (0700, files 0600), patient by patient, so memory does not
//! grow with the clinic. Files are served to that user only and removed an hour after the
//! export ends (or when it is cancelled). Each job is kept beside its files (`job.json`, 0600,
//! replaced atomically), so a finished export's manifest and files outlive a restart of the
//! server; an export the restart interrupted reports that it failed and asks to be started again.
//! A `Group` export exports the group's members only.

use super::{FhirError, base, pairs};
use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use ketcare_app::fhir::{ExportProgress, ExportRequest};
use ketcare_app::files::{private_dir, private_file};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How long an export's files are kept after it ends.
pub const KEEP_SECONDS: i64 = 3600;
/// Exports running at once (each reads the whole clinic); beyond, 429.
pub const MAX_RUNNING: usize = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum JobState {
    Running,
    Done { files: Vec<(String, usize)> },
    Failed { message: String },
}

struct Job {
    owner: i64,
    request: String,
    transaction_time: Timestamp,
    dir: PathBuf,
    state: Mutex<JobState>,
    ended_at: Mutex<Option<i64>>,
    cancelled: AtomicBool,
    progress: ExportProgress,
}

/// What `job.json` keeps of a job.
#[derive(Serialize, Deserialize)]
struct SavedJob {
    owner: i64,
    request: String,
    transaction_time: Timestamp,
    #[serde(flatten)]
    state: JobState,
    ended_at: Option<i64>,
}

const JOB_FILE: &str = "job.json";

impl Job {
    fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn ended_at(&self) -> Option<i64> {
        *self.ended_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the state (and when it ended) and keeps it on disk.
    fn finish(&self, state: JobState, at: Option<i64>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        *self.ended_at.lock().unwrap_or_else(|e| e.into_inner()) = at;
        if let Err(e) = self.save() {
            tracing::error!(error = %e, dir = %self.dir.display(), "keeping an export's state");
        }
    }

    /// Writes `job.json` beside the files: a new private file, then renamed over the old one.
    fn save(&self) -> std::io::Result<()> {
        let saved = SavedJob {
            owner: self.owner,
            request: self.request.clone(),
            transaction_time: self.transaction_time,
            state: self.state(),
            ended_at: self.ended_at(),
        };
        let tmp = self.dir.join(format!("{JOB_FILE}.new"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file(&tmp)?;
        serde_json::to_writer(&mut f, &saved)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(JOB_FILE))
    }

    /// The job kept in `dir`, if it holds one. One that was running when the server stopped is
    /// failed now (its files are incomplete), ending at `now`.
    fn load(dir: PathBuf, now: i64) -> Option<Self> {
        let text = std::fs::read(dir.join(JOB_FILE)).ok()?;
        let saved: SavedJob = serde_json::from_slice(&text).ok()?;
        let interrupted = matches!(saved.state, JobState::Running);
        let job = Job {
            owner: saved.owner,
            request: saved.request,
            transaction_time: saved.transaction_time,
            dir,
            state: Mutex::new(saved.state),
            ended_at: Mutex::new(saved.ended_at),
            cancelled: AtomicBool::new(false),
            progress: ExportProgress::default(),
        };
        if interrupted {
            job.finish(
                JobState::Failed {
                    message: "the server restarted during this export: start it again".into(),
                },
                Some(now),
            );
        }
        Some(job)
    }
}

/// The server's exports.
pub struct Exports {
    dir: PathBuf,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Exports {
    /// Exports written under `dir` (made 0700 when first used), with the jobs kept there by an
    /// earlier run of the server.
    pub fn new(dir: PathBuf) -> Self {
        let now = jiff::Timestamp::now().as_second();
        let jobs = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let id = e.file_name().to_str()?.to_owned();
                Job::load(e.path(), now).map(|j| (id, Arc::new(j)))
            })
            .collect();
        Self {
            dir,
            jobs: Mutex::new(jobs),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        match self.jobs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Removes jobs whose files have been kept long enough.
    fn sweep(&self, now: i64) {
        self.jobs().retain(|_, j| {
            let keep = j.ended_at().is_none_or(|e| now - e < KEEP_SECONDS);
            if !keep {
                let _ = std::fs::remove_dir_all(&j.dir);
            }
            keep
        });
    }

    /// The export `id` if `owner` asked for it: another user's is not found, as if it did
    /// not exist.
    fn job_of(&self, id: &str, owner: i64) -> Result<Arc<Job>, AppError> {
        self.jobs()
            .get(id)
            .filter(|j| j.owner == owner)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("export {id}")))
    }
}

impl Default for Exports {
    fn default() -> Self {
        Self::new(std::env::temp_dir().join(format!("ketcare-exports-{}", std::process::id())))
    }
}

/// `_type`, `_since` and `_outputFormat` from the query and, for a POST, from a `Parameters`
/// body (`valueString`, `valueInstant`).
fn request_params(query: &Option<String>, body: &Bytes) -> Result<Vec<(String, String)>, AppError> {
    let mut params = pairs(query)?;
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| AppError::invalid("body", "a FHIR Parameters resource in JSON"))?;
        if v["resourceType"] != "Parameters" {
            return Err(AppError::invalid("resourceType", "use Parameters"));
        }
        for p in v["parameter"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("").to_owned();
            let value = ["valueString", "valueInstant", "valueCode"]
                .iter()
                .find_map(|k| p[*k].as_str())
                .ok_or_else(|| AppError::invalid(&format!("parameter.{name}"), "a string value"))?;
            params.push((name, value.to_owned()));
        }
    }
    Ok(params)
}

async fn kick_off(
    s: AppState,
    p: Principal,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    level: &str,
    members: Option<Vec<ketcare_core::PatientId>>,
) -> Result<Response, FhirError> {
    let prefer = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !prefer.contains("respond-async") {
        return Err(AppError::invalid(
            "Prefer",
            "send Prefer: respond-async (exports run asynchronously)",
        )
        .into());
    }
    let params = request_params(&query, &body)?;
    let mut request = ExportRequest::parse(&params)?;
    request.patients = members;
    if let Some(scopes) = p.scopes() {
        // A SMART token exports only its scopes' types: a `_type` naming another is refused;
        // without `_type`, the export holds the scoped types only.
        if params.iter().any(|(k, _)| k == "_type") {
            if let Some(t) = request.types.iter().find(|t| !scopes.allows(t)) {
                return Err(AppError::Forbidden(format!(
                    "_type: the token's scopes do not include system/{t}.read"
                ))
                .into());
            }
        } else {
            request.types.retain(|t| scopes.allows(t));
            if request.types.is_empty() {
                return Err(AppError::Forbidden(
                    "the token's scopes include no exported type".into(),
                )
                .into());
            }
        }
    }
    // The same refusal the export itself would give, before any job exists.
    if !p.actor.may(ketcare_core::Permission::ClinicalRead) {
        return Err(AppError::Forbidden("your role may not export clinical records".into()).into());
    }
    let exports = s.exports.clone();
    exports.sweep(s.now());
    let running = exports
        .jobs()
        .values()
        .filter(|j| matches!(j.state(), JobState::Running))
        .count();
    if running >= MAX_RUNNING {
        let mut r = super::error_response(AppError::TooManyRequests(
            "exports are running already: try again later".into(),
        ));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return Ok(r);
    }
    let id = ketcare_app::password::random_token();
    let dir = exports.dir.join(&id);
    private_dir(&exports.dir)
        .and_then(|_| private_dir(&dir))
        .map_err(|e| {
            tracing::error!(error = %e, "creating an export folder");
            AppError::Internal
        })?;
    let base = base(&s, &headers);
    let suffix = query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let job = Arc::new(Job {
        owner: p.user.id.get(),
        request: format!("{base}/{level}$export{suffix}"),
        transaction_time: Timestamp::from_second(s.now()).unwrap_or(Timestamp::UNIX_EPOCH),
        dir: dir.clone(),
        state: Mutex::new(JobState::Running),
        ended_at: Mutex::new(None),
        cancelled: AtomicBool::new(false),
        progress: ExportProgress::default(),
    });
    job.save().map_err(|e| {
        tracing::error!(error = %e, "keeping an export's state");
        AppError::Internal
    })?;
    exports.jobs().insert(id.clone(), job.clone());
    let store = s.store.clone();
    let actor = p.actor.clone();
    let clock = s.clone();
    tokio::spawn(async move {
        let mut files: HashMap<String, (std::io::BufWriter<std::fs::File>, usize)> = HashMap::new();
        let mut sink = |kind: &str, r: &Value| -> std::io::Result<()> {
            if !files.contains_key(kind) {
                let f = private_file(&dir.join(format!("{kind}.ndjson")))?;
                files.insert(kind.to_owned(), (std::io::BufWriter::new(f), 0));
            }
            if let Some((w, n)) = files.get_mut(kind) {
                serde_json::to_writer(&mut *w, r)?;
                w.write_all(b"\n")?;
                *n += 1;
            }
            Ok(())
        };
        let result = ketcare_app::fhir::export(
            store.as_ref(),
            &actor,
            &request,
            &mut sink,
            &job.cancelled,
            &job.progress,
        )
        .await;
        let mut written = Vec::new();
        let mut flushed = Ok(());
        for (kind, (mut w, n)) in files {
            flushed = flushed.and(w.flush());
            written.push((kind, n));
        }
        written.sort_by_key(|(k, _)| {
            ketcare_app::fhir::EXPORT_TYPES
                .iter()
                .position(|t| t == k)
                .unwrap_or(usize::MAX)
        });
        let state = match (result, flushed) {
            (Ok(()), Ok(())) => JobState::Done { files: written },
            (Err(e), _) => JobState::Failed {
                message: e.to_string(),
            },
            (_, Err(e)) => {
                tracing::error!(error = %e, "flushing an export file");
                JobState::Failed {
                    message: "the export could not be written".into(),
                }
            }
        };
        job.finish(state, Some(clock.now()));
    });
    let mut r = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/$export-status/{id}")) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(r)
}

/// `GET|POST /fhir/r4/$export`: everything the server holds.
pub async fn system_export(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, FhirError> {
    kick_off(s, p, headers, q, body, "", None).await
}

/// `GET|POST /fhir/r4/Patient/$export`: every patient's compartment (here the same as the
/// system export: every exported type belongs to a patient).
pub async fn patient_export(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, FhirError> {
    kick_off(s, p, headers, q, body, "Patient/", None).await
}

/// `GET|POST /fhir/r4/Group/{id}/$export`: the compartments of the group's members.
pub async fn group_export(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, FhirError> {
    let members = ketcare_app::fhir::group_members(s.store.as_ref(), &p.actor, &id).await?;
    let level = format!("Group/{id}/");
    kick_off(s, p, headers, q, body, &level, Some(members)).await
}

/// `GET /fhir/r4/$export-status/{id}`: 202 with progress while it runs, then the manifest.
pub async fn status(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    s.exports.sweep(s.now());
    let job = s.exports.job_of(&id, p.user.id.get())?;
    match job.state() {
        JobState::Running => {
            let done = job.progress.done.load(Ordering::Relaxed);
            let total = job.progress.total.load(Ordering::Relaxed);
            let mut r = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{done} of {total} patients")) {
                r.headers_mut().insert("x-progress", v);
            }
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            Ok(r)
        }
        JobState::Failed { message } => Err(AppError::Conflict(message).into()),
        JobState::Done { files } => {
            let base = base(&s, &headers);
            let output: Vec<Value> = files
                .iter()
                .map(|(kind, count)| {
                    json!({"type": kind, "url": format!("{base}/$export-file/{id}/{kind}.ndjson"), "count": count})
                })
                .collect();
            let manifest = json!({
                "transactionTime": ketcare_fhir::resources::instant(job.transaction_time),
                "request": job.request,
                "requiresAccessToken": true,
                "output": output,
                "error": [],
            });
            let mut r = (StatusCode::OK, manifest.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
    }
}

/// `DELETE /fhir/r4/$export-status/{id}`: cancels a running export (or removes a finished
/// one's files at once).
pub async fn cancel(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let job = s.exports.job_of(&id, p.user.id.get())?;
    job.cancelled.store(true, Ordering::Relaxed);
    s.exports.jobs().remove(&id);
    let dir = job.dir.clone();
    // A running export stops at its next patient; its folder goes once it has.
    tokio::spawn(async move {
        for _ in 0..600 {
            if job.ended_at().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /fhir/r4/$export-file/{id}/{file}`: one NDJSON file, streamed, to the export's owner.
pub async fn file(
    State(s): State<AppState>,
    p: Principal,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let job = s.exports.job_of(&id, p.user.id.get())?;
    let kind = file
        .strip_suffix(".ndjson")
        .filter(|k| ketcare_app::fhir::EXPORT_TYPES.contains(k))
        .ok_or_else(|| AppError::NotFound(format!("export file {file}")))?;
    let f = tokio::fs::File::open(job.dir.join(format!("{kind}.ndjson")))
        .await
        .map_err(|_| AppError::NotFound(format!("export file {file}")))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: PathBuf, state: JobState, ended_at: Option<i64>) -> Job {
        Job {
            owner: 7,
            request: "http://h/fhir/r4/$export".into(),
            transaction_time: Timestamp::UNIX_EPOCH,
            dir,
            state: Mutex::new(state),
            ended_at: Mutex::new(ended_at),
            cancelled: AtomicBool::new(false),
            progress: ExportProgress::default(),
        }
    }

    /// A restart keeps a finished export (manifest and files) and fails one it interrupted.
    #[test]
    fn jobs_outlive_a_restart() {
        let root = std::env::temp_dir().join(format!(
            "ketcare-export-test-{}",
            ketcare_app::password::random_token()
        ));
        let (done, running) = (root.join("done"), root.join("running"));
        for d in [&root, &done, &running] {
            assert!(private_dir(d).is_ok());
        }
        let files = vec![("Patient".to_owned(), 2)];
        assert!(
            job(
                done.clone(),
                JobState::Done {
                    files: files.clone()
                },
                Some(100)
            )
            .save()
            .is_ok()
        );
        assert!(job(running.clone(), JobState::Running, None).save().is_ok());
        // Saved twice: the second replaces the first.
        assert!(job(running, JobState::Running, None).save().is_ok());

        let exports = Exports::new(root.clone());
        let done = exports.job_of("done", 7).map(|j| j.state());
        assert!(matches!(done, Ok(JobState::Done { files: f }) if f == files));
        assert!(
            exports.job_of("done", 8).is_err(),
            "another user's is not found"
        );
        let interrupted = exports.job_of("running", 7).ok();
        assert!(matches!(
            interrupted.as_ref().map(|j| j.state()),
            Some(JobState::Failed { .. })
        ));
        assert!(interrupted.and_then(|j| j.ended_at()).is_some());
        // And the failure is kept: a second restart sees it too.
        let again = Exports::new(root.clone());
        assert!(matches!(
            again.job_of("running", 7).map(|j| j.state()),
            Ok(JobState::Failed { .. })
        ));
        let _ = std::fs::remove_dir_all(root);
    }
}
