"""The FastAPI application: OpenAI routes over a running Scheduler.

Handlers never touch the model: they validate, tokenize, submit GenRequests and relay the scheduler's
events (pushed thread-safely into an asyncio queue) as one JSON response or as server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dclm.generate.sampling import SamplingParams
from dclm.serve.protocol import CHAT_STOPS, APIError, ChatBody, CompletionBody, chat_prompt, parse_body
from dclm.serve.scheduler import Event, GenRequest, Scheduler

_DISCONNECT_POLL_S = 0.5


@dataclass
class ServerState:
    scheduler: Scheduler
    tokenizer: object
    models: dict[str, int]  # served model name -> adapter index (0 = the base model)
    base_name: str
    max_prompt_tokens: int
    max_new_tokens_limit: int
    max_body_bytes: int
    api_key: str | None = None
    eos_id: int | None = 0
    created: int = 0

    @property
    def context_length(self) -> int:
        return self.scheduler.context_length


def build_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not state.scheduler._thread.is_alive():
            state.scheduler.start()
        yield
        state.scheduler.stop()

    app = FastAPI(title="dclm serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dclm = state

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        code = "not_found" if e.status_code == 404 else None
        return JSONResponse(APIError(e.status_code, str(e.detail), code=code).body(), status_code=e.status_code)

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if state.api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("authorization") != f"Bearer {state.api_key}":
                err = APIError(401, "invalid API key", code="invalid_api_key")
                return JSONResponse(err.body(), status_code=401)
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", **state.scheduler.snapshot()}

    @app.get("/v1/models")
    async def models():
        data = [{"id": name, "object": "model", "created": state.created, "owned_by": "dclm",
                 "parent": None if idx == 0 else state.base_name, "max_model_len": state.context_length}
                for name, idx in state.models.items()]
        return {"object": "list", "data": data}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body: CompletionBody = parse_body(CompletionBody, await _read_json(request, state.max_body_bytes))
        adapter = _adapter(state, body.model)
        prompts = _completion_prompts(state, body.prompt)
        jobs = [(ids, _params(state, body, len(ids), body.max_tokens, body.stops(), k))
                for ids in prompts for k in range(body.n)]
        return await _respond(request, state, body, jobs, adapter, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body: ChatBody = parse_body(ChatBody, await _read_json(request, state.max_body_bytes))
        adapter = _adapter(state, body.model)
        ids = _encode(state, chat_prompt(body.messages), "messages")
        limit = body.max_completion_tokens or body.max_tokens
        stops = body.stops() + list(CHAT_STOPS)
        jobs = [(ids, _params(state, body, len(ids), limit, stops, k)) for k in range(body.n)]
        return await _respond(request, state, body, jobs, adapter, chat=True)

    return app


async def _read_json(request: Request, limit: int):
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="request_too_large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise APIError(413, f"request body is larger than {limit} bytes", code="request_too_large")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON ({e})", code="invalid_json") from None


def _adapter(state: ServerState, model: str) -> int:
    if model not in state.models:
        raise APIError(404, f"the model {model!r} does not exist; served: {', '.join(state.models)}", "model",
                       "model_not_found")
    return state.models[model]


def _encode(state: ServerState, text: str, param: str) -> list[int]:
    ids = state.tokenizer.encode(text)
    return _check_prompt(state, ids or [state.eos_id or 0], param)  # an empty prompt starts a new document


def _check_prompt(state: ServerState, ids: list[int], param: str) -> list[int]:
    if len(ids) > state.max_prompt_tokens:
        raise APIError(400, f"the prompt has {len(ids)} tokens; this server takes at most {state.max_prompt_tokens}",
                       param, "context_length_exceeded")
    return ids


def _completion_prompts(state: ServerState, prompt) -> list[list[int]]:
    if isinstance(prompt, str):
        return [_encode(state, prompt, "prompt")]
    if all(isinstance(p, int) for p in prompt):
        return [_check_tokens(state, prompt)]
    if all(isinstance(p, str) for p in prompt):
        return [_encode(state, p, "prompt") for p in prompt]
    return [_check_tokens(state, p) for p in prompt]


def _check_tokens(state: ServerState, ids: list[int]) -> list[int]:
    vocab = state.scheduler.model.args.vocab_size
    if not ids or any(not 0 <= t < vocab for t in ids):
        raise APIError(400, f"token prompts need at least one id, each in [0, {vocab})", "prompt")
    return _check_prompt(state, list(ids), "prompt")


def _params(state: ServerState, body, prompt_len: int, max_tokens: int | None, stops: list[str],
            k: int) -> SamplingParams:
    room = state.context_length - prompt_len
    if max_tokens is None:
        max_tokens = min(state.max_new_tokens_limit, room)
    if max_tokens > state.max_new_tokens_limit:
        raise APIError(400, f"max_tokens is {max_tokens}; this server allows at most {state.max_new_tokens_limit}",
                       "max_tokens")
    if max_tokens > room:
        raise APIError(400, f"this model's maximum context length is {state.context_length} tokens, but "
                       f"{prompt_len + max_tokens} were requested ({prompt_len} in the prompt, {max_tokens} "
                       "for the completion)", "max_tokens", "context_length_exceeded")
    greedy = body.temperature == 0
    return SamplingParams(
        max_new_tokens=max_tokens, temperature=body.temperature if not greedy else 1.0, top_p=body.top_p,
        top_k=max(body.top_k, 0), repetition_penalty=body.repetition_penalty, greedy=greedy,
        seed=None if body.seed is None else body.seed + k, stop=stops, eos_id=state.eos_id)


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _respond(request: Request, state: ServerState, body, jobs, adapter: int, chat: bool):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
    reqs = []
    for i, (ids, params) in enumerate(jobs):
        def sink(event: Event, i=i):
            loop.call_soon_threadsafe(queue.put_nowait, (i, event))
        reqs.append(GenRequest(ids, params, sink, adapter, stream=body.stream))
    try:
        for r in reqs:
            state.scheduler.submit(r)
    except RuntimeError as e:
        for r in reqs:
            r.cancel()
        raise APIError(503, str(e), type="server_error", code="shutting_down") from None
    meta = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", "created": int(time.time()),
            "model": body.model}
    if body.stream:
        return EventSourceResponse(_stream(reqs, queue, meta, chat, body.include_usage()), ping=15,
                                   send_timeout=60)
    return await _collect(request, reqs, queue, meta, chat)


async def _collect(request: Request, reqs, queue, meta, chat: bool):
    texts = [""] * len(reqs)
    finals: list[Event | None] = [None] * len(reqs)
    try:
        while any(f is None for f in finals):
            try:
                i, event = await asyncio.wait_for(queue.get(), _DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return JSONResponse({}, status_code=499)
                continue
            if event.error:
                raise APIError(500, event.error, type="server_error")
            texts[i] += event.text
            if event.finish_reason:
                finals[i] = event
    finally:
        for r in reqs:
            r.cancel()  # no-op for finished requests; frees the slots of abandoned ones
    prompt_tokens = _prompt_tokens(reqs)
    completion_tokens = sum(f.completion_tokens for f in finals)
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": f.finish_reason,
                    "logprobs": None} for i, (t, f) in enumerate(zip(texts, finals))]
        obj = "chat.completion"
    else:
        choices = [{"index": i, "text": t, "finish_reason": f.finish_reason, "logprobs": None}
                   for i, (t, f) in enumerate(zip(texts, finals))]
        obj = "text_completion"
    return {**meta, "object": obj, "choices": choices, "usage": _usage(prompt_tokens, completion_tokens)}


def _prompt_tokens(reqs) -> int:
    # OpenAI counts each distinct prompt once, however many choices (n) it has
    seen: dict[tuple, int] = {}
    for r in reqs:
        seen.setdefault(tuple(r.prompt_ids), len(r.prompt_ids))
    return sum(seen.values())


async def _stream(reqs, queue, meta, chat: bool, include_usage: bool) -> AsyncIterator[str]:
    obj = "chat.completion.chunk" if chat else "text_completion"
    open_rows = set(range(len(reqs)))
    completion_tokens = 0

    def chunk(choices, **extra) -> str:
        return json.dumps({**meta, "object": obj, "choices": choices, **extra}, ensure_ascii=False)

    try:
        if chat:
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                          "logprobs": None} for i in range(len(reqs))])
        while open_rows:
            i, event = await queue.get()
            if event.error:
                yield json.dumps({"error": APIError(500, event.error, type="server_error").body()["error"]})
                return
            if event.finish_reason:
                open_rows.discard(i)
                completion_tokens += event.completion_tokens
            if not event.text and not event.finish_reason:
                continue
            if chat:
                delta = {"content": event.text} if event.text else {}
                yield chunk([{"index": i, "delta": delta, "finish_reason": event.finish_reason, "logprobs": None}])
            else:
                yield chunk([{"index": i, "text": event.text, "finish_reason": event.finish_reason,
                              "logprobs": None}])
        if include_usage:
            yield chunk([], usage=_usage(_prompt_tokens(reqs), completion_tokens))
        yield "[DONE]"
    finally:  # also reached when the client goes away mid-stream: its rows leave the batch
        for r in reqs:
            r.cancel()
