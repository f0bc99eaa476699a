"""The one cattrs Converter: JSON data to models and back.

Decoding is strict about JSON kinds (a string field given 5, or an int field given
`true`, is an error; nothing is coerced), ignores unknown fields, and keeps unknown
enum values. It runs in two tiers:

* the fast path: one function per type, generated once (Python source compiled with
  `exec`), doing only cheap `__class__` checks and filling the instance's slots;
* on any failure, `_locate` walks the same data and types slowly to name the first
  bad field (`items[3].status`), and `structure` raises `ResponseValidationError`.

Both tiers dispatch on one function, `_shape` (which kind of type this is), each with one
entry per shape (`_EMITTERS`, `_LOCATORS`). The generated source is registered in
`linecache`, as attrs and cattrs do, so a traceback through a hook shows its lines.

Field renames, if the API ever needs them, belong here (`_RENAMES`), not in the models.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import re
import types
import typing
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, Union

import attrs

from ._errors import ResponseValidationError
from ._validate import shorten
from .models import POSITIVE_ID, AgentRunWithLogs, Page, _Model, _OpenStrEnum, use_codec

if TYPE_CHECKING:
    import cattrs

__all__ = ["get_converter", "parse_timestamp", "structure", "unstructure", "with_request_id"]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]

_NoneType = type(None)
_UTC = timezone.utc
_SIMPLE_CLASSES = (str, int, bool, float, dict, list)
_FACTORY: Any = type(attrs.Factory(list))

# {model class: {python field name: JSON key}} for fields whose wire name differs.
_RENAMES: dict[type, dict[str, str]] = {}


class _Invalid(Exception):
    """Raised by the fast path; the message (when set) says what was wrong."""


# --------------------------------------------------------------------------- messages


def _kind(value: object) -> str:
    """The JSON name of a value's kind."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    names.update({list: "array", dict: "object"})
    return names.get(value.__class__, type(value).__name__)


def _show(value: object) -> str:
    """The kind of a value and a short rendering of it."""
    if value is None or isinstance(value, (list, dict)):
        return _kind(value)
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return f"{_kind(value)} {shorten(text, 40)}"


def _describe(tp: Any) -> str:
    """A short name for what a type accepts."""
    names = {str: "string", int: "integer", bool: "boolean", float: "number"}
    if tp in names:
        return names[tp]
    if tp is _NoneType:
        return "null"
    if tp is datetime:
        return "timestamp"
    if _is_open_enum(tp):
        return f"string ({tp.__name__})"
    origin = typing.get_origin(tp)
    if origin is list or tp is list:
        return "array"
    if origin is dict or tp is dict or _is_attrs(tp):
        return "object"
    return getattr(tp, "__name__", repr(tp))


# ------------------------------------------------------------------------- timestamps

_ISO = re.compile(
    r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})"
    r"(?:[Tt ]([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:[.,]([0-9]+))?)?)?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:[.,]([0-9]+))?)?)?)?"
)


def _micros(fraction: str | None) -> int:
    """Microseconds from the digits after a decimal point (extra digits dropped)."""
    return int((fraction or "0")[:6].ljust(6, "0"))


def _parse_iso_slow(text: str) -> datetime:
    """Parse the ISO 8601 forms `datetime.fromisoformat` rejects on older Pythons."""
    if text[-1:] in ("Z", "z"):  # Python < 3.11 rejects a trailing Z
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00")
        except ValueError:
            pass
    match = _ISO.fullmatch(text)
    if match is None:
        raise _Invalid(f"invalid ISO 8601 timestamp {text[:40]!r}")
    g = match.groups()
    try:
        tz: timezone | None = None
        if g[7]:
            tz = _UTC
        elif g[8]:
            offset = timedelta(
                hours=int(g[9]),
                minutes=int(g[10] or 0),
                seconds=int(g[11] or 0),
                microseconds=_micros(g[12]),
            )
            tz = timezone(-offset if g[8] == "-" else offset)
        return datetime(
            int(g[0]),
            int(g[1]),
            int(g[2]),
            int(g[3] or 0),
            int(g[4] or 0),
            int(g[5] or 0),
            _micros(g[6]),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise _Invalid(f"invalid ISO 8601 timestamp {text[:40]!r}: {exc}") from None


def parse_timestamp(value: object) -> datetime:
    """An ISO 8601 string as an aware datetime; a naive one is taken as UTC."""
    if value.__class__ is not str:
        raise _Invalid(f"expected an ISO 8601 timestamp string, got {_show(value)}")
    text: str = value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_iso_slow(text)
    if parsed.tzinfo is not None:
        return parsed
    # Re-parsing with an offset appended is the cheapest way to attach UTC (`replace`
    # costs ~5x more); a date-only text would read "+" as the date/time separator and
    # stay naive, hence the check.
    try:
        aware = datetime.fromisoformat(text + "+00:00")
    except ValueError:
        aware = parsed
    if aware.tzinfo is not None:
        return aware
    p = parsed
    return datetime(p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond, _UTC)


# ----------------------------------------------------------------------- type helpers


def _is_attrs(tp: Any) -> bool:
    return attrs.has(typing.get_origin(tp) or tp)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _is_open_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, _OpenStrEnum)


