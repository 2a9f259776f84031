"""Module: the base of every layer. Parameters are found by walking attributes.

A Module's parameters are the `Parameter` objects reachable from its attributes (directly, in
sub-Modules, or in lists, tuples and dicts of them), in insertion order. Buffers (running
statistics and other state that is not trained) are registered explicitly.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator

from retrograd import backend
from retrograd.autograd.grad_mode import no_grad
from retrograd.nn.parameter import Parameter
from retrograd.tensor import Tensor


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict(strict=False) could not match (PyTorch's repr)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class _Handle:
    def __init__(self, hooks: list, hook) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Module:
    """Base class for layers and models.

    >>> class Net(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = Linear(2, 1)
    ...     def forward(self, x):
    ...         return self.fc(x)
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffer_names", {})  # name -> persistent
        object.__setattr__(self, "_forward_pre_hooks", [])
        object.__setattr__(self, "_forward_hooks", [])

    def __setattr__(self, name: str, value) -> None:
        if "_buffer_names" not in self.__dict__ and isinstance(value, (Module, Parameter)):
            raise AttributeError(
                "cannot assign module before Module.__init__() call"
                if isinstance(value, Module)
                else "cannot assign parameters before Module.__init__() call"
            )
        object.__setattr__(self, name, value)

    # -- running -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks:
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook) -> _Handle:
        """hook(module, args) -> None or new args; runs before forward."""
        self._forward_pre_hooks.append(hook)
        return _Handle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> _Handle:
        """hook(module, args, output) -> None or new output; runs after forward."""
        self._forward_hooks.append(hook)
        return _Handle(self._forward_hooks, hook)

    # -- walking attributes --------------------------------------------------------------------
    def _members(self):
        """(name, value) for attributes holding Modules/Parameters, lists and dicts expanded."""
        for name, value in self.__dict__.items():
            # inline the common cases: a generator per plain attribute made every walk slow
            if isinstance(value, (Module, Parameter)):
                yield name, value
            elif isinstance(value, (list, tuple, dict)) and value:
                yield from _expand(name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, value in self._members():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in module._members():
                if isinstance(value, Parameter):
                    if remove_duplicate and id(value) in seen:
                        continue
                    seen.add(id(value))
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep `tensor` as state (saved in state_dict when persistent), not as a parameter."""
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        self._buffer_names[name] = persistent
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name in module._buffer_names:
                value = module.__dict__.get(name)
                if value is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- modes and bulk changes ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def apply(self, fn) -> Module:
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs) -> Module:
        """Convert parameters and buffers in place: floating ones to the dtype, all to the device.

        >>> model.to(retrograd.float64)
        """
        dtype, device = kwargs.get("dtype"), kwargs.get("device")
        for a in args:  # Tensor.to's reading of its arguments
            if isinstance(a, str) and (a.startswith("cuda") or a == "cpu"):
                device = a
            elif isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            else:
                dtype = a
        if dtype is not None:
            dtype = backend.as_dtype(dtype)
            if dtype.kind not in "fc":
                raise TypeError(
                    "nn.Module.to only accepts floating point or complex dtypes, but got desired "
                    f"dtype={dtype}"
                )

        def convert(t: Tensor) -> Tensor:
            # integer buffers (num_batches_tracked) keep their dtype, as in PyTorch
            return t.to(dtype=dtype if t.dtype.kind in "fc" else None, device=device)

        with no_grad():
            for _, p in self.named_parameters():
                p.data = convert(p).data
                if p.grad is not None:
                    p.grad = convert(p.grad)
            for m in self.modules():
                for name in m._buffer_names:
                    b = m.__dict__.get(name)
                    if b is not None:
                        object.__setattr__(m, name, convert(b))
        return self

    def float(self) -> Module:
        return self.to("float32")

    def double(self) -> Module:
        return self.to("float64")

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (detached unless keep_vars)."""
        out = OrderedDict()
        if prefix and not prefix.endswith("."):
            prefix += "."
        self._save_to(out, prefix, keep_vars)
        return out

    def _save_to(self, out: OrderedDict, prefix: str, keep_vars: bool) -> None:
        # PyTorch's order: a module's own parameters, its buffers, then each child's entries;
        # a tensor (or module) reachable under two names is saved under both, as in PyTorch,
        # so that tied weights load from a PyTorch state_dict
        members = list(self._members())
        for name, value in members:
            if isinstance(value, Parameter):
                out[prefix + name] = value if keep_vars else value.detach()
        for name, persistent in self._buffer_names.items():
            b = self.__dict__.get(name)
            if persistent and b is not None:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, value in members:
            if isinstance(value, Module):
                value._save_to(out, f"{prefix}{name}.", keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values into parameters and buffers; report missing/unexpected/mis-shaped keys.

        Nothing is modified unless every key matches (strict) and every shape agrees.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = state_dict[k]
            shape = tuple(getattr(value, "shape", ()))
            if shape != tuple(target.shape):
                errors.append(
                    f"size mismatch for {k}: copying a param with shape {_size(shape)} from "
                    f"checkpoint, the shape in current model is {_size(target.shape)}."
                )
                continue
            kind = getattr(getattr(value, "dtype", None), "kind", "f")
            if kind not in "biuf" and not (kind == "c" and target.dtype.kind == "c"):
                # checked here so that a failed copy can't leave earlier keys already copied
                errors.append(
                    f"dtype mismatch for {k}: cannot copy a param of dtype {value.dtype} from "
                    f"checkpoint into one of dtype {target.dtype}."
                )
        if strict:
            if unexpected:
                errors.insert(
                    0,
                    "Unexpected key(s) in state_dict: "
                    + ", ".join(f'"{k}"' for k in unexpected)
                    + ". ",
                )
            if missing:
                errors.insert(
                    0,
                    "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ",
                )
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(errors)
            )
        with no_grad():
            for k, target in own.items():
                if k in state_dict:
                    value = state_dict[k]
                    data = value.data if isinstance(value, Tensor) else value
                    if assign:
                        target.data = data
                    else:
                        target.data[...] = data
                        target._version[0] += 1
        return _IncompatibleKeys(missing, unexpected)

    # -- display ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, child in self.named_children():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        main = type(self).__name__ + "("
        if not lines:
            return main + ")"
        if len(lines) == 1 and not list(self.named_children()):
            return main + lines[0] + ")"
        return main + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return list(super().__dir__())


def _size(shape) -> str:
    return f"retrograd.Size({list(shape)})"


def _expand(name: str, value):
    if isinstance(value, (Module, Parameter)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _expand(f"{name}.{i}", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _expand(f"{name}.{k}", v)
