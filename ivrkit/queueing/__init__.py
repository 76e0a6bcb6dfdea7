"""Queue announcements and overflow: what a caller about to join a queue hears, and when they go elsewhere.

One concept per module: ``estimator`` (how long the wait is, and when there is too little data to say),
``wording`` (rounded minutes as prompts and spoken numbers), ``announce`` (position rules: nothing for the
next caller, never a higher position than heard) and ``overflow`` (conditions and the first rule that
matches). The queue step (:mod:`ivrkit.steps.queue`) puts them together; nothing here knows of steps.
"""

from ivrkit.queueing.announce import Announcement, AnnounceSpec, announcement
from ivrkit.queueing.estimator import ESTIMATORS, Estimate, estimate_wait
from ivrkit.queueing.overflow import OverflowRules, Rule, Situation, first_match
from ivrkit.queueing.wording import WORDINGS, wait_segments

__all__ = [
    "ESTIMATORS",
    "WORDINGS",
    "AnnounceSpec",
    "Announcement",
    "Estimate",
    "OverflowRules",
    "Rule",
    "Situation",
    "announcement",
    "estimate_wait",
    "first_match",
    "wait_segments",
]
