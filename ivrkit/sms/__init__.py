"""Text messages (SMS) to callers: a link to continue on the web instead of waiting in a queue.

The pipeline, one module per concept: a flow's ``sms`` step (``ivrkit/steps/sms.py``) checks the caller's
number (:mod:`numbers`) and asks the world to send; :class:`texts.OutboxTexts` signs the link
(:mod:`links`), renders the text and writes it to the durable outbox (``ivrkit/store/outbox.py``) before the
caller hears "sent"; :class:`worker.OutboxWorker`, a thread, sends due messages through a
:class:`gateway.Gateway` (:mod:`webhook`, or a development sink from :mod:`sinks`) with retries and back-off.
Operators choose the gateway in a YAML file (:mod:`settings`).

Nothing is imported here: the flow loader imports :mod:`numbers` and must not pull in the rest.
"""
