"""Language models for the research agents: one small interface, one adapter per wire format.

``get_model(model_id)`` resolves ``anthropic:<model>``, ``openai:<model>``,
``openai-compatible:<model>@<url>`` or ``offline``; the offline rule-driven policy is the
default when no model is configured.
Names are imported lazily (PEP 562): the provider SDKs load only when their model is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantdesk.quant_core._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from quantdesk.agents.anthropic_model import AnthropicModel
    from quantdesk.agents.messages import (
        Message,
        ModelRequest,
        ModelResponse,
        StreamEvent,
        ToolCall,
        ToolDefinition,
        ToolResult,
        Usage,
    )
    from quantdesk.agents.model import (
        Model,
        ProviderError,
        StructuredOutputError,
        StructuredResult,
        get_model,
        register_model,
        request_structured,
    )
    from quantdesk.agents.model_catalog import ModelInfo, model_info, training_cutoff
    from quantdesk.agents.offline_model import OfflineModel, ResearchPlan
    from quantdesk.agents.openai_model import OpenAIModel, openai_compatible_model
    from quantdesk.agents.recording import RecordingModel, ReplayMismatchError, ReplayModel
    from quantdesk.agents.retry import RetryPolicy
    from quantdesk.agents.testing import FunctionModel, SchemaToolModel
    from quantdesk.agents.usage import (
        Budget,
        BudgetedModel,
        BudgetExceededError,
        Price,
        UsageLedger,
    )

_EXPORTS: dict[str, str] = {
    "Message": "messages",
    "ModelRequest": "messages",
    "ModelResponse": "messages",
    "StreamEvent": "messages",
    "ToolCall": "messages",
    "ToolDefinition": "messages",
    "ToolResult": "messages",
    "Usage": "messages",
    "Model": "model",
    "ProviderError": "model",
    "StructuredOutputError": "model",
    "StructuredResult": "model",
    "get_model": "model",
    "register_model": "model",
    "request_structured": "model",
    "RetryPolicy": "retry",
    "AnthropicModel": "anthropic_model",
    "OpenAIModel": "openai_model",
    "openai_compatible_model": "openai_model",
    "Budget": "usage",
    "BudgetExceededError": "usage",
    "BudgetedModel": "usage",
    "Price": "usage",
    "UsageLedger": "usage",
    "RecordingModel": "recording",
    "ReplayMismatchError": "recording",
    "ReplayModel": "recording",
    "FunctionModel": "testing",
    "SchemaToolModel": "testing",
    "ModelInfo": "model_catalog",
    "model_info": "model_catalog",
    "training_cutoff": "model_catalog",
    "OfflineModel": "offline_model",
    "ResearchPlan": "offline_model",
}

__all__ = [
    "AnthropicModel",
    "Budget",
    "BudgetExceededError",
    "BudgetedModel",
    "FunctionModel",
    "Message",
    "Model",
    "ModelInfo",
    "ModelRequest",
    "ModelResponse",
    "OfflineModel",
    "OpenAIModel",
    "Price",
    "ProviderError",
    "RecordingModel",
    "ReplayMismatchError",
    "ReplayModel",
    "ResearchPlan",
    "RetryPolicy",
    "SchemaToolModel",
    "StreamEvent",
    "StructuredOutputError",
    "StructuredResult",
    "ToolCall",
    "ToolDefinition",
    "ToolResult",
    "Usage",
    "UsageLedger",
    "get_model",
    "model_info",
    "openai_compatible_model",
    "register_model",
    "request_structured",
    "training_cutoff",
]


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)
