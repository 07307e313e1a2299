"""The OpenAI request bodies we accept, their checks, OpenAI-style errors, and the chat prompt template.

Unknown fields are ignored (clients send many optional ones); fields we cannot honour (logprobs, echo,
tools, best_of) are refused with a 400 rather than silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class APIError(Exception):
    """Answered as {"error": {"message", "type", "param", "code"}} with `status`."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1)  # vLLM's extension; 0 and -1 mean off
    repetition_penalty: float = Field(1.0, gt=0.0)  # vLLM's extension
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: Any = None
    best_of: int | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def refuse_unsupported(self) -> None:
        if self.logprobs not in (None, False, 0):
            raise APIError(400, "logprobs are not supported by this server", "logprobs")
        if self.best_of not in (None, 1):
            raise APIError(400, "best_of is not supported by this server", "best_of")
        if len(self.stops()) > 4:
            raise APIError(400, "at most 4 stop sequences", "stop")


class CompletionBody(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    echo: bool = False

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        if self.echo:
            raise APIError(400, "echo is not supported by this server", "echo")
        if isinstance(self.prompt, list) and not self.prompt:
            raise APIError(400, "prompt is an empty list", "prompt")


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, "only text content parts are supported", "messages")
            parts.append(part["text"])
        return "".join(parts)


class ChatBody(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: Any = None

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        if self.tools:
            raise APIError(400, "tools are not supported by this server", "tools")


# A plain-text transcript for base models (DCLM-7B has no chat template): "Role: text" turns separated by
# blank lines, ending in an open assistant turn; a new turn marker stops the reply.
_ROLE_LABELS = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
CHAT_STOPS = ("\n\nUser:", "\n\nSystem:")


def chat_prompt(messages: list[Message]) -> str:
    turns = [f"{_ROLE_LABELS[m.role]}: {m.text().strip()}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def parse_body(cls: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        body = cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(x) for x in err.get("loc", ())) or None
        raise APIError(400, f"{param}: {err.get('msg')}" if param else str(err.get("msg")), param) from None
    body.refuse_unsupported()
    return body
