"""The stateful sample routes: uploaded files and fine-tuning jobs, kept in memory.

One `SampleStore` per transport instance. Files keep their metadata only (not their bytes),
jobs their state and events; each kind is bounded (`_KEEP`), the oldest forgotten first. Ids
and timestamps come from a counter, so a fresh store always answers the same way. A job moves
one step per retrieve: validating_files -> queued -> running -> succeeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from app.connectors.openai.sample_wire import (
    JSON,
    SAMPLE_EPOCH,
    Reply,
    SampleError,
    SampleRequest,
    invalid,
    json_reply,
    missing,
)

__all__ = ["SampleStore"]

_KEEP = 100
_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_STEPS = ("validating_files", "queued", "running", "succeeded")
_FINISHED = ("succeeded", "failed", "cancelled")
_MESSAGES = {
    "validating_files": "Validating training file: {training_file}",
    "queued": "Fine-tuning job queued",
    "running": "Fine-tuning job started",
    "succeeded": "The job has successfully completed",
    "cancelled": "Fine-tuning job cancelled",
}


def _page(items: list[JSON], query: dict[str, str]) -> JSON:
    # OpenAI's cursor pagination: newest first, `after` an id, `has_more` if more follow.
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


class SampleStore:
    """Files and fine-tuning jobs of one sample transport; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._files: OrderedDict[str, JSON] = OrderedDict()
        self._jobs: OrderedDict[str, JSON] = OrderedDict()
        self._events: dict[str, list[JSON]] = {}

    def _next(self) -> int:
        self._count += 1
        return self._count

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > _KEEP:
            table.popitem(last=False)

    def upload(self, request: SampleRequest) -> Reply:
        """`POST /files` (multipart: `file`, `purpose`): the new `file` object."""
        form = request.form()
        upload = form.file("file")
        purpose = form.text("purpose")
        if purpose not in _PURPOSES:
            raise invalid("purpose", f"Invalid value for 'purpose': one of {', '.join(_PURPOSES)}.")
        with self._lock:
            number = self._next()
            file_id = f"file-sample{number:012d}"
            record = {
                "id": file_id,
                "object": "file",
                "bytes": len(upload.data),
                "created_at": SAMPLE_EPOCH + number,
                "expires_at": None,
                "filename": upload.filename,
                "purpose": purpose,
                "status": "processed",
                "status_details": None,
            }
            self._remember(self._files, file_id, record)
        return json_reply(record)

    def file(self, file_id: str) -> Reply:
        """`GET /files/{id}`: a remembered `file` object, or OpenAI's 404."""
        with self._lock:
            record = self._files.get(file_id)
        if record is None:
            raise SampleError(404, f"No such File object: {file_id}", param="id")
        return json_reply(record)

    def create_job(self, request: SampleRequest) -> Reply:
        """`POST /fine_tuning/jobs` (`model`, `training_file`): a job in validating_files."""
        body = request.json()
        for name in ("model", "training_file"):
            if not body.get(name) or not isinstance(body[name], str):
                raise missing(name)
        with self._lock:
            number = self._next()
            job_id = f"ftjob-sample{number:012d}"
            hyper = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
            job = {
                "id": job_id,
                "object": "fine_tuning.job",
                "created_at": SAMPLE_EPOCH + number,
                "error": None,
                "estimated_finish": None,
                "fine_tuned_model": None,
                "finished_at": None,
                "hyperparameters": hyper,
                "integrations": None,
                "metadata": body.get("metadata"),
                "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
                "model": body["model"],
                "organization_id": "org-sample",
                "result_files": [],
                "seed": body.get("seed", 42),
                "status": "validating_files",
                "trained_tokens": None,
                "training_file": body["training_file"],
                "user_provided_suffix": body.get("suffix"),
                "validation_file": body.get("validation_file"),
            }
            self._remember(self._jobs, job_id, job)
            self._events[job_id] = []
            self._log(job)
            self._events = {k: v for k, v in self._events.items() if k in self._jobs}
            return json_reply(job)

    def _log(self, job: JSON) -> None:
        # Called with the lock held, whenever a job changes state.
        events = self._events[job["id"]]
        events.insert(
            0,
            {
                "id": f"ftevent-sample{job['id'][-12:]}{len(events):03d}",
                "object": "fine_tuning.job.event",
                "created_at": job["created_at"] + len(events),
                "level": "info",
                "message": _MESSAGES[job["status"]].format(**job),
                "data": {},
                "type": "message",
            },
        )

    def _job(self, job_id: str) -> JSON:
        job = self._jobs.get(job_id)
        if job is None:
            raise SampleError(
                404, f"Could not find fine tune: {job_id}", param="id", code="fine_tune_not_found"
            )
        return job

    def jobs(self, request: SampleRequest) -> Reply:
        """`GET /fine_tuning/jobs`: the jobs, newest first, cursor-paginated."""
        with self._lock:
            return json_reply(_page(list(reversed(self._jobs.values())), request.query))

    def job(self, job_id: str) -> Reply:
        """`GET /fine_tuning/jobs/{id}`: the job, moved one state further along first."""
        with self._lock:
            job = self._job(job_id)
            if job["status"] in _STEPS[:-1]:
                job["status"] = _STEPS[_STEPS.index(job["status"]) + 1]
                self._log(job)
                if job["status"] == "succeeded":
                    job["fine_tuned_model"] = f"ft:{job['model']}:sample::{job_id[-8:]}"
                    job["finished_at"] = job["created_at"] + 60
                    job["trained_tokens"] = 1000
            return json_reply(job)

    def cancel(self, job_id: str) -> Reply:
        """`POST /fine_tuning/jobs/{id}/cancel`: the job, cancelled; 400 if already finished."""
        with self._lock:
            job = self._job(job_id)
            if job["status"] in _FINISHED:
                raise SampleError(400, f"Job {job_id} is already {job['status']}.", param="id")
            job["status"] = "cancelled"
            self._log(job)
            return json_reply(job)

    def events(self, job_id: str, request: SampleRequest) -> Reply:
        """`GET /fine_tuning/jobs/{id}/events`: the job's events, newest first, paginated."""
        with self._lock:
            self._job(job_id)
            return json_reply(_page(list(self._events[job_id]), request.query))
