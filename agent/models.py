"""Model factory: turn a model name from the settings into a LangChain chat model.

Models are built lazily inside graph nodes, never at import time, so the graph (and
``langgraph dev``) starts without any API key.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from agent.context import ConfigurationError, Context

#: Per-request timeout and retries for hosted models (429/5xx/timeouts are retried with backoff).
OPENAI_TIMEOUT_SECONDS = 60.0
OPENAI_MAX_RETRIES = 3


def build_chat_model(name: str) -> BaseChatModel:
    """``rules`` (offline, deterministic) or ``openai:<model>`` (any OpenAI-compatible server)."""
    spec = name.strip()
    if spec == "rules":
        from agent.rules_model import RulesChatModel

        return RulesChatModel()
    if spec.startswith("openai:"):
        model = spec.removeprefix("openai:").strip()
        if not model:
            raise ConfigurationError("`openai:` needs a model name, e.g. openai:gpt-4o-mini")
        return _openai_model(model)
    raise ConfigurationError(f"unknown model {name!r}; use `rules` or `openai:<model>`")


def _openai_model(model: str) -> BaseChatModel:
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or None
    if api_key is None and base_url is None:
        raise ConfigurationError(
            f"model openai:{model} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
            "OpenAI-compatible server)"
        )
    from langchain_openai import ChatOpenAI

    options: dict[str, Any] = {
        "model": model,
        "timeout": OPENAI_TIMEOUT_SECONDS,
        "max_retries": OPENAI_MAX_RETRIES,
        "temperature": 0,
        # Local servers (vLLM, llama.cpp, Ollama) accept any key; the client insists on one.
        "api_key": api_key or "not-needed",
    }
    if base_url:
        options["base_url"] = base_url
    return ChatOpenAI(**options)


def chat_model_for(context: Context) -> BaseChatModel:
    """The chat model a run uses: the one passed in from Python, else the configured name."""
    if context.chat_model is not None:
        if not isinstance(context.chat_model, BaseChatModel):
            raise ConfigurationError("chat_model must be a LangChain BaseChatModel")
        return context.chat_model
    return build_chat_model(context.model)