def _substitute(tp: Any, mapping: dict[Any, Any]) -> Any:
    """`tp` with its type variables replaced from `mapping` (unknown ones become Any)."""
    if isinstance(tp, TypeVar):
        return mapping.get(tp, Any)
    args = typing.get_args(tp)
    if not args:
        return tp
    new = tuple(_substitute(arg, mapping) for arg in args)
    if _union_args(tp) is not None:
        return Union[new]  # noqa: UP007 - built from a runtime tuple
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        return types.GenericAlias(origin, new)
    return origin[new]


def _shape(tp: Any) -> str:
    """Which kind of type `tp` is: the one dispatch both tiers follow.

    The fast path (`_EMITTERS`) and the error locator (`_LOCATORS`) each hold one entry
    per shape, so they cannot disagree on what a type is (a test checks both cover
    every shape)."""
    if tp is Any or tp is object:
        return "any"
    if _classes(tp) is not None:
        return "classes"
    if _union_args(tp) is not None:
        return "union"
    if _is_open_enum(tp):
        return "enum"
    if tp is datetime:
        return "datetime"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "literal"
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    if _is_attrs(tp):
        return "attrs"
    return "unknown"


@attrs.frozen
class _Field:
    name: str
    key: str
    type: Any
    default: Any  # attrs.NOTHING when required
    positive: bool = False  # an id: an int > 0 (models mark it with POSITIVE_ID)


@functools.cache
def _fields(tp: Any) -> list[_Field]:
    """The init fields of an attrs class (or generic alias), with resolved types."""
    origin = typing.get_origin(tp) or tp
    mapping = dict(zip(getattr(origin, "__parameters__", ()), typing.get_args(tp), strict=False))
    hints = typing.get_type_hints(origin)
    renames = _RENAMES.get(origin, {})
    return [
        _Field(
            a.name,
            renames.get(a.name, a.name),
            _substitute(hints[a.name], mapping),
            a.default,
            bool(a.metadata.get(POSITIVE_ID)),
        )
        for a in attrs.fields(origin)
        if a.init
    ]


# ------------------------------------------------------------------------- fast path


_compiled = itertools.count(1)


class _Source:
    """Lines of generated code plus the objects they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"_Invalid": _Invalid}
        self._counter = itertools.count()

    def bind(self, obj: object, hint: str) -> str:
        name = f"_{hint}{next(self._counter)}"
        self.namespace[name] = obj
        return name

    def local(self, hint: str) -> str:
        return f"{hint}{next(self._counter)}"

    def compile(self, name: str, tp: Any) -> Any:
        """Define function `name` (decoding `tp`) from the lines; its source is registered
        in `linecache` under a unique file name, as attrs and cattrs do, so a traceback
        through it shows the generated lines."""
        source = "\n".join(self.lines) + "\n"
        filename = f"<codegen_async structure {_type_name(tp)} #{next(_compiled)}>"
        exec(compile(source, filename, "exec"), self.namespace)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        return self.namespace[name]


def _classes(tp: Any) -> tuple[type, ...] | None:
    """The exact classes that satisfy `tp` by class alone, or None if more is needed.

    Object keys are not checked for `dict[str, Any]`: JSON keys are always strings.
    """
    if tp is float:
        return (float, int)
    if tp in _SIMPLE_CLASSES or tp is _NoneType:
        return (tp,)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and args in ((), (Any,)):
        return (list,)
    if origin is dict and args in ((), (Any, Any), (str, Any)):
        return (dict,)
    return None


def _class_test(src: _Source, tp: Any, var: str) -> str | None:
    """An expression true when `var`'s class alone satisfies `tp` (None if it cannot)."""
    classes = _classes(tp)
    if classes is None:
        return None
    return " or ".join(f"{var}.__class__ is {src.bind(c, c.__name__)}" for c in classes)


