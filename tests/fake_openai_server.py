"""A loopback server that speaks enough of the OpenAI API for the judge's tests and benchmarks.

POST /v1/chat/completions answers structured-output requests with valid JSON computed deterministically from the
prompt (scores from the rubric judge, so answers are meaningful), plain chat requests with a short text; it reports
usage including cached prompt tokens.  Files upload, batches create/retrieve and file content download implement the
Batch API.  Faults (429 with Retry-After, 500, a delay past the client's timeout, malformed JSON, a refusal, truncated
output) are injected at a configurable rate with a seeded RNG.  It counts requests and records the headers it saw.
It binds to 127.0.0.1 only and stops on ``close()``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "timeout", "malformed", "refusal", "truncated")


def _answer(body: dict) -> str:
    """A deterministic structured answer for the request's JSON schema, or plain text."""
    from psyco_utils.judge.rubric import rubric_compare, rubric_score

    fmt = body.get("response_format") or {}
    user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    name = (fmt.get("json_schema") or {}).get("name")
    if name == "principle_scores":
        statement, response = re.match(r"CLIENT STATEMENT:\n(.*)\n\nRESPONSE:\n(.*)", user, re.S).groups()
        scores, rationale = rubric_score(statement, response)
        return json.dumps({"rationale": rationale[:200], **scores})
    if name == "principle_verdicts":
        statement, a, b = re.match(r"CLIENT STATEMENT:\n(.*)\n\nRESPONSE A:\n(.*)\n\nRESPONSE B:\n(.*)", user, re.S).groups()
        per, overall, rationale = rubric_compare(statement, a, b, 0.25)
        return json.dumps({"rationale": rationale, **per, "overall": overall})
    if name == "label":
        labels = fmt["json_schema"]["schema"]["properties"]["label"]["enum"]
        return json.dumps({"label": labels[len(user) % len(labels)]})
    return f"A reply to: {user[:40]}"


class FakeOpenAI:
    """Start with ``FakeOpenAI(fault_rate=0.2, seed=0)``; ``base_url`` for the client; ``close()`` when done."""

    def __init__(self, fault_rate: float = 0.0, seed: int = 0, faults=FAULTS, retry_after: float = 0.01,
                 hang_seconds: float = 1.5, latency: float = 0.0, batch_polls_before_done: int = 1):
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.latency = latency
        self.batch_polls_before_done = batch_polls_before_done
        self.lock = threading.Lock()
        self.requests = 0
        self.chat_requests = 0
        self.faults_injected: dict[str, int] = {}
        self.headers_seen: list[dict] = []
        self.bodies_seen: list[str] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def _send(self, status: int, payload, headers: dict | None = None, raw: bytes | None = None):
                data = raw if raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with server.lock:
                    server.requests += 1
                    server.headers_seen.append(dict(self.headers))
                    server.bodies_seen.append(raw.decode("utf-8", "replace"))
                if self.path.endswith("/chat/completions"):
                    return self._chat(json.loads(raw))
                if self.path.endswith("/files"):
                    return self._upload(raw)
                if self.path.endswith("/batches"):
                    return self._create_batch(json.loads(raw))
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self):
                with server.lock:
                    server.requests += 1
                    server.headers_seen.append(dict(self.headers))
                match = re.search(r"/batches/([\w-]+)$", self.path)
                if match:
                    return self._get_batch(match.group(1))
                match = re.search(r"/files/([\w-]+)/content$", self.path)
                if match and match.group(1) in server.files:
                    data = server.files[match.group(1)]
                    try:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            # ---------------------------------------------------------------- chat

            def _chat(self, body: dict):
                with server.lock:
                    server.chat_requests += 1
                    fault = None
                    if server.fault_rate and server.rng.random() < server.fault_rate:
                        fault = server.rng.choice(server.faults)
                        server.faults_injected[fault] = server.faults_injected.get(fault, 0) + 1
                if server.latency:
                    time.sleep(server.latency)
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                                      {"Retry-After": str(server.retry_after)})
                if fault == "auth_echo":  # like a real provider, quote the key back in the error message
                    key = (self.headers.get("Authorization") or self.headers.get("authorization") or "")[len("Bearer "):]
                    return self._send(401, {"error": {"message": f"Incorrect API key provided: {key}"}})
                if fault == "500":
                    return self._send(500, {"error": {"message": "server error"}})
                if fault == "timeout":
                    time.sleep(server.hang_seconds)
                    return self._send(500, {"error": {"message": "too late"}})
                self._send(200, completion(body, fault))

            # ---------------------------------------------------------------- batch API

            def _upload(self, raw: bytes):
                boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
                content = b""
                for part in raw.split(b"--" + boundary):
                    if b'name="file"' in part:
                        content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
                file_id = f"file-{uuid.uuid4().hex[:12]}"
                server.files[file_id] = content
                self._send(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                                 "filename": "input.jsonl", "purpose": "batch", "status": "processed"})

            def _create_batch(self, body: dict):
                batch_id = f"batch_{uuid.uuid4().hex[:12]}"
                server.batches[batch_id] = {"input": body["input_file_id"], "polls": 0, "output": None}
                self._send(200, self._batch_json(batch_id, "validating"))

            def _get_batch(self, batch_id: str):
                batch = server.batches[batch_id]
                batch["polls"] += 1
                if batch["polls"] >= server.batch_polls_before_done and batch["output"] is None:
                    lines = server.files[batch["input"]].decode().splitlines()
                    out = []
                    for line in lines:
                        if not line.strip():
                            continue
                        request = json.loads(line)
                        out.append(json.dumps({"id": f"resp_{uuid.uuid4().hex[:8]}", "custom_id": request["custom_id"],
                                               "response": {"status_code": 200, "body": completion(request["body"], None)},
                                               "error": None}))
                    file_id = f"file-{uuid.uuid4().hex[:12]}"
                    server.files[file_id] = ("\n".join(out) + "\n").encode()
                    batch["output"] = file_id
                status = "completed" if batch["output"] else "in_progress"
                self._send(200, self._batch_json(batch_id, status))

            def _batch_json(self, batch_id: str, status: str) -> dict:
                batch = server.batches[batch_id]
                total = len([x for x in server.files[batch["input"]].decode().splitlines() if x.strip()])
                return {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                        "input_file_id": batch["input"], "completion_window": "24h", "status": status,
                        "output_file_id": batch["output"], "error_file_id": None, "created_at": 0,
                        "request_counts": {"total": total, "completed": total if batch["output"] else 0, "failed": 0}}

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(body: dict, fault: str | None) -> dict:
    content = _answer(body)
    finish = "stop"
    refusal = None
    if fault == "malformed":
        content = content[: len(content) // 2]
    elif fault == "truncated":
        content, finish = content[: len(content) // 3], "length"
    elif fault == "refusal":
        content, refusal = None, "I can't help with that."
    prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    n = int(body.get("n", 1) or 1)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": i, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}} for i in range(n)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content or "") // 4,
                      "total_tokens": prompt_tokens + len(content or "") // 4,
                      "prompt_tokens_details": {"cached_tokens": (len(system) // 4 // 64) * 64}}}
