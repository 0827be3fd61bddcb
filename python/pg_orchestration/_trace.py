"""W3C trace context for start(): the run becomes a child span of the caller's span.

The SQL reads a "traceparent" key of the run's context. When the opentelemetry API is
importable and a valid span is current, its traceparent goes there; otherwise (no
package, no span) nothing does and the run starts a trace of its own. opentelemetry is
optional: it is imported when start() is called, never required.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional

__all__ = ["current_traceparent", "with_traceparent"]


def current_traceparent() -> Optional[str]:
    """The current OpenTelemetry span as a W3C traceparent, or None."""
    try:
        trace: Any = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def with_traceparent(context: dict[str, Any]) -> dict[str, Any]:
    """context with the current span's traceparent added, unless it has one already."""
    if "traceparent" not in context:
        traceparent = current_traceparent()
        if traceparent is not None:
            context["traceparent"] = traceparent
    return context
