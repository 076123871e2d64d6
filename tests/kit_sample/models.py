from tortoise import fields
from tortoise.models import Model


class Widget(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=50)
    count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "widgets"
