"""Reservation lines by their reservation, so held stock is read from the live holds.

Held stock (``HELD``, ``HELD_FOR``) is the sum of the lines of live holds. With
no index on ``reservation_items.reservation_id`` PostgreSQL could only start
from the lines: every line a product ever had (through
``reservation_items_product_idx``), or every line of every reservation (a
sequential scan, for a product page's ``HELD``), each time stock was read. Both
grow with the shop's history. With this index it starts from the live holds
(``reservations_live_idx``: few at any time) and reads only their lines;
committing, releasing and answering a repeat read one reservation's lines the
same way. ``INCLUDE (quantity)`` lets it answer from the index alone.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("catalog_api", "0004_name_indexes_cover_name")]

    operations = [
        ops.RunSQL(
            [
                "CREATE INDEX reservation_items_reservation_idx "
                "ON reservation_items (reservation_id, product_id) INCLUDE (quantity)",
            ],
            reverse_sql=["DROP INDEX reservation_items_reservation_idx"],
        ),
    ]