def _check_only(tp: Any) -> bool:
    """True when validating `tp` never changes the value (so no copy is needed)."""
    if tp is Any or tp is object or _classes(tp) is not None:
        return True
    args = _union_args(tp)
    if args is not None:
        return all(_check_only(a) for a in args)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return True
    if origin in (list, dict):
        return all(_check_only(a) for a in typing.get_args(tp))
    return False


def _emit(src: _Source, tp: Any, var: str, pad: str) -> None:
    """Append lines that check `var` against `tp`, rebinding it to the decoded value."""
    _EMITTERS[_shape(tp)](src, tp, var, pad)


def _emit_nothing(src: _Source, tp: Any, var: str, pad: str) -> None:
    return


def _emit_classes(src: _Source, tp: Any, var: str, pad: str) -> None:
    src.lines.append(f"{pad}if not ({_class_test(src, tp, var)}): raise _Invalid")


def _emit_enum(src: _Source, tp: Any, var: str, pad: str) -> None:
    known = src.bind(tp._value2member_map_, "members")
    cls = src.bind(tp, "enum")
    src.lines.append(f"{pad}{var} = {known}.get({var}) or {cls}({var})")


def _emit_datetime(src: _Source, tp: Any, var: str, pad: str) -> None:
    src.lines.append(f"{pad}{var} = {src.bind(parse_timestamp, 'ts')}({var})")


def _emit_literal(src: _Source, tp: Any, var: str, pad: str) -> None:
    allowed = src.bind(frozenset(typing.get_args(tp)), "allowed")
    src.lines.append(f"{pad}if {var}.__class__ is bool or {var} not in {allowed}:")
    src.lines.append(f"{pad}    raise _Invalid")


def _emit_attrs(src: _Source, tp: Any, var: str, pad: str) -> None:
    hook = src.bind(get_converter().get_structure_hook(tp), "hook")
    src.lines.append(f"{pad}{var} = {hook}({var}, {src.bind(tp, 'type')})")


def _emit_unknown(src: _Source, tp: Any, var: str, pad: str) -> None:
    raise TypeError(f"codegen_async cannot decode type {tp!r}")


def _emit_union(src: _Source, tp: Any, var: str, pad: str) -> None:
    args = typing.cast(tuple[Any, ...], _union_args(tp))
    others = [a for a in args if a is not _NoneType]
    nullable = len(others) < len(args)
    tests = [_class_test(src, a, var) for a in others]
    if all(t is not None for t in tests):  # one test, the None case last
        if nullable:
            tests.append(f"{var} is None")
        src.lines.append(f"{pad}if not ({' or '.join(typing.cast(list[str], tests))}):")
        src.lines.append(f"{pad}    raise _Invalid")
    elif len(others) == 1:
        if nullable:
            src.lines.append(f"{pad}if {var} is not None:")
        _emit(src, others[0], var, pad + "    " if nullable else pad)
        if src.lines[-1].endswith(":"):
            src.lines.append(f"{pad}    pass")
    else:
        src.lines.append(f"{pad}{var} = {src.bind(_union_hook(args), 'union')}({var}, None)")


def _emit_list(src: _Source, tp: Any, var: str, pad: str) -> None:
    (item,) = typing.get_args(tp) or (Any,)
    src.lines.append(f"{pad}if {var}.__class__ is not list: raise _Invalid")
    if item is Any or item is object:
        return
    elem = src.local("x")
    if _check_only(item):
        src.lines.append(f"{pad}for {elem} in {var}:")
        _emit(src, item, elem, pad + "    ")
        return
    hook = src.bind(get_converter().get_structure_hook(item), "hook")
    item_type = src.bind(item, "type")
    src.lines.append(f"{pad}{var} = [{hook}({elem}, {item_type}) for {elem} in {var}]")


