"""How a model is kept in a table entity: its JSON in `Data`, spilling into `Data1`, `Data2`… when long.

Table Storage string properties hold at most 64 KiB (32K UTF-16 characters), so long JSON is cut into chunks.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from shared.domain.model import STORED_ROW

M = TypeVar("M", bound=BaseModel)
DATA_CHUNK = 30_000


def data_properties(model: BaseModel) -> dict[str, str]:
    """The `Data…` properties that hold `model` as JSON."""
    data = model.model_dump_json()
    return {
        "Data" if index == 0 else f"Data{index // DATA_CHUNK}": data[index : index + DATA_CHUNK]
        for index in range(0, max(len(data), 1), DATA_CHUNK)
    }


def entity_json(entity: dict[str, Any]) -> str:
    parts = [entity.get("Data", "")]
    index = 1
    while f"Data{index}" in entity:
        parts.append(entity[f"Data{index}"])
        index += 1
    return "".join(parts)


def decode(model_type: type[M], entity: dict[str, Any]) -> M:
    """The stored model, read as it was written (see STORED_ROW)."""
    return model_type.model_validate_json(entity_json(entity), context={STORED_ROW: True})
