from tortoise import migrations
from tortoise.migrations import operations as ops
from notify_hub.models import InboxStatus, NotificationStatus
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='InboxEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('type', fields.CharField(max_length=64)),
                ('subject_user_id', fields.UUIDField(null=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(description='ACCEPTED: accepted\nIGNORED: ignored', enum_type=InboxStatus, max_length=16)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'inbox', 'app': 'notify_hub', 'pk_attr': 'id', 'table_description': 'Every event id ever received; its primary key is what makes redelivery a no-op.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('event_id', fields.UUIDField(unique=True, description='The inbox event that created it: at most one notification per event.')),
                ('user_id', fields.UUIDField()),
                ('type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(default='email', max_length=16)),
                ('recipient_email', fields.CharField(max_length=320)),
                ('recipient_name', fields.CharField(max_length=200)),
                ('subject', fields.CharField(max_length=200)),
                ('text_body', fields.TextField(unique=False)),
                ('html_body', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(default=NotificationStatus.QUEUED, description='QUEUED: queued\nSENT: sent\nFAILED: failed', enum_type=NotificationStatus, max_length=16)),
                ('attempts', fields.IntField(default=0, description='Sends tried so far; a claim increments it, and only that claim may record the outcome.')),
                ('next_attempt_at', fields.DatetimeField(description="When the worker may claim it: now, after a backoff, or after a claim's lease.", auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notifications', 'app': 'notify_hub', 'indexes': [Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One email, rendered when its event arrived, sent by the delivery worker.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Recipient',
            fields=[
                ('user_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', fields.CharField(max_length=320)),
                ('name', fields.CharField(max_length=200)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'recipients', 'app': 'notify_hub', 'pk_attr': 'user_id', 'table_description': "notify-hub's own copy of a user's address, fed by ``user.registered``."},
            bases=['Model'],
        ),
    ]
