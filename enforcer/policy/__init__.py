"""Policy files: model (pydantic), loader (YAML with positions), selector, merge/decide."""
