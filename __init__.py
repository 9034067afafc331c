"""quantdesk: a multi-agent research assistant for quantitative trading research.

The repository root is the ``quantdesk`` package; its folders import as
``quantdesk.<folder>`` (``quant_core``, ``rag``, ``knowledge_graph``, ``agents``,
``tools``, ``skills``, ``evals``, ``cli``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
