"""u-μP metadata on plain ``torch.nn.Parameter`` objects, kept through every parameter swap.

The reference library's u-μP optimizers (``unit_scaling.optim``) accept a parameter only when
``unit_scaling.parameter.has_parameter_data`` says yes: ``mup_type`` is one of
``"weight" | "bias" | "norm" | "output"`` and ``mup_scaling_depth`` is ``None`` or an int.

One mechanism keeps those tags: **the module owns them.** A module built on
:class:`KeepsMupTags` records the tags of each of its tagged parameters and writes them onto
whichever parameter object torch puts in its place:

- every insertion goes through the module's ``_parameters`` mapping (:class:`TaggedParameters`),
  which tags the incoming ``nn.Parameter``: ``register_parameter`` / attribute assignment,
  ``parallelize_module``, ``fully_shard`` (its sharded and unsharded parameters, at every
  ``reshard()`` / ``unshard()``), ``load_state_dict(assign=True)``, ``.to('meta')``, and a
  module copied by ``copy.deepcopy``, ``pickle`` or ``torch.multiprocessing`` (the mapping is
  rebuilt by insertion);
- the two paths that keep the parameter object but swap its contents, class and ``__dict__``
  (``torch.utils.swap_tensors``: ``.to()`` / ``.half()`` ... under
  ``torch.__future__.set_swap_module_params_on_conversion(True)``, and ``load_state_dict`` under
  the same flag) run through ``_apply`` and ``_load_from_state_dict``, which re-tag afterwards.

The mechanism rests on three of ``nn.Module``'s private members, for want of a public hook for
"a parameter object was replaced": ``_parameters`` (replaced by the dict subclass
:class:`TaggedParameters`), ``_apply`` and ``_load_from_state_dict`` (overridden, each calling
torch's own).

Tags changed on the parameter itself win: before every swap and at every insertion the module
first reads back the current parameter's tags. A parameter on its own keeps its tags through
``copy.deepcopy`` (a ``__deepcopy__`` hook) and through ``pickle`` / ``torch.save`` +
``torch.load`` (also ``weights_only=True``): the tags are plain ``str`` / ``int`` / ``None``
attributes that torch's own ``nn.Parameter`` reduction saves as the parameter's state, and a
``__getstate__`` hook leaves the hooks themselves out of that state.
"""
import copy
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

__all__ = ["MUP_TYPES", "KeepsMupTags", "TaggedParameters", "mup_tags", "tag_parameter"]

MUP_TYPES = ("weight", "bias", "norm", "output")
_HOOKS = ("__deepcopy__", "__getstate__")
Tags = Tuple[str, Optional[int]]


def _check_tags(mup_type: Any, mup_scaling_depth: Any) -> None:
    if mup_type not in MUP_TYPES:
        raise ValueError(f"tag_parameter: mup_type must be one of {MUP_TYPES}, got {mup_type!r}")
    if mup_scaling_depth is not None and (
        isinstance(mup_scaling_depth, bool) or not isinstance(mup_scaling_depth, int)
    ):
        raise TypeError(
            f"tag_parameter: mup_scaling_depth must be None or an int, got {mup_scaling_depth!r}"
        )


def tag_parameter(
    parameter: nn.Parameter, mup_type: str, mup_scaling_depth: Optional[int] = None
) -> nn.Parameter:
    """Writes u-μP metadata onto ``parameter`` (in place) and returns it. Also accepts a
    parameter whose data is a DTensor (``nn.Parameter(dtensor)`` is a DTensor flagged as a
    parameter)."""
    if not isinstance(parameter, nn.Parameter):
        raise TypeError(f"tag_parameter: expected an nn.Parameter, got {type(parameter).__name__}")
    _check_tags(mup_type, mup_scaling_depth)
    setattr(parameter, "mup_type", mup_type)  # plain attributes, not declared by Parameter
    setattr(parameter, "mup_scaling_depth", mup_scaling_depth)
    for name, hook in (("__deepcopy__", _deepcopy), ("__getstate__", _getstate)):
        # (Re)bind unless bound to this object already: a __dict__ swapped in from another
        # parameter brings hooks bound to that one.
        if getattr(parameter.__dict__.get(name), "__self__", None) is not parameter:
            setattr(parameter, name, hook.__get__(parameter))
    return parameter


def mup_tags(parameter: Any) -> Optional[Tags]:
    """``(mup_type, mup_scaling_depth)`` when ``parameter`` carries valid u-μP tags, else None."""
    state = getattr(parameter, "__dict__", {})
    if "mup_type" not in state or "mup_scaling_depth" not in state:
        return None
    tags = (state["mup_type"], state["mup_scaling_depth"])
    try:
        _check_tags(*tags)
    except (TypeError, ValueError):
        return None
    return tags


