"""The check shared by the face backbones' weight loaders: list what does not fit, then refuse.

Both :func:`mmfer.features.face.efficientnet_weights.load_weights` and the FER2013
Keras port (:mod:`mmfer.features.face.fer2013`) compare a weight file with their
network and raise one :class:`~mmfer.errors.ConfigError` naming every kind of
mismatch (missing, mis-shaped, unexpected), with a few examples of each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmfer.errors import ConfigError


def listed(template: str, items: Sequence[str], shown: int, *, sep: str = ", ") -> str | None:
    """One kind of mismatch as a phrase, or ``None`` when there is none of it.

    Parameters
    ----------
    template
        Format string with ``{n}`` (how many) and ``{shown}`` (the first examples).
    items
        The mismatching names (length ``n``).
    shown
        How many examples to name.
    sep
        Separator between the examples.

    Examples
    --------
    >>> listed("{n} missing tensors (e.g. {shown})", ["a", "b", "c"], 2)
    '3 missing tensors (e.g. a, b)'
    >>> listed("missing {shown}", [], 4) is None
    True
    """
    if not items:
        return None
    return template.format(n=len(items), shown=sep.join(items[:shown]))


def raise_if_problems(what: str, *problems: str | None) -> None:
    """Raise ``ConfigError("<what>: <problem>; <problem>")`` if any problem is given.

    Parameters
    ----------
    what
        The file and what it failed to be, e.g. ``"w.pth: not efficientnet_b0 weights in timm layout"``.
    problems
        Phrases from :func:`listed`; ``None`` entries (nothing of that kind) are skipped.
    """
    found = [p for p in problems if p]
    if found:
        raise ConfigError(f"{what}: {'; '.join(found)}")


def load_checked_state(model: Any, state: Mapping[str, Any], what: str) -> None:
    """Load ``state`` into ``model`` (a torch module) after checking every tensor's shape.

    Sets ``model.pretrained = True`` on success.

    Parameters
    ----------
    model
        The network (its ``state_dict()`` gives the expected shapes).
    state
        The converted weights, keyed like ``model.state_dict()``.
    what
        The file and what it failed to be, as for :func:`raise_if_problems`.

    Raises
    ------
    ConfigError
        ``"<what>: shape mismatch <k> (shape) != (shape); ..."`` (up to three named).
    """
    own = model.state_dict()
    bad = [
        f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape
    ]
    raise_if_problems(what, listed("shape mismatch {shown}", bad, 3, sep="; "))
    model.load_state_dict(state, strict=True)
    model.pretrained = True
