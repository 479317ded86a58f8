"""A loopback server that speaks enough of the OpenAI API for the judge's tests and benchmarks.

* ``POST /v1/chat/completions``: a structured-output request (``response_format`` with a JSON schema) is answered
  with valid JSON for that schema, computed deterministically from the prompt text (the scores of the offline rubric
  judge, so the answers mean something); a plain chat request gets a short deterministic text (``n`` choices).
  Usage is reported with cached prompt tokens as OpenAI reports them (the system prompt, in 128-token steps from
  1,024 tokens, once the same system prompt has been seen before).
* ``POST /v1/files`` (multipart upload), ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
  ``GET /v1/files/{id}/content``: the Batch API, with the output and error files built when a batch completes.
* Faults at ``fault_rate`` with a seeded RNG, drawn from ``faults``: ``429`` (with Retry-After), ``500``, ``timeout``
  (the answer comes after ``hang_seconds``), ``malformed`` (half the JSON), ``refusal``, ``truncated`` (a third of
  the JSON with finish_reason "length"), ``missing_field``, ``out_of_range``, and ``auth_echo`` (a 401 that quotes
  the API key back, as real providers do; ``reject_key`` does that on every route).  Batch lines get faults at
  ``batch_fault_rate`` (``error_object``: an error-file line with an error object and no response);
  ``batch_end_status="expired"`` ends a batch with only half of its lines answered, ``"failed"`` with none and the
  batch's own ``errors`` (``batch_errors``: ``(line or None, code, message)``).
* Events instead of clocks, for tests: ``hold_after=N`` answers the first N chat requests and holds the rest until
  :meth:`FakeOpenAI.release` (``held`` is set when one is held, :meth:`FakeOpenAI.wait_until_holding` waits for
  several); ``answer_in_groups_of=K`` holds each chat request
  until K are in flight together (a barrier); ``fail_after=N`` answers HTTP 500 to every chat request after the
  first N (an outage that starts part-way through a run; set it to None and the server is back).
* It counts requests, records each request's headers, path and body, the largest number of chat requests in flight
  at once, and the largest number of batches in flight at once (created and not yet ended).

It binds to 127.0.0.1 on a free port and stops on :meth:`FakeOpenAI.close` (or leaving a ``with`` block), and by
itself after ``max_lifetime_s`` at the latest, so a test that forgets it leaves nothing running.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("429", "500", "timeout", "malformed", "refusal", "truncated", "missing_field", "out_of_range")
BATCH_FAULTS = ("500", "malformed", "refusal", "truncated", "error_object")
TOKEN_LIMIT = (None, "token_limit_exceeded",
               "Enqueued token limit reached for this model. Wait for a batch to finish before submitting more.")


def _scores_for(user: str) -> tuple[dict, str]:
    from psyco_utils.judge.rubric import rubric_score

    match = re.match(r"CLIENT STATEMENT:\n(.*?)\n\nRESPONSE:\n(.*)", user, re.S)
    if match:
        return rubric_score(*match.groups())
    digest = hashlib.sha256(user.encode()).digest()  # an unknown prompt shape: still deterministic
    keys = ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")
    return {k: 1 + digest[i] % 5 for i, k in enumerate(keys)}, "scores from a hash of the prompt"


def answer_content(body: dict) -> str:
    """The deterministic answer to a chat-completions request body."""
    from psyco_utils.judge.rubric import rubric_compare

    fmt = body.get("response_format") or {}
    messages = body.get("messages") or []
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    name = (fmt.get("json_schema") or {}).get("name")
    if name == "principle_scores":
        scores, rationale = _scores_for(user)
        return json.dumps({"rationale": rationale[:200], **scores})
    if name == "principle_verdicts":
        match = re.match(r"CLIENT STATEMENT:\n(.*?)\n\nRESPONSE A:\n(.*?)\n\nRESPONSE B:\n(.*)", user, re.S)
        if match:
            per, overall, rationale = rubric_compare(*match.groups(), 0.25)
        else:
            per, overall, rationale = ({k: "tie" for k in ("empathy", "relevance", "clarity", "safety", "exploration",
                                                           "autonomy", "staging")}, "tie", "unknown prompt shape")
        return json.dumps({"rationale": rationale, **per, "overall": overall})
    if name == "label":
        labels = fmt["json_schema"]["schema"]["properties"]["label"]["enum"]
        digest = hashlib.sha256(user.encode()).digest()
        return json.dumps({"label": labels[digest[0] % len(labels)]})
    return f"A reply to: {user[:40]}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections when a client opens many at once

    def handle_error(self, request, client_address):
        """A client that hung up (a stopped run, a timeout) is expected here: say nothing; anything else is shown."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """``with FakeOpenAI(fault_rate=0.2, seed=0) as server:`` then point the client at ``server.base_url``."""

    def __init__(self, fault_rate: float = 0.0, seed: int = 0, faults=FAULTS, retry_after: float = 0.01,
                 hang_seconds: float = 1.5, latency: float = 0.0, batch_polls_before_done: int = 1,
                 batch_fault_rate: float = 0.0, batch_faults=BATCH_FAULTS, batch_end_status: str = "completed", batch_errors=(TOKEN_LIMIT,),
                 hold_after: int | None = None, fail_after: int | None = None, answer_in_groups_of: int | None = None, reject_key: bool = False,
                 max_lifetime_s: float = 600):
        self.lock = threading.RLock()
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.latency = latency
        self.batch_polls_before_done = batch_polls_before_done
        self.batch_fault_rate = batch_fault_rate
        self.batch_faults = tuple(batch_faults)
        self.batch_end_status = batch_end_status
        self.batch_errors = list(batch_errors)
        self.hold_after = hold_after
        self.fail_after = fail_after
        self.held = threading.Event()
        self.holding = 0
        self._holding_changed = threading.Condition(self.lock)
        self._released = threading.Event()
        self._group = threading.Barrier(answer_in_groups_of) if answer_in_groups_of else None
        self.answered = 0
        self.batches_in_flight = 0
        self.max_batches_in_flight = 0
        self.reject_key = reject_key
        self.stopping = threading.Event()
        self.requests = 0
        self.chat_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_injected: dict[str, int] = {}
        self.headers_seen: list[dict] = []
        self.paths_seen: list[str] = []
        self.bodies_seen: list[str] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self._systems_seen: set[str] = set()
        answer_content({"messages": [{"role": "user", "content": "CLIENT STATEMENT:\nwarm\n\nRESPONSE:\nup"}],
                        "response_format": {"json_schema": {"name": "principle_scores"}}})  # imports done up front
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-openai", daemon=True)
        self.thread.start()
        self._watchdog = threading.Timer(max_lifetime_s, self.close)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        """Stop serving (idempotent); handlers still sleeping in a ``timeout`` fault wake up and end."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
        self.stopping.set()
        self._released.set()
        if self._group is not None:
            self._group.abort()
        self._watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def release(self) -> None:
        """Answer the chat requests held by ``hold_after``, and every later one."""
        self.hold_after = None
        self._released.set()

    def wait_until_holding(self, n: int, timeout: float = 120) -> bool:
        """Block until ``n`` chat requests are held by ``hold_after`` at once (a client with ``n`` slots has then
        written every answer it got); False if that never happens within ``timeout``."""
        with self.lock:
            return self._holding_changed.wait_for(lambda: self.holding >= n, timeout)

    def _wait_turn(self) -> None:
        """Hold a chat request as ``hold_after`` and ``answer_in_groups_of`` say (events, not clocks)."""
        with self.lock:
            hold = self.hold_after is not None and self.answered >= self.hold_after
            self.answered += not hold
        if hold:
            with self.lock:
                self.holding += 1
                self._holding_changed.notify_all()
            self.held.set()
            self._released.wait()
            with self.lock:
                self.holding -= 1
        if self._group is not None:
            try:
                self._group.wait(timeout=30)
            except threading.BrokenBarrierError:  # closing, or fewer requests than a group: answer anyway
                pass

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- what a response looks like

    def _draw_fault(self, rate: float, faults) -> str | None:
        with self.lock:
            if rate and self.rng.random() < rate:
                fault = self.rng.choice(tuple(faults))
                self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
                return fault
        return None

    def completion(self, body: dict, fault: str | None = None) -> dict:
        """A chat.completion object for ``body``, spoiled as ``fault`` says (malformed, refusal, truncated...)."""
        content = answer_content(body)
        finish, refusal = "stop", None
        if fault == "malformed":
            content = content[: len(content) // 2]
        elif fault == "truncated":
            content, finish = content[: len(content) // 3], "length"
        elif fault == "refusal":
            content, refusal = None, "I can't help with that."
        elif fault in ("missing_field", "out_of_range") and content.startswith("{"):
            data = json.loads(content)
            field = next((k for k in ("empathy", "overall", "label") if k in data), None)
            if field and fault == "missing_field":
                del data[field]
            elif field:
                data[field] = 9 if field == "empathy" else "C"
            content = json.dumps(data)
        messages = body.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        prompt_tokens = sum(len(m.get("content") or "") for m in messages) // 4
        system_tokens = len(system) // 4
        with self.lock:
            seen = system in self._systems_seen
            self._systems_seen.add(system)
        cached = (system_tokens // 128) * 128 if seen and system_tokens >= 1024 else 0
        n = int(body.get("n") or 1)
        completion_tokens = len(content or "") // 4
        choices = []
        for i in range(n):
            text = content if (i == 0 or body.get("response_format")) else f"{content} (sample {i + 1})"
            choices.append({"index": i, "finish_reason": finish, "logprobs": None,
                            "message": {"role": "assistant", "content": text, "refusal": refusal}})
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "unknown"), "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens * n,
                          "total_tokens": prompt_tokens + completion_tokens * n,
                          "prompt_tokens_details": {"cached_tokens": cached}}}

    def _finish_batch(self, batch: dict) -> None:
        lines = [line for line in self.files[batch["input"]].decode().splitlines() if line.strip()]
        if self.batch_end_status == "expired":
            lines = lines[: len(lines) // 2]
        elif self.batch_end_status == "failed":
            lines = []
            batch["errors"] = {"object": "list", "data": [{"code": code, "message": message, "param": None,
                                                           "line": line} for line, code, message in self.batch_errors]}
        self.batches_in_flight -= 1
        out, err = [], []
        for line in lines:
            request = json.loads(line)
            fault = self._draw_fault(self.batch_fault_rate, self.batch_faults)
            record = {"id": f"batch_req_{uuid.uuid4().hex[:8]}", "custom_id": request["custom_id"]}
            if fault == "500":
                record.update(response={"status_code": 500, "request_id": uuid.uuid4().hex[:8],
                                        "body": {"error": {"message": "server error", "type": "server_error"}}},
                              error=None)
                err.append(json.dumps(record))
            elif fault == "error_object":
                record.update(response=None, error={"code": "batch_expired",
                                                    "message": "This line was not executed before the batch ended."})
                err.append(json.dumps(record))
            else:
                record.update(response={"status_code": 200, "request_id": uuid.uuid4().hex[:8],
                                        "body": self.completion(request["body"], fault)}, error=None)
                out.append(json.dumps(record))
        for name, records in (("output", out), ("error", err)):
            if records:
                file_id = f"file-{uuid.uuid4().hex[:12]}"
                self.files[file_id] = ("\n".join(records) + "\n").encode()
                batch[name] = file_id
        batch["status"] = self.batch_end_status
        batch["counts"] = (len(out), len(err))

    def batch_json(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        total = len([x for x in self.files[batch["input"]].decode().splitlines() if x.strip()])
        done, failed = batch.get("counts", (0, 0))
        return {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": batch.get("errors"),
                "input_file_id": batch["input"], "completion_window": "24h", "status": batch["status"],
                "output_file_id": batch.get("output"), "error_file_id": batch.get("error"),
                "created_at": int(batch["created"]), "metadata": batch.get("metadata"),
                "request_counts": {"total": total, "completed": done, "failed": failed}}

    # ---------------------------------------------------------------- the HTTP handler

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no delayed-ACK stall

            def log_message(self, *args):
                pass

            def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None,
                      content_type: str = "application/json"):
                data = raw if raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _record(self, raw: bytes = b"") -> None:
                with server.lock:
                    server.requests += 1
                    server.headers_seen.append(dict(self.headers))
                    server.paths_seen.append(f"{self.command} {self.path}")
                    if raw and not self.path.endswith("/files"):
                        server.bodies_seen.append(raw.decode("utf-8", "replace"))

            def _reject(self) -> bool:
                """With ``reject_key``: a 401 on every route that quotes the key back, as real providers do."""
                if not server.reject_key:
                    return False
                auth = self.headers.get("Authorization") or ""
                self._send(401, {"error": {"message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}})
                return True

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._record(raw)
                if self._reject():
                    return
                if self.path.endswith("/chat/completions"):
                    return self._chat(json.loads(raw))
                if self.path.endswith("/files"):
                    return self._upload(raw)
                if self.path.endswith("/batches"):
                    return self._create_batch(json.loads(raw))
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self):
                self._record()
                if self._reject():
                    return
                match = re.search(r"/batches/([\w-]+)$", self.path)
                if match and match.group(1) in server.batches:
                    return self._get_batch(match.group(1))
                match = re.search(r"/files/([\w-]+)/content$", self.path)
                if match and match.group(1) in server.files:
                    return self._send(200, raw=server.files[match.group(1)], content_type="application/octet-stream")
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

            def _chat(self, body: dict):
                with server.lock:
                    server.chat_requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._wait_turn()
                    with server.lock:
                        down = server.fail_after is not None and server.chat_requests > server.fail_after
                    fault = "500" if down else server._draw_fault(server.fault_rate, server.faults)
                    if server.latency:
                        server.stopping.wait(server.latency)
                    if fault == "429":
                        return self._send(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                                          {"Retry-After": f"{server.retry_after:g}"})
                    if fault == "auth_echo":
                        auth = self.headers.get("Authorization") or ""
                        return self._send(401, {"error": {"message": f"Incorrect API key provided: "
                                                                     f"{auth.removeprefix('Bearer ')}",
                                                          "type": "invalid_request_error"}})
                    if fault == "500":
                        return self._send(500, {"error": {"message": "The server had an error",
                                                          "type": "server_error"}})
                    if fault == "timeout":
                        server.stopping.wait(server.hang_seconds)
                    self._send(200, server.completion(body, fault))
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _upload(self, raw: bytes):
                boundary = self.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
                content, purpose = b"", "batch"
                for part in raw.split(b"--" + boundary):
                    head, _, payload = part.partition(b"\r\n\r\n")
                    payload = payload.rsplit(b"\r\n", 1)[0]
                    if b'name="file"' in head:
                        content = payload
                    elif b'name="purpose"' in head:
                        purpose = payload.decode()
                file_id = f"file-{uuid.uuid4().hex[:12]}"
                server.files[file_id] = content
                self._send(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                 "filename": "input.jsonl", "purpose": purpose, "status": "processed"})

            def _create_batch(self, body: dict):
                if body.get("input_file_id") not in server.files:
                    return self._send(400, {"error": {"message": "unknown input file"}})
                batch_id = f"batch_{uuid.uuid4().hex[:12]}"
                with server.lock:
                    server.batches[batch_id] = {"input": body["input_file_id"], "polls": 0, "status": "validating",
                                                "created": time.time(), "metadata": body.get("metadata")}
                    server.batches_in_flight += 1
                    server.max_batches_in_flight = max(server.max_batches_in_flight, server.batches_in_flight)
                self._send(200, server.batch_json(batch_id))

            def _get_batch(self, batch_id: str):
                with server.lock:
                    batch = server.batches[batch_id]
                    batch["polls"] += 1
                    if batch["status"] not in ("completed", "expired", "failed", "cancelled"):
                        if batch["polls"] >= server.batch_polls_before_done:
                            server._finish_batch(batch)
                        else:
                            batch["status"] = "in_progress"
                self._send(200, server.batch_json(batch_id))

        return Handler


@contextmanager
def server_in_own_process(server: str = "standin.openai_server:FakeOpenAI", served: dict | None = None, **settings):
    """A loopback server in a process of its own, as a real endpoint would be: its work (parsing, the rubric judge
    behind each answer) does not compete with the client for one interpreter lock.  Yields its base URL.

    ``server`` names the class as ``module:Class`` and ``settings`` are its keyword arguments.  On exit the server
    stops, and ``served``, when given, is filled with its ``served()`` summary (what it answered, by kind).
    """
    module, name = server.split(":")
    code = (f"import json, sys; from {module} import {name}; server = {name}(**json.loads(sys.argv[1])); "
            "print(server.base_url, flush=True); sys.stdin.read(); server.close(); "
            "print(json.dumps(server.served() if hasattr(server, 'served') else {}), flush=True)")
    process = subprocess.Popen([sys.executable, "-c", code, json.dumps(settings)],
                               cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the loopback server did not start (exit status {process.poll()})")
        yield base_url
    finally:
        process.stdin.close()
        try:
            summary = process.stdout.readline().strip()
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            summary = ""
        if served is not None and summary.startswith("{"):
            served.update(json.loads(summary))
