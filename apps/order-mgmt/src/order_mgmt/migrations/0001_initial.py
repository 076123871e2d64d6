from tortoise import migrations
from tortoise.migrations import operations as ops
from order_mgmt.checkout import FailureReason, Step
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Cart',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('customer_id', fields.UUIDField(unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'carts', 'app': 'order_mgmt', 'pk_attr': 'id', 'table_description': 'One per shopper; its row is locked while a line is added, so currencies never mix.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CartItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('cart', fields.ForeignKeyField('order_mgmt.Cart', source_field='cart_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('product_id', fields.UUIDField()),
                ('name', fields.CharField(max_length=200)),
                ('currency', fields.CharField(max_length=3)),
                ('quantity', fields.IntField()),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'cart_items', 'app': 'order_mgmt', 'unique_together': (('cart', 'product_id'),), 'pk_attr': 'id', 'table_description': 'A product and a quantity. Name and currency are as last seen, for notes and checks;'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('customer_id', fields.UUIDField()),
                ('idempotency_key', fields.CharField(description="The checkout's Idempotency-Key: one order per key and shopper, whatever races.", max_length=255)),
                ('request_fingerprint', fields.CharField(max_length=64)),
                ('step', fields.CharEnumField(description='PLACED: placed\nRESERVED: reserved\nCHARGING: charging\nCHARGED: charged\nRELEASING: releasing\nREFUNDING: refunding\nCONFIRMED: confirmed\nCANCELLING: cancelling\nRESTOCKING: restocking\nPAYMENT_FAILED: payment_failed\nREJECTED: rejected\nCANCELLED: cancelled', enum_type=Step, max_length=16)),
                ('items', fields.JSONField(description='The price snapshot: ``[{product_id, name, unit_price_cents, quantity}]``.', encoder=JSON_DUMPS, decoder=loads)),
                ('total_cents', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('shipping_address', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('payment_id', fields.UUIDField(null=True)),
                ('charge_attempts', fields.IntField(default=0)),
                ('reservation_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failure_reason', fields.CharEnumField(null=True, description='OUT_OF_STOCK: out_of_stock\nDECLINED: declined\nCHECKOUT_INTERRUPTED: checkout_interrupted\nRESERVATION_EXPIRED: reservation_expired', enum_type=FailureReason, max_length=32)),
                ('decline_code', fields.CharField(null=True, max_length=64)),
                ('short_items', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('lease_owner', fields.UUIDField(null=True, description='The worker (a request or a recovery round) driving the saga, until ``lease_until``.')),
                ('lease_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'orders', 'app': 'order_mgmt', 'unique_together': (('customer_id', 'idempotency_key'),), 'pk_attr': 'id', 'table_description': 'An order and the persisted state of its checkout saga (order_mgmt.checkout).'},
            bases=['Model'],
        ),
    ]
