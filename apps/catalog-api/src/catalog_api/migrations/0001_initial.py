from tortoise import migrations
from tortoise.migrations import operations as ops
from catalog_api.models import ReservationStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Category',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=120)),
            ],
            options={'table': 'categories', 'app': 'catalog_api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Product',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('sku', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('category', fields.ForeignKeyField('catalog_api.Category', source_field='category_id', db_constraint=True, to_field='id', related_name='products', on_delete=OnDelete.RESTRICT)),
                ('price_cents', fields.IntField()),
                ('currency', fields.CharField(max_length=3)),
                ('stock', fields.IntField(description='Physical stock. What shoppers see is stock minus live reservations.')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'products', 'app': 'catalog_api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Reservation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('order_id', fields.UUIDField(unique=True)),
                ('status', fields.CharEnumField(default=ReservationStatus.HELD, description='HELD: held\nCOMMITTED: committed\nRELEASED: released\nEXPIRED: expired', enum_type=ReservationStatus, max_length=16)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'reservations', 'app': 'catalog_api', 'pk_attr': 'id', 'table_description': 'Stock held for one order; keyed (and idempotent) by the order id.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReservationItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reservation', fields.ForeignKeyField('catalog_api.Reservation', source_field='reservation_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('product', fields.ForeignKeyField('catalog_api.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='reservation_items', on_delete=OnDelete.CASCADE)),
                ('quantity', fields.IntField()),
            ],
            options={'table': 'reservation_items', 'app': 'catalog_api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
