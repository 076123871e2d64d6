"""An index for ``sort=name``, so a name-ordered page of a large catalog is an index scan."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("catalog_api", "0002_search_and_constraints")]

    operations = [
        ops.RunSQL(
            ["CREATE INDEX products_name_idx ON products (lower(name), id)"],
            reverse_sql=["DROP INDEX products_name_idx"],
        ),
    ]
