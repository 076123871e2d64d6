"""What the database, not the application, must guarantee: statuses, the inbox link, due rows."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("notify_hub", "0001_initial")]

    operations = [
        ops.RunSQL(
            [
                "ALTER TABLE inbox ADD CONSTRAINT inbox_status_known "
                "CHECK (status IN ('accepted', 'ignored'))",
                "ALTER TABLE notifications ADD CONSTRAINT notifications_status_known "
                "CHECK (status IN ('queued', 'sent', 'failed'))",
                "ALTER TABLE notifications ADD CONSTRAINT notifications_sent_at_iff_sent "
                "CHECK ((status = 'sent') = (sent_at IS NOT NULL))",
                # Every notification comes from exactly one inbox event.
                "ALTER TABLE notifications ADD CONSTRAINT notifications_event_fk "
                "FOREIGN KEY (event_id) REFERENCES inbox (id)",
                # The worker's claim reads only due, queued rows.
                "CREATE INDEX notifications_due_idx ON notifications (next_attempt_at, id) "
                "WHERE status = 'queued'",
            ],
            reverse_sql=[
                "DROP INDEX notifications_due_idx",
                "ALTER TABLE notifications DROP CONSTRAINT notifications_event_fk",
                "ALTER TABLE notifications DROP CONSTRAINT notifications_sent_at_iff_sent",
                "ALTER TABLE notifications DROP CONSTRAINT notifications_status_known",
                "ALTER TABLE inbox DROP CONSTRAINT inbox_status_known",
            ],
        ),
    ]
