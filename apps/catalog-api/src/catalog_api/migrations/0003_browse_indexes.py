"""Indexes for browsing a large catalog: by category, in each sort order, and by name."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("catalog_api", "0002_search_and_constraints")]

    operations = [
        ops.RunSQL(
            [
                "CREATE INDEX products_name_idx ON products (lower(name), id)",
                "CREATE INDEX products_category_newest_idx "
                "ON products (category_id, created_at DESC, id)",
                "CREATE INDEX products_category_price_idx ON products (category_id, price_cents, id)",
                "CREATE INDEX products_category_name_idx ON products (category_id, lower(name), id)",
            ],
            reverse_sql=[
                "DROP INDEX products_category_name_idx",
                "DROP INDEX products_category_price_idx",
                "DROP INDEX products_category_newest_idx",
                "DROP INDEX products_name_idx",
            ],
        ),
    ]
