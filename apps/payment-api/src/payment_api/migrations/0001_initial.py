from tortoise import migrations
from tortoise.migrations import operations as ops
from payment_api.states import PaymentStatus
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('order_id', fields.UUIDField(db_index=True)),
                ('customer_id', fields.UUIDField(db_index=True)),
                ('status', fields.CharEnumField(description='AUTHORIZED: authorized\nCAPTURED: captured\nDECLINED: declined\nREFUNDED: refunded\nFAILED: failed', enum_type=PaymentStatus, max_length=16)),
                ('amount_cents', fields.IntField()),
                ('currency', fields.CharField(max_length=3)),
                ('card_brand', fields.CharField(max_length=16)),
                ('card_last4', fields.CharField(max_length=4)),
                ('card_exp_month', fields.SmallIntField()),
                ('card_exp_year', fields.SmallIntField()),
                ('card_fingerprint', fields.CharField(db_index=True, description='HMAC-SHA256 of the number under the configured key: recognises a card, reveals nothing.', max_length=64)),
                ('acquirer', fields.CharField(max_length=32)),
                ('acquirer_reference', fields.CharField(null=True, max_length=128)),
                ('decline_code', fields.CharField(null=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments', 'app': 'payment_api', 'pk_attr': 'id', 'table_description': 'One attempt to charge a card for an order, and what became of it.'},
            bases=['Model'],
        ),
    ]
