"""placeholder, replaced in this change"""
from typing import Any
def check_flows(flows: Any, diagnostics: Any, catalog: Any = None) -> None:
    return None
