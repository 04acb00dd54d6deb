"""What low stock means: each paint's stock against its own reorder level.

A paint is *low* when it is in stock but at or below its level (1 <= stock <= level), as
it was with the one shop-wide threshold, which is now the level a new paint gets. Out of
stock (stock = 0) is counted apart, as before, and is not low; the reorder list takes
both: every paint at or below its level.
"""

from sqlalchemy import ColumnElement, func

from ..models import Paint

AT_OR_BELOW_LEVEL: ColumnElement[bool] = Paint.stock <= Paint.reorder_level
# BETWEEN is read as stock >= 1 AND stock <= reorder_level, so PostgreSQL sees that the
# partial index on AT_OR_BELOW_LEVEL holds every such paint.
LOW: ColumnElement[bool] = Paint.stock.between(1, Paint.reorder_level)
ABOVE_LEVEL: ColumnElement[bool] = Paint.stock > Paint.reorder_level
OUT: ColumnElement[bool] = Paint.stock == 0
# The paint's reorder quantity, or else enough to bring its stock back above its level.
SUGGESTED_QUANTITY: ColumnElement[int] = func.coalesce(
    Paint.reorder_quantity, Paint.reorder_level - Paint.stock + 1
)


def suggested_quantity(stock: int, reorder_level: int, reorder_quantity: int | None) -> int:
    """Return how many to order of a paint at or below its level (as SUGGESTED_QUANTITY)."""
    if reorder_quantity is not None:
        return reorder_quantity
    return reorder_level - stock + 1