def _slot_names(cls: type) -> List[str]:
    """The names of the ``__slots__`` of ``cls`` and its bases (what pickling saves besides the
    instance's ``__dict__``)."""
    names: List[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


def _getstate(self: torch.Tensor) -> Any:
    # What pickling saves as the parameter's state (torch's Parameter and Tensor reductions ask
    # for it): the instance attributes and slots, without the bound hooks, which do not pickle.
    state = {k: v for k, v in self.__dict__.items() if k not in _HOOKS}
    slots = {n: getattr(self, n) for n in _slot_names(type(self)) if hasattr(self, n)}
    return (state, slots) if slots else state


def _deepcopy(self: torch.Tensor, memo: Dict[int, Any]) -> torch.Tensor:
    # The class's own deepcopy (nn.Parameter's, or torch.Tensor's for a DTensor parameter), then
    # the instance attributes it leaves out, then the hooks again.
    if id(self) in memo:
        return memo[id(self)]
    result = type(self).__deepcopy__(self, memo)
    for key, value in self.__dict__.items():
        if key not in _HOOKS and key not in result.__dict__:
            setattr(result, key, copy.deepcopy(value, memo))
    tags = mup_tags(self)
    return tag_parameter(result, *tags) if tags else result


class TaggedParameters(dict):
    """A module's ``_parameters``: tags every ``nn.Parameter`` stored under a tagged name.

    ``tags`` maps a parameter name to its ``(mup_type, mup_scaling_depth)``. A parameter that
    arrives with valid tags of its own keeps them (and they become the record); one without
    takes the tags of the parameter it replaces, else the record. Values that are not
    ``nn.Parameter`` (``None``, the plain tensors of ``torch.func.functional_call``) are stored
    untouched.
    """

    def __init__(self, items: Optional[Mapping[str, Any]] = None,
                 tags: Optional[Mapping[str, Tags]] = None) -> None:
        super().__init__()
        self.tags: Dict[str, Tags] = dict(tags or {})
        for name, value in dict(items or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: Any) -> None:
        if name in self.tags and isinstance(value, nn.Parameter):
            tags = mup_tags(value) or mup_tags(dict.get(self, name)) or self.tags[name]
            self.tags[name] = tags
            tag_parameter(value, *tags)
        super().__setitem__(name, value)

    def current_tags(self) -> Dict[str, Tags]:
        """The record, updated with the tags the current parameters carry."""
        return {name: mup_tags(dict.get(self, name)) or tags for name, tags in self.tags.items()}

    def sync(self) -> None:
        """Reads back the tags of the current parameters, then re-tags any that lost them."""
        self.tags = self.current_tags()
        for name, tags in self.tags.items():
            value = dict.get(self, name)
            if isinstance(value, nn.Parameter):
                tag_parameter(value, *tags)

    def __reduce__(self) -> Any:
        # Rebuilt by insertion (pickle, deepcopy, torch.multiprocessing), so the parameters,
        # which torch's own reductions may rebuild without their state, are re-tagged.
        return (TaggedParameters, (dict(self), self.current_tags()))


class KeepsMupTags(nn.Module):
    """A mixin for modules whose parameters carry u-μP tags (see the module docstring).

    Call :meth:`_keep_mup_tags` once, after the parameters are registered."""

    def _keep_mup_tags(self, tags: Mapping[str, Tags]) -> None:
        for name, (mup_type, depth) in tags.items():
            parameter = self._parameters[name]
            if parameter is not None:
                tag_parameter(parameter, mup_type, depth)
        parameters = self._parameters
        known = dict(parameters.tags) if isinstance(parameters, TaggedParameters) else {}
        known.update(tags)
        # nn.Module.__setattr__ stores a dict-valued attribute as a plain attribute.
        self._parameters = TaggedParameters(self._parameters, known)

    def _sync_mup_tags(self) -> None:
        parameters = self.__dict__.get("_parameters")
        if isinstance(parameters, TaggedParameters):
            parameters.sync()

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # Under swap_module_params_on_conversion, nn.Module._apply swaps each parameter's
        # contents, class and __dict__ in place (torch.utils.swap_tensors): re-tag afterwards.
        self._sync_mup_tags()
        result = super()._apply(fn, *args, **kwargs)
        self._sync_mup_tags()
        return result

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        # load_state_dict swaps in place under the same flag.
        self._sync_mup_tags()
        super()._load_from_state_dict(*args, **kwargs)
        self._sync_mup_tags()