def _emit_dict(src: _Source, tp: Any, var: str, pad: str) -> None:
    key_type, value_type = typing.get_args(tp) or (Any, Any)
    src.lines.append(f"{pad}if {var}.__class__ is not dict: raise _Invalid")
    key, value = src.local("k"), src.local("v")
    if _check_only(key_type) and _check_only(value_type):
        src.lines.append(f"{pad}for {key}, {value} in {var}.items():")
        before = len(src.lines)
        _emit(src, key_type, key, pad + "    ")
        _emit(src, value_type, value, pad + "    ")
        if len(src.lines) == before:
            src.lines.pop()
        return
    key_hook = src.bind(get_converter().get_structure_hook(key_type), "hook")
    value_hook = src.bind(get_converter().get_structure_hook(value_type), "hook")
    kt, vt = src.bind(key_type, "type"), src.bind(value_type, "type")
    src.lines.append(
        f"{pad}{var} = {{{key_hook}({key}, {kt}): {value_hook}({value}, {vt})"
        f" for {key}, {value} in {var}.items()}}"
    )


def _union_hook(args: tuple[Any, ...]) -> Hook:
    """A hook trying each member of a union in order; the first that decodes wins."""
    hooks = [(get_converter().get_structure_hook(a), a) for a in args]

    def structure_union(value: Any, _: Any) -> Any:
        for hook, member in hooks:
            try:
                return hook(value, member)
            except Exception:
                continue
        raise _Invalid

    return structure_union


def _make_value_hook(tp: Any) -> Hook:
    """The fast hook for a non-class type (list, dict, union, leaf, Literal, Any)."""
    src = _Source()
    src.lines.append("def structure_value(v, _):")
    _emit(src, tp, "v", "    ")
    src.lines.append("    return v")
    return typing.cast(Hook, src.compile("structure_value", tp))


def _make_attrs_hook(tp: Any) -> Hook:
    """The fast hook for an attrs class: read each key, check it, call the class."""
    fields = _fields(tp)
    src = _Source()
    cls = src.bind(typing.get_origin(tp) or tp, "cls")
    src.lines.append("def structure_model(o, _):")
    src.lines.append("    if o.__class__ is not dict: raise _Invalid")
    names = []
    for field in fields:
        var = src.local("f")
        names.append(var)
        if field.default is attrs.NOTHING:
            src.lines.append(f"    {var} = o[{field.key!r}]")
            _emit(src, field.type, var, "    ")
            if field.positive:
                src.lines.append(f"    if {var} <= 0: raise _Invalid")
        elif field.default is None and _nullable(field.type):
            src.lines.append(f"    {var} = o.get({field.key!r})")
            _emit(src, field.type, var, "    ")
        else:
            default = field.default
            if isinstance(default, _FACTORY):
                if default.takes_self:
                    raise TypeError(f"{field.name}: Factory(takes_self=True) is not supported")
                expr = f"{src.bind(default.factory, 'factory')}()"
            else:
                expr = src.bind(default, "default")
            src.lines.append(f"    if {field.key!r} in o:")
            src.lines.append(f"        {var} = o[{field.key!r}]")
            _emit(src, field.type, var, "        ")
            src.lines.append("    else:")
            src.lines.append(f"        {var} = {expr}")
    src.lines.extend(_construct(src, typing.get_origin(tp) or tp, cls, fields, names))
    return typing.cast(Hook, src.compile("structure_model", tp))


def _construct(
    src: _Source, cls: type, cls_name: str, fields: list[_Field], names: list[str]
) -> list[str]:
    """Lines building the instance: through its slots when `__init__` would only store.

    A frozen attrs `__init__` stores each field through `object.__setattr__`; setting the
    slots directly is about a third cheaper. Any class with more to do (validators,
    converters, init hooks, extra slots) is built by calling it.
    """
    slots = {s for k in cls.__mro__ for s in k.__dict__.get("__slots__", ())}
    slots -= {"__weakref__", *_Model.__slots__}  # `request_id` is set after decoding
    plain = (
        "__slots__" in cls.__dict__
        and slots == {f.name for f in fields}
        and len(fields) == len(attrs.fields(cls))
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and all(a.validator is None and a.converter is None for a in attrs.fields(cls))
        and all(isinstance(getattr(cls, f.name), types.MemberDescriptorType) for f in fields)
    )
    if not plain:
        return [f"    return {cls_name}({', '.join(names)})"]
    lines = [f"    self = {src.bind(object.__new__, 'new')}({cls_name})"]
    for field, var in zip(fields, names, strict=True):
        setter = src.bind(getattr(cls, field.name).__set__, "set")
        lines.append(f"    {setter}(self, {var})")
    lines.append("    return self")
    return lines


