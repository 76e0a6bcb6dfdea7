"""``set``: give flow variables a value."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import MapOf, TemplateField, Text
from ivrkit.steps.base import Step, next_option

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext

VARIABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Set(Step):
    kind = "set"
    summary = (
        "Sets flow variables (read back as `vars.<name>`). A value that is one `{{ … }}` keeps its type: "
        '`"{{ vars.tries + 1 }}"` is a number.'
    )
    body = MapOf(Text(VARIABLE_NAME, what="variable name (lower case, digits, _)"), TemplateField(), "variables")
    options = {"next": next_option()}
    dead_safe = True
    example = """\
remember_choice:
  set: {department: billing, attempts: "{{ vars.attempts + 1 }}"}
  next: billing_menu
"""

    def run(self, call: CallContext) -> Transition:
        values: dict[str, Any] = {}
        for name, template in self.value.items():
            assert isinstance(template, Template)
            values[name] = call.render(template)
        call.set_vars(values)
        return GoTo(self.next) if self.next else Finish("end-of-flow")
