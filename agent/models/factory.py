"""Model factory: turn a model name from the settings into a LangChain chat model.

Models are built lazily inside graph nodes, never at import time, so the graph (and
``langgraph dev``) starts without any API key.
"""

from __future__ import annotations

import sys
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.settings import Settings, load_settings

#: Per-request timeout and retries for hosted models. 429, 5xx and timed-out requests are retried
#: with exponential backoff (0.5 s, 1 s, 2 s, ... capped at 8 s, or the server's Retry-After);
#: once retries are exhausted the graph escalates the email with "model unavailable: ...".
OPENAI_TIMEOUT_SECONDS: float = Settings.model_fields["model_timeout"].default
OPENAI_MAX_RETRIES: int = Settings.model_fields["model_max_retries"].default

#: Environment variables that tune the hosted-model client (read when a model is built).
MODEL_TIMEOUT_ENV = Settings.variable("model_timeout")
MODEL_MAX_RETRIES_ENV = Settings.variable("model_max_retries")
#: A cap on the tokens one answer may have: a small local model can ramble for minutes.
MODEL_MAX_TOKENS_ENV = Settings.variable("model_max_tokens")


def build_chat_model(name: str) -> BaseChatModel:
    """``rules`` (offline, deterministic) or ``openai:<model>`` (any OpenAI-compatible server)."""
    spec = name.strip()
    if spec == "rules":
        from mediavault.agent.models.rules_model import RulesChatModel

        return RulesChatModel()
    if spec.startswith("openai:"):
        model = spec.removeprefix("openai:").strip()
        if not model:
            raise ConfigurationError("`openai:` needs a model name, e.g. openai:gpt-4o-mini")
        return _openai_model(model)
    raise ConfigurationError(f"unknown model {name!r}; use `rules` or `openai:<model>`")


def _openai_model(model: str) -> BaseChatModel:
    settings = load_settings()
    base_url = settings.openai_base_url
    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if api_key is None and base_url is None:
        raise ConfigurationError(
            f"model openai:{model} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
            "OpenAI-compatible server)"
        )
    from langchain_openai import ChatOpenAI

    options: dict[str, Any] = {
        "model": model,
        "timeout": model_timeout_seconds(),
        "max_retries": model_max_retries(),
        "temperature": 0,
        # Local servers (vLLM, llama.cpp, Ollama) accept any key; the client insists on one.
        "api_key": api_key or "not-needed",
    }
    if base_url:
        options["base_url"] = base_url
    max_tokens = model_max_tokens()
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
        if base_url:
            # langchain-openai sends the limit as `max_completion_tokens`, which llama.cpp's
            # server (and other OpenAI-compatible servers) ignore: without `max_tokens` too, a
            # small model generated 7,000 tokens for one answer.
            options["extra_body"] = {"max_tokens": max_tokens}
    return ChatOpenAI(**options)


def model_timeout_seconds() -> float:
    """Seconds one model request may take (``MEDIAVAULT_MODEL_TIMEOUT``, default 60).

    Validated with the other settings (graph/settings.py): at most an hour.
    """
    return load_settings().model_timeout


def model_max_retries() -> int:
    """Retries after a 429, 5xx or timed-out request (``MEDIAVAULT_MODEL_MAX_RETRIES``, default 3).

    Zero turns retries off; more than 10 would keep an email waiting for minutes.
    """
    return load_settings().model_max_retries


def model_max_tokens() -> int | None:
    """The most tokens one answer may have (``MEDIAVAULT_MODEL_MAX_TOKENS``; default: the
    server's own limit)."""
    return load_settings().model_max_tokens


def structured_output(model: BaseChatModel, schema: type[BaseModel]) -> Runnable[Any, Any]:
    """``model`` answering with an instance of ``schema``.

    A model served over the OpenAI API answers through a forced tool call
    (``function_calling``) rather than a ``json_schema`` response format: every server this
    agent can use supports tool calls, since the investigation needs them, while many
    OpenAI-compatible servers lack strict response formats, and the client's response-format
    path costs about twice the CPU per call.
    """
    openai = sys.modules.get("langchain_openai")  # loaded if, and only if, such a model exists
    if openai is not None and isinstance(model, openai.ChatOpenAI):
        forced: Runnable[Any, Any] = model.with_structured_output(schema,
                                                                  method="function_calling")
        return forced
    return model.with_structured_output(schema)


def chat_model_for(context: Context) -> BaseChatModel:
    """The chat model a run uses: the one passed in from Python, else the configured name."""
    if context.chat_model is not None:
        if not isinstance(context.chat_model, BaseChatModel):
            raise ConfigurationError("chat_model must be a LangChain BaseChatModel")
        return context.chat_model
    return build_chat_model(context.model)