def _nullable(tp: Any) -> bool:
    args = _union_args(tp)
    return tp is Any or tp is object or (args is not None and _NoneType in args)


def _structure_open_enum(value: Any, cls: Any) -> Any:
    if value.__class__ is not str:
        raise _Invalid
    return cls(value)


# ------------------------------------------------------------------- error locating


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


Problem: TypeAlias = "tuple[str, str] | None"  # (path, reason); None: the value fits


def _locate(value: Any, tp: Any, path: str) -> Problem:
    """The path and reason of the first part of `value` that `tp` cannot read."""
    return _LOCATORS[_shape(tp)](value, tp, path)


def _locate_nothing(value: Any, tp: Any, path: str) -> Problem:
    return None


def _locate_classes(value: Any, tp: Any, path: str) -> Problem:
    if value.__class__ in typing.cast(tuple[type, ...], _classes(tp)):
        return None
    return path, f"expected {_describe(tp)}, got {_show(value)}"


def _locate_enum(value: Any, tp: Any, path: str) -> Problem:
    if value.__class__ is str:
        return None
    return path, f"expected string ({tp.__name__}), got {_show(value)}"


def _locate_datetime(value: Any, tp: Any, path: str) -> Problem:
    try:
        parse_timestamp(value)
    except _Invalid as exc:
        return path, str(exc)
    return None


def _locate_literal(value: Any, tp: Any, path: str) -> Problem:
    choices = typing.get_args(tp)
    if value.__class__ is not bool and _hashable(value) and value in choices:
        return None
    return path, f"expected one of {', '.join(map(repr, choices))}, got {_show(value)}"


def _locate_unknown(value: Any, tp: Any, path: str) -> Problem:
    return path, f"cannot decode type {tp!r}"


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _locate_union(value: Any, tp: Any, path: str) -> Problem:
    args = typing.cast(tuple[Any, ...], _union_args(tp))
    found = []
    for member in args:
        problem = _locate(value, member, path)
        if problem is None:
            return None
        found.append(problem)
    deeper = [p for p in found if p[0] != path]
    if len(deeper) == 1:
        return deeper[0]
    wanted = " or ".join(dict.fromkeys(_describe(a) for a in args))
    return path, f"expected {wanted}, got {_show(value)}"


def _locate_list(value: Any, tp: Any, path: str) -> Problem:
    if value.__class__ is not list:
        return path, f"expected array, got {_show(value)}"
    (item,) = typing.get_args(tp) or (Any,)
    for index, element in enumerate(value):
        problem = _locate(element, item, f"{path}[{index}]")
        if problem is not None:
            return problem
    return None


def _locate_dict(value: Any, tp: Any, path: str) -> Problem:
    if value.__class__ is not dict:
        return path, f"expected object, got {_show(value)}"
    key_type, value_type = typing.get_args(tp) or (Any, Any)
    for key, element in value.items():
        problem = _locate(key, key_type, f"{path}[{key!r}]")
        if problem is not None:
            return problem[0], f"bad key: {problem[1]}"
        problem = _locate(element, value_type, f"{path}[{key!r}]")
        if problem is not None:
            return problem
    return None


def _locate_attrs(value: Any, tp: Any, path: str) -> Problem:
    if value.__class__ is not dict:
        return path, f"expected object, got {_show(value)}"
    for field in _fields(tp):
        where = _join(path, field.key)
        if field.key not in value:
            if field.default is attrs.NOTHING:
                return where, "missing required field"
            continue
        problem = _locate(value[field.key], field.type, where)
        if problem is not None:
            return problem
        if field.positive and value[field.key] <= 0:
            return where, f"expected an id > 0, got {_show(value[field.key])}"
    return None


