"""The JSON shapes of paints, movements, history entries, pages and figures."""

from datetime import UTC, datetime
from typing import Any

from .models import HistoryEntry, Paint, StockMovement
from .services.bulk import Outcome
from .services.listing import Page
from .services.paints import PaintRecord
from .services.reorder import BrandTotal, ReorderLine
from .services.stats import Breakdown, InventoryStats
from .services.stock import MovementRecord
from .services.vocabularies import Vocabulary


def iso(moment: datetime | None) -> str | None:
    """Return an ISO 8601 UTC time; SQLite hands times back without their zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def paint(item: Paint | PaintRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "brand": item.brand,
        "color_code": item.color_code,
        "color_type": item.color_type,
        "color_family": item.color_family,
        "image_url": item.image_url,
        "stock": item.stock,
        "price": f"{item.price:.2f}",
        "description": item.description,
        "color_preview": item.color_preview,
        "reorder_level": item.reorder_level,
        "reorder_quantity": item.reorder_quantity,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "version": item.version,
    }


def movement(item: StockMovement | MovementRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "paint_id": item.paint_id,
        "delta": item.delta,
        "stock_after": item.stock_after,
        "kind": item.kind,
        "reason": item.reason,
        "user": item.username,
        "created_at": iso(item.created_at),
    }


def outcome(item: Outcome) -> dict[str, Any]:
    """Shape what one operation of a bulk change did."""
    shaped: dict[str, Any] = {"op": item.operation.kind, "paint_id": item.operation.paint_id}
    if item.paint is not None:
        shaped["paint"] = paint(item.paint)
    if item.change is not None:
        shaped["movement"] = movement(item.change.movement)
    return shaped


def history_entry(item: HistoryEntry) -> dict[str, Any]:
    paint = None
    if item.paint_id is not None:
        paint = {
            "id": item.paint_id,
            "brand": item.paint_brand,
            "name": item.paint_name,
            "color_code": item.paint_code,
        }
    return {
        "id": item.id,
        "created_at": iso(item.created_at),
        "kind": item.kind,
        "user": item.username,
        "user_id": item.user_id,
        "token": item.token_name,
        "paint": paint,
        "changes": {name: {"old": old, "new": new} for name, (old, new) in item.changes.items()},
        "note": item.note,
    }


def page(result: Page, item_shape: Any) -> dict[str, Any]:
    return {
        "items": [item_shape(item) for item in result.items],
        "pagination": {
            "page": result.page,
            "per_page": result.per_page,
            "total": result.total,
            "pages": result.pages,
            "has_next": result.has_next,
            "next_cursor": result.next_cursor,
            "total_is_estimate": result.total_is_estimate,
        },
    }


def _breakdown(rows: list[Breakdown], key: str) -> list[dict[str, Any]]:
    return [{key: row.key, "paints": row.paints, "units": row.units} for row in rows]


def stats(figures: InventoryStats, *, currency: str, default_reorder_level: int) -> dict[str, Any]:
    return {
        "paints": figures.paints,
        "units": figures.units,
        "value": f"{figures.value:.2f}",
        "currency": currency,
        "in_stock": figures.in_stock,
        "low_stock": figures.low_stock,
        "out_of_stock": figures.out_of_stock,
        "low_stock_threshold": default_reorder_level,
        "by_brand": _breakdown(figures.by_brand, "brand"),
        "by_color_family": _breakdown(figures.by_color_family, "color_family"),
    }


def reorder_line(line: ReorderLine) -> dict[str, Any]:
    return {"paint": paint(line.paint), "suggested_quantity": line.suggested_quantity}


def reorder(result: Page, brands: list[BrandTotal]) -> dict[str, Any]:
    return {
        **page(result, reorder_line),
        "brands": [
            {"brand": total.brand, "paints": total.paints, "units": total.units} for total in brands
        ],
    }


def vocabulary(lists: Vocabulary) -> dict[str, list[str]]:
    """Return the allowed values of each list, in their canonical spellings."""
    return {kind: list(names) for kind, names in lists.names.items()}
