"""What low stock means: each paint's stock against its own reorder level.

A paint is *low* when it is in stock but at or below its level (1 <= stock <= level), as
it was with the one shop-wide threshold, which is now the level a new paint gets. Out of
stock (stock = 0) is counted apart, as before, and is not low; the reorder list takes
both: every paint at or below its level.
"""

from sqlalchemy import ColumnElement, and_, func, literal_column

from ..models import Paint

# Written as the difference against 0, the expression the partial indexes are made on and
# PostgreSQL keeps statistics of: `stock <= reorder_level` compares two columns, which the
# planner can only guess at (a third of the rows), and then walked the whole stock index
# for "low stock, most first" (2 s at 1,000,000 paints) instead of reading the index of
# the paints at or below their level.
# 0 written out, not bound: SQLite uses a partial index only for the very same terms.
ZERO = literal_column("0")
STOCK_OVER_LEVEL: ColumnElement[int] = Paint.stock - Paint.reorder_level
AT_OR_BELOW_LEVEL: ColumnElement[bool] = STOCK_OVER_LEVEL <= ZERO
LOW: ColumnElement[bool] = and_(Paint.stock >= 1, AT_OR_BELOW_LEVEL)
ABOVE_LEVEL: ColumnElement[bool] = STOCK_OVER_LEVEL > ZERO
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


# The reorder list's stock state: every paint at or below its level (low or out of stock).
AT_OR_BELOW = "at_or_below_level"


def stock_states(stock: int, reorder_level: int) -> set[str]:
    """Return each stock filter a paint with this stock and level passes (as the clauses above)."""
    states = set()
    if stock - reorder_level > 0:
        states.add("in_stock")
    if stock - reorder_level <= 0:
        states.add(AT_OR_BELOW)
        if stock >= 1:
            states.add("low_stock")
    if stock == 0:
        states.add("out_of_stock")
    return states
