"""runcap's Temporal data converter: the default one, with dataclass type hints looked up once.

Temporal's JSON converter calls ``typing.get_type_hints`` on a dataclass every time it decodes
one, for every nested dataclass too: measured at 1.4 to 2.0 ms per gateway call per process
(a grant carries a chain of targets with prices). The hints of a class never change, so they
are cached; the decoding is otherwise the same (unknown keys ignored, missing ones left to the
dataclass's defaults). Every client runcap makes uses it; workers take it from their client.
"""

import dataclasses
import functools
from typing import Any, get_type_hints

from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


class CachedDataclasses(JSONTypeConverter):
    """Decodes dataclasses with their type hints cached per class."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        if not isinstance(value, dict):
            raise TypeError(f"cannot convert {type(value).__name__} to dataclass {hint.__name__}")
        kwargs = {
            name: value_to_type(field_hint, value[name], [self])
            for name, field_hint in _fields(hint)
            if name in value
        }
        return hint(**kwargs)


class RuncapPayloadConverter(CompositePayloadConverter):
    """The default payload converters, the JSON one with ``CachedDataclasses``."""

    def __init__(self) -> None:
        json = JSONPlainPayloadConverter(custom_type_converters=[CachedDataclasses()])
        super().__init__(
            *(
                json if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=RuncapPayloadConverter
)
