"""OpenAI's Batch API for the test server: uploads, batches on a clock, result files, faults.

`FakeOpenAI.batch` holds one `FakeBatches`; the server's handler hands it every request under
/v1/files and /v1/batches. Each line of a batch is answered as a chat request of its own (the
server's scripts and answers apply, and it is logged in `requests` with "batch" set), when the
batch completes. Stdlib only, like the server."""

from __future__ import annotations

import json
import threading
import time
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fake_openai import FakeOpenAI, _Handler


class FakeBatches:
    """Files and batches held in memory; knobs say how a batch moves and what goes wrong."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = 0
        self.uploads = 0  # POST /files answered
        self.creates = 0  # POST /batches answered
        self.reset_knobs()

    def reset_knobs(self) -> None:
        self.validating_seconds = 0.05  # created -> validating for this long
        self.progress_seconds = 0.2  # then in_progress for this long, then completed
        self.hold = False  # stay in_progress until released (set hold = False)
        self.fail_batch = False  # the next batches fail as a whole (validation errors)
        self.expire = False  # the next batches expire with half their lines done
        self.fail_ids: set[str] = set()  # custom_ids answered with a 500 in the error file
        self.bad_line = False  # a garbage line in the middle of the output, the last one cut
        self.foreign_line = False  # a result for a custom_id nobody asked for
        self.fail_upload: list[int] = []  # statuses for the next uploads (then success)
        self.key = ""  # the bearer key of the last upload: a hostile server's `fields` echo it

    # ---- routing ------------------------------------------------------------------------

    def handle(self, h: _Handler, method: str, raw: bytes) -> None:
        path = h.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[2:]  # after /v1
        if method == "POST" and parts == ["files"]:
            self._upload(h, raw)
        elif method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            data = self.files.get(parts[1])
            if data is None:
                self._missing(h, "file", parts[1])
            else:
                h._send_raw(200, data, "application/octet-stream")
        elif method == "POST" and parts == ["batches"]:
            self._create(h, raw)
        elif method == "GET" and parts == ["batches"]:
            with self._lock:
                data = [self._view(b) for b in self.batches.values()]
            h._send_json(200, {"object": "list", "data": data[::-1], "has_more": False})
        elif method == "GET" and len(parts) == 2 and parts[0] == "batches":
            batch = self.batches.get(parts[1])
            if batch is None:
                self._missing(h, "batch", parts[1])
            else:
                self._advance(batch)
                h._send_json(200, self._view(batch))
        elif (
            method == "POST" and len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel"
        ):
            batch = self.batches.get(parts[1])
            if batch is None:
                self._missing(h, "batch", parts[1])
            else:
                self._cancel(batch)
                h._send_json(200, self._view(batch))
        else:
            self._missing(h, "path", path)

    def _missing(self, h: _Handler, what: str, name: str) -> None:
        error = {"message": f"No such {what}: {name}", "type": "invalid_request_error"}
        h._send_json(404, {"error": {**error, "param": None, "code": None}})

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-fake{self._ids:05d}"

    # ---- files and batches --------------------------------------------------------------

    def _upload(self, h: _Handler, raw: bytes) -> None:
        if self.fail_upload:
            status = self.fail_upload.pop(0)
            h._error(status, "0", "", "")
            return
        self.key = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        ctype = h.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.default).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        fields: dict[str, bytes] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        if fields.get("purpose") != b"batch" or "file" not in fields:
            h._send_json(
                400,
                {
                    "error": {
                        "message": "purpose=batch and a file are required",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                },
            )
            return
        file_id = self._new_id("file")
        with self._lock:
            self.files[file_id] = fields["file"]
            self.uploads += 1
        h._send_json(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(fields["file"]),
                "created_at": int(time.time()),
                "filename": "batch.jsonl",
                "purpose": "batch",
                "status": "processed",
            },
        )

    def _create(self, h: _Handler, raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        data = self.files.get(str(body.get("input_file_id")))
        if data is None:
            self._missing(h, "file", str(body.get("input_file_id")))
            return
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        batch_id = self._new_id("batch")
        batch: dict[str, Any] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
            "errors": None, "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "metadata": body.get("metadata") or {},
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_lines": lines, "_t0": time.monotonic(), "_fail": self.fail_batch,
            "_expire": self.expire, "_done": False,
        }  # fmt: skip
        with self._lock:
            self.batches[batch_id] = batch
            self.creates += 1
        h._send_json(200, self._view(batch))

    def _view(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _advance(self, batch: dict[str, Any]) -> None:
        with self._lock:
            if batch["_done"]:
                return
            elapsed = time.monotonic() - batch["_t0"]
            if elapsed < self.validating_seconds:
                return
            if batch["_fail"]:
                batch["status"], batch["_done"] = "failed", True
                batch["errors"] = {
                    "object": "list",
                    "data": [
                        {"code": "invalid_request", "message": "fake: told to fail", "line": 1}
                    ],
                }
                return
            total = batch["request_counts"]["total"]
            if self.hold or elapsed < self.validating_seconds + self.progress_seconds:
                batch["status"] = "in_progress"
                batch["request_counts"]["completed"] = total // 2 if not self.hold else 0
                return
            if batch["_expire"]:
                self._finish(batch, "expired", done=total // 2)
            else:
                self._finish(batch, "completed", done=total)

    def _cancel(self, batch: dict[str, Any]) -> None:
        with self._lock:
            if batch["_done"]:
                return
            self._finish(batch, "cancelled", done=0)

    def _finish(self, batch: dict[str, Any], status: str, *, done: int) -> None:
        """Answer the first `done` lines (the rest expire or are cancelled); lock held."""
        out: list[bytes] = []
        err: list[bytes] = []
        for i, line in enumerate(batch["_lines"]):
            cid = line.get("custom_id")
            if i >= done:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append(self._line(cid, None, {"code": code, "message": f"fake: {code}"}))
                continue
            answered = self._answer(batch["id"], line)
            (out if answered[0] == 200 else err).append(self._line(cid, answered, None))
        if self.foreign_line:
            out.insert(0, self._line("not-asked-for", (200, {"choices": []}), None))
        if self.bad_line and out:
            out.insert(len(out) // 2, b"{this is not json")
            out[-1] = out[-1][: len(out[-1]) // 2]
        completed = sum(1 for x in out if x.startswith(b'{"id"'))
        batch["request_counts"].update(completed=completed, failed=len(err))
        if out:
            batch["output_file_id"] = fid = f"file-out-{batch['id']}"
            self.files[fid] = b"\n".join(out) + b"\n"
        if err:
            batch["error_file_id"] = fid = f"file-err-{batch['id']}"
            self.files[fid] = b"\n".join(err) + b"\n"
        batch["status"], batch["_done"] = status, True

    def _answer(self, batch_id: str, line: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fake = self.fake
        body = line.get("body") or {}
        model = str(body.get("model", ""))
        entry = {
            "model": model, "messages": body.get("messages"), "body": body, "headers": {},
            "time": time.monotonic(), "stream": False, "batch": batch_id,
            "custom_id": line.get("custom_id"),
        }  # fmt: skip
        fake._record(entry)
        if line.get("custom_id") in self.fail_ids:
            return 500, {"error": {"message": "fake: line failed", "type": "server_error"}}
        step = fake._next_behaviour(model)
        if step[:1].isdigit():
            return int(step[:3]), {"error": {"message": f"fake: {step}", "type": "server_error"}}
        answer = step[3:] if step.startswith("ok:") else fake._answer_for(model, body)
        message = {"role": "assistant", "content": answer, "refusal": None}
        usage = dict(fake.usage_override or _usage(fake, body, answer))
        entry["usage"] = usage
        completion = {
            "id": f"chatcmpl-{batch_id}-{line.get('custom_id')}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": usage,
        }  # fmt: skip
        return 200, fake._with_fields(completion, self.key)

    def _line(
        self, custom_id: Any, answered: tuple[int, dict[str, Any]] | None, error: Any
    ) -> bytes:
        response = None
        if answered is not None:
            response = {"status_code": answered[0], "request_id": "req_b", "body": answered[1]}
        obj = {"id": self._next_req_id(), "custom_id": custom_id, "response": response,
               "error": error}  # fmt: skip
        return json.dumps(obj).encode()

    def _next_req_id(self) -> str:
        self._ids += 1  # lock held by the caller
        return f"batch_req_{self._ids}"

    def in_batches(self) -> list[dict[str, Any]]:
        """Every request line submitted in any batch, in order."""
        with self._lock:
            return [line for b in self.batches.values() for line in b["_lines"]]


def _usage(fake: FakeOpenAI, body: dict[str, Any], answer: str) -> dict[str, int]:
    from tests.fake_openai import usage_for

    return usage_for(body, answer, fake.tokens_per_char)
