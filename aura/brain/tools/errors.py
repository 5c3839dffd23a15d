"""The one exception a tool raises: a refused or malformed call."""


class ToolError(Exception):
    """A refused or malformed call; the message goes back to the model as an error result."""
