"""Containers: Sequential, ModuleList, ModuleDict (children stored as attributes "0", "1", ...)."""

from __future__ import annotations

from collections import OrderedDict

from retrograd.nn.module import Module


class _Indexed(Module):
    """Children held as attributes named "0", "1", ... so state_dict keys match PyTorch's."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def _items(self) -> list:
        return [v for k, v in self.__dict__.items() if k.isdigit()]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def append(self, module: Module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def _reset(self, modules) -> None:
        self.__dict__.pop("_forward_cache", None)
        for k in [k for k in self.__dict__ if k.isdigit()]:
            del self.__dict__[k]
        for m in modules:
            self.append(m)

    def __getitem__(self, idx):
        items = self._items()
        if isinstance(idx, slice):
            return (
                type(self)(items[idx]) if type(self) is not Sequential else Sequential(*items[idx])
            )
        n = len(items)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return items[idx]

    def __setitem__(self, idx: int, module: Module) -> None:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        setattr(self, str(idx % n), module)

    def __delitem__(self, idx) -> None:
        items = self._items()
        del items[idx]
        self._reset(items)

    def insert(self, index: int, module: Module) -> None:
        items = self._items()
        items.insert(index, module)
        self._reset(items)


class Sequential(_Indexed):
    """Modules applied one after another.

    >>> net = Sequential(Linear(2, 8), Tanh(), Linear(8, 1))
    """

    def __init__(self, *modules) -> None:
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            Module.__init__(self)
            for name, m in modules[0].items():
                setattr(self, name, m)
            return
        super().__init__(modules)

    def _items(self) -> list:
        return [v for _, v in self.named_children()]

    def forward(self, x):
        cache = self.__dict__.get("_forward_cache")
        modules = cache.modules if cache is not None else self._forward_modules()
        for module in modules:
            x = module(x)
        return x

    def _forward_modules(self) -> list:
        """The children in order, cached until an attribute is set or deleted (walking the
        attributes on every call cost 5-13 us of W1's ~140 us step). Children inside list or
        dict attributes can change unseen: those are never cached."""
        named = list(self.named_children())
        modules = [m for _, m in named]
        if all(self.__dict__.get(name) is m for name, m in named):
            self.__dict__["_forward_cache"] = _Children(modules)
        return modules

    def __setattr__(self, name: str, value) -> None:
        self.__dict__.pop("_forward_cache", None)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.pop("_forward_cache", None)
        super().__delattr__(name)


class _Children:
    """Sequential's cached list of children (a plain object: attribute walks skip it)."""

    __slots__ = ("modules",)

    def __init__(self, modules: list) -> None:
        self.modules = modules


class ModuleList(_Indexed):
    """A list of Modules whose parameters are registered."""

    def __init__(self, modules=None) -> None:
        super().__init__(modules or ())

    def forward(self, *args, **kwargs):  # pragma: no cover - not callable, as in PyTorch
        raise NotImplementedError("ModuleList is not callable: iterate over it instead")

    def __repr__(self) -> str:
        """PyTorch's layout: a run of identical entries is shown once, "(0-2): 3 x Block(...)"."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return "ModuleList()"
        runs = []  # [first index, last index, repr]
        for i, r in enumerate(reprs):
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        lines = []
        for first, last, r in runs:
            label = f"({first}): " if first == last else f"({first}-{last}): {last - first + 1} x "
            lines.append((label + r).replace("\n", "\n  "))
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of Modules whose parameters are registered."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        object.__setattr__(self, "_keys", [])
        for k, v in (modules or {}).items():
            self[k] = v

    def __getitem__(self, key: str) -> Module:
        if key not in self._keys:
            raise KeyError(key)
        return self.__dict__[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if key not in self._keys:
            self._keys.append(key)
        setattr(self, key, module)

    def __delitem__(self, key: str) -> None:
        self._keys.remove(key)
        del self.__dict__[key]

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def keys(self):
        return list(self._keys)

    def values(self):
        return [self.__dict__[k] for k in self._keys]

    def items(self):
        return [(k, self.__dict__[k]) for k in self._keys]

    def update(self, modules) -> None:
        for k, v in dict(modules).items():
            self[k] = v

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m
