"""``replace_embeddings``: a model's ``torch.nn.Embedding`` layers become unit-scaled ones, in
place, keeping their parameters.

The new module keeps the very ``nn.Parameter`` of the one it replaces, so nothing about the
weight changes (values, dtype, device, ``requires_grad``, optimizer state keyed by it) and every
tie stays: a language model's head that shares the input embeddings' weight (Hugging Face's
``tie_word_embeddings``) still shares it. The layer's settings (``padding_idx``, ``max_norm``,
``norm_type``) carry over, checked by the unit-scaled module; the token count of the gradient's
scale is the caller's (docs/SCALING.md). Only exact ``nn.Embedding`` instances are replaced: a
subclass may compute something else in its forward (a scaled lookup, say), which a plain
unit-scaled lookup would silently drop.
"""
from typing import Dict, Iterable, List, Optional, Tuple

from torch import nn

from . import _arguments
from ._options import Options
from .modules import Embedding

__all__ = ["replace_embeddings"]


def _targets(model: nn.Module,
             names: Optional[Iterable[str]]) -> List[Tuple[str, nn.Embedding]]:
    """(qualified name, layer) of the layers to replace: every exact ``nn.Embedding`` (each
    object once), or the named ones, which must be exact ``nn.Embedding`` layers."""
    if names is None:
        found, seen = [], set()
        for name, module in model.named_modules(remove_duplicate=False):
            if type(module) is nn.Embedding and id(module) not in seen:
                seen.add(id(module))
                found.append((name, module))
        return found
    if isinstance(names, str):
        raise TypeError(f"{_arguments.PREFIX}replace_embeddings' names must be an iterable of "
                        f"qualified module names, got the str {names!r}")
    found = []
    for name in names:
        _arguments.string("a name in replace_embeddings' names", name)
        try:
            module = model.get_submodule(name)
        except AttributeError as error:
            raise ValueError(f"{_arguments.PREFIX}replace_embeddings: the model has no module "
                             f"{name!r}") from error
        if type(module) is not nn.Embedding:
            raise TypeError(f"{_arguments.PREFIX}replace_embeddings: {name or 'the model'} is "
                            f"{type(module).__name__}, not torch.nn.Embedding")
        found.append((name, module))
    return found


def _unit_scaled(layer: nn.Embedding, options: Options) -> Embedding:
    """The unit-scaled layer around ``layer``'s own parameter (its settings checked first)."""
    weight = layer.weight
    replacement = Embedding(
        layer.num_embeddings, layer.embedding_dim, layer.padding_idx, layer.max_norm,
        layer.norm_type, layer.scale_grad_by_freq, layer.sparse, _weight=weight.detach(),
        _freeze=not weight.requires_grad, token_multiplier=options.token_multiplier,
        num_tokens=options.num_tokens)
    replacement.weight = weight  # the same Parameter: ties, optimizer state, requires_grad
    replacement.train(layer.training)
    return replacement


def replace_embeddings(model: nn.Module, names: Optional[Iterable[str]] = None, *,
                       token_multiplier: float = 1.0,
                       num_tokens: Optional[int] = None) -> nn.Module:
    """Replaces, in place, the ``torch.nn.Embedding`` layers of ``model`` by unit-scaled
    :class:`~unit_scaling_cpp.Embedding` layers around the same parameters.

    Each replacement keeps its layer's ``nn.Parameter`` object, so the weight is unchanged
    (values, dtype, device, ``requires_grad``) and every tie is kept (a Hugging Face language
    model's head still shares the input embeddings' weight), with the layer's ``padding_idx``,
    ``max_norm`` and ``norm_type``. Every layer is checked before any is replaced: on an error
    the model is unchanged. Apply it after loading a checkpoint (a loaded model has plain
    ``nn.Embedding`` layers again) and before building the optimizer's state.

    Args:
        model: the model (any ``nn.Module``; a bare ``nn.Embedding`` is returned replaced).
        names: the qualified names of the layers to replace (``model.get_submodule``'s), each an
            exact ``nn.Embedding``. Default: every exact ``nn.Embedding`` (a subclass, which may
            compute something else, is left alone).
        token_multiplier: keyword-only, the token count of every replacement's gradient scale
            (docs/SCALING.md). Default: 1.
        num_tokens: keyword-only, likewise. Default: none.

    Returns:
        ``model`` itself (or the replacement of a bare ``nn.Embedding``).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``names`` is a str; a named layer is not
            an exact ``nn.Embedding``.
        ValueError: a named layer does not exist; a layer's settings are not supported by unit
            scaling (``scale_grad_by_freq``, ``sparse``) or the token count is bad.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{_arguments.PREFIX}replace_embeddings' model must be a "
                        f"torch.nn.Module, got {type(model).__name__}")
    options = Options(token_multiplier=token_multiplier, num_tokens=num_tokens)
    options.check_types()
    replacements: Dict[int, Embedding] = {}
    for name, layer in _targets(model, names):
        try:  # every layer checked (by building its replacement) before any is swapped in
            replacements[id(layer)] = _unit_scaled(layer, options)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} (layer {name or 'model'!r})") from error
    if type(model) is nn.Embedding:
        return replacements.get(id(model), model)
    for parent in model.modules():
        for child_name, child in list(parent.named_children()):
            if id(child) in replacements:
                setattr(parent, child_name, replacements[id(child)])
    return model
