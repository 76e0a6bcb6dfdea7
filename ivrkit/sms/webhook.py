"""The generic HTTP gateway: most SMS providers take one HTTP request per message, so one configurable class
covers them (URL, method, headers, a body template, a timeout).

Templates (headers and body) run in the flows' Jinja2 sandbox and see ``to``, ``text``, ``key`` (the
idempotency key), ``attempt``, ``id`` and ``env`` (environment variables, for secrets kept out of the file:
``"Bearer {{ env.SMS_TOKEN }}"``). The request always carries ``Idempotency-Key: <key>``, so a provider
that honours it drops a retry of a message it already took.

Answers: 2xx is sent; 408, 425, 429, 5xx, timeouts and connection errors are temporary (retried, after
``Retry-After`` when the gateway gives one); other statuses (4xx, and 3xx: redirects are not followed, a
message must not be re-posted somewhere else) are permanent.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message as Headers
from typing import Any, ClassVar

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.expressions import ExpressionError, Template
from ivrkit.flow.fields import Duration, MapOf, Option, TemplateField, Text
from ivrkit.sms.gateway import Gateway, PermanentError, TemporaryError
from ivrkit.sms.message import Message

URL = re.compile(r"^https?://[^\s/?#]+\S*$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
METHODS = ("POST", "PUT", "PATCH", "GET")
DEFAULT_BODY = '{"to": {{ to | tojson }}, "text": {{ text | tojson }}, "reference": {{ key | tojson }}}'
TEMPORARY_STATUSES = frozenset({408, 425, 429})
MAX_RESPONSE_BYTES = 65536
IDEMPOTENCY_HEADER = "Idempotency-Key"
SAMPLE = Message("sample-key", "+4915112345678", "sample text")  # what templates are tried with at start-up


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


@dataclass
class WebhookGateway(Gateway):
    kind: ClassVar[str] = "webhook"
    summary: ClassVar[str] = "An HTTP request per message (most SMS providers' APIs)."
    options: ClassVar[dict[str, Option]] = {
        "url": Option(Text(URL, what="http(s) URL"), "Where the request goes.", required=True),
        "method": Option(Text(choices=METHODS, what="HTTP method"), "The request method.", "POST"),
        "headers": Option(
            MapOf(Text(HEADER_NAME, what="header name"), TemplateField(), "headers"),
            "Request headers; values are templates (`Bearer {{ env.SMS_TOKEN }}`).",
            {},
        ),
        "body": Option(
            TemplateField(),
            "The request body, a template; JSON with `to`, `text` and `reference` (the key) by default.",
        ),
        "timeout": Option(Duration(maximum=300), "Longest wait for the gateway's answer; then it is retried.", 10.0),
        "id_field": Option(Text(what="field name"), "The field of a JSON answer that holds the provider's id.", "id"),
    }

    url: str
    method: str = "POST"
    headers: dict[str, Template] | None = None
    body: Template | None = None
    timeout: float = 10.0
    id_field: str = "id"

    def __post_init__(self) -> None:
        self.headers = dict(self.headers or {})
        if self.body is None:
            self.body = Template.compile(DEFAULT_BODY)
        if not any(name.lower() == "content-type" for name in self.headers) and self.body.source == DEFAULT_BODY:
            self.headers["Content-Type"] = Template.compile("application/json")
        self._opener = urllib.request.build_opener(_NoRedirect)

    def describe(self) -> str:
        return f"webhook {self.method} {self.url}"

    def check(self, diagnostics: Diagnostics) -> None:
        """Render every template once with a sample message, so a typo or a missing environment variable is
        reported at its line when the server starts, not when the first caller asks for a text."""
        for template in self._templates():
            try:
                template.render_text(_scope(SAMPLE))
            except ExpressionError as error:
                location = error.location
                if location is not None:
                    diagnostics.error(location, f"template failed: {error.reason}",
                                      "templates see to, text, key, attempt, id and env.NAME, an environment variable: "
                                      "is it set where ivrkit serve runs?")

    def _templates(self) -> list[Template]:
        assert self.headers is not None and self.body is not None
        return [*self.headers.values(), self.body]

    def _request(self, message: Message) -> urllib.request.Request:
        """The HTTP request for a message: templates rendered, our idempotency header in place of any other."""
        assert self.headers is not None and self.body is not None
        scope = _scope(message)
        headers = {name: template.render_text(scope) for name, template in self.headers.items()}
        headers = {name: value for name, value in headers.items() if name.lower() != IDEMPOTENCY_HEADER.lower()}
        headers[IDEMPOTENCY_HEADER] = message.key
        data = None if self.method == "GET" else self.body.render_text(scope).encode("utf-8")
        return urllib.request.Request(self.url, data=data, headers=headers, method=self.method)

    def send(self, message: Message) -> str:
        try:
            request = self._request(message)
        except ExpressionError as error:
            raise TemporaryError(f"the webhook template failed: {error.reason}") from None
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                answer = response.read(MAX_RESPONSE_BYTES)
        except ValueError as error:  # http.client refuses a header value with a line break, for one
            raise PermanentError(f"the request cannot be sent: {error}") from None
        except urllib.error.HTTPError as error:
            with error:
                detail = error.read(300).decode("utf-8", "replace").strip()
            raise _refusal(error.code, detail, error.headers) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise TemporaryError(f"{self.url} not reached: {reason}") from None
        return self._provider_id(answer) or message.key

    def _provider_id(self, answer: bytes) -> str | None:
        try:
            data = json.loads(answer)
        except ValueError:
            return None
        value = data.get(self.id_field) if isinstance(data, dict) else None
        return None if value is None or isinstance(value, (dict, list)) else str(value)


def _scope(message: Message) -> dict[str, Any]:
    return {
        "to": message.to,
        "text": message.text,
        "key": message.key,
        "attempt": message.attempt,
        "id": message.id,
        "env": dict(os.environ),
    }


def _refusal(status: int, detail: str, headers: Headers) -> TemporaryError | PermanentError:
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in TEMPORARY_STATUSES or status >= 500:
        return TemporaryError(text, _retry_after(headers.get("Retry-After")))
    if 300 <= status < 400:
        location = headers.get("Location") or "elsewhere"
        return PermanentError(f"{text} (redirect to {location}: put the final URL in the SMS config)")
    return PermanentError(text)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare for APIs and taken as no advice)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
