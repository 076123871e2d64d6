"""At most one captured payment per order (partial unique index) and the CHECK constraints."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("payment_api", "0001_initial")]

    operations = [
        ops.RunSQL(
            [
                # The guarantee behind every retry: whatever the idempotency key, an
                # order is captured once. A refunded payment no longer counts.
                "CREATE UNIQUE INDEX payments_one_capture_per_order "
                "ON payments (order_id) WHERE status = 'captured'",
                "ALTER TABLE payments ADD CONSTRAINT payments_status_known CHECK "
                "(status IN ('authorized', 'captured', 'declined', 'refunded', 'failed'))",
                "ALTER TABLE payments ADD CONSTRAINT payments_amount_positive "
                "CHECK (amount_cents > 0)",
                "ALTER TABLE payments ADD CONSTRAINT payments_currency_iso "
                "CHECK (currency ~ '^[A-Z]{3}$')",
                # Only the last 4 digits, ever: a longer value cannot be stored by mistake.
                "ALTER TABLE payments ADD CONSTRAINT payments_last4_only "
                "CHECK (card_last4 ~ '^[0-9]{4}$')",
                "ALTER TABLE payments ADD CONSTRAINT payments_fingerprint_hmac "
                "CHECK (card_fingerprint ~ '^[0-9a-f]{64}$')",
                "ALTER TABLE payments ADD CONSTRAINT payments_expiry_month "
                "CHECK (card_exp_month BETWEEN 1 AND 12)",
                "ALTER TABLE payments ADD CONSTRAINT payments_refunded_at_iff_refunded "
                "CHECK ((status = 'refunded') = (refunded_at IS NOT NULL))",
            ],
            reverse_sql=[
                "ALTER TABLE payments DROP CONSTRAINT payments_refunded_at_iff_refunded",
                "ALTER TABLE payments DROP CONSTRAINT payments_expiry_month",
                "ALTER TABLE payments DROP CONSTRAINT payments_fingerprint_hmac",
                "ALTER TABLE payments DROP CONSTRAINT payments_last4_only",
                "ALTER TABLE payments DROP CONSTRAINT payments_currency_iso",
                "ALTER TABLE payments DROP CONSTRAINT payments_amount_positive",
                "ALTER TABLE payments DROP CONSTRAINT payments_status_known",
                "DROP INDEX payments_one_capture_per_order",
            ],
        ),
    ]
