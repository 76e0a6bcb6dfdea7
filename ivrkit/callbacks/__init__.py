"""Callbacks: a caller asks to be called back (or hangs up after waiting) and keeps their place in line; the
dispatcher rings them back when an agent is free.

- ``model.py``: a callback, its states and attempt results (what the store keeps).
- ``settings.py``: a queue's ``callback:`` settings in the flow (mode, priority, retries, calling window).
- ``policy.py``: when to retry, and what an Originate reason or a dial status means for an attempt.
- ``numbers.py``: the number to call back, validated and normalised to E.164.
- ``answer.py``: the session on the answered callback leg (customer confirms, or the agent is told).
- ``live.py``: the live world's callback part, on the store.
- ``dispatcher.py`` / ``availability.py``: the AMI side: who is free, originate, watch, reconcile.
- ``running.py``: the dispatcher as one running part (lock, AMI session, thread) for ``serve`` and
  ``ivrkit dispatcher``; the AMI settings.

The flow side is the ``callback`` step (``ivrkit/steps/callback.py``) and the queue step's
``callback_on_hangup``; the store side is ``ivrkit/store/callbacks.py``.
"""