# The two tiers, one entry per shape of `_shape`.
_EMITTERS: dict[str, Callable[[_Source, Any, str, str], None]] = {
    "any": _emit_nothing,
    "classes": _emit_classes,
    "union": _emit_union,
    "enum": _emit_enum,
    "datetime": _emit_datetime,
    "literal": _emit_literal,
    "list": _emit_list,
    "dict": _emit_dict,
    "attrs": _emit_attrs,
    "unknown": _emit_unknown,
}
_LOCATORS: dict[str, Callable[[Any, Any, str], Problem]] = {
    "any": _locate_nothing,
    "classes": _locate_classes,
    "union": _locate_union,
    "enum": _locate_enum,
    "datetime": _locate_datetime,
    "literal": _locate_literal,
    "list": _locate_list,
    "dict": _locate_dict,
    "attrs": _locate_attrs,
    "unknown": _locate_unknown,
}

# ---------------------------------------------------------------------- the converter


def _is_composite(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return tp is Any or _union_args(tp) is not None or origin in (list, dict, Literal)


@functools.cache
def get_converter() -> cattrs.Converter:
    """The converter, built on first use (importing cattrs is left until a response is
    decoded, so `import codegen_async` stays light)."""
    import cattrs

    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    # Class hooks go to cattrs' singledispatch, which is consulted first: this replaces
    # its coercing defaults (`str(5)`, `int(True)`) for these classes.
    for leaf in (str, int, bool, float):
        conv.register_structure_hook(leaf, _make_value_hook(leaf))
    conv.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    conv.register_structure_hook(_OpenStrEnum, _structure_open_enum)
    conv.register_structure_hook_factory(_is_composite, _make_value_hook)
    conv.register_structure_hook_factory(_is_attrs, _make_attrs_hook)
    conv.register_unstructure_hook_factory(_is_attrs, _make_unstructure_hook)
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_unstructure_hook(_OpenStrEnum, lambda member: str(member._value_))
    return conv


_hooks: dict[Any, Hook] = {}


def structure(data: object, cls: type[T]) -> T:
    """Decode JSON-shaped `data` into `cls`, or raise ResponseValidationError."""
    try:
        hook = _hooks[cls]
    except KeyError:
        hook = _hooks[cls] = get_converter().get_structure_hook(cls)
    try:
        return typing.cast(T, hook(data, cls))
    except Exception as exc:
        raise _explain(data, cls, exc) from None


def _explain(data: object, cls: Any, exc: Exception) -> ResponseValidationError:
    """The error naming where `data` does not fit `cls`."""
    name = _type_name(cls)
    try:
        problem = _locate(data, cls, "")
    except Exception as walk_error:  # the walker itself failed: still report, typed
        problem = ("", f"undecodable data ({type(walk_error).__name__})")
    if problem is None:  # the fast path disagreed with the walker: report what it said
        problem = ("", f"{type(exc).__name__}: {exc}")
    path, reason = problem
    return ResponseValidationError(f"cannot read {name}: {reason}", path=path, body=data)


def _type_name(tp: Any) -> str:
    """`AgentRun`, `Page[AgentRun]`, `list[OAuthProvider]`."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is None or not args:
        return str(getattr(tp, "__name__", tp))
    return f"{_type_name(origin)}[{', '.join(_type_name(a) for a in args)}]"


_set_request_id = _Model.__dict__["_request_id"].__set__
# Models that carry others a call returns (a page's items, a run's logs) pass the id on.
_CARRIED = {Page: "items", AgentRunWithLogs: "logs"}


def with_request_id(obj: T, request_id: str | None) -> T:
    """`obj` (a model, or a list of them), its request id set to `request_id`."""
    if request_id is None:
        return obj
    if isinstance(obj, _Model):
        _set_request_id(obj, request_id)
        field = _CARRIED.get(type(obj))
        items: object = getattr(obj, field) if field is not None else None
    else:
        items = obj
    if isinstance(items, list):
        for item in items:
            if isinstance(item, _Model):
                _set_request_id(item, request_id)
    return obj


def _make_unstructure_hook(tp: Any) -> Callable[[Any], Any]:
    """A model's fields as a dict under their JSON keys (renames undone), each value
    unstructured by what it is."""
    pairs = [(field.name, field.key) for field in _fields(tp)]
    unstructure_value = get_converter().unstructure

    def unstructure_model(obj: Any) -> dict[str, Any]:
        return {key: unstructure_value(getattr(obj, name)) for name, key in pairs}

    return unstructure_model


def unstructure(obj: object) -> Any:
    """A model (or list/dict of them) as JSON-able data under the API's field names:
    enums as values, times as ISO 8601 strings."""
    return get_converter().unstructure(obj)


use_codec(structure, unstructure)
