"""The one pagination helper: every paged list (customer invoices and payments, the staff lists) uses it.

Why not ``playhouse.flask_utils.PaginatedQuery``: it reads the page number from Flask's request (``db/``
and ``billing/`` stay Flask-free), trusts any number (page 10**30 overflows the OFFSET and is a 500), and
counts every matching row for its page count (about a second over a million payments). ``paginate``
takes a bounded page number, moves a page past the end back to the last page, fetches one row more than a
page to know whether there is a next one, and can stop counting at a cap. A first page that holds the
whole list needs no count at all: its rows are the total.

Pages are by OFFSET, which is right for lists that people page through a few pages deep. A list that must
stay fast a long way down (a million payments) can page by key instead and still hand back a ``Page``.
"""
from dataclasses import dataclass, replace

MAX_PAGE = 1_000_000  # also billing.bounds.MAX_PAGE: the highest page number taken from a query string


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, its number and size, and what is around it."""

    rows: list
    number: int
    per_page: int
    total: int  # rows in the whole list, or count_cap when more than that match (total_capped)
    has_next: bool
    total_capped: bool = False

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    @property
    def has_previous(self):
        """True unless this is the first page."""
        return self.number > 1

    @property
    def pages(self):
        """How many pages the list has (at least 1), or None when the count stopped at its cap."""
        return None if self.total_capped else max((self.total + self.per_page - 1) // self.per_page, 1)

    def map(self, fn):
        """The same page with each row replaced by ``fn(rows)`` (a function of the whole list of rows)."""
        return replace(self, rows=list(fn(self.rows)))


def paginate(query, page, per_page, count_cap=None, first_rows=None):
    """Page ``page`` (1-based; bounded, and moved back to the last page past the end) of a peewee query.

    ``first_rows(n)``, when given, returns the query's first ``n`` rows (a db.compiled query of the same
    shape, for a list shown on every visit).
    """
    page = min(max(int(page or 1), 1), MAX_PAGE)
    first = None
    if page == 1:  # most lists fit on their first page, whose rows then give the total with no COUNT
        first = list(first_rows(per_page + 1) if first_rows else query.paginate(1, per_page).limit(per_page + 1))
        if len(first) <= per_page and not (count_cap and len(first) > count_cap):
            return Page(rows=first, number=1, per_page=per_page, total=len(first), has_next=False)
    counted = query.limit(count_cap + 1) if count_cap else query.order_by()
    total = counted.count()
    capped = bool(count_cap) and total > count_cap
    if capped:
        total = count_cap
    else:
        page = min(page, max((total + per_page - 1) // per_page, 1))
    rows = first if page == 1 and first is not None else list(query.paginate(page, per_page).limit(per_page + 1))
    return Page(rows=rows[:per_page], number=page, per_page=per_page, total=total, has_next=len(rows) > per_page,
                total_capped=capped)
