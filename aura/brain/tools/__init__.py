"""The tools the Layer 1 model may call. Each tool is one module holding its name, description,
JSON schema and handler (a `TOOL`); `catalogue` lists them in the order the model sees them.

Around them: `validation` (arguments checked by the `jsonschema` library), `sandbox` (file tools stay
in the project, off the brain's data folder, key files and the task file), `filecache` (reads),
`web` (public-only HTTP), `toolbox` (the dispatch: every failure becomes an error result).
"""

from .base import Planner, Tool, ToolError, ToolResult
from .catalogue import TOOLS, definitions, validate
from .sandbox import inside_project
from .toolbox import Toolbox

__all__ = [
    "TOOLS",
    "Planner",
    "Tool",
    "ToolError",
    "ToolResult",
    "Toolbox",
    "definitions",
    "inside_project",
    "validate",
]
