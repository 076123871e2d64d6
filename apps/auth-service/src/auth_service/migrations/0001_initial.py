from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='LoginFailure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bucket', fields.CharField(db_index=True, max_length=340)),
                ('failed_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'login_failures', 'app': 'auth_service', 'pk_attr': 'id', 'table_description': 'A failed login, counted per account and per client address for throttling.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SigningKey',
            fields=[
                ('kid', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('alg', fields.CharField(max_length=8)),
                ('public_jwk', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('private_key_encrypted', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('active_from', fields.DatetimeField(description='Published in the JWKS at once; used for signing only from this moment.', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'signing_keys', 'app': 'auth_service', 'pk_attr': 'kid', 'table_description': 'A JWT signing key; the private half is encrypted with the key-encryption key.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', fields.CharField(max_length=320)),
                ('email_normalized', fields.CharField(unique=True, description='Lower-cased email; unique, so emails compare case-insensitively.', max_length=320)),
                ('name', fields.CharField(max_length=200)),
                ('password_hash', fields.CharField(max_length=255)),
                ('role', fields.CharField(default='customer', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'auth_service', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('auth_service.User', source_field='user_id', db_constraint=True, to_field='id', related_name='refresh_tokens', on_delete=OnDelete.CASCADE)),
                ('family_id', fields.UUIDField(db_index=True)),
                ('parent_id', fields.UUIDField(null=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_tokens', 'app': 'auth_service', 'pk_attr': 'id', 'table_description': 'One opaque refresh token, stored only as its SHA-256 hash.'},
            bases=['Model'],
        ),
    ]
